/*
 * ebpf_session.c — the recording loop of `attach --ebpf` and `run --ebpf` (see ebpf.h): the same
 * stop conditions and sink calls as session.c, with samples arriving from the kernel instead of
 * being taken on a timer. With PYTRACE_EBPF_STATS=1 it also enables the kernel's BPF run-time
 * statistics and prints the sampler's counters at the end (bench/ebpf.py reads them).
 */
#include "attach/ebpf.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef PT_HAVE_EBPF
#include <bpf/bpf.h>
#endif

#include "attach/proc.h"
#include "attach/sampler.h"

#define EBPF_CHORE_NS 200000000ULL
/* attach/run: records are drained this often. They come without wake-ups, and every wake-up
 * costs (≈ 40–90 µs here, mostly a cold start of the drain, plus the thread-list refresh and the
 * process check it brings): at 100 ms, a sleeping target cost pytrace 1.2–1.4 ms of CPU a second,
 * at 500 ms 0.5–0.6. The program wakes pytrace sooner when 2 MiB of records wait or a new thread
 * needs mapping (send() and traced() in pysample.bpf.c); SIGINT/SIGTERM and the end of a `run`
 * child interrupt the wait; the writer's once-a-second flush is kept. */
#define EBPF_POLL_MS 500
/* The daemon: its look for new processes (a peek at /proc/loadavg, a quick scan after a fork)
 * rides on the wake-ups, so a fork is seen within ~50 ms, for ≈ 1 ms of CPU a second. */
#define EBPF_DAEMON_POLL_MS 50

struct ebpf_run {
    pid_t child_pid;
    bool child_reaped;
    int64_t child_status;
    int stat_fd;   /* the root's /proc/PID/stat, kept open for the liveness check */
};

/* `run`: the child's exit interrupts the wait for records (no SA_RESTART), so it is seen at once
 * rather than at the next drain. */
static volatile sig_atomic_t child_signalled;

static void on_child(int sig)
{
    (void)sig;
    child_signalled = 1;
}

static void reap(struct ebpf_run *R)
{
    if (!R->child_pid || R->child_reaped)
        return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)R->child_pid, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
        return;
    R->child_reaped = true;
    R->child_status = si.si_code == CLD_EXITED ? si.si_status : -(int64_t)si.si_status;
}

/* The kernel's own accounting of the programs' run time; the returned fd keeps it on. */
static int enable_bpf_stats(void)
{
#ifdef PT_HAVE_EBPF
    if (getenv("PYTRACE_EBPF_STATS"))
        return bpf_enable_stats(BPF_STATS_RUN_TIME);
#endif
    return -1;
}

/* pytrace's own CPU (user + system) so far, ns. */
static uint64_t self_cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

/* PYTRACE_EBPF_STATS: pytrace's CPU and the samples from EBPF_STEADY_NS after the start on, when
 * the one-off work of a recording's first moments (code objects decoded, line tables, the first
 * thread-list reads) is done: the steady cost per sample. */
#define EBPF_STEADY_NS 1000000000ULL
struct steady {
    bool taken;
    uint64_t cpu_ns, samples, written;
};

static void print_stats(struct ebpf_sampler *e, uint64_t start, uint64_t end, uint64_t cpu_ns,
                        uint64_t written, const struct steady *sd, uint64_t cpu_end,
                        uint64_t written_end)
{
    if (!getenv("PYTRACE_EBPF_STATS"))
        return;
    struct ebpf_stats st;
    ebpf_get_stats(e, &st);
    fprintf(stderr,
            "pytrace: ebpf stats: samples=%" PRIu64 " off_cpu=%" PRIu64 " misses=%" PRIu64
            " drops=%" PRIu64 " faults=%" PRIu64 " refreshes=%" PRIu64 " late=%" PRIu64 " gaps=%" PRIu64 " unresolved=%" PRIu64 " prog_run_ns=%" PRIu64
            " prog_run_cnt=%" PRIu64 " clock_run_ns=%" PRIu64 " clock_run_cnt=%" PRIu64
            " switch_run_ns=%" PRIu64 " switch_run_cnt=%" PRIu64 " loop_cpu_ns=%" PRIu64
            " written=%" PRIu64 " seconds=%.3f steady_cpu_ns=%" PRIu64 " steady_samples=%" PRIu64
            " steady_written=%" PRIu64 "\n",
            st.samples, st.off_cpu, st.misses, st.drops, st.faults, st.refreshes, st.late, st.gap_samples, st.unresolved, st.prog_run_ns,
            st.prog_run_cnt, st.clock_run_ns, st.clock_run_cnt, st.switch_run_ns,
            st.switch_run_cnt, cpu_ns, written, (double)(end - start) / 1e9,
            sd->taken ? cpu_end - sd->cpu_ns : 0, sd->taken ? st.samples - sd->samples : 0,
            sd->taken ? written_end - sd->written : 0);
}

/* How long to wait for records: EBPF_POLL_MS (100 ms while new code objects come: ebpf_poll_ms),
 * or until the recording's deadline. */
