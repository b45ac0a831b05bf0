/*
 * test_timeline.c — output/timeline.c: which sampled frames are one call, the bounds of every span,
 * emit order, the hints that split a reused slot, bad samples, threads, deep stacks, and that
 * steady-state feeding allocates nothing. The accuracy on a synthetic workload is in
 * test_timeline_sim.c.
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
#include "tests/unit/timeline_fixture.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

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

/* ---- main ----------------------------------------------------------------------------------- */

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
