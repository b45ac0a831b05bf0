/*
 * discover.c — /proc scans for the daemon (see discover.h). The table is rebuilt at each scan by
 * merging the sorted old table with the sorted pids just listed; an entry is carried over only
 * when pid and start time both match, so a reused pid is a new process.
 */
#include "attach/discover.h"

#include "attach/sampler.h"

#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DISC_DEFAULT_INTERVAL_NS 400000000ULL
/* Between full scans /proc/loadavg's last pid is peeked at this often; when it moved, a quick
 * scan (only the new pids) runs at once, unless the last scan's cost says to wait: a scan is
 * never more than 1/DISC_COST_SHARE of the time. A gunicorn worker is then traced within
 * ~20 ms of its fork instead of up to a whole interval later, when a short-lived worker may have
 * served its requests already. */
#define DISC_PEEK_NS 20000000ULL
#define DISC_COST_SHARE 50
#define DISC_YOUNG_S 3.0          /* a process this young may not have its interpreter yet */
#define DISC_TRIES 6              /* scans a young non-Python process is retried */
#define DISC_LAP_PIDS 16384       /* fewer new pids than this since the last scan: no wrap */

enum disc_state { DISC_NEW, DISC_PENDING, DISC_TRACKED, DISC_REJECTED };

struct disc_entry {
    pid_t pid;
    uint64_t start;               /* start time, clock ticks since boot */
    enum disc_state state;
    uint32_t tries;
    char exe[256];                /* when rejected: the image it was rejected as */
};

struct disc {
    struct disc_opts o;
    regex_t re;
    bool has_re;
    struct disc_entry *tab, *next;
    size_t n, cap, n_next, cap_next;
    struct py_proc **out;         /* found, not yet handed over */
    size_t n_out, cap_out, out_pos;
    struct disc_clock clock;
    struct disc_stats stats;
    double clk_tck;
};

enum pt_status disc_new(struct disc **out, const struct disc_opts *o, struct pt_err *err)
{
    struct disc *d = calloc(1, sizeof *d);
    if (!d)
        return pt_fail(err, PT_EFAIL, "out of memory");
    d->o = *o;
    if (!d->o.interval_ns)
        d->o.interval_ns = DISC_DEFAULT_INTERVAL_NS;
    if (o->match) {
        int rc = regcomp(&d->re, o->match, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &d->re, msg, sizeof msg);
            free(d);
            return pt_fail(err, PT_EUSAGE, "--match '%s' is not a valid regular expression: %s",
                           o->match, msg);
        }
        d->has_re = true;
    }
    long tck = sysconf(_SC_CLK_TCK);
    d->clk_tck = tck > 0 ? (double)tck : 100.0;
    d->clock.last_pid = -1;
    d->clock.interval_ns = d->o.interval_ns;
    *out = d;
    return PT_OK;
}

void disc_free(struct disc *d)
{
    if (!d)
        return;
    if (d->has_re)
        regfree(&d->re);
    for (size_t i = d->out_pos; i < d->n_out; i++)
        py_proc_close(d->out[i]);
    free(d->out);
    free(d->tab);
    free(d->next);
    free(d);
}

static int disc_read(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, cap - 1);
    close(fd);
    if (r < 0)
        return -1;
    buf[r] = '\0';
    if (len)
        *len = (size_t)r;
    return 0;
}

/* Start time (field 22 of /proc/PID/stat, after the parenthesised comm); 0 or -1. */
static int disc_start_time(pid_t pid, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (disc_read(path, buf, sizeof buf, NULL) != 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    *start = strtoull(p + 1, NULL, 10);
    return 0;
}

static double disc_age_s(const struct disc *d, uint64_t start)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - (double)start / d->clk_tck;
}

static bool disc_cgroup_ok(const struct disc *d, pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    if (disc_read(path, buf, sizeof buf, NULL) != 0)
        return false;
    size_t n = strlen(d->o.cgroup);
    /* Lines are "hierarchy:controllers:path". */
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = strchr(line, ':');
        p = p ? strchr(p + 1, ':') : NULL;
        if (p && strncmp(p + 1, d->o.cgroup, n) == 0 &&
            (p[1 + n] == '\0' || p[1 + n] == '/' || d->o.cgroup[n - 1] == '/'))
            return true;
    }
    return false;
}

