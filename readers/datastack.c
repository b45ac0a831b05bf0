/*
 * datastack.c — 3.11+: where a thread's frames are. CPython pushes them contiguously into a
 * data-stack chunk; one read of the used part replaces a read per frame. This file remembers
 * where each thread's chunk (and the older chunk below it) was, and makes the "guarded read" of a
 * thread — its state, frame pointer, data stack, and the frame pointer again — in one
 * process_vm_readv of its own, or staged into the round's prefetch call. stack.c walks the copy.
 */
#include "readers/stack.h"

#include <stdlib.h>

#define DATA_STACK_COPY_MAX (1u << 20)   /* bytes of a thread's data stack copied in one read */

static int ensure_stackbuf(struct py_proc *p, size_t len)
{
    if (len <= p->stackbuf_cap)
        return 0;
    size_t cap = p->stackbuf_cap ? p->stackbuf_cap : 16384;
    while (cap < len)
        cap *= 2;
    uint8_t *b = realloc(p->stackbuf, cap);
    if (!b)
        return -1;
    p->stackbuf = b;
    p->stackbuf_cap = cap;
    return 0;
}

/*
 * 3.11+ push a thread's frames contiguously into its current data-stack chunk, up to
 * datastack_top: one read of that range replaces one read per frame. Frames elsewhere (an older
 * chunk of a very deep stack, generators' own frames) are still read one by one.
 */
void stack_copy_data(struct py_proc *p, const uint8_t *ts, struct window *w)
{
    const struct py_layout *L = &p->layout;
    if (L->ts_datastack_chunk < 0 || L->ts_datastack_top < 0)
        return;
    uint64_t chunk = u64_at(ts, L->ts_datastack_chunk), top = u64_at(ts, L->ts_datastack_top);
    if (!chunk || top <= chunk || top - chunk > DATA_STACK_COPY_MAX)
        return;
    size_t len = (size_t)(top - chunk);
    if (ensure_stackbuf(p, len) != 0)
        return;
    /* Read now, after the frame pointer: never an older copy from the round's prefetch. */
    p->stackbuf_used = true;
    if (mem_read_fresh(p->mem, chunk, p->stackbuf, len) == 0)
        *w = (struct window){chunk, len, p->stackbuf, 0, false, 0, 0, NULL, 0, 0, 0};
}

/* The slow path: the older chunk below the copy in w, when stack_remember_data() found one, read
 * as well (its frames stay put while the thread runs in the newer chunk), so that a deep stack's
 * older frames are not read one by one. */
void stack_copy_older(struct py_proc *p, uint64_t tstate, struct window *w)
{
    const struct py_prev_stack *ps = stack_prev(p, tstate, false);
    if (!ps || !ps->old_len || !w->bytes || w->bytes != p->stackbuf ||
        ensure_stackbuf(p, (size_t)w->len + ps->old_len) != 0)
        return;
    w->bytes = p->stackbuf;   /* it may have moved */
    uint8_t *older = p->stackbuf + w->len;
    if (mem_read_fresh(p->mem, ps->old_chunk, older, ps->old_len) == 0) {
        w->base2 = ps->old_chunk;
        w->len2 = ps->old_len;
        w->bytes2 = older;
    }
}

/*
 * A stack deeper than its first chunk (16 KiB: about 150 frames) continues in an older chunk,
 * whose frames stay put while the thread runs in the newer one. The guarded read copies that
 * chunk too, before the newer one, so a deep stack is one copy as well. Its used length is in its
 * header (_PyStackChunk.top, in pointers past the 24-byte header), read once per chunk change.
 */
static void remember_older_chunk(struct py_proc *p, struct py_prev_stack *ps, uint64_t older,
                                 bool changed)
{
    if (!changed && older == ps->old_chunk)
        return;
    ps->old_chunk = older;   /* with old_len 0 (none to copy) until its header says more */
    ps->old_len = 0;
    uint8_t hdr[24];
    if (!older || mem_read_fresh(p->mem, older, hdr, sizeof hdr) != 0)
        return;
    uint64_t size = u64_at(hdr, 8), top = u64_at(hdr, 16);
    if (!top || top > DATA_STACK_COPY_MAX / 8 || 24 + top * 8 > size)
        return;
    ps->old_len = (uint32_t)(24 + top * 8);
}

#define CFRAME_ALT_KEEP 64   /* walks on one cframe before the others are forgotten */
#define HEAP_KEEP_ROUNDS 16   /* walks without heap frames before a thread is read as having none */

/* Remembers where this thread's data stack and cframe are, for stack_read_thread() next time. The
 * copy length leaves room for the stack to grow, within the chunk (its size is in its header). */
