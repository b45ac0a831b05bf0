/*
 * test_walk.c — readers/walk.c (with code.c and pyobj.c under it) over fake CPython processes
 * built by fakepy.c from each generated layout (fake_world.h): every test runs once per CPython
 * version in py_layouts_gen[], as its own cmocka group. Pins what a walk reads back, the thread
 * and interpreter lists, the GIL holder, names as decoded, how corrupt or torn target memory ends
 * a walk (quickly, flagged, never a crash), and that steady-state walks do not allocate. One
 * thread's frame walk itself is test_stack.c's; the code cache's read economy, test_codecache.c's;
 * the thread and interpreter lists as threads start and end, or as they are torn or cyclic,
 * test_threads.c's.
 */
#include "fake_world.h"
#include "per_layout.h"

#include <sys/wait.h>
#include <unistd.h>

/* ---- what a walk reads back ----------------------------------------------------------------- */

static void walk_reads_two_threads_of_three_frames(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    for (int k = 0; k < 2; k++)
        ts[k] = add_thread(w, k, &st[k]);
    world_walk(w);

    assert_int_equal(w->s.nthreads, 2);
    assert_int_equal(w->s.nframes, 6);
    assert_int_equal(w->s.bad_threads, 0);
    assert_true(w->s.complete);
    assert_int_equal(w->s.gil_holder, 0);
    assert_true(w->s.t_ns > 0);
    for (int k = 0; k < 2; k++) {
        const struct py_thread *t = &w->s.threads[k];     /* list order */
        assert_int_equal(t->tstate, ts[k]);
        assert_int_equal(t->interp, w->interp);
        assert_int_equal(t->interp_id, cur->is_id >= 0 ? INTERP_ID : -1);
        assert_int_equal(t->thread_id, thread_id_of(k));
        /* Before 3.11 the tid comes from struct pthread, which a fake process has not got. */
        assert_int_equal(t->native_id, cur->ts_native_thread_id >= 0 ? native_id_of(k) : -1);
        assert_false(t->holds_gil);
        check_healthy(&w->s, t, k, &st[k]);
    }
}

static void walk_reads_threads_of_every_interpreter(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    world_init(w, HEAP_SMALL);
    uint64_t ts0 = add_thread(w, 0, &st[0]);
    uint64_t interp2 = fakepy_interp(&w->fp, 9);
    uint64_t top = build_stack(&w->fp, 1, &st[1]);
    uint64_t ts1 = fakepy_thread(&w->fp, interp2, top, thread_id_of(1), native_id_of(1));
    world_walk(w);

    assert_int_equal(w->s.nthreads, 2);
    assert_int_equal(w->s.threads[0].tstate, ts0);
    assert_int_equal(w->s.threads[0].interp, w->interp);
    assert_int_equal(w->s.threads[1].tstate, ts1);
    assert_int_equal(w->s.threads[1].interp, interp2);
    assert_int_equal(w->s.threads[1].interp_id, cur->is_id >= 0 ? 9 : -1);
    check_healthy(&w->s, &w->s.threads[0], 0, &st[0]);
    check_healthy(&w->s, &w->s.threads[1], 1, &st[1]);
}

static void walk_of_runtime_without_interpreters_is_empty(void **state)
{
    struct world *w = *state;
    fakepy_init(&w->fp, cur, HEAP_SMALL);     /* no fakepy_interp(): the list stays empty */
    w->live = true;
    py_snapshot_init(&w->s);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 0);
    assert_int_equal(w->s.nframes, 0);
    assert_int_equal(w->s.bad_threads, 0);
    assert_true(w->s.complete);
}

static void walk_keeps_frames_shared_by_threads_on_one_code_entry(void **state)
{
    struct world *w = *state;
    world_init(w, HEAP_SMALL);
    uint64_t code = fakepy_code(&w->fp, "shared", "Mod.shared", "/srv/shared.py", 40);
    for (int k = 0; k < 2; k++) {
        uint64_t f = fakepy_frame(&w->fp, code, 0, 12);
        f = fakepy_frame(&w->fp, code, f, 4);
        fakepy_thread(&w->fp, w->interp, f, thread_id_of(k), native_id_of(k));
    }
    world_walk(w);
    assert_int_equal(w->s.nframes, 4);
    for (uint32_t i = 1; i < 4; i++)
        assert_ptr_equal(w->s.frames[i].code, w->s.frames[0].code);
    assert_int_equal(w->s.frames[0].line, fakepy_line(40, 4));     /* innermost */
    assert_int_equal(w->s.frames[1].line, fakepy_line(40, 12));
    assert_int_equal(code_cache_size(w->p->codes), 1);
}

/* ---- interpreter frames: owners --------------------------------------------------------------- */

static bool interp_frames(void) { return cur->frame_model == PY_FRAMES_INTERP; }

