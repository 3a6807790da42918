/* node.h — pi0rt-node's internal interface: configuration, the pure scheduling and merge
 * functions, the latency histogram, the chunk hand-over and the shared run state.
 *
 * Files: config.c (INI + --set + --check), sched.c (pure functions: rows due, trigger,
 * merge, histogram), stages.c (stage A encode / stage B denoise threads), control.c (the
 * fixed-rate loop, holds, the monitor/status thread), main.c (start-up, signals, summary).
 * Nothing here is public: the node is an executable, not a library. */
#ifndef PI0_NODE_H
#define PI0_NODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "calib/pi0_calib.h"
#include "common/pi0_status.h"
#include "common/pi0_time.h"
#include "pipeline/pi0_pipeline.h"
#include "shm/pi0_shm.h"

/* USDT probes (provider sdt_pi0rt in perf): compiled to nothing without <sys/sdt.h>. */
#if defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define PI0_PROBE0(name)          DTRACE_PROBE(pi0rt, name)
#define PI0_PROBE1(name, a)       DTRACE_PROBE1(pi0rt, name, a)
#define PI0_PROBE2(name, a, b)    DTRACE_PROBE2(pi0rt, name, a, b)
#define PI0_PROBE3(name, a, b, c) DTRACE_PROBE3(pi0rt, name, a, b, c)
#define PI0_NODE_HAVE_SDT         1
#endif
#endif
#ifndef PI0_NODE_HAVE_SDT
#define PI0_PROBE0(name)          ((void)0)
#define PI0_PROBE1(name, a)       ((void)(a))
#define PI0_PROBE2(name, a, b)    ((void)(a), (void)(b))
#define PI0_PROBE3(name, a, b, c) ((void)(a), (void)(b), (void)(c))
#define PI0_NODE_HAVE_SDT         0
#endif

#define NODE_PATH_MAX   4096
#define NODE_TOKENS_MAX 256
#define NODE_CPUS_MAX   64

// ---- configuration (config.c) ----------------------------------------------------

enum node_trigger { NODE_TRIGGER_LATENCY = 0, NODE_TRIGGER_EVERY = 1 };
enum node_merge { NODE_MERGE_REPLACE = 0, NODE_MERGE_BLEND = 1, NODE_MERGE_WEIGHTED = 2 };
enum node_hold_value { NODE_HOLD_LAST = 0, NODE_HOLD_MEASURED = 1 };

typedef struct node_config {
    char path[NODE_PATH_MAX]; /* the INI file (relative paths inside it are resolved
                                 against its directory) */
    /* [node] */
    double control_hz;             /* control_hz: 1 .. 5000 */
    int control_cpu;               /* control_cpu: -1 = not pinned */
    int infer_cpus[NODE_CPUS_MAX]; /* infer_cpus: "0,1" (empty = current affinity) */
    int n_infer_cpus;
    int rt_priority;                           /* rt_priority: SCHED_FIFO priority, 0 = none */
    int lock_memory;                           /* lock_memory: mlockall when permitted */
    double status_hz;                          /* status_hz: 0.1 .. 100 */
    char status_topic[PI0_TOPIC_NAME_MAX + 1]; /* status_topic */
    double start_timeout_s;                    /* start_timeout: wait for input topics (s) */
    /* [model] */
    char model_dir[NODE_PATH_MAX];   /* dir */
    char backend[32];                /* backend */
    int threads;                     /* threads: 0 = backend default */
    int precision;                   /* precision: 0 f32, 1 bf16 (pi0_precision) */
    int num_steps;                   /* num_steps: 0 = config.json */
    uint64_t seed;                   /* seed */
    char prompt[1024];               /* prompt (with tokenizer) */
    char tokenizer[NODE_PATH_MAX];   /* tokenizer */
    int32_t tokens[NODE_TOKENS_MAX]; /* tokens: comma-separated ids */
    int n_tokens;                    /* -1 = not given */
    int pipelined;                   /* pipelined: on/off */
    int warmup;                      /* warmup: one inference at start (own noise) */
    /* [robot] */
    char calib[NODE_PATH_MAX];
    char joints_topic[PI0_TOPIC_NAME_MAX + 1];
    char action_topic[PI0_TOPIC_NAME_MAX + 1];
    char chunk_topic[PI0_TOPIC_NAME_MAX + 1];
    /* [schedule] */
    int trigger;             /* trigger: latency | every */
    int every_ticks;         /* every: ticks between triggers (trigger = every) */
    int margin_ticks;        /* margin: ticks added to the measured p99 latency */
    double latency_guess_ms; /* latency_guess_ms: assumed latency before any was measured */
    int merge;               /* merge: replace | blend | weighted */
    int blend_ticks;         /* blend_ticks: cross-fade length (merge = blend) */
    double weight_old; /* weight_old: old chunk's weight on the overlap (merge = weighted) */
    /* [safety] */
    double camera_max_age_ms; /* camera_max_age_ms */
    double joints_max_age_ms; /* joints_max_age_ms */
    int hold_value;           /* hold: last | measured */
} node_config;

