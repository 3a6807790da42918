# device/: the accelerator interface (pi0_device.h) and its backends (cpu: OpenBLAS + our
# threads). DEVICE_OBJS is what a binary links to use the device; add DEVICE_LIBS to LDLIBS.
DEVICE_SRCS := device/device.c device/cpu/cpu_backend.c device/cpu/cpu_pool.c \
               device/cpu/cpu_kernels.c device/cpu/cpu_gemm.c
DEVICE_OBJS := $(DEVICE_SRCS:%.c=$(OBJ)/%.o)
DEVICE_LIBS := $(OPENBLAS_LIBS)

# the row loops are multiversioned (cpu_vec.h); -O3 lets GCC vectorize them, and
# -fno-trapping-math lets it turn the clamps and selects of exp (GELU, SiLU, softmax) into
# blends where there are no mask registers (AVX2): without it those loops stay scalar. The
# code never reads the floating-point exception flags.
$(OBJ)/device/cpu/cpu_kernels.o $(OBJ)/device/cpu/cpu_gemm.o: PI0_CFLAGS += -O3 -fno-trapping-math

# x86-64: an AVX-512 small-m bf16 GEMM, compiled for AVX-512 but only called when the CPU
# has it (runtime check in cpu_gemm.c), so the binary still runs on any x86-64
ifeq ($(shell uname -m),x86_64)
DEVICE_SRCS += device/cpu/cpu_gemm_avx512.c device/cpu/cpu_gemm_avx2.c device/cpu/cpu_gemm_packed.c \
               device/cpu/cpu_gemm_packed512.c
DEVICE_OBJS := $(DEVICE_SRCS:%.c=$(OBJ)/%.o)
$(OBJ)/device/cpu/cpu_gemm_avx512.o: PI0_CFLAGS += -O3 -mavx512f -mavx512bw -mavx512vl
$(OBJ)/device/cpu/cpu_gemm_packed512.o: PI0_CFLAGS += -O3 -mavx512f -mavx2 -mfma
$(OBJ)/device/cpu/cpu_gemm_avx2.o $(OBJ)/device/cpu/cpu_gemm_packed.o: PI0_CFLAGS += -O3 -mavx2 -mfma
$(OBJ)/device/cpu/cpu_gemm.o $(OBJ)/device/cpu/cpu_kernels.o $(OBJ)/device/cpu/cpu_backend.o: \
    PI0_CFLAGS += -DPI0_HAVE_AVX512_GEMM
endif

TEST_BINS += $(BUILD)/tests/test_device
TEST_CMDS += $(BUILD)/tests/test_device
BINS += $(BUILD)/pi0rt-bench
BENCH_CMDS += $(BUILD)/pi0rt-bench kernels;

$(BUILD)/tests/test_device: $(OBJ)/tests/test_device.o $(DEVICE_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(DEVICE_LIBS)

$(BUILD)/pi0rt-bench: $(OBJ)/tests/bench/bench_kernels.o $(OBJ)/tests/bench/bench_peak.o \
                     $(DEVICE_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(DEVICE_LIBS)
