# calib/: robot files (INI) and the robot-side transforms — the library the node links
# (static), pi0rt-calib, tests, bench.
CALIB_LIB_OBJS := $(OBJ)/calib/pi0_calib.o
CALIB_LDLIBS   := -linih

BINS       += $(BUILD)/pi0rt-calib
LIBS       += $(BUILD)/libpi0calib.a
TEST_BINS  += $(BUILD)/tests/test_calib $(BUILD)/tests/calib_bench
TEST_CMDS  += $(BUILD)/tests/test_calib tests/calib/asan-suite
BENCH_CMDS += $(BUILD)/tests/calib_bench;

$(BUILD)/libpi0calib.a: $(CALIB_LIB_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/pi0rt-calib: $(OBJ)/calib/pi0rt_calib.o $(BUILD)/libpi0calib.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CALIB_LDLIBS) $(LDLIBS)

$(BUILD)/tests/test_calib: $(OBJ)/tests/test_calib.o $(BUILD)/libpi0calib.a | $(BUILD)/pi0rt-calib
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CALIB_LDLIBS) $(LDLIBS)

$(BUILD)/tests/calib_bench: $(OBJ)/tests/calib/calib_bench.o $(BUILD)/libpi0calib.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CALIB_LDLIBS) $(LDLIBS)

# The transforms are compared with numpy to 1e-6: no fused multiply-adds, so the C code
# rounds exactly as written on every target.
$(OBJ)/calib/pi0_calib.o: PI0_CFLAGS += -ffp-contract=off

# libFuzzer target (clang only, not part of `make`/`make test`, which run a deterministic
# mutation loop instead): `make fuzz-calib [FUZZ_SECONDS=60]`.
FUZZ_SECONDS ?= 60
.PHONY: fuzz-calib
build/fuzz/calib_fuzz: tests/calib/fuzz_calib.c calib/pi0_calib.c $(COMMON_SRCS)
	@mkdir -p $(dir $@)
	clang -std=c11 -g -O1 -D_GNU_SOURCE -ffp-contract=off -fsanitize=fuzzer,address,undefined \
	    -I. -o $@ $^ -linih -lm -pthread
fuzz-calib: build/fuzz/calib_fuzz
	@mkdir -p build/fuzz/corpus && cp calib/robots/*.ini build/fuzz/corpus/
	build/fuzz/calib_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build/fuzz/corpus
