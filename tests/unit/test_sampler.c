/*
 * test_sampler.c — attach/sampler.c, the sampling clock: after a short stall the missed ticks are
 * taken back to back (none lost); after a stall longer than the catch-up window they are skipped
 * and counted. Real clock: the stalls are sleeps, with wide margins (a 0.2 ms stall against a
 * 1 ms window; a 30 ms stall against it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "attach/sampler.h"

static void stall_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static void short_stall_is_caught_up(void **state)
{
    (void)state;
    struct sampler s;
    sampler_init(&s, 100000.0, 0);   /* 10 us period */
    for (int i = 0; i < 10; i++)
        assert_int_not_equal(sampler_wait(&s, NULL), 0);
    uint64_t t0 = sampler_now_ns();
    stall_us(200);                   /* about 20 ticks late */
    if (sampler_now_ns() - t0 > SAMPLER_CATCHUP_NS / 2)
        skip();                      /* the machine held us up longer than the test assumes */
    uint64_t due = sampler_wait(&s, NULL);
    assert_int_not_equal(due, 0);
    assert_int_equal(s.missed, 0);
    /* the next ticks are the ones just after it, in order, taken at once */
    uint64_t next = sampler_wait(&s, NULL);
    assert_int_equal(next - due, s.period_ns);
    assert_int_equal(s.missed, 0);
}

static void long_stall_is_skipped_and_counted(void **state)
{
    (void)state;
    struct sampler s;
    sampler_init(&s, 100000.0, 0);
    assert_int_not_equal(sampler_wait(&s, NULL), 0);
    stall_us(30000);                 /* 3,000 ticks, far past the 1 ms window */
    uint64_t due = sampler_wait(&s, NULL);
    assert_true(s.missed >= 2000);
    assert_true(sampler_now_ns() - due < 2 * SAMPLER_CATCHUP_NS);   /* back on schedule */
}

static void window_is_one_period_at_low_rates(void **state)
{
    (void)state;
    struct sampler s;
    sampler_init(&s, 10.0, 0);       /* 100 ms period: one tick of catch-up at most */
    assert_int_equal(s.catchup_ns, s.period_ns);
    sampler_init(&s, 100000.0, 0);
    assert_int_equal(s.catchup_ns, SAMPLER_CATCHUP_NS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(short_stall_is_caught_up),
        cmocka_unit_test(long_stall_is_skipped_and_counted),
        cmocka_unit_test(window_is_one_period_at_low_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
