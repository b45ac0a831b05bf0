/*
 * loops.c — finding backward control edges in raw bytecode of any supported version, driven by
 * the per-version facts of opcodes.h. The bytecode comes from target memory: every length, opcode
 * and jump target is checked before use, and anything that is not plausible bytecode is reported,
 * never guessed at.
 */
#include "readers/loops.h"

#include <stdlib.h>
#include <string.h>

/* One decoded instruction: its opcode byte and base, full argument, and where the next starts. */
struct loops_insn {
    size_t off;          /* the instruction itself (after its EXTENDED_ARG prefixes) */
    size_t next;         /* the following instruction, past inline caches */
    uint8_t raw, base;
    uint32_t arg;
};

/* Instructions remembered before the current one (the 3.11 cleanup sequence is 5 long). */
#define LOOPS_HIST 4

struct loops_out {
    struct loop_jump *j;
    size_t cap, n;
};

static int loops_emit(struct loops_out *o, uint64_t src, uint64_t target)
{
    if (o->n == o->cap)
        return LOOPS_ENOSPC;
    o->j[o->n].src = (uint32_t)src;
    o->j[o->n].target = (uint32_t)target;
    o->j[o->n].reach = (uint32_t)target;
    o->n++;
    return LOOPS_OK;
}

/*
 * Decodes the instruction at off, consuming its EXTENDED_ARG prefixes. The argument is gathered in
 * 64 bits and refused past 32: CPython's arguments are C ints (at most 3 prefixes in wordcode, 1 in
 * 2.7), so a longer chain is garbage, not a huge jump.
 */
static int loops_decode(const struct py_opcodes *ops, const uint8_t *code, size_t len, size_t off,
                        struct loops_insn *in)
{
    uint64_t ext = 0;
    for (;;) {
        uint8_t raw = code[off];
        uint8_t fl = ops->flags[raw];
        if (!(fl & OPC_KNOWN))
            return LOOPS_EBADCODE;
        if (fl & OPC_HIDDEN)
            return LOOPS_EHIDDEN;
        size_t size;
        uint64_t arg;
        if (ops->encoding == OPC_ENC_BYTES27) {
            if (raw >= ops->have_argument) {
                if (len - off < 3)
                    return LOOPS_EBADCODE;
                arg = (uint64_t)code[off + 1] | (uint64_t)code[off + 2] << 8;
                size = 3;
            } else {
                arg = 0;
                size = 1;
            }
            arg |= ext << 16;
        } else {
            if (len - off < 2)
                return LOOPS_EBADCODE;
            arg = code[off + 1] | ext << 8;
            size = 2;
        }
        if (arg > UINT32_MAX)
            return LOOPS_EBADCODE;
        uint8_t base = ops->deopt[raw];
        if (base == ops->extended_arg) {
            ext = arg;
            off += size;
            if (off >= len)
                return LOOPS_EBADCODE;   /* a prefix with nothing to prefix */
            continue;
        }
        size_t caches = (size_t)ops->cache_entries[raw] * 2;
        if (len - off - size < caches)
            return LOOPS_EBADCODE;
        in->off = off;
        in->next = off + size + caches;
        in->raw = raw;
        in->base = base;
        in->arg = (uint32_t)arg;
        return LOOPS_OK;
    }
}

/* The jump target of a jumping instruction, or -1 when it does not jump; -2 when out of range. */
static int64_t loops_target(const struct py_opcodes *ops, const struct loops_insn *in, size_t len)
{
    uint8_t fl = ops->flags[in->raw];
    int64_t delta = (int64_t)in->arg * ops->jump_unit;
    int64_t t;
    if (fl & OPC_JUMP_ABS)
        t = delta;
    else if (fl & OPC_JUMP_REL_FWD)
        t = (int64_t)in->next + delta;
    else if (fl & OPC_JUMP_REL_BACK)
        t = (int64_t)in->next - delta;
    else
        return -1;
    return t >= 0 && t < (int64_t)len ? t : -2;
}

/* 3.11: does `in` end the cleanup sequence of opcodes.h, hist[0] being the instruction just
 * before it, hist[3] the sequence's first? Each must follow the previous with no prefix between. */
