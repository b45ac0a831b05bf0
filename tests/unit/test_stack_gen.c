/*
 * test_stack_gen.c — readers/stack.c and datastack.c on generators, over the fake processes of
 * fake_world.h, once per layout in py_layouts_gen[]. A generator's frame is linked to its caller
 * only while it runs: read between a yield and the next resume it looks like a whole stack of
 * one frame. Pins that such a read is torn when the thread has frames running below (and a whole
 * stack when it has none: a generator run from C), that a sample torn so is read again, and
 * (3.11–3.12) that a thread switching between cframes keeps its one-syscall read, and (3.11+)
 * that a generator's caller replaced in its data-stack slot after the copy is not believed.
 */
#include "fake_world.h"
#include "per_layout.h"
#include "readers/stack.h"

#define CO_GENERATOR 0x20
#define OWNED_BY_GENERATOR 1

/* One thread: <module> <- main (frames under the generator), and a generator frame `gen` whose
 * link to main is cleared (it yielded). Returns the thread state. */
struct gen_world {
    uint64_t ts, mod, main, gen, gen_code, chunk;
    uint64_t shim;   /* 3.12+: the C-stack entry frame a generator run from C is linked to */
};

static void build_gen_world(struct world *w, struct gen_world *g)
{
    world_init(w, HEAP_SMALL);
    uint64_t mod = fakepy_code(&w->fp, "<module>", "<module>", "/srv/app.py", 1);
    uint64_t mainc = fakepy_code(&w->fp, "main", "main", "/srv/app.py", 10);
    g->gen_code = fakepy_code(&w->fp, "<genexpr>", "rows.<locals>.<genexpr>", "/srv/app.py", 20);
    fakepy_put32(&w->fp, g->gen_code + (uint64_t)cur->co_flags, FAKEPY_CO_FUNCTION | CO_GENERATOR);
    g->chunk = 0;
    if (cur->frame_model == PY_FRAMES_INTERP) {
        /* The data stack: a chunk holding <module> and main, as CPython lays them out. */
        const uint64_t chunk_size = 16384;
        g->chunk = fakepy_alloc(&w->fp, 32);   /* _PyStackChunk header + the unused slot */
        fakepy_put64(&w->fp, g->chunk + 8, chunk_size);
    }
    g->mod = fakepy_frame(&w->fp, mod, 0, 4);
    g->main = fakepy_frame(&w->fp, mainc, g->mod, 6);
    if (g->chunk)
        (void)fakepy_alloc(&w->fp, 16384);   /* the rest of the chunk; the generator is past it */
    g->gen = fakepy_frame(&w->fp, g->gen_code, 0, 2);
    g->shim = fakepy_get64(&w->fp, fakepy_frame_back_addr(&w->fp, g->gen));
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, g->gen), 0);   /* it yielded */
    if (cur->frame_model == PY_FRAMES_INTERP)
        fakepy_frame_owner(&w->fp, g->gen, OWNED_BY_GENERATOR);
    g->ts = fakepy_thread(&w->fp, w->interp, g->gen, thread_id_of(0), 1);
    if (g->chunk) {
        fakepy_put64(&w->fp, g->ts + (uint64_t)cur->ts_datastack_chunk, g->chunk);
        fakepy_put64(&w->fp, g->ts + (uint64_t)cur->ts_datastack_top,
                     g->main + (uint64_t)cur->if_size + 8 * FAKEPY_FRAME_SLOTS);
    }
    if (cur->ts_recursion_depth >= 0)   /* <module>, main, a C call, the generator */
        fakepy_put32(&w->fp, g->ts + (uint64_t)cur->ts_recursion_depth, 4);
}

/* Nothing runs below the generator: an empty data stack, one level of recursion (3.12+: the
 * generator is linked to the entry frame of the C call that runs it). */
static void clear_below(struct world *w, const struct gen_world *g)
{
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, g->gen), g->shim);
    if (g->chunk)
        fakepy_put64(&w->fp, g->ts + (uint64_t)cur->ts_datastack_top, g->chunk + 32);
    if (cur->ts_recursion_depth >= 0)
        fakepy_put32(&w->fp, g->ts + (uint64_t)cur->ts_recursion_depth, 1);
}

