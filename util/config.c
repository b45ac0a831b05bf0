/*
 * config.c — the configuration of config.h: the known keys, the `key = value` file parser, the
 * PYTRACE_<KEY> variables, value checks that name the key and where the value came from, and the
 * table of effective values with their origins.
 */
#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_FILE (1 << 20)

/* Every recording option of cli/record_opts.c (the option is the key with '-' for '_'). */
const struct config_key config_keys[] = {
    {"rate", CONFIG_HZ, "1000"},
    {"duration", CONFIG_SECONDS, "(until Ctrl-C or the target exits)"},
    {"output", CONFIG_STR, "(pytrace-<name>-<pid>-<UTC time>-<id>.pytrace)"},
    {"output_dir", CONFIG_STR, "(the current directory)"},
    {"filter", CONFIG_LIST, "(none: the built-in secret redaction only)"},
    {"no_stdlib", CONFIG_BOOL, "false"},
    {"native", CONFIG_BOOL, "false"},
    {"blocking", CONFIG_BOOL, "false"},
    {"subprocesses", CONFIG_BOOL, "false"},
    {"locals", CONFIG_BOOL, "false"},
    {"gil", CONFIG_BOOL, "false"},
    {"idle", CONFIG_BOOL, "false"},
    {"jitter", CONFIG_FRACTION, "0"},
    {"max_size", CONFIG_SIZE, "(unlimited)"},
    {"name", CONFIG_STR, "(the target's command name)"},
    {"thread", CONFIG_LIST, "(all threads)"},
    {"quiet", CONFIG_BOOL, "false"},
};
const size_t config_n_keys = sizeof config_keys / sizeof *config_keys;

struct config_entry {
    char *value;
    char *origin;
    enum config_src src;
};

struct config {
    struct config_entry e[sizeof config_keys / sizeof *config_keys];
};

struct config *config_new(void)
{
    return calloc(1, sizeof(struct config));
}

void config_free(struct config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < config_n_keys; i++) {
        free(c->e[i].value);
        free(c->e[i].origin);
    }
    free(c);
}

const struct config_key *config_find_key(const char *key)
{
    for (size_t i = 0; i < config_n_keys; i++)
        if (!strcmp(config_keys[i].key, key))
            return &config_keys[i];
    return NULL;
}

bool config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false",
                                                                               "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!strcasecmp(s, yes[i]))
            return *out = true;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return true;
        }
    return false;
}

int config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0))
        return -1;
    switch (toupper((unsigned char)*end)) {
    case '\0': break;
    case 'K': v *= 1024; end++; break;
    case 'M': v *= 1024 * 1024; end++; break;
    case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    default: return -1;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v >= 1.8e19)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* NULL when value suits the kind, else what is expected. */
static const char *check_value(enum config_kind kind, const char *value)
{
    char *end;
    double v = strtod(value, &end);
    bool num = *value && !*end && end != value;
    bool b;
    uint64_t size;
    switch (kind) {
    case CONFIG_STR:
    case CONFIG_LIST:
        return *value ? NULL : "a non-empty value";
    case CONFIG_BOOL:
        return config_parse_bool(value, &b) ? NULL : "true or false (1/0, yes/no, on/off)";
    case CONFIG_HZ:
        return num && v > 0 && v <= 1e6 ? NULL : "a number of Hz in (0, 1000000]";
    case CONFIG_SECONDS:
        return num && v > 0 ? NULL : "a positive number of seconds";
    case CONFIG_FRACTION:
        return num && v >= 0 && v <= 0.5 ? NULL : "a fraction in [0, 0.5]";
    case CONFIG_SIZE:
        return config_parse_size(value, &size) == 0 ? NULL : "a size such as 64M (K, M, G)";
    }
    return "a valid value";
}

