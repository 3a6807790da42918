/* pi0_time.h — the project's clock: CLOCK_MONOTONIC, the clock of every shm stamp, stage
 * timing and wait deadline (one clock in every process, so stamps compare across them). */
#ifndef PI0_TIME_H
#define PI0_TIME_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. Never fails on Linux; async-signal-safe. */
static inline int64_t pi0__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* The same clock in seconds, for durations measured by tools and tests. */
static inline double pi0__now_s(void) {
    return (double)pi0__now_ns() * 1e-9;
}

#endif /* PI0_TIME_H */
