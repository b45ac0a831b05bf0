/*
 * test_stack_fo.c — readers/stack.c's frame-object walks (2.7, 3.6–3.10) that meet a stack
 * changing under the read, over the fake CPython processes of fake_world.h, once per layout with
 * frame objects: a walk that reaches a dead frame (one CPython freed and keeps for reuse) below
 * its top is torn, a dead top with its callers is the sample, and a thread that returned while
 * its frames were copied is walked from the top frame read after the copy (stack_refetch's
 * guard) instead of being lost.
 */
#include "fake_world.h"
#include "per_layout.h"
#include "readers/stack.h"

/*
 * A frame object CPython has freed keeps its code pointer and lies as its code object's zombie or
 * in the free list, where the last one freed has no f_back: a walk that runs into one while the
 * thread unwinds ends there, short, at a frame of the right code. Its reference count is 0; a
 * running frame's never is. Here the count of levels agrees with the short walk (as a depth seen
 * in an earlier sample would): the walk is still torn, not a stack without its callers.
 */
static void walk_that_reaches_a_dead_frame_is_torn(void **state)
{
    struct world *w = *state;
    uint64_t f[8];
    uint64_t ts = recursion_world(w, 7, f, 8);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 8);
    fakepy_put64(&w->fp, f[3] + (uint64_t)(cur->ob_type - 8), 0);   /* freed: no reference */
    fakepy_put64(&w->fp, f[3] + (uint64_t)cur->fo_back, 0);         /* the free list's tail */
    fakepy_put32(&w->fp, ts + (uint64_t)cur->ts_recursion_depth, 5);
    world_walk(w);
    assert_true(w->s.threads[0].bad);
    /* Alive again (reused by the same call): a whole stack. */
    fakepy_put64(&w->fp, f[3] + (uint64_t)(cur->ob_type - 8), 1);
    fakepy_put64(&w->fp, f[3] + (uint64_t)cur->fo_back, f[2]);
    fakepy_put32(&w->fp, ts + (uint64_t)cur->ts_recursion_depth, 8);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 8);
}

/*
 * The top frame may have returned since the thread state named it: a zombie keeps its code and
 * caller link, and it and its callers are the sample of that instant. Torn, and read again later,
 * a short call's samples went to its caller (an 80 ns call's share fell from 19% to 4%).
 */
static void dead_top_frame_with_its_callers_is_the_sample(void **state)
{
    struct world *w = *state;
    uint64_t f[8];
    recursion_world(w, 7, f, 8);
    world_walk(w);
    fakepy_put64(&w->fp, f[7] + (uint64_t)(cur->ob_type - 8), 0);   /* returned: a zombie */
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 8);
    assert_int_equal(py_thread_frame(&w->s, &w->s.threads[0], 0)->addr, f[7]);
}

/* A source that answers one read, the guard's (the thread state's frame pointer and recursion
 * depth, read by stack_refetch after the whole copy), with other bytes: the thread as it is at
 * that last instant, everything else as it was a moment before. */
struct guard_src {
    struct mem_src base;
    struct mem_src *inner;
    uint64_t addr;
    size_t len;
    uint8_t val[32];
    int served;
};

static int gs_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    struct guard_src *g = (struct guard_src *)src;
    src->reads++;
    if (g->len && addr == g->addr && len == g->len) {
        memcpy(buf, g->val, len);
        g->served++;
        return 0;
    }
    return mem_read(g->inner, addr, buf, len);
}

static int gs_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    for (int i = 0; i < n; i++)
        if (gs_read(src, iov[i].addr, iov[i].buf, iov[i].len) != 0)
            return i;
    return n;
}

static void gs_close(struct mem_src *src)
{
    struct guard_src *g = (struct guard_src *)src;
    mem_close(g->inner);
    free(g);
}

static const struct mem_ops gs_ops = { gs_read, gs_readv, gs_close };

/*
 * The top frame returns while the round copies the thread: the copy's thread state still names
 * it, freed (no reference, no f_back), so every walk of the copy is torn — the retries too, as a
 * recursion unwinding through the same frames shows each time. Read after the copy in the same
 * syscall, the thread state names its caller, one level less: its callers did not change, and the
 * thread is walked from it in the same copy. Before, the sample was lost.
 */
static void thread_that_returned_while_copied_is_walked_from_its_new_top(void **state)
{
    struct world *w = *state;
    uint64_t f[8];
    uint64_t ts = recursion_world(w, 7, f, 8);
    w->p = fakepy_proc(&w->fp);
    struct guard_src *g = calloc(1, sizeof *g);
    assert_non_null(g);
    g->base.ops = &gs_ops;
    g->inner = w->p->mem;
    w->p->mem = mem_round_new(&g->base);
    assert_non_null(w->p->mem);
    for (int i = 0; i < 2; i++) {   /* the reference stack, and a plan of its pages */
        world_walk(w);
        assert_false(w->s.threads[0].bad);
        assert_int_equal(w->s.threads[0].nframes, 8);
    }
    fakepy_put64(&w->fp, f[7] + (uint64_t)(cur->ob_type - 8), 0);
    fakepy_put64(&w->fp, f[7] + (uint64_t)cur->fo_back, 0);
    int32_t a = cur->ts_frame, b = cur->ts_recursion_depth;
    int32_t lo = a < b ? a : b, hi = (a < b ? b : a) + 8;
    assert_true(hi - lo <= (int32_t)sizeof g->val);
    int32_t levels = 7;
    memcpy(g->val + (a - lo), &f[6], 8);
    memcpy(g->val + (b - lo), &levels, 4);
    g->addr = ts + (uint64_t)lo;
    g->len = (size_t)(hi - lo);
    world_walk(w);
    assert_true(g->served >= 1);
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(t->nframes, 7);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, f[6]);
    assert_int_equal(py_thread_frame(&w->s, t, 6)->addr, f[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        WT(walk_that_reaches_a_dead_frame_is_torn),
        WT(dead_top_frame_with_its_callers_is_the_sample),
        WT(thread_that_returned_while_copied_is_walked_from_its_new_top),
    };
    return PER_LAYOUT_RUN("stack_fo", tests, cur);
}
