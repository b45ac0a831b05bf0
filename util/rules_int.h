/*
 * rules_int.h — what util/rules.c (the chain and its parser) and util/rules_match.c (matching one
 * selector) share. Not part of the API: callers use util/rules.h.
 */
#ifndef PT_RULES_INT_H
#define PT_RULES_INT_H

#include <regex.h>
#include <stdbool.h>

#include "util/rules.h"

enum rules_sel {
    RULES_SEL_MODULE,       /* frame: dotted module name (derived from the file) */
    RULES_SEL_FILE,         /* frame: co_filename */
    RULES_SEL_FUNCTION,     /* frame: qualified name or its last component */
    RULES_SEL_STDLIB,       /* frame: a standard-library file (no pattern) */
    RULES_SEL_LOCAL,        /* value: a local variable that is not an argument */
    RULES_SEL_ARG,          /* value: an argument */
    RULES_SEL_VALUE,        /* value: either */
};

enum rules_how {
    RULES_GLOB,
    RULES_REGEX,            /* POSIX ERE, unanchored (regexec), compiled once */
    RULES_LITERAL,
    RULES_SECRET,           /* the built-in secret-name test (same as RULES_DEFAULT_SECRET) */
};

struct rules_matcher {
    enum rules_sel kind;
    enum rules_how how;
    char *pattern;          /* glob or literal text, or the regex source */
    regex_t re;             /* RULES_REGEX only */
};

bool rules_matcher_frame(const struct rules_matcher *m, const char *module, const char *file,
                         const char *function);
bool rules_matcher_value(const struct rules_matcher *m, bool is_arg, const char *name);

#endif
