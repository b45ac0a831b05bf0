/*
 * test_threads.c — readers/walk.c's thread and interpreter lists, over fake CPython processes
 * built by fakepy.c from each generated layout (fake_world.h), one cmocka group per CPython
 * version: threads that start or end between and during walks, thread states that no thread runs
 * (not yet started, unbound, ending), lists torn or cyclic (a walk ends quickly, flagged, and
 * lists no garbage), and the thread set's signature that says when to read names again.
 */
#include "fake_world.h"
#include "per_layout.h"

/* ---- threads that start and end; cyclic lists ------------------------------------------------ */

/* T0 -> T1 -> T0 */
static void build_thread_cycle(struct world *w, struct stack st[2], uint64_t ts[2])
{
    for (int k = 0; k < 2; k++)
        ts[k] = add_thread(w, k, &st[k]);
    fakepy_put64(&w->fp, ts[1] + (uint64_t)cur->ts_next, ts[0]);
}

/* The one interpreter's fields are read every PY_INTERP_LIST_NS, not every round (walk.c): a
 * thread started in between must still be in the very next walk. */
static void thread_started_after_a_walk_is_in_the_next(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    world_init(w, HEAP_SMALL);
    uint64_t ts0 = add_thread(w, 0, &st[0]);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    uint64_t top = build_stack(&w->fp, 1, &st[1]);
    uint64_t ts1 = fakepy_thread_first(&w->fp, w->interp, top, thread_id_of(1), native_id_of(1));
    world_walk(w);
    assert_int_equal(w->s.nthreads, 2);
    assert_true(w->s.complete);
    assert_int_equal(w->s.threads[0].tstate, ts1);
    assert_int_equal(w->s.threads[1].tstate, ts0);
    check_healthy(&w->s, &w->s.threads[0], 1, &st[1]);
    check_healthy(&w->s, &w->s.threads[1], 0, &st[0]);
}

/* Rounds under PY_INTERP_LIST_NS / 2 apart use the interpreter's fields as read lately; slower
 * ones read them every round (in the prefetch). Judged by the cache's age alone, rounds 10 ms
 * apart read them every other round, with syscalls of their own. */
static uint64_t interp_fields_at(uint64_t interp)
{
    int32_t off[4] = {cur->is_next, cur->is_tstate_head, cur->is_id, cur->is_ceval_gil}, lo = INT32_MAX;
    for (int i = 0; i < 4; i++)
        if (off[i] >= 0 && off[i] < lo)
            lo = off[i];
    return interp + (uint64_t)lo;
}

static void slow_rounds_read_the_interpreter_every_round(void **state)
{
    struct world *w = *state;
    struct stack st[1];
    world_init(w, HEAP_SMALL);
    add_thread(w, 0, &st[0]);
    world_walk(w);
    struct spy *spy = spy_install(w->p);
    world_walk(w);                                   /* back to back: the cache serves */
    if (cur->ts_prev >= 0)   /* (without a prev link to check it against, no cache) */
        assert_int_equal(spy_hits(spy, interp_fields_at(w->interp), 1), 0);
    for (int i = 0; i < 3; i++) {
        spy = spy_install(w->p);
        w->p->walk_ns -= PY_INTERP_LIST_NS / 2;      /* as if the last round was 5 ms ago */
        world_walk(w);
        assert_int_equal(spy_hits(spy, interp_fields_at(w->interp), 1), 1);
        check_healthy(&w->s, &w->s.threads[0], 0, &st[0]);
    }
}

/* The first thread ended and was freed after a walk (the allocator wrote over its prev link):
 * the next walk does not list it, and lists the rest. */
static void first_thread_freed_after_a_walk_is_not_in_the_next(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    world_init(w, HEAP_SMALL);
    uint64_t ts0 = add_thread(w, 0, &st[0]);
    uint64_t ts1 = add_thread(w, 1, &st[1]);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 2);
    fakepy_put64(&w->fp, w->interp + (uint64_t)cur->is_tstate_head, ts1);
    if (cur->ts_prev >= 0) {
        fakepy_put64(&w->fp, ts1 + (uint64_t)cur->ts_prev, 0);
        fakepy_put64(&w->fp, ts0 + (uint64_t)cur->ts_prev, 0x55d1c0ffee0ull);   /* free list */
    }
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    assert_int_equal(w->s.threads[0].tstate, ts1);
    check_healthy(&w->s, &w->s.threads[0], 1, &st[1]);
}

