/* test_common.c — the status table and per-thread error details. */
#include "harness.h"
#include "common/pi0_dtype.h"
#include "common/pi0_hash.h"
#include "common/pi0_status.h"

static void test_strerror_names_every_code(void) {
#define X(name, value, msg)                                                                    \
    CHECK_EQ_STR(pi0_strerror(value), msg);                                                    \
    CHECK_EQ_STR(pi0_errname(value), #name);
    PI0_STATUS_TABLE(X)
#undef X
    CHECK_EQ_STR(pi0_strerror(-9999), "unknown error");
}

static void test_errorf_keeps_detail_and_status(void) {
    CHECK_EQ_INT(pi0_errorf(PI0_EFORMAT, "%s: bad magic 0x%x", "seg", 0x42), PI0_EFORMAT);
    CHECK_EQ_STR(pi0_last_error(), "seg: bad magic 0x42");
    pi0_clear_error();
    CHECK_EQ_STR(pi0_last_error(), "success");
}

/* A detail is shown only for the code it was recorded with: a later failure that
 * recorded nothing, or recorded only its code, never shows an earlier one's detail. */
static void test_detail_belongs_to_its_code(void) {
    CHECK_EQ_INT(pi0_errorf(PI0_ENOENT, "model.safetensors: no such file"), PI0_ENOENT);
    CHECK_EQ_STR(pi0_last_error_for(PI0_ENOENT), "model.safetensors: no such file");
    CHECK_EQ_STR(pi0_last_error_for(PI0_ENOMEM), "out of memory");
    CHECK_EQ_INT(pi0_errorc(PI0_EAGAIN), PI0_EAGAIN);
    CHECK_EQ_STR(pi0_last_error_for(PI0_EAGAIN), "nothing available yet, try again");
    CHECK_EQ_STR(pi0_last_error_for(PI0_ENOENT), "no such file, topic or key");
    CHECK_EQ_STR(pi0_last_error(), "nothing available yet, try again");
    pi0_errorf(PI0_EIO, "first");
    pi0_errorf(PI0_EIO, "second");
    CHECK_EQ_STR(pi0_last_error_for(PI0_EIO), "second");
    CHECK_EQ_STR(pi0_last_error_for(PI0_OK), "success");
    pi0_clear_error();
    CHECK_EQ_STR(pi0_last_error_for(PI0_EIO), "input/output error");
}

/* f16 <-> f32: every finite or infinite half survives the round trip; rounding cases
 * checked by hand (ties to even, overflow to Inf, subnormals). */
/* A detail that wraps the previous one (the usual way of adding context) reads it whole. */
static void test_errorf_wraps_last_error(void) {
    pi0_errorf(PI0_ENOENT, "cannot open /x/config.json: No such file or directory");
    pi0_errorf(PI0_ENOENT, "node.ini: model.dir: %s", pi0_last_error());
    CHECK_EQ_STR(pi0_last_error(),
                 "node.ini: model.dir: cannot open /x/config.json: No such file or directory");
}

static void test_f16_conversions(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        float f = pi0_f16_to_f32((uint16_t)h);
        if (nan ? !isnan(f) || !isnan(pi0_f16_to_f32(pi0_f32_to_f16(f)))
                : pi0_f32_to_f16(f) != h)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(pi0_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(pi0_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(pi0_f32_to_f16(65504.0f), 0x7bff);            /* largest half */
    CHECK_EQ_INT(pi0_f32_to_f16(65520.0f), 0x7c00);            /* tie above it: Inf */
    CHECK_EQ_INT(pi0_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);     /* tie: to even */
    CHECK_EQ_INT(pi0_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie: to even (up) */
    CHECK_EQ_INT(pi0_f32_to_f16(0x1p-24f), 0x0001);            /* smallest subnormal */
    CHECK_EQ_INT(pi0_f32_to_f16(0x1p-25f), 0x0000);            /* tie with 0: to even */
    CHECK_EQ_INT(pi0_f32_to_f16(3 * 0x1p-26f), 0x0001);
    CHECK_EQ_INT(pi0_f32_to_f16(-INFINITY), 0xfc00);
    CHECK(isnan(pi0_f16_to_f32(pi0_f32_to_f16(NAN))));
    CHECK_EQ_INT(pi0_dtype_size(PI0_BF16), 2);
    CHECK_EQ_STR(pi0_dtype_name(PI0_F16), "f16");
}

/* FNV-1a 64 against the published test vectors (Fowler/Noll/Vo reference code). */
static void test_fnv1a_vectors(void) {
    CHECK(pi0__fnv1a_str("") == 0xcbf29ce484222325ull);
    CHECK(pi0__fnv1a_str("a") == 0xaf63dc4c8601ec8cull);
    CHECK(pi0__fnv1a_str("foobar") == 0x85944171f73967e8ull);
    CHECK(pi0__fnv1a("foobar", 6) == 0x85944171f73967e8ull);
    CHECK(pi0__fnv1a("a\0b", 3) != pi0__fnv1a_str("a"));
}

int main(int argc, char **argv) {
    static const pi0_test tests[] = {
        TEST(test_strerror_names_every_code),
        TEST(test_errorf_keeps_detail_and_status),
        TEST(test_detail_belongs_to_its_code),
        TEST(test_errorf_wraps_last_error),
        TEST(test_f16_conversions),
        TEST(test_fnv1a_vectors),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
