/*
 * session.h — one recording: the sampling loop over one or more target processes.
 *
 * The session owns the targets (the root and, with `subprocesses`, every Python descendant found
 * by walking /proc/PID/task/TID/children), pauses them per sample only in blocking mode, notices
 * exits and execs, and hands every snapshot to a session_sink (the recorder's rec_sink through
 * rec_sink_as_session_sink(), or `top`'s live view). The root need not be Python: a shell that
 * runs python without exec is watched for its Python descendants, and a process found before its
 * interpreter has started is retried every 20 ms for a while after it execs. It stops at the
 * duration, at *stop (set by the caller's signal handler or by the sink's tick), when the sink
 * reaches max_size bytes, or when the root and every Python process under it have exited. It
 * never leaves a target stopped: blocking mode resumes and detaches on every path.
 */
#ifndef PT_SESSION_H
#define PT_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "readers/runtime.h"
#include "readers/walk.h"
#include "symbols/native.h"

/*
 * New targets found outside the session (the daemon's /proc discovery). next() is called during
 * the chores (every 200 ms) until it returns false; each call hands over one opened Python
 * process, which the session then owns (it closes it). A daemon's session never ends because no
 * target is left, and reuses the slots of exited targets.
 */
struct session_discover {
    bool (*next)(void *ctx, uint64_t now_ns, struct py_proc **py);
    void *ctx;
};

struct session_opts {
    double rate_hz;
    double duration_s;        /* 0 = until stopped */
    double jitter;            /* fraction of the period, 0 = none */
    bool blocking;
    bool subprocesses;
    bool native;              /* with blocking: unwind native stacks too (sink's feed_native) */
    uint64_t max_size;        /* bytes, 0 = unlimited */
    bool status_line;         /* live one-line status on stderr */
    const char *out_path;     /* for the status line */
    const struct session_discover *discover;   /* NULL: only the root (and its children) */
};

/*
 * Where the session's snapshots go. Every callback gets ctx. Process handles are what process()
 * returned (non-zero). tick() runs once per sampling round, after the walks and chores, on the
 * sampling thread: it is where a sink flushes, or redraws and reads keys — it must return quickly
 * (well under a period) and may set the caller's stop flag; an error from it ends the session
 * with SESSION_ERROR. samples/errors feed the status line; bytes is compared with max_size (a
 * sink without a size returns 0).
 */
struct session_sink {
    uint32_t (*process)(void *ctx, struct py_proc *p, uint32_t parent);
    void (*feed)(void *ctx, uint32_t proc, struct py_proc *p, const struct py_snapshot *snap,
                 uint64_t t_ns);
    void (*feed_failed)(void *ctx, uint32_t proc, uint64_t t_ns);
    /* With opts.native: feed with every thread's native stack (NULL: the sink takes no native
     * stacks, feed is used). */
    void (*feed_native)(void *ctx, uint32_t proc, struct py_proc *p,
                        const struct py_snapshot *snap, const struct native_snap *ns,
                        uint64_t t_ns);
    void (*process_exit)(void *ctx, uint32_t proc, uint64_t t_ns, int64_t status);
    enum pt_status (*tick)(void *ctx, uint64_t now_ns, struct pt_err *err);
    uint64_t (*samples)(void *ctx);
    uint64_t (*errors)(void *ctx);
    uint64_t (*bytes)(void *ctx);
    void *ctx;
    /* Optional (NULL: not recorded). The eBPF backend's off-CPU periods: snap holds the one
     * thread that left the CPU at t_begin with that stack and ran again at t_end. */
    void (*off_cpu)(void *ctx, uint32_t proc, struct py_proc *p, const struct py_snapshot *snap,
                    uint64_t t_begin, uint64_t t_end);
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
    uint64_t busy_ns;           /* wall time from each round's wake-up to the end of its work */
    int64_t root_exit_status;   /* run mode: the child's exit code, -signal; else INT64_MIN */
    uint32_t processes;
};

/*
 * Records until one of the stop conditions. root is the open root target (NULL when the root is
 * not Python and only its descendants are traced); root_pid its pid; child_pid is the root when
 * pytrace started it (run), else 0 — then its exit status is collected.
 */
enum pt_status session_run(const struct session_opts *o, struct py_proc *root, pid_t root_pid,
                           pid_t child_pid, const struct session_sink *sink, volatile int *stop,
                           struct session_result *res, struct pt_err *err);

#endif
