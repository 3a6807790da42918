# shm/: shared-memory topics — the client library (static + shared), pi0rt-shm, tests, bench.
SHM_LIB_SRCS := shm/pi0_shm.c shm/pi0_shm_msg.c
SHM_LIB_OBJS := $(SHM_LIB_SRCS:%.c=$(OBJ)/%.o)
SHM_TOOL_OBJS := $(OBJ)/shm/pi0rt_shm.o $(OBJ)/shm/shm_bench.o

BINS       += $(BUILD)/pi0rt-shm
LIBS       += $(BUILD)/libpi0shm.a $(BUILD)/libpi0shm.so.1 $(BUILD)/libpi0shm.so
TEST_BINS  += $(BUILD)/tests/test_shm $(BUILD)/tests/shm/shm_peer
TEST_CMDS  += $(BUILD)/tests/test_shm tests/shm/tsan-suite
BENCH_CMDS += $(BUILD)/pi0rt-shm bench;
RUN_CMDS   += shm/demo.sh;

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
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_shm: $(OBJ)/tests/test_shm.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/shm/shm_peer: $(OBJ)/tests/shm/shm_peer.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
