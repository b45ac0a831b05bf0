/*
 * rules.c — the rule chain of rules.h: the built-in defaults, the line parser (every error names
 * ORIGIN:LINE and says what is allowed), the last-match-wins lookups and the description written
 * to the trace header. Matching one selector lives in rules_match.c.
 */
#include "util/rules_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_MAX_SEL 4          /* selectors on one line */
#define RULES_MAX_LINE 4096      /* bytes of one rule line */
#define RULES_MAX_FILE (1 << 20) /* bytes of a rule file */

struct rules_rule {
    enum rule_action action;
    bool frame;                  /* include/exclude/fold; else a value rule with sel[0] the value */
    struct rules_matcher sel[RULES_MAX_SEL];
    size_t n_sel;
    char *text;                  /* the rule as written, tokens joined by one space */
    char *origin;                /* "default", "--no-stdlib", "FILE:LINE" */
};

struct rules {
    struct rules_rule *v;
    size_t n, cap;
    bool frame_rules;
    struct rules_counts *counts; /* mutable behind a const chain: rules_value() counts */
};

static const struct { const char *name; enum rule_action action; bool frame; } actions[] = {
    {"include", RULE_INCLUDE, true}, {"exclude", RULE_EXCLUDE, true}, {"fold", RULE_FOLD, true},
    {"allow", RULE_ALLOW, false},    {"redact", RULE_REDACT, false},  {"drop", RULE_DROP, false},
};

static const struct { const char *name; enum rules_sel kind; } selectors[] = {
    {"module", RULES_SEL_MODULE}, {"file", RULES_SEL_FILE},   {"function", RULES_SEL_FUNCTION},
    {"local", RULES_SEL_LOCAL},   {"arg", RULES_SEL_ARG},     {"value", RULES_SEL_VALUE},
};

static bool is_value_sel(enum rules_sel k)
{
    return k == RULES_SEL_LOCAL || k == RULES_SEL_ARG || k == RULES_SEL_VALUE;
}

static void rule_free(struct rules_rule *rule)
{
    for (size_t i = 0; i < rule->n_sel; i++) {
        if (rule->sel[i].how == RULES_REGEX)
            regfree(&rule->sel[i].re);
        free(rule->sel[i].pattern);
    }
    free(rule->text);
    free(rule->origin);
    memset(rule, 0, sizeof *rule);
}

static enum pt_status oom(struct pt_err *err)
{
    return pt_fail(err, PT_EFAIL, "out of memory");
}

/* Appends rule (taking its allocations; freed on failure). */
static enum pt_status push(struct rules *r, struct rules_rule *rule, struct pt_err *err)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct rules_rule *v = realloc(r->v, cap * sizeof *v);
        if (!v) {
            rule_free(rule);
            return oom(err);
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = *rule;
    r->frame_rules |= rule->frame;
    return PT_OK;
}

/* Parses "KIND:PATTERN" (or "stdlib") into m. */
static enum pt_status parse_selector(const char *tok, const char *origin, struct rules_matcher *m,
                                     struct pt_err *err)
{
    memset(m, 0, sizeof *m);
    if (!strcmp(tok, "stdlib")) {
        m->kind = RULES_SEL_STDLIB;
        m->how = RULES_LITERAL;
        return (m->pattern = strdup("")) ? PT_OK : oom(err);
    }
    const char *colon = strchr(tok, ':');
    size_t i = 0, n = sizeof selectors / sizeof *selectors;
    for (; colon && i < n; i++)
        if (strlen(selectors[i].name) == (size_t)(colon - tok) &&
            !strncmp(tok, selectors[i].name, (size_t)(colon - tok)))
            break;
    if (!colon || i == n)
        return pt_fail(err, PT_EUSAGE, "%s: unknown selector '%s' (expected module:, file:, "
                       "function:, stdlib, local:, arg: or value: followed by a pattern)",
                       origin, tok);
    m->kind = selectors[i].kind;
    const char *pat = colon + 1;
    m->how = RULES_GLOB;
    int cflags = REG_EXTENDED | REG_NOSUB;
    if (!strncmp(pat, "regex:", 6) || !strncmp(pat, "iregex:", 7)) {
        if (*pat == 'i')
            cflags |= REG_ICASE;
        m->how = RULES_REGEX;
        pat += *pat == 'i' ? 7 : 6;
    } else if (!strncmp(pat, "literal:", 8)) {
        m->how = RULES_LITERAL;
        pat += 8;
    } else if (!strncmp(pat, "glob:", 5)) {
        pat += 5;
    }
    if (!*pat)
        return pt_fail(err, PT_EUSAGE, "%s: selector '%s' has an empty pattern", origin, tok);
    if (m->how == RULES_REGEX) {
        int rc = regcomp(&m->re, pat, cflags);
        if (rc != 0) {
            char why[128];
            regerror(rc, &m->re, why, sizeof why);
            return pt_fail(err, PT_EUSAGE, "%s: bad regex '%s': %s (POSIX extended syntax)",
                           origin, pat, why);
        }
    }
    if (!(m->pattern = strdup(pat))) {
        if (m->how == RULES_REGEX)
            regfree(&m->re);
        return oom(err);
    }
    return PT_OK;
}

