/* npy.h — read and write NumPy .npy arrays (format versions 1.0, 2.0 and 3.0).
 *
 * Supported dtypes: uint8 ('|u1'), little-endian int32 ('<i4'), float32 ('<f4') and float64
 * ('<f8', numpy's default float; see pi0_npy_to_f32); C order
 * only. Anything else (other dtypes, big-endian, fortran_order True, object arrays) is
 * refused with a message naming the file and what was found. The shape is parsed from the
 * header and checked against the file size (a truncated or over-long file is an error).
 *
 * Self-contained: depends only on common/ (dtypes; errors via pi0_errorf / pi0_last_error).
 * Functions allocate only where said; they may be called from any thread. */
#ifndef PI0_NPY_H
#define PI0_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_dtype.h"
#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PI0_NPY_MAX_DIMS 8

/* An array read from a file. `data` is malloc'ed (64-byte aligned) and owned by the
 * struct; free it with pi0_npy_free. */
typedef struct pi0_npy {
    pi0_dtype dtype;                 /* PI0_U8, PI0_I32, PI0_F32 or PI0_F64 */
    int ndim;                        /* 0..PI0_NPY_MAX_DIMS */
    int64_t shape[PI0_NPY_MAX_DIMS]; /* unused dims are 1 */
    int64_t numel;                   /* product of shape (1 for a 0-d array) */
    void *data;                      /* [numel] elements of dtype, C order */
} pi0_npy;

/* Reads `path` into *out (allocates). On failure *out is zeroed, nothing is allocated,
 * and the error names the file: PI0_ENOENT / PI0_EIO (cannot read), PI0_EFORMAT (not an
 * .npy file, bad header, truncated or trailing data), PI0_ETYPE (unsupported dtype or
 * fortran order). */
int pi0_npy_read(const char *path, pi0_npy *out);

/* Converts a float32 or float64 array to float32 in place (any shape; float64 values
 * are rounded to nearest). PI0_ETYPE naming `what` for other dtypes. */
int pi0_npy_to_f32(pi0_npy *a, const char *what);

/* Frees a's data and zeroes it; NULL and zeroed structs are ok. */
void pi0_npy_free(pi0_npy *a);

/* Checks a read array: dtype must be `dtype`, ndim `ndim`, and each shape[i] must equal
 * want[i] unless want[i] < 0 (any). `what` names the array in the message
 * (e.g. "--state FILE"). PI0_ETYPE / PI0_ESHAPE on mismatch. */
int pi0_npy_expect(const pi0_npy *a, const char *what, pi0_dtype dtype, int ndim,
                   const int64_t *want);

/* Formats a shape as "(2, 3)" (brackets "()") or "[2, 3]" (brackets "[]") into buf,
 * always NUL-terminated and truncated to cap; a negative dim prints as "*" (any).
 * Returns buf. */
const char *pi0__shape_format(char *buf, size_t cap, const int64_t *shape, int ndim,
                              const char *brackets);

/* 1 if shape [ndim] matches want [want_ndim] (same rank; want[i] < 0 matches any). */
int pi0__shape_matches(const int64_t *shape, int ndim, const int64_t *want, int want_ndim);

/* Writes a C-order array as .npy version 1.0 (header padded to 64 bytes as numpy does).
 * The file is written to `path`.tmp and renamed, so readers never see a partial file. */
int pi0_npy_write(const char *path, pi0_dtype dtype, int ndim, const int64_t *shape,
                  const void *data);

/* Parses an in-memory .npy image (used by pi0_npy_read and the fuzz tests): on success
 * *data_off is the byte offset of the data and shape/dtype are filled in (no data copied).
 * `what` names the source in errors. */
int pi0_npy_parse(const void *buf, size_t size, const char *what, pi0_npy *out,
                  size_t *data_off);

#ifdef __cplusplus
}
#endif
#endif /* PI0_NPY_H */
