/*
 * test_tidmap.c — attach/tidmap.c and the NSpid parsing it rests on (attach/proc.c): a target in
 * a pid namespace of its own numbers its threads differently from pytrace's /proc; the map turns
 * one into the other, is the identity otherwise, and follows threads that exit and ids reused.
 * A real namespace needs privileges: tests/integration/test_native.py runs one under unshare.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "attach/proc.h"
#include "attach/tidmap.h"

/* No process ever has this pid (pid_max is at most 2^22): its /proc cannot be read. */
#define NO_PID INT_MAX

static const char status_nested[] =
    "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t23231\nNgid:\t0\n"
    "Pid:\t23251\nPPid:\t23229\nTracerPid:\t0\n"
    "NStgid:\t23231\t1\nNSpid:\t23251\t21\nNSpgid:\t23228\t0\nNSsid:\t1717\t0\n"
    "VmPeak:\t  123 kB\n";

static void parse_nspid_lists_every_level_outermost_first(void **state)
{
    (void)state;
    pid_t ids[8];
    assert_int_equal(proc_parse_nspid(status_nested, ids, 8), 2);
    assert_int_equal(ids[0], 23251);
    assert_int_equal(ids[1], 21);
    assert_int_equal(proc_parse_nspid("Pid:\t7\nNSpid:\t700\t70\t7\nNSpgid:\t9\t9\t9\n", ids, 8), 3);
    assert_int_equal(ids[0], 700);
    assert_int_equal(ids[2], 7);
}

static void parse_nspid_stops_at_its_line_and_at_cap(void **state)
{
    (void)state;
    pid_t ids[8] = {0};
    /* One level: the next line's numbers (NSpgid) are not taken for more levels. */
    assert_int_equal(proc_parse_nspid("NSpid:\t4242\nNSpgid:\t1\t2\n", ids, 8), 1);
    assert_int_equal(ids[0], 4242);
    assert_int_equal(ids[1], 0);
    assert_int_equal(proc_parse_nspid(status_nested, ids, 1), 1);
    assert_int_equal(ids[0], 23251);
}

static void parse_nspid_without_the_line_is_zero_levels(void **state)
{
    (void)state;
    pid_t ids[8];
    assert_int_equal(proc_parse_nspid("Name:\tx\nPid:\t5\nNStgid:\t5\t1\n", ids, 8), 0);
    assert_int_equal(proc_parse_nspid("NSpid:\t\nVmPeak: 1\n", ids, 8), 0);
    assert_int_equal(proc_parse_nspid("", ids, 8), 0);
}

static void no_live_process_is_the_identity(void **state)
{
    (void)state;
    struct tidmap m;
    tidmap_init(&m, 0);   /* a core or a fake: nothing to read */
    assert_false(tidmap_nested(&m));
    assert_int_equal(tidmap_host(&m, 21), 21);
    assert_int_equal(tidmap_ns(&m, 23251), 23251);
    assert_int_equal(tidmap_host(&m, -1), -1);
    assert_int_equal(tidmap_host(&m, 0), -1);
    tidmap_free(&m);
}

static void own_namespace_is_the_identity_and_maps_nothing(void **state)
{
    (void)state;
    struct tidmap m;
    tidmap_init(&m, getpid());
    pid_t tid = gettid();
    assert_false(tidmap_nested(&m));
    assert_int_equal(tidmap_host(&m, tid), tid);
    assert_int_equal(tidmap_ns(&m, tid), tid);
    assert_int_equal(m.n, 0);          /* no table, no /proc listing */
    assert_int_equal(m.listed_ns, 0);
    tidmap_free(&m);
}

static void nested_map_turns_ids_both_ways(void **state)
{
    (void)state;
    struct tidmap m;
    tidmap_init(&m, NO_PID);
    m.nested = 2;
    assert_int_equal(tidmap_add(&m, 1, 23231), 0);
    assert_int_equal(tidmap_add(&m, 21, 23251), 0);
    assert_true(tidmap_nested(&m));
    assert_int_equal(tidmap_host(&m, 21), 23251);
    assert_int_equal(tidmap_host(&m, 1), 23231);
    assert_int_equal(tidmap_ns(&m, 23251), 21);
    assert_int_equal(tidmap_ns(&m, 23231), 1);
    /* Unknown ids (the process cannot be read to learn them) are -1, never passed through:
     * the namespace's 22 is not the host's 22. */
    assert_int_equal(tidmap_host(&m, 22), -1);
    assert_int_equal(tidmap_ns(&m, 22), -1);
    assert_int_equal(tidmap_host(&m, 21), 23251);   /* a failed re-listing kept what was known */
    tidmap_free(&m);
}

static void a_reused_id_replaces_the_dead_threads_pair(void **state)
{
    (void)state;
    struct tidmap m;
    tidmap_init(&m, NO_PID);
    m.nested = 2;
    assert_int_equal(tidmap_add(&m, 21, 23251), 0);
    assert_int_equal(tidmap_add(&m, 21, 30000), 0);   /* namespace id 21 reused */
    assert_int_equal(tidmap_host(&m, 21), 30000);
    assert_int_equal(tidmap_ns(&m, 23251), -1);
    assert_int_equal(tidmap_add(&m, 22, 30000), 0);   /* host id reused */
    assert_int_equal(tidmap_ns(&m, 30000), 22);
    assert_int_equal(tidmap_host(&m, 21), -1);
    assert_int_equal(m.n, 1);
    tidmap_forget(&m, 22);
    assert_int_equal(tidmap_host(&m, 22), -1);
    assert_int_equal(m.n, 0);
    tidmap_free(&m);
}

static void many_threads_grow_the_table(void **state)
{
    (void)state;
    struct tidmap m;
    tidmap_init(&m, NO_PID);
    m.nested = 2;
    for (pid_t i = 1; i <= 200; i++)
        assert_int_equal(tidmap_add(&m, i, 100000 + i), 0);
    for (pid_t i = 1; i <= 200; i++) {
        assert_int_equal(tidmap_host(&m, i), 100000 + i);
        assert_int_equal(tidmap_ns(&m, 100000 + i), i);
    }
    tidmap_free(&m);
    assert_int_equal(m.n, 0);
    assert_null(m.pairs);
}

static void relisting_maps_live_threads_and_drops_exited_ones(void **state)
{
    (void)state;
    /* This process read as if nested: every thread maps to itself (NSpid has one level), and
     * a pair for a thread that is not listed goes at the first re-listing. */
    struct tidmap m;
    tidmap_init(&m, getpid());
    m.nested = 2;
    assert_int_equal(tidmap_add(&m, 77, NO_PID - 1), 0);
    pid_t tid = gettid();
    assert_int_equal(tidmap_host(&m, tid), tid);   /* a miss: re-lists /proc/self/task */
    assert_int_not_equal(m.listed_ns, 0);
    assert_int_equal(m.n, 1);                      /* ours; the exited thread's pair is gone */
    assert_int_equal(m.pairs[0].host, tid);
    tidmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_nspid_lists_every_level_outermost_first),
        cmocka_unit_test(parse_nspid_stops_at_its_line_and_at_cap),
        cmocka_unit_test(parse_nspid_without_the_line_is_zero_levels),
        cmocka_unit_test(no_live_process_is_the_identity),
        cmocka_unit_test(own_namespace_is_the_identity_and_maps_nothing),
        cmocka_unit_test(nested_map_turns_ids_both_ways),
        cmocka_unit_test(a_reused_id_replaces_the_dead_threads_pair),
        cmocka_unit_test(many_threads_grow_the_table),
        cmocka_unit_test(relisting_maps_live_threads_and_drops_exited_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
