/* pi0_file.h — whole-file reads for the small files pi0rt parses (JSON configs, norm stats,
 * tokenizer models). Internal to the project (pi0__ prefix); any thread. */
#ifndef PI0_FILE_H
#define PI0_FILE_H

#include <stddef.h>

#include "pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads all of `path` (a regular file, pipe or device) into *buf (malloc'ed, NUL-terminated
 * after the *len bytes; the caller frees it). At most `max` (< SIZE_MAX) bytes are accepted. On
 * failure *buf and *len are untouched, nothing is allocated, and the error names the file:
 * PI0_ENOENT / PI0_EIO "cannot open" (or a read error), PI0_EFORMAT when it holds more than
 * `max` bytes, PI0_ENOMEM. `len` may be NULL. */
int pi0__read_file(const char *path, size_t max, char **buf, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* PI0_FILE_H */
