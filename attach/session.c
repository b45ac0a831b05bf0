/*
 * session.c — the recording loop (see session.h): tick, walk every live target, feed the sink,
 * and between ticks the slower chores (descendant discovery, exit checks, status line). The
 * sink is reached only through struct session_sink, so `attach`/`run` and `top` share this loop.
 */
#include "attach/session.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach/proc.h"
#include "attach/ptrace.h"
#include "attach/sampler.h"

#define CHORE_NS 200000000ULL        /* discovery / exit checks every 200 ms */
#define STATUS_NS 250000000ULL
#define NAMES_NS 1000000000ULL       /* re-read thread names at least every second */
#define REOPEN_AFTER_FAILS 50        /* consecutive failed walks before re-opening (exec?) */
#define MAX_TARGETS 256

struct target {
    pid_t pid;
    struct py_proc *py;              /* NULL: not (yet) Python — retried, and its children tracked */
    uint32_t proc;                   /* rec_sink handle, 0 until registered */
    uint32_t parent;
    struct py_snapshot snap;
    struct ptrace_group ptg;
    bool ptraced;
    bool exited;
    bool owned;                      /* py was opened here (else it is the caller's root) */
    uint32_t fails;
    uint32_t open_tries;
    uint32_t last_nthreads;
    uint64_t last_names_ns;
};

struct session {
    const struct session_opts *o;
    const struct session_sink *sink;
    struct target targets[MAX_TARGETS];
    int n;
    pid_t child_pid;
    int64_t child_status;
    bool child_reaped;
};

static struct target *add_target(struct session *S, pid_t pid, struct py_proc *py, uint32_t parent)
{
    if (S->n == MAX_TARGETS)
        return NULL;
    struct target *t = &S->targets[S->n++];
    memset(t, 0, sizeof *t);
    t->pid = pid;
    t->py = py;
    t->parent = parent;
    py_snapshot_init(&t->snap);
    return t;
}

static void register_python(struct session *S, struct target *t, struct pt_err *err)
{
    t->proc = S->sink->process(S->sink->ctx, t->py, t->parent);
    if (S->o->blocking && !t->ptraced) {
        if (ptg_attach(&t->ptg, t->pid, err) == PT_OK)
            t->ptraced = true;
    }
}

static bool known(struct session *S, pid_t pid)
{
    for (int i = 0; i < S->n; i++)
        if (S->targets[i].pid == pid && !S->targets[i].exited)
            return true;
    return false;
}

/* Children of pid, from /proc/PID/task/TID/children of each of its threads. */
static void discover_children(struct session *S, struct target *parent)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)parent->pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char cpath[320], buf[4096];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)parent->pid, e->d_name);
        FILE *f = fopen(cpath, "re");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
            pid_t child = (pid_t)atoi(tok);
            if (child > 0 && !known(S, child))
                add_target(S, child, NULL, parent->proc);
        }
    }
    closedir(d);
}

/* Tries to open a not-yet-Python target (a child that has not exec'd python yet, or never will). */
static void try_open(struct session *S, struct target *t)
{
    struct pt_err err;
    if (t->py || t->exited || t->open_tries > 100)
        return;
    t->open_tries++;
    if (py_proc_open(&t->py, t->pid, &err) == PT_OK) {
        t->owned = true;
        register_python(S, t, &err);
    } else if (err.code == PT_ENOPROC)
        t->exited = true;
}

static void target_exit(struct session *S, struct target *t, uint64_t now)
{
    if (t->exited)
        return;
    t->exited = true;
    int64_t status = INT64_MIN;
    if (t->pid == S->child_pid && S->child_reaped)
        status = S->child_status;
    if (t->proc)
        S->sink->process_exit(S->sink->ctx, t->proc, now, status);
    if (t->ptraced) {
        ptg_detach(&t->ptg);
        t->ptraced = false;
    }
}

/* Collects our child's exit status (run mode) without consuming ptrace stops. */
static void reap_child(struct session *S)
{
    if (!S->child_pid || S->child_reaped)
        return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)S->child_pid, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
        return;
    S->child_reaped = true;
    S->child_status = si.si_code == CLD_EXITED ? si.si_status : -(int64_t)si.si_status;
}

static void sample_target(struct session *S, struct target *t, uint64_t tick)
{
    struct pt_err err;
    if (t->ptraced && ptg_stop_all(&t->ptg) != 0) {
        target_exit(S, t, tick);
        return;
    }
    unsigned flags = PY_WALK_OS_STATE;
    enum pt_status rc = py_walk(t->py, &t->snap, flags, &err);
    if (rc == PT_OK && (t->snap.nthreads != t->last_nthreads || tick - t->last_names_ns >= NAMES_NS)) {
        /* New threads (or time to refresh): resolve names while the target is still paused. */
        py_thread_names(t->py, &t->snap);
        t->last_nthreads = t->snap.nthreads;
        t->last_names_ns = tick;
    }
    if (t->ptraced)
        ptg_resume_all(&t->ptg);
    if (rc == PT_OK) {
        t->fails = 0;
        S->sink->feed(S->sink->ctx, t->proc, t->py, &t->snap, tick);
    } else if (rc == PT_ENOPROC || !proc_alive(t->pid)) {
        target_exit(S, t, tick);
    } else {
        S->sink->feed_failed(S->sink->ctx, t->proc, tick);
        if (++t->fails >= REOPEN_AFTER_FAILS) {
            /* Probably exec'd into a new image: find the interpreter again. The caller's
             * root is the caller's to close. */
            if (t->owned)
                py_proc_close(t->py);
            t->py = NULL;
            t->owned = false;
            /* The new image is recorded as a new process entry (its code ids start afresh);
             * the old entry's calls end here. */
            if (t->proc)
                S->sink->process_exit(S->sink->ctx, t->proc, tick, INT64_MIN);
            t->proc = 0;
            t->fails = 0;
            t->open_tries = 0;
            try_open(S, t);
        }
    }
}

