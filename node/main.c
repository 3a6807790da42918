/* main.c — pi0rt-node: start-up (config, calib, model, topics), the threads, signals and
 * the exit summary. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/pi0_cli.h"
#include "node.h"
#include "pipeline/pi0_tokenizer.h"

#define MAX_SETS 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: pi0rt-node --config NODE.ini [--set section.key=value]... [--duration S]\n"
            "                  [--check]\n"
            "Runs π0 / π0.5 next to a robot: reads camera frames and joint state from shm\n"
            "topics, publishes action chunks and, at [node] control_hz, the action due now.\n"
            "  --config F    the node's INI file (see node/examples/aloha.ini for every key)\n"
            "  --set S.K=V   override one key (repeatable)\n"
            "  --duration S  run S seconds, then stop as on SIGINT (default: until a signal)\n"
            "  --check       load config, calib and model, print the resolved configuration\n"
            "                and exit (opens nothing for writing)\n"
            "SIGINT / SIGTERM: finish the tick, stop the stages, print a summary, exit 0.\n"
            "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

/* Prints the calling thread's error detail (prefixed with `what` when given); returns 1. */
static int fail(const char *what) {
    fprintf(stderr, "pi0rt-node: %s%s%s\n", what ? what : "", what ? ": " : "",
            pi0_last_error());
    return 1;
}

/* SIGINT and SIGTERM: blocked in every thread from the start (the model's worker threads
 * inherit the mask), taken by main with sigwaitinfo; set by open_sub on one while waiting. */
static sigset_t g_sigs;
static int g_interrupted;

/* Opens a topic, waiting up to timeout_s for its publisher to create it (or for SIGINT /
 * SIGTERM: PI0_EAGAIN with g_interrupted set). */
static int open_sub(const char *topic, const char *type, double timeout_s, pi0_sub **out) {
    pi0_sub_opts o = {type, -1};
    uint64_t t_end = node_now_ns() + (uint64_t)(timeout_s * 1e9);
    int said = 0;
    for (;;) {
        int rc = pi0_sub_open(topic, &o, out);
        if (rc != PI0_ENOENT && rc != PI0_EAGAIN) return rc;
        if (node_now_ns() >= t_end)
            return pi0_errorf(PI0_ETIMEDOUT, "topic %s: no publisher after %.1f s", topic,
                              timeout_s);
        if (!said++) fprintf(stderr, "pi0rt-node: waiting for topic %s ...\n", topic);
        struct timespec ts = {0, 50000000};
        if (sigtimedwait(&g_sigs, NULL, &ts) > 0) {
            g_interrupted = 1;
            return pi0_errorf(PI0_EAGAIN, "topic %s: interrupted while waiting", topic);
        }
    }
}

static int make_pub(const char *topic, const char *type, size_t size, uint32_t slots,
                    pi0_pub **out) {
    pi0_pub_opts o = {type, (uint32_t)size, slots, 0};
    int rc = pi0_pub_create(topic, &o, out);
    if (rc) pi0_errorf(rc, "topic %s: %s", topic, pi0_last_error());
    return rc;
}