static int poll_ms(const struct ebpf_sampler *e, uint64_t now, uint64_t deadline)
{
    int ms = ebpf_poll_ms(e, EBPF_POLL_MS);
    if (deadline <= now)
        return 0;
    uint64_t left = (deadline - now + 999999) / 1000000;
    return left < (uint64_t)ms ? (int)left : ms;
}

static enum session_end loop(const struct session_opts *o, struct ebpf_sampler *e,
                             struct py_proc *root, uint32_t proc, struct ebpf_run *R,
                             const struct session_sink *sink, volatile int *stop, uint64_t start,
                             struct steady *sd, struct pt_err *err)
{
    bool stats = getenv("PYTRACE_EBPF_STATS") != NULL;
    uint64_t deadline = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
    uint64_t last_chore = start;
    for (;;) {
        if (*stop)
            return SESSION_STOPPED;
        if (ebpf_poll(e, sink, poll_ms(e, sampler_now_ns(), deadline)) < 0) {
            pt_fail(err, PT_EFAIL, "--ebpf: reading the ring buffer failed");
            return SESSION_ERROR;
        }
        uint64_t now = sampler_now_ns();
        if (now >= deadline)
            return SESSION_DURATION;
        if (stats && !sd->taken && now - start >= EBPF_STEADY_NS) {
            struct ebpf_stats st;
            ebpf_get_stats(e, &st);
            *sd = (struct steady){true, self_cpu_ns(), st.samples, sink->samples(sink->ctx)};
        }
        if (now - last_chore >= EBPF_CHORE_NS || child_signalled) {
            last_chore = now;
            child_signalled = 0;
            reap(R);
            if (R->child_reaped || !proc_alive_fd(root->pid, &R->stat_fd)) {
                ebpf_poll(e, sink, 0);
                ebpf_remove_target(e, root->pid);
                sink->process_exit(sink->ctx, proc, now,
                                   R->child_reaped ? R->child_status : INT64_MIN);
                return SESSION_TARGET_EXITED;
            }
        }
        if (sink->tick(sink->ctx, now, err) != PT_OK)
            return SESSION_ERROR;
        if (o->max_size && sink->bytes(sink->ctx) >= o->max_size)
            return SESSION_MAX_SIZE;
    }
}

static struct ebpf_sampler *prepared;   /* see ebpf_session_prepare() */

enum pt_status ebpf_session_prepare(double rate_hz, struct pt_err *err)
{
    struct ebpf_opts eo = {.rate_hz = rate_hz, .off_cpu = true};
    ebpf_session_discard();
    return ebpf_open(&prepared, &eo, err);
}

void ebpf_session_discard(void)
{
    ebpf_close(prepared);
    prepared = NULL;
}

enum pt_status ebpf_session_run(const struct session_opts *o, struct py_proc *root,
                                pid_t root_pid, pid_t child_pid, const struct session_sink *sink,
                                volatile int *stop, struct session_result *res,
                                struct pt_err *err)
{
    memset(res, 0, sizeof *res);
    res->root_exit_status = INT64_MIN;
    if (!root)
        return pt_fail(err, PT_EFAIL, "--ebpf: process %d is not Python, and --subprocesses is "
                       "not supported with --ebpf yet", (int)root_pid);
    if (o->blocking)
        return pt_fail(err, PT_EUSAGE, "--ebpf samples threads while the kernel has them "
                       "stopped already: --blocking does not apply");
    int stats_fd = enable_bpf_stats();
    struct ebpf_opts eo = {.rate_hz = o->rate_hz, .off_cpu = true};
    struct ebpf_sampler *e = prepared;
    enum pt_status rc = PT_OK;
    prepared = NULL;
    if (!e)
        rc = ebpf_open(&e, &eo, err);
    if (rc != PT_OK) {
        if (stats_fd >= 0)
            close(stats_fd);
        return rc;
    }
    uint32_t proc = sink->process(sink->ctx, root, 0);
    rc = ebpf_add_target(e, root, proc, err);
    if (rc == PT_OK && getenv("PYTRACE_EBPF_STATS"))
        fprintf(stderr, "pytrace: ebpf ready\n");   /* for bench/ebpf.py: tracing from now on */
    struct ebpf_run R = {child_pid, false, INT64_MIN, -1};
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    child_signalled = 0;
    bool chld = child_pid > 0 && sigaction(SIGCHLD, &sa, &old_sa) == 0;
    uint64_t start = sampler_now_ns(), cpu0 = self_cpu_ns(), written0 = sink->samples(sink->ctx);
    struct steady sd = {false, 0, 0, 0};
    res->end = rc == PT_OK ? loop(o, e, root, proc, &R, sink, stop, start, &sd, err)
                           : SESSION_ERROR;
    uint64_t end = sampler_now_ns(), cpu_end = self_cpu_ns();
    uint64_t written_end = sink->samples(sink->ctx);
    ebpf_poll(e, sink, 0);
    if (res->end != SESSION_TARGET_EXITED)
        ebpf_flush(e, sink);
    reap(&R);
    if (chld)
        sigaction(SIGCHLD, &old_sa, NULL);
    if (R.stat_fd >= 0)
        close(R.stat_fd);
    struct ebpf_stats st;
    ebpf_get_stats(e, &st);
    print_stats(e, start, end, cpu_end - cpu0, written_end - written0, &sd, cpu_end, written_end);
    ebpf_close(e);
    if (stats_fd >= 0)
        close(stats_fd);
    res->start_ns = start;
    res->end_ns = end;
    res->walks = st.samples;
    res->missed = st.drops;
    res->processes = 1;
    res->achieved_hz = end > start ? (double)st.samples * 1e9 / (double)(end - start) : 0;
    res->root_exit_status = R.child_reaped ? R.child_status : INT64_MIN;
    return res->end == SESSION_ERROR ? (err->code ? err->code : PT_EFAIL) : PT_OK;
}

