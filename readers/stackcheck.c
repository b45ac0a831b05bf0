/*
 * stackcheck.c — whether a walk of a thread's stack saw one instant of the target: its top read
 * again afresh, the frame pointers before and after the copy one call apart in it, and (3.11+)
 * the first data-stack caller of a heap frame unchanged since the copy. stack.c's walks call
 * these; a walk that fails them is torn and read again.
 */
#include "readers/stack.h"

/* Top frame of a thread state whose bytes are in ts. */
int stack_top_frame(struct py_proc *p, const uint8_t *ts, uint64_t *frame)
{
    const struct py_layout *L = &p->layout;
    if (L->ts_current_frame >= 0) {
        *frame = u64_at(ts, L->ts_current_frame);
        return 0;
    }
    if (L->ts_cframe >= 0) {
        uint64_t cframe = u64_at(ts, L->ts_cframe);
        *frame = 0;
        if (!cframe)
            return 0;
        return mem_read_ptr(p->mem, cframe + (uint64_t)L->cf_current_frame, frame);
    }
    *frame = u64_at(ts, L->ts_frame);
    return 0;
}

/* The thread's top frame, read afresh from its thread state: one syscall (3.11-3.12 read the
 * cframe pointer and, speculatively through the cframe seen first, its frame in one readv).
 * extra, when not NULL, is read in the same syscall, after the top; -1 when it was not. */
static int read_top_with(struct py_proc *p, uint64_t tstate, uint64_t cframe_seen, uint64_t *frame,
                         const struct mem_iov *extra)
{
    const struct py_layout *L = &p->layout;
    struct mem_iov iov[3];
    int n = 0;
    uint64_t cframe = 0;
    *frame = 0;
    if (L->ts_current_frame >= 0) {
        iov[n++] = (struct mem_iov){tstate + (uint64_t)L->ts_current_frame, frame, 8};
    } else if (L->ts_cframe >= 0) {
        iov[n++] = (struct mem_iov){tstate + (uint64_t)L->ts_cframe, &cframe, 8};
        if (cframe_seen)
            iov[n++] = (struct mem_iov){cframe_seen + (uint64_t)L->cf_current_frame, frame, 8};
    } else {
        iov[n++] = (struct mem_iov){tstate + (uint64_t)L->ts_frame, frame, 8};
    }
    if (extra)
        iov[n++] = *extra;
    if (mem_readv_fresh(p->mem, iov, n) != n)
        return -1;
    if (L->ts_current_frame < 0 && L->ts_cframe >= 0) {
        if (!cframe_seen)
            return cframe ? -1 : 0;
        /* Another C-level eval call now (a generator resumed from C, or back from one): the top
         * is where the new cframe says. */
        if (cframe != cframe_seen)
            return cframe ? mem_read_fresh(p->mem, cframe + (uint64_t)L->cf_current_frame, frame, 8)
                          : -1;
    }
    return 0;
}

int stack_read_top(struct py_proc *p, uint64_t tstate, uint64_t cframe_seen, uint64_t *frame)
{
    return read_top_with(p, tstate, cframe_seen, frame, NULL);
}

/* Whether addr is one of the frames this walk recorded for t. */
static bool walked(const struct py_snapshot *s, const struct py_thread *t, uint64_t addr)
{
    for (uint32_t k = 0; k < t->nframes; k++)
        if (s->frames[t->first + k].addr == addr)
            return true;
    return false;
}

/*
 * Frame objects: the top frame changed after the walk. The walked stack is still one the thread
 * had if the new top is one of the walked frames (the frames above it returned: they were read
 * before they did, and a returned frame keeps its code and back link), or was called by one of
 * them (its f_back is set when it starts running). Only a top on another branch is torn.
 * Rejecting returns too would retry exactly the samples that land in short calls, and make them
 * rarer than they are (a fifth too rare for a ~100 ns call on 3.8, against --blocking). (3.11+
 * keeps the strict check: accepting the same there let heap frames of generators, freed and
 * reused at the same address within microseconds, make 1-5% of a generator chain's samples
 * wrong.)
 */
bool stack_still_below(struct py_proc *p, const struct py_snapshot *s,
                        const struct py_thread *t, uint64_t top)
{
    if (p->layout.frame_model != PY_FRAMES_OBJECTS || !top)
        return false;
    if (walked(s, t, top))
        return true;
    uint64_t back = 0;
    return mem_read_fresh(p->mem, top + (uint64_t)p->layout.fo_back, &back, 8) == 0 && back &&
           walked(s, t, back);
}

/* Whether `to` is reached from `from` by previous links within the copy (at most LINK_STEPS). */
#define LINK_STEPS 1024
static bool links_to(const struct py_layout *L, const struct window *w, uint64_t from, uint64_t to)
{
    for (int i = 0; i < LINK_STEPS && from; i++) {
        if (!from_window(w, from + (uint64_t)L->if_previous, &from, 8))
            return false;
        if (from == to)
            return true;
    }
    return false;
}

/*
 * The frame pointer before the copy (frame) and after it (guard) differ when the thread called or
 * returned meanwhile. Calls only (frame is below guard) leave frame and everything below it
 * intact. Returns only (guard is below frame) leave guard and below intact, and the frames above
 * it are the ones just returned from (or a new call in the same slot): one real stack, too.
 * Anything else — the top on another branch — may mix two and is read again. (Returns followed by
 * a new call that lands exactly in a slot the copy shows as a caller still pass: a rare mixed
 * stack, measured at about 1 sample in 2,000 on a json-heavy loop; docs/performance.md.)
 */
bool stack_one_call_apart(const struct py_layout *L, const struct window *w, uint64_t frame,
                           uint64_t guard)
{
    return guard == frame || (guard && links_to(L, w, guard, frame)) ||
           (frame && links_to(L, w, frame, guard));
}

/*
 * The first frame-pointer read or the guard is a frame outside the copy (a generator's or
 * coroutine's, on the heap): between the two the thread resumed a generator, or one yielded, or
 * called from one into the data stack. No link in the copy can tell; the walk from the guard
 * reads the heap frames' own links to their callers, and the top is checked again after it
 * (misses > 0).
 */
bool stack_heap_top(const struct window *w, uint64_t frame, uint64_t guard)
{
    uint64_t v;
    return guard && frame && !(from_window(w, guard, &v, 8) && from_window(w, frame, &v, 8));
}

/*
 * The re-check of a walk that read frames outside the copy: the top read again (it must be the
 * frame walked from), and with it the junction frame (see struct window), which must still run
 * the code at the instruction the copy showed. Heap frames are read after the copy; the copy's
 * frames below them may be older than they are (a call returned and another took its slot: a
 * generator loop's caller in place of a "".join's, whose freed generator's frame was reused).
 */
bool stack_recheck_holds(struct py_proc *p, const struct py_thread *t, uint64_t cframe,
                          uint64_t frame, const struct window *w)
{
    const struct py_layout *L = &p->layout;
    uint8_t hdr[256];
    size_t len = (size_t)(L->if_code > L->if_instr ? L->if_code : L->if_instr) + 8;
    struct mem_iov j = {w->junction, hdr, len};
    bool junction = w->junction && len <= sizeof hdr;
    uint64_t now_top = 0;
    if (read_top_with(p, t->tstate, cframe, &now_top, junction ? &j : NULL) != 0 ||
        now_top != frame)
        return false;
    return !junction ||
           (u64_at(hdr, L->if_code) == w->j_code && u64_at(hdr, L->if_instr) == w->j_instr);
}
