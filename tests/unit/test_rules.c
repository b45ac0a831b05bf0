/*
 * test_rules.c — util/rules.c: the rule-file parser (malformed lines fail naming ORIGIN:LINE),
 * every selector kind with glob, regex and literal patterns, last-rule-wins order, include
 * re-admitting folded/excluded frames, the built-in secret-name default (and its equivalence with
 * RULES_DEFAULT_SECRET), standard-library detection and module names of file paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/rules.h"

static struct rules *chain(const char *text, bool no_stdlib)
{
    struct rules *r;
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(rules_new(&r, no_stdlib, &err), PT_OK);
    if (text && rules_load_text(r, text, "t.rules", &err) != PT_OK)
        fail_msg("unexpected error: %s", err.msg);
    return r;
}

/* Loads bad text and returns the message (static buffer). */
static const char *load_error(const char *text)
{
    static struct pt_err err;
    struct rules *r = chain(NULL, false);
    pt_err_clear(&err);
    assert_int_equal(rules_load_text(r, text, "bad.rules", &err), PT_EUSAGE);
    rules_free(r);
    return err.msg;
}

static void malformed_lines_name_origin_and_line(void **state)
{
    (void)state;
    const char *m = load_error("# ok\nexclude module:a.*\n\nfrobnicate module:x\n");
    assert_non_null(strstr(m, "bad.rules:4: unknown action 'frobnicate'"));
    m = load_error("exclude\n");
    assert_non_null(strstr(m, "bad.rules:1: 'exclude' needs a selector"));
    m = load_error("exclude modul:x\n");
    assert_non_null(strstr(m, "bad.rules:1: unknown selector 'modul:x'"));
    m = load_error("\nexclude module:\n");
    assert_non_null(strstr(m, "bad.rules:2: selector 'module:' has an empty pattern"));
    m = load_error("redact local:regex:(unclosed\n");
    assert_non_null(strstr(m, "bad.rules:1: bad regex '(unclosed'"));
    m = load_error("exclude local:password\n");
    assert_non_null(strstr(m, "bad.rules:1: 'exclude' is a frame action"));
    m = load_error("redact module:x\n");
    assert_non_null(strstr(m, "bad.rules:1: 'redact' is a value action"));
    m = load_error("redact local:a arg:b\n");
    assert_non_null(strstr(m, "'redact' is a value action"));
    m = load_error("exclude module:a file:b function:c stdlib module:e\n");
    assert_non_null(strstr(m, "bad.rules:1: more than 4 selectors"));
}

static void rule_file_errors_name_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_rules_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "exclude module:ok\nfold bogus\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    struct rules *r = chain(NULL, false);
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(rules_load_file(r, path, &err), PT_EUSAGE);
    char want[128];
    snprintf(want, sizeof want, "%s:2: unknown selector 'bogus'", path);
    assert_non_null(strstr(err.msg, want));
    unlink(path);
    assert_int_equal(rules_load_file(r, path, &err), PT_EUSAGE);
    assert_non_null(strstr(err.msg, "cannot read rule file"));
    rules_free(r);
}

static void module_selector_glob_regex_literal(void **state)
{
    (void)state;
    struct rules *r = chain("exclude module:asyncio.*\n"
                            "fold module:regex:^json\\.(de|en)coder$\n"
                            "exclude module:literal:myapp.secret_stuff\n", false);
    const char *lib = "/usr/lib/python3.11/";
    char f[256];
    snprintf(f, sizeof f, "%sasyncio/events.py", lib);
    assert_int_equal(rules_frame(r, NULL, f, "run"), RULE_EXCLUDE);
    snprintf(f, sizeof f, "%sasyncio/__init__.py", lib);   /* "pkg.*" names pkg too */
    assert_int_equal(rules_frame(r, NULL, f, "x"), RULE_EXCLUDE);
    snprintf(f, sizeof f, "%sjson/decoder.py", lib);
    assert_int_equal(rules_frame(r, NULL, f, "decode"), RULE_FOLD);
    snprintf(f, sizeof f, "%sjson/scanner.py", lib);
    assert_int_equal(rules_frame(r, NULL, f, "scan"), RULE_NONE);
    /* No site-packages marker: any dotted suffix of the path may be the module. */
    assert_int_equal(rules_frame(r, NULL, "/srv/app/myapp/secret_stuff.py", "f"), RULE_EXCLUDE);
    assert_int_equal(rules_frame(r, NULL, "/srv/app/myapp/secret_stuff2.py", "f"), RULE_NONE);
    /* An explicit module name is used as given. */
    assert_int_equal(rules_frame(r, "asyncio", "/x.py", "f"), RULE_EXCLUDE);
    assert_int_equal(rules_frame(r, "json.encoder", NULL, "f"), RULE_FOLD);
    rules_free(r);
}

