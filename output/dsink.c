/*
 * dsink.c — per-process files, rotation and the directory budget for the daemon (see dsink.h).
 * Process handles given to the session are 1-based indexes into a table whose slots are reused
 * once a process's last file is finished.
 */
#include "output/dsink.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <unistd.h>

#include "attach/proc.h"
#include "output/record.h"

#define DSINK_COUNTER_NS 100000000ULL    /* CPU and RSS counters every 100 ms */

struct dproc {
    bool used;
    struct py_proc *py;
    pid_t pid, nspid;
    char comm[64];
    char recid[17];                      /* shared by the process's rotated files */
    uint32_t seq;                        /* rotation number of the open file */
    struct rec_sink *rs;                 /* NULL: could not open (retried at rotation) */
    char path[PATH_MAX];
    uint64_t opened_ns, rounds;
};

struct dsink {
    struct dsink_opts o;
    struct dproc *procs;
    uint32_t n, cap;
    char epoch[32];                      /* date folder of the current epoch ("" without) */
    uint64_t next_rotate_ns, next_status_ns;
    struct dsink_stats st;
    uint64_t closed_samples, closed_errors;
};

static void dsink_note(struct dsink *d, enum dsink_note_kind k, const char *path, const char *msg)
{
    if (d->o.note)
        d->o.note(d->o.ctx, k, path, msg);
}

static void dsink_new_epoch(struct dsink *d)
{
    if (!d->o.by_date)
        return;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(d->epoch, sizeof d->epoch, "%Y_%m_%d_%H_%M_%S", &tm);
}

enum pt_status dsink_new(struct dsink **out, const struct dsink_opts *o, struct pt_err *err)
{
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST)
        return pt_fail(err, PT_EFAIL, "cannot create the trace directory %s: %s", o->dir,
                       strerror(errno));
    /* A file, or a directory this user cannot write (read-only mount, another owner): every
     * trace would fail later, one log line each, while the daemon ran on recording nothing. */
    struct stat st;
    if (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pt_fail(err, PT_EFAIL, "the trace directory %s is not a directory; name a "
                       "directory with --dir", o->dir);
    if (access(o->dir, W_OK | X_OK) != 0)
        return pt_fail(err, PT_EFAIL, "cannot write to the trace directory %s: %s; name a "
                       "writable directory with --dir", o->dir, strerror(errno));
    struct dsink *d = calloc(1, sizeof *d);
    if (!d)
        return pt_fail(err, PT_EFAIL, "out of memory");
    d->o = *o;
    dsink_new_epoch(d);
    *out = d;
    return PT_OK;
}

static void dsink_sanitize(char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
            *s = '_';
}

