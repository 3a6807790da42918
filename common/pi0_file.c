/* pi0_file.c — whole-file reads (see pi0_file.h). */
#include "pi0_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int pi0__read_file(const char *path, size_t max, char **buf, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return pi0_errorf(errno == ENOENT ? PI0_ENOENT : PI0_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
    /* A regular file is read in one go (its size + 1, so EOF shows without growing);
     * anything else, or a file that grows meanwhile, doubles the buffer up to max + 1. */
    size_t cap = 1 << 16;
    struct stat st;
    int have_st = fstat(fileno(fp), &st) == 0;
    if (have_st && S_ISDIR(st.st_mode)) {
        fclose(fp);
        return pi0_errorf(PI0_EIO, "%s: is a directory, not a file", path);
    }
    if (have_st && S_ISREG(st.st_mode) && st.st_size > 0) cap = (size_t)st.st_size + 1;
    if (cap - 1 > max) cap = max + 1;
    char *b = malloc(cap);
    size_t n = 0;
    int rc = b ? PI0_OK : pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
    while (!rc) {
        n += fread(b + n, 1, cap - 1 - n, fp);
        if (n < cap - 1) break; /* end of file or an error (ferror below) */
        int c = fgetc(fp);      /* full: is there more? */
        if (c == EOF) break;
        if (n >= max) {
            rc = pi0_errorf(PI0_EFORMAT, "%s: larger than %zu bytes", path, max);
            break;
        }
        size_t ncap = cap <= (max + 1) / 2 ? 2 * cap : max + 1;
        char *nb = realloc(b, ncap);
        if (!nb) {
            rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
            break;
        }
        b = nb;
        cap = ncap;
        b[n++] = (char)c;
    }
    if (!rc && ferror(fp)) rc = pi0_errorf(PI0_EIO, "%s: read error", path);
    fclose(fp);
    if (rc) {
        free(b);
        return rc;
    }
    b[n] = 0;
    *buf = b;
    if (len) *len = n;
    return PI0_OK;
}
