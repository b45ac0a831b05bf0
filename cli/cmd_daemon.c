/*
 * cmd_daemon.c — `pytrace daemon`: the sidecar. Finds every CPython process it may see
 * (attach/discover), records each into its own rotated file (output/dsink), sends finished files
 * to OTLP and Pyroscope-style receivers (output/push), and logs `level time message` lines on
 * stderr. SIGTERM/SIGINT finish every open file and exit 0 within 2 s; SIGHUP rotates now.
 */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/caps.h"
#include "attach/discover.h"
#include "attach/ebpf.h"
#include "attach/sampler.h"
#include "cli/cli.h"
#include "cli/daemon_opts.h"
#include "output/dsink.h"
#include "output/push.h"
#include "util/rules.h"

#define DAEMON_PUSH_GRACE_NS 1000000000ULL   /* of the 2 s SIGTERM budget */

static volatile int daemon_stop, daemon_rotate;
static int daemon_level = DLOG_INFO;

static void on_stop(int sig)
{
    (void)sig;
    daemon_stop = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    daemon_rotate = 1;
}

void dlog(int level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < daemon_level)
        return;
    char line[2048], when[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
    int off = snprintf(line, sizeof line, "%s %s ", names[level], when);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    fputs(line, stderr);
}

struct daemon {
    struct dsink *sink;
    struct push *push;
    struct disc *disc;
};

static void on_found(void *ctx, pid_t pid, enum pt_status st, const char *msg)
{
    (void)ctx;
    char cmd[512] = "";
    proc_cmdline(pid, cmd, sizeof cmd);
    if (st == PT_OK) {
        pid_t ns[8];
        int n = proc_nspid(pid, ns, 8);
        dlog(DLOG_INFO, "tracing pid %d (nspid %d): %s", (int)pid, n > 0 ? (int)ns[n - 1] : pid,
             cmd);
    } else {
        dlog(st == PT_ENOTPY ? DLOG_DEBUG : DLOG_WARN, "not tracing pid %d (%s): %s", (int)pid,
             pt_status_name(st), msg);
    }
}

static void status_line(struct daemon *D)
{
    struct dsink_stats s;
    struct push_stats p;
    dsink_get_stats(D->sink, &s);
    push_get_stats(D->push, &p);
    dlog(DLOG_INFO,
         "status: %u processes, %" PRIu64 " samples (%" PRIu64 " bad), %" PRIu64
         " files finished, drops otlp=%" PRIu64 " pprof=%" PRIu64 ", disk used %.1f MB (%" PRIu64
         " files deleted)",
         s.open_files, s.samples, s.errors, s.finished, p.k[PUSH_OTLP].dropped,
         p.k[PUSH_PPROF].dropped, (double)s.disk_bytes / (1 << 20), s.deleted);
}

static void on_file(void *ctx, enum dsink_note_kind kind, const char *path, const char *msg)
{
    struct daemon *D = ctx;
    switch (kind) {
    case DSINK_OPENED: dlog(DLOG_DEBUG, "recording %s", path); break;
    case DSINK_SAMPLED: dlog(DLOG_DEBUG, "first sample in %s", path); break;
    case DSINK_FINISHED: dlog(DLOG_INFO, "finished %s", path); break;
    case DSINK_EMPTY: dlog(DLOG_DEBUG, "removed %s: no sample", path); break;
    case DSINK_DELETED: dlog(DLOG_INFO, "deleted %s (--max-disk)", path); break;
    case DSINK_ERROR: dlog(DLOG_ERROR, "%s", msg); break;
    case DSINK_STATUS: status_line(D); break;
    }
}

static void on_finished(void *ctx, const char *path)
{
    struct daemon *D = ctx;
    if (!push_file(D->push, path))
        dlog(DLOG_WARN, "sink queue full: %s is not sent (the file stays)", path);
}

static void on_pushed(void *ctx, enum push_kind k, const char *path, bool ok, const char *msg)
{
    (void)ctx;
    const char *name = k == PUSH_OTLP ? "otlp" : "pprof";
    if (ok)
        dlog(DLOG_DEBUG, "sent %s to %s", path, name);
    else
        dlog(DLOG_WARN, "%s sink dropped %s: %s", name, path, msg);
}

/* Says what is missing to read other processes; false when nothing can work. */
static bool check_caps(void)
{
    struct caps_report r;
    caps_check(&r);
    if (!r.vm_readv_ok) {
        dlog(DLOG_ERROR, "process_vm_readv is refused (%s)%s: allow it (docker: "
             "--security-opt seccomp=unconfined or a profile allowing process_vm_readv; "
             "Kubernetes: seccompProfile Unconfined)", strerror(r.vm_readv_errno),
             r.seccomp == 2 ? " by a seccomp filter" : "");
        return false;
    }
    if (!r.cap_sys_ptrace)
        dlog(DLOG_WARN, "CAP_SYS_PTRACE is missing%s: only processes of uid %d can be read%s "
             "(docker: --cap-add SYS_PTRACE; Kubernetes: securityContext.capabilities.add: "
             "[SYS_PTRACE])", r.root ? " (root without it)" : "", (int)geteuid(),
             r.ptrace_scope >= 1 ? ", and kernel.yama.ptrace_scope >= 1 forbids even those "
                                   "unless they are our descendants" : "");
    if (r.ptrace_scope >= 2)
        dlog(r.ptrace_scope == 3 ? DLOG_ERROR : DLOG_WARN,
             "kernel.yama.ptrace_scope is %d: %s", r.ptrace_scope,
             r.ptrace_scope == 3 ? "no process can be read until reboot"
                                 : "only CAP_SYS_PTRACE may read other processes");
    if (r.seccomp == 2)
        dlog(DLOG_DEBUG, "a seccomp filter is active; process_vm_readv passes it");
    dlog(DLOG_INFO, "permissions: %s, CAP_SYS_PTRACE %s, ptrace_scope %d, seccomp %d",
         r.root ? "root" : "not root", r.cap_sys_ptrace ? "yes" : "no", r.ptrace_scope,
         r.seccomp);
    return r.ptrace_scope != 3;
}

