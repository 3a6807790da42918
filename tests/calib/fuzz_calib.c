/* fuzz_calib.c — libFuzzer target for the robot-file reader (`make fuzz-calib`, clang):
 * any bytes are parsed as a robot file; one that loads must give usable transforms and a
 * description; one that does not must name a line. The ready files are the seed corpus. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/pi0_calib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pi0_calib *c = NULL;
    int rc = pi0_calib_parse("f.ini", (const char *)data, size, &c);
    if (rc != 0) {
        int line;
        if (rc != PI0_ECONFIG || sscanf(pi0_last_error(), "f.ini:%d: ", &line) != 1) abort();
        return 0;
    }
    double raw[PI0_CALIB_DIM_MAX], st[PI0_CALIB_DIM_MAX];
    for (int i = 0; i < PI0_CALIB_DIM_MAX; i++)
        raw[i] = 0.1 * i - 1;
    float chunk[3 * 64], out[3 * 64];
    for (int i = 0; i < 3 * 64; i++)
        chunk[i] = (float)(0.01 * i - 0.5);
    if (pi0_calib_state_in(c, raw, PI0_CALIB_DIM_MAX, st) != 0) abort();
    if (pi0_calib_actions_out(c, chunk, 3, 64, st, out) != 0) abort();
    pi0_calib_clamp(c, out, out + pi0_calib_out_dim(c));
    char d[16384];
    pi0_calib_describe(c, d, sizeof d);
    for (int s = 0; s < PI0_CALIB_CAMERAS; s++)
        if (strlen(pi0_calib_camera_get(c, s)->topic) > PI0_CALIB_TOPIC_MAX) abort();
    pi0_calib_destroy(c);
    return 0;
}