/* Checks the selectors fit the action; moves a value rule's value selector to sel[0]. */
static enum pt_status check_rule(struct rules_rule *rule, const char *action, const char *origin,
                                 struct pt_err *err)
{
    size_t n_value = 0, at = 0;
    for (size_t i = 0; i < rule->n_sel; i++)
        if (is_value_sel(rule->sel[i].kind)) {
            n_value++;
            at = i;
        }
    if (rule->frame && n_value)
        return pt_fail(err, PT_EUSAGE, "%s: '%s' is a frame action: it takes module:, file:, "
                       "function: or stdlib selectors (local:, arg:, value: go with allow, "
                       "redact, drop)", origin, action);
    if (!rule->frame && n_value != 1)
        return pt_fail(err, PT_EUSAGE, "%s: '%s' is a value action: it takes exactly one local:, "
                       "arg: or value: selector (optionally narrowed by module:, file:, "
                       "function:, stdlib)", origin, action);
    if (!rule->frame && at) {
        struct rules_matcher tmp = rule->sel[0];
        rule->sel[0] = rule->sel[at];
        rule->sel[at] = tmp;
    }
    return PT_OK;
}

/* Splits line into whitespace-separated tokens in buf; a token starting with '#' ends it. */
static size_t tokenize(char *buf, char **tok, size_t max, bool *too_many)
{
    size_t n = 0;
    *too_many = false;
    char *save = NULL;
    for (char *p = strtok_r(buf, " \t\r\v\f", &save); p; p = strtok_r(NULL, " \t\r\v\f", &save)) {
        if (*p == '#')
            break;
        if (n == max) {
            *too_many = true;
            break;
        }
        tok[n++] = p;
    }
    return n;
}

static enum pt_status join_text(struct rules_rule *rule, char **tok, size_t n, struct pt_err *err)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(tok[i]) + 1;
    if (!(rule->text = malloc(len + 1)))
        return oom(err);
    char *p = rule->text;
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? " " : "", tok[i]);
    return PT_OK;
}

enum pt_status rules_add_line(struct rules *r, const char *line, const char *origin,
                              struct pt_err *err)
{
    char buf[RULES_MAX_LINE];
    size_t len = strcspn(line, "\n");
    if (len >= sizeof buf)
        return pt_fail(err, PT_EUSAGE, "%s: line longer than %d bytes", origin, RULES_MAX_LINE - 1);
    memcpy(buf, line, len);
    buf[len] = '\0';
    char *tok[RULES_MAX_SEL + 1];
    bool too_many;
    size_t n = tokenize(buf, tok, RULES_MAX_SEL + 1, &too_many);
    if (!n)
        return PT_OK;   /* blank or comment */
    if (too_many)
        return pt_fail(err, PT_EUSAGE, "%s: more than %d selectors on one line", origin,
                       RULES_MAX_SEL);
    size_t a = 0, na = sizeof actions / sizeof *actions;
    while (a < na && strcmp(tok[0], actions[a].name) != 0)
        a++;
    if (a == na)
        return pt_fail(err, PT_EUSAGE, "%s: unknown action '%s' (expected include, exclude, fold, "
                       "allow, redact or drop, then a selector)", origin, tok[0]);
    if (n == 1)
        return pt_fail(err, PT_EUSAGE, "%s: '%s' needs a selector, e.g. '%s %s'", origin,
                       tok[0], tok[0], actions[a].frame ? "module:myapp.*" : "local:password");
    struct rules_rule rule = {.action = actions[a].action, .frame = actions[a].frame};
    enum pt_status rc = PT_OK;
    for (size_t i = 1; i < n && rc == PT_OK; i++) {
        rc = parse_selector(tok[i], origin, &rule.sel[rule.n_sel], err);
        if (rc == PT_OK)
            rule.n_sel++;
    }
    if (rc == PT_OK)
        rc = check_rule(&rule, tok[0], origin, err);
    if (rc == PT_OK)
        rc = join_text(&rule, tok, n, err);
    if (rc == PT_OK && !(rule.origin = strdup(origin)))
        rc = oom(err);
    if (rc != PT_OK) {
        rule_free(&rule);
        return rc;
    }
    return push(r, &rule, err);
}

