/*
 * test_walk.c — readers/walk.c (with code.c and pyobj.c under it) over fake CPython processes
 * built by fakepy.c from each generated layout: every test runs once per CPython version in
 * py_layouts_gen[], as its own cmocka group. Pins what a walk reads back, the GIL holder, how
 * corrupt or torn target memory ends a walk (quickly, flagged, never a crash), the code cache's
 * read economy, and that steady-state walks do not allocate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "readers/walk.h"

/* The builder is test code shared by unit tests; including it keeps the build one file a test. */
#include "fakepy.c"

#define HEAP_SMALL (1u << 20)
#define HEAP_DEEP (4u << 20)
#define INTERP_ID 3            /* any id: nonzero so that a missed read shows */

/* The layout the current cmocka group runs under. */
static const struct py_layout *cur;

static bool has_qualname(void) { return cur->co_qualname >= 0; }
static bool interp_frames(void) { return cur->frame_model == PY_FRAMES_INTERP; }

/* ---- a memory source that records every read (to pin what the cache spares) ---------------- */

#define SPY_LOG 16384

struct spy {
    struct mem_src base;
    struct mem_src *inner;
    size_t n;
    struct { uint64_t addr; size_t len; } log[SPY_LOG];
    /* The target moving on while it is read: after_read runs once, right after the first read
     * that starts at after_addr (between two iovecs of one readv, too). */
    void (*after_read)(void *ctx);
    void *ctx;
    uint64_t after_addr;
};

static int spy_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    struct spy *s = (struct spy *)src;
    src->reads++;
    if (s->n < SPY_LOG) {
        s->log[s->n].addr = addr;
        s->log[s->n++].len = len;
    }
    int rc = mem_read(s->inner, addr, buf, len);
    if (rc != 0)
        src->failures++;
    if (s->after_read && addr == s->after_addr) {
        void (*after)(void *) = s->after_read;
        s->after_read = NULL;
        after(s->ctx);
    }
    return rc;
}

static int spy_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    for (int i = 0; i < n; i++)
        if (spy_read(src, iov[i].addr, iov[i].buf, iov[i].len) != 0)
            return i;
    return n;
}

static void spy_close(struct mem_src *src)
{
    struct spy *s = (struct spy *)src;
    mem_close(s->inner);
    free(s);
}

static const struct mem_ops spy_ops = { spy_read, spy_readv, spy_close };

/* Puts a spy between p and its memory; the proc owns the spy from then on. */
static struct spy *spy_install(struct py_proc *p)
{
    struct spy *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->base.ops = &spy_ops;
    s->inner = p->mem;
    p->mem = &s->base;
    return s;
}

/* Reads logged that start inside the object at [lo, lo + len). (A read that merely runs on past
 * the end of a neighbour is that neighbour's business, not a read of this object.) */
static int spy_hits(const struct spy *s, uint64_t lo, size_t len)
{
    int hits = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->log[i].addr >= lo && s->log[i].addr < lo + len)
            hits++;
    return hits;
}

/* ---- a fake process: one interpreter, threads of three frames ------------------------------- */

/* Allocated by the cmocka setup and freed by its teardown, which also runs after a failed
 * assertion: a failing test must not turn into a LeakSanitizer report. */
struct world {
    bool live;
    struct fakepy fp;
    struct py_proc *p;
    struct py_snapshot s;
    uint64_t interp;
};

static void world_init(struct world *w, size_t heap)
{
    fakepy_init(&w->fp, cur, heap);
    w->live = true;
    w->p = NULL;
    py_snapshot_init(&w->s);
    w->interp = fakepy_interp(&w->fp, INTERP_ID);
}

/* Hands the fake memory to a py_proc (first call) and walks it. */
static enum pt_status world_walk_rc(struct world *w, struct pt_err *err)
{
    if (!w->p)
        w->p = fakepy_proc(&w->fp);
    return py_walk(w->p, &w->s, 0, err);
}

static void world_walk(struct world *w)
{
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(world_walk_rc(w, &err), PT_OK);
}

static void world_fini(struct world *w)
{
    if (!w->live)
        return;
    py_snapshot_free(&w->s);
    py_proc_close(w->p);
    fakepy_fini(&w->fp);
    w->live = false;
}

static int world_setup(void **state)
{
    *state = calloc(1, sizeof(struct world));
    return *state ? 0 : -1;
}

static int world_teardown(void **state)
{
    world_fini(*state);
    free(*state);
    return 0;
}

/* What thread k's frame j (0 = innermost) runs. */
static const int frame_lasti[3] = { 12, 4, 30 };

static int first_line(int k, int j) { return 100 * (k + 1) + 10 * j; }
static uint64_t thread_id_of(int k) { return 0x7f3a5f7fe700ULL + (uint64_t)k * 0x801000; }
static int64_t native_id_of(int k) { return 4100 + k; }

