/* camsim.c — `pi0rt-camsim`: N simulated cameras publishing pi0.Image topics.
 *
 * Each frame is drawn straight into the loaned slot (zero copy): a per-camera colour
 * gradient, a bright square moving with the frame number, and the frame counter in the
 * top rows so a test can read it back from the pixels:
 *
 *   bit i (0 = least significant) of (frame_id mod 2^32) fills the cell of columns
 *   [i*cw, (i+1)*cw), cw = width / 32, rows [0, min(8, height)), every channel, with 255
 *   when set and 0 when clear.
 *
 * The capture timestamp is CLOCK_MONOTONIC when drawing starts. Frames are paced with
 * clock_nanosleep(TIMER_ABSTIME) on a fixed grid; late periods are skipped and counted. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_cli.h"
#include "common/pi0_time.h"
#include "shm/pi0_shm.h"

#define MAX_CAMS 16

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static const char *const USAGE =
    "usage: pi0rt-camsim [--cameras N] [--prefix P | --topic T ...] [--size WxH]\n"
    "                    [--rate HZ] [--format rgb|bgr|gray] [--slots N] [--duration S]\n"
    "                    [--report S]\n"
    "\n"
    "Simulated cameras: publishes pi0.Image frames on topics P0..P(N-1) (default cam0,\n"
    "cam1), or on the --topic names given, drawn into the loaned slots: a gradient, a\n"
    "moving square and the frame counter (bit i of frame_id in the cell of columns\n"
    "[i*W/32, (i+1)*W/32) of rows 0-7: 255 set, 0 clear).\n"
    "\n"
    "  --cameras N     cameras (1-16, default 2)\n"
    "  --size WxH      frame size (default 224x224; W >= 32, H >= 8)\n"
    "  --rate HZ       frames per second per camera (default 30)\n"
    "  --format F      rgb (default), bgr or gray\n"
    "  --slots N       topic slots (power of two, default 4)\n"
    "  --duration S    stop after S seconds (default: until SIGINT/SIGTERM)\n"
    "  --report S      a status line every S seconds (default 1, 0 = none)\n"
    "\n"
    "Prints a summary at exit. Exit status: 0 ok, 1 error, 2 bad usage.\n";

static int usage_error(const char *what, const char *arg) {
    fprintf(stderr, "pi0rt-camsim: %s \"%s\" (see pi0rt-camsim --help)\n", what, arg);
    return 2;
}

/* The static background of camera `cam` (gradients), stride * h bytes. */
static void draw_background(uint8_t *bg, uint32_t w, uint32_t h, uint32_t bpp, int cam) {
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *row = bg + (size_t)y * w * bpp;
        uint8_t r = (uint8_t)(40 + 60 * cam), g = (uint8_t)(y * 200 / h);
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *px = row + (size_t)x * bpp;
            uint8_t b = (uint8_t)(x * 200 / w);
            if (bpp == 1)
                px[0] = (uint8_t)((r + b) / 2);
            else
                px[0] = r, px[1] = g, px[2] = b;
        }
    }
}

/* Draws frame `fid` of camera `cam` into im (header already filled): the background, a
 * square moving with the frame number, the frame counter. */
static void draw(pi0_image *im, const uint8_t *bg, int cam, uint64_t fid) {
    uint32_t w = im->width, h = im->height, bpp = pi0_pixel_bytes(im->format);
    memcpy(im->data, bg, (size_t)im->stride * h);
    uint32_t sq = h / 4 < w / 4 ? h / 4 : w / 4;
    uint32_t sx = (uint32_t)((fid * 3) % (w - sq));
    double ph = (double)fid * 0.1 + cam;
    uint32_t sy = (uint32_t)((double)(h - sq) * (0.5 + 0.4 * sin(ph)));
    for (uint32_t y = sy; y < sy + sq; y++)
        memset(im->data + (size_t)y * im->stride + (size_t)sx * bpp, 250, (size_t)sq * bpp);
    uint32_t cw = w / 32, rows = h < 8 ? h : 8;
    uint32_t id = (uint32_t)fid;
    for (uint32_t y = 0; y < rows; y++) {
        uint8_t *row = im->data + (size_t)y * im->stride;
        for (uint32_t b = 0; b < 32; b++)
            memset(row + (size_t)b * cw * bpp, (id >> b) & 1 ? 255 : 0, (size_t)cw * bpp);
    }
}