/* Defaults, then the file, then each "section.key=value" override in sets[]; validates.
 * Errors: `file:line: key: reason` (overrides: `--set section.key: reason`) in
 * pi0_last_error(), PI0_ECONFIG / PI0_ENOENT. */
int node_config_load(node_config *cfg, const char *path, const char *const *sets, int n_sets);
/* Prints the resolved configuration as INI. */
void node_config_print(const node_config *cfg, FILE *f);

// ---- pure scheduling functions (sched.c) ------------------------------------------

/* Row of a chunk observed at tick k0 due at tick k: k - k0, or -1 when k is before k0 or
 * past the horizon. */
int node_row_due(uint64_t k0, int horizon, uint64_t k);

/* Ticks a chunk needs to arrive: ceil(latency / period) + margin. */
int node_ticks_needed(uint64_t latency_ns, uint64_t period_ns, int margin);

/* Whether to trigger an observation at tick k.
 *   covered_until: first tick no issued chunk (active or in flight) covers
 *   last_trigger:  tick of the previous trigger (UINT64_MAX = none yet)
 *   free:          the pipeline can take an observation now
 * latency mode: when covered_until - k <= need_ticks; every mode: every `every` ticks
 * (or the first free tick after that). Nothing is triggered while !free. */
int node_should_trigger(int mode, uint64_t k, uint64_t covered_until, int need_ticks,
                        uint64_t last_trigger, int every, int free);

/* Value of one action dim at a tick where the new chunk covers it and `old` is the older
 * chunk's row at that tick (has_old = 0: the old chunk has no row there). j = ticks since
 * the new chunk took over (0 at its first tick).
 *   replace:  new
 *   blend:    old + (new - old) * w, w = (j + 1) / blend_ticks (1 from j >= blend_ticks - 1)
 *   weighted: weight_old * old + (1 - weight_old) * new (lerobot's async default 0.3/0.7)
 * Writes dim values to out. */
void node_merge(int policy, int blend_ticks, double weight_old, const float *old, int has_old,
                const float *new_row, int dim, uint64_t j, float *out);

/* Cross-fade length the blend uses for a new chunk that took over at tick `land` from an old
 * chunk whose rows end before tick old_end: blend_ticks, shortened to the overlap
 * (old_end - land) so the fade is complete before the old chunk runs out (else the value
 * jumps to the new chunk's when it does). */
int node_blend_ticks(int blend_ticks, uint64_t land, uint64_t old_end);

/* Fixed-size latency histogram (no allocation): 1 µs buckets below 1 ms, then
 * log-spaced (64 per octave, 1.1 % wide) up to ~130 s. Single writer; readers may see a
 * slightly inconsistent snapshot (counts are relaxed atomics). */