/* ---- daemon --ebpf: every process the discovery hands over, one BPF sampler for all ---------- */

#define EBPF_MAX_TARGETS 1024

struct ebpf_target {
    struct py_proc *py;
    uint32_t proc;
};

/* Hands new processes to the sampler; returns how many are traced now. */
static int add_discovered(const struct session_opts *o, struct ebpf_sampler *e,
                          const struct session_sink *sink, struct ebpf_target *t, int n,
                          uint64_t now)
{
    struct py_proc *py;
    struct pt_err err;
    while (o->discover->next(o->discover->ctx, now, &py)) {
        if (n == EBPF_MAX_TARGETS) {
            py_proc_close(py);
            continue;
        }
        uint32_t proc = sink->process(sink->ctx, py, 0);
        pt_err_clear(&err);
        if (ebpf_add_target(e, py, proc, &err) != PT_OK) {
            sink->process_exit(sink->ctx, proc, now, INT64_MIN);
            py_proc_close(py);
            continue;
        }
        t[n++] = (struct ebpf_target){py, proc};
    }
    return n;
}

/* Finishes the targets that exited; returns how many are left. */
static int drop_exited(struct ebpf_sampler *e, const struct session_sink *sink,
                       struct ebpf_target *t, int n, uint64_t now)
{
    for (int i = 0; i < n;) {
        if (proc_alive(t[i].py->pid)) {
            i++;
            continue;
        }
        ebpf_poll(e, sink, 0);
        ebpf_remove_target(e, t[i].py->pid);
        sink->process_exit(sink->ctx, t[i].proc, now, INT64_MIN);
        py_proc_close(t[i].py);
        t[i] = t[--n];
    }
    return n;
}

enum pt_status ebpf_daemon_run(const struct session_opts *o, const struct session_sink *sink,
                               volatile int *stop, struct session_result *res, struct pt_err *err)
{
    memset(res, 0, sizeof *res);
    res->root_exit_status = INT64_MIN;
    if (!o->discover)
        return pt_fail(err, PT_EUSAGE, "--ebpf daemon: no discovery");
    struct ebpf_opts eo = {.rate_hz = o->rate_hz, .off_cpu = true};
    struct ebpf_sampler *e = NULL;
    enum pt_status rc = ebpf_open(&e, &eo, err);
    if (rc != PT_OK)
        return rc;
    static struct ebpf_target targets[EBPF_MAX_TARGETS];
    int n = 0;
    uint64_t start = sampler_now_ns(), last_chore = 0, seen = 0;
    uint64_t deadline = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
    res->end = SESSION_STOPPED;
    while (!*stop) {
        uint64_t now = sampler_now_ns();
        if (now >= deadline) {
            res->end = SESSION_DURATION;
            break;
        }
        if (now - last_chore >= EBPF_CHORE_NS) {
            last_chore = now;
            n = drop_exited(e, sink, targets, n, now);
        }
        int before = n;   /* the discovery scans only when one is due (attach/discover.c) */
        n = add_discovered(o, e, sink, targets, n, now);
        seen += (uint64_t)(n - before);
        if (ebpf_poll(e, sink, EBPF_DAEMON_POLL_MS) < 0) {
            pt_fail(err, PT_EFAIL, "--ebpf: reading the ring buffer failed");
            res->end = SESSION_ERROR;
            break;
        }
        if (sink->tick(sink->ctx, sampler_now_ns(), err) != PT_OK) {
            res->end = SESSION_ERROR;
            break;
        }
    }
    uint64_t end = sampler_now_ns();
    ebpf_poll(e, sink, 0);
    ebpf_flush(e, sink);
    struct ebpf_stats st;
    ebpf_get_stats(e, &st);
    ebpf_close(e);
    for (int i = 0; i < n; i++)
        py_proc_close(targets[i].py);
    res->start_ns = start;
    res->end_ns = end;
    res->walks = st.samples;
    res->missed = st.drops;
    res->processes = (uint32_t)seen;
    res->achieved_hz = end > start ? (double)st.samples * 1e9 / (double)(end - start) : 0;
    return res->end == SESSION_ERROR ? (err->code ? err->code : PT_EFAIL) : PT_OK;
}
