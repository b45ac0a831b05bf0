/*
 * locals.h — a frame's arguments and local variables, by name, with bounded renderings of their
 * values (`pytrace dump --locals`, `--locals` when recording).
 *
 * Names come from the frame's code object (co_varnames + co_cellvars + co_freevars up to 3.10,
 * co_localsplusnames and co_localspluskinds from 3.11) and are decoded once per code object (kept
 * on its code-cache entry). Values are the frame's local slots (f_localsplus / localsplus), read in
 * one read together with the frame's code pointer: when that pointer no longer names the code the
 * walk saw, the frame has been reused and nothing is reported. Cell and free variables are
 * dereferenced; unbound locals (an empty slot or cell) are left out, as locals() does; 3.12+
 * hidden slots (inlined comprehensions) too. The first argcount + kwonlyargcount (+ *args,
 * **kwargs) slots are the arguments.
 *
 * Every name is checked against the rule chain (util/rules.h) before its value is read: RULE_REDACT
 * keeps the name with the value "<redacted>", RULE_DROP leaves the variable out; both are counted.
 * Values render as pyrepr.h describes; one that cannot be read is "<unreadable>".
 */
#ifndef PT_LOCALS_H
#define PT_LOCALS_H

#include <stdbool.h>
#include <stdint.h>

#include "readers/walk.h"
#include "util/rules.h"

#define PY_LOCALS_MAX 64            /* variables reported per frame; more set `truncated` */
#define PY_LOCALS_SLOTS 256         /* local slots looked at per frame */
#define PY_LOCALS_NAME 64           /* bytes kept of a variable's name */
#define PY_LOCALS_VALUE 256         /* bytes of one value's rendering */
#define PY_LOCALS_TEXT 16384        /* bytes of names and values per frame */

struct py_local {
    const char *name;               /* points into py_locals.text */
    const char *value;              /* "<redacted>" when redacted */
    bool arg;                       /* an argument (positional, keyword-only, *args, **kwargs) */
    bool redacted;
};

/* Caller-owned (about 18 KiB); py_locals_read() overwrites it entirely. */
struct py_locals {
    uint32_t n;
    uint32_t redacted, dropped;     /* variables redacted / dropped by rules in this frame */
    bool truncated;                 /* more variables than PY_LOCALS_MAX (or text full) */
    struct py_local items[PY_LOCALS_MAX];
    uint32_t used;
    char text[PY_LOCALS_TEXT];
};

/* The names of a code object's local slots (readers/code.h keeps one per entry). */
struct py_varnames {
    uint32_t n;                     /* slots described (at most PY_LOCALS_SLOTS) */
    uint32_t nlocals;               /* ≤3.10: slots before the cell variables */
    uint32_t nargs;                 /* the first nargs slots are arguments */
    uint8_t *kinds;                 /* per slot: PY_VAR_* bits */
    char (*names)[PY_LOCALS_NAME];
};

enum {
    PY_VAR_LOCAL = 0x20, PY_VAR_CELL = 0x40, PY_VAR_FREE = 0x80,   /* CPython's CO_FAST_* bits */
    PY_VAR_HIDDEN = 0x10,
};

/*
 * Reads frame f of thread t (from a walk of p just done; t may be NULL) into out, asking rules
 * about each name (rules may be NULL: nothing is redacted). The values are read while the target
 * runs, so the frame is read again afterwards: its code and slots must be unchanged and (3.11+)
 * it must still be on t's data stack, else the whole read is retried (3 times at most). Returns
 * PT_OK (some values may be "<unreadable>"), or PT_EFAIL when the frame or its code's names
 * cannot be read, the frame runs other code now or kept changing (out->n is then 0).
 */
enum pt_status py_locals_read(struct py_proc *p, const struct py_thread *t, const struct py_frame *f,
                              const struct rules *rules, struct py_locals *out, struct pt_err *err);

/* The names of code's local slots, decoded now or from the cache entry; NULL when unreadable. */
const struct py_varnames *py_varnames_of(struct py_proc *p, const struct py_code *code);

#endif
