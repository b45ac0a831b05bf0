/*
 * rules_match.c — how one selector of a rule matches a frame or a value name (rules.h): globs
 * (fnmatch), POSIX extended regexes (compiled once at parse time) and literals; module names
 * derived from file paths; standard-library detection; and the built-in secret-name test. Nothing
 * here allocates: paths are rewritten in bounded stack buffers.
 */
#include "util/rules_int.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

/* The words of the built-in default. A name is secret when, case-insensitively, one of them
 * occurs in it followed by the end of the name, '_' or '-' ("db_password", "apiKey",
 * "session_id"); RULES_DEFAULT_SECRET is the same test as a regex (the unit tests compare). */
static const char *const secret_words[] = {
    "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "api_key",
    "api-key", "auth", "authorization", "cookie", "session", "privatekey", "private_key",
    "private-key", "credential", "credentials", "accesskey", "access_key", "access-key",
};

bool rules_is_secret_name(const char *name)
{
    char low[256];
    size_t n = 0;
    for (; name[n] && n < sizeof low - 1; n++)
        low[n] = (char)tolower((unsigned char)name[n]);
    low[n] = '\0';
    /* A word must end where the name ends or at '_'/'-': try each such end against each word. */
    for (size_t end = 0; end <= n; end++) {
        if (end < n && low[end] != '_' && low[end] != '-')
            continue;
        for (size_t i = 0; i < sizeof secret_words / sizeof *secret_words; i++) {
            size_t wl = strlen(secret_words[i]);
            if (wl <= end && !memcmp(low + end - wl, secret_words[i], wl))
                return true;
        }
    }
    return false;
}

/* Where "pythonX.Y/" ends in path (the last such component), or NULL. */
static const char *after_python_dir(const char *path)
{
    const char *found = NULL;
    for (const char *p = strstr(path, "/python"); p; p = strstr(p + 1, "/python")) {
        const char *q = p + 7;
        if (!isdigit((unsigned char)*q))
            continue;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q++ != '.' || !isdigit((unsigned char)*q))
            continue;
        while (isdigit((unsigned char)*q))
            q++;
        while (isalpha((unsigned char)*q))   /* python3.13t, python3.6m */
            q++;
        if (*q == '/')
            found = q + 1;
    }
    return found;
}

static const char *after_last(const char *path, const char *marker)
{
    const char *found = NULL;
    for (const char *p = strstr(path, marker); p; p = strstr(p + 1, marker))
        found = p + strlen(marker);
    return found;
}

/* The part of path that names a module: after the last site-packages/, dist-packages/ or
 * pythonX.Y/ directory, or inside "<frozen NAME>"; NULL when there is no such marker. */
static const char *module_part(const char *path, size_t *len)
{
    if (!strncmp(path, "<frozen ", 8)) {
        const char *end = strchr(path + 8, '>');
        *len = end ? (size_t)(end - path - 8) : strlen(path + 8);
        return path + 8;
    }
    const char *best = after_python_dir(path);
    const char *m[] = {after_last(path, "/site-packages/"), after_last(path, "/dist-packages/")};
    for (size_t i = 0; i < 2; i++)
        if (m[i] && (!best || m[i] > best))
            best = m[i];
    if (best)
        *len = strlen(best);
    return best;
}

/* path[0..len) as a dotted name: without ".py", '/' -> '.', without a trailing ".__init__". */
static void dotted(const char *path, size_t len, char *out, size_t cap)
{
    if (len > 3 && !strncmp(path + len - 3, ".py", 3))
        len -= 3;
    if (len >= cap)
        len = cap - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = path[i] == '/' ? '.' : path[i];
    out[len] = '\0';
    size_t n = strlen(out);
    if (n > 9 && !strcmp(out + n - 9, ".__init__"))
        out[n - 9] = '\0';
}

void rules_module_of_file(const char *file, char *out, size_t cap)
{
    if (!cap)
        return;
    size_t len;
    const char *part = module_part(file, &len);
    if (!part) {
        const char *slash = strrchr(file, '/');
        part = slash ? slash + 1 : file;
        len = strlen(part);
        if (*part == '<')   /* <string>, <stdin>: no module */
            len = 0;
    }
    dotted(part, len, out, cap);
}

bool rules_is_stdlib(const char *file)
{
    if (!strncmp(file, "<frozen ", 8))
        return true;
    const char *rest = after_python_dir(file);
    if (!rest)
        return false;
    return !strstr(rest, "site-packages/") && !strstr(rest, "dist-packages/");
}

static bool match_text(const struct rules_matcher *m, const char *s)
{
    switch (m->how) {
    case RULES_GLOB: return fnmatch(m->pattern, s, 0) == 0;
    case RULES_REGEX: return regexec(&m->re, s, 0, NULL, 0) == 0;
    case RULES_LITERAL: return strcmp(m->pattern, s) == 0;
    case RULES_SECRET: return rules_is_secret_name(s);
    }
    return false;
}

/* A module glob "pkg.*" also names pkg itself (its __init__ or pkg.py). */
static bool match_module_name(const struct rules_matcher *m, const char *mod)
{
    if (!*mod)
        return false;
    if (match_text(m, mod))
        return true;
    size_t pl = strlen(m->pattern);
    return m->how == RULES_GLOB && pl > 2 && !strcmp(m->pattern + pl - 2, ".*") &&
           strlen(mod) == pl - 2 && !strncmp(mod, m->pattern, pl - 2);
}

/* Without a module name and a path with no site-packages/pythonX.Y marker, the module could be
 * any dotted suffix of the path (the script's directory is on sys.path): try each. */
static bool match_module(const struct rules_matcher *m, const char *module, const char *file)
{
    if (module)
        return match_module_name(m, module);
    char buf[4096];
    size_t len;
    const char *part = module_part(file, &len);
    if (part) {
        dotted(part, len, buf, sizeof buf);
        return match_module_name(m, buf);
    }
    if (*file == '<')
        return false;
    dotted(file, strlen(file), buf, sizeof buf);
    for (char *p = buf; p; p = strchr(p + 1, '.'))
        if (match_module_name(m, *p == '.' ? p + 1 : p))
            return true;
    return false;
}

/* A file glob or literal without '/' names the base name; with one, the whole path. */
static bool match_file(const struct rules_matcher *m, const char *file)
{
    if (m->how != RULES_REGEX && !strchr(m->pattern, '/')) {
        const char *slash = strrchr(file, '/');
        if (slash && match_text(m, slash + 1))
            return true;
    }
    return match_text(m, file);
}

/* The qualified name, or its last component ("Handler.get" is also "get"). */
static bool match_function(const struct rules_matcher *m, const char *function)
{
    if (match_text(m, function))
        return true;
    const char *dot = strrchr(function, '.');
    return dot && match_text(m, dot + 1);
}

bool rules_matcher_frame(const struct rules_matcher *m, const char *module, const char *file,
                         const char *function)
{
    switch (m->kind) {
    case RULES_SEL_MODULE: return match_module(m, module, file ? file : "");
    case RULES_SEL_FILE: return file && match_file(m, file);
    case RULES_SEL_FUNCTION: return function && match_function(m, function);
    case RULES_SEL_STDLIB: return file && rules_is_stdlib(file);
    default: return false;
    }
}

bool rules_matcher_value(const struct rules_matcher *m, bool is_arg, const char *name)
{
    if ((m->kind == RULES_SEL_LOCAL && is_arg) || (m->kind == RULES_SEL_ARG && !is_arg))
        return false;
    return match_text(m, name);
}