static void skip_without_generator_facts(void)
{
    if (cur->frame_model == PY_FRAMES_OBJECTS ? cur->ts_recursion_depth < 0
                                              : cur->if_owner_generator < 0 ||
                                                    cur->ts_datastack_chunk < 0)
        skip();
}

/* Every walk of the thread (the first and its retries) finds the generator suspended. */
static void a_suspended_generator_over_running_frames_is_torn_not_a_whole_stack(void **state)
{
    struct world *w = *state;
    skip_without_generator_facts();
    struct gen_world g;
    build_gen_world(w, &g);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    assert_true(w->s.threads[0].bad);
}

static void a_generator_run_from_c_with_nothing_below_is_a_whole_stack(void **state)
{
    struct world *w = *state;
    skip_without_generator_facts();
    struct gen_world g;
    build_gen_world(w, &g);
    clear_below(w, &g);
    world_walk(w);
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(t->nframes, 1);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, g.gen);
}

/* ≤3.10: a frame at the bottom of a short walk whose code is not a generator's is C-level
 * recursion's surplus, believed once a later sample sees it again — not torn for good. (Not on
 * the same sample's retries: those see a cut-short stack the same way as often as not.) */
static void a_short_stack_ending_in_plain_code_is_not_taken_for_a_generator(void **state)
{
    struct world *w = *state;
    if (cur->frame_model != PY_FRAMES_OBJECTS)
        skip();
    skip_without_generator_facts();
    struct gen_world g;
    build_gen_world(w, &g);
    fakepy_put32(&w->fp, g.gen_code + (uint64_t)cur->co_flags, FAKEPY_CO_FUNCTION);
    world_walk(w);
    assert_true(w->s.threads[0].bad);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_int_equal(w->s.threads[0].nframes, 1);
}

/* Copies of the data stack (reads of the chunk longer than its header). */
static int copies(const struct spy *spy, uint64_t chunk)
{
    int n = 0;
    for (size_t i = 0; i < spy->n; i++)
        n += spy->log[i].addr == chunk && spy->log[i].len > 32;
    return n;
}

/* Walks w once, with fn(ctx) run right after the first read of after_addr (the target moving on
 * in the middle of the walk); returns the spy that logged the reads. */
static struct spy *walk_changing(struct world *w, uint64_t after_addr, void (*fn)(void *),
                                 void *ctx)
{
    w->p = fakepy_proc(&w->fp);
    struct spy *spy = spy_install(w->p);
    spy->after_read = fn;
    spy->ctx = ctx;
    spy->after_addr = after_addr;
    world_walk(w);
    return spy;
}

/* The walk gave gen_world's whole stack, good: the generator, main, <module>. */
static void assert_whole_stack(const struct world *w, const struct gen_world *g)
{
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(t->nframes, 3);
    assert_int_equal(py_thread_frame(&w->s, t, 0)->addr, g->gen);
    assert_int_equal(py_thread_frame(&w->s, t, 1)->addr, g->main);
    assert_int_equal(py_thread_frame(&w->s, t, 2)->addr, g->mod);
}

struct resume {
    struct world *w;
    uint64_t gen, caller;
};

static void resume(void *ctx)
{
    struct resume *r = ctx;
    fakepy_put64(&r->w->fp, fakepy_frame_back_addr(&r->w->fp, r->gen), r->caller);
}

/* 3.11+: the generator is read suspended, and resumed by its caller right after: the walk is
 * torn, read again at once (walk_threads' retry), and the sample is the whole stack. */
static void a_generator_found_suspended_is_read_again_and_keeps_its_callers(void **state)
{
    struct world *w = *state;
    if (cur->frame_model != PY_FRAMES_INTERP)
        skip();
    skip_without_generator_facts();
    struct gen_world g;
    build_gen_world(w, &g);
    struct resume r = {w, g.gen, g.main};
    struct spy *spy = walk_changing(w, g.gen, resume, &r);
    assert_whole_stack(w, &g);
    assert_int_equal(copies(spy, g.chunk), 2);   /* the first walk's, and the retry's */
}

/*
 * 3.11–3.12: the top frame is found through tstate->cframe, which a loop resuming a generator from
 * C switches between two C-level eval calls all the time. Once both were seen, the frame pointer
 * is read through each in the guarded read: the walk stays one syscall whichever is current.
 */
