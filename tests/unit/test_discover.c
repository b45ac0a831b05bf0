/*
 * test_discover.c — attach/discover.c: when the daemon's discovery scans (disc_plan, driven by
 * made-up clocks), and a quick scan after a fork against this machine's real /proc. Which
 * processes are Python is the readers' business (tests/integration/test_daemon.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach/discover.h"
#include "attach/sampler.h"

#define MS 1000000ULL
#define T0 (1000 * MS)

/* A clock right after a full scan at T0 that took cost_ns. */
static struct disc_clock after_full_scan(uint64_t cost_ns)
{
    return (struct disc_clock){ .interval_ns = 400 * MS, .last_full_ns = T0, .last_scan_ns = T0,
                                .last_peek_ns = T0, .scan_cost_ns = cost_ns, .last_pid = 100,
                                .scanned = true };
}

static void the_first_call_scans_everything(void **state)
{
    (void)state;
    struct disc_clock c = { .interval_ns = 400 * MS, .last_pid = -1 };
    assert_int_equal(disc_plan(&c, 5 * MS), DISC_FULL);
}

static void between_full_scans_the_last_pid_is_peeked_at_every_20_ms(void **state)
{
    (void)state;
    struct disc_clock c = after_full_scan(100000);   /* a cheap scan: 0.1 ms */
    assert_int_equal(disc_plan(&c, T0 + 5 * MS), DISC_WAIT);
    assert_int_equal(disc_plan(&c, T0 + 20 * MS), DISC_PEEK);
    c.last_peek_ns = T0 + 20 * MS;                   /* the peek found nothing new */
    assert_int_equal(disc_plan(&c, T0 + 30 * MS), DISC_WAIT);
    assert_int_equal(disc_plan(&c, T0 + 40 * MS), DISC_PEEK);
    assert_int_equal(disc_plan(&c, T0 + 400 * MS), DISC_FULL);
}

static void a_costly_scan_holds_the_next_quick_one_back_to_a_fiftieth_of_the_time(void **state)
{
    (void)state;
    struct disc_clock c = after_full_scan(2 * MS);   /* 2 ms: the next scan after 100 ms */
    assert_int_equal(disc_plan(&c, T0 + 20 * MS), DISC_WAIT);
    assert_int_equal(disc_plan(&c, T0 + 99 * MS), DISC_WAIT);
    assert_int_equal(disc_plan(&c, T0 + 100 * MS), DISC_PEEK);
    /* However costly, the full scan still comes every interval. */
    c = after_full_scan(50 * MS);
    assert_int_equal(disc_plan(&c, T0 + 399 * MS), DISC_WAIT);
    assert_int_equal(disc_plan(&c, T0 + 400 * MS), DISC_FULL);
}

static void a_quick_scan_restarts_the_wait_but_not_the_full_scans_interval(void **state)
{
    (void)state;
    struct disc_clock c = after_full_scan(100000);
    c.last_scan_ns = c.last_peek_ns = T0 + 390 * MS;   /* a quick scan just ran */
    assert_int_equal(disc_plan(&c, T0 + 395 * MS), DISC_WAIT);
    assert_int_equal(disc_plan(&c, T0 + 400 * MS), DISC_FULL);
}

/* Against the real /proc: a child forked after the first scan is found by a quick scan. */
static void a_fork_after_a_full_scan_brings_a_quick_scan(void **state)
{
    (void)state;
    /* A long interval: the call below, 1 s on, is then a peek whatever the first scan cost. */
    struct disc_opts o = { .match = "^pytrace-test-no-such-command-line$", .uid = -1,
                           .interval_ns = 10000 * MS };
    struct disc *d = NULL;
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(disc_new(&d, &o, &err), PT_OK);
    struct py_proc *py = NULL;
    uint64_t now = sampler_now_ns();
    assert_false(disc_next(d, now, &py));
    struct disc_stats st;
    disc_get_stats(d, &st);
    assert_int_equal(st.scans, 1);
    assert_int_equal(st.quick_scans, 0);

    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        pause();
        _exit(0);
    }
    /* The peek sees the pid counter moved and lists /proc for new pids. */
    assert_false(disc_next(d, now + 1000 * MS, &py));
    disc_get_stats(d, &st);
    assert_int_equal(st.scans, 2);
    assert_int_equal(st.quick_scans, 1);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    disc_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_first_call_scans_everything),
        cmocka_unit_test(between_full_scans_the_last_pid_is_peeked_at_every_20_ms),
        cmocka_unit_test(a_costly_scan_holds_the_next_quick_one_back_to_a_fiftieth_of_the_time),
        cmocka_unit_test(a_quick_scan_restarts_the_wait_but_not_the_full_scans_interval),
        cmocka_unit_test(a_fork_after_a_full_scan_brings_a_quick_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
