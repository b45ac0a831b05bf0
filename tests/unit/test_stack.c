/*
 * test_stack.c — readers/stack.c (with datastack.c under it): one thread's frame walk, over the
 * fake CPython processes of fake_world.h, once per layout in py_layouts_gen[] as its own cmocka
 * group. Pins how a broken frame chain ends a walk, the cut at PY_MAX_FRAMES, the reuse of
 * unchanged callers and the depth checks of frame-object walks (<= 3.10), what a walk keeps when
 * the target calls and returns while it is read, and the 3.11+ data-stack copies.
 */
#include "fake_world.h"
#include "per_layout.h"
#include "readers/stack.h"

#define HEAP_DEEP (4u << 20)

/* ---- broken and deep frame chains ----------------------------------------------------------- */

static void frame_cycle_ends_the_thread_bad(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    uint64_t ts = add_thread(w, 1, &st);
    /* A -> B -> A */
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, st.frames[1]), st.frames[0]);
    world_walk(w);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    const struct py_thread *t = thread_at(&w->s, ts);
    assert_true(t->bad);
    assert_true(t->nframes >= 2 && t->nframes <= 8);
    check_frame(&w->s, t, 0, 1, 0, &st);
    check_frame(&w->s, t, 1, 1, 1, &st);
    assert_int_equal(w->s.bad_threads, 1);
}

static void frame_self_loop_ends_the_thread_bad(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    uint64_t ts = add_thread(w, 1, &st);
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, st.frames[0]), st.frames[0]);
    world_walk(w);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    const struct py_thread *t = thread_at(&w->s, ts);
    assert_true(t->bad);
    assert_true(t->nframes >= 1 && t->nframes <= 4);
    check_frame(&w->s, t, 0, 1, 0, &st);
}

static void wild_frame_pointers_mark_the_thread_bad(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    /* Thread 1: top frame pointer into unmapped memory. */
    uint64_t ts1 = fakepy_thread(&w->fp, w->interp, FAKEPY_UNMAPPED, thread_id_of(1), 1);
    /* Thread 2: a good frame whose caller is unmapped. */
    uint64_t ts2 = add_thread(w, 2, &st);
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, st.frames[0]), FAKEPY_UNMAPPED + 0x40);
    world_walk(w);

    assert_int_equal(w->s.nthreads, 3);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    const struct py_thread *t1 = thread_at(&w->s, ts1), *t2 = thread_at(&w->s, ts2);
    assert_true(t1->bad);
    assert_int_equal(t1->nframes, 0);
    assert_true(t2->bad);
    assert_int_equal(t2->nframes, 1);
    check_frame(&w->s, t2, 0, 2, 0, &st);
    assert_int_equal(w->s.bad_threads, 2);
}

static void deep_stack_is_truncated_at_max_frames(void **state)
{
    struct world *w = *state;
    world_init(w, HEAP_DEEP);
    uint64_t code = fakepy_code(&w->fp, "recurse", "recurse", "/srv/deep.py", 7);
    uint64_t f = 0;
    for (int i = 0; i < 5000; i++)
        f = fakepy_frame(&w->fp, code, f, 12);
    fakepy_thread(&w->fp, w->interp, f, thread_id_of(0), 1);
    world_walk(w);
    const struct py_thread *t = &w->s.threads[0];
    assert_true(t->truncated);
    assert_false(t->bad);
    assert_int_equal(t->nframes, PY_MAX_FRAMES);
    assert_int_equal(w->s.nframes, PY_MAX_FRAMES);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, f);
    for (uint32_t i = 0; i < PY_MAX_FRAMES; i++)
        assert_int_equal(py_thread_frame(&w->s, t, i)->line, fakepy_line(7, 12));
}

/* ---- frame objects: reused callers and the depth check (<= 3.10) ---------------------------- */

