/*
 * test_timeline_sim.c — output/timeline.c on a synthetic model of the phases.py workload sampled at
 * 1 kHz with jitter: how many of its calls become one span each and the error of the midpoint
 * estimator, and that feeding the unchanged prefix (tl_feed_same) changes no span.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/timeline.h"
#include "tests/unit/span_assert.h"
#include "tests/unit/timeline_fixture.h"

/* ---- accuracy on a synthetic phases.py ------------------------------------------------------ */

/*
 * A model of phases.py's call sequence: back-to-back root requests, each calling parse (2–40 ms),
 * query (1–30 ms, sleeping in C, so query itself is innermost) and render (3–25 ms of its own work,
 * then 1–4 escape calls of 1–8 ms). parse, escape and render's own work call a helper (spin) that
 * loops; the helper is on the stack but not in the truth, like phases.py's spin(). Between calls a
 * few µs pass. Frames sit in depth slots (3.11's data stack: every call at one depth has the same
 * address); a caller's offset is its call site; a call's first 0.5 µs show offset 0 (its entry).
 * argsig is new per call except that 30% of calls reuse their function's previous one (singleton
 * arguments such as small ints).
 */
enum { S_REQUEST = 1, S_PARSE, S_QUERY, S_RENDER, S_ESCAPE, S_SPIN, S_NFN };
#define MS 1000000ull
#define US 1000ull

struct sim_call {
    uint32_t fn, depth;
    int parent;            /* index in calls, -1 for the root */
    int32_t site;          /* the parent's offset while this call runs */
    uint64_t argsig, start, end;
};

/* From t0 until the next segment, `call` is innermost at an offset drawn from [lo, hi]. */
struct sim_seg {
    uint64_t t0;
    int call;
    int32_t lo, hi;
};

struct sim {
    uint64_t rng, now;
    uint64_t last_sig[S_NFN];
    struct sim_call *calls;
    size_t ncalls, capc;
    struct sim_seg *segs;
    size_t nsegs, caps;
};

static uint64_t sim_next(struct sim *s)   /* splitmix64 */
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t sim_range(struct sim *s, uint64_t lo, uint64_t hi)   /* in [lo, hi] */
{
    return lo + sim_next(s) % (hi - lo + 1);
}

static void sim_segment(struct sim *s, int call, int32_t lo, int32_t hi, uint64_t dur)
{
    if (s->nsegs == s->caps) {
        s->caps = s->caps ? s->caps * 2 : 4096;
        s->segs = realloc(s->segs, s->caps * sizeof *s->segs);
        assert_non_null(s->segs);
    }
    s->segs[s->nsegs++] = (struct sim_seg){ s->now, call, lo, hi };
    s->now += dur;
}

static uint64_t sim_sig(struct sim *s, uint32_t fn)
{
    if (!(s->last_sig[fn] && sim_next(s) % 100 < 30))
        s->last_sig[fn] = sim_next(s) | 1;
    return s->last_sig[fn];
}

static int sim_enter(struct sim *s, uint32_t fn, int parent, int32_t site, uint64_t argsig)
{
    if (s->ncalls == s->capc) {
        s->capc = s->capc ? s->capc * 2 : 4096;
        s->calls = realloc(s->calls, s->capc * sizeof *s->calls);
        assert_non_null(s->calls);
    }
    uint32_t depth = parent < 0 ? 0 : s->calls[parent].depth + 1;
    s->calls[s->ncalls] = (struct sim_call){ fn, depth, parent, site, argsig, s->now, 0 };
    sim_segment(s, (int)s->ncalls, 0, 0, 500);
    return (int)s->ncalls++;
}

static void sim_gap(struct sim *s, int call, int32_t lasti)
{
    sim_segment(s, call, lasti, lasti, sim_range(s, 2 * US, 20 * US));
}

/* fn(ms) whose body is `return spin(ms)` at offset 8; spin's argument is the same object. */
static void sim_spinning(struct sim *s, uint32_t fn, int parent, int32_t site, uint64_t dur)
{
    int c = sim_enter(s, fn, parent, site, sim_sig(s, fn));
    sim_gap(s, c, 4);
    int sp = sim_enter(s, S_SPIN, c, 8, s->calls[c].argsig * 31 | 1);
    sim_segment(s, sp, 10, 40, dur);
    s->calls[sp].end = s->now;
    sim_gap(s, c, 10);
    s->calls[c].end = s->now;
}

