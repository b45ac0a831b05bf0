/*
 * discover.h — the daemon's process discovery: which processes on the machine (or in the pod's
 * shared PID namespace) are CPython and should be traced.
 *
 * A full scan lists /proc every interval_ns; in between, a quick scan looks only at pids that are
 * new since the last one, as soon as /proc/loadavg's last pid says there are some (a fork). Each
 * narrows by uid, cgroup and a regex over the command line, and lets the readers decide what is Python (py_proc_open), never the name. What
 * it learned is remembered per (pid, start time) in a table sorted by pid (/proc lists pids in
 * ascending order, so a scan merges in one pass): a process found not to be Python is not opened
 * again until it execs (its executable changes); a young process whose interpreter is not there
 * yet is retried a few times; a process handed over is left to its new owner (the session) until
 * its pid goes away or is reused. Every decision is reported through a callback, for the log.
 */
#ifndef PT_DISCOVER_H
#define PT_DISCOVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach/session.h"
#include "readers/runtime.h"
#include "util/err.h"

struct disc_opts {
    const char *match;          /* POSIX extended regex over the command line; NULL = any */
    const char *cgroup;         /* a cgroup path prefix (/proc/PID/cgroup); NULL = any */
    long uid;                   /* owner uid; -1 = any */
    uint64_t interval_ns;       /* between scans; 0 = 400 ms */
    /* Called for each decision: st is PT_OK for a process handed over, else why it was not
     * (PT_ENOTPY, PT_EPERM, PT_EVERSION...); msg is the reader's one-line message. */
    void (*note)(void *ctx, pid_t pid, enum pt_status st, const char *msg);
    void *ctx;
};

struct disc_stats {
    uint64_t scans;             /* both kinds */
    uint64_t quick_scans;       /* of which quick (new pids only) */
    uint64_t opened;            /* processes handed over */
    uint64_t rejected;          /* decided not to trace (not Python, filtered out, denied) */
    uint32_t known;             /* entries in the table */
};

struct disc;

/* When to scan. Pure, so tests drive it with made-up clocks (tests/unit/test_discover.c). */
struct disc_clock {
    uint64_t interval_ns;       /* between full scans */
    uint64_t last_full_ns;      /* start of the last full scan */
    uint64_t last_scan_ns;      /* start of the last scan of either kind */
    uint64_t last_peek_ns;      /* the last look at /proc/loadavg */
    uint64_t scan_cost_ns;      /* what the last scan took */
    long last_pid;              /* /proc/loadavg's last pid at the last scan (-1: unknown) */
    bool scanned;               /* a full scan has run */
};

enum disc_plan {
    DISC_WAIT,                  /* nothing due */
    DISC_PEEK,                  /* look at the last pid; a quick scan if it moved */
    DISC_FULL,                  /* a full scan */
};

enum disc_plan disc_plan(const struct disc_clock *c, uint64_t now_ns);

/* PT_EUSAGE when the regex does not compile (message says why). */
enum pt_status disc_new(struct disc **out, const struct disc_opts *o, struct pt_err *err);
void disc_free(struct disc *d);

/* Hands over the next newly found Python process (the caller owns and closes it), scanning
 * /proc first when a scan is due. False when there is none (until the next scan). */
bool disc_next(struct disc *d, uint64_t now_ns, struct py_proc **out);

void disc_get_stats(const struct disc *d, struct disc_stats *out);

/* d as the session's discovery (ctx = d). */
struct session_discover disc_as_session_discover(struct disc *d);

#endif