static void name_of(char *buf, size_t cap, int k, int j) { snprintf(buf, cap, "work_%d_%d", k, j); }
static void qualname_of(char *buf, size_t cap, int k, int j)
{
    snprintf(buf, cap, "Worker%d.work_%d_%d", k, k, j);
}
static void file_of(char *buf, size_t cap, int k, int j)
{
    snprintf(buf, cap, "/srv/app/mod%d_%d.py", k, j);
}

struct stack {
    uint64_t frames[3];     /* innermost first */
    uint64_t codes[3];
};

/* Three frames of thread k, each with its own code object; returns the innermost frame. */
static uint64_t build_stack(struct fakepy *fp, int k, struct stack *st)
{
    uint64_t back = 0;
    for (int j = 2; j >= 0; j--) {
        char n[64], q[64], f[64];
        name_of(n, sizeof n, k, j);
        qualname_of(q, sizeof q, k, j);
        file_of(f, sizeof f, k, j);
        st->codes[j] = fakepy_code(fp, n, q, f, first_line(k, j));
        st->frames[j] = fakepy_frame(fp, st->codes[j], back, frame_lasti[j]);
        back = st->frames[j];
    }
    return st->frames[0];
}

static uint64_t add_thread(struct world *w, int k, struct stack *st)
{
    uint64_t top = build_stack(&w->fp, k, st);
    return fakepy_thread(&w->fp, w->interp, top, thread_id_of(k), native_id_of(k));
}

/* Frame j of t is thread k's frame j exactly as built. */
static void check_frame(const struct py_snapshot *s, const struct py_thread *t, uint32_t i, int k,
                        int j, const struct stack *st)
{
    char n[64], q[64], f[64];
    name_of(n, sizeof n, k, j);
    qualname_of(q, sizeof q, k, j);
    file_of(f, sizeof f, k, j);
    const struct py_frame *fr = py_thread_frame(s, t, i);
    assert_int_equal(fr->addr, st->frames[j]);
    assert_int_equal(fr->code_addr, st->codes[j]);
    assert_non_null(fr->code);
    assert_string_equal(fr->code->name, n);
    assert_string_equal(fr->code->qualname, has_qualname() ? q : n);
    assert_string_equal(fr->code->filename, f);
    assert_int_equal(fr->code->firstlineno, first_line(k, j));
    assert_false(fr->code->bad_linetable);
    assert_int_equal(fr->lasti, frame_lasti[j]);
    assert_int_equal(fr->line, fakepy_line(first_line(k, j), frame_lasti[j]));
}

static void check_healthy(const struct py_snapshot *s, const struct py_thread *t, int k,
                          const struct stack *st)
{
    assert_false(t->bad);
    assert_false(t->truncated);
    assert_int_equal(t->nframes, 3);
    for (int j = 0; j < 3; j++)
        check_frame(s, t, (uint32_t)j, k, j, st);
}

/* The thread whose tstate is ts, or fail. */
static const struct py_thread *thread_at(const struct py_snapshot *s, uint64_t ts)
{
    for (uint32_t i = 0; i < s->nthreads; i++)
        if (s->threads[i].tstate == ts)
            return &s->threads[i];
    fail_msg("thread state %#llx not in the snapshot", (unsigned long long)ts);
    return NULL;
}

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

/* Every corruption test also has a healthy thread 0, which must come through intact. */
static uint64_t healthy_thread(struct world *w, struct stack *st)
{
    return add_thread(w, 0, st);
}

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

/* A chain of `n` frames of code under root (root first in out[]); the top is out[n]. */
static uint64_t chain(struct world *w, uint64_t root, uint64_t code, int n, uint64_t *out)
{
    out[0] = root;
    for (int i = 1; i <= n; i++)
        out[i] = fakepy_frame(&w->fp, code, out[i - 1], 6);
    return out[n];
}

/*
 * One thread running rec n levels deep under <module> (frames out[0] = root .. out[n] = top) whose
 * thread state counts `levels`; skips layouts without frame objects or a recursion count.
 */