#define NODE_HIST_LINEAR  1000
#define NODE_HIST_LOG     (64 * 17)
#define NODE_HIST_BUCKETS (NODE_HIST_LINEAR + NODE_HIST_LOG)
typedef struct node_hist {
    _Atomic uint64_t count, sum_ns, min_ns, max_ns;
    _Atomic uint32_t bucket[NODE_HIST_BUCKETS];
} node_hist;
void node_hist_init(node_hist *h);
void node_hist_add(node_hist *h, uint64_t ns);
/* Value (ns) at quantile q in [0, 1]: the upper edge of the bucket it falls in, capped at
 * the maximum seen; 0 when empty. */
uint64_t node_hist_quantile(const node_hist *h, double q);

// ---- chunk hand-over (stage B -> control thread) ----------------------------------

/* A chunk in robot units as the control thread uses it. */
typedef struct node_chunk {
    uint64_t seq;     /* chunk counter (1, 2, ...) */
    uint64_t k0;      /* control tick of the observation: row 0 is due then */
    uint64_t k_taken; /* control tick when stage A took the observation */
    int horizon, dim; /* rows, robot action dims */
    float a[PI0_CHUNK_HORIZON_MAX * PI0_CHUNK_DIM_MAX]; /* [horizon][dim] */
} node_chunk;

/* Four buffers: the writer fills one, one sits in the mailbox, the reader holds the
 * active and the previous chunk. Indices move only by atomic exchange, so neither side
 * ever waits; a chunk the reader did not take before the next one is superseded. */
#define NODE_MAILBOX_NEW 4u
typedef struct node_handover {
    node_chunk buf[4];
    _Atomic uint32_t mailbox; /* buffer index | NODE_MAILBOX_NEW when unread */
    uint32_t w;               /* writer's buffer (stage B only) */
    uint32_t cur, prev;       /* reader's buffers (control thread only) */
} node_handover;
void node_handover_init(node_handover *h);
/* Writer: the buffer to fill, then publish it. */
static inline node_chunk *node_handover_begin(node_handover *h) {
    return &h->buf[h->w];
}
static inline void node_handover_publish(node_handover *h) {
    /* acq_rel: release makes the filled buffer visible with the index; acquire takes the
     * returned buffer only after the reader stopped using it */
    h->w =
        atomic_exchange_explicit(&h->mailbox, h->w | NODE_MAILBOX_NEW, memory_order_acq_rel) &
        3u;
}
/* Reader: 1 if a new chunk became the active one (the old active one becomes prev). */
static inline int node_handover_take(node_handover *h) {
    if (!(atomic_load_explicit(&h->mailbox, memory_order_relaxed) & NODE_MAILBOX_NEW)) return 0;
    uint32_t got = atomic_exchange_explicit(&h->mailbox, h->prev, memory_order_acq_rel);
    h->prev = h->cur;
    h->cur = got & 3u;
    return 1;
}

// ---- run state shared by the threads ----------------------------------------------

/* One observation travelling from stage A to stage B. */
typedef struct node_obs {
    pi0_prefix *prefix;
    uint64_t k0;                          /* control tick of the observation */
    uint64_t k_taken;                     /* tick when stage A took it */
    uint64_t trigger_ns;                  /* when the scheduler asked for it */
    uint64_t obs_ns;                      /* joint state stamp (the observation time) */
    uint64_t joint_age_ns, camera_age_ns; /* ages when taken (oldest camera) */
    double state[PI0_CALIB_DIM_MAX];      /* model-space state (calib state_in) */
    float nstate[PI0_CALIB_DIM_MAX];      /* normalized, zero-padded */
    uint32_t preprocess_us, encode_us;
    uint64_t encode_end_ns;
} node_obs;

/* A tiny futex-backed event: post() increments and wakes only when someone sleeps. */
typedef struct node_event {
    _Atomic uint32_t seq;
    _Atomic uint32_t sleepers;
} node_event;
void node_event_post(node_event *e);
/* Waits until seq differs from `seen` or timeout_ns passes; returns the current seq. */
uint32_t node_event_wait(node_event *e, uint32_t seen, int64_t timeout_ns);

enum { NODE_STAGE_A = 0, NODE_STAGE_B = 1 };