static bool disc_filters_ok(const struct disc *d, pid_t pid)
{
    char path[64];
    if (d->o.uid >= 0) {
        struct stat st;
        snprintf(path, sizeof path, "/proc/%d", (int)pid);
        if (stat(path, &st) != 0 || (long)st.st_uid != d->o.uid)
            return false;
    }
    if (d->o.cgroup && d->o.cgroup[0] && !disc_cgroup_ok(d, pid))
        return false;
    if (d->has_re) {
        char cmd[4096];
        if (proc_cmdline(pid, cmd, sizeof cmd) != 0 || regexec(&d->re, cmd, 0, NULL, 0) != 0)
            return false;
    }
    return true;
}

static void disc_note(struct disc *d, pid_t pid, enum pt_status st, const char *msg)
{
    if (d->o.note)
        d->o.note(d->o.ctx, pid, st, msg);
}

static void disc_emit(struct disc *d, struct py_proc *py)
{
    if (d->n_out == d->cap_out) {
        size_t cap = d->cap_out ? d->cap_out * 2 : 16;
        struct py_proc **o = realloc(d->out, cap * sizeof *o);
        if (!o) {
            py_proc_close(py);
            return;
        }
        d->out = o;
        d->cap_out = cap;
    }
    d->out[d->n_out++] = py;
}

/* Decides about a new (or exec'd, or still starting) process. false: drop the entry (gone). */
static bool disc_try(struct disc *d, struct disc_entry *e, const char *exe)
{
    snprintf(e->exe, sizeof e->exe, "%s", exe);
    if (!disc_filters_ok(d, e->pid)) {
        e->state = DISC_REJECTED;
        d->stats.rejected++;
        return true;
    }
    struct py_proc *py = NULL;
    struct pt_err err;
    pt_err_clear(&err);
    enum pt_status rc = py_proc_open(&py, e->pid, &err);
    if (rc == PT_OK) {
        e->state = DISC_TRACKED;
        d->stats.opened++;
        disc_note(d, e->pid, PT_OK, "");
        disc_emit(d, py);
        return true;
    }
    if (rc == PT_ENOPROC)
        return false;
    if (rc == PT_ENOTPY && ++e->tries < DISC_TRIES && disc_age_s(d, e->start) < DISC_YOUNG_S) {
        e->state = DISC_PENDING;
        return true;
    }
    e->state = DISC_REJECTED;
    d->stats.rejected++;
    disc_note(d, e->pid, rc, err.msg);
    return true;
}

