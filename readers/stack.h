/*
 * stack.h — inside the readers: one thread's stack, and what walk.c and stack.c share. Not an
 * API: walk.c walks interpreters and thread lists and calls stack_read_thread() / stack_walk()
 * for each thread; stack.c holds the two frame walkers (frame objects up to 3.10, interpreter
 * frames from 3.11), the data-stack copy and the previous-stack reuse.
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
    uint64_t old_base;       /* the older chunk's copy (old_len 0: none), read before the stack */
    uint32_t old_len;
    const uint8_t *old_stack;
};

/* Before a round: stages the guarded read of thread tstate (3.11+, where the previous walk
 * found its stack) into the round's prefetch syscall; stack_read_thread() then uses it. */
void stack_stage(struct py_proc *p, uint64_t tstate, size_t need);

/* This thread's state from the previous walk (created when create and missing), or NULL. */
struct py_prev_stack *stack_prev(struct py_proc *p, uint64_t tstate, bool create);

/* Reads the thread state at tstate into ts (need bytes), and on 3.11+ with it, in the same
 * syscall, the thread's cframe frame and data stack where the previous sample found them. */
int stack_read_thread(struct py_proc *p, uint64_t tstate, uint8_t *ts, size_t need,
                      struct fast_read *fr);

/* Walks the frames of the thread whose state is in ts into s; marks t bad when torn. fr is what
 * stack_read_thread() fetched, or NULL for a plain re-read. */
void stack_walk(struct py_proc *p, struct py_snapshot *s, struct py_thread *t, const uint8_t *ts,
                size_t need, const struct fast_read *fr);

#endif