void stack_remember_data(struct py_proc *p, uint64_t tstate, const uint8_t *ts,
                         const struct window *w)
{
    const struct py_layout *L = &p->layout;
    struct py_prev_stack *ps = stack_prev(p, tstate, true);
    if (!ps)
        return;
    ps->seen = true;
    /* Walks that ended early (torn) count as without heap frames: a few rounds of grace. */
    if (w->misses)
        ps->heap_rounds = HEAP_KEEP_ROUNDS;
    else if (ps->heap_rounds)
        ps->heap_rounds--;
    uint64_t chunk = u64_at(ts, L->ts_datastack_chunk), top = u64_at(ts, L->ts_datastack_top);
    uint64_t was = ps->chunk;
    ps->chunk = 0;
    if (!w->bytes || w->base != chunk || top <= chunk || w->len < 24)
        return;
    uint64_t used = top - chunk, size = u64_at(w->bytes, 8);   /* _PyStackChunk.size */
    /* Room for a few calls (512 bytes), then on to the end of that page: the kernel's cost is
     * per page pinned, so the rest of the last page is nearly free and a page more is not. */
    uint64_t want = ((chunk + used + 512 + 4095) & ~(uint64_t)4095) - chunk;
    if (size >= used && want > size)
        want = size;
    /* A stack that got shallower is likely to grow back soon (a loop that calls down and
     * returns): a copy too short for it costs a re-read (three syscalls), a page more costs
     * little. So the longer copy stays for COPY_KEEP_NS, and for COPY_KEEP_ROUNDS walks at
     * least — not for a count of rounds alone: at 100 Hz a stack that was deep once (a request)
     * must not keep a long copy for seconds (the daemon paid 12% more for that); but by time
     * alone, at 100 Hz one shallow sample shortened the copy for the next, and 5% of rounds on
     * cpu_bound.py took the slow path. */
    if (chunk == was && ps->copylen > want && ps->copylen <= size &&
        (p->walk_ns - ps->copy_long_ns < COPY_KEEP_NS || ps->copy_long_rounds < COPY_KEEP_ROUNDS)) {
        want = ps->copylen;
        ps->copy_long_rounds++;
    } else {
        ps->copy_long_ns = p->walk_ns;
        ps->copy_long_rounds = 0;
    }
    if (want > DATA_STACK_COPY_MAX)
        return;
    ps->chunk = chunk;
    uint64_t cframe = L->ts_cframe >= 0 ? u64_at(ts, L->ts_cframe) : 0;
    if (cframe == ps->cframe && ++ps->cframe_same > CFRAME_ALT_KEEP)
        memset(ps->cframe_alt, 0, sizeof ps->cframe_alt);
    if (cframe != ps->cframe) {
        ps->cframe_same = 0;
        /* The one it was becomes the latest other; the new one leaves the others' list. */
        uint64_t keep = ps->cframe;
        for (int i = 0; i < PY_CFRAME_ALTS && keep; i++) {
            uint64_t was = ps->cframe_alt[i];
            ps->cframe_alt[i] = keep;
            keep = was == cframe ? 0 : was;
        }
        ps->cframe = cframe;
    }
    ps->copylen = (uint32_t)want;
    remember_older_chunk(p, ps, u64_at(w->bytes, 0), chunk != was);
}

/* Whether the previous sample left where this thread's frame pointer and data stack are (3.11+),
 * with room for them in p->stackbuf. */
static struct py_prev_stack *fast_prev(struct py_proc *p, uint64_t tstate)
{
    const struct py_layout *L = &p->layout;
    struct py_prev_stack *ps = L->frame_model == PY_FRAMES_INTERP && L->ts_datastack_top >= 0
                                   ? stack_prev(p, tstate, false) : NULL;
    if (ps && ps->chunk && ps->copylen && (L->ts_cframe < 0 || ps->cframe) &&
        ensure_stackbuf(p, (size_t)ps->copylen + ps->old_len) == 0)
        return ps;
    return NULL;
}

/*
 * The thread state, its frame pointer, its data stack (the older chunk first, when it spans two),
 * and the frame pointer once more, as iovecs to read in one call of their own (never from the
 * round's prefetch, which is older than the other reads of this round): the stack is copied
 * within about a microsecond of the pointer, and if the thread called or returned in between,
 * the two pointer reads differ (stack_walk). A frame pointer and a copy from different instants
 * would otherwise give a stack that mixes two calls. Returns the number of iovecs.
 */
static uint64_t guard_addr(const struct py_layout *L, const struct py_prev_stack *ps,
                           uint64_t tstate)
{
    return L->ts_cframe >= 0 ? ps->cframe + (uint64_t)L->cf_current_frame
                             : tstate + (uint64_t)L->ts_current_frame;
}

