/* pi0_cli.h — the command-line conventions of every pi0rt-* tool: options parsed with
 * getopt_long (opterr = 0, an optstring starting with ':'), errors on one line naming the
 * option or value, exit status 0 on success, PI0_EXIT_FAILURE when the work failed and
 * PI0_EXIT_USAGE when the command line was wrong. */
#ifndef PI0_CLI_H
#define PI0_CLI_H

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI0_EXIT_FAILURE 1 /* the command was fine, the work failed */
#define PI0_EXIT_USAGE   2 /* unknown option, missing or bad value, missing argument */

/* After getopt_long returned c = '?' (unknown option) or ':' (option without its value):
 * prints "prog: unknown option --x (see --help)" or "prog: --x needs a value (see
 * --help)" and returns PI0_EXIT_USAGE. */
static inline int pi0__opt_error(const char *prog, char *const argv[], int c) {
    const char *arg = argv[optind - 1];
    int n = (int)strcspn(arg, "=");
    char opt[3] = {'-', (char)optopt, 0};
    if (strncmp(arg, "--", 2) != 0 && optopt > 0 && optopt < 128) { /* a short option */
        arg = opt;
        n = 2;
    }
    if (c == ':')
        fprintf(stderr, "%s: %.*s needs a value (see --help)\n", prog, n, arg);
    else
        fprintf(stderr, "%s: unknown option %.*s (see --help)\n", prog, n, arg);
    return PI0_EXIT_USAGE;
}

/* An option's number: the whole of s must parse (strtod) to a value in [lo, hi], else
 * *bad is set to 1 (left alone otherwise, so several options can share one flag). */
static inline double pi0__parse_num(const char *s, double lo, double hi, int *bad) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi)) *bad = 1;
    return v;
}

/* An option's unsigned integer: the whole of s must be decimal digits (no sign, no
 * space) giving a value in [lo, hi], else *bad is set to 1 (left alone otherwise). Exact
 * over all of uint64_t, which pi0__parse_num (a double) is not. */
static inline uint64_t pi0__parse_u64(const char *s, uint64_t lo, uint64_t hi, int *bad) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!(*s >= '0' && *s <= '9') || *end || errno || v < lo || v > hi) *bad = 1;
    return (uint64_t)v;
}

#endif /* PI0_CLI_H */
