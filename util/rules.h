/*
 * rules.h — filter and redaction rules (`--filter FILE`, PYTRACE_FILTER, docs/filters.md).
 *
 * A rule chain is an ordered list of `ACTION SELECTOR` lines; for any question the LAST matching
 * rule wins. A built-in default chain is always first: it redacts values whose name looks secret
 * (password, token, api_key, ...), so a trace never holds them unless a later rule allows it.
 *
 *   Frame actions:  include | exclude | fold       (selectors module:, file:, function:)
 *   Value actions:  allow | redact | drop          (selectors local:, arg:, value: = both)
 *   Matchers:       SELECTOR:PATTERN is a glob; SELECTOR:regex:RE (POSIX ERE), SELECTOR:literal:S
 *
 * exclude removes a frame (its children attach to its parent); fold hides everything the frame
 * calls (the frame is kept as a leaf). Rules are parsed once; matching allocates nothing.
 */
#ifndef PT_RULES_H
#define PT_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

enum rule_action {
    RULE_NONE = 0,      /* no rule matched: keep the frame / allow the value */
    RULE_INCLUDE,
    RULE_EXCLUDE,
    RULE_FOLD,
    RULE_ALLOW,
    RULE_REDACT,
    RULE_DROP,
};

struct rules;

/* A chain holding only the built-in defaults (plus stdlib folding when no_stdlib). */
enum pt_status rules_new(struct rules **out, bool no_stdlib, struct pt_err *err);
void rules_free(struct rules *r);

/* Appends every rule of a file; a bad line fails with "FILE:LINE: ..." and what is allowed. */
enum pt_status rules_load_file(struct rules *r, const char *path, struct pt_err *err);

/* Appends rules from text (one per line, '#' comments); origin names it in errors. */
enum pt_status rules_load_text(struct rules *r, const char *text, const char *origin,
                               struct pt_err *err);

/* What to do with a frame: RULE_NONE/RULE_INCLUDE (keep), RULE_EXCLUDE or RULE_FOLD. module may
 * be NULL (then it is derived from file with rules_module_of_file). */
enum rule_action rules_frame(const struct rules *r, const char *module, const char *file,
                             const char *function);

/* What to do with a local variable or argument called name in function/file: RULE_NONE or
 * RULE_ALLOW (keep), RULE_REDACT (keep the name, hide the value) or RULE_DROP (omit it). */
enum rule_action rules_value(const struct rules *r, bool is_arg, const char *name,
                             const char *module, const char *file, const char *function);

/* The dotted module name a file path most likely is ("/usr/lib/python3.11/json/decoder.py" ->
 * "json.decoder"): the part after site-packages/, dist-packages/ or lib/pythonX.Y/, without .py. */
void rules_module_of_file(const char *file, char *out, size_t cap);

/* The chain as text (one rule per line, the defaults first), for the trace header. */
size_t rules_describe(const struct rules *r, char *out, size_t cap);

#endif