typedef struct node {
    node_config cfg;
    pi0_calib *calib;
    pi0_model *model;
    pi0_model_info info;
    void *tokenizer; /* pi0_tokenizer (prompt mode) or NULL */
    int n_cams;
    int cam_slot[PI0_MAX_CAMERAS]; /* model slot of camera i */
    int state_dim, raw_dim, out_dim, action_dim;
    uint64_t period_ns;
    uint64_t t_start_ns; /* due time of tick 0 */

    /* topics: stage A's and the control thread's own subscribers (one thread each) */
    pi0_sub *cam_sub_a[PI0_MAX_CAMERAS], *cam_sub_c[PI0_MAX_CAMERAS];
    pi0_sub *cam_sub_m[PI0_MAX_CAMERAS]; /* monitor thread (liveness) */
    pi0_sub *joint_sub_a, *joint_sub_c, *joint_sub_m;
    pi0_pub *action_pub, *chunk_pub, *status_pub;

    /* scheduler <-> stages */
    node_event trigger_ev;            /* control -> stage A */
    _Atomic uint32_t trigger_pending; /* 1 while stage A has not taken it */
    _Atomic int inflight;             /* observations in stage A or B */
    _Atomic int a_busy;
    node_event b_ev; /* stage A -> stage B */
    node_obs q[2];   /* A -> B queue (two prefix slots) */
    _Atomic uint32_t q_head, q_tail;
    node_event b_free_ev; /* stage B released a slot */
    node_handover hand;
    _Atomic uint32_t nonfinite_flag; /* the newest chunk was dropped as non-finite */

    /* monitor -> control: publishers found dead (bit i = camera i, bit 8 = joints) */
    _Atomic uint32_t dead_mask;

    /* statistics (control thread writes ticks; stages write theirs) */
    node_hist tick_late; /* wake-up lateness of the control tick */
    node_hist infer_lat; /* observation taken -> chunk published */
    node_hist sched_lat; /* due time of row 0 -> chunk published (what triggers need) */
    node_hist encode_lat, denoise_lat;
    node_hist cam_age, joint_age; /* input ages when an observation was taken */
    node_hist delay_ticks;  /* d: ticks from row 0's due time to the tick the chunk landed */
    _Atomic int need_ticks; /* ticks a chunk needs (p99 of sched_lat + margin), monitor */
    _Atomic uint64_t ticks, missed, chunks, dropped, holds, triggers, skipped_obs;
    _Atomic uint64_t hold_ticks_by[8]; /* per enum pi0_hold_reason bit */
    _Atomic uint32_t hold_reason;      /* current */
    _Atomic uint32_t stale_cams;       /* current: bit i = camera i stale */
    _Atomic uint64_t hold_since_ns;    /* start of the current hold, 0 = none */
    _Atomic uint32_t state;            /* enum pi0_node_state */
    _Atomic int32_t last_error;        /* first-seen code of the latest stage error */
    _Atomic int32_t recent_error;      /* a stage failed since the last good chunk (0 = none) */
    _Atomic int stop;
    _Atomic int err_claimed; /* stage_err written (by the first stage error) */
    char stage_err[256];
} node;

/* stages.c */
int node_stages_start(node *n, pthread_t th[2]);
void node_stages_join(node *n, pthread_t th[2]);
/* One warm-up encode + denoise with zero noise (does not draw from the generator). */
int node_warmup(node *n);

/* control.c */
void *node_control_main(void *arg);
void *node_monitor_main(void *arg);
void node_print_summary(node *n, FILE *f);
/* Hold reason bits in words ("camera base stale, ...") into buf. */
void node_hold_text(const node *n, uint32_t reason, uint32_t dead_mask, uint32_t stale_cams,
                    char *buf, size_t cap);

/* The project clock (CLOCK_MONOTONIC) as the unsigned ns the node computes with. */
static inline uint64_t node_now_ns(void) {
    return (uint64_t)pi0__now_ns();
}
/* First tick whose due time is >= t (t before tick 0: 0). */
uint64_t node_tick_at(const node *n, uint64_t t_ns);

#endif /* PI0_NODE_H */
