/*
 * session.h — one recording: the sampling loop over one or more target processes.
 *
 * The session owns the targets (the root and, with `subprocesses`, every Python descendant found
 * by walking /proc/PID/task/TID/children), pauses them per sample only in blocking mode, notices
 * exits and execs, and hands every snapshot to the rec_sink. It stops at the duration, at *stop
 * (set by the caller's signal handler), when the file reaches max_size, or when every target has
 * exited. It never leaves a target stopped: blocking mode resumes and detaches on every path.
 */
#ifndef PT_SESSION_H
#define PT_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "output/record.h"
#include "readers/runtime.h"

struct session_opts {
    double rate_hz;
    double duration_s;        /* 0 = until stopped */
    double jitter;            /* fraction of the period, 0 = none */
    bool blocking;
    bool subprocesses;
    uint64_t max_size;        /* bytes, 0 = unlimited */
    bool status_line;         /* live one-line status on stderr */
    const char *out_path;     /* for the status line */
};

enum session_end {
    SESSION_DURATION = 1,
    SESSION_STOPPED = 2,      /* signal */
    SESSION_TARGET_EXITED = 3,
    SESSION_MAX_SIZE = 4,
    SESSION_ERROR = 5,
};

struct session_result {
    enum session_end end;
    uint64_t start_ns, end_ns;
    uint64_t walks, missed, overruns;
    double achieved_hz;
    int64_t root_exit_status;   /* run mode: the child's exit code, -signal; else INT64_MIN */
    uint32_t processes;
};

/*
 * Records until one of the stop conditions. root is the open root target (NULL when the root is
 * not Python and only its descendants are traced); root_pid its pid; child_pid is the root when
 * pytrace started it (run), else 0 — then its exit status is collected.
 */
enum pt_status session_run(const struct session_opts *o, struct py_proc *root, pid_t root_pid,
                           pid_t child_pid, struct rec_sink *sink, volatile int *stop,
                           struct session_result *res, struct pt_err *err);

#endif
