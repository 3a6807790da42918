/* mcap_bench.c — `make bench` for pi0rt-shm record (one JSON object per line).
 *
 *   live:  2 cameras 640x480 rgb8 @ 30 Hz + joint states @ 500 Hz published from this
 *          process's threads, recorded by a `pi0rt-shm record` child for D seconds: its CPU
 *          time per second of recording (getrusage of the child), samples lost, file size,
 *          LZ4 ratio.
 *   max:   the writer alone (CDR encode + chunking + LZ4 + CRC + write) fed 640x480 frames
 *          as fast as it takes them: MB/s and frames/s, against a baseline measured in the
 *          same run: write() of the same raw frames to a file (ratio = max / baseline).
 *
 * Frame content: a moving gradient with objects and per-pixel noise of +-4 (sensor-like;
 * "noisy") or without noise ("clean"). Usage: mcap_bench [--quick] */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_time.h"
#include "shm/mcap.h"
#include "shm/pi0_shm.h"
#include "shm/ros2msg.h"

#define W       640
#define H       480
#define NFRAMES 8

static uint8_t *g_frames[2][NFRAMES]; /* [noisy][i]: pi0.Image payloads */
static volatile int g_stop;

static void make_frames(void) {
    uint64_t x = 88172645463325252ull;
    for (int noisy = 0; noisy < 2; noisy++)
        for (int f = 0; f < NFRAMES; f++) {
            uint8_t *p = malloc(pi0_image_bytes(W, H, PI0_PIX_RGB8));
            pi0_image *im = (pi0_image *)p;
            memset(im, 0, sizeof *im);
            *im = (pi0_image){W, H, W * 3, PI0_PIX_RGB8, 0, (uint64_t)f, W * 3 * H, {0}};
            for (int y = 0; y < H; y++)
                for (int c = 0; c < W * 3; c++) {
                    int px = c / 3, v = (px + 2 * y + 4 * f) / 5 + (c % 3) * 40;
                    if ((px - 200 - 8 * f) * (px - 200 - 8 * f) + (y - 240) * (y - 240) < 6400)
                        v = 200 + (c % 3) * 20; /* an object */
                    if (noisy) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        v += (int)(x % 9) - 4;
                    }
                    im->data[(size_t)y * W * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            g_frames[noisy][f] = p;
        }
}

typedef struct pub_arg {
    const char *topic;
    int camera;
    double hz;
    uint64_t published;
} pub_arg;

static void *publisher(void *p) {
    pub_arg *a = p;
    size_t size = a->camera ? pi0_image_bytes(W, H, PI0_PIX_RGB8) : sizeof(pi0_joint_state);
    pi0_pub_opts po = {a->camera ? PI0_TYPE_IMAGE : PI0_TYPE_JOINT_STATE, (uint32_t)size,
                       a->camera ? 16 : 64, 0};
    pi0_pub *pub;
    if (pi0_pub_create(a->topic, &po, &pub)) {
        fprintf(stderr, "mcap_bench: %s\n", pi0_last_error());
        exit(1);
    }
    double t = pi0__now_s();
    while (!g_stop) {
        void *slot = pi0_pub_loan(pub);
        if (a->camera) {
            memcpy(slot, g_frames[1][a->published % NFRAMES], size);
            ((pi0_image *)slot)->frame_id = a->published;
        } else {
            pi0_joint_state *js = slot;
            memset(js, 0, sizeof *js);
            js->n = 7;
            for (int j = 0; j < 7; j++)
                js->position[j] = (double)a->published * 1e-3 + j;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (a->camera)
            ((pi0_image *)slot)->capture_ns = (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
        else
            ((pi0_joint_state *)slot)->stamp_ns =
                (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
        pi0_pub_commit(pub, size);
        a->published++;
        t += 1.0 / a->hz;
        double d = t - pi0__now_s();
        if (d > 0) {
            struct timespec s = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
            nanosleep(&s, NULL);
        }
    }
    pi0_pub_destroy(pub);
    pi0_topic_remove(a->topic);
    return NULL;
}

static void bench_live(const char *tool, const char *dir, double seconds) {
    char cam0[64], cam1[64], joints[64], out[512];
    snprintf(cam0, sizeof cam0, "mb%d.cam0", (int)getpid());
    snprintf(cam1, sizeof cam1, "mb%d.cam1", (int)getpid());
    snprintf(joints, sizeof joints, "mb%d.joints", (int)getpid());
    snprintf(out, sizeof out, "%s/live.mcap", dir);
    pub_arg args[3] = {{cam0, 1, 30, 0}, {cam1, 1, 30, 0}, {joints, 0, 500, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, publisher, &args[i]);
    usleep(200000); /* topics exist */
    char dur[32];
    snprintf(dur, sizeof dur, "%g", seconds);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        execl(tool, tool, "record", "-o", out, cam0, cam1, joints, "--duration", dur,
              (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    g_stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    pi0__mcap_reader *r;
    pi0__mcap_scan_info in;
    memset(&in, 0, sizeof in);
    int ok = pi0__mcap_open(out, &r) == 0 && pi0__mcap_scan(r, NULL, NULL, &in) == 0;
    if (r) pi0__mcap_close(r);
    struct stat sb;
    stat(out, &sb);
    uint64_t frames = in.n_channels >= 2 ? in.channel_messages[0] + in.channel_messages[1] : 0;
    printf("{\"bench\":\"mcap_record_live\",\"cameras\":2,\"size\":\"%dx%d\",\"cam_hz\":30,"
           "\"joint_hz\":500,\"content\":\"noisy\",\"seconds\":%g,\"exit\":%d,\"file_ok\":%d,"
           "\"frames\":%" PRIu64 ",\"joint_states\":%" PRIu64 ",\"lost_or_invalid\":%s,"
           "\"cpu_s_per_s\":%.3f,\"MB_per_s\":%.1f,\"lz4_ratio\":%.3f,\"file_MB\":%.1f}\n",
           W, H, seconds, WIFEXITED(status) ? WEXITSTATUS(status) : -1, ok, frames,
           in.n_channels >= 3 ? in.channel_messages[2] : 0,
           WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "false" : "true", cpu / seconds,
           (double)in.chunk_raw_bytes / 1e6 / seconds,
           in.chunk_compressed_bytes
               ? (double)in.chunk_raw_bytes / (double)in.chunk_compressed_bytes
               : 0,
           (double)sb.st_size / 1e6);
    unlink(out);
}

/* The writer as fast as it goes; returns MB/s of raw frames. */
static double bench_max(const char *dir, int noisy, int compress, int frames) {
    char out[512];
    snprintf(out, sizeof out, "%s/max.mcap", dir);
    pi0__mcap_writer_opts wo = {0, compress, "bench", 0};
    pi0__mcap_writer *w;
    if (pi0__mcap_writer_create(out, &wo, &w)) return 0;
    uint16_t sid, cid;
    pi0__mcap_add_schema(w, pi0__ros2_name(PI0__ROS2_IMAGE), "ros2msg",
                         pi0__ros2_schema(PI0__ROS2_IMAGE),
                         (uint32_t)strlen(pi0__ros2_schema(PI0__ROS2_IMAGE)), &sid);
    pi0__mcap_add_channel(w, sid, "/cam", "cdr", NULL, 0, &cid);
    pi0__buf cdr = {0};
    size_t size = pi0_image_bytes(W, H, PI0_PIX_RGB8);
    double t0 = pi0__now_s();
    for (int i = 0; i < frames; i++) {
        pi0__ros2_encode(PI0__ROS2_IMAGE, g_frames[noisy][i % NFRAMES], size, 0, "cam", &cdr);
        pi0__mcap_write(w, cid, (uint32_t)i, (uint64_t)i, (uint64_t)i, cdr.p, cdr.len);
    }
    pi0__mcap_stats st;
    int rc = pi0__mcap_writer_close(w, 1, &st);
    double dt = pi0__now_s() - t0;
    pi0__buf_free(&cdr);
    unlink(out);
    double mbps = (double)frames * W * H * 3 / 1e6 / dt;
    printf("{\"bench\":\"mcap_write_max\",\"content\":\"%s\",\"compression\":\"%s\",\"ok\":%d,"
           "\"frames\":%d,\"frames_per_s\":%.0f,\"MB_per_s\":%.0f,\"lz4_ratio\":%.3f,"
           "\"stored_chunks\":%" PRIu64 ",\"chunks\":%" PRIu64 "}\n",
           noisy ? "noisy" : "clean", compress ? "lz4" : "none", rc == 0, frames, frames / dt,
           mbps, st.compressed_bytes ? (double)st.raw_bytes / (double)st.compressed_bytes : 0,
           st.chunks_stored, st.chunks);
    return mbps;
}

/* Baseline: write() of the same raw frames (no encoding, no compression, no CRC). */
static double bench_raw(const char *dir, int frames) {
    char out[512];
    snprintf(out, sizeof out, "%s/raw.bin", dir);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t size = pi0_image_bytes(W, H, PI0_PIX_RGB8);
    double t0 = pi0__now_s();
    for (int i = 0; i < frames; i++)
        if (write(fd, g_frames[1][i % NFRAMES], size) != (ssize_t)size) break;
    fsync(fd);
    close(fd);
    double dt = pi0__now_s() - t0;
    unlink(out);
    double mbps = (double)frames * W * H * 3 / 1e6 / dt;
    printf("{\"bench\":\"mcap_write_baseline_raw\",\"frames\":%d,\"frames_per_s\":%.0f,"
           "\"MB_per_s\":%.0f}\n",
           frames, frames / dt, mbps);
    return mbps;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 1 && !quick) {
        fprintf(stderr, "usage: mcap_bench [--quick]\n");
        return 2;
    }
    char exe[4096], tool[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(tool, sizeof tool, "%s/../pi0rt-shm", exe);
    char dir[] = "/tmp/pi0mcapbench.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    make_frames();
    int frames = quick ? 60 : 300;
    double raw = bench_raw(dir, frames);
    double lz4 = bench_max(dir, 1, 1, frames);
    bench_max(dir, 0, 1, frames);
    bench_max(dir, 1, 0, frames);
    printf("{\"bench\":\"mcap_write_vs_raw\",\"content\":\"noisy\",\"compression\":\"lz4\","
           "\"ratio\":%.3f}\n",
           raw > 0 ? lz4 / raw : 0);
    bench_live(tool, dir, quick ? 3 : 10);
    rmdir(dir);
    for (int i = 0; i < 2; i++)
        for (int f = 0; f < NFRAMES; f++)
            free(g_frames[i][f]);
    return 0;
}
