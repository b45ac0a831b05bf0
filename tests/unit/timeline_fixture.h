/*
 * timeline_fixture.h — what test_timeline.c and test_timeline_sim.c share: frames written as one
 * call (FR, FRR), and a fresh timeline per test whose spans land in a growable array (T registers
 * a test with it). Test code; every helper is static inline.
 */
#ifndef PT_TESTS_TIMELINE_FIXTURE_H
#define PT_TESTS_TIMELINE_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "output/timeline.h"

#define FR(addr, fn, line, lasti, sig) ((struct tl_frame){ (addr), (fn), (line), (lasti), (sig), false })
/* A frame the feeder marked as a new call in the same slot (restart). */
#define FRR(addr, fn, line, lasti, sig) ((struct tl_frame){ (addr), (fn), (line), (lasti), (sig), true })

struct got {
    struct tl_span *v;
    size_t n, cap;
};

struct fix {
    struct timeline *tl;
    struct got got;
};

static inline void got_emit(const struct tl_span *s, void *ctx)
{
    struct got *g = ctx;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->v = realloc(g->v, g->cap * sizeof *g->v);
        assert_non_null(g->v);
    }
    g->v[g->n++] = *s;
}

static inline int fix_setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->tl = tl_new(got_emit, &f->got);
    *state = f;
    return f->tl ? 0 : -1;
}

static inline int fix_teardown(void **state)
{
    struct fix *f = *state;
    tl_free(f->tl);
    free(f->got.v);
    free(f);
    return 0;
}

/* A test run on a fresh fixture. */
#define T(f) cmocka_unit_test_setup_teardown(f, fix_setup, fix_teardown)

#endif
