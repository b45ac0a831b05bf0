/*
 * record_config.c — configuration files, PYTRACE_* variables and rule files for `attach`, `run`
 * and `config` (docs/config.md, docs/filters.md). The effective file/environment values become
 * options ("--rate=250") that record_parse() reads before the real command line, so every option
 * is checked by one parser and the command line wins by coming last. Also builds the rule chain
 * the recording uses, before anything is started, so a bad rule file is a usage error (exit 2).
 */
#include "cli/record_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/config.h"
#include "util/rules.h"

#define RECCFG_MAX_ARGS 256

/* Process-lifetime state of the one recording a pytrace process makes. */
static struct config *reccfg;
static char *reccfg_argv[RECCFG_MAX_ARGS + 1];
static const char *reccfg_origin[RECCFG_MAX_ARGS + 1];
static int reccfg_argc;
static struct rules *reccfg_rules;
static char *reccfg_rules_text;

static const struct option *find_option(const struct option *opts, const char *key)
{
    char name[64];
    snprintf(name, sizeof name, "%s", key);
    for (char *p = name; *p; p++)
        if (*p == '_')
            *p = '-';
    for (; opts->name; opts++)
        if (!strcmp(opts->name, name))
            return opts;
    return NULL;
}

static int push_arg(const char *verb, const char *opt, const char *value, const char *origin)
{
    if (reccfg_argc == RECCFG_MAX_ARGS)
        return cli_usage_error(verb, "too many values in the configuration");
    size_t n = strlen(opt) + (value ? strlen(value) : 0) + 4;
    char *a = malloc(n);
    if (!a) {
        fprintf(stderr, "pytrace: out of memory\n");
        return PT_EFAIL;
    }
    snprintf(a, n, "--%s%s%s", opt, value ? "=" : "", value ? value : "");
    reccfg_origin[reccfg_argc] = origin;
    reccfg_argv[reccfg_argc++] = a;
    return 0;
}

/* One configured key as options: a flag when true, --key=VALUE, or one per ':' item of a list. */
static int key_to_args(const char *verb, const struct option *opts, const struct config_key *k,
                       const char *value, const char *origin)
{
    const struct option *opt = find_option(opts, k->key);
    if (!opt) {
        fprintf(stderr, "pytrace %s: %s = %s (%s): this pytrace's `%s` has no --%s option\n",
                verb, k->key, value, origin, verb, k->key);
        return PT_EUSAGE;
    }
    if (opt->has_arg == no_argument) {
        bool on = false;
        config_parse_bool(value, &on);   /* checked when the value was read */
        return on ? push_arg(verb, opt->name, NULL, origin) : 0;
    }
    if (k->kind != CONFIG_LIST)
        return push_arg(verb, opt->name, value, origin);
    char item[4096];
    for (const char *p = value; *p;) {
        size_t n = strcspn(p, ":");
        if (n && n < sizeof item) {
            memcpy(item, p, n);
            item[n] = '\0';
            int rc = push_arg(verb, opt->name, item, origin);
            if (rc)
                return rc;
        }
        p += n + (p[n] == ':');
    }
    return 0;
}

int record_config_load(const char *verb, const char *config_file, const struct option *opts,
                       int *argc, char ***argv)
{
    struct pt_err err;
    pt_err_clear(&err);
    config_free(reccfg);
    for (int i = 1; i < reccfg_argc; i++)
        free(reccfg_argv[i]);
    reccfg_argc = 0;
    if (!(reccfg = config_new())) {
        fprintf(stderr, "pytrace: out of memory\n");
        return PT_EFAIL;
    }
    if (config_load_all(reccfg, config_file, &err) != PT_OK)
        return cli_report(&err);
    reccfg_argv[reccfg_argc++] = (char *)verb;
    for (size_t i = 0; i < config_n_keys; i++) {
        const char *origin, *value = config_get(reccfg, config_keys[i].key, NULL, &origin);
        int rc = value ? key_to_args(verb, opts, &config_keys[i], value, origin) : 0;
        if (rc)
            return rc;
    }
    reccfg_argv[reccfg_argc] = NULL;
    *argc = reccfg_argc;
    *argv = reccfg_argv;
    return 0;
}

const char *record_config_origin(int index)
{
    return index > 0 && index < reccfg_argc ? reccfg_origin[index] : "the configuration";
}

void record_config_note(const struct option *opts, int c, const char *arg)
{
    for (; reccfg && opts->name; opts++) {
        if (opts->val != c)
            continue;
        char key[64];
        snprintf(key, sizeof key, "%s", opts->name);
        for (char *p = key; *p; p++)
            if (*p == '-')
                *p = '_';
        if (config_find_key(key))
            config_set(reccfg, key, opts->has_arg == no_argument ? "true" : arg, CONFIG_SRC_CLI,
                       "command line", NULL);
        return;
    }
}

const struct config *record_config(void)
{
    return reccfg;
}

int record_config_build_rules(const char *const *files, size_t n, bool no_stdlib,
                              struct rules **out)
{
    struct pt_err err;
    pt_err_clear(&err);
    *out = NULL;
    struct rules *r;
    if (rules_new(&r, no_stdlib, &err) != PT_OK)
        return cli_report(&err);
    for (size_t i = 0; i < n; i++)
        if (rules_load_file(r, files[i], &err) != PT_OK) {
            rules_free(r);
            return cli_report(&err);
        }
    *out = r;
    return 0;
}

int record_config_rules(const char *const *files, size_t n, bool no_stdlib)
{
    rules_free(reccfg_rules);
    free(reccfg_rules_text);
    reccfg_rules = NULL;
    reccfg_rules_text = NULL;
    int rc = record_config_build_rules(files, n, no_stdlib, &reccfg_rules);
    if (rc)
        return rc;
    size_t len = rules_describe(reccfg_rules, NULL, 0);
    if (!(reccfg_rules_text = malloc(len + 1))) {
        fprintf(stderr, "pytrace: out of memory\n");
        return PT_EFAIL;
    }
    rules_describe(reccfg_rules, reccfg_rules_text, len + 1);
    return 0;
}

const struct rules *record_config_rule_chain(const char **description)
{
    if (description)
        *description = reccfg_rules_text ? reccfg_rules_text : "";
    return reccfg_rules;
}