/* Loads calib and model and checks that they fit together and with the config. */
static int load(node *n) {
    node_config *c = &n->cfg;
    int rc = pi0_calib_load(c->calib, &n->calib);
    if (rc) return rc;
    /* a CPU the process may not use: an error here, not a compute thread that fails to
     * start (or, elsewhere, one that runs unpinned) */
    cpu_set_t allowed;
    if (c->n_infer_cpus && sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int i = 0; i < c->n_infer_cpus; i++)
            if (!CPU_ISSET(c->infer_cpus[i], &allowed))
                return pi0_errorf(PI0_ECONFIG,
                                  "%s: node.infer_cpus: CPU %d is not one this process may use "
                                  "(%d allowed)",
                                  c->path, c->infer_cpus[i], CPU_COUNT(&allowed));
    pi0_model_opts mo = {0};
    mo.backend = c->backend;
    mo.n_threads = c->threads;
    mo.precision = c->precision;
    mo.cpus = c->n_infer_cpus ? c->infer_cpus : NULL;
    mo.n_cpus = c->n_infer_cpus;
    mo.num_steps = c->num_steps;
    mo.seed = c->seed;
    if ((rc = pi0_model_load(c->model_dir, &mo, &n->model)))
        return pi0_errorf(rc, "%s: model.dir: %s", c->path, pi0_last_error());
    pi0_model_get_info(n->model, &n->info);
    n->state_dim = pi0_calib_state_dim(n->calib);
    n->raw_dim = pi0_calib_raw_dim(n->calib);
    n->action_dim = pi0_calib_action_dim(n->calib);
    n->out_dim = pi0_calib_out_dim(n->calib);
    if (n->info.action_horizon > PI0_CHUNK_HORIZON_MAX)
        return pi0_errorf(PI0_ERANGE, "%s: the model's horizon %d exceeds pi0.ActionChunk's %d",
                          c->model_dir, n->info.action_horizon, PI0_CHUNK_HORIZON_MAX);
    if (n->action_dim > n->info.action_dim)
        return pi0_errorf(PI0_ESHAPE, "%s: calib reads %d action dims, the model has %d",
                          c->calib, n->action_dim, n->info.action_dim);
    if (n->state_dim > n->info.state_dim)
        return pi0_errorf(PI0_ESHAPE, "%s: calib writes %d state dims, the model takes %d",
                          c->calib, n->state_dim, n->info.state_dim);
    if (n->out_dim > PI0_ACTION_DIM_MAX || n->out_dim < 1)
        return pi0_errorf(PI0_ERANGE, "%s: %d robot action dims (1..%d)", c->calib, n->out_dim,
                          PI0_ACTION_DIM_MAX);
    if (c->n_tokens > n->info.max_token_len)
        return pi0_errorf(PI0_ERANGE, "%s: model.tokens: %d ids, the model takes at most %d",
                          c->path, c->n_tokens, n->info.max_token_len);
    for (int i = 0; i < c->n_tokens; i++)
        if (c->tokens[i] >= n->info.vocab)
            return pi0_errorf(PI0_ERANGE,
                              "%s: model.tokens: id %d outside the vocabulary [0, %d)", c->path,
                              (int)c->tokens[i], n->info.vocab);
    if (c->prompt[0]) {
        pi0_tokenizer *tok = NULL;
        if ((rc = pi0_tokenizer_load(c->tokenizer, &tok)))
            return pi0_errorf(rc, "%s: model.tokenizer: %s", c->path, pi0_last_error());
        n->tokenizer = tok;
    }
    n->n_cams = 0;
    for (int s = 0; s < PI0_CALIB_CAMERAS; s++) {
        const pi0_calib_camera *cam = pi0_calib_camera_get(n->calib, s);
        if (cam && cam->topic[0]) n->cam_slot[n->n_cams++] = s;
    }
    if (!n->n_cams && c->n_tokens == 0)
        return pi0_errorf(PI0_ECONFIG, "%s: no camera and no prompt token", c->calib);
    return 0;
}