/* Sets a frame object's f_lasti as the interpreter stores it (3.10 counts code units). */
static void set_lasti(struct world *w, uint64_t frame, int bytes)
{
    int stored = cur->major == 3 && cur->minor == 10 ? bytes / 2 : bytes;
    fakepy_put32(&w->fp, frame + (uint64_t)cur->fo_lasti, (uint32_t)stored);
}

static void assert_stack(const struct py_snapshot *s, const uint64_t *addrs, const int *lastis,
                         uint32_t n)
{
    const struct py_thread *t = &s->threads[0];
    assert_false(t->bad);
    assert_int_equal(t->nframes, n);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(py_thread_frame(s, t, i)->addr, addrs[i]);
        assert_int_equal(py_thread_frame(s, t, i)->lasti, lastis[i]);
        assert_non_null(py_thread_frame(s, t, i)->code);
    }
}

/* Frame objects: a walk stops reading at the first frame that is unchanged since the previous
 * walk (same address, code, offset, caller) and copies the callers below it; any change in one
 * of those makes it read on. */
static void unchanged_frames_below_are_reused_not_reread(void **state)
{
    struct world *w = *state;
    if (cur->frame_model != PY_FRAMES_OBJECTS)
        skip();
    world_init(w, HEAP_SMALL);
    uint64_t code = fakepy_code(&w->fp, "f", "f", "/srv/app.py", 3);
    uint64_t other = fakepy_code(&w->fp, "g", "g", "/srv/app.py", 30);
    uint64_t fr[5], f = 0;
    for (int i = 0; i < 5; i++)
        fr[i] = f = fakepy_frame(&w->fp, code, f, 4 + 2 * i);
    uint64_t ts = fakepy_thread(&w->fp, w->interp, fr[4], thread_id_of(0), 1);
    world_walk(w);
    assert_stack(&w->s, (uint64_t[]){fr[4], fr[3], fr[2], fr[1], fr[0]}, (int[]){12, 10, 8, 6, 4}, 5);

    /* fr[4] returned; fr[3] called g: g and fr[3] are read, fr[2..0] are not. */
    uint64_t g = fakepy_frame(&w->fp, other, fr[3], 2);
    fakepy_put64(&w->fp, ts + (uint64_t)cur->ts_frame, g);
    uint64_t reads = w->p->mem->reads;
    world_walk(w);
    assert_stack(&w->s, (uint64_t[]){g, fr[3], fr[2], fr[1], fr[0]}, (int[]){2, 10, 8, 6, 4}, 5);
    uint64_t second = w->p->mem->reads - reads;

    /* fr[2] moved on and called a new frame at fr[3]'s address: both are read again, and the
     * walk reuses from fr[1] down. */
    set_lasti(w, fr[2], 14);
    set_lasti(w, fr[3], 0);
    fakepy_put64(&w->fp, ts + (uint64_t)cur->ts_frame, fr[3]);
    world_walk(w);
    assert_stack(&w->s, (uint64_t[]){fr[3], fr[2], fr[1], fr[0]}, (int[]){0, 14, 6, 4}, 4);

    /* Nothing changed: the top frame alone is read. */
    reads = w->p->mem->reads;
    world_walk(w);
    assert_stack(&w->s, (uint64_t[]){fr[3], fr[2], fr[1], fr[0]}, (int[]){0, 14, 6, 4}, 4);
    assert_true(w->p->mem->reads - reads < second);
}

/* Frame object f now runs level `level` of a recursion of code, called from back. */
static void set_level(struct world *w, uint64_t f, uint64_t code, uint64_t back, int level)
{
    fakepy_put64(&w->fp, f + (uint64_t)cur->fo_code, code);
    fakepy_put64(&w->fp, f + (uint64_t)cur->fo_back, back);
    fakepy_put64(&w->fp, f + (uint64_t)cur->fo_localsplus, 0x5a000000ull + 16 * (uint64_t)level);
}

/*
 * CPython recycles frame objects: a recursion that unwinds and comes back can run each level in
 * the frame object of the level below it last time. Every frame then has the address, code,
 * offset and caller some frame had at the last walk, one level further down; copying the callers
 * from there gave a stack one level too deep (or, for other rotations, any depth). The
 * arguments (and the thread state's recursion_depth) tell: the stack is read to its root.
 */
