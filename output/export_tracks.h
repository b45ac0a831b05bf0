/*
 * export_tracks.h — what the timeline exporters (Perfetto, Chrome JSON) share: each selected
 * thread's spans as slices that nest properly, each thread's cumulative CPU counters as a rate,
 * and which processes are in the selection.
 *
 * Spans come from sampling, and their edges are estimates (the midpoint estimator of
 * docs/timing.md). Two estimates can disagree where the truth cannot: a call's estimated end may
 * fall after the estimated begin of the next call at the same depth, or a child's interval may
 * poke out of its parent's (the child's sampling interval at an edge can be wider than the
 * parent's when samples were torn or late). Timeline viewers draw such overlaps as garbage
 * (Chrome) or mis-nest them (Perfetto), so slices are clamped: a child into its parent, a call to
 * begin no earlier than the previous one at its level ended. Everything is also clipped to the
 * selected window.
 *
 * Static functions in a header so both exporters compile them without another build target.
 */
#ifndef PT_EXPORT_TRACKS_H
#define PT_EXPORT_TRACKS_H

#include <stdlib.h>

#include "output/export.h"

#define EXPORT_NO_PARENT UINT32_MAX

struct export_slice {
    uint64_t begin, end;   /* CLOCK_MONOTONIC ns: estimated, clipped, clamped; begin <= end */
    uint64_t seen_first, seen_last;   /* the span's first and last sightings (begin, end) */
    uint32_t span;         /* index into t->spans */
    uint32_t thread;
    uint32_t depth;        /* the span's recorded depth: orders a parent before its child */
    uint32_t parent;       /* index in the slice array of the enclosing slice; EXPORT_NO_PARENT */
};

/* The span's edges under the estimator, tolerating bounds a damaged file has in the wrong order. */
static inline void export_tracks_edges(const struct export_view *v, const struct tl_span *s,
                                       uint64_t *begin, uint64_t *end)
{
    uint64_t b = s->begin_lo <= s->begin ? export_span_begin(s) : s->begin;
    uint64_t e = s->end_hi >= s->end ? export_span_end(s) : s->end;
    if (b < v->t0)
        b = v->t0;
    if (e > v->t1)
        e = v->t1;
    *begin = b;
    *end = e < b ? b : e;
}

static inline int export_tracks_cmp_slice(const void *pa, const void *pb)
{
    const struct export_slice *a = pa, *b = pb;
    if (a->thread != b->thread)
        return a->thread < b->thread ? -1 : 1;
    if (a->seen_first != b->seen_first)
        return a->seen_first < b->seen_first ? -1 : 1;
    if (a->depth != b->depth)
        return a->depth < b->depth ? -1 : 1;
    if (a->seen_last != b->seen_last)
        return a->seen_last > b->seen_last ? -1 : 1;     /* the longer one encloses */
    return a->span < b->span ? -1 : a->span > b->span;
}

/*
 * Nests one thread's slices, sorted by first sighting (a parent before its children). Which slice
 * encloses which is decided on the sightings, which nest by construction (a frame is seen only
 * while its caller is); the estimated times are then clamped to agree: a slice begins no earlier
 * than its parent and than the end of everything that closed before it, and ends no later than
 * its parent. The stack holds the slices enclosing the current one.
 */
static inline void export_tracks_nest(struct export_slice *s, size_t n, uint32_t *stack)
{
    size_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t lo = 0, hi = UINT64_MAX;
        while (top) {
            struct export_slice *open = &s[stack[top - 1]];
            if (open->depth < s[i].depth && open->seen_last >= s[i].seen_first)
                break;                         /* it encloses s[i] */
            if (open->end > lo)
                lo = open->end;
            top--;
        }
        s[i].parent = top ? stack[top - 1] : EXPORT_NO_PARENT;
        if (top) {
            const struct export_slice *parent = &s[stack[top - 1]];
            lo = parent->begin > lo ? parent->begin : lo;
            hi = parent->end;
        }
        if (s[i].begin < lo)
            s[i].begin = lo;
        if (s[i].begin > hi)
            s[i].begin = hi;
        if (s[i].end > hi)
            s[i].end = hi;
        if (s[i].end < s[i].begin)
            s[i].end = s[i].begin;
        stack[top++] = (uint32_t)i;
    }
}