static int open_topics(node *n) {
    node_config *c = &n->cfg;
    int rc;
    for (int i = 0; i < n->n_cams; i++) {
        const char *t = pi0_calib_camera_get(n->calib, n->cam_slot[i])->topic;
        if ((rc = open_sub(t, PI0_TYPE_IMAGE, c->start_timeout_s, &n->cam_sub_a[i])) ||
            (rc = open_sub(t, PI0_TYPE_IMAGE, 0, &n->cam_sub_c[i])) ||
            (rc = open_sub(t, PI0_TYPE_IMAGE, 0, &n->cam_sub_m[i])))
            return rc;
    }
    const char *j = c->joints_topic;
    if ((rc = open_sub(j, PI0_TYPE_JOINT_STATE, c->start_timeout_s, &n->joint_sub_a)) ||
        (rc = open_sub(j, PI0_TYPE_JOINT_STATE, 0, &n->joint_sub_c)) ||
        (rc = open_sub(j, PI0_TYPE_JOINT_STATE, 0, &n->joint_sub_m)))
        return rc;
    if ((rc = make_pub(c->action_topic, PI0_TYPE_ACTION, sizeof(pi0_action), 64,
                       &n->action_pub)) ||
        (rc = make_pub(c->chunk_topic, PI0_TYPE_ACTION_CHUNK, sizeof(pi0_action_chunk), 8,
                       &n->chunk_pub)) ||
        (rc = make_pub(c->status_topic, PI0_TYPE_NODE_STATUS, sizeof(pi0_node_status), 8,
                       &n->status_pub)))
        return rc;
    return 0;
}

static void cleanup(node *n) {
    for (int i = 0; i < PI0_MAX_CAMERAS; i++) {
        pi0_sub_close(n->cam_sub_a[i]);
        pi0_sub_close(n->cam_sub_c[i]);
        pi0_sub_close(n->cam_sub_m[i]);
    }
    pi0_sub_close(n->joint_sub_a);
    pi0_sub_close(n->joint_sub_c);
    pi0_sub_close(n->joint_sub_m);
    pi0_pub_destroy(n->action_pub);
    pi0_pub_destroy(n->chunk_pub);
    pi0_pub_destroy(n->status_pub);
    pi0_tokenizer_destroy(n->tokenizer);
    pi0_model_destroy(n->model);
    pi0_calib_destroy(n->calib);
}

static void print_check(const node *n) {
    node_config_print(&n->cfg, stdout);
    printf("\n; model: %s, horizon %d, action_dim %d, state_dim %d, %d steps, max %d tokens\n",
           n->info.pi05 ? "pi05" : "pi0", n->info.action_horizon, n->info.action_dim,
           n->info.state_dim, n->info.num_steps, n->info.max_token_len);
    printf("; calib: state_dim %d (from %d joints), action_dim %d -> %d robot dims\n",
           n->state_dim, n->raw_dim, n->action_dim, n->out_dim);
    for (int i = 0; i < n->n_cams; i++) {
        const pi0_calib_camera *cam = pi0_calib_camera_get(n->calib, n->cam_slot[i]);
        printf("; camera slot %d <- topic %s%s\n", n->cam_slot[i], cam->topic,
               cam->rotate180 ? " (rotated 180)" : "");
    }
    printf("; usdt probes: %s\n", PI0_NODE_HAVE_SDT ? "compiled in" : "not built");
}

static void init_stats(node *n) {
    node_hist *hs[] = {&n->tick_late,   &n->infer_lat,   &n->sched_lat, &n->encode_lat,
                       &n->denoise_lat, &n->delay_ticks, &n->cam_age,   &n->joint_age};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        node_hist_init(hs[i]);
    node_handover_init(&n->hand);
    atomic_store(&n->state, PI0_NODE_STARTING);
}

