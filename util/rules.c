/*
 * rules.c — the rule chain of rules.h. Placeholder holding only the built-in secret-name default;
 * the full parser (files, selectors, frame actions) replaces it.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rules.h"

#define RULES_DEFAULT_SECRET                                                                       \
    "^(.*_)?(password|passwd|pwd|secret|token|api_?key|apikey|auth|authorization|cookie|session|"  \
    "private_?key|credentials?|access_?key|secret_?key)(_.*)?$"

struct rules {
    regex_t secret;
};

enum pt_status rules_new(struct rules **out, bool no_stdlib, struct pt_err *err)
{
    (void)no_stdlib;
    struct rules *r = calloc(1, sizeof *r);
    if (!r)
        return pt_fail(err, PT_EFAIL, "out of memory");
    if (regcomp(&r->secret, RULES_DEFAULT_SECRET, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0) {
        free(r);
        return pt_fail(err, PT_EFAIL, "internal error: default redaction rule does not compile");
    }
    *out = r;
    return PT_OK;
}

void rules_free(struct rules *r)
{
    if (!r)
        return;
    regfree(&r->secret);
    free(r);
}

enum pt_status rules_load_file(struct rules *r, const char *path, struct pt_err *err)
{
    (void)r;
    return pt_fail(err, PT_EUSAGE, "%s: rule files are not supported yet", path);
}

enum pt_status rules_load_text(struct rules *r, const char *text, const char *origin,
                               struct pt_err *err)
{
    (void)r;
    (void)text;
    return pt_fail(err, PT_EUSAGE, "%s: rules are not supported yet", origin);
}

enum rule_action rules_frame(const struct rules *r, const char *module, const char *file,
                             const char *function)
{
    (void)r, (void)module, (void)file, (void)function;
    return RULE_NONE;
}

enum rule_action rules_value(const struct rules *r, bool is_arg, const char *name,
                             const char *module, const char *file, const char *function)
{
    (void)is_arg, (void)module, (void)file, (void)function;
    return regexec(&r->secret, name, 0, NULL, 0) == 0 ? RULE_REDACT : RULE_NONE;
}

void rules_module_of_file(const char *file, char *out, size_t cap)
{
    snprintf(out, cap, "%s", file);
}

size_t rules_describe(const struct rules *r, char *out, size_t cap)
{
    (void)r;
    return (size_t)snprintf(out, cap, "redact value:regex:%s\n", RULES_DEFAULT_SECRET);
}