static void recycled_frames_of_a_recursion_are_not_reused_from_the_wrong_level(void **state)
{
    struct world *w = *state;
    if (cur->frame_model != PY_FRAMES_OBJECTS)
        skip();
    world_init(w, HEAP_SMALL);
    uint64_t mod = fakepy_code(&w->fp, "<module>", "<module>", "/srv/app.py", 1);
    uint64_t rec = fakepy_code(&w->fp, "rec", "rec", "/srv/app.py", 3);
    uint64_t leaf = fakepy_code(&w->fp, "leaf", "leaf", "/srv/app.py", 9);
    fakepy_put32(&w->fp, rec + (uint64_t)cur->co_argcount, 1);
    uint64_t root = fakepy_frame(&w->fp, mod, 0, 4), a[7];
    for (int i = 0; i < 7; i++)
        a[i] = fakepy_frame(&w->fp, rec, 0, 6);
    for (int i = 1; i <= 5; i++)   /* levels 1..5 in a[1..5] */
        set_level(w, a[i], rec, i == 1 ? root : a[i - 1], i);
    uint64_t top = fakepy_frame(&w->fp, leaf, a[5], 2);
    uint64_t ts = fakepy_thread(&w->fp, w->interp, top, thread_id_of(0), 1);
    if (cur->ts_recursion_depth >= 0)
        fakepy_put32(&w->fp, ts + (uint64_t)cur->ts_recursion_depth, 7);
    world_walk(w);
    assert_stack(&w->s, (uint64_t[]){top, a[5], a[4], a[3], a[2], a[1], root},
                 (int[]){2, 6, 6, 6, 6, 6, 4}, 7);

    /* The recursion ran again, each level one frame object up: levels 1..5 in a[2..6]. */
    for (int i = 1; i <= 5; i++)
        set_level(w, a[i + 1], rec, i == 1 ? root : a[i], i);
    fakepy_put64(&w->fp, top + (uint64_t)cur->fo_back, a[6]);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_stack(&w->s, (uint64_t[]){top, a[6], a[5], a[4], a[3], a[2], root},
                 (int[]){2, 6, 6, 6, 6, 6, 4}, 7);
}

/*
 * A walk to the root with more frames than the thread state's recursion_depth has levels ran
 * through recycled frames (a recursion unwinding and calling again under it). That holds for a
 * thread's first walk too: believed, it would become the stack later walks reuse callers from.
 */
static void first_walk_with_more_frames_than_levels_is_not_believed(void **state)
{
    struct world *w = *state;
    uint64_t f[9];
    uint64_t ts = recursion_world(w, 8, f, 5);   /* 9 frames, 5 levels */
    world_walk(w);
    assert_true(w->s.threads[0].bad);
    /* The thread's real stack, as deep as its count: believed, and no longer bad. */
    fakepy_put64(&w->fp, f[4] + (uint64_t)cur->fo_back, f[0]);
    fakepy_put32(&w->fp, ts + (uint64_t)cur->ts_recursion_depth, 6);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 6);
}

/* After the read of frame f_at: that frame's caller link is set to back (the race below). */
struct relink {
    struct world *w;
    uint64_t f_at, back;
};

static void race_relink(void *ctx)
{
    struct relink *r = ctx;
    fakepy_put64(&r->w->fp, r->f_at + (uint64_t)cur->fo_back, r->back);
}

/*
 * A thread's first walk has no earlier stack to compare its depth with. One cut short (a frame
 * read as it was being freed has no f_back: here f[3], whose link is back by the time the walk
 * is read again) has far fewer frames than the thread state's levels. Believed, it was the
 * sample, and the reference later walks reused callers from: samples 50 levels short until a
 * walk to the root disagreed. It is read again, and the whole stack is the sample.
 */
