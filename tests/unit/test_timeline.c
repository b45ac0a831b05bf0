/*
 * test_timeline.c — output/timeline.c: which sampled frames are one call, the bounds of every span,
 * emit order, bad samples, threads, and (last) the accuracy of the midpoint estimator on a
 * synthetic model of the phases.py workload sampled at 1 kHz with jitter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif

#include "output/timeline.h"
#include "tests/unit/span_assert.h"

#define FR(addr, fn, line, lasti, sig) ((struct tl_frame){ (addr), (fn), (line), (lasti), (sig), false })
/* A frame the feeder marked as a new call in the same slot (restart). */
#define FRR(addr, fn, line, lasti, sig) ((struct tl_frame){ (addr), (fn), (line), (lasti), (sig), true })
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture: a timeline whose spans land in a growable array ------------------------------ */

struct got {
    struct tl_span *v;
    size_t n, cap;
};

struct fix {
    struct timeline *tl;
    struct got got;
};

static void got_emit(const struct tl_span *s, void *ctx)
{
    struct got *g = ctx;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->v = realloc(g->v, g->cap * sizeof *g->v);
        assert_non_null(g->v);
    }
    g->v[g->n++] = *s;
}

static int fix_setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->tl = tl_new(got_emit, &f->got);
    *state = f;
    return f->tl ? 0 : -1;
}

static int fix_teardown(void **state)
{
    struct fix *f = *state;
    tl_free(f->tl);
    free(f->got.v);
    free(f);
    return 0;
}

static void feed(struct fix *f, uint32_t thread, uint64_t t, const struct tl_frame *fr, size_t n)
{
    assert_int_equal(tl_feed(f->tl, thread, t, fr, n), 0);
}

#define FEED(f, thread, t, ...)                                                               \
    do {                                                                                       \
        const struct tl_frame fr_[] = { __VA_ARGS__ };                                         \
        feed((f), (thread), (t), fr_, ARRAY_LEN(fr_));                                         \
    } while (0)

static void assert_bounds(const struct tl_span *s, uint64_t begin_lo, uint64_t begin, uint64_t end,
                          uint64_t end_hi)
{
    assert_int_equal(s->begin_lo, begin_lo);
    assert_int_equal(s->begin, begin);
    assert_int_equal(s->end, end);
    assert_int_equal(s->end_hi, end_hi);
}

/* Frame addresses, function ids */
enum { A0 = 0x1000, A1 = 0x1100, A2 = 0x1200, A3 = 0x1300 };
enum { FN_MAIN = 1, FN_F, FN_G, FN_H };

/* ---- call structure ------------------------------------------------------------------------- */

static void nested_calls_end_innermost_first_with_sample_bounds(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 6, 12, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 0, 30, FR(A0, FN_MAIN, 6, 12, 0), FR(A1, FN_F, 31, 8, 0), FR(A2, FN_G, 50, 2, 0));
    FEED(f, 0, 40, FR(A0, FN_MAIN, 6, 12, 0), FR(A1, FN_F, 31, 8, 0), FR(A2, FN_G, 51, 6, 0));
    assert_int_equal(f->got.n, 0);
    FEED(f, 0, 50, FR(A0, FN_MAIN, 7, 14, 0));
    assert_int_equal(f->got.n, 2);
    const struct tl_span *g = &f->got.v[0], *fs = &f->got.v[1];
    assert_int_equal(g->function, FN_G);
    assert_int_equal(g->depth, 2);
    assert_bounds(g, 20, 30, 40, 50);
    assert_int_equal(g->samples, 2);
    assert_int_equal(g->call_line, 31);
    assert_int_equal(g->first_line, 50);
    assert_int_equal(fs->function, FN_F);
    assert_int_equal(fs->depth, 1);
    assert_bounds(fs, 10, 20, 40, 50);
    assert_int_equal(fs->samples, 3);
    assert_int_equal(fs->call_line, 6);
    assert_int_equal(fs->first_line, 30);
    assert_false(fs->open_begin || fs->open_end || g->open_begin || g->open_end);


    FEED(f, 0, 60, FR(A0, FN_MAIN, 8, 16, 0), FR(A1, FN_H, 70, 2, 0));
    feed(f, 0, 70, NULL, 0);   /* an empty stack ends everything */
    assert_int_equal(f->got.n, 4);
    assert_int_equal(f->got.v[2].function, FN_H);
    assert_bounds(&f->got.v[2], 50, 60, 60, 70);
    assert_int_equal(f->got.v[3].function, FN_MAIN);
    assert_int_equal(f->got.v[3].depth, 0);
    assert_int_equal(f->got.v[3].call_line, -1);
    assert_bounds(&f->got.v[3], 10, 10, 60, 70);
    assert_true(f->got.v[3].open_begin);
}