static void cstack_owned_frames_are_skipped(void **state)
{
    if (!interp_frames() || cur->if_owner_cstack < 0)
        skip();
    struct world *w = *state;
    world_init(w, HEAP_SMALL);
    struct stack st;
    build_stack(&w->fp, 0, &st);
    /* Insert a C-stack shim between frames 0 and 1. Its code is unmapped: a walker that looked
     * at it would mark the thread bad. */
    uint64_t shim = fakepy_frame(&w->fp, FAKEPY_UNMAPPED, st.frames[1], 0);
    fakepy_frame_owner(&w->fp, shim, cur->if_owner_cstack);
    fakepy_put64(&w->fp, fakepy_frame_back_addr(&w->fp, st.frames[0]), shim);
    fakepy_thread(&w->fp, w->interp, st.frames[0], thread_id_of(0), native_id_of(0));
    world_walk(w);

    assert_int_equal(w->s.nthreads, 1);
    check_healthy(&w->s, &w->s.threads[0], 0, &st);
}

static void generator_and_frame_object_owned_frames_are_kept(void **state)
{
    if (!interp_frames())
        skip();
    struct world *w = *state;
    world_init(w, HEAP_SMALL);
    struct stack st;
    add_thread(w, 0, &st);
    fakepy_frame_owner(&w->fp, st.frames[1], 1);    /* FRAME_OWNED_BY_GENERATOR */
    fakepy_frame_owner(&w->fp, st.frames[2], 2);    /* FRAME_OWNED_BY_FRAME_OBJECT */
    world_walk(w);
    check_healthy(&w->s, &w->s.threads[0], 0, &st);
}

/* ---- strings -------------------------------------------------------------------------------- */

static void names_of_every_width_come_out_as_utf8(void **state)
{
    struct world *w = *state;
    /* latin-1 (1 byte, not ASCII), UCS-2, UCS-4 on 3.x; UTF-8 byte strings on 2.7. */
    static const char *names[3] = { "caf\xc3\xa9", "\xe5\x87\xbd\xe6\x95\xb0",
                                    "\xf0\x90\x8c\xb0\xf0\x90\x8c\xb1" };
    static const char *quals[3] = { "Klasse.caf\xc3\xa9", "\xe7\xb1\xbb.\xe5\x87\xbd\xe6\x95\xb0",
                                    "\xf0\x90\x8c\xb0.\xf0\x90\x8c\xb0\xf0\x90\x8c\xb1" };
    static const char *files[3] = { "/srv/caf\xc3\xa9.py", "/srv/\xe5\x87\xbd\xe6\x95\xb0.py",
                                    "/srv/\xf0\x90\x8c\xb0\xf0\x90\x8c\xb1.py" };
    world_init(w, HEAP_SMALL);
    uint64_t back = 0;
    for (int j = 2; j >= 0; j--) {
        uint64_t code = fakepy_code(&w->fp, names[j], quals[j], files[j], 10);
        back = fakepy_frame(&w->fp, code, back, 12);
    }
    fakepy_thread(&w->fp, w->interp, back, thread_id_of(0), native_id_of(0));
    world_walk(w);

    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_int_equal(t->nframes, 3);
    for (int j = 0; j < 3; j++) {
        const struct py_code *c = py_thread_frame(&w->s, t, (uint32_t)j)->code;
        assert_non_null(c);
        assert_string_equal(c->name, names[j]);
        assert_string_equal(c->qualname, has_qualname() ? quals[j] : names[j]);
        assert_string_equal(c->filename, files[j]);
    }
}

static void py27_unicode_objects_come_out_as_utf8(void **state)
{
    if (cur->strings != PY_STR_BYTES27)
        skip();
    struct world *w = *state;
    world_init(w, HEAP_SMALL);
    const char *file = "/srv/\xe5\x87\xbd\xe6\x95\xb0-\xf0\x90\x8c\xb0-caf\xc3\xa9.py";
    uint64_t code = fakepy_code_objs(&w->fp, fakepy_str(&w->fp, "run"), 0,
                                     fakepy_unicode27(&w->fp, file), 10);
    fakepy_thread(&w->fp, w->interp, fakepy_frame(&w->fp, code, 0, 4), thread_id_of(0), -1);
    world_walk(w);
    const struct py_frame *f = py_thread_frame(&w->s, &w->s.threads[0], 0);
    assert_non_null(f->code);
    assert_string_equal(f->code->name, "run");
    assert_string_equal(f->code->filename, file);
}

/* A short ASCII name whose object ends exactly where its mapping ends (the last object of a
 * pymalloc arena): the object is complete and must be read. */