static void first_walk_cut_short_is_read_again(void **state)
{
    struct world *w = *state;
    uint64_t f[8];
    recursion_world(w, 7, f, 8);
    fakepy_put64(&w->fp, f[3] + (uint64_t)cur->fo_back, 0);
    w->p = fakepy_proc(&w->fp);
    struct spy *spy = spy_install(w->p);
    struct relink r = {w, f[3], f[2]};
    spy->after_read = race_relink;
    spy->ctx = &r;
    spy->after_addr = f[3];
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 8);
    assert_int_equal(py_thread_frame(&w->s, &w->s.threads[0], 7)->addr, f[0]);
}

/*
 * A thread whose sample was torn is still alive: its last good stack must stay the reference the
 * next walk is checked against and reuses callers from. Forgotten, the next walk had nothing to
 * compare its depth with (so one that had run into recycled frames passed, and became the
 * reference), and read every frame again.
 */
static void a_torn_sample_keeps_the_reference_for_the_next(void **state)
{
    struct world *w = *state;
    uint64_t f[8];
    recursion_world(w, 7, f, 8);
    uint64_t top = f[7], code = fakepy_get64(&w->fp, top + (uint64_t)cur->fo_code);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    /* The same stack again: the callers are reused, not read. */
    uint64_t reads = w->p->mem->reads;
    world_walk(w);
    uint64_t steady = w->p->mem->reads - reads;
    /* Torn: the top frame's code pointer is wild (read as it was being written). */
    fakepy_put64(&w->fp, top + (uint64_t)cur->fo_code, FAKEPY_UNMAPPED);
    world_walk(w);
    assert_true(w->s.threads[0].bad);
    /* Read whole again: as cheaply as before the tear. */
    fakepy_put64(&w->fp, top + (uint64_t)cur->fo_code, code);
    reads = w->p->mem->reads;
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 8);
    assert_int_equal(w->p->mem->reads - reads, steady);
}

/* ---- the target calls and returns while it is read ------------------------------------------ */

struct race {
    struct world *w;
    uint64_t ts, top;   /* the thread, and the frame to make its top */
};

static void race_set_top(void *ctx)
{
    struct race *r = ctx;
    fakepy_set_top(&r->w->fp, r->ts, r->top);
}

/* Frame objects: frames A <- B <- C (C on top). After C is read, the top moves: back to B (0),
 * to a new call from B (1), or to another branch (2); checks what the walk keeps. */
static void walk_while_top_moves(void **state, int moved)
{
    struct world *w = *state;
    if (cur->frame_model != PY_FRAMES_OBJECTS)
        skip();
    uint64_t got[4];
    uint32_t n[1];
    world_init(w, HEAP_SMALL);
    uint64_t code = fakepy_code(&w->fp, "f", "f", "/srv/app.py", 3);
    uint64_t a = fakepy_frame(&w->fp, code, 0, 2), b = fakepy_frame(&w->fp, code, a, 4);
    uint64_t c = fakepy_frame(&w->fp, code, b, 6);
    uint64_t ts = fakepy_thread(&w->fp, w->interp, c, thread_id_of(0), 1);
    uint64_t tops[] = {b, fakepy_frame(&w->fp, code, b, 8),
                       fakepy_frame(&w->fp, code, fakepy_frame(&w->fp, code, 0, 10), 12)};
    w->p = fakepy_proc(&w->fp);
    struct spy *spy = spy_install(w->p);
    struct race r = {w, ts, tops[moved]};
    spy->after_read = race_set_top;
    spy->ctx = &r;
    spy->after_addr = c;
    world_walk(w);
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    *n = t->nframes;
    for (uint32_t i = 0; i < t->nframes && i < 4; i++)
        got[i] = py_thread_frame(&w->s, t, i)->addr;
    got[0] = *n ? got[0] : 0;
    if (moved < 2) {
        /* C returned (to B), or returned and B called again: C, B, A is a stack the thread had
         * when the walk began, kept as read, not read again. */
        assert_int_equal(*n, 3);
        assert_int_equal(got[0], c);
        assert_int_equal(got[1], b);
        assert_int_equal(got[2], a);
    } else {
        /* The top moved to another branch: the walk is read again, and shows that branch. */
        assert_int_equal(*n, 2);
        assert_int_equal(got[0], tops[2]);
    }
}

