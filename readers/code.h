/*
 * code.h — decoded code objects, cached by address.
 *
 * Decoding a code object (name, qualname, file, first line, line table) costs several reads; a
 * sampler sees the same few hundred code objects again and again, so each is decoded once and
 * kept in an open-addressing table keyed by its address. Addresses get reused after a code object
 * dies, so an entry also keeps a fingerprint (the name/filename/linetable pointers and first line
 * read from the object) that code_cache_get() re-checks when the entry is older than the cache's
 * current epoch; the caller advances the epoch (code_cache_tick) as often as it can afford a
 * re-read, e.g. every 100 ms while recording, and every call for a one-shot dump.
 *
 * Decoding also scans the bytecode for backward control edges (loops.h), so that the timeline can
 * ask code_may_go_back() whether a frame's offset moving back is possible within one call. That
 * part is best effort: bytecode that cannot be read or understood leaves loops_known false, never
 * fails the code object.
 */
#ifndef PT_CODE_H
#define PT_CODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attach/mem.h"
#include "readers/layout.h"
#include "readers/linetable.h"
#include "readers/loops.h"
#include "readers/pyobj.h"

struct py_code {
    uint64_t addr;
    uint64_t fp[4];             /* fingerprint: name, filename, linetable pointers, firstlineno */
    uint32_t epoch;             /* cache epoch when last validated */
    uint32_t id;                /* dense id, stable while the entry lives (for interning) */
    char *name;
    char *qualname;             /* == name before 3.11 */
    char *filename;
    int32_t firstlineno;
    int32_t argcount;           /* co_argcount (+posonly/kwonly are folded in by the readers) */
    int32_t nlocals;
    bool generator;             /* a generator's, coroutine's or async generator's code: its frame
                                   is linked to a caller only while it runs */
    bool trampoline;            /* 3.12+'s "<interpreter trampoline>", the code of C-stack entry
                                   frames (never a Python frame of its own) */
    bool body;                  /* not a function's (no CO_OPTIMIZED): a module's or class's body,
                                   exec'd or eval'd code */
    uint64_t frame;             /* the frame that last asked for it (code_cache_get) */
    struct lt_range *lines;
    uint32_t nlines;
    bool bad_linetable;         /* the table was malformed: lines are firstlineno */
    bool loops_known;           /* loops holds every backward edge; false: bytecode unreadable,
                                   hidden (instrumented, executor) or of a version without opcode
                                   facts (3.14+), and any move back is taken as possible */
    uint32_t nloops;
    struct loop_jump *loops;    /* backward edges by src (loops.h); NULL when none or unknown */
    struct py_varnames *vars;   /* names of the frame's local slots, decoded on first need by
                                   readers/locals.c (one malloc'd block, freed with the entry) */
    bool vars_failed;           /* decoding them failed: not retried until the entry is re-read */
};

/* co_flags: CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR, the same bits 3.6–3.14 (2.7 has
 * only the first, and leaves the other two unused); CO_OPTIMIZED, a function's, 2.7–3.14. */
#define PY_CO_GENERATOR_FLAGS 0x2a0
#define PY_CO_OPTIMIZED 0x1

struct code_cache;

struct code_cache *code_cache_new(void);
void code_cache_free(struct code_cache *cc);

/* The current validation epoch (a decoded entry is trusted within the epoch it was checked in). */
uint32_t code_cache_epoch(const struct code_cache *cc);

/* Starts a new validation epoch: entries are re-checked against the target on next use. */
void code_cache_tick(struct code_cache *cc);

/* code_cache_tick(), then the entries checked in the epoch that ends (the code objects of the
 * stacks sampled lately: up to 64) are re-checked at once, in one read of their heads, instead of
 * one read each on next use. A sampler's tick: a deep stack's few dozen code objects cost one
 * syscall every 100 ms, not one each. */
void code_cache_recheck(struct code_cache *cc, struct mem_src *mem, const struct py_layout *L,
                        const struct py_types *types);

/*
 * The decoded code object at addr, from cache or decoded now, for the frame at `frame` (0:
 * unknown). types->code, when known, is checked against the object's type. Returns NULL when the
 * object cannot be read or is not a code object (a torn read: the caller marks its sample bad).
 * A body's code (a module's, at start-up) runs in one frame and is freed as it ends, and its
 * address is soon another code object's: an entry of a body's code asked for by another frame
 * is re-checked whatever its epoch (a function's is trusted for the epoch).
 */
const struct py_code *code_cache_get(struct code_cache *cc, struct mem_src *mem,
                                     const struct py_layout *L, const struct py_types *types,
                                     uint64_t addr, uint64_t frame);

/* Source line of byte offset `off` in code: firstlineno when off < 0 or the table is empty, -1
 * when the table gives the offset no line (as CPython's PyCode_Addr2Line does). */
int32_t code_line(const struct py_code *code, int64_t off);

/*
 * Could one call of code move its frame from byte offset `from` back to `to`? True when it could
 * (a loop spans them), when `to` is not before `from`, and whenever unsure (code NULL, loops not
 * known, an offset negative); false only when no backward edge of the code allows it, which means
 * the frame now holds a new call. Allocates nothing.
 */
bool code_may_go_back(const struct py_code *code, int32_t from, int32_t to);

/* Number of live entries (for stats). */
size_t code_cache_size(const struct code_cache *cc);

#endif