static uint64_t dsink_clock(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static enum pt_status dsink_path(struct dsink *d, struct dproc *p, struct pt_err *err)
{
    char folder[PATH_MAX];
    snprintf(folder, sizeof folder, "%s%s%s", d->o.dir, d->epoch[0] ? "/" : "", d->epoch);
    if (d->epoch[0] && mkdir(folder, 0700) != 0 && errno != EEXIST)
        return pt_fail(err, PT_EFAIL, "cannot create %s: %s", folder, strerror(errno));
    int n = snprintf(p->path, sizeof p->path, "%s/%s-ns%d-pid%d-%s-%04u.pytrace", folder,
                     p->comm, (int)p->nspid, (int)p->pid, p->recid, p->seq);
    if (n < 0 || (size_t)n >= sizeof p->path)
        return pt_fail(err, PT_EFAIL, "trace path under %s is too long", folder);
    return PT_OK;
}

/* Opens p's next file (rotation p->seq) and registers the process in it. */
static void dsink_open(struct dsink *d, struct dproc *p, uint64_t t_ns)
{
    struct pt_err err;
    pt_err_clear(&err);
    char cmd[4096] = "", ver[32];
    pid_t ns[8];
    int64_t ns64[8];
    int nns = proc_nspid(p->pid, ns, 8);
    for (int i = 0; i < nns; i++)
        ns64[i] = ns[i];
    proc_cmdline(p->pid, cmd, sizeof cmd);
    py_version_str(&p->py->version, ver, sizeof ver);
    struct trace_meta meta = {
        .pid = p->pid, .nspid = ns64, .n_nspid = (size_t)(nns > 0 ? nns : 0), .name = p->comm,
        .python_version = ver, .python_binary = p->py->binary, .cmdline = cmd,
        .host = d->o.host, .pytrace_version = d->o.pytrace_version, .rate_hz = d->o.rate_hz,
        .tags = d->o.tags, .n_tags = d->o.n_tags,
        .filters = d->o.filters_text ? d->o.filters_text : "", .rotation_seq = p->seq,
        .recording_id = p->recid, .backend = d->o.backend,
    };
    meta.start_mono_ns = dsink_clock(CLOCK_MONOTONIC);
    meta.start_wall_ns = dsink_clock(CLOCK_REALTIME);
    p->rs = NULL;
    if (dsink_path(d, p, &err) != PT_OK ||
        rec_sink_open(&p->rs, p->path, false, &meta, NULL, DSINK_COUNTER_NS, &err) != PT_OK) {
        p->rs = NULL;
        dsink_note(d, DSINK_ERROR, p->path, err.msg);
        return;
    }
    if (d->o.rules)
        rec_sink_set_rules(p->rs, d->o.rules);
    rec_sink_process(p->rs, p->py, 0);
    p->opened_ns = t_ns;
    p->rounds = 0;
    dsink_note(d, DSINK_OPENED, p->path, "");
}

static void dsink_on_delete(void *ctx, const char *path)
{
    dsink_note(ctx, DSINK_DELETED, path, "");
}

/* Deletes for max_disk (skipping open files) and measures the directory. */
static void dsink_budget(struct dsink *d, uint64_t max_bytes)
{
    const char **open = calloc(d->n + 1, sizeof *open);
    size_t n_open = 0;
    for (uint32_t i = 0; open && i < d->n; i++)
        if (d->procs[i].used && d->procs[i].rs)
            open[n_open++] = d->procs[i].path;
    uint64_t deleted = 0;
    d->st.disk_bytes = dsink_enforce_disk(d->o.dir, open ? max_bytes : 0, open, n_open,
                                          &deleted, dsink_on_delete, d);
    d->st.deleted += deleted;
    free(open);
}

/* Finishes p's open file: trailer, close, hand over. */
static void dsink_finish(struct dsink *d, struct dproc *p, uint64_t t_ns, int64_t status)
{
    if (!p->rs)
        return;
    double secs = t_ns > p->opened_ns ? (double)(t_ns - p->opened_ns) / 1e9 : 0;
    struct trace_summary sum = {
        .end_mono_ns = t_ns, .walks = p->rounds,
        .achieved_hz = secs > 0 ? (double)p->rounds / secs : 0, .exit_status = status,
    };
    uint64_t samples = rec_sink_samples(p->rs);
    d->closed_samples += samples;
    d->closed_errors += rec_sink_errors(p->rs);
    struct pt_err err;
    pt_err_clear(&err);
    enum pt_status rc = rec_sink_close(p->rs, t_ns, &sum, &err);
    p->rs = NULL;
    if (rc != PT_OK) {
        dsink_note(d, DSINK_ERROR, p->path, err.msg);
        return;
    }
    if (!samples) {
        /* Opened just before a rotation, an exit or SIGTERM: nothing to keep or send. */
        unlink(p->path);
        dsink_note(d, DSINK_EMPTY, p->path, "");
        return;
    }
    d->st.finished++;
    dsink_note(d, DSINK_FINISHED, p->path, "");
    if (d->o.finished)
        d->o.finished(d->o.ctx, p->path);
    if (d->o.max_disk)
        dsink_budget(d, d->o.max_disk);
}

static void dsink_rotate(struct dsink *d, struct dproc *p, uint64_t t_ns)
{
    dsink_finish(d, p, t_ns, INT64_MIN);
    p->seq++;
    dsink_open(d, p, t_ns);
}

static uint32_t ds_process(void *ctx, struct py_proc *py, uint32_t parent)
{
    struct dsink *d = ctx;
    (void)parent;
    uint32_t i = 0;
    while (i < d->n && d->procs[i].used)
        i++;
    if (i == d->n) {
        if (d->n == d->cap) {
            uint32_t cap = d->cap ? d->cap * 2 : 16;
            struct dproc *np = realloc(d->procs, cap * sizeof *np);
            if (!np)
                return 0;
            d->procs = np;
            d->cap = cap;
        }
        d->n++;
    }
    struct dproc *p = &d->procs[i];
    memset(p, 0, sizeof *p);
    p->used = true;
    p->py = py;
    p->pid = py->pid;
    pid_t ns[8];
    int nns = proc_nspid(py->pid, ns, 8);
    p->nspid = nns > 0 ? ns[nns - 1] : py->pid;
    if (proc_comm(py->pid, py->pid, p->comm, sizeof p->comm) != 0 || !p->comm[0])
        snprintf(p->comm, sizeof p->comm, "python");
    dsink_sanitize(p->comm);
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id)
        id = dsink_clock(CLOCK_REALTIME) ^ ((uint64_t)py->pid << 32);
    snprintf(p->recid, sizeof p->recid, "%016llx", (unsigned long long)id);
    d->st.processes++;
    dsink_open(d, p, dsink_clock(CLOCK_MONOTONIC));
    return i + 1;
}

static struct dproc *dsink_proc(struct dsink *d, uint32_t h)
{
    return h && h <= d->n && d->procs[h - 1].used ? &d->procs[h - 1] : NULL;
}