int main(int argc, char **argv) {
    int ncam = 2, slots = 4, bad = 0;
    unsigned w = 224, h = 224;
    double rate = 30, duration = 0, report = 1;
    uint32_t format = PI0_PIX_RGB8;
    const char *prefix = "cam";
    const char *topics[MAX_CAMS];
    int ntopics = 0;
    static const struct option opts[] = {{"cameras", required_argument, 0, 'n'},
                                         {"prefix", required_argument, 0, 'p'},
                                         {"topic", required_argument, 0, 't'},
                                         {"size", required_argument, 0, 's'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"format", required_argument, 0, 'f'},
                                         {"slots", required_argument, 0, 'S'},
                                         {"duration", required_argument, 0, 'd'},
                                         {"report", required_argument, 0, 'R'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        case 'n':
            ncam = (int)pi0__parse_num(optarg, 1, MAX_CAMS, &bad);
            if (bad) return usage_error("--cameras: want 1-16, got", optarg);
            break;
        case 'p':
            prefix = optarg;
            break;
        case 't':
            if (ntopics == MAX_CAMS) return usage_error("--topic: at most 16, extra", optarg);
            topics[ntopics++] = optarg;
            break;
        case 's':
            if (sscanf(optarg, "%ux%u", &w, &h) != 2 || w < 32 || h < 8 || w > 8192 || h > 8192)
                return usage_error("--size: want WxH with 32 <= W, 8 <= H, both <= 8192, got",
                                   optarg);
            break;
        case 'r':
            rate = pi0__parse_num(optarg, 0.1, 10000, &bad);
            if (bad) return usage_error("--rate: want 0.1-10000 Hz, got", optarg);
            break;
        case 'f':
            if (!strcmp(optarg, "rgb"))
                format = PI0_PIX_RGB8;
            else if (!strcmp(optarg, "bgr"))
                format = PI0_PIX_BGR8;
            else if (!strcmp(optarg, "gray"))
                format = PI0_PIX_GRAY8;
            else
                return usage_error("--format: want rgb, bgr or gray, got", optarg);
            break;
        case 'S':
            slots = (int)pi0__parse_num(optarg, 2, 1024, &bad);
            if (bad || (slots & (slots - 1)))
                return usage_error("--slots: want a power of two 2-1024, got", optarg);
            break;
        case 'd':
            duration = pi0__parse_num(optarg, 0, 1e7, &bad);
            if (bad) return usage_error("--duration: want seconds >= 0, got", optarg);
            break;
        case 'R':
            report = pi0__parse_num(optarg, 0, 3600, &bad);
            if (bad) return usage_error("--report: want seconds >= 0, got", optarg);
            break;
        default:
            return pi0__opt_error("pi0rt-camsim", argv, c);
        }
    }
    if (optind != argc) return usage_error("unexpected argument", argv[optind]);
    if (ntopics) ncam = ntopics;
    char names[MAX_CAMS][PI0_TOPIC_NAME_MAX + 1];
    for (int i = 0; i < ncam; i++) {
        int k = ntopics ? snprintf(names[i], sizeof names[i], "%s", topics[i])
                        : snprintf(names[i], sizeof names[i], "%s%d", prefix, i);
        if (k >= (int)sizeof names[i] || pi0_topic_name_check(names[i]) != 0)
            return usage_error("bad topic name", names[i]);
    }
    size_t bytes = pi0_image_bytes(w, h, format);
    if (!bytes) return usage_error("--size: frame too large", "");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    pi0_pub *pub[MAX_CAMS] = {0};
    uint8_t *bg[MAX_CAMS] = {0}; /* each camera's background, drawn once */
    for (int i = 0; i < ncam; i++) {
        bg[i] = malloc((size_t)w * h * pi0_pixel_bytes(format));
        if (!bg[i]) {
            fprintf(stderr, "pi0rt-camsim: out of memory for %ux%u frames\n", w, h);
            return 1;
        }
        draw_background(bg[i], w, h, pi0_pixel_bytes(format), i);
    }
    for (int i = 0; i < ncam; i++) {
        pi0_pub_opts po = {PI0_TYPE_IMAGE, (uint32_t)bytes, (uint32_t)slots, 0};
        if (pi0_pub_create(names[i], &po, &pub[i]) != 0) {
            fprintf(stderr, "pi0rt-camsim: %s: %s\n", names[i], pi0_last_error());
            for (int k = 0; k < i; k++)
                pi0_pub_destroy(pub[k]);
            return 1;
        }
    }
    printf("camsim: %d camera%s %ux%u %s at %.1f Hz on", ncam, ncam > 1 ? "s" : "", w, h,
           format == PI0_PIX_GRAY8  ? "gray"
           : format == PI0_PIX_BGR8 ? "bgr"
                                    : "rgb",
           rate);
    for (int i = 0; i < ncam; i++)
        printf(" %s", names[i]);
    printf("\n");
    fflush(stdout);

    uint64_t period = (uint64_t)(1e9 / rate), t0 = (uint64_t)pi0__now_ns(), next = t0;
    uint64_t frames = 0, skipped = 0, last_report = t0, frames_at_report = 0, draw_max = 0;
    while (!g_stop) {
        uint64_t t = (uint64_t)pi0__now_ns();
        if (duration > 0 && (double)(t - t0) >= duration * 1e9) break;
        for (int i = 0; i < ncam; i++) {
            uint64_t cap = (uint64_t)pi0__now_ns();
            pi0_image *im = pi0_pub_loan(pub[i]);
            uint64_t fid = pi0_pub_seq(pub[i]);
            memset(im, 0, sizeof *im);
            im->width = w;
            im->height = h;
            im->format = format;
            im->stride = w * pi0_pixel_bytes(format);
            im->data_bytes = im->stride * h;
            im->capture_ns = cap;
            im->frame_id = fid;
            draw(im, bg[i], i, fid);
            pi0_pub_commit(pub[i], 64 + (size_t)im->data_bytes);
            uint64_t d = (uint64_t)pi0__now_ns() - cap;
            if (d > draw_max) draw_max = d;
        }
        frames++;
        if (report > 0 && (double)(t - last_report) >= report * 1e9) {
            printf("camsim: %.1f frames/s per camera, frame %llu, draw+publish max %.2f ms, "
                   "skipped %llu\n",
                   (double)(frames - frames_at_report) * 1e9 / (double)(t - last_report),
                   (unsigned long long)(frames - 1), (double)draw_max / 1e6,
                   (unsigned long long)skipped);
            fflush(stdout);
            last_report = t;
            frames_at_report = frames;
            draw_max = 0;
        }
        next += period;
        uint64_t after = (uint64_t)pi0__now_ns();
        if (after > next + period) { /* late by more than a period: skip to the grid */
            uint64_t k = (after - next) / period;
            skipped += k;
            next += k * period;
        }
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        while (!g_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    double secs = (double)((uint64_t)pi0__now_ns() - t0) / 1e9;
    printf("camsim summary: %d cameras, %llu frames each in %.1f s (%.1f Hz), skipped periods "
           "%llu\n",
           ncam, (unsigned long long)frames, secs, secs > 0 ? (double)frames / secs : 0.0,
           (unsigned long long)skipped);
    fflush(stdout);
    for (int i = 0; i < ncam; i++)
        pi0_pub_destroy(pub[i]), free(bg[i]);
    return 0;
}
