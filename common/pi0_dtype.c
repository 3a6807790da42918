/* pi0_dtype.c — element sizes and names, bf16 / f16 conversions (see pi0_dtype.h). */
#include "pi0_dtype.h"

#include <math.h>
#include <string.h>

size_t pi0_dtype_size(pi0_dtype t) {
    switch (t) {
    case PI0_F32:
        return 4;
    case PI0_BF16:
        return 2;
    case PI0_F16:
        return 2;
    case PI0_I32:
        return 4;
    case PI0_U8:
        return 1;
    case PI0_F64:
        return 8;
    }
    return 0;
}

const char *pi0_dtype_name(pi0_dtype t) {
    switch (t) {
    case PI0_F32:
        return "f32";
    case PI0_BF16:
        return "bf16";
    case PI0_F16:
        return "f16";
    case PI0_I32:
        return "i32";
    case PI0_U8:
        return "u8";
    case PI0_F64:
        return "f64";
    }
    return "?";
}

uint16_t pi0_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even; Inf stays Inf */
    return (uint16_t)(u >> 16);
}

float pi0_bf16_to_f32(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float pi0_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0); /* Inf / quiet NaN */
    } else if (exp == 0) {
        float f = ldexpf((float)man, -24); /* zero or subnormal: exact */
        memcpy(&u, &f, 4);
        u |= sign;
    } else {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pi0_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
    int32_t ne = (int32_t)e - 127 + 15;
    if (ne >= 0x1f) return (uint16_t)(sign | 0x7c00);
    if (ne <= 0) { /* subnormal or zero, round to nearest even */
        if (ne < -10) return (uint16_t)sign;
        m |= 0x800000;
        int shift = 14 - ne;
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)ne << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* a carry into the exponent is right */
    return (uint16_t)(sign | h);
}
