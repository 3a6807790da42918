/* shm_peer.c — helper process for the multi-process shm tests (exec'd by test_shm).
 *
 *   shm_peer pub TOPIC PAYLOAD_MAX SLOTS SECONDS
 *       publish self-checking samples (tests/shm/shm_sample.h) written in place into the
 *       loaned slot, as fast as possible, for SECONDS (0: until killed).
 *   shm_peer sub TOPIC copy|view|wait SECONDS
 *       subscribe (retrying until the topic exists), check every sample received, until
 *       SECONDS pass (0: until SIGTERM); print one line
 *       "delivered=N lost=N torn=N bad=N epochs=N" and exit 0 if bad == 0.
 *       copy: spin on next_copy; view: next_view + view_valid; wait: sleep in
 *       pi0_sub_wait, then next_copy. */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_time.h"
#include "shm/pi0_shm.h"
#include "shm_sample.h"

static volatile sig_atomic_t g_stop;
static void on_term(int sig) {
    (void)sig;
    g_stop = 1;
}

static int do_pub(const char *topic, uint32_t max, uint32_t slots, double secs) {
    pi0_pub_opts o = {PI0_TYPE_RAW, max, slots, 0};
    pi0_pub *pub;
    if (pi0_pub_create(topic, &o, &pub)) {
        fprintf(stderr, "shm_peer pub: %s\n", pi0_last_error());
        return 1;
    }
    uint64_t salt = ((uint64_t)getpid() << 32) | pi0_pub_epoch(pub);
    double end = secs > 0 ? pi0__now_s() + secs : 1e300;
    uint64_t n = 0;
    while (!g_stop && (n & 255 || pi0__now_s() < end)) {
        uint64_t seq = pi0_pub_seq(pub);
        uint32_t len = shm_sample_len(seq, max);
        shm_sample_fill(pi0_pub_loan(pub), seq, salt, len);
        if (pi0_pub_commit(pub, len)) return 1;
        n++;
    }
    pi0_pub_destroy(pub);
    printf("published=%llu\n", (unsigned long long)n);
    return 0;
}

static int do_sub(const char *topic, const char *mode, double secs) {
    pi0_sub *sub = NULL;
    double end = secs > 0 ? pi0__now_s() + secs : 1e300;
    while (!g_stop && pi0__now_s() < end) {
        if (pi0_sub_open(topic, NULL, &sub) == 0) break;
        usleep(1000);
    }
    if (!sub) {
        fprintf(stderr, "shm_peer sub: %s\n", pi0_last_error());
        return 1;
    }
    pi0_topic_info ti;
    pi0_sub_topic_info(sub, &ti);
    uint8_t *buf = malloc(ti.payload_max);
    uint64_t delivered = 0, lost = 0, torn = 0, bad = 0, epochs = 0;
    uint32_t last_epoch = 0;
    int view = !strcmp(mode, "view"), wait = !strcmp(mode, "wait");
    while (!g_stop && pi0__now_s() < end) {
        if (wait && pi0_sub_wait(sub, 50000000)) continue;
        pi0_sample s;
        int st =
            view ? pi0_sub_next_view(sub, &s) : pi0_sub_next_copy(sub, buf, ti.payload_max, &s);
        if (st == PI0_EAGAIN) continue;
        if (st) {
            fprintf(stderr, "shm_peer sub: %s\n", pi0_last_error());
            bad++;
            continue;
        }
        int ok = shm_sample_ok(s.data, s.size, s.seq);
        if (view && pi0_sub_view_valid(sub, &s)) {
            torn++; /* overwritten while we read it: detected, discarded */
            continue;
        }
        if (!ok) {
            fprintf(stderr, "shm_peer sub: sample %llu (%u bytes, epoch %u) is corrupt\n",
                    (unsigned long long)s.seq, s.size, s.epoch);
            bad++;
            continue;
        }
        if (s.epoch != last_epoch) epochs++, last_epoch = s.epoch;
        delivered++;
        lost += s.lost;
    }
    printf("delivered=%llu lost=%llu torn=%llu bad=%llu epochs=%llu\n",
           (unsigned long long)delivered, (unsigned long long)lost, (unsigned long long)torn,
           (unsigned long long)bad, (unsigned long long)epochs);
    free(buf);
    pi0_sub_close(sub);
    return bad == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    /* never outlive the test that started us (it may have crashed) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) return 1;
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        puts("usage: shm_peer pub TOPIC PAYLOAD_MAX SLOTS SECONDS | sub TOPIC copy|view|wait "
             "SECONDS");
        return 0;
    }
    if (argc == 6 && !strcmp(argv[1], "pub"))
        return do_pub(argv[2], (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]), atof(argv[5]));
    if (argc == 5 && !strcmp(argv[1], "sub")) return do_sub(argv[2], argv[3], atof(argv[4]));
    fprintf(stderr, "shm_peer: bad arguments (see --help)\n");
    return 2;
}
