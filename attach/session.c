/*
 * session.c — the recording loop (see session.h): tick, walk every live target, feed the sink,
 * and between ticks the slower chores (descendant discovery, exit checks, status line). The
 * sink is reached only through struct session_sink, so `attach`/`run` and `top` share this loop.
 */
#include "attach/session.h"

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
#define PENDING_NS 20000000ULL       /* a not-yet-Python target: exec check, its new children */
#define EXEC_SETTLE_NS 250000000ULL  /* after an exec (or a fork): ld.so maps libpython, the
                                      * interpreter starts — opened at PENDING_NS meanwhile */
#define MAX_CHILDREN 1024
#define STATUS_NS 250000000ULL
#define NAMES_NS 1000000000ULL       /* re-read thread names at least every second */
#define NAME_RETRY_NS 10000000ULL    /* ... and this often, NAME_TRIES times, after new threads */
#define NAME_TRIES 20                /* while one has only its OS name (not in threading yet) */
#define CODES_NS 100000000ULL        /* re-validate cached code objects every 100 ms (code.h) */
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
    struct native_proc *native;      /* --native: unwinder and symbols of this process */
    struct native_snap nsnap;
    char *states;                    /* blocking: each thread's state before the stop, by index */
    uint32_t cap_states;
    bool exited;
    bool owned;                      /* py was opened here (else it is the caller's root) */
    uint32_t fails;
    uint32_t open_tries;
    uint64_t exe_hash;               /* not yet Python: the image last seen, to notice an exec */
    uint64_t exec_ns;                /* when it was seen to change (or the target was found) */
    uint64_t last_thread_sig;        /* py_thread_set_sig at the last name read */
    uint64_t last_names_ns;
    uint32_t name_tries;             /* walks left to read names again soon (NAME_RETRY_NS) */
    uint64_t last_codes_ns;
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

/* An exited target's slot, its remains freed (a daemon runs for days: workers come and go). */
static struct target *reuse_slot(struct session *S)
{
    for (int i = 0; i < S->n; i++) {
        struct target *t = &S->targets[i];
        if (!t->exited)
            continue;
        py_snapshot_free(&t->snap);
        if (t->py && t->owned)
            py_proc_close(t->py);
        return t;
    }
    return NULL;
}

static struct target *add_target(struct session *S, pid_t pid, struct py_proc *py, uint32_t parent)
{
    struct target *t = S->o->discover ? reuse_slot(S) : NULL;
    if (!t && S->n == MAX_TARGETS)
        return NULL;
    if (!t)
        t = &S->targets[S->n++];
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
    /* Without native stacks for this process the samples are still recorded, Python only. */
    if (S->o->native && S->sink->feed_native && t->ptraced && !t->native)
        native_open(&t->native, t->pid, err);
}

static bool known(struct session *S, pid_t pid)
{
    for (int i = 0; i < S->n; i++)
        if (S->targets[i].pid == pid && !S->targets[i].exited)
            return true;
    return false;
}