static void sim_render(struct sim *s, int parent, int32_t site)
{
    int c = sim_enter(s, S_RENDER, parent, site, sim_sig(s, S_RENDER));
    int sp = sim_enter(s, S_SPIN, c, 8, s->calls[c].argsig * 37 | 1);
    sim_segment(s, sp, 10, 40, sim_range(s, 3 * MS, 25 * MS));
    s->calls[sp].end = s->now;
    for (uint64_t i = 0, n = sim_range(s, 1, 4); i < n; i++) {
        sim_gap(s, c, 26);   /* the for loop's head */
        sim_spinning(s, S_ESCAPE, c, 30, sim_range(s, 1 * MS, 8 * MS));
    }
    sim_gap(s, c, 40);
    s->calls[c].end = s->now;
}

static void sim_request(struct sim *s)
{
    int c = sim_enter(s, S_REQUEST, -1, -1, sim_sig(s, S_REQUEST));
    sim_gap(s, c, 4);
    sim_spinning(s, S_PARSE, c, 10, sim_range(s, 2 * MS, 40 * MS));
    sim_gap(s, c, 12);
    int q = sim_enter(s, S_QUERY, c, 20, sim_sig(s, S_QUERY));
    sim_segment(s, q, 8, 8, sim_range(s, 1 * MS, 30 * MS));   /* in time.sleep: query innermost */
    s->calls[q].end = s->now;
    sim_gap(s, c, 22);
    sim_render(s, c, 30);
    sim_gap(s, c, 40);
    s->calls[c].end = s->now;
}

/* The stack at segment g, root first; returns its depth. */
static size_t sim_stack(struct sim *s, const struct sim_seg *g, struct tl_frame *fr)
{
    size_t n = s->calls[g->call].depth + 1;
    int32_t lasti = (int32_t)sim_range(s, (uint64_t)g->lo, (uint64_t)g->hi);
    for (int c = g->call; c >= 0; c = s->calls[c].parent) {
        const struct sim_call *k = &s->calls[c];
        fr[k->depth] = FR(0x7f0000010000ull + 0x50 * k->depth, k->fn, (int32_t)k->fn * 100 + lasti / 2,
                          lasti, k->argsig);
        lasti = k->site;
    }
    return n;
}

/* Samples every 1 ms ± 50 µs from 1 ms to the end of the last request. */
static void sim_sample(struct sim *s, struct timeline *tl, uint64_t *first, uint64_t *last)
{
    struct tl_frame fr[8];
    size_t g = 0;
    *first = *last = 0;
    for (uint64_t k = 1;; k++) {
        uint64_t t = k * MS + sim_range(s, 0, 100 * US) - 50 * US;
        if (t >= s->now)
            break;
        while (g + 1 < s->nsegs && s->segs[g + 1].t0 <= t)
            g++;
        size_t n = sim_stack(s, &s->segs[g], fr);
        assert_int_equal(tl_feed(tl, 0, t, fr, n), 0);
        *first = *first ? *first : t;
        *last = t;
    }
    tl_finish(tl, s->now);
}

/* ---- scoring -------------------------------------------------------------------------------- */

struct sim_score {
    uint64_t any_ov, one_ov;     /* best overlap of any span / of a span credited to this call */
    size_t any_span, one_span;
};

static uint64_t est_begin(const struct tl_span *p)
{
    return p->open_begin ? p->begin : p->begin_lo + (p->begin - p->begin_lo) / 2;
}

static uint64_t est_end(const struct tl_span *p)
{
    return p->open_end ? p->end : p->end + (p->end_hi - p->end) / 2;
}

/* Scores span p against every truth call of its function it overlaps; byfn lists, per
 * function, the indices of its calls in start order. */
