/*
 * nested.c — one OS thread, several interpreters: a thread that calls into a subinterpreter
 * (interpreters.run_string, concurrent.interpreters, mod_wsgi, Py_NewInterpreter from C) has a
 * thread state in each, with the same thread ids. Listed apart, the recorder would take them for
 * one thread whose stack jumps between the two every sample (every call ending and beginning
 * again), or, when the one it left behind is idle and empty (3.12 keeps it), alternating with an
 * empty stack. They are one stack: the subinterpreter's frames run on top of the call that
 * entered it.
 */
#include "readers/walk.h"

#include <string.h>

/* Reverses frames [a, b). */
static void frames_reverse(struct py_frame *f, uint32_t a, uint32_t b)
{
    while (a + 1 < b) {
        struct py_frame x = f[a];
        f[a++] = f[--b];
        f[b] = x;
    }
}

/* Moves frames [a, b) left by k (the first k go to the end), in place. */
static void frames_rotate(struct py_frame *f, uint32_t a, uint32_t b, uint32_t k)
{
    frames_reverse(f, a, a + k);
    frames_reverse(f, a + k, b);
    frames_reverse(f, a, b);
}

static bool same_os_thread(const struct py_thread *a, const struct py_thread *b)
{
    return a->thread_id && a->thread_id == b->thread_id && a->interp != b->interp &&
           (a->native_id <= 0 || b->native_id <= 0 || a->native_id == b->native_id);
}

/* Whether a's interpreter encloses b's: the older interpreter, the main one (id 0) outermost.
 * Without ids (2.7, 3.6), list order: new interpreters are put first. */
static bool encloses(const struct py_thread *a, uint32_t ia, const struct py_thread *b, uint32_t ib)
{
    if (a->interp_id >= 0 && b->interp_id >= 0 && a->interp_id != b->interp_id)
        return a->interp_id < b->interp_id;
    return ia > ib;
}

/* Puts thread `in`'s frames (innermost first) above thread `out`'s, as one contiguous stack in
 * `out`'s record, and removes `in`'s record. */
static void merge_pair(struct py_snapshot *s, uint32_t in, uint32_t out)
{
    struct py_thread *ti = &s->threads[in], *to = &s->threads[out];
    uint32_t fi = ti->first, ni = ti->nframes, fo = to->first, no = to->nframes;
    uint32_t first;
    if (ni && fi < fo) {
        /* [inner][others...][outer] -> [others...][inner][outer] */
        frames_rotate(s->frames, fi, fo, ni);
        for (uint32_t k = 0; k < s->nthreads; k++)
            if (k != in && s->threads[k].first >= fi + ni && s->threads[k].first < fo)
                s->threads[k].first -= ni;
        first = fo - ni;
    } else if (ni) {
        /* [outer][others...][inner] -> [inner][outer][others...] */
        frames_rotate(s->frames, fo, fi + ni, fi - fo);
        for (uint32_t k = 0; k < s->nthreads; k++)
            if (k != in && s->threads[k].first >= fo && s->threads[k].first < fi)
                s->threads[k].first += ni;
        first = fo;
    } else {
        first = fo;
    }
    to->first = first;
    to->nframes = ni + no;
    to->holds_gil |= ti->holds_gil;
    to->idle &= ti->idle;                /* one OS thread: running if either part says so */
    if (!to->os_state)
        to->os_state = ti->os_state;
    to->truncated |= ti->truncated;
    if (ti->bad && to->bad)
        s->bad_threads--;
    to->bad |= ti->bad;
    if (to->native_id <= 0)
        to->native_id = ti->native_id;
    memmove(ti, ti + 1, (s->nthreads - in - 1) * sizeof *ti);
    s->nthreads--;
}

void py_snapshot_merge_nested(struct py_snapshot *s)
{
    /* Only threads outside the outermost interpreter can be nested in another: they are few, so
     * each is compared with every thread (a main interpreter's thousands never with each other). */
    int64_t min_id = INT64_MAX;
    for (uint32_t k = 0; k < s->nthreads; k++)
        if (s->threads[k].interp_id >= 0 && s->threads[k].interp_id < min_id)
            min_id = s->threads[k].interp_id;
    uint64_t last_interp = s->nthreads ? s->threads[s->nthreads - 1].interp : 0;
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const struct py_thread *t = &s->threads[i];
        if (t->interp_id >= 0 ? t->interp_id == min_id : t->interp == last_interp)
            continue;
        for (uint32_t j = 0; j < s->nthreads; j++) {
            if (j == i || !same_os_thread(t, &s->threads[j]))
                continue;
            bool outer_j = encloses(&s->threads[j], j, t, i);
            merge_pair(s, outer_j ? i : j, outer_j ? j : i);
            i = (uint32_t)-1;   /* positions moved: look again from the start */
            break;
        }
    }
}
