# node/: pi0rt-node — config, control loop, scheduler, stages, status (see node/node.h),
# its tests (table tests of the pure functions, closed-loop and fault tests with peer
# processes, a ThreadSanitizer run) and benchmarks.
# the node links the calib library; without it (calib/module.mk absent) nothing here builds
ifneq ($(CALIB_LIB_OBJS),)
NODE_SRCS := node/config.c node/sched.c node/stages.c node/control.c node/main.c
NODE_OBJS := $(NODE_SRCS:%.c=$(OBJ)/%.o)
NODE_LIBS := $(BUILD)/libpi0calib.a $(BUILD)/libpi0shm.a
NODE_LDLIBS := $(PIPELINE_LIBS) -linih

BINS      += $(BUILD)/pi0rt-node
TEST_BINS += $(BUILD)/tests/test_node $(BUILD)/tests/node/node_peer $(BUILD)/tests/node/node_bench
TEST_CMDS += $(BUILD)/tests/test_node tests/node/tsan-suite
BENCH_CMDS += BUILD=$(BUILD) tests/node/bench.sh;

$(BUILD)/pi0rt-node: $(NODE_OBJS) $(PIPELINE_OBJS) $(DEVICE_OBJS) $(COMMON_OBJS) $(NODE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(NODE_LDLIBS)

# objects before the archives (which carry their own copy of common/)
# the table tests link the pure scheduling functions directly
$(BUILD)/tests/test_node: $(OBJ)/tests/test_node.o $(OBJ)/node/sched.o $(OBJ)/pipeline/preprocess/preprocess.o $(OBJ)/pipeline/checkpoint/npy.o $(COMMON_OBJS) $(BUILD)/libpi0shm.a | $(BUILD)/pi0rt-node $(BUILD)/tests/node/node_peer $(BUILD)/pi0rt-infer $(BUILD)/pi0rt-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

$(BUILD)/tests/node/node_peer: $(OBJ)/tests/node/node_peer.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/node/node_bench: $(OBJ)/tests/node/node_bench.o $(OBJ)/node/sched.o $(PIPELINE_OBJS) $(DEVICE_OBJS) $(COMMON_OBJS) $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PIPELINE_LIBS)
endif
