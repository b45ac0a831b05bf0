/*
 * config.h — pytrace's recording configuration (docs/config.md): `key = value` files, PYTRACE_<KEY>
 * environment variables and the command line, remembering where each value came from.
 *
 * Sources, lowest precedence first: /etc/pytrace.conf, $XDG_CONFIG_HOME/pytrace.conf (default
 * ~/.config/pytrace.conf), `--config FILE`, the environment, the command line. A later source
 * replaces a key's value; within one file a later line does. Files and the environment are
 * checked here (unknown key, bad value: PT_EUSAGE naming FILE:LINE or the variable); command-line
 * values were checked by the option parser and are only noted, for `pytrace config`.
 */
#ifndef PT_CONFIG_H
#define PT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum config_src {
    CONFIG_SRC_DEFAULT = 0,
    CONFIG_SRC_FILE,
    CONFIG_SRC_ENV,
    CONFIG_SRC_CLI,
};

enum config_kind {
    CONFIG_STR,        /* any text */
    CONFIG_BOOL,       /* 1/0, true/false, yes/no, on/off */
    CONFIG_HZ,         /* a number in (0, 1000000] */
    CONFIG_SECONDS,    /* a positive number */
    CONFIG_FRACTION,   /* a number in [0, 0.5] */
    CONFIG_SIZE,       /* bytes with an optional K, M or G suffix, > 0 */
    CONFIG_LIST,       /* colon-separated items (files, thread specs) */
};

/* A known key: its name in files ("max_size"), as a variable (PYTRACE_MAX_SIZE) and as an option
 * ("--max-size"), its kind, and what applies when no source sets it. */
struct config_key {
    const char *key;
    enum config_kind kind;
    const char *fallback;   /* shown by `pytrace config` for unset keys */
};

extern const struct config_key config_keys[];
extern const size_t config_n_keys;

struct config;

struct config *config_new(void);   /* NULL when out of memory */
void config_free(struct config *c);

/* key = value lines, '#' comments; origin names the text in errors ("FILE" -> "FILE:LINE"). */
enum pt_status config_load_text(struct config *c, const char *text, const char *origin,
                                 struct pt_err *err);

/* A missing file is fine unless must_exist (then PT_EUSAGE "cannot read FILE: ..."). */
enum pt_status config_load_file(struct config *c, const char *path, bool must_exist,
                                struct pt_err *err);

/* PYTRACE_<KEY> for every known key. */
enum pt_status config_load_env(struct config *c, struct pt_err *err);

/* The standard files, then extra_file (--config; may be NULL), then the environment. */
enum pt_status config_load_all(struct config *c, const char *extra_file, struct pt_err *err);

/* Sets key from a source. CONFIG_SRC_CLI is not validated, and a repeated command-line key
 * (--filter a --filter b) is joined with ':'. origin: "FILE:LINE", "env PYTRACE_X", ... */
enum pt_status config_set(struct config *c, const char *key, const char *value,
                          enum config_src src, const char *origin, struct pt_err *err);

/* The value of key (NULL when unset) and, if asked, its source and origin text. */
const char *config_get(const struct config *c, const char *key, enum config_src *src,
                       const char **origin);

const struct config_key *config_find_key(const char *key);
bool config_parse_bool(const char *s, bool *out);
int config_parse_size(const char *s, uint64_t *out);   /* 0 ok, -1 bad */

#endif
