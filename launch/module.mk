# launch/: pi0rt-launch (start, supervise and stop the processes of a launch file), the
# simulated camera and arm (pi0rt-camsim, pi0rt-motorsim), their tests, `make run`.
BINS      += $(BUILD)/pi0rt-launch
TEST_BINS += $(BUILD)/tests/test_launch $(BUILD)/tests/launch/launch_peer
TEST_CMDS += $(BUILD)/tests/test_launch

$(BUILD)/pi0rt-launch: $(OBJ)/launch/launch.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -linih $(LDLIBS)

$(BUILD)/tests/launch/launch_peer: $(OBJ)/tests/launch/launch_peer.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_launch: $(OBJ)/tests/test_launch.o $(BUILD)/libpi0shm.a | $(BUILD)/pi0rt-launch $(BUILD)/tests/launch/launch_peer
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

BINS      += $(BUILD)/pi0rt-camsim $(BUILD)/pi0rt-motorsim
TEST_BINS += $(BUILD)/tests/test_sims
TEST_CMDS += $(BUILD)/tests/test_sims

$(BUILD)/pi0rt-camsim: $(OBJ)/launch/camsim.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/pi0rt-motorsim: $(OBJ)/launch/motorsim.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_sims: $(OBJ)/tests/test_sims.o $(BUILD)/libpi0shm.a | $(BUILD)/pi0rt-camsim $(BUILD)/pi0rt-motorsim
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The Python client (shm/python/pi0shm.py) is tested against the C library and a C peer.
TEST_BINS += $(BUILD)/tests/shm/py_peer
TEST_CMDS += tests/test_shm_python.py

$(BUILD)/tests/shm/py_peer: $(OBJ)/tests/shm/py_peer.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

BINS += $(BUILD)/pi0rt-status

$(BUILD)/pi0rt-status: $(OBJ)/launch/status.o $(BUILD)/libpi0shm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# `make run` is the whole system (launch/demo.ini); the earlier piecewise demos
# (shm/demo.sh, pipeline/tools/run-demo.sh) stay runnable by hand.
DURATION ?= 20
RUN_CMDS += BUILD=$(BUILD) DURATION=$(DURATION) launch/run-demo.sh;

# the whole system through the launcher (needs pi0rt-node; SKIPs without it)
TEST_BINS += $(BUILD)/tests/test_launch_demo
TEST_CMDS += $(BUILD)/tests/test_launch_demo

$(BUILD)/tests/test_launch_demo: $(OBJ)/tests/test_launch_demo.o $(BUILD)/libpi0shm.a | $(BUILD)/pi0rt-launch $(BUILD)/pi0rt-camsim $(BUILD)/pi0rt-motorsim $(BUILD)/pi0rt-status $(BUILD)/pi0rt-mkmodel
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