static void call_seen_once_has_begin_equal_end_and_neighbour_bounds(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 100, FR(A0, FN_MAIN, 5, 10, 0));
    FEED(f, 0, 200, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 0, 300, FR(A0, FN_MAIN, 5, 10, 0));
    assert_int_equal(f->got.n, 1);
    assert_bounds(&f->got.v[0], 100, 200, 200, 300);
    assert_int_equal(f->got.v[0].samples, 1);
}

static void recursion_is_tracked_per_depth(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_F, 1, 20, 0), FR(A1, FN_F, 1, 20, 0), FR(A2, FN_F, 1, 20, 0));
    FEED(f, 0, 20, FR(A0, FN_F, 1, 20, 0), FR(A1, FN_F, 1, 20, 0));
    assert_int_equal(f->got.n, 1);
    assert_int_equal(f->got.v[0].depth, 2);
    FEED(f, 0, 30, FR(A0, FN_F, 1, 20, 0), FR(A1, FN_F, 1, 20, 0), FR(A2, FN_F, 1, 20, 0),
         FR(A3, FN_F, 1, 20, 0));
    tl_finish(f->tl, 40);
    assert_int_equal(f->got.n, 5);
    for (size_t i = 1; i < 5; i++) {
        assert_int_equal(f->got.v[i].function, FN_F);
        assert_int_equal(f->got.v[i].depth, 4 - i);   /* innermost first */
    }
    assert_bounds(&f->got.v[1], 20, 30, 30, 30);   /* depth 3 */
    assert_bounds(&f->got.v[2], 20, 30, 30, 30);   /* depth 2: a new call of its own */
    assert_bounds(&f->got.v[3], 10, 10, 30, 30);   /* depth 1 ran throughout */
    assert_int_equal(f->got.v[3].samples, 3);
}

static void same_function_at_another_frame_address_is_a_new_call(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 5, 10, 0), FR(A2, FN_F, 30, 4, 0));
    tl_finish(f->tl, 30);
    assert_int_equal(f->got.n, 3);
    assert_int_equal(f->got.v[0].function, FN_F);
    assert_bounds(&f->got.v[0], 10, 10, 10, 20);
    assert_int_equal(f->got.v[1].function, FN_F);
    assert_bounds(&f->got.v[1], 10, 20, 20, 20);
    assert_int_equal(f->got.v[2].function, FN_MAIN);
}

static void other_function_in_the_same_slot_is_a_new_call(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_G, 30, 4, 0));
    assert_int_equal(f->got.n, 1);
    assert_int_equal(f->got.v[0].function, FN_F);
}

/* ---- hints that split a reused slot ---------------------------------------------------------- */

static void changed_argsig_is_a_new_call(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 8, 0xaa), FR(A2, FN_G, 40, 6, 0x1));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 8, 0xbb), FR(A2, FN_G, 40, 6, 0x1));
    /* Everything below a new call is new too, even with identical frames. */
    assert_int_equal(f->got.n, 2);
    assert_int_equal(f->got.v[0].function, FN_G);
    assert_int_equal(f->got.v[1].function, FN_F);
    assert_bounds(&f->got.v[1], 10, 10, 10, 20);
}

static void zero_argsig_never_splits(void **state)
{
    struct fix *f = *state;
    const uint64_t sigs[] = { 0, 0xaa, 0, 0xaa, 0, 0, 0xaa };
    for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
        FEED(f, 0, 10 * (i + 1), FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 8, sigs[i]));
    assert_int_equal(f->got.n, 0);
    /* A gap of unknowns does not hide a change either: compared with the last known value. */
    FEED(f, 0, 100, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 8, 0xcc));
    assert_int_equal(f->got.n, 1);
    assert_int_equal(f->got.v[0].samples, ARRAY_LEN(sigs));
}

static void loop_inside_one_call_is_one_span(void **state)
{
    struct fix *f = *state;
    /* First seen mid-loop, then back to the loop head below that first offset, around again, and
     * calling g and h from two sites inside the loop: all one call of f. */
    const int32_t lasti[] = { 40, 24, 56, 24, 12, 60, 12, 38 };
    for (size_t i = 0; i < ARRAY_LEN(lasti); i++) {
        uint64_t t = 10 * (i + 1);
        if (i % 3 == 2)
            FEED(f, 0, t, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, lasti[i], 0x7),
                 FR(A2, i % 2 ? FN_G : FN_H, 70, 6, 0x9));
        else
            FEED(f, 0, t, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, lasti[i], 0x7));
    }
    tl_finish(f->tl, 100);
    size_t fspans = 0;
    for (size_t i = 0; i < f->got.n; i++)
        fspans += f->got.v[i].function == FN_F;
    assert_int_equal(fspans, 1);
    assert_int_equal(f->got.v[f->got.n - 2].samples, ARRAY_LEN(lasti));
}

