# pipeline/loader.mk — checkpoint loading (safetensors, config, weights table), .npy I/O,
# image preprocessing, pi0rt-mkmodel, and their tests. LOADER part of issue 4.
# Users link $(LOADER_OBJS) $(COMMON_OBJS) ... $(LOADER_LIBS).
LOADER_SRCS := pipeline/checkpoint/safetensors.c pipeline/checkpoint/weights.c pipeline/checkpoint/npy.c \
               pipeline/preprocess/preprocess.c
LOADER_OBJS := $(LOADER_SRCS:%.c=$(OBJ)/%.o)
LOADER_LIBS := -lcjson -lm

BINS      += $(BUILD)/pi0rt-mkmodel
TEST_BINS += $(BUILD)/tests/test_loader $(BUILD)/tests/preprocess_tool
TEST_CMDS += $(BUILD)/tests/test_loader tests/test_preprocess.py

$(BUILD)/pi0rt-mkmodel: $(OBJ)/pipeline/tools/mkmodel.o $(LOADER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LOADER_LIBS)

# test_loader runs pi0rt-mkmodel (found next to it: ../pi0rt-mkmodel)
$(BUILD)/tests/test_loader: $(OBJ)/tests/test_loader.o $(LOADER_OBJS) $(COMMON_OBJS) | $(BUILD)/pi0rt-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LOADER_LIBS)

$(BUILD)/tests/preprocess_tool: $(OBJ)/tests/loader/preprocess_tool.o $(LOADER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LOADER_LIBS)

TEST_BINS  += $(BUILD)/tests/bench_loader
TEST_CMDS  += tests/loader/check_mkmodel.py
BENCH_CMDS += BUILD=$(BUILD) tests/loader/bench.sh;

$(BUILD)/tests/bench_loader: $(OBJ)/tests/loader/bench_loader.o $(LOADER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LOADER_LIBS)