/* New children of a target become targets, not Python yet (see watch_pending). */
static void discover_children(struct session *S, struct target *parent)
{
    static __thread pid_t kids[MAX_CHILDREN];
    int n = proc_children(parent->pid, kids, MAX_CHILDREN);
    for (int i = 0; i < n; i++)
        if (!known(S, kids[i]))
            add_target(S, kids[i], NULL, parent->proc);
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

static uint64_t exe_hash(pid_t pid)
{
    char exe[4096];
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */
    if (proc_exe(pid, exe, sizeof exe) != 0)
        return 0;
    for (const char *c = exe; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    return h;
}

/*
 * Every PENDING_NS, the targets that are not Python (yet): a wrapper's new children are found
 * (with --subprocesses), and a process that has just exec'd — or was just found, a fork that is
 * about to exec — is tried each time until its interpreter shows, rather than once per chore:
 * a shell's python child would otherwise go unrecorded for up to two chores. Outside that window
 * it costs one readlink per target; the chores' slow retries go on as before.
 */
static void watch_pending(struct session *S, uint64_t now)
{
    for (int i = 0; i < S->n; i++) {   /* S->n grows as children are found: they are seen too */
        struct target *t = &S->targets[i];
        if (t->py || t->exited)
            continue;
        if (S->o->subprocesses)
            discover_children(S, t);
        uint64_t h = exe_hash(t->pid);
        if (h && h != t->exe_hash) {   /* first seen (a fork about to exec), or exec'd since */
            t->exe_hash = h;
            t->exec_ns = now;
            t->open_tries = 0;         /* a new image: worth the chores' retries again */
        }
        if (now - t->exec_ns < EXEC_SETTLE_NS)
            try_open(S, t);
    }
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

/* Blocking mode: a stopped thread's /proc state reads 't', so remember each thread's state (the
 * threads of the previous walk) just before stopping them; a thread new since reads as stopped. */
static void states_before_stop(struct target *t)
{
    const struct py_snapshot *s = &t->snap;
    if (s->nthreads > t->cap_states) {
        char *n = realloc(t->states, s->nthreads);
        if (!n)
            return;
        t->states = n;
        t->cap_states = s->nthreads;
    }
    for (uint32_t i = 0; i < s->nthreads; i++) {
        struct proc_tstat st;
        int64_t tid = s->threads[i].native_id;
        t->states[i] = tid > 0 && py_proc_thread_stat(t->py, (pid_t)tid, &st) == 0 ? st.state : 0;
    }
}

/* Puts the states read before the stop into the new snapshot (matched by native_id). */
static void states_apply(struct target *t, uint32_t nprev, const int64_t *prev_tids)
{
    struct py_snapshot *s = &t->snap;
    for (uint32_t k = 0; k < s->nthreads; k++) {
        struct py_thread *pt = &s->threads[k];
        for (uint32_t i = 0; i < nprev && i < t->cap_states; i++) {
            if (prev_tids[i] == pt->native_id && t->states[i]) {
                pt->os_state = t->states[i];
                pt->idle = t->states[i] != 'R';
                break;
            }
        }
    }
}

static void sample_target(struct session *S, struct target *t, uint64_t tick)
{
    struct pt_err err;
    static __thread int64_t prev_tids[PY_MAX_THREADS];
    uint32_t nprev = 0;
    if (t->ptraced) {
        states_before_stop(t);
        for (; nprev < t->snap.nthreads && nprev < PY_MAX_THREADS; nprev++)
            prev_tids[nprev] = t->snap.threads[nprev].native_id;
    }
    if (t->ptraced && ptg_stop_all(&t->ptg) != 0) {
        target_exit(S, t, tick);
        return;
    }
    unsigned flags = PY_WALK_OS_STATE;
    if (tick - t->last_codes_ns >= CODES_NS) {
        /* A freed code object's address gets reused by another one (module bodies run once at
         * import): without re-validation its frames would keep the old name for good. */
        code_cache_recheck(t->py->codes, t->py->mem, &t->py->layout, &t->py->types);
        t->last_codes_ns = tick;
    }
    enum pt_status rc = py_walk(t->py, &t->snap, flags, &err);
    if (rc == PT_OK && t->ptraced)
        states_apply(t, nprev, prev_tids);
    bool native = rc == PT_OK && t->native && t->ptraced &&
                  native_sample(t->native, &t->ptg, &t->py->tids, &t->nsnap, &err) == PT_OK;
    uint64_t sig = rc == PT_OK ? py_thread_set_sig(&t->snap) : 0;
    bool threads_changed = rc == PT_OK && sig != t->last_thread_sig;
    if (rc == PT_OK && (threads_changed || tick - t->last_names_ns >= NAMES_NS ||
                        (t->name_tries && tick - t->last_names_ns >= NAME_RETRY_NS))) {
        /* New threads (or time to refresh): resolve names while the target is still paused. A
         * thread that threading starts is in the list before threading enters it in _active,
         * and meanwhile has only its OS name: read again soon, or a short-lived thread keeps
         * that name for good. */
        py_thread_names(t->py, &t->snap);
        bool os_named = false;
        for (uint32_t i = 0; i < t->snap.nthreads; i++)
            os_named |= t->snap.threads[i].name_os;
        t->name_tries = !os_named ? 0 : threads_changed ? NAME_TRIES : t->name_tries ? t->name_tries - 1 : 0;
        t->last_thread_sig = sig;
        t->last_names_ns = tick;
    }
    if (t->ptraced)
        ptg_resume_all(&t->ptg);
    if (native) {   /* names after resuming: a module's first lookup takes milliseconds */
        native_symbolize(t->native, &t->nsnap);
        S->sink->feed_native(S->sink->ctx, t->proc, t->py, &t->snap, &t->nsnap, tick);
        t->fails = 0;
    } else if (rc == PT_OK) {
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

/* Takes over the processes the caller's discovery found. */
static void discover_new(struct session *S, uint64_t now)
{
    struct py_proc *py;
    struct pt_err err;
    while (S->o->discover->next(S->o->discover->ctx, now, &py)) {
        struct target *t = known(S, py->pid) ? NULL : add_target(S, py->pid, py, 0);
        if (!t) {
            py_proc_close(py);
            continue;
        }
        t->owned = true;
        register_python(S, t, &err);
    }
}

/* The root (targets[0]) has exited, and so has every process under it that is Python or may
 * still become Python (just exec'd); a non-Python descendant left running (a backgrounded
 * sleep) does not keep the recording open. */
static bool all_exited(const struct session *S, uint64_t now)
{
    for (int i = 0; i < S->n; i++) {
        const struct target *t = &S->targets[i];
        if (!t->exited && (i == 0 || t->py || now - t->exec_ns < EXEC_SETTLE_NS))
            return false;
    }
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
    memset(res, 0, sizeof *res);   /* busy_ns accumulates from here */
    res->root_exit_status = INT64_MIN;

    struct target *r = root_pid > 0 ? add_target(&S, root_pid, root, 0) : NULL;
    if (root && r)
        register_python(&S, r, err);
    if (o->blocking && root && !r->ptraced) {
        py_snapshot_free(&r->snap);
        return err->code ? err->code : pt_fail(err, PT_EPERM, "cannot ptrace %d", (int)root_pid);
    }

    struct sampler smp;
    sampler_init(&smp, o->rate_hz, o->jitter);
    uint64_t start = smp.start_ns, last_chore = 0, last_pending = 0, last_status = 0;
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
        uint64_t round_start = sampler_now_ns();
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
            }
        }
        /* Every round: the discovery scans only when one is due, and a fork is worth catching
         * within a peek's time (attach/discover.c). */
        if (o->discover)
            discover_new(&S, now);
        if (now - last_pending >= PENDING_NS) {
            last_pending = now;
            watch_pending(&S, now);
        }
        if (sink->tick(sink->ctx, now, err) != PT_OK) {
            res->end = SESSION_ERROR;
            break;
        }
        res->busy_ns += sampler_now_ns() - round_start;
        if (o->max_size && sink->bytes(sink->ctx) >= o->max_size) {
            res->end = SESSION_MAX_SIZE;
            break;
        }
        if (!o->discover && all_exited(&S, now)) {
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
        native_snap_free(&t->nsnap);
        free(t->states);
        t->states = NULL;
        native_close(t->native);
        t->native = NULL;
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