static void restart_marked_by_the_feeder_is_a_new_call(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 31, 40, 0x7));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 5, 10, 0), FRR(A1, FN_F, 30, 0, 0x7));
    assert_int_equal(f->got.n, 1);
    assert_bounds(&f->got.v[0], 10, 10, 10, 20);
    /* Without the mark, moving back is a loop: the same call. */
    FEED(f, 0, 30, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 31, 40, 0x7));
    FEED(f, 0, 40, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 0, 0x7));
    assert_int_equal(f->got.n, 1);
    FEED(f, 0, 50, FR(A0, FN_MAIN, 5, 10, 0), FRR(A1, FN_F, 30, 0, 0x7));
    assert_int_equal(f->got.n, 2);
    assert_bounds(&f->got.v[1], 10, 20, 40, 50);
    assert_int_equal(f->got.v[1].samples, 3);
}

static void caller_at_another_call_site_means_a_new_callee(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 8, 0x7), FR(A2, FN_G, 50, 4, 0));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 6, 22, 0), FR(A1, FN_F, 30, 8, 0x7), FR(A2, FN_G, 50, 4, 0));
    assert_int_equal(f->got.n, 2);
    assert_int_equal(f->got.v[0].function, FN_G);
    assert_int_equal(f->got.v[1].function, FN_F);
    /* An unknown caller offset neither splits nor forgets the call site. */
    FEED(f, 0, 30, FR(A0, FN_MAIN, 6, -1, 0), FR(A1, FN_F, 30, 8, 0x7), FR(A2, FN_G, 50, 4, 0));
    FEED(f, 0, 40, FR(A0, FN_MAIN, 6, 22, 0), FR(A1, FN_F, 30, 8, 0x7), FR(A2, FN_G, 50, 4, 0));
    assert_int_equal(f->got.n, 2);
    FEED(f, 0, 50, FR(A0, FN_MAIN, 7, 30, 0), FR(A1, FN_F, 30, 8, 0x7), FR(A2, FN_G, 50, 4, 0));
    assert_int_equal(f->got.n, 4);
    assert_bounds(&f->got.v[3], 10, 20, 40, 50);
}

/* ---- bad samples, threads, the ends of the recording ---------------------------------------- */

static void bad_samples_neither_end_nor_move_bounds(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    tl_feed_bad(f->tl, 0, 30);
    tl_feed_bad(f->tl, 0, 40);
    FEED(f, 0, 50, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    tl_feed_bad(f->tl, 0, 60);
    FEED(f, 0, 70, FR(A0, FN_MAIN, 5, 10, 0));
    assert_int_equal(f->got.n, 1);
    assert_bounds(&f->got.v[0], 10, 20, 50, 70);   /* end_hi skips the bad sample at 60 */
    assert_int_equal(f->got.v[0].samples, 2);
    tl_feed_bad(f->tl, 0, 75);
    FEED(f, 0, 80, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_G, 30, 4, 0));
    tl_feed_bad(f->tl, 0, 90);
    FEED(f, 0, 100, FR(A0, FN_MAIN, 5, 10, 0));
    assert_int_equal(f->got.n, 2);
    assert_bounds(&f->got.v[1], 70, 80, 80, 100);  /* begin_lo skips the bad sample at 75 */
}

static void bad_first_sample_still_leaves_first_stack_open_begin(void **state)
{
    struct fix *f = *state;
    tl_feed_bad(f->tl, 2, 5);
    FEED(f, 2, 10, FR(A0, FN_MAIN, 5, 10, 0));
    tl_finish(f->tl, 20);
    assert_int_equal(f->got.n, 1);
    assert_true(f->got.v[0].open_begin);
    assert_bounds(&f->got.v[0], 10, 10, 10, 10);
}

static void interleaved_threads_are_independent(void **state)
{
    struct fix *f = *state;
    /* Thread 7 first: indices need not arrive in order or densely. */
    FEED(f, 7, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 0, 11, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 7, 20, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 0, 21, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_G, 30, 4, 0));
    assert_int_equal(f->got.n, 1);
    assert_int_equal(f->got.v[0].thread, 0);
    assert_bounds(&f->got.v[0], 11, 11, 11, 21);
    FEED(f, 7, 30, FR(A0, FN_MAIN, 5, 10, 0));
    assert_int_equal(f->got.n, 2);
    assert_int_equal(f->got.v[1].thread, 7);
    assert_bounds(&f->got.v[1], 10, 10, 20, 30);
    FEED(f, 0, 31, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_G, 30, 4, 0));
    tl_finish(f->tl, 40);
    assert_int_equal(f->got.n, 5);
    for (size_t i = 2; i < 5; i++)
        assert_true(f->got.v[i].open_end);
}