static void sim_score_span(const struct sim *s, size_t *const byfn[], const size_t nbyfn[],
                           const struct tl_span *p, size_t pi, struct sim_score *sc)
{
    uint64_t b = est_begin(p), e = est_end(p);
    size_t *idx = byfn[p->function], n = nbyfn[p->function];
    size_t lo = 0, hi = n;
    while (lo < hi) {   /* first call ending after b */
        size_t mid = (lo + hi) / 2;
        if (s->calls[idx[mid]].end <= b)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t best = SIZE_MAX;
    uint64_t best_ov = 0;
    for (size_t j = lo; j < n && s->calls[idx[j]].start < e; j++) {
        const struct sim_call *c = &s->calls[idx[j]];
        if (c->depth != p->depth)
            continue;
        uint64_t ov = (e < c->end ? e : c->end) - (b > c->start ? b : c->start);
        if (ov > sc[idx[j]].any_ov)
            sc[idx[j]].any_ov = ov, sc[idx[j]].any_span = pi;
        if (ov > best_ov)
            best_ov = ov, best = idx[j];
    }
    if (best != SIZE_MAX && best_ov > sc[best].one_ov)
        sc[best].one_ov = best_ov, sc[best].one_span = pi;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(uint64_t *v, size_t n, int pct)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    return (double)v[n * (size_t)pct / 100] / 1e6;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* The previous (dir -1) or next (dir 1) call in call i's slot under the same parent, or -1. */
static long sim_sibling(const struct sim *s, size_t i, int dir)
{
    uint32_t d = s->calls[i].depth;
    for (long j = (long)i + dir; j >= 0 && (size_t)j < s->ncalls; j += dir) {
        if (s->calls[j].depth < d)
            return -1;
        if (s->calls[j].depth == d)
            return j;
    }
    return -1;
}

/* Whether call i and its neighbour in the slot look alike to every hint, so that they merge. */
static bool sim_twin(const struct sim *s, size_t i, int dir)
{
    long j = sim_sibling(s, i, dir);
    if (j < 0)
        return false;
    const struct sim_call *a = &s->calls[i], *b = &s->calls[j];
    return a->fn == b->fn && a->argsig == b->argsig && a->site == b->site;
}

struct sim_result {
    size_t eligible, any, one;      /* truth calls >= 5 ms; found by either matching */
    size_t recalls;                 /* eligible calls no hint tells from the previous call */
    size_t clean, clean_one;        /* eligible calls with no such twin on either side; found */
    size_t missed[S_NFN];
    double err[2][2][2];            /* [all, clean][begin, end][median, p95], ms */
};

static void sim_errors(uint64_t *eb, uint64_t *ee, size_t n, double err[2][2])
{
    err[0][0] = pct_ms(eb, n, 50), err[0][1] = pct_ms(eb, n, 95);
    err[1][0] = pct_ms(ee, n, 50), err[1][1] = pct_ms(ee, n, 95);
}

/* Scores the spans against the truth calls that ran wholly between the first and last sample. */
static void sim_evaluate(const struct sim *s, const struct got *got, uint64_t first, uint64_t last,
                         struct sim_result *r)
{
    size_t *byfn[S_NFN], nbyfn[S_NFN] = { 0 };
    for (uint32_t fn = 0; fn < S_NFN; fn++)
        assert_non_null(byfn[fn] = calloc(s->ncalls + 1, sizeof(size_t)));
    for (size_t i = 0; i < s->ncalls; i++)
        byfn[s->calls[i].fn][nbyfn[s->calls[i].fn]++] = i;
    struct sim_score *sc = calloc(s->ncalls, sizeof *sc);
    uint64_t *e[4];   /* begin, end errors: all one-span matches, clean ones */
    for (int k = 0; k < 4; k++)
        assert_non_null(e[k] = calloc(s->ncalls, sizeof(uint64_t)));
    assert_non_null(sc);
    for (size_t i = 0; i < got->n; i++)
        sim_score_span(s, byfn, nbyfn, &got->v[i], i, sc);

    memset(r, 0, sizeof *r);
    size_t nall = 0, nclean = 0;
    for (size_t i = 0; i < s->ncalls; i++) {
        const struct sim_call *c = &s->calls[i];
        uint64_t dur = c->end - c->start;
        if (c->fn == S_SPIN || dur < 5 * MS || c->start <= first || c->end >= last)
            continue;
        bool clean = !sim_twin(s, i, -1) && !sim_twin(s, i, 1);
        r->eligible++;
        r->recalls += sim_twin(s, i, -1);
        r->clean += clean;
        r->any += 2 * sc[i].any_ov >= dur;
        if (2 * sc[i].one_ov < dur) {
            r->missed[c->fn]++;
            continue;
        }
        r->one++;
        r->clean_one += clean;
        const struct tl_span *p = &got->v[sc[i].one_span];
        uint64_t db = absdiff(est_begin(p), c->start), de = absdiff(est_end(p), c->end);
        e[0][nall] = db, e[1][nall++] = de;
        if (clean)
            e[2][nclean] = db, e[3][nclean++] = de;
    }
    sim_errors(e[0], e[1], nall, r->err[0]);
    sim_errors(e[2], e[3], nclean, r->err[1]);
    for (uint32_t fn = 0; fn < S_NFN; fn++)
        free(byfn[fn]);
    for (int k = 0; k < 4; k++)
        free(e[k]);
    free(sc);
}

static void sim_print(const struct sim_result *r, size_t nspans)
{
    double n = (double)r->eligible;
    printf("synthetic phases.py, 1 kHz +-50 us: %zu truth calls >= 5 ms, %zu spans\n"
           "  detection, a span overlaps >= 50%%:     %6.2f%%\n"
           "  detection, one span per call:          %6.2f%%  (missed: request %zu, escape %zu, "
           "other %zu)\n"
           "  re-calls no hint tells from the last:  %6.2f%%  (same function, slot, call site, argsig)\n"
           "  detection, calls without such a twin:  %6.2f%%\n"
           "  |begin error| median %.3f p95 %.3f ms, |end error| median %.3f p95 %.3f ms"
           " (all matches)\n"
           "  |begin error| median %.3f p95 %.3f ms, |end error| median %.3f p95 %.3f ms"
           " (calls without a twin)\n",
           r->eligible, nspans, 100 * (double)r->any / n, 100 * (double)r->one / n,
           r->missed[S_REQUEST], r->missed[S_ESCAPE],
           r->missed[S_PARSE] + r->missed[S_QUERY] + r->missed[S_RENDER],
           100 * (double)r->recalls / n, 100 * (double)r->clean_one / (double)r->clean,
           r->err[0][0][0], r->err[0][0][1], r->err[0][1][0], r->err[0][1][1],
           r->err[1][0][0], r->err[1][0][1], r->err[1][1][0], r->err[1][1][1]);
}

static void synthetic_phases_detection_and_midpoint_error(void **state)
{
    struct fix *f = *state;
    struct sim s = { .rng = 20240601 };
    while (s.now < 120000 * MS)
        sim_request(&s);
    uint64_t first, last;
    sim_sample(&s, f->tl, &first, &last);
    struct sim_result r;
    sim_evaluate(&s, &f->got, first, last, &r);
    free(s.calls);
    free(s.segs);
    sim_print(&r, f->got.n);

    assert_true(r.eligible > 5000);
    assert_true(r.any >= r.eligible * 95 / 100);           /* the benchmark's matching */
    assert_true(r.clean_one >= r.clean * 99 / 100);        /* every separable call is found */
    assert_true(r.eligible - r.one <= r.recalls);          /* and each miss is such a merge */
    assert_true(r.err[0][0][0] <= 0.5 && r.err[0][1][0] <= 0.5);
    assert_true(r.err[1][0][1] <= 1.5 && r.err[1][1][1] <= 1.5);
}

/* Longest root-side prefix of fr equal, field for field, to prev (what the recorder passes). */
static size_t same_prefix(const struct tl_frame *prev, size_t np, const struct tl_frame *fr, size_t n)
{
    size_t k = 0;
    while (k < np && k < n && prev[k].addr == fr[k].addr && prev[k].function == fr[k].function &&
           prev[k].line == fr[k].line && prev[k].lasti == fr[k].lasti &&
           prev[k].argsig == fr[k].argsig && prev[k].restart == fr[k].restart)
        k++;
    return k;
}

/* tl_feed_same() with the unchanged prefix gives exactly tl_feed()'s spans, bad samples and a
 * `same` larger than either stack (taken as 0) included. A wrong hint (one frame too many every
 * fifth sample) makes this fail. */
static void feeding_the_unchanged_prefix_changes_no_span(void **state)
{
    struct fix *f = *state;
    struct got g2 = {0};
    struct timeline *tl2 = tl_new(got_emit, &g2);
    assert_non_null(tl2);
    struct sim s = { .rng = 7 };
    while (s.now < 20000 * MS)
        sim_request(&s);
    struct tl_frame fr[8], prev[8];
    size_t g = 0, np = 0, with_same = 0;
    for (uint64_t k = 1;; k++) {
        uint64_t t = k * 100 * US + sim_range(&s, 0, 10 * US);
        if (t >= s.now)
            break;
        if (k % 97 == 0) {   /* a torn sample now and then */
            tl_feed_bad(f->tl, 0, t);
            tl_feed_bad(tl2, 0, t);
            continue;
        }
        while (g + 1 < s.nsegs && s.segs[g + 1].t0 <= t)
            g++;
        size_t n = sim_stack(&s, &s.segs[g], fr);
        size_t same = k % 89 == 0 ? n + 1 : same_prefix(prev, np, fr, n);
        with_same += same > 0 && same <= n;
        assert_int_equal(tl_feed(f->tl, 0, t, fr, n), 0);
        assert_int_equal(tl_feed_same(tl2, 0, t, fr, n, same), 0);
        memcpy(prev, fr, n * sizeof *fr);
        np = n;
    }
    tl_end_thread(f->tl, 0, s.now);
    tl_end_thread(tl2, 0, s.now);
    assert_true(with_same > 1000);
    assert_true(f->got.n > 1000);
    assert_int_equal(f->got.n, g2.n);
    for (size_t i = 0; i < g2.n; i++)
        assert_span_equal(&f->got.v[i], &g2.v[i]);
    tl_free(tl2);
    free(g2.v);
    free(s.calls);
    free(s.segs);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(feeding_the_unchanged_prefix_changes_no_span),
        T(synthetic_phases_detection_and_midpoint_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