static void thread_list_cycle_terminates(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    build_thread_cycle(w, st, ts);
    world_walk(w);
    assert_true(w->s.nthreads >= 2 && w->s.nthreads <= 4);
    assert_int_equal(w->s.threads[0].tstate, ts[0]);
    assert_int_equal(w->s.threads[1].tstate, ts[1]);
    check_healthy(&w->s, &w->s.threads[0], 0, &st[0]);
}

/* A cyclic list is torn memory: the snapshot must say so (incomplete, or a bad thread). */
static void assert_flagged(const struct py_snapshot *s)
{
    assert_true(!s->complete || s->bad_threads >= 1);
}

/* Nor may it list one thread state twice as if it were two healthy threads: a profile built from
 * the snapshot would count that stack twice. */
static void assert_no_healthy_duplicates(const struct py_snapshot *s)
{
    for (uint32_t i = 0; i < s->nthreads; i++)
        for (uint32_t j = i + 1; j < s->nthreads; j++)
            if (s->threads[i].tstate == s->threads[j].tstate && !s->threads[i].bad &&
                !s->threads[j].bad)
                fail_msg("thread state %#llx listed twice (entries %u and %u), neither bad",
                         (unsigned long long)s->threads[i].tstate, i, j);
}

static void thread_list_cycle_is_flagged(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    build_thread_cycle(w, st, ts);
    world_walk(w);
    assert_flagged(&w->s);
}

static void thread_list_cycle_lists_no_thread_twice(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    build_thread_cycle(w, st, ts);
    world_walk(w);
    assert_no_healthy_duplicates(&w->s);
}

/* I0 -> I1 -> I0, one thread each. */
static void build_interp_cycle(struct world *w, struct stack st[2], uint64_t ts[2])
{
    ts[0] = add_thread(w, 0, &st[0]);
    uint64_t i1 = fakepy_interp(&w->fp, 8);
    ts[1] = fakepy_thread(&w->fp, i1, build_stack(&w->fp, 1, &st[1]), thread_id_of(1), 1);
    fakepy_put64(&w->fp, i1 + (uint64_t)cur->is_next, w->interp);
}

static void interp_list_cycle_terminates(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    build_interp_cycle(w, st, ts);
    world_walk(w);
    assert_true(w->s.nthreads >= 2 && w->s.nthreads <= 4);
    assert_int_equal(w->s.threads[0].tstate, ts[0]);
    assert_int_equal(w->s.threads[1].tstate, ts[1]);
    check_healthy(&w->s, &w->s.threads[0], 0, &st[0]);
    check_healthy(&w->s, &w->s.threads[1], 1, &st[1]);
}

static void interp_list_cycle_is_flagged(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    build_interp_cycle(w, st, ts);
    world_walk(w);
    assert_flagged(&w->s);
}

static void interp_list_cycle_lists_no_thread_twice(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    build_interp_cycle(w, st, ts);
    world_walk(w);
    assert_no_healthy_duplicates(&w->s);
}

/* ---- torn lists, and thread states no thread runs -------------------------------------------- */

/* The thread set's signature: the same threads in another order give the same; a thread that
 * takes its own ids (count unchanged) gives another, so names are read again. */
static void thread_set_signature_follows_ids_not_count(void **state)
{
    (void)state;
    struct py_thread th[2] = {{.tstate = 0x1000, .thread_id = 0x7f00, .native_id = 40},
                              {.tstate = 0x2000, .thread_id = 0x7f00, .native_id = 40}};
    struct py_snapshot s = {.threads = th, .nthreads = 2};
    uint64_t before = py_thread_set_sig(&s);
    struct py_thread swapped[2] = {th[1], th[0]};
    struct py_snapshot s2 = {.threads = swapped, .nthreads = 2};
    assert_int_equal(py_thread_set_sig(&s2), before);
    th[0].thread_id = 0x7e00;
    th[0].native_id = 41;
    assert_int_not_equal(py_thread_set_sig(&s), before);
    s.nthreads = 1;
    assert_int_not_equal(py_thread_set_sig(&s), before);
}

