/* pi0_status.c — status table, per-thread error details, assertions. */
#include "pi0_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static _Thread_local char detail[512];
static _Thread_local int detail_status;

const char *pi0_strerror(int status) {
    switch (status) {
#define PI0__MSG(name, value, msg)                                                             \
    case value:                                                                                \
        return msg;
        PI0_STATUS_TABLE(PI0__MSG)
#undef PI0__MSG
    }
    return "unknown error";
}

const char *pi0_errname(int status) {
    switch (status) {
#define PI0__NAME(name, value, msg)                                                            \
    case value:                                                                                \
        return #name;
        PI0_STATUS_TABLE(PI0__NAME)
#undef PI0__NAME
    }
    return "PI0_E?";
}

int pi0_errorf(int status, const char *fmt, ...) {
    /* Formatted apart first: an argument may be pi0_last_error() itself (adding context
     * to the previous detail), which vsnprintf must not overwrite while reading it. */
    char tmp[sizeof detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(detail, tmp, sizeof detail);
    detail_status = status;
    return status;
}

int pi0_errorc(int status) {
    detail[0] = 0;
    detail_status = status;
    return status;
}

const char *pi0_last_error_for(int status) {
    return status == detail_status && detail[0] ? detail : pi0_strerror(status);
}

const char *pi0_last_error(void) {
    return detail[0] ? detail : pi0_strerror(detail_status);
}

void pi0_clear_error(void) {
    detail[0] = 0;
    detail_status = 0;
}

void pi0__assert_fail(const char *expr, const char *file, int line, const char *func) {
    fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func, expr);
    abort();
}