static void file_selector_glob_regex_literal(void **state)
{
    (void)state;
    struct rules *r = chain("exclude file:*/site-packages/*\n"
                            "fold file:regex:/vendor/.*\\.py$\n"
                            "exclude file:helpers.py\n"
                            "fold file:literal:/srv/app/exact.py\n", false);
    assert_int_equal(rules_frame(r, NULL, "/v/lib/python3.12/site-packages/requests/api.py", "get"),
                     RULE_EXCLUDE);
    assert_int_equal(rules_frame(r, NULL, "/srv/vendor/x/y.py", "f"), RULE_FOLD);
    assert_int_equal(rules_frame(r, NULL, "/srv/app/helpers.py", "f"), RULE_EXCLUDE);   /* base */
    assert_int_equal(rules_frame(r, NULL, "/srv/app/helpers.pyc", "f"), RULE_NONE);
    assert_int_equal(rules_frame(r, NULL, "/srv/app/exact.py", "f"), RULE_FOLD);
    assert_int_equal(rules_frame(r, NULL, "/srv/app/exact.py2", "f"), RULE_NONE);
    rules_free(r);
}

static void function_selector_glob_regex_literal(void **state)
{
    (void)state;
    struct rules *r = chain("exclude function:_*\n"
                            "fold function:regex:^Handler\\.(get|post)$\n"
                            "exclude function:literal:wrapper\n", false);
    assert_int_equal(rules_frame(r, NULL, "/a.py", "_private"), RULE_EXCLUDE);
    assert_int_equal(rules_frame(r, NULL, "/a.py", "Cls._private"), RULE_EXCLUDE);  /* last part */
    assert_int_equal(rules_frame(r, NULL, "/a.py", "Handler.get"), RULE_FOLD);
    assert_int_equal(rules_frame(r, NULL, "/a.py", "Handler.put"), RULE_NONE);
    assert_int_equal(rules_frame(r, NULL, "/a.py", "deco.<locals>.wrapper"), RULE_EXCLUDE);
    assert_int_equal(rules_frame(r, NULL, "/a.py", "wrapper2"), RULE_NONE);
    rules_free(r);
}

static void value_selectors_local_arg_value(void **state)
{
    (void)state;
    struct rules *r = chain("drop arg:literal:payload\n"
                            "redact local:regex:^(pin|otp)[0-9]*$\n"
                            "drop value:blob_*\n", false);
    assert_int_equal(rules_value(r, true, "payload", NULL, "/a.py", "f"), RULE_DROP);
    assert_int_equal(rules_value(r, false, "payload", NULL, "/a.py", "f"), RULE_NONE);
    assert_int_equal(rules_value(r, false, "otp2", NULL, "/a.py", "f"), RULE_REDACT);
    assert_int_equal(rules_value(r, true, "otp2", NULL, "/a.py", "f"), RULE_NONE);
    assert_int_equal(rules_value(r, true, "blob_x", NULL, "/a.py", "f"), RULE_DROP);
    assert_int_equal(rules_value(r, false, "blob_x", NULL, "/a.py", "f"), RULE_DROP);
    assert_int_equal(rules_value(r, false, "count", NULL, "/a.py", "f"), RULE_NONE);
    struct rules_counts n = rules_get_counts(r);
    assert_int_equal(n.dropped, 3);
    assert_int_equal(n.redacted, 1);
    /* Value rules do not affect frames, frame rules not values. */
    assert_int_equal(rules_frame(r, NULL, "/a.py", "payload"), RULE_NONE);
    rules_free(r);
}

static void value_rules_narrowed_by_frame_selectors(void **state)
{
    (void)state;
    struct rules *r = chain("allow value:token module:tests.* function:test_*\n"
                            "redact function:login value:user\n", false);
    assert_int_equal(rules_value(r, false, "token", NULL, "/srv/tests/test_api.py", "test_x"),
                     RULE_ALLOW);
    assert_int_equal(rules_value(r, false, "token", NULL, "/srv/app/api.py", "test_x"),
                     RULE_REDACT);   /* default still applies elsewhere */
    assert_int_equal(rules_value(r, true, "user", NULL, "/srv/app/auth.py", "Auth.login"),
                     RULE_REDACT);
    assert_int_equal(rules_value(r, true, "user", NULL, "/srv/app/auth.py", "logout"), RULE_NONE);
    rules_free(r);
}

