/*
 * test_codecache.c — readers/code.c as the walk uses it, over fake CPython processes built by
 * fakepy.c from each generated layout (fake_world.h), one cmocka group per CPython version: a
 * decoded code object is not read again within an epoch; at a tick it is re-checked (one read of
 * its head; a sampler's tick re-checks all of them in one readv), and one that another code object
 * replaced, or that was freed, is noticed then. A frame's memo holds only while the frame is seen
 * walk after walk, and a body's code is checked again for each new frame.
 */
#include "fake_world.h"
#include "per_layout.h"

static size_t code_size(void)
{
    size_t size = (size_t)cur->co_size;
    if (cur->co_code_adaptive >= 0 && (size_t)cur->co_code_adaptive + FAKEPY_CODE_LEN > size)
        size = (size_t)cur->co_code_adaptive + FAKEPY_CODE_LEN;
    return size;
}


static void code_objects_are_not_reread_within_an_epoch(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    struct spy *spy = warm_world(w, st);
    world_walk(w);
    for (int k = 0; k < 2; k++) {
        check_healthy(&w->s, &w->s.threads[k], k, &st[k]);
        for (int j = 0; j < 3; j++) {
            uint64_t c = st[k].codes[j];
            assert_int_equal(spy_hits(spy, c, code_size()), 0);
            assert_int_equal(spy_hits(spy, fakepy_get64(&w->fp, c + (uint64_t)cur->co_name), 8), 0);
        }
    }
    /* What is left: the runtime, interpreter, thread states and frames, a few reads each —
     * fewer than the warm-up walk, which also decoded six code objects (its reads are the fake
     * source's own count, the spy having come after). */
    assert_true(spy->base.reads > 0 && spy->base.reads <= 24);
    assert_true(spy->base.reads < spy->inner->reads);
}

/* Frame f (running code) is now at another instruction: a new call in the same slot, or its
 * caller moved on — either way no longer the frame the walker's memo remembers. */
static void move_frame(struct world *w, uint64_t f, uint64_t code, int lasti)
{
    if (cur->frame_model == PY_FRAMES_INTERP) {
        fakepy_put64(&w->fp, f + (uint64_t)cur->if_instr,
                     code + (uint64_t)cur->co_code_adaptive + (uint64_t)lasti);
        return;
    }
    int stored = cur->major == 3 && cur->minor == 10 ? lasti / 2 : lasti;
    fakepy_put32(&w->fp, f + (uint64_t)cur->fo_lasti, (uint32_t)stored);
}

/* A frame that stays where it was still runs its code object (a frame holds a reference to it),
 * so it is not re-validated; a frame that moved goes through the cache, re-validated once per
 * tick. */
static void code_objects_are_revalidated_once_per_tick(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    struct spy *spy = warm_world(w, st);
    code_cache_tick(w->p->codes);
    world_walk(w);
    for (int k = 0; k < 2; k++) {
        check_healthy(&w->s, &w->s.threads[k], k, &st[k]);
        for (int j = 0; j < 3; j++)
            assert_int_equal(spy_hits(spy, st[k].codes[j], code_size()), 0);
    }
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            move_frame(w, st[k].frames[j], st[k].codes[j], frame_lasti[j] + 2);
    spy = spy_install(w->p);
    code_cache_tick(w->p->codes);
    world_walk(w);
    for (int k = 0; k < 2; k++) {
        assert_false(w->s.threads[k].bad);
        for (int j = 0; j < 3; j++) {
            uint64_t c = st[k].codes[j];
            /* One read of the object's head; names unchanged, so not decoded again. */
            assert_int_equal(spy_hits(spy, c, code_size()), 1);
            assert_int_equal(spy_hits(spy, fakepy_get64(&w->fp, c + (uint64_t)cur->co_name), 8), 0);
            assert_int_equal(spy_hits(spy, fakepy_get64(&w->fp, c + (uint64_t)cur->co_linetable), 8),
                             0);
        }
    }
}