int main(int argc, char **argv) {
    const char *config = NULL, *sets[MAX_SETS];
    int n_sets = 0, check = 0;
    double duration = 0;
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},   {"set", required_argument, 0, 's'},
        {"duration", required_argument, 0, 'd'}, {"check", no_argument, 0, 'k'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c, bad = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'k':
            check = 1;
            break;
        case 'c':
            config = optarg;
            break;
        case 's':
            if (n_sets == MAX_SETS) {
                fprintf(stderr, "pi0rt-node: more than %d --set options\n", MAX_SETS);
                return PI0_EXIT_USAGE;
            }
            sets[n_sets++] = optarg;
            break;
        case 'd':
            duration = pi0__parse_num(optarg, 0, 1e7, &bad);
            if (bad || !(duration > 0)) {
                fprintf(stderr, "pi0rt-node: --duration: '%s' is not a number of seconds > 0\n",
                        optarg);
                return PI0_EXIT_USAGE;
            }
            break;
        default:
            return pi0__opt_error("pi0rt-node", argv, c);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pi0rt-node: unexpected argument '%s' (see --help)\n", argv[optind]);
        return PI0_EXIT_USAGE;
    }
    if (!config) {
        fprintf(stderr, "pi0rt-node: --config is required (see --help)\n");
        return PI0_EXIT_USAGE;
    }

    /* before any thread exists: a signal must never reach a thread that does not block it
     * (its default action would kill the process without the summary) */
    sigemptyset(&g_sigs);
    sigaddset(&g_sigs, SIGINT);
    sigaddset(&g_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &g_sigs, NULL);

    static node nd; /* large (histograms, chunk buffers): static, zero-initialized */
    node *n = &nd;
    if (node_config_load(&n->cfg, config, sets, n_sets)) return fail(NULL);
    int rc = load(n);
    if (rc) {
        fail(NULL);
        cleanup(n);
        return 1;
    }
    if (check) {
        print_check(n);
        cleanup(n);
        return 0;
    }
    init_stats(n);
    n->period_ns = (uint64_t)(1e9 / n->cfg.control_hz + 0.5);

    if ((rc = open_topics(n))) {
        if (g_interrupted) {
            fprintf(stderr, "pi0rt-node: stopped by a signal while starting\n");
            cleanup(n);
            return 0;
        }
        fail(NULL);
        cleanup(n);
        return 1;
    }
    if (n->cfg.warmup && (rc = node_warmup(n))) {
        fail("warm-up inference");
        cleanup(n);
        return 1;
    }
    if (n->cfg.lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE))
        fprintf(stderr,
                "pi0rt-node: warning: mlockall failed (%s); pages may fault in the "
                "control loop\n",
                strerror(errno));
    atomic_store(&n->need_ticks, node_ticks_needed((uint64_t)(n->cfg.latency_guess_ms * 1e6),
                                                   n->period_ns, n->cfg.margin_ticks));
    /* tick 0 is one period from now */
    n->t_start_ns = node_now_ns() + n->period_ns;

    pthread_t stages[2], control, monitor;
    if ((rc = node_stages_start(n, stages))) {
        fail(NULL);
        cleanup(n);
        return 1;
    }
    if (pthread_create(&control, NULL, node_control_main, n) ||
        pthread_create(&monitor, NULL, node_monitor_main, n)) {
        fprintf(stderr, "pi0rt-node: cannot start the control threads\n");
        abort(); /* threads already run on shared state: no clean way back */
    }
    fprintf(stderr,
            "pi0rt-node: running at %g Hz (%d camera%s, horizon %d, %s, merge %s); "
            "Ctrl-C stops\n",
            n->cfg.control_hz, n->n_cams, n->n_cams == 1 ? "" : "s", n->info.action_horizon,
            n->cfg.pipelined ? "pipelined" : "not pipelined",
            n->cfg.merge == NODE_MERGE_REPLACE ? "replace"
            : n->cfg.merge == NODE_MERGE_BLEND ? "blend"
                                               : "weighted");

    struct timespec ts = {(time_t)duration,
                          (long)((duration - (double)(time_t)duration) * 1e9)};
    int sig;
    do {
        sig = duration > 0 ? sigtimedwait(&g_sigs, NULL, &ts) : sigwaitinfo(&g_sigs, NULL);
    } while (sig < 0 && errno == EINTR);
    atomic_store(&n->stop, 1);
    pthread_join(control, NULL); /* finishes its tick */
    node_stages_join(n, stages);
    pthread_join(monitor, NULL);
    node_print_summary(n, stderr);
    cleanup(n);
    return 0;
}
