/*
 * span_assert.h — a cmocka assertion shared by the timeline and trace tests: two spans equal in
 * every field a trace keeps. Include after <cmocka.h> and output/timeline.h.
 */
#ifndef PT_TESTS_SPAN_ASSERT_H
#define PT_TESTS_SPAN_ASSERT_H

static inline void assert_span_equal(const struct tl_span *a, const struct tl_span *b)
{
    assert_int_equal(a->thread, b->thread);
    assert_int_equal(a->function, b->function);
    assert_int_equal(a->depth, b->depth);
    assert_int_equal(a->call_line, b->call_line);
    assert_int_equal(a->first_line, b->first_line);
    assert_int_equal(a->begin_lo, b->begin_lo);
    assert_int_equal(a->begin, b->begin);
    assert_int_equal(a->end, b->end);
    assert_int_equal(a->end_hi, b->end_hi);
    assert_int_equal(a->samples, b->samples);
    assert_int_equal(a->open_begin, b->open_begin);
    assert_int_equal(a->open_end, b->open_end);
    assert_int_equal(a->off_cpu, b->off_cpu);
}

#endif
