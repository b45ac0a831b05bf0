/*
 * native.c — per-process native stacks: unwinding every stopped thread, naming its frames
 * through the symbol cache, the one-shot seize/stop/walk/unwind/detach cycle of dump --native,
 * and the per-thread merge with the Python stack.
 */
#include "symbols/native.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attach/proc.h"
#include "symbols/unwind.h"

#define NATIVE_MAX_TIDS 4096

struct native_proc {
    pid_t pid;
    struct unwinder *uw;
    struct sym_cache *sc;
    uint64_t ips[UNWIND_MAX_FRAMES];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

enum pt_status native_open(struct native_proc **out, pid_t pid, struct pt_err *err)
{
    struct native_proc *np = calloc(1, sizeof *np);
    if (!np)
        return pt_fail(err, PT_EFAIL, "out of memory for native stacks");
    np->pid = pid;
    enum pt_status rc = unwind_open(&np->uw, err);
    if (rc == PT_OK)
        rc = symcache_open(&np->sc, pid, err);
    if (rc != PT_OK) {
        native_close(np);
        return rc;
    }
    *out = np;
    return PT_OK;
}

void native_close(struct native_proc *np)
{
    if (!np)
        return;
    unwind_close(np->uw);
    symcache_close(np->sc);
    free(np);
}

void native_snap_free(struct native_snap *ns)
{
    free(ns->stacks);
    free(ns->frames);
    memset(ns, 0, sizeof *ns);
}

static int reserve(struct native_snap *ns, uint32_t stacks, uint32_t frames)
{
    if (stacks > ns->cap_stacks) {
        struct native_stack *s = realloc(ns->stacks, stacks * sizeof *s);
        if (!s)
            return -1;
        ns->stacks = s;
        ns->cap_stacks = stacks;
    }
    if (frames > ns->cap_frames) {
        uint32_t cap = ns->cap_frames ? ns->cap_frames : 1024;
        while (cap < frames)
            cap *= 2;
        struct native_frame *f = realloc(ns->frames, cap * sizeof *f);
        if (!f)
            return -1;
        ns->frames = f;
        ns->cap_frames = cap;
    }
    return 0;
}

void native_symbolize(struct native_proc *np, struct native_snap *ns)
{
    uint64_t t0 = now_ns();
    for (uint32_t k = 0; k < ns->nstacks; k++) {
        const struct native_stack *st = &ns->stacks[k];
        for (uint32_t i = 0; i < st->n; i++) {
            struct native_frame *f = &ns->frames[st->first + i];
            /* A return address may be the first byte after a call that ends its function. */
            symcache_lookup(np->sc, i > 0 ? f->ip - 1 : f->ip, &f->sym);
            if (i > 0 && f->sym.name)
                f->sym.offset++;
            f->eval = merge_is_eval_symbol(f->sym.name);
        }
    }
    ns->symbol_ns = now_ns() - t0;
}

enum pt_status native_sample(struct native_proc *np, const struct ptrace_group *g,
                             struct tidmap *tids, struct native_snap *ns, struct pt_err *err)
{
    ns->nstacks = ns->nframes = 0;
    ns->unwind_ns = ns->symbol_ns = 0;
    if (g->n <= 0)
        return PT_OK;
    if (reserve(ns, (uint32_t)g->n, 0) != 0)
        return pt_fail(err, PT_EFAIL, "out of memory for native stacks");
    for (int k = 0; k < g->n; k++) {
        if (!g->threads[k].stopped)
            continue;
        uint64_t t0 = now_ns();
        int n = unwind_thread(np->uw, g->threads[k].tid, np->ips, UNWIND_MAX_FRAMES);
        ns->unwind_ns += now_ns() - t0;
        if (reserve(ns, 0, ns->nframes + (uint32_t)n) != 0)
            return pt_fail(err, PT_EFAIL, "out of memory for native stacks");
        /* Unwound by pytrace's id, filed under the target's (the Python threads' native_id). */
        struct native_stack *st = &ns->stacks[ns->nstacks++];
        *st = (struct native_stack){tidmap_ns(tids, g->threads[k].tid), ns->nframes, (uint32_t)n};
        for (int i = 0; i < n; i++)
            ns->frames[ns->nframes++] = (struct native_frame){.ip = np->ips[i]};
    }
    return PT_OK;
}

const struct native_stack *native_find(const struct native_snap *ns, int64_t tid)
{
    if (tid <= 0)
        return NULL;   /* unknown on one side or the other: -1 matches nothing */
    for (uint32_t i = 0; i < ns->nstacks; i++)
        if (ns->stacks[i].tid == tid)
            return &ns->stacks[i];
    return NULL;
}

/* Scheduler state of each thread before we stop them (stopped, they would all read 't'). */
struct os_states {
    pid_t tids[NATIVE_MAX_TIDS];
    char state[NATIVE_MAX_TIDS];
    int n;
};

/* Read by pytrace's ids, kept by the target's (what the walk's native_id holds). */
static void read_os_states(pid_t pid, struct tidmap *tids, struct os_states *o)
{
    o->n = proc_threads(pid, o->tids, NATIVE_MAX_TIDS);
    for (int i = 0; i < o->n; i++) {
        struct proc_tstat st;
        o->state[i] = proc_thread_stat(pid, o->tids[i], &st) == 0 ? st.state : 0;
        o->tids[i] = tidmap_ns(tids, o->tids[i]);
    }
}

static void apply_os_states(const struct os_states *o, struct py_snapshot *s)
{
    for (uint32_t k = 0; k < s->nthreads; k++) {
        struct py_thread *t = &s->threads[k];
        for (int i = 0; i < o->n; i++) {
            if (o->tids[i] == t->native_id && o->state[i]) {
                t->os_state = o->state[i];
                t->idle = o->state[i] != 'R';
            }
        }
    }
}

enum pt_status native_dump(struct native_proc *np, struct py_proc *p, struct py_snapshot *s,
                           unsigned walk_flags, struct native_snap *ns, struct pt_err *err)
{
    struct os_states *before = (walk_flags & PY_WALK_OS_STATE) ? malloc(sizeof *before) : NULL;
    if (before)
        read_os_states(np->pid, &p->tids, before);
    struct ptrace_group g;
    enum pt_status rc = ptg_attach(&g, np->pid, err);
    if (rc != PT_OK) {
        free(before);
        return rc;
    }
    if (ptg_stop_all(&g) != 0) {
        ptg_detach(&g);
        free(before);
        return pt_fail(err, PT_ENOPROC, "process %d exited while its threads were being stopped",
                       (int)np->pid);
    }
    rc = py_walk(p, s, walk_flags & ~(unsigned)PY_WALK_OS_STATE, err);
    if (rc == PT_OK)
        rc = native_sample(np, &g, &p->tids, ns, err);
    ptg_detach(&g);   /* resumes and detaches every thread, whatever happened above */
    if (rc == PT_OK)
        native_symbolize(np, ns);   /* names cost milliseconds when cold: not while stopped */
    if (rc == PT_OK && before)
        apply_os_states(before, s);
    free(before);
    return rc;
}

uint32_t native_merge(const struct native_snap *ns, const struct native_stack *nst,
                      const struct py_snapshot *s, const struct py_thread *t,
                      struct merge_item *out, uint32_t cap, bool *uncertain)
{
    static __thread bool is_eval[UNWIND_MAX_FRAMES], entry[PY_MAX_FRAMES];
    uint32_t nn = nst ? nst->n : 0, np = t ? t->nframes : 0;
    if (nn > UNWIND_MAX_FRAMES)
        nn = UNWIND_MAX_FRAMES;
    if (np > PY_MAX_FRAMES)
        np = PY_MAX_FRAMES;
    for (uint32_t i = 0; i < nn; i++)
        is_eval[i] = ns->frames[nst->first + i].eval;
    for (uint32_t j = 0; j < np; j++)
        entry[j] = py_thread_frame(s, t, j)->entry;
    return merge_stacks(is_eval, nn, entry, np, out, cap, uncertain);
}
