/*
 * dsink.h — the daemon's recorder: one .pytrace file per traced process, rotated, in a directory
 * kept under a size budget.
 *
 * A dsink is a session_sink (dsink_as_session_sink) that multiplexes: each process the session
 * registers gets its own rec_sink (file), so processes of different CPython versions, coming and
 * going, never share a file. Files rotate together every rotate_ns (a new epoch: with by_date,
 * a new YYYY_MM_DD_HH_MM_SS folder), one by one when a file reaches rotate_bytes, and all at once
 * when *rotate_now is set (SIGHUP). Rotating closes the file (its trailer written: it is
 * *finished*) and opens the next, with the same recording id and the next rotation number
 * (header fields 20 and 21). A file that got no sample at all is removed instead (a rotation or
 * SIGTERM just after it opened). Each finished file is handed to finished() — the push queue — and
 * then, with max_disk, the oldest finished files in dir are deleted until the directory fits.
 *
 * Names: DIR/[EPOCH/]<comm>-ns<NSPID>-pid<PID>-<recording id>-<rotation>.pytrace, NSPID being the
 * pid inside the process's own PID namespace and PID the one pytrace sees.
 *
 * Any sampler that produces snapshots can drive a dsink through the session_sink calls: the
 * ptrace/process_vm_readv session today, an eBPF sampler later.
 */
#ifndef PT_DSINK_H
#define PT_DSINK_H

#include <stdbool.h>
#include <stdint.h>

#include "attach/session.h"
#include "output/trace.h"

struct dsink_stats {
    uint32_t open_files;         /* processes being recorded */
    uint64_t processes;          /* processes ever registered */
    uint64_t samples, errors;    /* thread samples, of them bad (all files) */
    uint64_t finished;           /* files finished */
    uint64_t deleted;            /* finished files deleted for max_disk */
    uint64_t disk_bytes;         /* .pytrace bytes in dir at the last check */
};

enum dsink_note_kind {
    DSINK_OPENED = 1,            /* path: a new file */
    DSINK_FINISHED = 2,          /* path: a finished file */
    DSINK_DELETED = 3,           /* path: deleted for max_disk */
    DSINK_ERROR = 4,             /* msg: what failed (the process is not recorded until the next
                                  * rotation) */
    DSINK_STATUS = 5,            /* every status_ns: see dsink_get_stats */
    DSINK_EMPTY = 6,             /* path: a file that got no sample, removed (not finished) */
    DSINK_SAMPLED = 7,           /* path: the file's first sample was recorded */
};

struct dsink_opts {
    const char *dir;
    bool by_date;
    uint64_t rotate_ns;          /* 0 = never by time */
    uint64_t rotate_bytes;       /* 0 = never by size */
    uint64_t max_disk;           /* bytes; 0 = unlimited */
    uint64_t status_ns;          /* 0 = no status notes */
    volatile int *rotate_now;    /* set by the caller (SIGHUP); cleared when done */
    /* Header of every file: rate, tags, host, version; pid/name/... are the process's. */
    double rate_hz;
    const struct trace_tag *tags;
    size_t n_tags;
    const char *host;
    const char *pytrace_version;
    /* Rules every file records with (exclude/fold while interning; the built-in secret-name
     * redaction), and their text for the header. NULL: none. Must outlive the dsink. */
    const struct rules *rules;
    const char *filters_text;
    const char *backend;         /* header's backend: "ebpf" with --ebpf, NULL = default */
    /* A finished file (complete, closed): may be queued for the sinks. info: its trace's
     * process name and pids. Called on the sampling thread: must not block. */
    void (*finished)(void *ctx, const char *path);
    void (*note)(void *ctx, enum dsink_note_kind kind, const char *path, const char *msg);
    void *ctx;
};

struct dsink;

/* Creates dir (0700) if missing. */
enum pt_status dsink_new(struct dsink **out, const struct dsink_opts *o, struct pt_err *err);

struct session_sink dsink_as_session_sink(struct dsink *d);

void dsink_get_stats(const struct dsink *d, struct dsink_stats *out);

/* Finishes every open file at t_ns (SIGTERM), hands them to finished(), frees d. */
void dsink_close(struct dsink *d, uint64_t t_ns);

/*
 * Deletes the oldest (by modification time) .pytrace files under dir (and its date folders),
 * skipping the `n_open` paths in `open`, until the total is at most max_bytes (0: only
 * measure). Empty date folders go too. Returns the bytes left; *deleted counts deletions.
 */
uint64_t dsink_enforce_disk(const char *dir, uint64_t max_bytes, const char *const *open,
                            size_t n_open, uint64_t *deleted,
                            void (*on_delete)(void *ctx, const char *path), void *ctx);

#endif
