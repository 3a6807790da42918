# pipeline/module.mk — the π0 / π0.5 model on the device (vision, prefix, expert, the
# encode/denoise API in pi0_pipeline.h), pi0rt-infer, the numerics tests against the numpy
# reference (tests/ref/), `make run` and the model benchmark. Owned by the MODEL part of
# issue 4; the loader (pipeline/loader.mk) and tokenizer (pipeline/tokenizer.mk) come first.
MODEL_SRCS := pipeline/model/model.c pipeline/model/vision.c pipeline/model/prefix.c pipeline/model/expert.c
MODEL_OBJS := $(MODEL_SRCS:%.c=$(OBJ)/%.o)
PIPELINE_OBJS := $(MODEL_OBJS) $(LOADER_OBJS) $(TOKENIZER_OBJS)
PIPELINE_LIBS := $(LOADER_LIBS) $(DEVICE_LIBS) -lcjson -lm

ifneq ($(TOKENIZER_OBJS),)
$(OBJ)/pipeline/tools/infer.o: PI0_CFLAGS += -DPI0_HAVE_TOKENIZER
endif

BINS += $(BUILD)/pi0rt-infer
TEST_BINS += $(BUILD)/tests/test_pipeline_api
TEST_CMDS += $(BUILD)/tests/test_pipeline_api tests/test_pipeline.py
BENCH_CMDS += BUILD=$(BUILD) tests/bench/bench_model.py;
RUN_CMDS += BUILD=$(BUILD) pipeline/tools/run-demo.sh;

$(BUILD)/pi0rt-infer: $(OBJ)/pipeline/tools/infer.o $(PIPELINE_OBJS) $(DEVICE_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PIPELINE_LIBS)

$(BUILD)/tests/test_pipeline_api: $(OBJ)/tests/test_pipeline_api.o $(PIPELINE_OBJS) $(DEVICE_OBJS) $(COMMON_OBJS) | $(BUILD)/pi0rt-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS) $(PIPELINE_LIBS)
