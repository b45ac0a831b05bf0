/*
 * cli_rules.c — the rule chain of verbs that take `--filter FILE` outside the recording options
 * (dump, daemon): the built-in defaults, PYTRACE_FILTER's files (':'-separated), then each file
 * given on the command line, later rules winning (docs/filters.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/rules.h"

enum pt_status cli_rules(struct rules **out, bool no_stdlib, const char *const *files, size_t n,
                         struct pt_err *err)
{
    if (rules_new(out, no_stdlib, err) != PT_OK)
        return err->code;
    const char *env = getenv("PYTRACE_FILTER");
    char list[4096];
    snprintf(list, sizeof list, "%s", env ? env : "");
    for (char *save = NULL, *f = strtok_r(list, ":", &save); f; f = strtok_r(NULL, ":", &save))
        if (rules_load_file(*out, f, err) != PT_OK)
            goto fail;
    for (size_t i = 0; i < n; i++)
        if (rules_load_file(*out, files[i], err) != PT_OK)
            goto fail;
    return PT_OK;
fail:
    rules_free(*out);
    *out = NULL;
    return err->code;
}