static void last_rule_wins_and_include_readmits(void **state)
{
    (void)state;
    struct rules *r = chain("exclude module:myapp.*\n"
                            "include module:myapp.core.*\n"
                            "fold function:literal:hot\n", true);
    assert_int_equal(rules_frame(r, NULL, "/srv/myapp/util.py", "f"), RULE_EXCLUDE);
    assert_int_equal(rules_frame(r, NULL, "/srv/myapp/core/x.py", "f"), RULE_INCLUDE);
    assert_int_equal(rules_frame(r, NULL, "/srv/myapp/core/x.py", "hot"), RULE_FOLD);
    /* --no-stdlib folds the standard library; a later include re-admits part of it. */
    assert_int_equal(rules_frame(r, NULL, "/usr/lib/python3.11/json/decoder.py", "f"), RULE_FOLD);
    rules_free(r);
    r = chain("include module:json.*\n", true);
    assert_int_equal(rules_frame(r, NULL, "/usr/lib/python3.11/json/decoder.py", "f"),
                     RULE_INCLUDE);
    assert_int_equal(rules_frame(r, NULL, "/usr/lib/python3.11/threading.py", "run"), RULE_FOLD);
    assert_int_equal(rules_frame(r, NULL, "<frozen importlib._bootstrap>", "_find"), RULE_FOLD);
    assert_int_equal(rules_frame(r, NULL, "/usr/lib/python3/dist-packages/yaml/a.py", "f"),
                     RULE_NONE);
    assert_true(rules_has_frame_rules(r));
    rules_free(r);
    /* A later allow beats the default redaction; a later redact beats an allow. */
    r = chain("allow local:session\nredact local:literal:session\n", false);
    assert_int_equal(rules_value(r, false, "session", NULL, "/a.py", "f"), RULE_REDACT);
    rules_free(r);
    r = chain("allow local:session\n", false);
    assert_int_equal(rules_value(r, false, "session", NULL, "/a.py", "f"), RULE_ALLOW);
    assert_int_equal(rules_value(r, true, "session", NULL, "/a.py", "f"), RULE_REDACT);
    assert_false(rules_has_frame_rules(r));
    rules_free(r);
}

static const char *const secret_names[] = {
    "password", "PASSWORD", "db_password", "passwd", "user_pwd", "secret", "client_secret",
    "token", "access_token", "accessToken", "api_key", "apiKey", "APIKEY", "api-key",
    "authorization", "auth", "oauth_token", "cookie", "cookies_x_cookie", "session", "session_id",
    "private_key", "privateKey", "credentials", "credential", "aws_access_key_id", "secret_key",
    "passphrase",
};
static const char *const plain_names[] = {
    "user", "count", "author", "tokens", "keyboard", "sort_key", "sessions", "passage", "i",
    "authority", "", "cookiecutter", "secretary",
};

static void default_redacts_secret_names(void **state)
{
    (void)state;
    struct rules *r = chain(NULL, false);
    regex_t re;
    assert_int_equal(regcomp(&re, RULES_DEFAULT_SECRET, REG_EXTENDED | REG_ICASE | REG_NOSUB), 0);
    for (size_t i = 0; i < sizeof secret_names / sizeof *secret_names; i++) {
        if (rules_value(r, false, secret_names[i], NULL, "/a.py", "f") != RULE_REDACT)
            fail_msg("'%s' should be redacted by default", secret_names[i]);
        assert_true(regexec(&re, secret_names[i], 0, NULL, 0) == 0);
    }
    for (size_t i = 0; i < sizeof plain_names / sizeof *plain_names; i++) {
        if (rules_value(r, true, plain_names[i], NULL, "/a.py", "f") != RULE_NONE)
            fail_msg("'%s' should be kept by default", plain_names[i]);
        assert_false(regexec(&re, plain_names[i], 0, NULL, 0) == 0);
    }
    regfree(&re);
    assert_false(rules_has_frame_rules(r));
    assert_int_equal(rules_frame(r, NULL, "/usr/lib/python3.11/json/decoder.py", "f"), RULE_NONE);
    rules_free(r);
}

static void stdlib_detection(void **state)
{
    (void)state;
    assert_true(rules_is_stdlib("/usr/lib/python3.11/json/decoder.py"));
    assert_true(rules_is_stdlib("/root/.pyenv/versions/3.13.1/lib/python3.13/threading.py"));
    assert_true(rules_is_stdlib("/opt/py/lib/python3.13t/asyncio/events.py"));
    assert_true(rules_is_stdlib("/usr/lib/python2.7/os.py"));
    assert_true(rules_is_stdlib("<frozen importlib._bootstrap>"));
    assert_false(rules_is_stdlib("/usr/lib/python3.11/site-packages/requests/api.py"));
    assert_false(rules_is_stdlib("/usr/lib/python3/dist-packages/yaml/__init__.py"));
    assert_false(rules_is_stdlib("/home/u/python3.11-notes/x.py"));
    assert_false(rules_is_stdlib("/srv/app/main.py"));
    assert_false(rules_is_stdlib("<string>"));
}

