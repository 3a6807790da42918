# tests/: checks of the tree itself (each a script ending in `N passed, N failed, N skipped`):
# formatting, the build's guards (OpenBLAS, user flags, rebuild on a flags change), public
# headers compiled in pairs as C11 and C++ (with the include flags below), the shared
# library's soname and exported symbols, and the device and pipeline API suites under
# ThreadSanitizer.
TEST_CMDS += tests/check-format tests/check-build tests/check-headers tests/check-exports \
             tests/check-vectorized \
             tests/tsan-suites
test: export PI0_INCLUDES := $(INCLUDES)

# tests/peers/: a plain PyTorch port of the model (pi0_torch.py), checked against the numpy
# reference and pi0rt-infer (test_peers.py: in `make test`, every test SKIPs without torch),
# and `make bench-peers`, which times pi0rt against it (README.md, "Peers"). Debian's
# python3-torch is a test-only peer: only this goal installs it (as `make deps` installs
# DEB_PKGS), never `make deps` or `make test`.
TEST_CMDS += tests/peers/test_peers.py
PEERS_DEB_PKGS := python3-torch
.PHONY: bench-peers
bench-peers: DEB_PKGS := $(PEERS_DEB_PKGS)
bench-peers: all
	@$(DEPS_SH)
	@BUILD=$(BUILD) tests/peers/bench_peers.py