static void finish_leaves_open_end_spans_and_first_stack_is_open_begin(void **state)
{
    struct fix *f = *state;
    FEED(f, 0, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 0, 20, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0), FR(A2, FN_G, 50, 2, 0));
    tl_finish(f->tl, 25);
    assert_int_equal(f->got.n, 3);
    const struct tl_span *g = &f->got.v[0], *fs = &f->got.v[1], *m = &f->got.v[2];
    assert_int_equal(g->function, FN_G);
    assert_false(g->open_begin);
    assert_bounds(g, 10, 20, 20, 20);
    assert_true(fs->open_begin && m->open_begin);
    assert_bounds(fs, 10, 10, 20, 20);
    for (size_t i = 0; i < 3; i++) {
        assert_true(f->got.v[i].open_end);
        assert_int_equal(f->got.v[i].end_hi, f->got.v[i].end);
    }
    tl_finish(f->tl, 30);   /* nothing left to end */
    assert_int_equal(f->got.n, 3);
}

static void ended_thread_closes_at_its_last_sample_and_starts_afresh(void **state)
{
    struct fix *f = *state;
    FEED(f, 1, 10, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    FEED(f, 1, 20, FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 0));
    tl_end_thread(f->tl, 1, 25);
    tl_end_thread(f->tl, 9, 25);   /* never seen: nothing */
    assert_int_equal(f->got.n, 2);
    assert_int_equal(f->got.v[0].function, FN_F);
    for (size_t i = 0; i < 2; i++) {
        assert_bounds(&f->got.v[i], 10, 10, 20, 25);
        assert_false(f->got.v[i].open_end);
    }
    FEED(f, 1, 30, FR(A0, FN_MAIN, 5, 10, 0));
    tl_finish(f->tl, 40);
    assert_int_equal(f->got.n, 3);
    assert_true(f->got.v[2].open_begin);
    assert_bounds(&f->got.v[2], 30, 30, 30, 30);
}

static void deep_stacks_of_any_depth_are_tracked(void **state)
{
    struct fix *f = *state;
    enum { DEEP = 10000 };
    struct tl_frame *fr = calloc(DEEP, sizeof *fr);
    assert_non_null(fr);
    for (size_t i = 0; i < DEEP; i++)
        fr[i] = FR(0x10000 + 0x50 * i, FN_F, 1, 20, 0);
    feed(f, 0, 10, fr, DEEP);
    feed(f, 0, 20, fr, DEEP / 2);
    free(fr);
    assert_int_equal(f->got.n, DEEP / 2);
    assert_int_equal(f->got.v[0].depth, DEEP - 1);
    assert_int_equal(f->got.v[DEEP / 2 - 1].depth, DEEP / 2);
}

static size_t live_heap_bytes(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

static void steady_state_feeding_does_not_allocate(void **state)
{
    struct fix *f = *state;
    struct tl_frame a[] = { FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_F, 30, 4, 1), FR(A2, FN_G, 9, 2, 3) };
    struct tl_frame b[] = { FR(A0, FN_MAIN, 5, 10, 0), FR(A1, FN_H, 30, 4, 2) };
    feed(f, 0, 1, a, 3);
    feed(f, 3, 1, b, 2);
    f->got.cap = 1024;   /* the collector's own growth must not count */
    f->got.v = realloc(f->got.v, f->got.cap * sizeof *f->got.v);
    assert_non_null(f->got.v);
    size_t before = live_heap_bytes();
    for (uint64_t t = 2; t < 400; t++) {
        feed(f, 0, t, t % 2 ? a : b, t % 2 ? 3 : 2);
        feed(f, 3, t, b, 2);
    }
    assert_int_equal(live_heap_bytes(), before);
    assert_true(f->got.n > 300);
}

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

#define T(f) cmocka_unit_test_setup_teardown(f, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(nested_calls_end_innermost_first_with_sample_bounds),
        T(call_seen_once_has_begin_equal_end_and_neighbour_bounds),
        T(recursion_is_tracked_per_depth),
        T(same_function_at_another_frame_address_is_a_new_call),
        T(other_function_in_the_same_slot_is_a_new_call),
        T(changed_argsig_is_a_new_call),
        T(zero_argsig_never_splits),
        T(loop_inside_one_call_is_one_span),
        T(restart_marked_by_the_feeder_is_a_new_call),
        T(caller_at_another_call_site_means_a_new_callee),
        T(bad_samples_neither_end_nor_move_bounds),
        T(bad_first_sample_still_leaves_first_stack_open_begin),
        T(interleaved_threads_are_independent),
        T(finish_leaves_open_end_spans_and_first_stack_is_open_begin),
        T(ended_thread_closes_at_its_last_sample_and_starts_afresh),
        T(deep_stacks_of_any_depth_are_tracked),
        T(steady_state_feeding_does_not_allocate),
        T(feeding_the_unchanged_prefix_changes_no_span),
        T(synthetic_phases_detection_and_midpoint_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