static void short_name_at_end_of_mapping_is_read(void **state)
{
    struct world *w = *state;
    world_init(w, HEAP_SMALL);
    uint64_t tmp = fakepy_str(&w->fp, "f");
    size_t size = cur->strings == PY_STR_BYTES27 ? (size_t)cur->bytes_sval + 2
                                                 : (size_t)cur->uni_ascii_size + 2;
    const uint64_t lone = 0x7f3c00000000ULL;
    assert_int_equal(mem_fake_add(w->fp.mem, lone, w->fp.heap + (tmp - w->fp.base), size), 0);
    uint64_t code = fakepy_code_objs(&w->fp, lone, lone, fakepy_str(&w->fp, "/srv/f.py"), 10);
    fakepy_thread(&w->fp, w->interp, fakepy_frame(&w->fp, code, 0, 4), thread_id_of(0), 1);
    world_walk(w);
    const struct py_thread *t = &w->s.threads[0];
    assert_false(t->bad);
    assert_non_null(py_thread_frame(&w->s, t, 0)->code);
    assert_string_equal(py_thread_frame(&w->s, t, 0)->code->name, "f");
}

/* ---- the GIL -------------------------------------------------------------------------------- */

static void gil_holder_is_the_thread_the_runtime_names(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    for (int k = 0; k < 2; k++)
        ts[k] = add_thread(w, k, &st[k]);
    fakepy_set_gil(&w->fp, w->interp, ts[1], 1);
    world_walk(w);
    assert_int_equal(w->s.gil_holder, ts[1]);
    assert_false(w->s.threads[0].holds_gil);
    assert_true(w->s.threads[1].holds_gil);
}

static void released_gil_has_no_holder(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    for (int k = 0; k < 2; k++)
        ts[k] = add_thread(w, k, &st[k]);
    /* 3.12+: last_holder still names thread 2, but the GIL is unlocked. */
    fakepy_set_gil(&w->fp, w->interp, ts[1], 0);
    world_walk(w);
    assert_int_equal(w->s.gil_holder, 0);
    assert_false(w->s.threads[0].holds_gil);
    assert_false(w->s.threads[1].holds_gil);
}

/* ---- corrupt and torn memory ------------------------------------------------------------------ */

static void code_object_of_wrong_type_marks_the_thread_bad(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    uint64_t ts = add_thread(w, 1, &st);
    fakepy_put64(&w->fp, st.codes[1] + (uint64_t)cur->ob_type, w->fp.str_type);
    world_walk(w);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    const struct py_thread *t = thread_at(&w->s, ts);
    assert_true(t->bad);
    assert_true(t->nframes >= 2);
    check_frame(&w->s, t, 0, 1, 0, &st);
    assert_null(py_thread_frame(&w->s, t, 1)->code);
    assert_int_equal(py_thread_frame(&w->s, t, 1)->line, -1);
}

/* A thread whose innermost code object has hostile name objects. */
static uint64_t thread_with_names(struct world *w, int k, uint64_t name, uint64_t file)
{
    uint64_t code = fakepy_code_objs(&w->fp, name, name, file, 10);
    return fakepy_thread(&w->fp, w->interp, fakepy_frame(&w->fp, code, 0, 4), thread_id_of(k), k);
}

static void name_of_length_2_pow_60_marks_the_thread_bad(void **state)
{
    struct world *w = *state;
    struct stack ok;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    int32_t len_at = cur->strings == PY_STR_BYTES27 ? cur->ob_size : cur->uni_length;
    uint64_t huge = fakepy_str(&w->fp, "name");
    fakepy_put64(&w->fp, huge + (uint64_t)len_at, 1ULL << 60);
    uint64_t ts1 = thread_with_names(w, 1, huge, fakepy_str(&w->fp, "/srv/a.py"));
    uint64_t ts2 = thread_with_names(w, 2, fakepy_str(&w->fp, "name"), huge);
    world_walk(w);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    for (int i = 0; i < 2; i++) {
        const struct py_thread *t = thread_at(&w->s, i ? ts2 : ts1);
        assert_true(t->bad);
        assert_null(py_thread_frame(&w->s, t, 0)->code);
    }
}

static void unmapped_co_name_marks_the_thread_bad(void **state)
{
    struct world *w = *state;
    struct stack ok;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    uint64_t ts = thread_with_names(w, 1, FAKEPY_UNMAPPED, fakepy_str(&w->fp, "/srv/a.py"));
    world_walk(w);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    const struct py_thread *t = thread_at(&w->s, ts);
    assert_true(t->bad);
    assert_int_equal(t->nframes, 1);
    assert_null(py_thread_frame(&w->s, t, 0)->code);
}