static void a_thread_switching_between_cframes_keeps_its_one_read(void **state)
{
    struct world *w = *state;
    if (cur->ts_cframe < 0 || cur->cf_current_frame < 0)
        skip();
    struct gen_world g;
    build_gen_world(w, &g);
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, g.gen), g.main);   /* running */
    uint64_t cf[2];
    cf[0] = fakepy_get64(&w->fp, g.ts + (uint64_t)cur->ts_cframe);   /* the generator's call */
    cf[1] = fakepy_alloc(&w->fp, 64);                                  /* main's */
    fakepy_put64(&w->fp, cf[1] + (uint64_t)cur->cf_current_frame, g.main);
    world_walk(w);
    fakepy_put64(&w->fp, g.ts + (uint64_t)cur->ts_cframe, cf[1]);
    world_walk(w);
    struct spy *spy = spy_install(w->p);
    for (int round = 0; round < 4; round++) {
        fakepy_put64(&w->fp, g.ts + (uint64_t)cur->ts_cframe, cf[round % 2]);
        spy->readvs = 0;
        spy->n = 0;
        world_walk(w);
        const struct py_thread *t = &w->s.threads[0];
        assert_false(t->bad);
        assert_int_equal(t->nframes, round % 2 ? 2 : 3);
        assert_int_equal(spy_hits(spy, g.chunk, 32), 1);   /* one copy: no re-seek */
        assert_int_equal(copies(spy, g.chunk), 1);
    }
}

/* 3.12+: an entry frame whose C call returned, its stack slot reused (the owner byte no longer
 * says C stack), still shows the trampoline's code: torn, not a frame named so. */
static void a_dead_entry_frame_is_torn_not_a_trampoline_frame(void **state)
{
    struct world *w = *state;
    if (cur->frame_model != PY_FRAMES_INTERP || cur->if_owner_cstack < 0)
        skip();
    struct gen_world g;
    build_gen_world(w, &g);
    clear_below(w, &g);
    uint64_t tramp = fakepy_code(&w->fp, "<interpreter trampoline>", "<interpreter trampoline>",
                                 "<interpreter trampoline>", 0);
    uint64_t dead = fakepy_frame(&w->fp, tramp, g.main, 0);   /* owner: thread, not C stack */
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, g.gen), dead);
    world_walk(w);
    assert_true(w->s.threads[0].bad);
}

struct replace {
    struct world *w;
    uint64_t frame, code;
};

static void replace_code(void *ctx)
{
    struct replace *r = ctx;
    fakepy_put64(&r->w->fp, r->frame + (uint64_t)cur->if_code, r->code);
}

/*
 * 3.11+: the generator runs, called by main, and is read from the heap after the data stack was
 * copied; right after that read, main's slot on the data stack holds another call (main returned
 * and the loop called consume, whose generator took the freed one's memory). The top is still
 * the generator's address, but the copy's main is older than the generator read: the re-check
 * reads main again with the top, sees other code, and the sample is read again whole.
 */
static void a_generator_caller_replaced_after_the_copy_is_read_again(void **state)
{
    struct world *w = *state;
    if (cur->frame_model != PY_FRAMES_INTERP)
        skip();
    skip_without_generator_facts();
    struct gen_world g;
    build_gen_world(w, &g);
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, g.gen), g.main);   /* running */
    uint64_t consume = fakepy_code(&w->fp, "consume", "consume", "/srv/app.py", 30);
    struct replace r = {w, g.main, consume};
    struct spy *spy = walk_changing(w, g.gen, replace_code, &r);
    assert_whole_stack(w, &g);
    assert_string_equal(py_thread_frame(&w->s, &w->s.threads[0], 1)->code->name, "consume");
    assert_int_equal(copies(spy, g.chunk), 2);   /* the first walk's, and the retry's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        WT(a_suspended_generator_over_running_frames_is_torn_not_a_whole_stack),
        WT(a_generator_run_from_c_with_nothing_below_is_a_whole_stack),
        WT(a_short_stack_ending_in_plain_code_is_not_taken_for_a_generator),
        WT(a_generator_found_suspended_is_read_again_and_keeps_its_callers),
        WT(a_thread_switching_between_cframes_keeps_its_one_read),
        WT(a_dead_entry_frame_is_torn_not_a_trampoline_frame),
        WT(a_generator_caller_replaced_after_the_copy_is_read_again),
    };
    return PER_LAYOUT_RUN("stack_gen", tests, cur);
}