static void frame_returning_during_the_walk_keeps_the_walked_stack(void **state)
{
    walk_while_top_moves(state, 0);
}

static void caller_calling_again_during_the_walk_keeps_the_walked_stack(void **state)
{
    walk_while_top_moves(state, 1);
}

static void top_on_another_branch_after_the_walk_is_read_again(void **state)
{
    walk_while_top_moves(state, 2);
}

/* ---- 3.11+: the data stack ------------------------------------------------------------------ */

/* 3.11+ layouts with a data stack only (skips the others): a fresh world and one code object. */
static uint64_t data_stack_world(struct world *w)
{
    if (cur->frame_model != PY_FRAMES_INTERP || cur->ts_datastack_chunk < 0 ||
        cur->ts_datastack_top < 0)
        skip();
    world_init(w, HEAP_SMALL);
    return fakepy_code(&w->fp, "f", "f", "/srv/app.py", 3);
}

/*
 * 3.11+: frames A <- B <- C live in a data-stack chunk; D, C's callee, sits in the slot above C
 * (as an earlier call of it left it). The second walk copies the chunk in one read with the frame
 * pointer before and after it; C calls D between the copy and the pointer's second read. The
 * sample is the instant of that second read: D, C, B, A — not C frozen at its call with D lost.
 */
static void call_made_while_the_data_stack_is_copied_is_in_the_sample(void **state)
{
    struct world *w = *state;
    const struct py_layout *L = cur;
    uint64_t code = data_stack_world(w);
    uint64_t callee = fakepy_code(&w->fp, "g", "g", "/srv/app.py", 30);
    const uint64_t chunk_size = 16384;
    uint64_t chunk = fakepy_alloc(&w->fp, 24);   /* _PyStackChunk: previous, size, top */
    fakepy_put64(&w->fp, chunk + 8, chunk_size);
    uint64_t a = fakepy_frame(&w->fp, code, 0, 2), b = fakepy_frame(&w->fp, code, a, 4);
    uint64_t c = fakepy_frame(&w->fp, code, b, 6), d = fakepy_frame(&w->fp, callee, c, 0);
    uint64_t end = fakepy_alloc(&w->fp, 8);
    assert_true(end - chunk < chunk_size);
    (void)fakepy_alloc(&w->fp, chunk_size);       /* the rest of the chunk */
    uint64_t ts = fakepy_thread(&w->fp, w->interp, c, thread_id_of(0), 1);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_chunk, chunk);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_top, d);   /* D's slot is free */
    world_walk(w);   /* finds the chunk the slow way, and remembers it */
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, c);

    struct spy *spy = spy_install(w->p);
    struct race r = {w, ts, d};
    spy->after_read = race_set_top;
    spy->ctx = &r;
    spy->after_addr = chunk;
    world_walk(w);
    t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(spy_hits(spy, chunk, 24), 1);   /* one copy: not read again */
    assert_int_equal(t->nframes, 4);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, d);
    assert_int_equal(py_thread_frame(&w->s, t, 1)->addr, c);
    assert_int_equal(py_thread_frame(&w->s, t, 3)->addr, a);
}

/* Sets the thread's innermost frame (where the version keeps it). */
static void set_top(struct world *w, uint64_t ts, uint64_t top)
{
    struct race r = {w, ts, top};
    race_set_top(&r);
}

/*
 * 3.11+: after a deep sample, the guarded copy keeps its length while the stack is shallow, for
 * COPY_KEEP_NS and for COPY_KEEP_ROUNDS walks at least, then follows the stack. At 100 Hz 2 ms is
 * less than a round: the walk count alone keeps it (one shallow sample shortened it, and the next
 * deep one took the slow path, 5% of rounds on cpu_bound.py). Time is made to pass by moving the
 * copy's timestamp back before each walk.
 */
