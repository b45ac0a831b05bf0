/*
 * rules.h — filter and redaction rules (`--filter FILE`, PYTRACE_FILTER, docs/filters.md).
 *
 * A rule chain is an ordered list of `ACTION SELECTOR...` lines; for any question the LAST matching
 * rule wins. A built-in default chain is always first: it redacts values whose name looks secret
 * (password, token, api_key, ...), so a trace never holds them unless a later rule allows it.
 *
 *   Frame actions:  include | exclude | fold       (selectors module:, file:, function:, stdlib)
 *   Value actions:  allow | redact | drop          (selectors local:, arg:, value: = both, plus
 *                                                   optional module:/file:/function:/stdlib that
 *                                                   narrow it to frames they match)
 *   Matchers:       SELECTOR:PATTERN is a glob; SELECTOR:regex:RE (POSIX ERE, unanchored;
 *                   iregex: ignores case), SELECTOR:literal:S, SELECTOR:glob:G
 * Several selectors on one line must all match.
 *
 * exclude removes a frame (its callees attach to its caller, its self time goes to the caller).
 * fold collapses each run of consecutive folded frames into the run's outermost frame: the frames
 * a folded frame calls are hidden as long as they are folded too, and the first frame no fold
 * rule matches (user code called back from asyncio, say) is shown again. include undoes an
 * earlier exclude or fold for the frames it matches (the same "last rule wins" as everything
 * else): `fold stdlib` then `include module:json.*` keeps json's frames.
 *
 * Rules are parsed once (regexes compiled then); matching allocates nothing in pytrace (glibc's
 * regexec may allocate internally, so hot callers cache decisions: frames per function id).
 */
#ifndef PT_RULES_H
#define PT_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 * RULE_ALLOW (keep), RULE_REDACT (keep the name, hide the value) or RULE_DROP (omit it). Each
 * RULE_REDACT/RULE_DROP answer is counted for rules_get_counts() (the trailer's redacted and
 * dropped), so ask once per value written, and from one thread at a time. module may be NULL.
 * About 100 ns with the default chain alone (no regex); a regex rule adds a regexec. */
enum rule_action rules_value(const struct rules *r, bool is_arg, const char *name,
                             const char *module, const char *file, const char *function);

/* The dotted module name a file path most likely is ("/usr/lib/python3.11/json/decoder.py" ->
 * "json.decoder"): the part after site-packages/, dist-packages/ or lib/pythonX.Y/, without .py. */
void rules_module_of_file(const char *file, char *out, size_t cap);

/* Whether file is in the standard library: under an interpreter's lib/pythonX.Y/ but not in its
 * site-packages/ or dist-packages/, or a "<frozen NAME>" module. What `stdlib` selects. */
bool rules_is_stdlib(const char *file);

/* The built-in default's test: one of the secret words (RULES_DEFAULT_SECRET) occurs in name,
 * case-insensitively, followed by its end, '_' or '-'. */
bool rules_is_secret_name(const char *name);

/* The built-in default as the regex it is equivalent to (shown by rules_describe). */
#define RULES_DEFAULT_SECRET                                                                       \
    "^.*(password|passwd|passphrase|pwd|secret|token|api[_-]?key|auth|authorization|cookie|"      \
    "session|private[_-]?key|credentials?|access[_-]?key)([_-].*)?$"

/* Whether any rule is a frame rule (include/exclude/fold): without one every frame is kept. */
bool rules_has_frame_rules(const struct rules *r);

/* How many rules_value() calls answered RULE_REDACT and RULE_DROP (the trailer's counts). */
struct rules_counts {
    uint64_t redacted, dropped;
};
struct rules_counts rules_get_counts(const struct rules *r);

/* Parses one rule line (as in a file) and appends it; origin names it in errors and in
 * rules_describe ("--exclude", "rules.txt:4"). */
enum pt_status rules_add_line(struct rules *r, const char *line, const char *origin,
                              struct pt_err *err);

/* The chain as text, for the trace header: one rule per line, the defaults first, each followed
 * by "  # ORIGIN" (a valid rule file). Returns the length it needed (like snprintf). */
size_t rules_describe(const struct rules *r, char *out, size_t cap);

#endif
