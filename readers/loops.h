/*
 * loops.h — a code object's backward control edges, and what they allow a frame's offset to do.
 *
 * Within one call, a frame's instruction offset only moves forward, except through a backward edge:
 * a backward jump (a loop), or one of the few non-jump ways CPython returns to an earlier offset
 * (see loops_scan). So if a frame's offset went from p back to q < p and no chain of backward edges
 * reachable from p lands at or before q, the frame holds a new call of the same code
 * (docs/timing.md). loops_scan finds the edges in raw bytecode once per code object (code.c keeps
 * them); loops_may_go_back answers the question without allocating, on the sampling path.
 *
 * Offsets are bytes from the start of the bytecode, as frames report them (3.10 f_lasti × 2).
 */
#ifndef PT_LOOPS_H
#define PT_LOOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readers/opcodes.h"

/* Longest bytecode loops_scan accepts (CPython's own limit on jump arguments is far larger, but
 * no sane function comes close). */
#define LOOPS_CODE_MAX (1u << 24)

struct loop_jump {
    uint32_t src;       /* byte offset of the jump (not of its EXTENDED_ARG prefixes); the code
                           length for an edge taken from wherever a finally block ends */
    uint32_t target;    /* byte offset it lands on; target <= src */
    uint32_t reach;     /* lowest target of this and every later edge (filled by loops_prepare) */
};

enum loops_status {
    LOOPS_OK = 0,
    LOOPS_EHIDDEN = -1,   /* an instruction hides the real one (ENTER_EXECUTOR, INSTRUMENTED_LINE,
                             INSTRUMENTED_INSTRUCTION): edges unknown */
    LOOPS_EBADCODE = -2,  /* not bytecode of this version: unknown opcode, truncated instruction or
                             caches, dangling EXTENDED_ARG, jump target outside the code */
    LOOPS_ENOSPC = -3,    /* more than cap edges */
};

/*
 * Scans len bytes of bytecode for every backward edge, into out (cap entries), sorted by src,
 * without duplicates and prepared for loops_may_go_back; *n is the count. Edges are:
 *   - jumps whose target is at or before the jump: absolute jumps back (≤3.10), the JUMP_BACKWARD
 *     family (3.11+);
 *   - CONTINUE_LOOP (2.7–3.7) as {code length, target}, and CALL_FINALLY (3.8) as {code length,
 *     next instruction}: both are completed from the end of a finally block;
 *   - YIELD_FROM (3.6–3.10) as {itself, one unit before}: a waiting frame points there;
 *   - 3.11's backward exception edges, {the POP_TOP of COPY 3; POP_EXCEPT; RERAISE 1; POP_TOP;
 *     POP_EXCEPT, its COPY}.
 * Exception handlers of 2.7–3.10 (SETUP_*) and 3.12+ (exception table) lie after what they protect,
 * so they need no edge (3.9/3.10 block stacks and 3.11–3.13 exception tables checked over the whole
 * stdlib; 2.7–3.13 also by tracing). Inline caches (3.11+) are skipped, never decoded. Never reads
 * past code[len - 1]. Returns a loops_status; *n and out are meaningful only with LOOPS_OK.
 *
 * Not modelled: RERAISE with a nonzero argument (3.10+) restores the frame's offset to where the
 * exception being re-raised came from, for the traceback, until the frame reaches its next handler
 * or is popped. That offset can precede the handler; a sampler sees it only while something runs
 * in that window (a tracer's or profiler's unwind callback, a __del__ while the stack is cleared),
 * and the frame is then on its way out: at worst a call's last sample becomes a one-sample call.
 * Modelling it needs the exception table (3.11+), which the layout does not carry.
 */
int loops_scan(const struct py_opcodes *ops, const uint8_t *code, size_t len,
               struct loop_jump *out, size_t cap, size_t *n);

/* Sorts n edges by src, drops duplicates and fills their reach; returns how many remain.
 * loops_scan does it; callers that build edge lists by hand must. */
size_t loops_prepare(struct loop_jump *j, size_t n);

/*
 * Could one call move from offset `from` to offset `to`? True when to >= from (moving forward
 * needs no edge), else when the edges reachable from `from` — any with src >= from, then any with
 * src >= the lowest target reached so far, and so on — land at or before `to`. j must be prepared.
 */
bool loops_may_go_back(const struct loop_jump *j, size_t n, uint32_t from, uint32_t to);

#endif
