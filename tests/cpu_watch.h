/* cpu_watch.h — where the threads of a process run (tests only): samples every thread's
 * run time (/proc/PID/task/TID/schedstat, nanoseconds; stat's utime + stime where
 * schedstat is missing), the CPU it last ran on (stat field 39) and its affinity mask
 * (sched_getaffinity), so a test can check that compute threads never touch a CPU they
 * were not given. */
#ifndef PI0_TEST_CPU_WATCH_H
#define PI0_TEST_CPU_WATCH_H

#include <dirent.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CW_MAX_THREADS 128

/* ThreadSanitizer runs a background thread of its own in every instrumented process, on
 * any CPU: the watch cannot tell it from a leak, so the tests skip in such builds. */
#if defined(__SANITIZE_THREAD__)
#define CW_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CW_TSAN 1
#endif
#endif
#ifndef CW_TSAN
#define CW_TSAN 0
#endif

typedef struct cw_thread {
    int tid;
    char name[16];
    uint64_t run0, run; /* ns on a CPU: when first sampled (0 if it started later), last */
    cpu_set_t mask;     /* affinity at the last sample */
    cpu_set_t ran_on;   /* CPUs it was seen on (stat's CPU, whenever its run time grew) */
    int samples;
} cw_thread;

typedef struct cpu_watch {
    int pid, n, rounds;
    cw_thread t[CW_MAX_THREADS];
} cpu_watch;

/* The two lowest CPUs this thread may run on (0 and -1 when there is only one). */
static inline int cw_two_cpus(int *a, int *b) {
    cpu_set_t set;
    *a = *b = -1;
    if (sched_getaffinity(0, sizeof set, &set)) return 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            if (*a < 0)
                *a = c;
            else if (*b < 0)
                *b = c;
        }
    return *b >= 0;
}

/* Run time in ns and last CPU of one thread; 0 on success. */
static inline int cw_read(int pid, int tid, uint64_t *run, int *cpu, char name[16]) {
    char p[96], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/task/%d/stat", pid, tid);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close) return -1;
    size_t len = (size_t)(close - open - 1) < 15 ? (size_t)(close - open - 1) : 15;
    memcpy(name, open + 1, len);
    name[len] = 0;
    /* fields after the name: 3 state ... 14 utime 15 stime ... 39 processor */
    unsigned long long v[40] = {0};
    char *s = close + 2;
    for (int i = 3; i <= 39 && *s; i++) {
        if (i == 3) {
            s += 2; /* the state letter */
            continue;
        }
        v[i] = strtoull(s, &s, 10);
        while (*s == ' ')
            s++;
    }
    *cpu = (int)v[39];
    snprintf(p, sizeof p, "/proc/%d/task/%d/schedstat", pid, tid);
    f = fopen(p, "r");
    unsigned long long ns = 0;
    if (f && fscanf(f, "%llu", &ns) == 1) {
        *run = ns;
    } else {
        long hz = sysconf(_SC_CLK_TCK);
        *run = (uint64_t)(v[14] + v[15]) * (uint64_t)(1000000000 / (hz > 0 ? hz : 100));
    }
    if (f) fclose(f);
    return 0;
}

static inline void cw_init(cpu_watch *w, int pid) {
    memset(w, 0, sizeof *w);
    w->pid = pid;
}

/* One sample of every thread of w->pid. */
static inline void cw_sample(cpu_watch *w) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/task", w->pid);
    DIR *d = opendir(p);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int tid = atoi(e->d_name);
        if (tid <= 0) continue;
        uint64_t run;
        int cpu;
        char name[16];
        if (cw_read(w->pid, tid, &run, &cpu, name)) continue; /* it just exited */
        cw_thread *t = NULL;
        for (int i = 0; i < w->n; i++)
            if (w->t[i].tid == tid) t = &w->t[i];
        if (!t) {
            if (w->n == CW_MAX_THREADS) continue;
            t = &w->t[w->n++];
            t->tid = tid;
            t->run0 = t->run = w->rounds ? 0 : run; /* a thread started later: all its time */
            CPU_ZERO(&t->ran_on);
        }
        snprintf(t->name, sizeof t->name, "%s", name);
        if (run > t->run && cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(cpu, &t->ran_on);
        t->run = run;
        cpu_set_t m;
        if (sched_getaffinity(tid, sizeof m, &m) == 0) t->mask = m;
        t->samples++;
    }
    closedir(d);
    w->rounds++;
}

/* ns a thread spent on a CPU between the first sample and the last */
static inline uint64_t cw_ran(const cw_thread *t) {
    return t->run - t->run0;
}

/* 1 when the thread's affinity is exactly {cpu} */
static inline int cw_pinned_to(const cw_thread *t, int cpu) {
    return CPU_COUNT(&t->mask) == 1 && CPU_ISSET(cpu, &t->mask);
}

#endif /* PI0_TEST_CPU_WATCH_H */
