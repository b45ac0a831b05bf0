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
 */
#ifndef PT_CODE_H
#define PT_CODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attach/mem.h"
#include "readers/layout.h"
#include "readers/linetable.h"
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
    struct lt_range *lines;
    uint32_t nlines;
    bool bad_linetable;         /* the table was malformed: lines are firstlineno */
};

struct code_cache;

struct code_cache *code_cache_new(void);
void code_cache_free(struct code_cache *cc);

/* Starts a new validation epoch: entries are re-checked against the target on next use. */
void code_cache_tick(struct code_cache *cc);

/*
 * The decoded code object at addr, from cache or decoded now. types->code, when known, is checked
 * against the object's type. Returns NULL when the object cannot be read or is not a code object
 * (a torn read: the caller marks its sample bad).
 */
const struct py_code *code_cache_get(struct code_cache *cc, struct mem_src *mem,
                                     const struct py_layout *L, const struct py_types *types,
                                     uint64_t addr);

/* Source line of byte offset `off` in code: firstlineno when off < 0 or the table is empty, -1
 * when the table gives the offset no line (as CPython's PyCode_Addr2Line does). */
int32_t code_line(const struct py_code *code, int64_t off);

/* Number of live entries (for stats). */
size_t code_cache_size(const struct code_cache *cc);

#endif