static void module_of_file(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"/usr/lib/python3.11/json/decoder.py", "json.decoder"},
        {"/usr/lib/python3.11/json/__init__.py", "json"},
        {"/usr/lib/python3.11/threading.py", "threading"},
        {"/v/lib/python3.12/site-packages/requests/sessions.py", "requests.sessions"},
        {"/usr/lib/python3/dist-packages/yaml/__init__.py", "yaml"},
        {"<frozen importlib._bootstrap>", "importlib._bootstrap"},
        {"/srv/app/main.py", "main"},
        {"main.py", "main"},
        {"<string>", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[256];
        rules_module_of_file(cases[i][0], out, sizeof out);
        assert_string_equal(out, cases[i][1]);
    }
    char small[5];
    rules_module_of_file("/usr/lib/python3.11/json/decoder.py", small, sizeof small);
    assert_string_equal(small, "json");
}

static void describe_lists_the_chain_with_origins(void **state)
{
    (void)state;
    struct rules *r = chain("# comment\nexclude   module:a.*   # why\n", true);
    char text[2048];
    size_t need = rules_describe(r, text, sizeof text);
    assert_int_equal(need, strlen(text));
    assert_non_null(strstr(text, "redact value:iregex:" RULES_DEFAULT_SECRET "  # default\n"));
    assert_non_null(strstr(text, "fold stdlib  # --no-stdlib\n"));
    assert_non_null(strstr(text, "exclude module:a.*  # t.rules:2\n"));
    /* The description is itself a valid rule file. */
    struct rules *again = chain(text, false);
    assert_int_equal(rules_frame(again, NULL, "/x/a/b.py", "f"), RULE_EXCLUDE);
    assert_int_equal(rules_value(again, false, "API_Key", NULL, "/x.py", "f"), RULE_REDACT);
    rules_free(again);
    char tiny[8];
    assert_int_equal(rules_describe(r, tiny, sizeof tiny), need);
    assert_int_equal(strlen(tiny), 7);
    rules_free(r);
}

/* Random lines of rule-ish tokens and bytes: every one loads or fails with a usage error naming
 * its origin and line, never anything else (ASan runs this too). */
static void garbage_lines_fail_cleanly(void **state)
{
    (void)state;
    static const char *const parts[] = {
        "exclude", "fold", "include", "redact", "drop", "allow", "module:", "file:", "function:",
        "local:", "arg:", "value:", "stdlib", "regex:", "literal:", "glob:", "iregex:", "(", "[",
        "*", "\\", "#", " ", "\t", "\xff", "a.b", ":", "{", "?", "^$",
    };
    unsigned seed = 12345;
    for (int i = 0; i < 3000; i++) {
        char line[256] = "";
        int n = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 8;
        for (int k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            strcat(line, parts[(seed >> 16) % (sizeof parts / sizeof *parts)]);
            if ((seed >> 8) & 1)
                strcat(line, " ");
        }
        struct rules *r = chain(NULL, false);
        struct pt_err err;
        pt_err_clear(&err);
        enum pt_status rc = rules_load_text(r, line, "g", &err);
        if (rc != PT_OK) {
            assert_int_equal(rc, PT_EUSAGE);
            assert_true(strncmp(err.msg, "g:1: ", 5) == 0);
        }
        (void)rules_frame(r, NULL, "/usr/lib/python3.11/a.py", "f");
        (void)rules_value(r, true, "x", NULL, "/a.py", "f");
        rules_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malformed_lines_name_origin_and_line),
        cmocka_unit_test(rule_file_errors_name_the_file),
        cmocka_unit_test(module_selector_glob_regex_literal),
        cmocka_unit_test(file_selector_glob_regex_literal),
        cmocka_unit_test(function_selector_glob_regex_literal),
        cmocka_unit_test(value_selectors_local_arg_value),
        cmocka_unit_test(value_rules_narrowed_by_frame_selectors),
        cmocka_unit_test(last_rule_wins_and_include_readmits),
        cmocka_unit_test(default_redacts_secret_names),
        cmocka_unit_test(stdlib_detection),
        cmocka_unit_test(module_of_file),
        cmocka_unit_test(describe_lists_the_chain_with_origins),
        cmocka_unit_test(garbage_lines_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