/* The two frame-pointer reads through each other cframe (3.11–3.12; cframe 0: none). */
struct guard_alt {
    const uint64_t *cframe;
    uint64_t *cf, *guard;
};

/* cf NULL: the first frame-pointer read is left out (a staged read whose prefetch reads it). */
#define GUARD_IOVS_MAX (5 + 2 * PY_CFRAME_ALTS)
static int guard_iovs(struct py_proc *p, const struct py_prev_stack *ps, uint64_t tstate,
                      uint8_t *ts, size_t need, uint64_t *cf, uint64_t *guard,
                      const struct guard_alt *alt, struct mem_iov iov[GUARD_IOVS_MAX])
{
    const struct py_layout *L = &p->layout;
    uint64_t at = guard_addr(L, ps, tstate);
    int n = 0;
    iov[n++] = (struct mem_iov){tstate, ts, need};
    if (L->ts_cframe >= 0 && cf)
        iov[n++] = (struct mem_iov){at, cf, 8};
    for (int i = 0; i < PY_CFRAME_ALTS && alt->cframe[i]; i++)
        iov[n++] = (struct mem_iov){alt->cframe[i] + (uint64_t)L->cf_current_frame, &alt->cf[i], 8};
    if (ps->old_len)   /* the older chunk first: the innermost frames are copied last */
        iov[n++] = (struct mem_iov){ps->old_chunk, p->stackbuf + ps->copylen, ps->old_len};
    iov[n++] = (struct mem_iov){ps->chunk, p->stackbuf, ps->copylen};
    for (int i = 0; i < PY_CFRAME_ALTS && alt->cframe[i]; i++)
        iov[n++] = (struct mem_iov){alt->cframe[i] + (uint64_t)L->cf_current_frame,
                                    &alt->guard[i], 8};
    iov[n++] = (struct mem_iov){at, guard, 8};
    return n;
}

/* The other cframes to read through (3.11–3.12), into alt[], ending at the first 0. */
static void alt_cframes(const struct py_layout *L, const struct py_prev_stack *ps,
                        uint64_t alt[PY_CFRAME_ALTS])
{
    for (int i = 0; i < PY_CFRAME_ALTS; i++)
        alt[i] = L->ts_cframe >= 0 ? ps->cframe_alt[i] : 0;
}

void stack_stage(struct py_proc *p, uint64_t tstate, size_t need)
{
    struct py_stage *st = &p->stage;
    st->tstate = 0;
    p->stackbuf_used = false;
    struct py_prev_stack *ps = tstate && need <= sizeof st->ts ? fast_prev(p, tstate) : NULL;
    if (!ps)
        return;
    /* 3.12: the entry frame beside the cframe on the C stack is in the plan (the walk reads it
     * every round), and with it the first frame-pointer read, made before the thread state's
     * in the same syscall: in time before the copy, which is all that read must be. (Only the
     * plan's paged regions, heap objects' pages, are read after a staged read; the C stack is
     * never one.) */
    uint64_t cf_at = p->layout.ts_cframe >= 0 ? guard_addr(&p->layout, ps, tstate) : 0;
    if (cf_at && !mem_round_planned(p->mem, cf_at, 8))
        cf_at = 0;
    struct mem_iov iov[GUARD_IOVS_MAX];
    alt_cframes(&p->layout, ps, st->cframe_alt);
    struct guard_alt alt = {st->cframe_alt, st->cf_alt, st->guard_alt};
    int n = guard_iovs(p, ps, tstate, st->ts, need, cf_at ? NULL : &st->cf, &st->guard, &alt, iov);
    /* Field by field: a compound literal would also clear the 4 KiB ts buffer every sample,
     * which the staged read overwrites. */
    st->tstate = tstate;
    st->chunk = ps->chunk;
    st->old_chunk = ps->old_chunk;
    st->cf = st->guard = 0;
    st->cf_planned = cf_at;
    st->copylen = ps->copylen;
    st->old_len = ps->old_len;
    st->need = need;
    st->n = n;
    mem_round_stage(p->mem, tstate, iov, n);
}

/* The staged read of this thread, when the round's syscall made all of it and nothing has used
 * the stack buffer since. */
