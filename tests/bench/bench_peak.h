/* bench_peak.h — the machine's arithmetic peaks for pi0rt-bench (bench_peak.c). */
#ifndef PI0_TESTS_BENCH_PEAK_H
#define PI0_TESTS_BENCH_PEAK_H

/* Measures and prints (one JSON line each) the f32 FMA peak and, where the CPU has
 * AVX512_BF16, the vdpbf16ps peak, on the first `threads` allowed CPUs. Returns the f32
 * peak in GFLOP/s; *bf16_gflops is 0 when the CPU lacks the instruction. */
double pi0__bench_peaks(int threads, double *bf16_gflops);
/* One ~20 ms round of the f32 peak loop, not printed: benchmarks interleave rounds with
 * their runs and keep the best, so that peak and runs see the same machine load. */
double pi0__bench_f32_peak_round(int threads);

#endif
