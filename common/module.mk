# common/: the project-wide status type, error details, dtypes and whole-file reads, linked
# into every binary.
COMMON_SRCS := common/pi0_status.c common/pi0_dtype.c common/pi0_file.c
COMMON_OBJS := $(COMMON_SRCS:%.c=$(OBJ)/%.o)

TEST_BINS += $(BUILD)/tests/test_common
TEST_CMDS += $(BUILD)/tests/test_common

$(BUILD)/tests/test_common: $(OBJ)/tests/test_common.o $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