static void copy_stays_long_for_some_walks_after_the_stack_got_shallower(void **state)
{
    struct world *w = *state;
    const struct py_layout *L = cur;
    uint64_t code = data_stack_world(w);
    const uint64_t chunk_size = 16384;
    uint64_t chunk = fakepy_alloc(&w->fp, 24);   /* _PyStackChunk: previous, size, top */
    fakepy_put64(&w->fp, chunk + 8, chunk_size);
    uint64_t f[100];
    for (int i = 0; i < 100; i++)
        f[i] = fakepy_frame(&w->fp, code, i ? f[i - 1] : 0, 2 * i);
    uint64_t end = fakepy_alloc(&w->fp, 8);
    assert_true(end - chunk < chunk_size);
    (void)fakepy_alloc(&w->fp, chunk_size);
    uint64_t ts = fakepy_thread(&w->fp, w->interp, f[99], thread_id_of(0), 1);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_chunk, chunk);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_top, end);
    world_walk(w);   /* the slow way, remembering the chunk */
    world_walk(w);
    assert_int_equal(w->s.threads[0].nframes, 100);
    struct py_prev_stack *ps = stack_prev(w->p, ts, false);
    assert_non_null(ps);
    uint32_t deep = ps->copylen;

    set_top(w, ts, f[1]);                       /* returned to the second frame */
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_top, f[2]);
    for (int k = 0; k <= COPY_KEEP_ROUNDS; k++) {
        ps->copy_long_ns = 0;                   /* long ago: only the walk count keeps it */
        world_walk(w);
        assert_false(w->s.threads[0].bad);
        assert_int_equal(w->s.threads[0].nframes, 2);
        ps = stack_prev(w->p, ts, false);
        if (k < COPY_KEEP_ROUNDS)
            assert_int_equal(ps->copylen, deep);
        else
            assert_true(ps->copylen + 4096 <= deep);   /* then it follows the stack down */
    }
}

/* 3.11+: frames A <- B in an older 4 KiB data-stack chunk, then C <- D in a 16 KiB chunk above it
 * (its previous link set). The older chunk's header `top` is left unset: callers set it when the
 * thread is in the newer chunk. */
struct two_chunks {
    uint64_t old, old_end, chunk, end;
    uint64_t a, b, c, d;
};

static void build_two_chunks(struct world *w, uint64_t code, struct two_chunks *k)
{
    k->old = fakepy_alloc(&w->fp, 24);   /* _PyStackChunk: previous, size, top */
    k->a = fakepy_frame(&w->fp, code, 0, 2);
    k->b = fakepy_frame(&w->fp, code, k->a, 4);
    k->old_end = fakepy_alloc(&w->fp, 8);
    fakepy_put64(&w->fp, k->old + 8, 4096);
    (void)fakepy_alloc(&w->fp, 4096);
    k->chunk = fakepy_alloc(&w->fp, 24);
    fakepy_put64(&w->fp, k->chunk, k->old);
    fakepy_put64(&w->fp, k->chunk + 8, 16384);
    k->c = fakepy_frame(&w->fp, code, k->b, 6);
    k->d = fakepy_frame(&w->fp, code, k->c, 8);
    k->end = fakepy_alloc(&w->fp, 8);
    (void)fakepy_alloc(&w->fp, 16384);
}

/* The older chunk's header says how much of it is in use (it is set when a newer chunk is
 * pushed). */
static void older_chunk_top(struct world *w, const struct two_chunks *k)
{
    fakepy_put64(&w->fp, k->old + 16, (k->old_end - (k->old + 24)) / 8);   /* pointers in use */
}

/* 3.11+: a stack deeper than its chunk continues in the older chunk below; once the walk knows
 * both, the guarded read copies both, and no frame is read on its own. */