static bool loops_is_cleanup(const struct py_opcodes *ops, const struct loops_insn *in,
                             const struct loops_insn hist[LOOPS_HIST])
{
    if (!ops->exc_cleanup || in->base != ops->cleanup_op[4] || in->arg != ops->cleanup_arg[4])
        return false;
    size_t at = in->off;
    for (int i = 0; i < LOOPS_HIST; i++) {
        if (hist[i].next != at || hist[i].base != ops->cleanup_op[3 - i] ||
            hist[i].arg != ops->cleanup_arg[3 - i])
            return false;
        at = hist[i].off;
    }
    return true;
}

/* The backward edges one instruction contributes. */
static int loops_edges(const struct py_opcodes *ops, const struct loops_insn *in,
                       const struct loops_insn hist[LOOPS_HIST], size_t len, struct loops_out *o)
{
    uint8_t fl = ops->flags[in->raw];
    int64_t t = loops_target(ops, in, len);
    int rc = LOOPS_OK;
    if (t == -2)
        return LOOPS_EBADCODE;
    if (fl & OPC_DEFERRED) {
        if (t >= 0 && (uint64_t)t <= in->off)
            rc = loops_emit(o, len, (uint64_t)t);
    } else if (t >= 0 && (uint64_t)t <= in->off) {
        rc = loops_emit(o, in->off, (uint64_t)t);
    }
    if (rc == LOOPS_OK && (fl & OPC_FINALLY_CALL) && in->next < len)
        rc = loops_emit(o, len, in->next);
    if (rc == LOOPS_OK && (fl & OPC_REWINDS) && in->off >= 2)
        rc = loops_emit(o, in->off, in->off - 2);
    if (rc == LOOPS_OK && loops_is_cleanup(ops, in, hist))
        rc = loops_emit(o, hist[0].off, hist[3].off);
    return rc;
}

int loops_scan(const struct py_opcodes *ops, const uint8_t *code, size_t len,
               struct loop_jump *out, size_t cap, size_t *n)
{
    struct loops_out o = {out, cap, 0};
    struct loops_insn hist[LOOPS_HIST];
    *n = 0;
    if (!ops || !code || len == 0 || len > LOOPS_CODE_MAX)
        return LOOPS_EBADCODE;
    if (ops->encoding == OPC_ENC_WORDS && len % 2)
        return LOOPS_EBADCODE;
    memset(hist, 0xff, sizeof hist);   /* no instruction before the first */
    size_t off = 0;
    while (off < len) {
        struct loops_insn in;
        int rc = loops_decode(ops, code, len, off, &in);
        if (rc == LOOPS_OK)
            rc = loops_edges(ops, &in, hist, len, &o);
        if (rc != LOOPS_OK)
            return rc;
        if (ops->exc_cleanup) {   /* only 3.11 needs the instructions before */
            memmove(hist + 1, hist, (LOOPS_HIST - 1) * sizeof *hist);
            hist[0] = in;
        }
        off = in.next;
    }
    *n = loops_prepare(out, o.n);
    return LOOPS_OK;
}

static int loops_cmp(const void *a, const void *b)
{
    const struct loop_jump *x = a, *y = b;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    return x->target < y->target ? -1 : x->target > y->target;
}

size_t loops_prepare(struct loop_jump *j, size_t n)
{
    if (n > 1)
        qsort(j, n, sizeof *j, loops_cmp);
    /* Several CONTINUE_LOOPs of one loop give the same deferred edge. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || j[i].src != j[m - 1].src || j[i].target != j[m - 1].target)
            j[m++] = j[i];
    uint32_t low = UINT32_MAX;
    for (size_t i = m; i-- > 0;) {
        if (j[i].target < low)
            low = j[i].target;
        j[i].reach = low;
    }
    return m;
}

/* Index of the first edge with src >= at, or n. */
static size_t loops_first_from(const struct loop_jump *j, size_t n, uint32_t at)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j[mid].src < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool loops_may_go_back(const struct loop_jump *j, size_t n, uint32_t from, uint32_t to)
{
    if (to >= from)
        return true;
    /* The lowest offset reachable so far strictly falls at every step, so this ends. */
    uint32_t low = from;
    for (;;) {
        size_t i = loops_first_from(j, n, low);
        if (i == n || j[i].reach >= low)
            return false;
        low = j[i].reach;
        if (low <= to)
            return true;
    }
}
