/*
 * prevstack.c — what pytrace keeps of each thread's last walk (struct py_prev_stack): its frames,
 * indexed by address, with each one's caller and the thread state's recursion count. A frame-
 * object walk (2.7, 3.6–3.10) takes the callers of an unchanged frame from it instead of reading
 * them again, when the counts say they can be the same; the 3.11+ guarded read keeps in it where
 * the thread's data stack and cframes were. stack.c walks; this file remembers and judges.
 */
#include "readers/stack.h"

#include <stdlib.h>
#include <string.h>

void py_prev_stacks_free(struct py_proc *p)
{
    for (uint32_t i = 0; i < p->n_prev; i++) {
        free(p->prev[i].frames);
        free(p->prev[i].backs);
        free(p->prev[i].index);
    }
    free(p->prev);
    p->prev = NULL;
    p->n_prev = p->cap_prev = 0;
}

struct py_prev_stack *stack_prev(struct py_proc *p, uint64_t tstate, bool create)
{
    for (uint32_t i = 0; i < p->n_prev; i++)
        if (p->prev[i].tstate == tstate)
            return &p->prev[i];
    if (!create)
        return NULL;
    for (uint32_t i = 0; i < p->n_prev; i++) {
        if (!p->prev[i].tstate) {   /* a slot freed by a thread that is gone */
            p->prev[i].tstate = tstate;
            p->prev[i].n = 0;
            p->prev[i].pending = INT32_MIN;
            return &p->prev[i];
        }
    }
    if (p->n_prev == p->cap_prev) {
        uint32_t cap = p->cap_prev ? p->cap_prev * 2 : 8;
        struct py_prev_stack *n = realloc(p->prev, cap * sizeof *n);
        if (!n)
            return NULL;
        p->prev = n;
        p->cap_prev = cap;
    }
    struct py_prev_stack *ps = &p->prev[p->n_prev++];
    memset(ps, 0, sizeof *ps);
    ps->tstate = tstate;
    ps->pending = INT32_MIN;
    return ps;
}

/* Keeps this walk's stack of t (and each frame's caller) for the next walk; depth is the thread
 * state's recursion_depth read with it (≤ 0: unknown). */
void stack_remember(struct py_proc *p, const struct py_snapshot *s, const struct py_thread *t,
                    const uint64_t *backs, int32_t depth)
{
    struct py_prev_stack *ps = stack_prev(p, t->tstate, true);
    if (!ps)
        return;
    ps->seen = true;
    ps->surplus = depth > 0 ? depth - (int32_t)t->nframes : INT32_MIN;
    ps->pending = INT32_MIN;
    if (t->nframes > ps->cap || !ps->index) {
        uint32_t cap = ps->cap ? ps->cap : 64;
        while (cap < t->nframes)
            cap *= 2;
        struct py_frame *f = realloc(ps->frames, cap * sizeof *f);
        if (f)
            ps->frames = f;
        uint64_t *b = realloc(ps->backs, cap * sizeof *b);
        if (b)
            ps->backs = b;
        uint32_t *x = realloc(ps->index, 2 * cap * sizeof *x);   /* cap is a power of two */
        if (x)
            ps->index = x;
        if (!f || !b || !x) {
            ps->n = 0;
            return;
        }
        ps->cap = cap;
    }
    memcpy(ps->frames, &s->frames[t->first], t->nframes * sizeof *ps->frames);
    memcpy(ps->backs, backs, t->nframes * sizeof *backs);
    ps->n = t->nframes;
    uint32_t mask = 2 * ps->cap - 1;
    memset(ps->index, 0, 2 * ps->cap * sizeof *ps->index);
    for (uint32_t j = ps->n; j-- > 0;) {   /* the innermost of equal addresses wins, as a scan */
        uint32_t h = index_slot(ps->frames[j].addr, mask);
        while (ps->index[h] && ps->frames[ps->index[h] - 1].addr != ps->frames[j].addr)
            h = (h + 1) & mask;
        ps->index[h] = j + 1;
    }
}

/*
 * Whether the callers of the current walk's last frame can be the previous walk's below its
 * frame j. Same address, code, offset and caller is not enough: CPython recycles frame objects,
 * and a recursion that unwinds and comes back can put each level in the frame object of the level
 * below it last time, with the same caller relation one level up. The thread state's
 * recursion_depth tells (one per Python frame, plus C-level recursion, which the two walks must
 * then share): the stack the reuse would give must be as much deeper as the count is.
 */
bool stack_reuse_fits(const struct py_prev_stack *ps, uint32_t j, const struct py_thread *t,
                      int32_t depth)
{
    if (depth <= 0 || ps->surplus == INT32_MIN)
        return true;   /* no count (2.7-3.10 fakes, or a thread state that has none yet) */
    if (ps->surplus < -SURPLUS_SLACK)
        return false;   /* a reference with more frames than levels is no reference */
    int64_t n = (int64_t)t->nframes + (int64_t)ps->n - (int64_t)j - 1;
    return llabs((int64_t)depth - n - ps->surplus) <= SURPLUS_SLACK;
}

/*
 * Whether a walk read to its root (f_back NULL) has the depth the thread state's recursion_depth
 * says, given the C-level surplus the thread had at its last walk. Frames read one at a time
 * while the thread unwinds and calls again can be freed and recycled under the walk: a frame
 * just freed has no f_back, and the walk ends there, several levels short, with a top frame
 * that is again where it was. A surplus that changed is believed when the next sample's walk
 * shows the same: C-level recursion changes it for real. Not the same sample's retry: read a few
 * microseconds later from the same pages, it is cut short at the same frame as often as not (a
 * recursion unwinding through the same recycled frames every time), and believed so it gave
 * 1-4% of the samples of a 200-deep recursion on <= 3.10 as stacks without their callers
 * (session 15).
 */
bool stack_depth_fits(struct py_proc *p, const struct py_thread *t, int32_t depth)
{
    if (depth <= 0)
        return true;
    int32_t surplus = depth - (int32_t)t->nframes;
    /* Each Python frame holds a level, so more frames than levels (beyond the moment between
     * the two updates) is a walk that ran into recycled frames: never believed, not even in a
     * thread's first walk (one believed would be the reference the next walks reuse from). */
    if (surplus < -SURPLUS_SLACK)
        return false;
    struct py_prev_stack *ps = stack_prev(p, t->tstate, false);
    if (ps && ps->n && ps->surplus != INT32_MIN) {
        if (abs(surplus - ps->surplus) <= SURPLUS_SLACK)
            return true;
    } else {
        /* No reference: the thread's first walk. A level or two more than frames is a C call
         * holding one; more is C-level recursion, or a walk cut short on a frame freed under
         * it, which, believed, would become the reference the next walks reuse callers from. */
        if (surplus <= SURPLUS_SLACK)
            return true;
        if (!ps && !(ps = stack_prev(p, t->tstate, true)))
            return true;
    }
    if (surplus == ps->pending && ps->pending_gen != p->memo_gen)
        return true;
    ps->pending = surplus;
    ps->pending_gen = p->memo_gen;
    return false;
}