static void stack_spanning_two_chunks_is_one_copy(void **state)
{
    struct world *w = *state;
    const struct py_layout *L = cur;
    uint64_t code = data_stack_world(w);
    struct two_chunks k;
    build_two_chunks(w, code, &k);
    older_chunk_top(w, &k);
    uint64_t old = k.old, a = k.a, b = k.b, d = k.d;
    uint64_t ts = fakepy_thread(&w->fp, w->interp, d, thread_id_of(0), 1);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_chunk, k.chunk);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_top, k.end);
    world_walk(w);   /* the slow way: finds both chunks */
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 4);

    struct spy *spy = spy_install(w->p);
    world_walk(w);
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(t->nframes, 4);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, d);
    assert_int_equal(py_thread_frame(&w->s, t, 3)->addr, a);
    assert_int_equal(spy_hits(spy, old, 24), 1);     /* the older chunk, copied whole */
    assert_int_equal(spy_hits(spy, a, 8), 0);        /* ... so its frames are not read alone */
    assert_int_equal(spy_hits(spy, b, 8), 0);
}

/* 3.11+: the stack grew into a new chunk since the last walk (a deep call, or a stack that
 * crosses a chunk boundary back and forth). The walk finds the new chunk from the thread state it
 * just read (the chunk headers) and reads the sample again the guarded way: no frame of the
 * older chunk is read on its own, and the sample is not torn. */
static void stack_that_moved_to_a_new_chunk_is_found_again(void **state)
{
    struct world *w = *state;
    const struct py_layout *L = cur;
    uint64_t code = data_stack_world(w);
    struct two_chunks k;
    build_two_chunks(w, code, &k);
    uint64_t a = k.a, b = k.b, c = k.c, d = k.d, chunk = k.chunk;
    uint64_t ts = fakepy_thread(&w->fp, w->interp, b, thread_id_of(0), 1);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_chunk, k.old);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_top, k.old_end);
    world_walk(w);   /* the slow way: the older chunk alone */
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 2);

    /* B calls C, which gets a new chunk, and D. */
    older_chunk_top(w, &k);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_chunk, chunk);
    fakepy_put64(&w->fp, ts + (uint64_t)L->ts_datastack_top, k.end);
    struct race r = {w, ts, d};
    race_set_top(&r);
    struct spy *spy = spy_install(w->p);
    world_walk(w);
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(w->s.bad_threads, 0);
    assert_int_equal(t->nframes, 4);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, d);
    assert_int_equal(py_thread_frame(&w->s, t, 3)->addr, a);
    assert_true(spy_hits(spy, chunk, 24) >= 1);      /* found from its header */
    assert_int_equal(spy_hits(spy, a, 8), 0);        /* the older chunk was copied whole */
    assert_int_equal(spy_hits(spy, b, 8), 0);
    assert_int_equal(spy_hits(spy, c, 8), 0);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        WT(frame_cycle_ends_the_thread_bad),
        WT(frame_self_loop_ends_the_thread_bad),
        WT(wild_frame_pointers_mark_the_thread_bad),
        WT(deep_stack_is_truncated_at_max_frames),
        WT(unchanged_frames_below_are_reused_not_reread),
        WT(recycled_frames_of_a_recursion_are_not_reused_from_the_wrong_level),
        WT(first_walk_with_more_frames_than_levels_is_not_believed),
        WT(first_walk_cut_short_is_read_again),
        WT(a_torn_sample_keeps_the_reference_for_the_next),
        WT(frame_returning_during_the_walk_keeps_the_walked_stack),
        WT(caller_calling_again_during_the_walk_keeps_the_walked_stack),
        WT(top_on_another_branch_after_the_walk_is_read_again),
        WT(call_made_while_the_data_stack_is_copied_is_in_the_sample),
        WT(stack_spanning_two_chunks_is_one_copy),
        WT(copy_stays_long_for_some_walks_after_the_stack_got_shallower),
        WT(stack_that_moved_to_a_new_chunk_is_found_again),
    };
    return PER_LAYOUT_RUN("stack", tests, cur);
}
