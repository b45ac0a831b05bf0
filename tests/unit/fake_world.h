/*
 * fake_world.h — the fake process that test_walk.c, test_stack.c and test_codecache.c walk: one
 * interpreter (built by fakepy.c for the layout of the cmocka group running, `cur`), threads of
 * three frames whose names, files and lines say which thread and level they are, the checks that
 * a walk read them back as built, and a memory source that logs every read (to pin what the caches
 * spare). Test code, included by those programs only; every helper is static inline, as each uses
 * a part.
 */
#ifndef PT_TESTS_FAKE_WORLD_H
#define PT_TESTS_FAKE_WORLD_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/walk.h"

/* The builder is test code shared by unit tests; including it keeps the build one file a test. */
#include "fakepy.c"

#define HEAP_SMALL (1u << 20)
#define INTERP_ID 3            /* any id: nonzero so that a missed read shows */

/* The layout the current cmocka group runs under. */
static const struct py_layout *cur;

static inline bool has_qualname(void) { return cur->co_qualname >= 0; }

/* ---- a memory source that records every read (to pin what the cache spares) ---------------- */

#define SPY_LOG 16384

struct spy {
    struct mem_src base;
    struct mem_src *inner;
    size_t n;
    size_t readvs;           /* readv calls (one syscall each, however many iovecs) */
    struct { uint64_t addr; size_t len; } log[SPY_LOG];
    /* The target moving on while it is read: after_read runs once, right after the first read
     * that starts at after_addr (between two iovecs of one readv, too). */
    void (*after_read)(void *ctx);
    void *ctx;
    uint64_t after_addr;
};

static inline int spy_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
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

static inline int spy_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    ((struct spy *)src)->readvs++;
    for (int i = 0; i < n; i++)
        if (spy_read(src, iov[i].addr, iov[i].buf, iov[i].len) != 0)
            return i;
    return n;
}

static inline void spy_close(struct mem_src *src)
{
    struct spy *s = (struct spy *)src;
    mem_close(s->inner);
    free(s);
}

static const struct mem_ops spy_ops = { spy_read, spy_readv, spy_close };

/* Puts a spy between p and its memory; the proc owns the spy from then on. */
static inline struct spy *spy_install(struct py_proc *p)
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
static inline int spy_hits(const struct spy *s, uint64_t lo, size_t len)
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

static inline void world_init(struct world *w, size_t heap)
{
    fakepy_init(&w->fp, cur, heap);
    w->live = true;
    w->p = NULL;
    py_snapshot_init(&w->s);
    w->interp = fakepy_interp(&w->fp, INTERP_ID);
}

/* Hands the fake memory to a py_proc (first call) and walks it. */
static inline enum pt_status world_walk_rc(struct world *w, struct pt_err *err)
{
    if (!w->p)
        w->p = fakepy_proc(&w->fp);
    return py_walk(w->p, &w->s, 0, err);
}

static inline void world_walk(struct world *w)
{
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(world_walk_rc(w, &err), PT_OK);
}

static inline void world_fini(struct world *w)
{
    if (!w->live)
        return;
    py_snapshot_free(&w->s);
    py_proc_close(w->p);
    fakepy_fini(&w->fp);
    w->live = false;
}

static inline int world_setup(void **state)
{
    *state = calloc(1, sizeof(struct world));
    return *state ? 0 : -1;
}

static inline int world_teardown(void **state)
{
    world_fini(*state);
    free(*state);
    return 0;
}

/* What thread k's frame j (0 = innermost) runs. */
static const int frame_lasti[3] = { 12, 4, 30 };

static inline int first_line(int k, int j) { return 100 * (k + 1) + 10 * j; }
static inline uint64_t thread_id_of(int k) { return 0x7f3a5f7fe700ULL + (uint64_t)k * 0x801000; }
static inline int64_t native_id_of(int k) { return 4100 + k; }

static inline void name_of(char *buf, size_t cap, int k, int j)
{
    snprintf(buf, cap, "work_%d_%d", k, j);
}
static inline void qualname_of(char *buf, size_t cap, int k, int j)
{
    snprintf(buf, cap, "Worker%d.work_%d_%d", k, k, j);
}
static inline void file_of(char *buf, size_t cap, int k, int j)
{
    snprintf(buf, cap, "/srv/app/mod%d_%d.py", k, j);
}

struct stack {
    uint64_t frames[3];     /* innermost first */
    uint64_t codes[3];
};

/* Three frames of thread k, each with its own code object; returns the innermost frame. */
static inline uint64_t build_stack(struct fakepy *fp, int k, struct stack *st)
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

static inline uint64_t add_thread(struct world *w, int k, struct stack *st)
{
    uint64_t top = build_stack(&w->fp, k, st);
    return fakepy_thread(&w->fp, w->interp, top, thread_id_of(k), native_id_of(k));
}

/* Frame j of t is thread k's frame j exactly as built. */
static inline void check_frame(const struct py_snapshot *s, const struct py_thread *t, uint32_t i,
                               int k, int j, const struct stack *st)
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

static inline void check_healthy(const struct py_snapshot *s, const struct py_thread *t, int k,
                                 const struct stack *st)
{
    assert_false(t->bad);
    assert_false(t->truncated);
    assert_int_equal(t->nframes, 3);
    for (int j = 0; j < 3; j++)
        check_frame(s, t, (uint32_t)j, k, j, st);
}

/* The thread whose tstate is ts, or fail. */
static inline const struct py_thread *thread_at(const struct py_snapshot *s, uint64_t ts)
{
    for (uint32_t i = 0; i < s->nthreads; i++)
        if (s->threads[i].tstate == ts)
            return &s->threads[i];
    fail_msg("thread state %#llx not in the snapshot", (unsigned long long)ts);
    return NULL;
}

/* Every corruption test also has a healthy thread 0, which must come through intact. */
static inline uint64_t healthy_thread(struct world *w, struct stack *st)
{
    return add_thread(w, 0, st);
}

/* A test of one world: allocated by world_setup, freed by world_teardown. */
/* Two threads of three frames, walked once, with a spy installed after the warm-up walk. */
static inline struct spy *warm_world(struct world *w, struct stack st[2])
{
    world_init(w, HEAP_SMALL);
    for (int k = 0; k < 2; k++)
        add_thread(w, k, &st[k]);
    world_walk(w);
    struct spy *spy = spy_install(w->p);
    return spy;
}

/* ---- a recursion (frame objects) ------------------------------------------------------------ */

/* A chain of `n` frames of code under root (root first in out[]); the top is out[n]. */
static inline uint64_t chain(struct world *w, uint64_t root, uint64_t code, int n, uint64_t *out)
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
static inline uint64_t recursion_world(struct world *w, int n, uint64_t *out, int32_t levels)
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

#define WT(f) cmocka_unit_test_setup_teardown(f, world_setup, world_teardown)

#endif
