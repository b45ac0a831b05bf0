/*
 * stack.h — inside the readers: one thread's stack, and what walk.c, stack.c, stackcheck.c,
 * prevstack.c and datastack.c share. Not an API: walk.c walks interpreters and thread lists and
 * calls stack_read_thread() / stack_walk() for each thread; stack.c holds the two frame walkers
 * (frame objects up to 3.10, interpreter frames from 3.11); stackcheck.c whether a walk saw one
 * instant; prevstack.c what is kept of each thread's last walk and when its callers may be
 * reused; datastack.c the 3.11+ data-stack copy and the guarded read.
 */
#ifndef PT_STACK_H
#define PT_STACK_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "readers/walk.h"

/* Brent cycle detector over addresses. */
struct cycle {
    uint64_t tortoise;
    uint32_t power, lam;
};

static inline void cycle_init(struct cycle *c, uint64_t start)
{
    c->tortoise = start;
    c->power = c->lam = 1;
}

/* Returns true when `next` closes a cycle. */
static inline bool cycle_step(struct cycle *c, uint64_t next)
{
    if (next == c->tortoise)
        return true;
    if (c->power == c->lam) {
        c->tortoise = next;
        c->power *= 2;
        c->lam = 0;
    }
    c->lam++;
    return false;
}

static inline uint64_t u64_at(const uint8_t *b, int32_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

static inline int32_t i32_at(const uint8_t *b, int32_t off)
{
    int32_t v;
    memcpy(&v, b + off, 4);
    return v;
}

/* Copies of target memory taken earlier in this walk (3.11+: the thread's used data stack, and
 * the older chunk below it when the stack spans two). */
struct window {
    uint64_t base;
    uint64_t len;
    const uint8_t *bytes;
    uint32_t misses;        /* Python frames that had to be read outside the copy */
    bool last_miss;         /* the last frame read was outside it */
    uint64_t base2, len2;   /* the older chunk's copy, len2 0 when none */
    const uint8_t *bytes2;
    /* The first frame in the copy that the walk reached from one outside it (a generator's
     * caller), with its code and instruction words as the copy had them; junction 0: none. */
    uint64_t junction, j_code, j_instr;
};

static inline const uint8_t *region_at(uint64_t base, uint64_t rlen, const uint8_t *bytes, uint64_t addr,
                                size_t len)
{
    if (!bytes || addr < base || addr - base > rlen || len > rlen - (addr - base))
        return NULL;
    return bytes + (addr - base);
}

/* Where the window holds all of [addr, addr + len), or NULL. */
static inline const uint8_t *window_at(const struct window *w, uint64_t addr, size_t len)
{
    if (!w)
        return NULL;
    const uint8_t *at = region_at(w->base, w->len, w->bytes, addr, len);
    return at ? at : region_at(w->base2, w->len2, w->bytes2, addr, len);
}

/* Copies [addr, addr + len) from the window when it holds all of it. */
static inline bool from_window(const struct window *w, uint64_t addr, void *buf, size_t len)
{
    const uint8_t *at = window_at(w, addr, len);
    if (at)
        memcpy(buf, at, len);
    return at != NULL;
}

#define COPY_KEEP_NS 2000000ULL   /* how long a data-stack copy stays longer than the stack needs, */
#define COPY_KEEP_ROUNDS 8        /* and for at least this many walks (stack_remember_data) */

/* 3.11+ data stack (datastack.c): copies the thread's current chunk up to its top into p->stackbuf
 * (the slow path: after the frame pointer, in time order), and remembers where the chunk (and the
 * older one below it) are, for the next sample's guarded read. */
void stack_copy_data(struct py_proc *p, const uint8_t *ts, struct window *w);
void stack_copy_older(struct py_proc *p, uint64_t tstate, struct window *w);
void stack_remember_data(struct py_proc *p, uint64_t tstate, const uint8_t *ts,
                         const struct window *w);

/*
 * 3.11+: what stack_read_thread() fetched together with the thread state — the frame its cframe points
 * at (3.11-3.12) and the data stack — at the addresses the previous sample left.
 */
struct fast_read {
    bool ok;
    uint64_t cf_frame;
    uint64_t sc0;            /* mem_syscalls() before the thread state was read */
    const uint8_t *stack;    /* the data-stack copy (p->stackbuf) */
    uint64_t guard;          /* the frame pointer read again after the copy */
    /* 3.11–3.12: other cframes both were also read through (0: none) */
    uint64_t cframe_alt[PY_CFRAME_ALTS], cf_alt[PY_CFRAME_ALTS], guard_alt[PY_CFRAME_ALTS];
    uint64_t old_base;       /* the older chunk's copy (old_len 0: none), read before the stack */
    uint32_t old_len;
    const uint8_t *old_stack;
    int retries_left;        /* set by the caller: re-reads it will still make if this is torn */
    bool reseeked;           /* stack_reseek() ran for this sample (once is enough) */
    int refetches_left;      /* frame objects: whole-plan re-reads this sample may still make */
    bool refetched;          /* one was made: walk the thread again from the newer copy */
    /* Frame objects: the thread state's frame pointer and recursion depth, read after the whole
     * copy by the last re-read (stack_refetch), when fo_guarded. */
    bool fo_guarded;
    uint64_t fo_guard_frame;
    int32_t fo_guard_depth;
};

/* Frame objects: reads the round's plan again (mem_round_refetch) and, last in the same syscall,
 * thread tstate's frame pointer and recursion depth (fr->fo_guarded). 0, or -1 as
 * mem_round_refetch. */
int stack_refetch(struct py_proc *p, uint64_t tstate, struct fast_read *fr);

/* Frame objects: a walk of the copy stack_refetch() made turned out torn. If the thread's top
 * frame read after the copy differs, the thread state in ts takes it (and its depth) and the
 * thread is walked again from the same copy: a thread that only returned while it was copied has
 * its new top's callers intact in it (they did not change). Returns whether it walked again. */
bool stack_walk_from_guard(struct py_proc *p, struct py_snapshot *s, struct py_thread *t,
                           uint8_t *ts, size_t need, struct fast_read *fr);

/* Before a round: stages the guarded read of thread tstate (3.11+, where the previous walk
 * found its stack) into the round's prefetch syscall; stack_read_thread() then uses it. */
void stack_stage(struct py_proc *p, uint64_t tstate, size_t need);

/* ---- whether a walk saw one instant (stackcheck.c) ------------------------------------------ */

/* Top frame of a thread state whose bytes are in ts (3.11–3.12: through its cframe, one read). */
int stack_top_frame(struct py_proc *p, const uint8_t *ts, uint64_t *frame);
/* The thread's top frame read afresh (one syscall; cframe_seen: the cframe the walk went by). */
int stack_read_top(struct py_proc *p, uint64_t tstate, uint64_t cframe_seen, uint64_t *frame);
/* The top now is a frame this walk recorded, or its caller is (the thread only returned). */
bool stack_still_below(struct py_proc *p, const struct py_snapshot *s, const struct py_thread *t,
                       uint64_t top);
/* The frame pointers before (frame) and after (guard) the copy are one call apart in it. */
bool stack_one_call_apart(const struct py_layout *L, const struct window *w, uint64_t frame,
                          uint64_t guard);
/* One of them is outside the copy (a generator's or coroutine's frame, on the heap). */
bool stack_heap_top(const struct window *w, uint64_t frame, uint64_t guard);
/* After a walk that read frames outside the copy: the top is still frame, and the junction frame
 * (struct window) still runs what the copy showed; one syscall. */
bool stack_recheck_holds(struct py_proc *p, const struct py_thread *t, uint64_t cframe,
                         uint64_t frame, const struct window *w);

/* ---- the previous walk's stack of each thread (prevstack.c) ---------------------------------- */

/* recursion_depth moves by one around a call without the frame count (it is raised before the
 * frame becomes the thread's, and a C type's call holds a level while it runs): differences up
 * to this are not a sign of a torn walk. */
#define SURPLUS_SLACK 1

static inline uint32_t index_slot(uint64_t addr, uint32_t mask)
{
    return (uint32_t)((addr * 0x9e3779b97f4a7c15ULL) >> 40) & mask;
}

/* Position of the frame at addr in the previous stack, or -1: one probe or two, where a scan of
 * the whole stack for every frame walked was a third of a 55-frame sample's instructions. */
static inline int64_t prev_position(const struct py_prev_stack *ps, uint64_t addr)
{
    if (!ps->index || !ps->n)
        return -1;
    uint32_t mask = 2 * ps->cap - 1;
    for (uint32_t h = index_slot(addr, mask);; h = (h + 1) & mask) {
        uint32_t v = ps->index[h];
        if (!v)
            return -1;
        if (ps->frames[v - 1].addr == addr)
            return v - 1;
    }
}

/* Keeps this walk's stack of t (and each frame's caller, backs) for the next walk; depth is the
 * thread state's recursion_depth read with it (≤ 0: unknown). */
void stack_remember(struct py_proc *p, const struct py_snapshot *s, const struct py_thread *t,
                    const uint64_t *backs, int32_t depth);

/* Whether the callers of the current walk's last frame can be the previous walk's below its
 * frame j, by the recursion counts (frame objects are recycled one level off). */
bool stack_reuse_fits(const struct py_prev_stack *ps, uint32_t j, const struct py_thread *t,
                      int32_t depth);

/* Whether a walk read to its root has the depth recursion_depth says (a surplus that changed is
 * believed when the next walk shows it again). */
bool stack_depth_fits(struct py_proc *p, const struct py_thread *t, int32_t depth);

/* This thread's state from the previous walk (created when create and missing), or NULL. */
struct py_prev_stack *stack_prev(struct py_proc *p, uint64_t tstate, bool create);

/* Reads the thread state at tstate into ts (need bytes), and on 3.11+ with it, in the same
 * syscall, the thread's cframe frame and data stack where the previous sample found them. */
int stack_read_thread(struct py_proc *p, uint64_t tstate, uint8_t *ts, size_t need,
                      struct fast_read *fr);

/* 3.11+: finds where the thread's stack is from its thread state in ts (the current chunk's
 * header, and the older chunk's when it changed) for the next guarded read. Returns whether the
 * thread can now be read that way. */
bool stack_reseek(struct py_proc *p, uint64_t tstate, const uint8_t *ts);

/* Walks the frames of the thread whose state is in ts into s; marks t bad when torn. fr is what
 * stack_read_thread() fetched, or NULL for a plain re-read. */
void stack_walk(struct py_proc *p, struct py_snapshot *s, struct py_thread *t, const uint8_t *ts,
                size_t need, struct fast_read *fr);

#endif
