# shm/: shared-memory topics — the client library (static + shared), pi0rt-shm, tests, bench.
SHM_LIB_SRCS := shm/pi0_shm.c shm/pi0_shm_msg.c
SHM_LIB_OBJS := $(SHM_LIB_SRCS:%.c=$(OBJ)/%.o)
SHM_TOOL_OBJS := $(OBJ)/shm/pi0rt_shm.o $(OBJ)/shm/shm_bench.o $(OBJ)/shm/record.o \
                 $(OBJ)/shm/mcap.o $(OBJ)/shm/ros2msg.o

BINS       += $(BUILD)/pi0rt-shm
LIBS       += $(BUILD)/libpi0shm.a $(BUILD)/libpi0shm.so.1 $(BUILD)/libpi0shm.so
TEST_BINS  += $(BUILD)/tests/test_shm $(BUILD)/tests/shm/shm_peer $(BUILD)/tests/test_mcap \
              $(BUILD)/tests/mcap_bench
TEST_CMDS  += $(BUILD)/tests/test_shm tests/shm/tsan-suite $(BUILD)/tests/test_mcap \
              tests/mcap/asan-suite
BENCH_CMDS += $(BUILD)/pi0rt-shm bench; $(BUILD)/tests/mcap_bench;

# The client library holds the topic code and the status functions (pi0_status.h) only.
$(BUILD)/libpi0shm.a: $(SHM_LIB_OBJS) $(OBJ)/common/pi0_status.o
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Shared: versioned soname (bump the 1 on an incompatible ABI change) and the link-time
# name as a symlink; only PI0_API symbols are exported (-fvisibility=hidden).
$(BUILD)/libpi0shm.so.1: $(SHM_LIB_OBJS) $(OBJ)/common/pi0_status.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libpi0shm.so.1 -o $@ $^ $(LDLIBS)

$(BUILD)/libpi0shm.so: $(BUILD)/libpi0shm.so.1
	ln -sf libpi0shm.so.1 $@

$(BUILD)/pi0rt-shm: $(SHM_TOOL_OBJS) $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -llz4 $(LDLIBS)

$(BUILD)/tests/test_shm: $(OBJ)/tests/test_shm.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/shm/shm_peer: $(OBJ)/tests/shm/shm_peer.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# MCAP record/play: the reference reader peers are npm packages, installed (test-only) into
# tests/mcap/node_modules by `make deps`; without them the peer tests SKIP.
MCAP_TEST_OBJS := $(OBJ)/tests/test_mcap.o $(OBJ)/shm/mcap.o $(OBJ)/shm/ros2msg.o

$(BUILD)/tests/test_mcap: $(MCAP_TEST_OBJS) $(BUILD)/libpi0shm.a | $(BUILD)/pi0rt-shm
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -llz4 $(LDLIBS)

$(BUILD)/tests/mcap_bench: $(OBJ)/tests/mcap/mcap_bench.o $(OBJ)/shm/mcap.o $(OBJ)/shm/ros2msg.o \
                           $(BUILD)/libpi0shm.a | $(BUILD)/pi0rt-shm
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -llz4 $(LDLIBS)

deps: tests/mcap/node_modules/.package-lock.json
tests/mcap/node_modules/.package-lock.json: tests/mcap/package-lock.json
	@npm ci --prefix tests/mcap --no-audit --no-fund --loglevel=error || \
	    echo "deps: npm install of the MCAP test peers failed; their tests will SKIP"

# Optional coverage-guided fuzzing of the MCAP reader (clang's libFuzzer + ASan), seeded
# with files the tests' writers produce. Not part of `make test`.
FUZZ_SECONDS ?= 60
.PHONY: fuzz-mcap
fuzz-mcap: $(BUILD)/pi0rt-shm
	@mkdir -p build/fuzz/corpus
	clang -std=c11 -g -O1 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address tests/mcap/fuzz_mcap.c \
	    shm/mcap.c shm/ros2msg.c shm/pi0_shm_msg.c $(COMMON_SRCS) -llz4 -o build/fuzz/mcap_fuzz
	node tests/mcap/check.mjs write-foreign build/fuzz/corpus/foreign.mcap
	build/fuzz/mcap_fuzz -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus
