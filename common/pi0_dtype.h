/* pi0_dtype.h — element types and the host-side float conversions of pi0rt.
 *
 * Shared by the device interface (buffer and weight dtypes), the checkpoint loader
 * (safetensors F32/BF16/F16) and pi0rt-mkmodel. Pure functions: no allocation, any
 * thread. */
#ifndef PI0_DTYPE_H
#define PI0_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pi0_dtype {
    PI0_F32 = 0,
    PI0_BF16 = 1,
    PI0_F16 = 2,
    PI0_I32 = 3,
    PI0_U8 = 4,
    PI0_F64 = 5, /* .npy files only (numpy's default float) */
} pi0_dtype;

/* Bytes per element (0 for an unknown value) and a short name ("f32", "bf16", ...). */
PI0_API size_t pi0_dtype_size(pi0_dtype t);
PI0_API const char *pi0_dtype_name(pi0_dtype t);

/* f32 -> bf16 / f16: round to nearest, ties to even; NaN stays NaN (quiet), Inf stays
 * Inf, f16 overflow gives Inf and underflow gives (signed) subnormals or zero.
 * bf16 / f16 -> f32 is exact. */
PI0_API uint16_t pi0_f32_to_bf16(float x);
PI0_API float pi0_bf16_to_f32(uint16_t x);
PI0_API uint16_t pi0_f32_to_f16(float x);
PI0_API float pi0_f16_to_f32(uint16_t x);

#ifdef __cplusplus
}
#endif
#endif /* PI0_DTYPE_H */