/* A sampler's tick re-checks the code objects met in the epoch that ends all at once: one readv
 * of their heads, then no read of its own when a frame running one moves. One whose head changed
 * (another code object at that address) is left to the next lookup, which decodes it afresh. */
static void code_objects_are_rechecked_in_one_read_at_a_tick(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    struct spy *spy = warm_world(w, st);
    uint32_t old_id = w->s.frames[0].code->id;
    fakepy_put64(&w->fp, st[0].codes[0] + (uint64_t)cur->co_name, fakepy_str(&w->fp, "renamed"));
    code_cache_recheck(w->p->codes, w->p->mem, &w->p->layout, &w->p->types);
    assert_int_equal(spy->readvs, 1);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            assert_int_equal(spy_hits(spy, st[k].codes[j], code_size()), 1);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            move_frame(w, st[k].frames[j], st[k].codes[j], frame_lasti[j] + 2);
    spy = spy_install(w->p);
    world_walk(w);
    for (int k = 0; k < 2; k++) {
        assert_false(w->s.threads[k].bad);
        for (int j = 0; j < 3; j++)
            assert_int_equal(spy_hits(spy, st[k].codes[j], code_size()), k == 0 && j == 0);
    }
    const struct py_code *c = w->s.frames[0].code;
    assert_non_null(c);
    assert_string_equal(c->name, "renamed");
    assert_int_not_equal(c->id, old_id);
    char n[64];
    name_of(n, sizeof n, 0, 1);
    assert_string_equal(py_thread_frame(&w->s, &w->s.threads[0], 1)->code->name, n);
}

static void cache_trusts_entries_until_tick_then_sees_a_replaced_code_object(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    warm_world(w, st);
    uint32_t old_id = w->s.frames[0].code->id;
    /* Another code object now lives at the same address: new name pointer. */
    fakepy_put64(&w->fp, st[0].codes[0] + (uint64_t)cur->co_name, fakepy_str(&w->fp, "renamed"));
    world_walk(w);
    char n[64];
    name_of(n, sizeof n, 0, 0);
    assert_string_equal(w->s.frames[0].code->name, n);    /* not re-read within the epoch */

    code_cache_tick(w->p->codes);
    move_frame(w, st[0].frames[0], st[0].codes[0], frame_lasti[0] + 2);   /* a new call of it */
    world_walk(w);
    const struct py_code *c = w->s.frames[0].code;
    assert_non_null(c);
    assert_string_equal(c->name, "renamed");
    assert_int_not_equal(c->id, old_id);               /* traces must not merge the two */
    check_frame(&w->s, &w->s.threads[0], 1, 0, 1, &st[0]);
}

static void freed_code_object_is_noticed_after_tick(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    warm_world(w, st);
    fakepy_put64(&w->fp, st[1].codes[2] + (uint64_t)cur->ob_type, w->fp.str_type);
    world_walk(w);
    assert_false(w->s.threads[1].bad);                  /* cached: not looked at this epoch */
    code_cache_tick(w->p->codes);
    for (int j = 0; j < 3; j++)   /* thread 1 made new calls since */
        move_frame(w, st[1].frames[j], st[1].codes[j], frame_lasti[j] + 2);
    world_walk(w);
    assert_true(w->s.threads[1].bad);
    assert_null(py_thread_frame(&w->s, &w->s.threads[1], 2)->code);
    assert_false(w->s.threads[0].bad);
}

/* A frame not seen for two walks may have ended, its code object freed, and both addresses
 * reused by another call at the same offset: the walker's memo of (frame, code, offset) is not
 * believed then, and the cache re-checks the code object once its epoch is over. (Believed for
 * ever, it named a 3.6 program's function after site.py's module body for the whole run.) */