static void status_line(const struct session *S, const struct sampler *smp, uint64_t now,
                        uint64_t start)
{
    uint64_t samples = S->sink->samples(S->sink->ctx), errors = S->sink->errors(S->sink->ctx);
    fprintf(stderr, "\r\033[Kpytrace: %.1f s, %" PRIu64 " samples, %.0f Hz, %.2f%% errors -> %s",
            (double)(now - start) / 1e9, samples, sampler_achieved_hz(smp, now),
            samples ? 100.0 * (double)errors / (double)samples : 0.0,
            S->o->out_path ? S->o->out_path : "");
}

static bool all_exited(const struct session *S)
{
    for (int i = 0; i < S->n; i++)
        if (!S->targets[i].exited)
            return false;
    return true;
}

enum pt_status session_run(const struct session_opts *o, struct py_proc *root, pid_t root_pid,
                           pid_t child_pid, const struct session_sink *sink, volatile int *stop,
                           struct session_result *res, struct pt_err *err)
{
    static struct session S;
    memset(&S, 0, sizeof S);
    S.o = o;
    S.sink = sink;
    S.child_pid = child_pid;
    S.child_status = INT64_MIN;
    memset(res, 0, sizeof *res);
    res->root_exit_status = INT64_MIN;

    struct target *r = add_target(&S, root_pid, root, 0);
    if (root)
        register_python(&S, r, err);
    if (o->blocking && root && !r->ptraced) {
        py_snapshot_free(&r->snap);
        return err->code ? err->code : pt_fail(err, PT_EPERM, "cannot ptrace %d", (int)root_pid);
    }

    struct sampler smp;
    sampler_init(&smp, o->rate_hz, o->jitter);
    uint64_t start = smp.start_ns, last_chore = 0, last_status = 0;
    uint64_t deadline = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
    res->end = SESSION_STOPPED;
    for (;;) {
        uint64_t tick = sampler_wait(&smp, stop);
        if (!tick || *stop) {
            res->end = SESSION_STOPPED;
            break;
        }
        if (tick >= deadline) {
            res->end = SESSION_DURATION;
            break;
        }
        for (int i = 0; i < S.n; i++)
            if (S.targets[i].py && !S.targets[i].exited)
                sample_target(&S, &S.targets[i], tick);
        uint64_t now = sampler_now_ns();
        if (now - last_chore >= CHORE_NS) {
            last_chore = now;
            reap_child(&S);
            for (int i = 0; i < S.n; i++) {
                struct target *t = &S.targets[i];
                if (!t->exited && !proc_alive(t->pid))
                    target_exit(&S, t, now);
                if (o->subprocesses && !t->exited)
                    discover_children(&S, t);
                if (!t->py && !t->exited)
                    try_open(&S, t);
                if (t->py && !t->exited)   /* re-check cached code objects (address reuse) */
                    code_cache_tick(t->py->codes);
            }
        }
        if (sink->tick(sink->ctx, now, err) != PT_OK) {
            res->end = SESSION_ERROR;
            break;
        }
        if (o->max_size && sink->bytes(sink->ctx) >= o->max_size) {
            res->end = SESSION_MAX_SIZE;
            break;
        }
        if (all_exited(&S)) {
            res->end = SESSION_TARGET_EXITED;
            break;
        }
        if (o->status_line && now - last_status >= STATUS_NS) {
            last_status = now;
            status_line(&S, &smp, now, start);
        }
    }
    uint64_t end = sampler_now_ns();
    if (o->status_line)
        fputs("\r\033[K", stderr);
    reap_child(&S);
    for (int i = 0; i < S.n; i++) {
        struct target *t = &S.targets[i];
        if (t->ptraced)
            ptg_detach(&t->ptg);
        if (res->end == SESSION_TARGET_EXITED && !t->exited)
            target_exit(&S, t, end);
        py_snapshot_free(&t->snap);
        if (t->py && t->owned)
            py_proc_close(t->py);
        if (t->proc)
            res->processes++;
    }
    res->start_ns = start;
    res->end_ns = end;
    res->walks = smp.taken;
    res->missed = smp.missed;
    res->overruns = smp.overruns;
    res->achieved_hz = sampler_achieved_hz(&smp, end);
    res->root_exit_status = S.child_reaped ? S.child_status : INT64_MIN;
    return res->end == SESSION_ERROR ? err->code : PT_OK;
}
