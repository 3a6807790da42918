/* fuzz_mcap.c — libFuzzer target for the MCAP reader and the CDR decoders (what `play`,
 * `info` and `record --recover` run on untrusted files). Not part of `make test` (the
 * deterministic mutation loop of test_mcap is); run `make fuzz-mcap [FUZZ_SECONDS=60]`. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/mcap.h"
#include "shm/ros2msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int decode(const pi0__mcap_message *m, void *ctx) {
    int kind = m->schema ? pi0__ros2_kind_of(m->schema->name) : 0;
    if (kind) pi0__ros2_decode(kind, m->data, m->len, m->sequence, ctx);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd = -1;
    static pi0__buf out;
    if (fd < 0) fd = memfd_create("mcap", 0);
    if (fd < 0 || ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    pi0__mcap_reader *r;
    if (pi0__mcap_open(path, &r)) return 0;
    pi0__mcap_scan_info info;
    pi0__mcap_scan(r, decode, &out, &info);
    pi0__mcap_close(r);
    return 0;
}
