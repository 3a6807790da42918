/* pi0_status.h — the one status type of pi0rt.
 *
 * Every fallible function returns int: 0 (PI0_OK) on success or a negative PI0_E* code
 * from the table below. On error the function leaves its objects unchanged and records,
 * for the calling thread, the code together with a detail (which file, key, topic or
 * value was wrong): `return pi0_errorf(PI0_EFORMAT, "%s: bad magic", path);`. Routine
 * outcomes on hot paths (an empty poll's PI0_EAGAIN, a wait's PI0_ETIMEDOUT) record the
 * code alone with pi0_errorc(), which formats nothing.
 *
 * The caller reports a status it got with pi0_last_error_for(status): the recorded detail
 * when it was recorded with that same code, else the code's generic text — never the
 * detail of an earlier, unrelated failure.
 *
 * To add a code: append one line to PI0_STATUS_TABLE (never renumber existing codes). */
#ifndef PI0_STATUS_H
#define PI0_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PI0_API          __attribute__((visibility("default")))
#define PI0_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PI0_API
#define PI0_PRINTF(f, a)
#endif

#if defined(__cplusplus)
#define PI0_NORETURN [[noreturn]]
#else
#define PI0_NORETURN _Noreturn
#endif

/*     name             value  message */
#define PI0_STATUS_TABLE(X)                                                                    \
    X(PI0_OK, 0, "success")                                                                    \
    X(PI0_EINVAL, -1, "invalid argument")                                                      \
    X(PI0_ENOMEM, -2, "out of memory")                                                         \
    X(PI0_EIO, -3, "input/output error")                                                       \
    X(PI0_ENOENT, -4, "no such file, topic or key")                                            \
    X(PI0_EEXIST, -5, "already exists")                                                        \
    X(PI0_EBUSY, -6, "resource busy or still in use")                                          \
    X(PI0_ETIMEDOUT, -7, "timed out")                                                          \
    X(PI0_EAGAIN, -8, "nothing available yet, try again")                                      \
    X(PI0_EPERM, -9, "permission denied")                                                      \
    X(PI0_EFORMAT, -10, "malformed data (bad magic, header or size)")                          \
    X(PI0_EVERSION, -11, "unsupported version")                                                \
    X(PI0_ETYPE, -12, "wrong type")                                                            \
    X(PI0_ERANGE, -13, "value out of range")                                                   \
    X(PI0_ENOTSUP, -14, "not supported or not built")                                          \
    X(PI0_EDEAD, -15, "peer process is dead")                                                  \
    X(PI0_ESHAPE, -16, "tensor or array shape mismatch")                                       \
    X(PI0_EOVERRUN, -17, "reader fell behind and lost samples")                                \
    X(PI0_ESTALE, -18, "data is older than allowed")                                           \
    X(PI0_ECONFIG, -19, "bad configuration value")

enum pi0_status {
#define PI0__ENUM(name, value, msg) name = value,
    PI0_STATUS_TABLE(PI0__ENUM)
#undef PI0__ENUM
};

/* Static text for a status code; never NULL ("unknown error" for foreign codes). */
PI0_API const char *pi0_strerror(int status);

/* Symbolic name of a status code ("PI0_EINVAL"); never NULL. */
PI0_API const char *pi0_errname(int status);

/* Records `status` and a detail message for the calling thread and returns `status`
 * unchanged. */
PI0_API int pi0_errorf(int status, const char *fmt, ...) PI0_PRINTF(2, 3);

/* Records `status` with no detail (nothing formatted: a few stores) and returns it. For
 * routine outcomes on hot paths, where the code says everything. */
PI0_API int pi0_errorc(int status);

/* What to print for a status a call returned: the calling thread's recorded detail if it
 * was recorded with `status`, else pi0_strerror(status). Never NULL; valid until the next
 * pi0_errorf()/pi0_errorc() on this thread. */
PI0_API const char *pi0_last_error_for(int status);

/* The calling thread's last recorded detail (whatever its code), or the generic text of
 * the last recorded code; never NULL. For code that has just seen the status recorded
 * (tests); to report a status, use pi0_last_error_for. */
PI0_API const char *pi0_last_error(void);

/* Forgets the calling thread's recorded code and detail. */
PI0_API void pi0_clear_error(void);

/* Always-on assertion for our own invariants (never for bad input): prints file:line and
 * aborts. Inside pi0rt only: pi0__assert_fail is not exported from the shared library. */
#define PI0_ASSERT(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) pi0__assert_fail(#cond, __FILE__, __LINE__, __func__);                    \
    } while (0)
PI0_NORETURN void pi0__assert_fail(const char *expr, const char *file, int line,
                                   const char *func);

#ifdef __cplusplus
}
#endif
#endif /* PI0_STATUS_H */