/* A thread state that names another interpreter was freed or reused while the list was read: its
 * ids and its next link are garbage. The list is read again; still so, it ends there, counted
 * bad and incomplete (threads missing from it are not taken for ended), and the garbage is no
 * thread of the sample. */
static void torn_thread_state_ends_the_list_there(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    uint64_t ts = add_thread(w, 1, &st);
    uint64_t other = fakepy_interp(&w->fp, 4);   /* (listed after; it has no threads) */
    fakepy_put64(&w->fp, ts + (uint64_t)cur->ts_interp, other);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    assert_int_equal(w->s.bad_threads, 1);
    assert_false(w->s.complete);
}

/* Up to 3.11 the thread that starts another makes its thread state, with its own ids, and puts
 * it first in the list; the new thread sets its ids when it runs. Until then that thread state
 * is no second copy of its creator, with no stack (which would end the creator's calls) or with
 * the new thread's (read from an older copy of the thread state than of its frames). */
static void thread_state_not_yet_started_is_no_copy_of_its_creator(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    uint64_t creator = healthy_thread(w, &ok);
    fakepy_thread_first(&w->fp, w->interp, 0, thread_id_of(0), native_id_of(0));
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    assert_int_equal(w->s.threads[0].tstate, creator);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    assert_true(w->s.complete);

    fakepy_thread_first(&w->fp, w->interp, build_stack(&w->fp, 1, &st), thread_id_of(0),
                        native_id_of(0));
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    assert_int_equal(w->s.nframes, 3);
    assert_int_equal(w->s.bad_threads, 0);
}

/* A thread state no thread runs: 3.12+ list one before its thread starts, with no ids, and one
 * with no native id as its thread ends. Neither is a thread of the sample. */
static void thread_state_without_ids_is_no_thread(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    fakepy_thread(&w->fp, w->interp, 0, 0, 0);
    if (cur->ts_native_thread_id >= 0)
        fakepy_thread(&w->fp, w->interp, build_stack(&w->fp, 2, &st), thread_id_of(2), 0);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    assert_true(w->s.complete);
    assert_int_equal(w->s.bad_threads, 0);
}

static void wild_next_thread_pointer_is_counted_bad(void **state)
{
    struct world *w = *state;
    struct stack ok;
    world_init(w, HEAP_SMALL);
    uint64_t ts = healthy_thread(w, &ok);
    fakepy_put64(&w->fp, ts + (uint64_t)cur->ts_next, FAKEPY_UNMAPPED);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    assert_int_equal(w->s.bad_threads, 1);
    assert_false(w->s.complete);              /* the list was not read to its end */
}

/* ---- one OS thread in several interpreters (nested.c) ----------------------------------------- */

/* A thread of the main interpreter (id 0, listed last: new interpreters are put first) that
 * called into a subinterpreter has a thread state in each, with the same ids: one thread, the
 * subinterpreter's frames on top of its caller's, under the main thread state (its identity and
 * name). A thread the subinterpreter started itself, listed between them, keeps its own stack. */
static void thread_in_a_subinterpreter_is_one_stack_on_its_caller(void **state)
{
    struct world *w = *state;
    struct stack outer, inner, own;
    world_init(w, HEAP_SMALL);                              /* w->interp: the subinterpreter */
    uint64_t main_interp = fakepy_interp(&w->fp, 0);
    fakepy_thread(&w->fp, w->interp, build_stack(&w->fp, 1, &inner), thread_id_of(0),
                  native_id_of(0));
    uint64_t sub_own = fakepy_thread(&w->fp, w->interp, build_stack(&w->fp, 2, &own),
                                     thread_id_of(2), native_id_of(2));
    uint64_t caller = fakepy_thread(&w->fp, main_interp, build_stack(&w->fp, 0, &outer),
                                    thread_id_of(0), native_id_of(0));
    world_walk(w);
    assert_int_equal(w->s.nthreads, 2);
    assert_int_equal(w->s.nframes, 9);
    check_healthy(&w->s, thread_at(&w->s, sub_own), 2, &own);
    const struct py_thread *t = thread_at(&w->s, caller);
    assert_false(t->bad);
    assert_int_equal(t->nframes, 6);
    assert_int_equal(t->interp, main_interp);
    if (cur->ts_native_thread_id >= 0)
        assert_int_equal(t->native_id, native_id_of(0));
    for (int j = 0; j < 3; j++) {
        check_frame(&w->s, t, (uint32_t)j, 1, j, &inner);
        check_frame(&w->s, t, (uint32_t)(3 + j), 0, j, &outer);
    }
    assert_true(t->first + t->nframes <= w->s.nframes);
}