static int daemon_run(const struct daemon_cli *o)
{
    struct daemon D = {0};
    struct pt_err err;
    pt_err_clear(&err);
    if (!check_caps())
        return PT_EPERM;
    struct disc_opts dop = { .match = o->match, .cgroup = o->cgroup, .uid = o->uid,
                             .note = on_found, .ctx = &D };
    struct push_opts pop = { .otlp_url = o->otlp, .pprof_url = o->pprof, .headers = o->headers,
                             .n_headers = o->n_headers, .service = o->service,
                             .attempts = o->push_attempts, .backoff_s = o->push_backoff,
                             .timeout_s = o->push_timeout, .note = on_pushed, .ctx = &D };
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    if (o->ebpf && ebpf_check(&err) != PT_OK) {   /* says what is missing: privileges, BTF */
        dlog(DLOG_ERROR, "%s", err.msg);
        return err.code;
    }
    /* Every file records with the same rules: the secret-name defaults, then --filter. */
    struct rules *rules = NULL;
    static char filters_text[16384];
    if (cli_rules(&rules, o->no_stdlib, o->filters, o->n_filters, &err) != PT_OK) {
        dlog(DLOG_ERROR, "%s", err.msg);
        return err.code;
    }
    rules_describe(rules, filters_text, sizeof filters_text);
    struct dsink_opts sop = {
        .dir = o->dir, .by_date = o->by_date, .rotate_ns = o->rotate_ns,
        .rotate_bytes = o->rotate_bytes, .max_disk = o->max_disk, .status_ns = o->status_ns,
        .rotate_now = &daemon_rotate, .rate_hz = o->rate_hz, .tags = o->tags,
        .n_tags = o->n_tags, .host = host, .pytrace_version = "0.1.0",
        .finished = on_finished, .note = on_file, .ctx = &D,
        .rules = rules, .filters_text = filters_text, .backend = o->ebpf ? "ebpf" : NULL,
    };
    if (disc_new(&D.disc, &dop, &err) != PT_OK || push_new(&D.push, &pop, &err) != PT_OK ||
        dsink_new(&D.sink, &sop, &err) != PT_OK) {
        dlog(DLOG_ERROR, "%s", err.msg);
        push_stop(D.push, 0, NULL);
        disc_free(D.disc);
        rules_free(rules);
        return err.code;
    }
    dlog(DLOG_INFO, "pytrace daemon %d: %.0f Hz into %s%s, rotate %.0f s / %" PRIu64
         " bytes, max disk %" PRIu64 " bytes%s%s%s%s", (int)getpid(), o->rate_hz, o->dir,
         o->by_date ? " (date folders)" : "", (double)o->rotate_ns / 1e9, o->rotate_bytes,
         o->max_disk, o->otlp ? ", otlp " : "", o->otlp ? o->otlp : "",
         o->pprof ? ", pprof " : "", o->pprof ? o->pprof : "");
    struct session_discover sd = disc_as_session_discover(D.disc);
    struct session_opts so = { .rate_hz = o->rate_hz, .duration_s = o->duration_s,
                               .jitter = o->jitter, .discover = &sd };
    struct session_sink ss = dsink_as_session_sink(D.sink);
    struct session_result res;
    enum pt_status rc = o->ebpf ? ebpf_daemon_run(&so, &ss, &daemon_stop, &res, &err)
                                : session_run(&so, NULL, 0, 0, &ss, &daemon_stop, &res, &err);
    uint64_t t0 = sampler_now_ns();
    if (rc != PT_OK)
        dlog(DLOG_ERROR, "%s", err.msg);
    dsink_close(D.sink, res.end_ns ? res.end_ns : t0);
    struct push_stats ps;
    push_stop(D.push, DAEMON_PUSH_GRACE_NS, &ps);
    struct disc_stats ds;
    disc_get_stats(D.disc, &ds);
    disc_free(D.disc);
    rules_free(rules);
    dlog(DLOG_INFO, "stopped after %.1f s (%.1f Hz achieved, %" PRIu64 " rounds missed); "
         "%" PRIu64 " scans (%" PRIu64 " quick), %" PRIu64 " processes traced; "
         "otlp sent %" PRIu64 " dropped %" PRIu64 ", pprof sent %" PRIu64 " dropped %" PRIu64
         "; shutdown took %.2f s", (double)(res.end_ns - res.start_ns) / 1e9, res.achieved_hz,
         res.missed, ds.scans, ds.quick_scans, ds.opened, ps.k[PUSH_OTLP].sent,
         ps.k[PUSH_OTLP].dropped, ps.k[PUSH_PPROF].sent, ps.k[PUSH_PPROF].dropped,
         (double)(sampler_now_ns() - t0) / 1e9);
    return rc == PT_OK ? 0 : rc;
}

int cmd_daemon(int argc, char **argv)
{
    struct daemon_cli o;
    int rc = daemon_parse(argc, argv, &o);
    if (rc == -1) {
        fputs(daemon_usage, stdout);
        return 0;
    }
    if (rc != 0)
        return rc;
    daemon_level = o.log_level;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return daemon_run(&o);
}
