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
#   CFLAGS=, OPT=     appended to / replacing -O2 in the project's flags

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?=
# The project's flags; the user's CFLAGS / CPPFLAGS come last (`make CFLAGS=-O3` overrides
# -O2 and keeps -std, -I and -pthread). Modules add per-target flags to PI0_CFLAGS.
INCLUDES   := -I.
PI0_CFLAGS := -std=c11 $(OPT) -g -D_GNU_SOURCE -fPIC -pthread -fvisibility=hidden \
              -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wno-unused-parameter -Werror=implicit-function-declaration -Werror=int-conversion \
              $(INCLUDES)
LDLIBS  := -lm -lrt -pthread
ifneq ($(CI),)
PI0_CFLAGS += -Werror
endif

BUILD := build
ifneq ($(SANITIZE),)
BUILD   := build/$(SANITIZE)
PI0_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=$(SANITIZE)
endif
# -fsanitize=undefined leaves out float-to-int overflow; any report ends the program
ifeq ($(SANITIZE),undefined)
PI0_CFLAGS += -fsanitize=float-cast-overflow -fno-sanitize-recover=all
LDFLAGS += -fsanitize=float-cast-overflow
endif
OBJ := $(BUILD)/obj

# Debian packages the build, the tests and the benchmarks need. `make deps` installs the
# missing ones; every goal that builds does the same first (below), so a fresh machine
# just works.
DEB_PKGS := gcc g++ make pkg-config libopenblas-dev libinih-dev libcjson-dev liblz4-dev \
            python3 python3-numpy python3-pil sentencepiece clang-format nodejs \
            systemtap-sdt-dev
DEPS_SH = missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
	    echo "deps: installing" $$missing; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Goals that build install what is missing before anything reads pkg-config, so the
# OpenBLAS check below sees the result (output goes to the terminal).
BUILD_GOALS := $(filter-out deps clean format,$(or $(MAKECMDGOALS),all))
ifneq ($(BUILD_GOALS),)
ifeq ($(MAKELEVEL),0)
$(shell $(DEPS_SH) >&2)
endif
# OpenBLAS's own flags. Debian's reference libblas-dev also provides a <cblas.h> (the
# default one until libopenblas-dev is installed) that lacks the openblas_* functions;
# the pkg-config include directory comes first so the OpenBLAS header is the one found,
# and the cpu backend refuses to compile against any other.
OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null || echo none)
ifeq ($(OPENBLAS_CFLAGS),none)
$(error pkg-config finds no openblas: install libopenblas-dev (and pkg-config), e.g. `make deps`)
endif
OPENBLAS_LIBS := $(shell pkg-config --libs openblas)
endif
PI0_CFLAGS += $(OPENBLAS_CFLAGS)

FINAL_CFLAGS = $(PI0_CFLAGS) $(CPPFLAGS) $(CFLAGS)

# Objects depend on the effective flags: $(BUILD)/flags is rewritten when they change
# (CFLAGS, OPT, CI, SANITIZE, compiler, OpenBLAS), so such a change rebuilds everything.
ifneq ($(BUILD_GOALS),)
FLAGS_NOW := $(CC) $(FINAL_CFLAGS) | $(LDFLAGS) $(LDLIBS) $(OPENBLAS_LIBS)
ifneq ($(FLAGS_NOW),$(file <$(BUILD)/flags))
$(shell mkdir -p $(BUILD))
$(file >$(BUILD)/flags,$(FLAGS_NOW))
endif
endif

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

$(OBJ)/%.o: %.c $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(FINAL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/flags: ;

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
	@$(DEPS_SH)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