/*
 * Every span the view selects, as slices sorted by thread then first sighting (a parent before
 * its children), with `parent` links. On each thread a slice lies within its parent, and a slice
 * begins no earlier than any slice before it that is not its ancestor has ended: walking the
 * array with a stack gives BEGIN/END events in time order. The caller frees *out. PT_EFAIL when
 * out of memory.
 */
static inline enum pt_status export_tracks_slices(const struct export_view *v,
                                                  struct export_slice **out, size_t *n_out,
                                                  struct pt_err *err)
{
    const struct trace *t = v->t;
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    for (size_t i = 0; i < t->n_spans; i++)
        n += export_span_ok(v, &t->spans[i]);
    if (n >= EXPORT_NO_PARENT)   /* slice indices are uint32 */
        return pt_fail(err, PT_EFAIL, "too many spans to export (%zu)", n);
    struct export_slice *s = malloc((n ? n : 1) * sizeof *s);
    uint32_t *stack = malloc((n ? n : 1) * sizeof *stack);
    if (!s || !stack) {
        free(s);
        free(stack);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < t->n_spans; i++) {
        const struct tl_span *sp = &t->spans[i];
        if (!export_span_ok(v, sp))
            continue;
        s[k] = (struct export_slice){.seen_first = sp->begin, .seen_last = sp->end,
                                     .span = (uint32_t)i, .thread = sp->thread,
                                     .depth = sp->depth, .parent = EXPORT_NO_PARENT};
        export_tracks_edges(v, sp, &s[k].begin, &s[k].end);
        k++;
    }
    qsort(s, n, sizeof *s, export_tracks_cmp_slice);
    for (size_t lo = 0, hi; lo < n; lo = hi) {
        for (hi = lo; hi < n && s[hi].thread == s[lo].thread; hi++)
            ;
        export_tracks_nest(s + lo, hi - lo, stack);
        for (size_t i = lo; i < hi; i++)   /* parent links are run-relative: make them absolute */
            if (s[i].parent != EXPORT_NO_PARENT)
                s[i].parent += (uint32_t)lo;
    }
    free(stack);
    *out = s;
    *n_out = n;
    return PT_OK;
}

/* ---- CPU ----------------------------------------------------------------------------------- */

/* CPU use of a thread between two readings of its cumulative user+system counters. */
struct export_cpu_point {
    uint32_t thread;
    uint64_t t_ns;
    double percent;        /* of one CPU, over [t_ns, next point) */
};

static inline int export_tracks_cmp_counter(const void *pa, const void *pb)
{
    const struct trace_counter *a = *(const struct trace_counter *const *)pa;
    const struct trace_counter *b = *(const struct trace_counter *const *)pb;
    if (a->owner != b->owner)
        return a->owner < b->owner ? -1 : 1;
    if (a->t_ns != b->t_ns)
        return a->t_ns < b->t_ns ? -1 : 1;
    return a->kind < b->kind ? -1 : a->kind > b->kind;
}

static inline bool export_tracks_is_cpu(const struct export_view *v, const struct trace_counter *c)
{
    return (c->kind == TRACE_C_CPU_USER_NS || c->kind == TRACE_C_CPU_SYS_NS) && c->owner &&
           c->owner < v->t->n_threads && v->thread_ok[c->owner] && c->t_ns >= v->t0 &&
           c->t_ns <= v->t1;
}

/* Turns one thread's readings (sorted by time) into rate points. The recorder writes user and
 * system time together, but only when they changed; a kind missing at a reading keeps its last
 * value (its first one before it appears, so it never looks like a jump). */
