/* safetensors.h — read-only, validating reader of one `.safetensors` file (internal to
 * pipeline/).
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v", ...}}   (optional)
 * then the data section; offsets are relative to its start.
 *
 * pi0__st_open mmaps the file read-only and checks everything before returning: header
 * length inside the file, JSON object, every entry's dtype (F32, BF16, F16; anything else
 * is PI0_ETYPE naming the tensor and dtype), shape (0..4 non-negative integer dims),
 * data_offsets inside the data section with end - begin == numel × dtype size, no two
 * tensors overlapping (in any order; gaps are tolerated), data aligned to the dtype size,
 * no duplicate names. Any violation is an error naming the file and the tensor, never a
 * crash (tested with a fuzzer). The tensor data is never read or copied here. */
#ifndef PI0_SAFETENSORS_H
#define PI0_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/pi0_weights.h" /* pi0_tensor */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pi0__st_file pi0__st_file;

/* Opens and validates `path`. On failure *out is untouched and pi0_last_error_for(status) says
 * what was wrong (PI0_ENOENT/PI0_EIO: cannot open/map; PI0_EFORMAT: bad header/offsets;
 * PI0_ETYPE: unsupported dtype; PI0_ENOTSUP: more than 4 dims; PI0_ENOMEM). */
int pi0__st_open(const char *path, pi0__st_file **out);

/* Unmaps and frees; every pi0_tensor obtained from the file becomes invalid. NULL ok. */
void pi0__st_close(pi0__st_file *f);

const char *pi0__st_path(const pi0__st_file *f);
int pi0__st_count(const pi0__st_file *f);
/* Tensor i (0 <= i < count), in header order. Its name and data live as long as f. */
const pi0_tensor *pi0__st_tensor(const pi0__st_file *f, int i);
/* Tensor by exact key, or NULL. */
const pi0_tensor *pi0__st_find(const pi0__st_file *f, const char *key);

/* Size of a safetensors dtype name ("F32" -> 4, "BF16"/"F16" -> 2) and the pi0_dtype;
 * returns 0 for any other name. */
size_t pi0__st_dtype_parse(const char *name, pi0_dtype *dtype);
/* "F32", "BF16", "F16" (safetensors spelling). */
const char *pi0__st_dtype_name(pi0_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif /* PI0_SAFETENSORS_H */