static void frame_back_after_two_walks_is_not_taken_from_the_memo(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    warm_world(w, st);
    uint64_t f = st[0].frames[0], c = st[0].codes[0];
    for (int i = 0; i < 2; i++) {
        move_frame(w, f, c, frame_lasti[0] + 2);
        world_walk(w);
    }
    code_cache_tick(w->p->codes);
    fakepy_put64(&w->fp, c + (uint64_t)cur->co_name, fakepy_str(&w->fp, "reused"));
    move_frame(w, f, c, frame_lasti[0]);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    assert_string_equal(w->s.frames[0].code->name, "reused");
    check_frame(&w->s, &w->s.threads[0], 1, 0, 1, &st[0]);
}

/* A frame seen in the walk before keeps its code entry from the memo (it holds a reference to
 * its code object), even across a tick: no read of the code object. */
static void frame_seen_in_the_last_walk_is_taken_from_the_memo(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    warm_world(w, st);
    code_cache_tick(w->p->codes);
    struct spy *spy = spy_install(w->p);
    world_walk(w);
    for (int k = 0; k < 2; k++) {
        check_healthy(&w->s, &w->s.threads[k], k, &st[k]);
        for (int j = 0; j < 3; j++)
            assert_int_equal(spy_hits(spy, st[k].codes[j], code_size()), 0);
    }
}

/* A module's body runs in one frame, and its code object is freed when the import ends; the next
 * code object made often gets its address. An entry of a body's code asked for by another frame
 * is checked again within its epoch; a function's is not (its frames come and go while it
 * lives). */
static void body_code_asked_for_by_another_frame_is_checked_again(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    world_init(w, HEAP_SMALL);
    uint64_t ts = add_thread(w, 0, &st[0]);
    add_thread(w, 1, &st[1]);
    uint64_t body = st[0].codes[0], fn = st[1].codes[0];
    fakepy_put32(&w->fp, body + (uint64_t)cur->co_flags, 0);
    world_walk(w);
    char n[64];
    name_of(n, sizeof n, 0, 0);
    assert_string_equal(w->s.frames[0].code->name, n);
    assert_true(w->s.frames[0].code->body);

    /* The body ended; a function now has its code object's address, called in a new frame. */
    fakepy_put64(&w->fp, body + (uint64_t)cur->co_name, fakepy_str(&w->fp, "handler"));
    fakepy_put32(&w->fp, body + (uint64_t)cur->co_flags, FAKEPY_CO_FUNCTION);
    fakepy_set_top(&w->fp, ts, fakepy_frame(&w->fp, body, st[0].frames[1], frame_lasti[0]));
    /* A function's entry is trusted within its epoch, whichever frame asks. */
    fakepy_put64(&w->fp, fn + (uint64_t)cur->co_name, fakepy_str(&w->fp, "renamed"));
    const struct py_thread *t1 = &w->s.threads[1];
    uint64_t fn_top = fakepy_frame(&w->fp, fn, st[1].frames[1], frame_lasti[0]);
    fakepy_set_top(&w->fp, t1->tstate, fn_top);
    struct spy *spy = spy_install(w->p);
    world_walk(w);
    assert_false(w->s.threads[0].bad);
    const struct py_code *c = w->s.frames[0].code;
    assert_string_equal(c->name, "handler");
    assert_false(c->body);
    check_frame(&w->s, &w->s.threads[0], 1, 0, 1, &st[0]);
    name_of(n, sizeof n, 1, 0);
    assert_string_equal(py_thread_frame(&w->s, &w->s.threads[1], 0)->code->name, n);
    assert_int_equal(spy_hits(spy, fn, code_size()), 0);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        WT(code_objects_are_not_reread_within_an_epoch),
        WT(code_objects_are_revalidated_once_per_tick),
        WT(code_objects_are_rechecked_in_one_read_at_a_tick),
        WT(cache_trusts_entries_until_tick_then_sees_a_replaced_code_object),
        WT(freed_code_object_is_noticed_after_tick),
        WT(frame_back_after_two_walks_is_not_taken_from_the_memo),
        WT(frame_seen_in_the_last_walk_is_taken_from_the_memo),
        WT(body_code_asked_for_by_another_frame_is_checked_again),
    };
    return PER_LAYOUT_RUN("codecache", tests, cur);
}