static void ds_feed(void *ctx, uint32_t h, struct py_proc *py, const struct py_snapshot *snap,
                    uint64_t t_ns)
{
    struct dproc *p = dsink_proc(ctx, h);
    if (!p || !p->rs)
        return;
    p->py = py;
    p->rounds++;
    bool first = rec_sink_samples(p->rs) == 0;
    rec_sink_feed(p->rs, 1, py, snap, t_ns);
    if (first && rec_sink_samples(p->rs))
        dsink_note(ctx, DSINK_SAMPLED, p->path, "");
}

/* --ebpf: a blocked period of one of p's threads, as an off-CPU span in its file. */
static void ds_off_cpu(void *ctx, uint32_t h, struct py_proc *py, const struct py_snapshot *snap,
                       uint64_t t_begin, uint64_t t_end)
{
    struct dproc *p = dsink_proc(ctx, h);
    (void)py;
    if (p && p->rs)
        rec_sink_off_cpu(p->rs, 1, snap, t_begin, t_end);
}

static void ds_feed_failed(void *ctx, uint32_t h, uint64_t t_ns)
{
    struct dproc *p = dsink_proc(ctx, h);
    if (!p || !p->rs)
        return;
    p->rounds++;
    rec_sink_feed_failed(p->rs, 1, t_ns);
}

static void ds_process_exit(void *ctx, uint32_t h, uint64_t t_ns, int64_t status)
{
    struct dsink *d = ctx;
    struct dproc *p = dsink_proc(d, h);
    if (!p)
        return;
    if (p->rs)
        rec_sink_process_exit(p->rs, 1, t_ns, status);
    dsink_finish(d, p, t_ns, status);
    p->used = false;
}

static enum pt_status ds_tick(void *ctx, uint64_t now_ns, struct pt_err *err)
{
    struct dsink *d = ctx;
    (void)err;
    if (!d->next_rotate_ns)
        d->next_rotate_ns = d->o.rotate_ns ? now_ns + d->o.rotate_ns : UINT64_MAX;
    if (!d->next_status_ns)
        d->next_status_ns = d->o.status_ns ? now_ns + d->o.status_ns : UINT64_MAX;
    bool all = now_ns >= d->next_rotate_ns || (d->o.rotate_now && *d->o.rotate_now);
    if (all) {
        if (d->o.rotate_now)
            *d->o.rotate_now = 0;
        d->next_rotate_ns = d->o.rotate_ns ? now_ns + d->o.rotate_ns : UINT64_MAX;
        dsink_new_epoch(d);
    }
    for (uint32_t i = 0; i < d->n; i++) {
        struct dproc *p = &d->procs[i];
        if (!p->used)
            continue;
        struct pt_err e;
        pt_err_clear(&e);
        if (p->rs && rec_sink_tick(p->rs, now_ns, &e) != PT_OK)
            dsink_note(d, DSINK_ERROR, p->path, e.msg);
        if (all || (p->rs && d->o.rotate_bytes && rec_sink_bytes(p->rs) >= d->o.rotate_bytes))
            dsink_rotate(d, p, now_ns);
    }
    if (now_ns >= d->next_status_ns) {
        d->next_status_ns = now_ns + d->o.status_ns;
        dsink_budget(d, 0);
        dsink_note(d, DSINK_STATUS, "", "");
    }
    return PT_OK;
}

void dsink_get_stats(const struct dsink *d, struct dsink_stats *out)
{
    *out = d->st;
    out->samples = d->closed_samples;
    out->errors = d->closed_errors;
    out->open_files = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        const struct dproc *p = &d->procs[i];
        if (p->used && p->rs) {
            out->open_files++;
            out->samples += rec_sink_samples(p->rs);
            out->errors += rec_sink_errors(p->rs);
        }
    }
}

static uint64_t ds_samples(void *ctx)
{
    struct dsink_stats s;
    dsink_get_stats(ctx, &s);
    return s.samples;
}

static uint64_t ds_errors(void *ctx)
{
    struct dsink_stats s;
    dsink_get_stats(ctx, &s);
    return s.errors;
}

static uint64_t ds_bytes(void *ctx)
{
    (void)ctx;
    return 0;
}

struct session_sink dsink_as_session_sink(struct dsink *d)
{
    return (struct session_sink){
        .process = ds_process, .feed = ds_feed, .feed_failed = ds_feed_failed,
        .process_exit = ds_process_exit, .tick = ds_tick, .samples = ds_samples,
        .errors = ds_errors, .bytes = ds_bytes, .ctx = d, .off_cpu = ds_off_cpu,
    };
}

void dsink_close(struct dsink *d, uint64_t t_ns)
{
    for (uint32_t i = 0; i < d->n; i++) {
        struct dproc *p = &d->procs[i];
        if (p->used)
            dsink_finish(d, p, t_ns, INT64_MIN);
        p->used = false;
    }
    free(d->procs);
    free(d);
}
