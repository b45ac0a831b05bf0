/*
 * test_err.c — util/err.c: pt_fail() fills code and message (and survives a NULL err and an
 * over-long message), pt_err_clear(), and status names. The numeric statuses are the CLI's exit
 * codes, so their values are pinned too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/err.h"

static void statuses_are_the_documented_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(PT_OK, 0);
    assert_int_equal(PT_EFAIL, 1);
    assert_int_equal(PT_EUSAGE, 2);
    assert_int_equal(PT_ENOPROC, 3);
    assert_int_equal(PT_EPERM, 4);
    assert_int_equal(PT_ENOTPY, 5);
    assert_int_equal(PT_EVERSION, 6);
    assert_int_equal(PT_ECORRUPT, 7);
}

static void pt_fail_fills_code_and_message_and_returns_code(void **state)
{
    (void)state;
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(pt_fail(&err, PT_ENOPROC, "no such process: %d (%s)", 4242, "check ps"),
                     PT_ENOPROC);
    assert_int_equal(err.code, PT_ENOPROC);
    assert_string_equal(err.msg, "no such process: 4242 (check ps)");
}

static void pt_fail_without_err_still_returns_code(void **state)
{
    (void)state;
    assert_int_equal(pt_fail(NULL, PT_EPERM, "denied %s", "x"), PT_EPERM);
}

static void pt_fail_truncates_a_long_message_and_terminates_it(void **state)
{
    (void)state;
    char longer[2000];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    longer[0] = 'B';
    struct pt_err err;
    memset(&err, 0x5a, sizeof err);             /* no NUL anywhere to begin with */
    assert_int_equal(pt_fail(&err, PT_EFAIL, "%s", longer), PT_EFAIL);
    assert_int_equal(err.code, PT_EFAIL);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
    assert_memory_equal(err.msg, longer, sizeof err.msg - 1);
}

static void pt_err_clear_resets_code_and_message(void **state)
{
    (void)state;
    struct pt_err err;
    pt_fail(&err, PT_ENOTPY, "not python");
    pt_err_clear(&err);
    assert_int_equal(err.code, PT_OK);
    assert_string_equal(err.msg, "");
    pt_err_clear(NULL);                          /* allowed, like pt_fail(NULL, ...) */
}

static void pt_status_name_names_every_status_distinctly(void **state)
{
    (void)state;
    assert_string_equal(pt_status_name(PT_OK), "ok");
    assert_string_equal(pt_status_name(PT_ENOPROC), "no such process");
    for (int a = PT_OK; a <= PT_ECORRUPT; a++) {
        const char *na = pt_status_name((enum pt_status)a);
        assert_non_null(na);
        assert_true(na[0] != '\0');
        for (int b = a + 1; b <= PT_ECORRUPT; b++)
            assert_string_not_equal(na, pt_status_name((enum pt_status)b));
    }
}

static void pt_status_name_of_an_unknown_value_is_still_a_string(void **state)
{
    (void)state;
    const char *n = pt_status_name((enum pt_status)99);
    assert_non_null(n);
    assert_true(n[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(statuses_are_the_documented_exit_codes),
        cmocka_unit_test(pt_fail_fills_code_and_message_and_returns_code),
        cmocka_unit_test(pt_fail_without_err_still_returns_code),
        cmocka_unit_test(pt_fail_truncates_a_long_message_and_terminates_it),
        cmocka_unit_test(pt_err_clear_resets_code_and_message),
        cmocka_unit_test(pt_status_name_names_every_status_distinctly),
        cmocka_unit_test(pt_status_name_of_an_unknown_value_is_still_a_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
