/* shm_internal.h — helpers shared by the pi0rt-shm tool's files (not part of the library). */
#ifndef PI0_SHM_INTERNAL_H
#define PI0_SHM_INTERNAL_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/pi0_cli.h"

/* An option's value v (NULL: missing) as a number in [lo, hi] into *out. Else prints
 * "pi0rt-shm: [CMD: ]OPT: bad value ..." and returns -1. cmd may be NULL. */
static inline int shm__num_arg(const char *cmd, const char *opt, const char *v, double lo,
                               double hi, double *out) {
    int bad = !v;
    double d = v ? pi0__parse_num(v, lo, hi, &bad) : 0;
    if (bad) {
        fprintf(stderr, "pi0rt-shm: %s%s%s: bad value \"%s\" (want %g..%g)\n", cmd ? cmd : "",
                cmd ? ": " : "", opt, v ? v : "(missing)", lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

/* Sleeps until CLOCK_MONOTONIC time t (ns). A signal ends the sleep early only once *stop
 * is set (stop may be NULL: sleep through every signal). */
static inline void shm__sleep_until(int64_t t, const volatile sig_atomic_t *stop) {
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
           !(stop && *stop)) {
    }
}

/* `pi0rt-shm bench`: prints JSON lines; returns the exit status. fifo: run the publisher
 * and sleeping subscribers SCHED_FIFO when permitted. */
int shm__bench(int quick, int fifo);

/* record.c: `pi0rt-shm record` (also --recover), `play` and `info FILE.mcap`; each
 * takes the arguments after the command and returns the exit status. */
int shm__record_main(int argc, char **argv);
int shm__play_main(int argc, char **argv);
int shm__info_file(const char *path);
/* True if the argument names an MCAP file (".mcap" suffix or the MCAP magic). */
int shm__is_mcap_file(const char *arg);

#endif
