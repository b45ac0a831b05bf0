/*
 * record.c — snapshots to trace records (see record.h). All per-process state (thread table,
 * function ids by code id) hangs off struct rec_proc, because code ids are per target. The state
 * is in record_int.h; --locals capture is in record_locals.c.
 */
#include "output/record_int.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "symbols/unwind.h"
#include "util/rules.h"

static void emit_span(const struct tl_span *span, void *ctx)
{
    struct rec_sink *s = ctx;
    trace_span(s->w, span);
    if (span->locals)
        rec_locals_release(s, span->locals);
}

uint64_t rec_sink_frames_unchanged(const struct rec_sink *s)
{
    return s->frames_unchanged;
}

enum pt_status rec_sink_open(struct rec_sink **out, const char *path, bool overwrite,
                             const struct trace_meta *meta, const struct rec_thread_filter *filter,
                             uint64_t counter_interval_ns, struct pt_err *err)
{
    *out = NULL;
    struct rec_sink *s = calloc(1, sizeof *s);
    if (!s)
        return pt_fail(err, PT_EFAIL, "out of memory");
    enum pt_status rc = trace_writer_open(&s->w, path, overwrite, meta, err);
    if (rc != PT_OK) {
        free(s);
        return rc;
    }
    s->tl = tl_new(emit_span, s);
    if (!s->tl) {
        trace_writer_close(s->w, NULL, NULL);
        free(s);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    if (filter)
        s->filter = *filter;
    s->counter_interval_ns = counter_interval_ns;
    s->unknown_function = trace_function(s->w, "<unknown>", "<unknown>", "", 0);
    *out = s;
    return PT_OK;
}

uint32_t rec_sink_process(struct rec_sink *s, struct py_proc *p, uint32_t parent)
{
    if (s->n_procs == s->cap_procs) {
        uint32_t cap = s->cap_procs ? s->cap_procs * 2 : 4;
        struct rec_proc *np = realloc(s->procs, cap * sizeof *np);
        if (!np)
            return 0;
        s->procs = np;
        s->cap_procs = cap;
    }
    char cmd[1024] = "", ver[32];
    pid_t nspid[8];
    int nns = proc_nspid(p->pid, nspid, 8);
    proc_cmdline(p->pid, cmd, sizeof cmd);
    py_version_str(&p->version, ver, sizeof ver);
    struct rec_proc *rp = &s->procs[s->n_procs++];
    memset(rp, 0, sizeof *rp);
    rp->pid = p->pid;
    rp->statm_fd = -1;
    rp->entry_offset_unique = p->version.major > 3 || (p->version.major == 3 && p->version.minor >= 11);
    uint32_t parent_idx = parent ? s->procs[parent - 1].trace_process : 0;
    rp->trace_process = trace_process(s->w, p->pid, nns > 0 ? nspid[nns - 1] : p->pid, cmd, ver,
                                      parent_idx);
    trace_event(s->w, TRACE_E_PROCESS_START, rp->trace_process, 0, 0, p->pid, cmd);
    return s->n_procs;   /* 1-based handle */
}

static bool thread_selected(const struct rec_sink *s, const struct rec_thread *t)
{
    if (!s->filter.n)
        return true;
    for (size_t i = 0; i < s->filter.n; i++) {
        const char *spec = s->filter.specs[i];
        char *end;
        long tid = strtol(spec, &end, 10);
        if (*spec && !*end) {
            if (tid == t->native_id)
                return true;
        } else if (fnmatch(spec, t->name, 0) == 0) {
            return true;
        }
    }
    return false;
}

static struct rec_thread *thread_for(struct rec_sink *s, struct rec_proc *rp,
                                     const struct py_thread *pt, uint64_t t_ns)
{
    for (uint32_t i = 0; i < rp->n; i++) {
        struct rec_thread *t = &rp->threads[i];
        if (!t->gone && t->thread_id == pt->thread_id && t->native_id == pt->native_id)
            return t;
    }
    if (rp->n == rp->cap) {
        uint32_t cap = rp->cap ? rp->cap * 2 : 8;
        struct rec_thread *nt = realloc(rp->threads, cap * sizeof *nt);
        if (!nt)
            return NULL;
        rp->threads = nt;
        rp->cap = cap;
    }
    struct rec_thread *t = &rp->threads[rp->n++];
    memset(t, 0, sizeof *t);
    t->thread_id = pt->thread_id;
    t->native_id = pt->native_id;
    snprintf(t->name, sizeof t->name, "%s", pt->name);
    t->trace_thread = trace_thread(s->w, rp->trace_process, pt->native_id, pt->thread_id, pt->name);
    trace_event(s->w, TRACE_E_THREAD_START, rp->trace_process, t->trace_thread, t_ns,
                pt->native_id, pt->name);
    return t;
}

static int reserve_depth(struct rec_thread *t, uint32_t n)
{
    if (n <= t->cap)
        return 0;
    uint32_t cap = t->cap ? t->cap : 32;
    while (cap < n)
        cap *= 2;
    uint32_t *nodes = realloc(t->nodes, cap * sizeof *nodes);
    if (nodes)
        t->nodes = nodes;
    uint32_t *funcs = realloc(t->funcs, cap * sizeof *funcs);
    if (funcs)
        t->funcs = funcs;
    int32_t *lines = realloc(t->lines, cap * sizeof *lines);
    if (lines)
        t->lines = lines;
    uint32_t *keys = realloc(t->keys, cap * sizeof *keys);
    if (keys)
        t->keys = keys;
    struct tl_frame *tlf = realloc(t->tlf, cap * sizeof *tlf);
    if (tlf)
        t->tlf = tlf;
    if (!nodes || !funcs || !lines || !keys || !tlf)
        return -1;
    t->cap = cap;
    return 0;
}

/* The function id of a frame's code; key is code->id + 1 when the frame carries it
 * (py_frame.code_key; 0: not known), so that the code entry itself is touched only the first
 * time. */
static uint32_t function_of(struct rec_sink *s, struct rec_proc *rp, const struct py_code *code,
                            uint32_t key)
{
    if (!code)
        return s->unknown_function;
    if (key && key - 1 < rp->n_fid && rp->fid_by_code[key - 1])
        return rp->fid_by_code[key - 1];
    if (code->id >= rp->n_fid) {
        uint32_t n = rp->n_fid ? rp->n_fid : 256;
        while (n <= code->id)
            n *= 2;
        uint32_t *f = realloc(rp->fid_by_code, n * sizeof *f);
        if (!f)
            return s->unknown_function;
        memset(f + rp->n_fid, 0, (n - rp->n_fid) * sizeof *f);
        rp->fid_by_code = f;
        rp->n_fid = n;
    }
    if (!rp->fid_by_code[code->id])
        rp->fid_by_code[code->id] =
            trace_function(s->w, code->name, code->qualname, code->filename, code->firstlineno);
    return rp->fid_by_code[code->id];
}

void rec_sink_set_rules(struct rec_sink *s, const struct rules *r)
{
    s->rules = rules_has_frame_rules(r) ? r : NULL;
    s->value_rules = r;
}

const struct rules *rec_sink_rules(const struct rec_sink *s)
{
    return s->value_rules;
}

/* The frame rules' decision for function fid, made once per function (functions are interned,
 * so a sample pays one array lookup per frame). */
static enum rule_action frame_action(struct rec_sink *s, uint32_t fid, const struct py_code *code)
{
    if (!s->rules || !code)
        return RULE_NONE;
    if (fid >= s->n_action) {
        uint32_t n = s->n_action ? s->n_action : 256;
        while (n <= fid)
            n *= 2;
        uint8_t *a = realloc(s->action_by_fid, n);
        if (!a)
            return RULE_NONE;
        memset(a + s->n_action, 0, n - s->n_action);
        s->action_by_fid = a;
        s->n_action = n;
    }
    if (!s->action_by_fid[fid])
        s->action_by_fid[fid] = (uint8_t)(1 + rules_frame(s->rules, NULL, code->filename,
                                                          code->qualname ? code->qualname
                                                                         : code->name));
    return (enum rule_action)(s->action_by_fid[fid] - 1);
}

/*
 * Whether a frame that still looks like the same call (same slot, same code) must be a new one:
 * its offset went back from `from` to `to`, and no loop of its code leads back there. Without the
 * code's loops (3.14+, instrumented code), only a return to offset 0 counts, and only from 3.11,
 * where offset 0 is the prefix no jump targets (3.8-3.10 may start a function with a loop head).
 */
static bool restarted(const struct rec_proc *rp, const struct py_code *code, int32_t from,
                      int32_t to)
{
    if (!code || from < 0 || to < 0 || to >= from)
        return false;
    if (code->loops_known)
        return !code_may_go_back(code, from, to);
    return to == 0 && rp->entry_offset_unique;
}

/* A thread's stack to record: its Python frames, or (--native) the merge of those with its
 * native frames, innermost first. */
struct rec_stack {
    const struct py_snapshot *snap;
    const struct py_thread *pt;
    const struct native_snap *ns;        /* NULL: Python frames only */
    const struct native_stack *nst;
    const struct merge_item *items;
    uint32_t n;
};

/* Native frames in the timeline: one "call" per function and depth (no frame address). */
#define REC_NATIVE_ADDR (1ULL << 63)

/* Root-first frame d of st as a function id and timeline frame; returns the py_frame or NULL. */
static const struct py_frame *stack_frame(struct rec_sink *s, struct rec_proc *rp,
                                          const struct rec_stack *st, uint32_t d,
                                          uint32_t *fid, struct tl_frame *tf)
{
    uint32_t k = st->n - 1 - d;
    if (st->items && st->items[k].kind == MERGE_NATIVE) {
        const struct native_frame *nf = &st->ns->frames[st->nst->first + st->items[k].index];
        *fid = trace_native_function(s->w, nf->sym.name, nf->sym.module, nf->sym.approximate);
        *tf = (struct tl_frame){REC_NATIVE_ADDR | *fid, *fid, -1, -1, 0, false};
        return NULL;
    }
    const struct py_frame *f = py_thread_frame(st->snap, st->pt, st->items ? st->items[k].index : k);
    *fid = function_of(s, rp, f->code, f->code_key);
    *tf = (struct tl_frame){f->addr, *fid, f->line, f->lasti, f->argsig, false};
    return f;
}

/*
 * How many frames, root first, are the previous sample's field for field (address, code, offset,
 * line, arguments): for those the stack trie's nodes and the timeline's open calls stand as they
 * are, so neither is looked at. Only when every frame is kept as read (no rules, no native frames,
 * no locals hook), so that the previous kept frames line up with this sample's.
 */
static uint32_t unchanged_prefix(const struct rec_sink *s, const struct rec_thread *t,
                                 const struct rec_stack *st, uint32_t kept)
{
    if (s->rules || st->items || s->lbuf || !t->tl_fed || t->depth != kept)
        return 0;
    uint32_t max = st->n < kept ? st->n : kept;
    if (!max)
        return 0;
    const struct py_frame *root = py_thread_frame(st->snap, st->pt, st->n - 1);
    uint32_t k = 0;
    for (; k < max; k++) {
        const struct py_frame *f = root - k;   /* innermost first in the snapshot */
        const struct tl_frame *o = &t->tlf[k];
        if (!f->code_key || f->code_key != t->keys[k] || f->addr != o->addr ||
            f->lasti != o->lasti || f->line != o->line || f->argsig != o->argsig)
            break;
    }
    return k;
}

/* Interns the thread's stack root-first, reusing the previous sample's nodes for the common
 * prefix; fills t->tlf for the timeline. Frames the rules exclude, and folded frames called by a
 * folded frame, are left out (t->depth counts the kept ones). Returns the leaf node (0 for an
 * empty stack). */
static uint32_t intern_stack(struct rec_sink *s, struct rec_proc *rp, struct rec_thread *t,
                             const struct rec_stack *st)
{
    uint32_t n = st->n, kept = t->depth_kept;
    t->depth_kept = 0;
    t->same = 0;
    s->cur_n = 0;
    if (reserve_depth(t, n) != 0)
        return 0;
    if (s->lbuf && n > s->cap_cur_frames) {
        /* --locals: the begin hook finds each kept depth's Python frame here. */
        const struct py_frame **cf = realloc(s->cur_frames, n * sizeof *cf);
        if (!cf)
            return 0;
        s->cur_frames = cf;
        s->cap_cur_frames = n;
    }
    uint32_t d = unchanged_prefix(s, t, st, kept);
    uint32_t parent = d ? t->nodes[d - 1] : 0;
    bool same = true, in_fold = false;
    t->same = d;
    s->frames_unchanged += d;
    for (uint32_t i = d; i < n; i++) {
        uint32_t fid;
        struct tl_frame tf;
        const struct py_frame *f = stack_frame(s, rp, st, i, &fid, &tf);
        /* Rules select Python frames (by module, file, function); native frames are kept. */
        enum rule_action act = f ? frame_action(s, fid, f->code) : RULE_NONE;
        if (act == RULE_EXCLUDE || (act == RULE_FOLD && in_fold)) {
            s->excluded++;
            continue;
        }
        in_fold = act == RULE_FOLD;
        if (!(same && d < t->depth && t->funcs[d] == fid && t->lines[d] == tf.line)) {
            same = false;
            t->funcs[d] = fid;
            t->lines[d] = tf.line;
            t->nodes[d] = trace_stack(s->w, parent, fid, tf.line);
        }
        parent = t->nodes[d];
        tf.restart = f && d < t->depth && t->tlf[d].addr == f->addr && t->tlf[d].function == fid &&
                     restarted(rp, f->code, t->tlf[d].lasti, f->lasti);
        t->tlf[d] = tf;
        t->keys[d] = f ? f->code_key : 0;
        if (s->lbuf)
            s->cur_frames[d] = f;
        d++;
    }
    t->depth = t->depth_kept = d;
    s->cur_n = s->lbuf ? d : 0;
    return parent;
}

/* CPU time per thread: from the snapshots that read it (every PY_CPU_TIMES_NS). */
static void write_cpu_counters(struct rec_sink *s, struct rec_proc *rp,
                               const struct py_snapshot *snap, uint64_t t_ns)
{
    for (uint32_t i = 0; i < snap->nthreads; i++) {
        const struct py_thread *pt = &snap->threads[i];
        if (!pt->cpu_valid)
            continue;
        for (uint32_t k = 0; k < rp->n; k++) {
            struct rec_thread *t = &rp->threads[k];
            if (t->gone || t->thread_id != pt->thread_id || t->native_id != pt->native_id)
                continue;
            if (pt->cpu_user_ns != t->last_cpu_user || pt->cpu_sys_ns != t->last_cpu_sys) {
                trace_counter(s->w, TRACE_C_CPU_USER_NS, t->trace_thread, t_ns,
                              (int64_t)pt->cpu_user_ns);
                trace_counter(s->w, TRACE_C_CPU_SYS_NS, t->trace_thread, t_ns,
                              (int64_t)pt->cpu_sys_ns);
                t->last_cpu_user = pt->cpu_user_ns;
                t->last_cpu_sys = pt->cpu_sys_ns;
            }
        }
    }
}

/*
 * RSS every counter interval of sample time. Samples normally arrive as they are taken, but
 * --ebpf delivers them in batches (every drain), whose sample times span the interval many times
 * over while /proc can only say what the RSS is now: so a reading also waits for the interval on
 * the clock (one a drain, dated by the sample that asked for it, not six alike).
 */
static void write_counters(struct rec_sink *s, struct rec_proc *rp, uint64_t t_ns)
{
    if (t_ns < rp->last_counters_ns + s->counter_interval_ns)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    if (rp->last_statm_ns && now - rp->last_statm_ns < s->counter_interval_ns)
        return;
    if (rp->statm_fd < 0)
        rp->statm_fd = proc_rss_open((pid_t)rp->pid);
    int64_t rss = proc_rss_fd(rp->statm_fd);
    if (rss >= 0)
        trace_counter(s->w, TRACE_C_RSS_BYTES, rp->trace_process, t_ns, rss);
    rp->last_counters_ns = t_ns;
    rp->last_statm_ns = now;
}

static void end_thread(struct rec_sink *s, struct rec_proc *rp, struct rec_thread *t, uint64_t t_ns)
{
    tl_end_thread(s->tl, t->trace_thread, t_ns);
    trace_event(s->w, TRACE_E_THREAD_EXIT, rp->trace_process, t->trace_thread, t_ns,
                t->native_id, NULL);
    t->gone = true;
    free(t->nodes);
    free(t->funcs);
    free(t->keys);
    free(t->lines);
    free(t->tlf);
    t->nodes = t->funcs = t->keys = NULL;
    t->tl_fed = false;
    t->lines = NULL;
    t->tlf = NULL;
    t->depth = t->cap = 0;
}

#define REC_MERGE_CAP (UNWIND_MAX_FRAMES + PY_MAX_FRAMES)

/* Thread pt's stack to record, merged with its native stack when ns is given. */
static struct rec_stack stack_of(const struct py_snapshot *snap, const struct py_thread *pt,
                                 const struct native_snap *ns)
{
    static __thread struct merge_item items[REC_MERGE_CAP];
    struct rec_stack st = {snap, pt, NULL, NULL, NULL, pt->nframes};
    if (!ns)
        return st;
    bool uncertain;
    st.ns = ns;
    st.nst = native_find(ns, pt->native_id);
    st.n = native_merge(ns, st.nst, snap, pt, items, REC_MERGE_CAP, &uncertain);
    st.items = items;
    return st;
}

static void feed(struct rec_sink *s, uint32_t proc, struct py_proc *p,
                 const struct py_snapshot *snap, const struct native_snap *ns, uint64_t t_ns)
{
    struct rec_proc *rp = &s->procs[proc - 1];
    for (uint32_t i = 0; i < rp->n; i++)
        rp->threads[i].seen = false;
    for (uint32_t i = 0; i < snap->nthreads; i++) {
        const struct py_thread *pt = &snap->threads[i];
        struct rec_thread *t = thread_for(s, rp, pt, t_ns);
        if (!t)
            continue;
        t->seen = true;
        if (pt->name[0] && strcmp(pt->name, t->name) != 0) {
            snprintf(t->name, sizeof t->name, "%s", pt->name);
            trace_thread_name(s->w, t->trace_thread, pt->name);
        }
        if (!thread_selected(s, t))
            continue;
        uint8_t flags = (pt->holds_gil ? TRACE_F_GIL : 0) | (pt->idle ? TRACE_F_IDLE : 0);
        s->samples++;
        if (pt->bad) {
            /* Frames are read innermost first: a torn stack lacks its root side, so none of
             * it can be placed in the call tree. */
            s->errors++;
            trace_sample(s->w, t->trace_thread, t_ns, 0, flags | TRACE_F_BAD);
            tl_feed_bad(s->tl, t->trace_thread, t_ns);
            continue;
        }
        struct rec_stack st = stack_of(snap, pt, ns);
        uint32_t leaf = intern_stack(s, rp, t, &st);
        trace_sample(s->w, t->trace_thread, t_ns, leaf, flags);
        s->cur_p = p;
        s->cur_pt = pt;
        t->tl_fed = tl_feed_same(s->tl, t->trace_thread, t_ns, t->tlf, t->depth_kept, t->same) == 0;
        s->cur_pt = NULL;
    }
    /* A thread missing from a torn thread list may still live: end threads only when the lists
     * were read to their ends. */
    for (uint32_t i = 0; i < rp->n && snap->complete; i++)
        if (!rp->threads[i].seen && !rp->threads[i].gone)
            end_thread(s, rp, &rp->threads[i], t_ns);
    if (snap->cpu_times)
        write_cpu_counters(s, rp, snap, t_ns);
    write_counters(s, rp, t_ns);
}

void rec_sink_feed(struct rec_sink *s, uint32_t proc, struct py_proc *p,
                   const struct py_snapshot *snap, uint64_t t_ns)
{
    feed(s, proc, p, snap, NULL, t_ns);
}

void rec_sink_feed_native(struct rec_sink *s, uint32_t proc, struct py_proc *p,
                          const struct py_snapshot *snap, const struct native_snap *ns,
                          uint64_t t_ns)
{
    feed(s, proc, p, snap, ns, t_ns);
}

void rec_sink_off_cpu(struct rec_sink *s, uint32_t proc, const struct py_snapshot *snap,
                      uint64_t t_begin, uint64_t t_end)
{
    struct rec_proc *rp = &s->procs[proc - 1];
    if (!snap->nthreads || t_end <= t_begin)
        return;
    const struct py_thread *pt = &snap->threads[0];
    struct rec_thread *t = thread_for(s, rp, pt, t_begin);
    if (!t || !thread_selected(s, t))
        return;
    if (!s->off_cpu_function)
        s->off_cpu_function = trace_function(s->w, "<off-CPU>", "<off-CPU>", "", 0);
    struct tl_span span = {
        .thread = t->trace_thread, .function = s->off_cpu_function, .depth = pt->nframes,
        .call_line = pt->nframes ? py_thread_frame(snap, pt, 0)->line : -1, .first_line = -1,
        .begin_lo = t_begin, .begin = t_begin, .end = t_end, .end_hi = t_end, .off_cpu = true,
    };
    trace_span(s->w, &span);
}

void rec_sink_feed_failed(struct rec_sink *s, uint32_t proc, uint64_t t_ns)
{
    struct rec_proc *rp = &s->procs[proc - 1];
    for (uint32_t i = 0; i < rp->n; i++) {
        struct rec_thread *t = &rp->threads[i];
        if (t->gone || !thread_selected(s, t))
            continue;
        s->samples++;
        s->errors++;
        trace_sample(s->w, t->trace_thread, t_ns, 0, TRACE_F_BAD);
        tl_feed_bad(s->tl, t->trace_thread, t_ns);
    }
}

static void close_statm(struct rec_proc *rp)
{
    if (rp->statm_fd >= 0)
        close(rp->statm_fd);
    rp->statm_fd = -1;
}

void rec_sink_process_exit(struct rec_sink *s, uint32_t proc, uint64_t t_ns, int64_t status)
{
    struct rec_proc *rp = &s->procs[proc - 1];
    if (rp->exited)
        return;
    for (uint32_t i = 0; i < rp->n; i++)
        if (!rp->threads[i].gone)
            end_thread(s, rp, &rp->threads[i], t_ns);
    trace_event(s->w, TRACE_E_PROCESS_EXIT, rp->trace_process, 0, t_ns, status, NULL);
    rp->exited = true;
    close_statm(rp);
}

enum pt_status rec_sink_tick(struct rec_sink *s, uint64_t now_ns, struct pt_err *err)
{
    return trace_maybe_flush(s->w, now_ns, err);
}

uint64_t rec_sink_bytes(const struct rec_sink *s) { return trace_bytes(s->w); }
uint64_t rec_sink_samples(const struct rec_sink *s) { return s->samples; }
uint64_t rec_sink_errors(const struct rec_sink *s) { return s->errors; }

enum pt_status rec_sink_close(struct rec_sink *s, uint64_t t_ns, struct trace_summary *sum,
                              struct pt_err *err)
{
    tl_finish(s->tl, t_ns);
    sum->samples = s->samples;
    sum->errors = s->errors;
    sum->redacted = s->redacted;   /* values captured with --locals, as written */
    sum->dropped = s->dropped;
    sum->excluded = s->excluded;
    enum pt_status rc = trace_writer_close(s->w, sum, err);
    tl_free(s->tl);
    for (uint32_t i = 0; i < s->n_procs; i++) {
        struct rec_proc *rp = &s->procs[i];
        for (uint32_t k = 0; k < rp->n; k++) {
            free(rp->threads[k].nodes);
            free(rp->threads[k].funcs);
            free(rp->threads[k].keys);
            free(rp->threads[k].lines);
            free(rp->threads[k].tlf);
        }
        free(rp->threads);
        free(rp->fid_by_code);
        close_statm(rp);
    }
    free(s->procs);
    free(s->action_by_fid);
    rec_locals_free(s);
    free(s->cur_frames);
    free(s);
    return rc;
}
