/*
 * err.h — how pytrace's library code reports failure.
 *
 * Library functions return an enum pt_status (PT_OK == 0) and, on failure, fill a struct pt_err
 * with a one-line message that names the thing and says what to do. Only cli/ prints messages and
 * turns a status into the process exit code; the numeric values ARE the documented exit codes
 * (DESIGN.md: 0 ok, 1 failure, 2 usage, 3 no such process, 4 permission denied, 5 not a Python
 * process, 6 unsupported Python version, 7 corrupt or truncated input file).
 */
#ifndef PT_ERR_H
#define PT_ERR_H

#include <stdarg.h>

enum pt_status {
    PT_OK = 0,
    PT_EFAIL = 1,      /* anything else: I/O, target vanished mid-read, out of memory */
    PT_EUSAGE = 2,     /* bad command line */
    PT_ENOPROC = 3,    /* no such process */
    PT_EPERM = 4,      /* not allowed to read the target (CAP_SYS_PTRACE, ptrace_scope) */
    PT_ENOTPY = 5,     /* the process is not CPython (or its runtime cannot be found) */
    PT_EVERSION = 6,   /* a CPython version pytrace has no layout for */
    PT_ECORRUPT = 7,   /* corrupt or truncated input file */
};

/* What to do about PT_EPERM, appended to every permission message. */
#define PT_PERM_ADVICE                                                                             \
    "run as root or as the target's user with CAP_SYS_PTRACE (e.g. sudo, or docker run "           \
    "--cap-add SYS_PTRACE), and check kernel.yama.ptrace_scope (0, or 1 for your own child "      \
    "processes, allows it without CAP_SYS_PTRACE)"

struct pt_err {
    enum pt_status code;
    char msg[512];
};

/* Fill err (if non-NULL) with code and a printf-style message; returns code, so a caller can
 * write `return pt_fail(err, PT_ENOPROC, "no process %d", pid);`. */
enum pt_status pt_fail(struct pt_err *err, enum pt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear err to PT_OK with an empty message. */
void pt_err_clear(struct pt_err *err);

/* Short name of a status ("no such process", ...), for logs. */
const char *pt_status_name(enum pt_status code);

#endif