static inline size_t export_tracks_cpu_thread(const struct trace_counter *const *c, size_t n,
                                              struct export_cpu_point *out)
{
    int64_t user = 0, sys = 0;
    bool seen_user = false, seen_sys = false;
    for (size_t i = 0; i < n && !(seen_user && seen_sys); i++) {
        if (c[i]->kind == TRACE_C_CPU_USER_NS && !seen_user)
            user = c[i]->value, seen_user = true;
        if (c[i]->kind == TRACE_C_CPU_SYS_NS && !seen_sys)
            sys = c[i]->value, seen_sys = true;
    }
    size_t k = 0;
    uint64_t prev_t = 0;
    int64_t prev_total = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && c[j]->t_ns == c[i]->t_ns; j++)
            *(c[j]->kind == TRACE_C_CPU_USER_NS ? &user : &sys) = c[j]->value;
        int64_t total = user + sys;
        if (i > 0) {
            double pct = (double)(total - prev_total) * 100.0 / (double)(c[i]->t_ns - prev_t);
            out[k++] = (struct export_cpu_point){c[i]->owner, prev_t, pct > 0 ? pct : 0};
        }
        prev_t = c[i]->t_ns;
        prev_total = total;
    }
    if (k) {   /* the last rate holds until the last reading, where the counter stops */
        out[k] = (struct export_cpu_point){out[k - 1].thread, prev_t, out[k - 1].percent};
        k++;
    }
    return k;
}

/* Every selected thread's CPU rate points within the window, sorted by thread then time. The
 * caller frees *out. PT_EFAIL when out of memory. */
static inline enum pt_status export_tracks_cpu(const struct export_view *v,
                                               struct export_cpu_point **out, size_t *n_out,
                                               struct pt_err *err)
{
    const struct trace *t = v->t;
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    for (size_t i = 0; i < t->n_counters; i++)
        n += export_tracks_is_cpu(v, &t->counters[i]);
    const struct trace_counter **c = malloc((n ? n : 1) * sizeof *c);
    struct export_cpu_point *p = malloc((n + 1) * sizeof *p);
    if (!c || !p) {
        free(c);
        free(p);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    size_t k = 0, np = 0;
    for (size_t i = 0; i < t->n_counters; i++)
        if (export_tracks_is_cpu(v, &t->counters[i]))
            c[k++] = &t->counters[i];
    qsort(c, n, sizeof *c, export_tracks_cmp_counter);
    for (size_t lo = 0, hi; lo < n; lo = hi) {
        for (hi = lo; hi < n && c[hi]->owner == c[lo]->owner; hi++)
            ;
        np += export_tracks_cpu_thread(c + lo, hi - lo, p + np);
    }
    free(c);
    *out = p;
    *n_out = np;
    return PT_OK;
}

/* ---- processes and threads ----------------------------------------------------------------- */

/* Which processes are exported, by process id: those with a selected thread, and all of them
 * when no --thread option narrows the selection. The caller frees the array; NULL when out of
 * memory. */
static inline bool *export_tracks_processes(const struct export_view *v)
{
    const struct trace *t = v->t;
    bool *ok = calloc(t->n_processes + 1, sizeof *ok);
    if (!ok)
        return NULL;
    for (uint32_t p = 1; p < t->n_processes; p++)
        ok[p] = v->o->n_threads == 0;
    for (uint32_t i = 1; i < t->n_threads; i++)
        if (v->thread_ok[i] && t->threads[i].process < t->n_processes)
            ok[t->threads[i].process] = true;
    ok[0] = false;
    return ok;
}

/* The native pid of a thread's process (the trace's pid when the process is unknown). */
static inline int64_t export_tracks_pid(const struct trace *t, uint32_t thread)
{
    uint32_t p = thread < t->n_threads ? t->threads[thread].process : 0;
    return p && p < t->n_processes ? t->processes[p].pid : t->pid;
}

#endif