static uint64_t recursion_world(struct world *w, int n, uint64_t *out, int32_t levels)
{
    if (cur->frame_model != PY_FRAMES_OBJECTS || cur->ts_recursion_depth < 0)
        skip();
    world_init(w, HEAP_SMALL);
    uint64_t mod = fakepy_code(&w->fp, "<module>", "<module>", "/srv/app.py", 1);
    uint64_t rec = fakepy_code(&w->fp, "rec", "rec", "/srv/app.py", 3);
    uint64_t top = chain(w, fakepy_frame(&w->fp, mod, 0, 4), rec, n, out);
    uint64_t ts = fakepy_thread(&w->fp, w->interp, top, thread_id_of(0), 1);
    fakepy_put32(&w->fp, ts + (uint64_t)cur->ts_recursion_depth, (uint32_t)levels);
    return ts;
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

static void torn_thread_state_marks_the_thread_bad(void **state)
{
    struct world *w = *state;
    struct stack ok, st;
    world_init(w, HEAP_SMALL);
    healthy_thread(w, &ok);
    uint64_t ts = add_thread(w, 1, &st);
    uint64_t other = fakepy_interp(&w->fp, 4);   /* (listed after; it has no threads) */
    fakepy_put64(&w->fp, ts + (uint64_t)cur->ts_interp, other);
    world_walk(w);
    assert_int_equal(w->s.nthreads, 2);
    check_healthy(&w->s, &w->s.threads[0], 0, &ok);
    assert_true(thread_at(&w->s, ts)->bad);
    assert_int_equal(w->s.bad_threads, 1);
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

/* ---- the code cache ------------------------------------------------------------------------- */

static size_t code_size(void)
{
    size_t size = (size_t)cur->co_size;
    if (cur->co_code_adaptive >= 0 && (size_t)cur->co_code_adaptive + FAKEPY_CODE_LEN > size)
        size = (size_t)cur->co_code_adaptive + FAKEPY_CODE_LEN;
    return size;
}

/* Two threads of three frames, walked once, with a spy installed after the warm-up walk. */
static struct spy *warm_world(struct world *w, struct stack st[2])
{
    world_init(w, HEAP_SMALL);
    for (int k = 0; k < 2; k++)
        add_thread(w, k, &st[k]);
    world_walk(w);
    struct spy *spy = spy_install(w->p);
    return spy;
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

#define WT(f) cmocka_unit_test_setup_teardown(f, world_setup, world_teardown)

/* ---- the target calls and returns while it is read ------------------------------------------ */

struct race {
    struct world *w;
    uint64_t ts, top;   /* the thread, and the frame to make its top */
};

static void race_set_top(void *ctx)
{
    struct race *r = ctx;
    const struct py_layout *L = cur;
    uint64_t at = L->ts_current_frame >= 0 ? r->ts + (uint64_t)L->ts_current_frame
                  : L->ts_cframe >= 0 ? fakepy_get64(&r->w->fp, r->ts + (uint64_t)L->ts_cframe) +
                                            (uint64_t)L->cf_current_frame
                                      : r->ts + (uint64_t)L->ts_frame;
    fakepy_put64(&r->w->fp, at, r->top);
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
        WT(frame_cycle_ends_the_thread_bad),
        WT(frame_self_loop_ends_the_thread_bad),
        WT(thread_started_after_a_walk_is_in_the_next),
        WT(stack_that_moved_to_a_new_chunk_is_found_again),
        WT(first_thread_freed_after_a_walk_is_not_in_the_next),
        WT(thread_list_cycle_terminates),
        WT(thread_list_cycle_is_flagged),
        WT(thread_list_cycle_lists_no_thread_twice),
        WT(interp_list_cycle_terminates),
        WT(interp_list_cycle_is_flagged),
        WT(interp_list_cycle_lists_no_thread_twice),
        WT(wild_frame_pointers_mark_the_thread_bad),
        WT(code_object_of_wrong_type_marks_the_thread_bad),
        WT(name_of_length_2_pow_60_marks_the_thread_bad),
        WT(unmapped_co_name_marks_the_thread_bad),
        WT(linetable_of_bad_size_falls_back_to_firstlineno),
        WT(deep_stack_is_truncated_at_max_frames),
        WT(unchanged_frames_below_are_reused_not_reread),
        WT(recycled_frames_of_a_recursion_are_not_reused_from_the_wrong_level),
        WT(first_walk_with_more_frames_than_levels_is_not_believed),
        WT(first_walk_cut_short_is_read_again),
        WT(a_torn_sample_keeps_the_reference_for_the_next),
        WT(torn_thread_state_marks_the_thread_bad),
        WT(wild_next_thread_pointer_is_counted_bad),
        WT(wild_interpreter_pointer_is_reported),
        WT(unreadable_interpreter_list_fails_or_reports_exit),
        WT(code_objects_are_not_reread_within_an_epoch),
        WT(code_objects_are_revalidated_once_per_tick),
        WT(cache_trusts_entries_until_tick_then_sees_a_replaced_code_object),
        WT(freed_code_object_is_noticed_after_tick),
        WT(steady_state_walk_does_not_reallocate),
        WT(frame_returning_during_the_walk_keeps_the_walked_stack),
        WT(caller_calling_again_during_the_walk_keeps_the_walked_stack),
        WT(top_on_another_branch_after_the_walk_is_read_again),
        WT(call_made_while_the_data_stack_is_copied_is_in_the_sample),
        WT(stack_spanning_two_chunks_is_one_copy),
    };
    int failed = 0;
    for (size_t i = 0; i < py_layouts_gen_count; i++) {
        char group[32];
        cur = &py_layouts_gen[i];
        snprintf(group, sizeof group, "walk_cpython_%d.%d", cur->major, cur->minor);
        print_message("[ LAYOUT   ] CPython %d.%d (group %s)\n", cur->major, cur->minor, group);
        failed += cmocka_run_group_tests_name(group, tests, NULL, NULL);
    }
    return failed ? 1 : 0;
}