static int disc_pid_cmp(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* Pids in /proc, ascending; malloc'd, *n set. */
static pid_t *disc_list(size_t *n)
{
    DIR *dir = opendir("/proc");
    size_t cap = 256;
    pid_t *pids = malloc(cap * sizeof *pids);
    *n = 0;
    if (!dir || !pids) {
        if (dir)
            closedir(dir);
        return pids;
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        if (*n == cap) {
            pid_t *p = realloc(pids, cap * 2 * sizeof *p);
            if (!p)
                break;
            pids = p;
            cap *= 2;
        }
        pids[(*n)++] = (pid_t)atoi(de->d_name);
    }
    closedir(dir);
    qsort(pids, *n, sizeof *pids, disc_pid_cmp);
    return pids;
}

static bool disc_push_next(struct disc *d, const struct disc_entry *e)
{
    if (d->n_next == d->cap_next) {
        size_t cap = d->cap_next ? d->cap_next * 2 : 256;
        struct disc_entry *t = realloc(d->next, cap * sizeof *t);
        if (!t)
            return false;
        d->next = t;
        d->cap_next = cap;
    }
    d->next[d->n_next++] = *e;
    return true;
}

/* The last pid the kernel handed out in this pid namespace (/proc/loadavg's fifth field), or -1. */
static long disc_last_pid(void)
{
    char buf[128];
    if (disc_read("/proc/loadavg", buf, sizeof buf, NULL) != 0)
        return -1;
    const char *p = strrchr(buf, ' ');
    return p ? strtol(p + 1, NULL, 10) : -1;
}

/*
 * One process of a scan: carry its entry over (or start one) and act on what changed. `same`:
 * no pid was handed out twice since the last scan (the kernel's pid counter did not wrap), so a
 * pid already in the table is the same process and its start time need not be read again — a
 * /proc/PID/stat read per process per scan was most of a scan's cost. A quick scan (!full) acts
 * on new processes only: whether a known one exec'd, or a young one became Python, waits for the
 * next full scan.
 */
static void disc_visit(struct disc *d, pid_t pid, size_t *old, bool same, bool full)
{
    if (pid == getpid())
        return;
    while (*old < d->n && d->tab[*old].pid < pid)
        (*old)++;
    bool known = *old < d->n && d->tab[*old].pid == pid;
    uint64_t start = known ? d->tab[*old].start : 0;
    if (!(known && same) && disc_start_time(pid, &start) != 0)
        return;
    struct disc_entry e = { .pid = pid, .start = start, .state = DISC_NEW };
    if (known && d->tab[*old].start == start)
        e = d->tab[*old];
    if (e.state != DISC_TRACKED && (full || e.state == DISC_NEW)) {
        char exe[256] = "";
        proc_exe(pid, exe, sizeof exe);
        if (e.state == DISC_REJECTED && strcmp(exe, e.exe) != 0) {
            e.state = DISC_NEW;   /* exec'd into something else: decide again */
            e.tries = 0;
        }
        if (e.state != DISC_REJECTED) {
            if (!exe[0]) {
                e.state = DISC_REJECTED;   /* a kernel thread, or a zombie */
            } else if (!disc_try(d, &e, exe)) {
                return;
            }
        }
    }
    disc_push_next(d, &e);
}

static void disc_scan(struct disc *d, bool full, long last)
{
    size_t n, old = 0;
    /* The counter only grows until it wraps to the bottom; a whole lap between two scans would
     * take hundreds of thousands of forks (pid_max is at least 32768). */
    bool same = last >= 0 && d->clock.last_pid >= 0 && last >= d->clock.last_pid &&
                last - d->clock.last_pid < DISC_LAP_PIDS;
    pid_t *pids = disc_list(&n);
    d->n_next = 0;
    for (size_t i = 0; pids && i < n; i++)
        disc_visit(d, pids[i], &old, same, full);
    d->clock.last_pid = last;
    free(pids);
    struct disc_entry *t = d->tab;
    size_t cap = d->cap;
    d->tab = d->next;
    d->n = d->n_next;
    d->cap = d->cap_next;
    d->next = t;
    d->cap_next = cap;
    d->n_next = 0;
    d->stats.scans++;
    d->stats.quick_scans += !full;
}

enum disc_plan disc_plan(const struct disc_clock *c, uint64_t now_ns)
{
    if (!c->scanned || now_ns - c->last_full_ns >= c->interval_ns)
        return DISC_FULL;
    uint64_t gap = c->scan_cost_ns * DISC_COST_SHARE;
    if (gap < DISC_PEEK_NS)
        gap = DISC_PEEK_NS;
    if (now_ns - c->last_peek_ns < DISC_PEEK_NS || now_ns - c->last_scan_ns < gap)
        return DISC_WAIT;
    return DISC_PEEK;
}

/* Runs the scan that is due, if any. The last pid is read before /proc is listed, so a process
 * forked during the listing moves it again and is caught by the next peek. */
static void disc_maybe_scan(struct disc *d, uint64_t now_ns)
{
    enum disc_plan plan = disc_plan(&d->clock, now_ns);
    if (plan == DISC_WAIT)
        return;
    long last = disc_last_pid();
    if (plan == DISC_PEEK) {
        d->clock.last_peek_ns = now_ns;
        if (last < 0 || last == d->clock.last_pid)
            return;
    }
    bool full = plan == DISC_FULL;
    disc_scan(d, full, last);
    uint64_t end = sampler_now_ns();
    d->clock.scan_cost_ns = end > now_ns ? end - now_ns : 0;
    d->clock.last_scan_ns = d->clock.last_peek_ns = now_ns;
    if (full) {
        d->clock.last_full_ns = now_ns;
        d->clock.scanned = true;
    }
}

bool disc_next(struct disc *d, uint64_t now_ns, struct py_proc **out)
{
    if (d->out_pos == d->n_out) {
        d->out_pos = d->n_out = 0;
        disc_maybe_scan(d, now_ns);
        if (!d->n_out)
            return false;
    }
    *out = d->out[d->out_pos++];
    return true;
}

void disc_get_stats(const struct disc *d, struct disc_stats *out)
{
    *out = d->stats;
    out->known = (uint32_t)d->n;
}

static bool disc_session_next(void *ctx, uint64_t now_ns, struct py_proc **py)
{
    return disc_next(ctx, now_ns, py);
}

struct session_discover disc_as_session_discover(struct disc *d)
{
    return (struct session_discover){ .next = disc_session_next, .ctx = d };
}