/* code.h: a malformed line table leaves the code usable with every line at firstlineno. */
static void linetable_of_bad_size_falls_back_to_firstlineno(void **state)
{
    struct world *w = *state;
    static const int64_t sizes[] = { -1, 1000000000 };
    struct stack ok, st[2];
    uint64_t ts[2];
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    for (int i = 0; i < 2; i++) {
        ts[i] = add_thread(w, 1 + i, &st[i]);
        uint64_t lt = fakepy_get64(&w->fp, st[i].codes[0] + (uint64_t)cur->co_linetable);
        fakepy_put64(&w->fp, lt + (uint64_t)cur->ob_size, (uint64_t)sizes[i]);
    }
    world_walk(w);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    for (int i = 0; i < 2; i++) {
        const struct py_thread *t = thread_at(&w->s, ts[i]);
        assert_false(t->bad);
        assert_int_equal(t->nframes, 3);
        const struct py_frame *f = py_thread_frame(&w->s, t, 0);
        assert_non_null(f->code);
        assert_true(f->code->bad_linetable);
        char n[64];
        name_of(n, sizeof n, 1 + i, 0);
        assert_string_equal(f->code->name, n);
        assert_int_equal(f->line, first_line(1 + i, 0));
        check_frame(&w->s, t, 1, 1 + i, 1, &st[i]);
    }
}

/* The head of the interpreter list points into unmapped memory: the walk cannot have seen the
 * target's threads, so it must not pass for a sample of a process with none. */
static void wild_interpreter_pointer_is_reported(void **state)
{
    struct world *w = *state;
    struct stack ok;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    uint64_t head = w->fp.runtime ? w->fp.runtime + (uint64_t)cur->rt_interpreters_head
                                 : w->fp.interp_head_addr;
    fakepy_put64(&w->fp, head, FAKEPY_UNMAPPED);
    struct pt_err err;
    pt_err_clear(&err);
    enum pt_status rc = world_walk_rc(w, &err);
    assert_true(rc != PT_OK || !w->s.complete || w->s.bad_threads >= 1);
}

static void unreadable_interpreter_list_fails_or_reports_exit(void **state)
{
    struct world *w = *state;
    struct stack ok;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    w->p = fakepy_proc(&w->fp);
    if (w->p->runtime)
        w->p->runtime = FAKEPY_UNMAPPED;
    else
        w->p->interp_head_addr = FAKEPY_UNMAPPED;
    struct pt_err err;
    /* A live target whose runtime is unreadable: a failure, with a message. */
    w->p->pid = getpid();
    pt_err_clear(&err);
    assert_int_equal(py_walk(w->p, &w->s, 0, &err), PT_EFAIL);
    assert_int_equal(err.code, PT_EFAIL);
    assert_true(err.msg[0] != '\0');
    /* A target that has exited: PT_ENOPROC. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    w->p->pid = child;
    pt_err_clear(&err);
    assert_int_equal(py_walk(w->p, &w->s, 0, &err), PT_ENOPROC);
    assert_int_equal(err.code, PT_ENOPROC);
}

/* ---- allocation ----------------------------------------------------------------------------- */

static void steady_state_walk_does_not_reallocate(void **state)
{
    struct world *w = *state;
    struct stack st[2];
    warm_world(w, st);
    struct py_frame *frames = w->s.frames;
    struct py_thread *threads = w->s.threads;
    uint32_t cap_f = w->s.cap_frames, cap_t = w->s.cap_threads;
    for (int i = 0; i < 3; i++) {
        if (i == 2)
            code_cache_tick(w->p->codes);
        world_walk(w);
        assert_ptr_equal(w->s.frames, frames);
        assert_ptr_equal(w->s.threads, threads);
        assert_int_equal(w->s.cap_frames, cap_f);
        assert_int_equal(w->s.cap_threads, cap_t);
        assert_int_equal(w->s.nframes, 6);
    }
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        WT(walk_reads_two_threads_of_three_frames),
        WT(walk_reads_threads_of_every_interpreter),
        WT(walk_of_runtime_without_interpreters_is_empty),
        WT(walk_keeps_frames_shared_by_threads_on_one_code_entry),
        WT(cstack_owned_frames_are_skipped),
        WT(generator_and_frame_object_owned_frames_are_kept),
        WT(names_of_every_width_come_out_as_utf8),
        WT(py27_unicode_objects_come_out_as_utf8),
        WT(short_name_at_end_of_mapping_is_read),
        WT(gil_holder_is_the_thread_the_runtime_names),
        WT(released_gil_has_no_holder),
        WT(code_object_of_wrong_type_marks_the_thread_bad),
        WT(name_of_length_2_pow_60_marks_the_thread_bad),
        WT(unmapped_co_name_marks_the_thread_bad),
        WT(linetable_of_bad_size_falls_back_to_firstlineno),
        WT(wild_interpreter_pointer_is_reported),
        WT(unreadable_interpreter_list_fails_or_reports_exit),
        WT(steady_state_walk_does_not_reallocate),
    };
    return PER_LAYOUT_RUN("walk", tests, cur);
}
