/*
 * linetable.h — line-number tables of code objects, decoded without the interpreter.
 *
 * Each CPython generation stores "which source line does bytecode offset X belong to" differently
 * (see enum py_linetable_kind in layout.h). lt_decode() turns any of them into one sorted array of
 * byte-offset ranges, so that a sampler can decode a code object's table once, cache the ranges and
 * answer every later sample with a binary search (lt_line_at()).
 *
 * Input tables come from target memory and are untrusted: decoding never reads past `len`, never
 * writes past `cap`, and stops (returning what it has, with *truncated set) on a malformed entry.
 */
#ifndef PT_LINETABLE_H
#define PT_LINETABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readers/layout.h"

/* Bytecode bytes [start, end) belong to source line `line` (-1: no line, e.g. 3.10's -128). */
struct lt_range {
    uint32_t start;
    uint32_t end;
    int32_t line;
};

/*
 * Decodes `tab` (len bytes) of the given kind for a code object whose co_firstlineno is
 * `firstlineno`. Writes at most `cap` ranges to out, sets *n to the number written. Offsets are in
 * BYTES of bytecode for every kind (3.11+ code units are converted ×2). Ranges are ascending and do
 * not overlap. Returns 0; -1 if the table is malformed (out still holds the ranges before the fault)
 * or did not fit in cap.
 */
int lt_decode(enum py_linetable_kind kind, const uint8_t *tab, size_t len, int firstlineno,
              struct lt_range *out, size_t cap, size_t *n);

/* Line of the instruction at byte offset `off`, or -1 when no range covers it. */
int32_t lt_line_at(const struct lt_range *r, size_t n, uint32_t off);

/* One-shot convenience: decode and look up. Returns firstlineno when no range covers off. */
int32_t lt_addr2line(enum py_linetable_kind kind, const uint8_t *tab, size_t len, int firstlineno,
                     uint32_t off);

#endif