enum pt_status rules_load_text(struct rules *r, const char *text, const char *origin,
                               struct pt_err *err)
{
    unsigned lineno = 1;
    for (const char *p = text; *p; lineno++) {
        char where[512];
        snprintf(where, sizeof where, "%s:%u", origin, lineno);
        enum pt_status rc = rules_add_line(r, p, where, err);
        if (rc != PT_OK)
            return rc;
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return PT_OK;
}

enum pt_status rules_load_file(struct rules *r, const char *path, struct pt_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return pt_fail(err, PT_EUSAGE, "cannot read rule file %s: %s", path, strerror(errno));
    char *text = malloc(RULES_MAX_FILE + 1);
    if (!text) {
        fclose(f);
        return oom(err);
    }
    size_t n = fread(text, 1, RULES_MAX_FILE + 1, f);
    bool bad = ferror(f);
    fclose(f);
    enum pt_status rc;
    if (bad)
        rc = pt_fail(err, PT_EUSAGE, "cannot read rule file %s", path);
    else if (n > RULES_MAX_FILE)
        rc = pt_fail(err, PT_EUSAGE, "%s: rule file larger than %d bytes", path, RULES_MAX_FILE);
    else if (memchr(text, '\0', n))
        rc = pt_fail(err, PT_EUSAGE, "%s: not a text file (holds a NUL byte)", path);
    else {
        text[n] = '\0';
        rc = rules_load_text(r, text, path, err);
    }
    free(text);
    return rc;
}

static enum pt_status add_builtin(struct rules *r, enum rule_action action, enum rules_sel kind,
                                  enum rules_how how, const char *pattern, const char *text,
                                  const char *origin, struct pt_err *err)
{
    struct rules_rule rule = {.action = action, .frame = action <= RULE_FOLD, .n_sel = 1};
    rule.sel[0] = (struct rules_matcher){.kind = kind, .how = how, .pattern = strdup(pattern)};
    rule.text = strdup(text);
    rule.origin = strdup(origin);
    if (!rule.sel[0].pattern || !rule.text || !rule.origin) {
        rule_free(&rule);
        return oom(err);
    }
    return push(r, &rule, err);
}

enum pt_status rules_new(struct rules **out, bool no_stdlib, struct pt_err *err)
{
    *out = NULL;
    struct rules *r = calloc(1, sizeof *r);
    if (!r || !(r->counts = calloc(1, sizeof *r->counts))) {
        free(r);
        return oom(err);
    }
    enum pt_status rc = add_builtin(r, RULE_REDACT, RULES_SEL_VALUE, RULES_SECRET,
                                    RULES_DEFAULT_SECRET, "redact value:iregex:" RULES_DEFAULT_SECRET,
                                    "default", err);
    if (rc == PT_OK && no_stdlib)
        rc = add_builtin(r, RULE_FOLD, RULES_SEL_STDLIB, RULES_LITERAL, "", "fold stdlib",
                         "--no-stdlib", err);
    if (rc != PT_OK) {
        rules_free(r);
        return rc;
    }
    *out = r;
    return PT_OK;
}

void rules_free(struct rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        rule_free(&r->v[i]);
    free(r->v);
    free(r->counts);
    free(r);
}

static bool frame_sels_match(const struct rules_rule *rule, size_t from, const char *module,
                             const char *file, const char *function)
{
    for (size_t i = from; i < rule->n_sel; i++)
        if (!rules_matcher_frame(&rule->sel[i], module, file, function))
            return false;
    return true;
}

enum rule_action rules_frame(const struct rules *r, const char *module, const char *file,
                             const char *function)
{
    if (!r || !r->frame_rules)
        return RULE_NONE;
    for (size_t i = r->n; i-- > 0;) {
        const struct rules_rule *rule = &r->v[i];
        if (rule->frame && frame_sels_match(rule, 0, module, file, function))
            return rule->action;
    }
    return RULE_NONE;
}

enum rule_action rules_value(const struct rules *r, bool is_arg, const char *name,
                             const char *module, const char *file, const char *function)
{
    if (!r || !name)
        return RULE_NONE;
    for (size_t i = r->n; i-- > 0;) {
        const struct rules_rule *rule = &r->v[i];
        if (rule->frame || !rules_matcher_value(&rule->sel[0], is_arg, name) ||
            !frame_sels_match(rule, 1, module, file, function))
            continue;
        if (rule->action == RULE_REDACT)
            r->counts->redacted++;
        else if (rule->action == RULE_DROP)
            r->counts->dropped++;
        return rule->action;
    }
    return RULE_NONE;
}

bool rules_has_frame_rules(const struct rules *r)
{
    return r && r->frame_rules;
}

struct rules_counts rules_get_counts(const struct rules *r)
{
    return r ? *r->counts : (struct rules_counts){0, 0};
}

size_t rules_describe(const struct rules *r, char *out, size_t cap)
{
    size_t len = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; r && i < r->n; i++) {
        int n = snprintf(len < cap ? out + len : NULL, len < cap ? cap - len : 0, "%s  # %s\n",
                         r->v[i].text, r->v[i].origin);
        if (n > 0)
            len += (size_t)n;
    }
    return len;
}
