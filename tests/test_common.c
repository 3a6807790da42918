/* test_common.c — the status table and per-thread error details. */
#include "harness.h"
#include "pi0_status.h"

static void test_strerror_names_every_code(void) {
#define X(name, value, msg)                                                   \
    CHECK_EQ_STR(pi0_strerror(value), msg);                                   \
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

int main(int argc, char **argv) {
    static const pi0_test tests[] = {
        TEST(test_strerror_names_every_code),
        TEST(test_errorf_keeps_detail_and_status),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