enum pt_status config_set(struct config *c, const char *key, const char *value,
                          enum config_src src, const char *origin, struct pt_err *err)
{
    const struct config_key *k = config_find_key(key);
    if (!k)
        return pt_fail(err, PT_EUSAGE, "%s: unknown key '%s' (see `pytrace config` for the keys)",
                       origin, key);
    if (src != CONFIG_SRC_CLI) {
        const char *want = check_value(k->kind, value);
        if (want)
            return pt_fail(err, PT_EUSAGE, "%s: %s = '%s' is not valid: expected %s",
                           origin, key, value, want);
    }
    struct config_entry *e = &c->e[k - config_keys];
    char *v;
    if (src == CONFIG_SRC_CLI && e->src == CONFIG_SRC_CLI && k->kind == CONFIG_LIST) {
        size_t n = strlen(e->value) + strlen(value) + 2;
        if ((v = malloc(n)))
            snprintf(v, n, "%s:%s", e->value, value);
    } else {
        v = strdup(value);
    }
    char *o = strdup(origin);
    if (!v || !o) {
        free(v);
        free(o);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    free(e->value);
    free(e->origin);
    *e = (struct config_entry){v, o, src};
    return PT_OK;
}

const char *config_get(const struct config *c, const char *key, enum config_src *src,
                       const char **origin)
{
    const struct config_key *k = config_find_key(key);
    const struct config_entry *e = k ? &c->e[k - config_keys] : NULL;
    if (src)
        *src = e && e->value ? e->src : CONFIG_SRC_DEFAULT;
    if (origin)
        *origin = e && e->value ? e->origin : "default";
    return e ? e->value : NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One line: blank, "# comment" or "key = value" (a value may hold '#': comments are whole lines). */
static enum pt_status load_line(struct config *c, char *line, const char *where, struct pt_err *err)
{
    char *s = trim(line);
    if (!*s || *s == '#')
        return PT_OK;
    char *eq = strchr(s, '=');
    if (!eq)
        return pt_fail(err, PT_EUSAGE, "%s: expected 'key = value', got '%.60s'", where, s);
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    for (char *p = key; *p; p++)
        if (*p == '-')
            *p = '_';
    if (!*key)
        return pt_fail(err, PT_EUSAGE, "%s: missing key before '='", where);
    return config_set(c, key, value, CONFIG_SRC_FILE, where, err);
}

enum pt_status config_load_text(struct config *c, const char *text, const char *origin,
                                struct pt_err *err)
{
    unsigned lineno = 0;
    for (const char *p = text; *p;) {
        lineno++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[4096], where[512];
        snprintf(where, sizeof where, "%s:%u", origin, lineno);
        if (len >= sizeof line)
            return pt_fail(err, PT_EUSAGE, "%s: line longer than %zu bytes", where,
                           sizeof line - 1);
        memcpy(line, p, len);
        line[len] = '\0';
        enum pt_status rc = load_line(c, line, where, err);
        if (rc != PT_OK)
            return rc;
        if (!nl)
            break;
        p = nl + 1;
    }
    return PT_OK;
}

enum pt_status config_load_file(struct config *c, const char *path, bool must_exist,
                                struct pt_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        /* A default location we may not look into (another user's HOME after setpriv/su) is
         * as good as absent; a file named with --config must be readable. */
        if (!must_exist && (errno == ENOENT || errno == EACCES || errno == ENOTDIR))
            return PT_OK;
        return pt_fail(err, PT_EUSAGE, "cannot read config file %s: %s", path, strerror(errno));
    }
    char *text = malloc(CONFIG_MAX_FILE + 1);
    size_t n = text ? fread(text, 1, CONFIG_MAX_FILE + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    enum pt_status rc;
    if (!text)
        rc = pt_fail(err, PT_EFAIL, "out of memory");
    else if (bad)
        rc = pt_fail(err, PT_EUSAGE, "cannot read config file %s", path);
    else if (n > CONFIG_MAX_FILE || memchr(text, '\0', n))
        rc = pt_fail(err, PT_EUSAGE, "%s: not a config file (too large or binary)", path);
    else {
        text[n] = '\0';
        rc = config_load_text(c, text, path, err);
    }
    free(text);
    return rc;
}

enum pt_status config_load_env(struct config *c, struct pt_err *err)
{
    for (size_t i = 0; i < config_n_keys; i++) {
        char var[64] = "PYTRACE_";
        size_t n = strlen(var);
        for (const char *p = config_keys[i].key; *p && n < sizeof var - 1; p++)
            var[n++] = (char)toupper((unsigned char)*p);
        var[n] = '\0';
        const char *v = getenv(var);
        if (!v || !*v)   /* an empty variable is unset */
            continue;
        char origin[80];
        snprintf(origin, sizeof origin, "env %s", var);
        enum pt_status rc = config_set(c, config_keys[i].key, v, CONFIG_SRC_ENV, origin, err);
        if (rc != PT_OK)
            return rc;
    }
    return PT_OK;
}

enum pt_status config_load_all(struct config *c, const char *extra_file, struct pt_err *err)
{
    enum pt_status rc = config_load_file(c, "/etc/pytrace.conf", false, err);
    char user[4096] = "";
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg == '/')
        snprintf(user, sizeof user, "%s/pytrace.conf", xdg);
    else if (home && *home)
        snprintf(user, sizeof user, "%s/.config/pytrace.conf", home);
    if (rc == PT_OK && *user)
        rc = config_load_file(c, user, false, err);
    if (rc == PT_OK && extra_file)
        rc = config_load_file(c, extra_file, true, err);
    if (rc == PT_OK)
        rc = config_load_env(c, err);
    return rc;
}