static bool take_staged(struct py_proc *p, const struct py_prev_stack *ps, uint64_t tstate,
                        uint8_t *ts, size_t need, struct fast_read *fr)
{
    struct py_stage *st = &p->stage;
    if (st->tstate != tstate)
        return false;
    st->tstate = 0;
    if (mem_round_staged(p->mem, tstate) != st->n || p->stackbuf_used || st->need != need ||
        st->chunk != ps->chunk || st->copylen != ps->copylen || st->old_chunk != ps->old_chunk ||
        st->old_len != ps->old_len)
        return false;
    uint64_t alt[PY_CFRAME_ALTS];
    alt_cframes(&p->layout, ps, alt);
    if (memcmp(alt, st->cframe_alt, sizeof alt) != 0)
        return false;
    if (st->cf_planned) {
        const uint8_t *cf = mem_round_peek(p->mem, st->cf_planned, 8);
        if (!cf)
            return false;
        memcpy(&st->cf, cf, 8);
    } else if (p->layout.ts_cframe >= 0) {
        /* Read by the stage this time: from the next round on, by the prefetch, in one iovec
         * with the entry frame beside it on the C stack (one page pinned once, not twice). */
        mem_round_want(p->mem, guard_addr(&p->layout, ps, tstate), 8);
    }
    memcpy(ts, st->ts, need);
    fr->cf_frame = st->cf;
    fr->guard = st->guard;
    memcpy(fr->cframe_alt, st->cframe_alt, sizeof fr->cframe_alt);
    memcpy(fr->cf_alt, st->cf_alt, sizeof fr->cf_alt);
    memcpy(fr->guard_alt, st->guard_alt, sizeof fr->guard_alt);
    return true;
}

/* The guarded read of thread tstate where ps says its stack is: from the round's staged read, or
 * one process_vm_readv of its own. Returns 0 when the thread state was read (fr->ok: all of it),
 * -1 when nothing was. */
static int guarded_read(struct py_proc *p, struct py_prev_stack *ps, uint64_t tstate, uint8_t *ts,
                        size_t need, struct fast_read *fr)
{
    fr->old_len = ps->old_len;
    fr->old_base = ps->old_chunk;
    fr->old_stack = p->stackbuf + ps->copylen;
    fr->stack = p->stackbuf;
    bool staged = take_staged(p, ps, tstate, ts, need, fr);
    p->stackbuf_used = true;
    if (staged) {
        fr->ok = true;
        return 0;
    }
    struct mem_iov iov[GUARD_IOVS_MAX];
    alt_cframes(&p->layout, ps, fr->cframe_alt);
    struct guard_alt alt = {fr->cframe_alt, fr->cf_alt, fr->guard_alt};
    int n = guard_iovs(p, ps, tstate, ts, need, &fr->cf_frame, &fr->guard, &alt, iov);
    /* A retry (the round's prefetch set aside): with the plan again, in the same syscall. A
     * thread whose last walk read heap frames, read after the round's prefetch (not the staged
     * thread): with the heap pages again, after its frame pointer. */
    int got = mem_round_refetch_with(p->mem, iov, n, ps->heap_rounds > 0);
    if (got == n) {
        fr->ok = true;
        return 0;
    }
    ps->chunk = 0;   /* moved or shrank: find it again */
    return got >= 1 ? 0 : -1;
}

bool stack_reseek(struct py_proc *p, uint64_t tstate, const uint8_t *ts)
{
    const struct py_layout *L = &p->layout;
    if (L->frame_model != PY_FRAMES_INTERP || L->ts_datastack_chunk < 0 || L->ts_datastack_top < 0)
        return false;
    uint64_t chunk = u64_at(ts, L->ts_datastack_chunk), top = u64_at(ts, L->ts_datastack_top);
    uint8_t hdr[24];   /* _PyStackChunk: previous, size, top */
    if (!chunk || top <= chunk || mem_read_fresh(p->mem, chunk, hdr, sizeof hdr) != 0)
        return false;
    struct window w = {chunk, sizeof hdr, hdr, 0, false, 0, 0, NULL, 0, 0, 0};
    stack_remember_data(p, tstate, ts, &w);
    return fast_prev(p, tstate) != NULL;
}

/* Reads the thread state, and on 3.11+ its frame pointer and data stack with it, all in one
 * process_vm_readv (or none of its own, when the round's prefetch made it: stack_stage()). Where
 * the thread's stack is not known yet, the thread state is read first and the chunk found from
 * it (stack_reseek(): a read of the chunk's header), then the guarded read is made. */
int stack_read_thread(struct py_proc *p, uint64_t tstate, uint8_t *ts, size_t need,
                      struct fast_read *fr)
{
    fr->ok = false;
    fr->sc0 = mem_syscalls(p->mem);
    struct py_prev_stack *ps = fast_prev(p, tstate);
    if (ps)
        return guarded_read(p, ps, tstate, ts, need, fr);
    int rc = mem_read(p->mem, tstate, ts, need);
    if (rc == 0 && stack_reseek(p, tstate, ts) && (ps = fast_prev(p, tstate)) != NULL) {
        fr->sc0 = mem_syscalls(p->mem);
        if (guarded_read(p, ps, tstate, ts, need, fr) != 0)
            return mem_read(p->mem, tstate, ts, need);
    }
    return rc;
}
