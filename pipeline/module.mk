# pipeline/module.mk — the π0 / π0.5 model: checkpoint loading (checkpoint/), image
# preprocessing (preprocess/), the tokenizer (tokenizer/), the model on the device
# (model/: SigLIP, Gemma prefix, expert, the encode/denoise API of pi0_pipeline.h) and the
# command-line tools (tools/: pi0rt-infer, pi0rt-mkmodel, pi0rt-tokenize).
# A binary that uses a part links its *_OBJS plus $(COMMON_OBJS) and adds its *_LIBS.

# ---- checkpoint loading and preprocessing ----------------------------------------------
LOADER_SRCS := pipeline/checkpoint/safetensors.c pipeline/checkpoint/weights.c \
               pipeline/checkpoint/npy.c pipeline/preprocess/preprocess.c
LOADER_OBJS := $(LOADER_SRCS:%.c=$(OBJ)/%.o)
LOADER_LIBS := -lcjson -lm

# ---- tokenizer --------------------------------------------------------------------------
TOKENIZER_SRCS := pipeline/tokenizer/tokenizer.c pipeline/tokenizer/prompt.c
TOKENIZER_OBJS := $(TOKENIZER_SRCS:%.c=$(OBJ)/%.o)

# ---- model ------------------------------------------------------------------------------
MODEL_SRCS := pipeline/model/model.c pipeline/model/layers.c pipeline/model/gemma.c \
              pipeline/model/vision.c pipeline/model/prefix.c pipeline/model/expert.c
MODEL_OBJS := $(MODEL_SRCS:%.c=$(OBJ)/%.o)
PIPELINE_OBJS := $(MODEL_OBJS) $(LOADER_OBJS) $(TOKENIZER_OBJS)
PIPELINE_LIBS := $(LOADER_LIBS) $(DEVICE_LIBS) -lcjson -lm

# ---- tools ------------------------------------------------------------------------------
BINS += $(BUILD)/pi0rt-infer $(BUILD)/pi0rt-mkmodel $(BUILD)/pi0rt-tokenize
$(OBJ)/pipeline/tools/infer.o: PI0_CFLAGS += -DPI0_HAVE_TOKENIZER

$(BUILD)/pi0rt-infer: $(OBJ)/pipeline/tools/infer.o $(PIPELINE_OBJS) $(DEVICE_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PIPELINE_LIBS)

$(BUILD)/pi0rt-mkmodel: $(OBJ)/pipeline/tools/mkmodel.o $(LOADER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LOADER_LIBS)

$(BUILD)/pi0rt-tokenize: $(OBJ)/pipeline/tools/tokenize.o $(OBJ)/pipeline/checkpoint/npy.o $(TOKENIZER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- tests, benchmarks ------------------------------------------------------------------
TEST_BINS  += $(BUILD)/tests/test_loader $(BUILD)/tests/preprocess_tool $(BUILD)/tests/bench_loader \
              $(BUILD)/tests/test_tokenizer $(BUILD)/tests/test_pipeline_api
TEST_CMDS  += $(BUILD)/tests/test_loader tests/test_preprocess.py tests/loader/check_mkmodel.py \
              $(BUILD)/tests/test_tokenizer tests/tokenizer/ubsan-suite $(BUILD)/tests/test_pipeline_api \
              tests/test_pipeline.py
BENCH_CMDS += BUILD=$(BUILD) tests/loader/bench.sh; BUILD=$(BUILD) tests/tokenizer/bench.py; \
              BUILD=$(BUILD) tests/bench/bench_model.py;

# test_loader runs pi0rt-mkmodel (found next to it: ../pi0rt-mkmodel)
$(BUILD)/tests/test_loader: $(OBJ)/tests/test_loader.o $(LOADER_OBJS) $(COMMON_OBJS) | $(BUILD)/pi0rt-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS) $(LOADER_LIBS)

$(BUILD)/tests/preprocess_tool: $(OBJ)/tests/loader/preprocess_tool.o $(LOADER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LOADER_LIBS)

$(BUILD)/tests/bench_loader: $(OBJ)/tests/loader/bench_loader.o $(LOADER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LOADER_LIBS)

$(BUILD)/tests/test_tokenizer: $(OBJ)/tests/test_tokenizer.o $(TOKENIZER_OBJS) $(COMMON_OBJS) | $(BUILD)/pi0rt-tokenize
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)

$(BUILD)/tests/test_pipeline_api: $(OBJ)/tests/test_pipeline_api.o $(PIPELINE_OBJS) $(DEVICE_OBJS) $(COMMON_OBJS) | $(BUILD)/pi0rt-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS) $(PIPELINE_LIBS)
