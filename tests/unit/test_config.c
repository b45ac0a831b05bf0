/*
 * test_config.c — util/config.c: `key = value` parsing with errors naming FILE:LINE, value checks
 * naming the key and the source, precedence (file < later file < environment < command line),
 * the standard file locations ($XDG_CONFIG_HOME, $HOME) and repeated command-line list keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/config.h"

static const char *load_error(const char *text)
{
    static struct pt_err err;
    struct config *c = config_new();
    assert_non_null(c);
    pt_err_clear(&err);
    assert_int_equal(config_load_text(c, text, "my.conf", &err), PT_EUSAGE);
    config_free(c);
    return err.msg;
}

static void parse_errors_name_file_and_line(void **state)
{
    (void)state;
    assert_non_null(strstr(load_error("# c\nrate = 100\nbogus = 1\n"),
                           "my.conf:3: unknown key 'bogus'"));
    assert_non_null(strstr(load_error("\n\nrate 100\n"), "my.conf:3: expected 'key = value'"));
    assert_non_null(strstr(load_error("= 5\n"), "my.conf:1: missing key"));
    const char *m = load_error("rate = fast\n");
    assert_non_null(strstr(m, "my.conf:1: rate = 'fast' is not valid"));
    assert_non_null(strstr(m, "Hz"));
    assert_non_null(strstr(load_error("jitter = 0.9\n"), "my.conf:1: jitter"));
    assert_non_null(strstr(load_error("blocking = maybe\n"), "true or false"));
    assert_non_null(strstr(load_error("max_size = 12Q\n"), "a size such as 64M"));
    assert_non_null(strstr(load_error("duration = -1\n"), "positive number of seconds"));
}

static void values_comments_and_dashes(void **state)
{
    (void)state;
    struct config *c = config_new();
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(config_load_text(c, "  # comment\n\trate=250  \nmax-size = 64M\n"
                                         "output_dir = /tmp/a b#c\nrate = 300\nblocking = yes\n",
                                      "a.conf", &err), PT_OK);
    enum config_src src;
    const char *origin;
    assert_string_equal(config_get(c, "rate", &src, &origin), "300");   /* later line wins */
    assert_int_equal(src, CONFIG_SRC_FILE);
    assert_string_equal(origin, "a.conf:5");
    assert_string_equal(config_get(c, "max_size", NULL, NULL), "64M");
    assert_string_equal(config_get(c, "output_dir", NULL, NULL), "/tmp/a b#c");
    assert_null(config_get(c, "duration", &src, &origin));
    assert_int_equal(src, CONFIG_SRC_DEFAULT);
    assert_string_equal(origin, "default");
    config_free(c);
}

static void environment_beats_files_and_command_line_beats_both(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_config_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[256], user[256], extra[256];
    snprintf(sub, sizeof sub, "%s/.config", dir);
    mkdir(sub, 0700);
    snprintf(user, sizeof user, "%s/.config/pytrace.conf", dir);
    snprintf(extra, sizeof extra, "%s/extra.conf", dir);
    FILE *f = fopen(user, "w");
    fputs("rate = 100\nduration = 5\nname = fromuser\njitter = 0.1\n", f);
    fclose(f);
    f = fopen(extra, "w");
    fputs("duration = 7\nname = fromextra\n", f);
    fclose(f);
    setenv("HOME", dir, 1);
    unsetenv("XDG_CONFIG_HOME");
    setenv("PYTRACE_NAME", "fromenv", 1);
    setenv("PYTRACE_JITTER", "", 1);   /* empty = unset */
    unsetenv("PYTRACE_RATE");

    struct config *c = config_new();
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(config_load_all(c, extra, &err), PT_OK);
    const char *origin;
    assert_string_equal(config_get(c, "rate", NULL, &origin), "100");
    char want[300];
    snprintf(want, sizeof want, "%s:1", user);
    assert_string_equal(origin, want);
    assert_string_equal(config_get(c, "duration", NULL, &origin), "7");   /* --config later */
    snprintf(want, sizeof want, "%s:1", extra);
    assert_string_equal(origin, want);
    assert_string_equal(config_get(c, "name", NULL, &origin), "fromenv");
    assert_string_equal(origin, "env PYTRACE_NAME");
    assert_string_equal(config_get(c, "jitter", NULL, NULL), "0.1");
    enum config_src src;
    assert_int_equal(config_set(c, "name", "fromcli", CONFIG_SRC_CLI, "command line", &err), PT_OK);
    assert_string_equal(config_get(c, "name", &src, &origin), "fromcli");
    assert_int_equal(src, CONFIG_SRC_CLI);
    config_free(c);

    /* XDG_CONFIG_HOME replaces ~/.config; a bad environment value names the variable. */
    setenv("XDG_CONFIG_HOME", dir, 1);
    setenv("PYTRACE_RATE", "0", 1);
    c = config_new();
    assert_int_equal(config_load_all(c, NULL, &err), PT_EUSAGE);
    assert_non_null(strstr(err.msg, "env PYTRACE_RATE: rate = '0' is not valid"));
    config_free(c);
    unsetenv("PYTRACE_RATE");
    c = config_new();
    assert_int_equal(config_load_all(c, NULL, &err), PT_OK);
    assert_null(config_get(c, "rate", NULL, NULL));   /* $XDG_CONFIG_HOME/pytrace.conf absent */
    assert_int_equal(config_load_all(c, "/nonexistent/x.conf", &err), PT_EUSAGE);
    assert_non_null(strstr(err.msg, "cannot read config file /nonexistent/x.conf"));
    config_free(c);
    unsetenv("PYTRACE_NAME");
    unsetenv("PYTRACE_JITTER");
    unlink(user);
    unlink(extra);
    rmdir(sub);
    rmdir(dir);
}

static void repeated_command_line_lists_join(void **state)
{
    (void)state;
    struct config *c = config_new();
    struct pt_err err;
    assert_int_equal(config_set(c, "filter", "a.rules", CONFIG_SRC_ENV, "env PYTRACE_FILTER", &err),
                     PT_OK);
    assert_int_equal(config_set(c, "filter", "b.rules", CONFIG_SRC_CLI, "command line", &err),
                     PT_OK);
    assert_int_equal(config_set(c, "filter", "c.rules", CONFIG_SRC_CLI, "command line", &err),
                     PT_OK);
    assert_string_equal(config_get(c, "filter", NULL, NULL), "b.rules:c.rules");
    assert_int_equal(config_set(c, "nope", "1", CONFIG_SRC_CLI, "command line", &err), PT_EUSAGE);
    config_free(c);
}

static void bools_and_sizes(void **state)
{
    (void)state;
    bool b;
    assert_true(config_parse_bool("ON", &b) && b);
    assert_true(config_parse_bool("0", &b) && !b);
    assert_false(config_parse_bool("2", &b));
    uint64_t s;
    assert_int_equal(config_parse_size("64M", &s), 0);
    assert_int_equal(s, 64u << 20);
    assert_int_equal(config_parse_size("1.5kb", &s), 0);
    assert_int_equal(s, 1536);
    assert_int_equal(config_parse_size("0", &s), -1);
    assert_int_equal(config_parse_size("5X", &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_errors_name_file_and_line),
        cmocka_unit_test(values_comments_and_dashes),
        cmocka_unit_test(environment_beats_files_and_command_line_beats_both),
        cmocka_unit_test(repeated_command_line_lists_join),
        cmocka_unit_test(bools_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
