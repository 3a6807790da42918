# tests/: checks of the tree itself (each a script ending in `N passed, N failed, N skipped`):
# formatting, the build's guards (OpenBLAS, user flags, rebuild on a flags change), public
# headers compiled in pairs as C11 and C++ (with the include flags below), the shared
# library's soname and exported symbols, and the device and pipeline API suites under
# ThreadSanitizer.
TEST_CMDS += tests/check-format tests/check-build tests/check-headers tests/check-exports \
             tests/tsan-suites
test: export PI0_INCLUDES := $(INCLUDES)