/* The same listed the other way round (the enclosing interpreter first, as ids say: from 3.7),
 * and with the inner state holding the GIL: still one thread, inner frames on top, holding it. */
static void nested_thread_listed_after_its_caller_is_merged_the_same(void **state)
{
    struct world *w = *state;
    struct stack outer, inner, other;
    world_init(w, HEAP_SMALL);                              /* w->interp: id INTERP_ID, outer */
    if (cur->is_id < 0)
        skip();   /* 2.7, 3.6: no ids, list order decides (the test above) */
    uint64_t caller = add_thread(w, 0, &outer);
    uint64_t bystander = add_thread(w, 2, &other);
    uint64_t sub = fakepy_interp(&w->fp, INTERP_ID + 5);
    uint64_t in = fakepy_thread(&w->fp, sub, build_stack(&w->fp, 1, &inner), thread_id_of(0),
                                native_id_of(0));
    fakepy_set_gil(&w->fp, sub, in, 1);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 2);
    check_healthy(&w->s, thread_at(&w->s, bystander), 2, &other);
    const struct py_thread *t = thread_at(&w->s, caller);
    assert_int_equal(t->nframes, 6);
    for (int j = 0; j < 3; j++) {
        check_frame(&w->s, t, (uint32_t)j, 1, j, &inner);
        check_frame(&w->s, t, (uint32_t)(3 + j), 0, j, &outer);
    }
    assert_true(t->holds_gil);
}

/* 3.12 keeps a thread's idle, empty state in a subinterpreter it has left: no second thread with
 * an empty stack (which the recorder took for the thread ending every call, every sample). */
static void idle_state_left_in_a_subinterpreter_is_no_thread(void **state)
{
    struct world *w = *state;
    struct stack ok;
    world_init(w, HEAP_SMALL);                              /* w->interp: the subinterpreter */
    uint64_t main_interp = fakepy_interp(&w->fp, 0);
    fakepy_thread(&w->fp, w->interp, 0, thread_id_of(0), native_id_of(0));
    uint64_t ts = fakepy_thread(&w->fp, main_interp, build_stack(&w->fp, 0, &ok), thread_id_of(0),
                                native_id_of(0));
    world_walk(w);
    assert_int_equal(w->s.nthreads, 1);
    assert_int_equal(w->s.threads[0].tstate, ts);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        WT(thread_started_after_a_walk_is_in_the_next),
        WT(slow_rounds_read_the_interpreter_every_round),
        WT(first_thread_freed_after_a_walk_is_not_in_the_next),
        WT(thread_list_cycle_terminates),
        WT(thread_list_cycle_is_flagged),
        WT(thread_list_cycle_lists_no_thread_twice),
        WT(interp_list_cycle_terminates),
        WT(interp_list_cycle_is_flagged),
        WT(interp_list_cycle_lists_no_thread_twice),
        WT(torn_thread_state_ends_the_list_there),
        WT(thread_set_signature_follows_ids_not_count),
        WT(thread_state_not_yet_started_is_no_copy_of_its_creator),
        WT(thread_state_without_ids_is_no_thread),
        WT(wild_next_thread_pointer_is_counted_bad),
        WT(thread_in_a_subinterpreter_is_one_stack_on_its_caller),
        WT(nested_thread_listed_after_its_caller_is_merged_the_same),
        WT(idle_state_left_in_a_subinterpreter_is_no_thread),
    };
    return PER_LAYOUT_RUN("threads", tests, cur);
}
