# pi0rt — plain Makefile. Each module adds its sources, binaries, tests and benchmarks in
# its own fragment (<module>/module.mk); this file holds the flags and the shared rules.
#
#   make              build everything into build/
#   make test         install missing Debian packages, build, run every test suite
#   make bench        run the benchmarks (one JSON object per result line)
#   make run          the main job (see README.md)
#   make deps         install the Debian -dev packages the project needs (apt-get)
#   SANITIZE=address|thread|undefined   build into build/<sanitizer>/ with that sanitizer
#   CI=1              adds -Werror

CC      ?= cc
OPT     ?= -O2
CFLAGS  := -std=c11 $(OPT) -g -D_GNU_SOURCE -fPIC -pthread \
           -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -I.
LDLIBS  := -lm -lrt -pthread
ifneq ($(CI),)
CFLAGS  += -Werror
endif

BUILD := build
ifneq ($(SANITIZE),)
BUILD   := build/$(SANITIZE)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=$(SANITIZE)
endif
# -fsanitize=undefined leaves out float-to-int overflow; any report ends the program
ifeq ($(SANITIZE),undefined)
CFLAGS  += -fsanitize=float-cast-overflow -fno-sanitize-recover=all
LDFLAGS += -fsanitize=float-cast-overflow
endif
OBJ := $(BUILD)/obj

# Debian packages the build, the tests and the benchmarks need. `make deps` installs the
# missing ones; it is a prerequisite of `test` and `run` so a fresh machine just works.
DEB_PKGS := gcc make pkg-config libopenblas-dev libinih-dev libcjson-dev liblz4-dev \
            python3 python3-numpy python3-pil sentencepiece nodejs \
            systemtap-sdt-dev

BINS       :=   # build/pi0rt-* executables (modules append)
LIBS       :=   # static / shared libraries (modules append)
TEST_BINS  :=   # test executables (modules append)
TEST_CMDS  :=   # commands `make test` runs, one per suite (modules append)
BENCH_CMDS :=   # shell commands `make bench` runs, each ending in ";" (modules append)
RUN_CMDS   :=   # shell commands `make run` runs, each ending in ";" (modules append)

.PHONY: all test bench run deps clean format
all:

include common/module.mk
-include shm/module.mk device/module.mk pipeline/module.mk calib/module.mk \
         node/module.mk launch/module.mk tests/module.mk

# include rules between modules (the layering table in README.md) and other source rules
TEST_CMDS += tests/check-source
# every pi0rt-* tool: --help, usage errors exit 2, failures exit 1 (common/pi0_cli.h)
TEST_CMDS += tests/test_cli.py

all: $(BINS) $(LIBS) $(TEST_BINS)

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

# Every suite runs even when an earlier one fails; tests/run-suites sums their closing
# `N passed, N failed` lines into one and fails if any suite failed or crashed.
test: deps all
	@BUILD=$(BUILD) tests/run-suites $(TEST_CMDS)

bench: deps all
	@set -e; $(BENCH_CMDS)

run: deps all
	@set -e; $(RUN_CMDS)

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing $$missing"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
