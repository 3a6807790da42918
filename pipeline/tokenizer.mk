# pipeline/tokenizer.mk — SentencePiece tokenizer and π0 / π0.5 prompts (pipeline/pi0_tokenizer.h).
# TOKENIZER_OBJS is what another binary links to use the tokenizer (plus $(COMMON_OBJS)).
TOKENIZER_SRCS := pipeline/tokenizer/tokenizer.c pipeline/tokenizer/prompt.c
TOKENIZER_OBJS := $(TOKENIZER_SRCS:%.c=$(OBJ)/%.o)

BINS       += $(BUILD)/pi0rt-tokenize
TEST_BINS  += $(BUILD)/tests/test_tokenizer
TEST_CMDS  += $(BUILD)/tests/test_tokenizer
BENCH_CMDS += BUILD=$(BUILD) tests/tokenizer/bench.py;

$(BUILD)/pi0rt-tokenize: $(OBJ)/pipeline/tools/tokenize.o $(OBJ)/pipeline/checkpoint/npy.o $(TOKENIZER_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_tokenizer: $(OBJ)/tests/test_tokenizer.o $(TOKENIZER_OBJS) $(COMMON_OBJS) | $(BUILD)/pi0rt-tokenize
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)
