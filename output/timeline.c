/*
 * timeline.c — sampled stacks turned into calls with begin and end bounds (timeline.h).
 *
 * Each thread keeps the calls of its last good sample, root first. A new sample continues the
 * longest prefix of the same calls; the rest of the old stack ends (innermost first) and the rest
 * of the new one begins. Which frames count as "the same call" is docs/timing.md's subject.
 * Per-thread arrays are kept between samples and grown geometrically: steady state allocates nothing.
 */
#include "output/timeline.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* A call on a thread's stack at its last good sample, with what the next sample is compared to. */
struct tl_open {
    uint64_t addr;
    int32_t lasti;          /* latest known offset of this frame, -1 none known yet */
    int32_t site;           /* the caller's offset while this call runs (its call site), -1 unknown */
    uint64_t argsig;        /* latest nonzero argument signature, 0 none known yet */
    uint64_t first_feed;    /* the thread's feed count when this call was first seen */
    struct tl_span span;    /* span.end and span.samples are set when the call ends: an open
                             * call was in every good sample since first_feed, the last of them
                             * at the thread's last_t */
};

struct tl_thread {
    struct tl_open *open;   /* root first; n used, cap allocated */
    size_t n, cap;
    uint64_t last_t;        /* time of the last good sample */
    uint64_t feeds;         /* good samples fed */
    bool seen;              /* a good sample arrived since creation (or since the thread ended) */
};

struct timeline {
    tl_emit_fn emit;
    tl_begin_fn begin;
    void *ctx;
    struct tl_thread *threads;
    size_t nthreads;        /* entries allocated; indices are the caller's thread numbers */
};

struct timeline *tl_new(tl_emit_fn emit, void *ctx)
{
    struct timeline *tl = calloc(1, sizeof *tl);
    if (!tl)
        return NULL;
    tl->emit = emit;
    tl->ctx = ctx;
    return tl;
}

void tl_set_begin_hook(struct timeline *tl, tl_begin_fn fn)
{
    tl->begin = fn;
}

void tl_free(struct timeline *tl)
{
    if (!tl)
        return;
    for (size_t i = 0; i < tl->nthreads; i++)
        free(tl->threads[i].open);
    free(tl->threads);
    free(tl);
}

/* The thread's state, created (zeroed) on demand; NULL on OOM, or when absent and !create. */
static struct tl_thread *tl_thread(struct timeline *tl, uint32_t thread, bool create)
{
    if (thread < tl->nthreads)
        return &tl->threads[thread];
    if (!create)
        return NULL;
    size_t cap = tl->nthreads ? tl->nthreads * 2 : 8;
    if (cap <= thread)
        cap = (size_t)thread + 1;
    struct tl_thread *t = realloc(tl->threads, cap * sizeof *t);
    if (!t)
        return NULL;
    memset(t + tl->nthreads, 0, (cap - tl->nthreads) * sizeof *t);
    tl->threads = t;
    tl->nthreads = cap;
    return &t[thread];
}

/* Room for n open calls, so that a failed allocation leaves the thread as it was. */
static int tl_reserve(struct tl_thread *th, size_t n)
{
    if (n <= th->cap)
        return 0;
    size_t cap = th->cap ? th->cap * 2 : 32;
    if (cap < n)
        cap = n;
    struct tl_open *o = realloc(th->open, cap * sizeof *o);
    if (!o)
        return -1;
    th->open = o;
    th->cap = cap;
    return 0;
}

/*
 * Whether frame f continues the open call o. parent_lasti is the caller frame's offset in this
 * sample (-1 for the root or unknown); the caller frame itself already continues. The three hints
 * and why each is safe are in docs/timing.md ("Same call or a new one").
 */
static bool tl_continues(const struct tl_open *o, const struct tl_frame *f, int32_t parent_lasti)
{
    if (o->addr != f->addr || o->span.function != f->function)
        return false;
    /* Other objects in the argument slots: the slot was reused by a new call. */
    if (o->argsig && f->argsig && o->argsig != f->argsig)
        return false;
    /* The feeder, which has the code's loops, saw the offset go back where no loop leads. */
    if (f->restart)
        return false;
    /* A caller does not move while its callee runs: a new offset means a new callee. */
    if (o->site >= 0 && parent_lasti >= 0 && o->site != parent_lasti)
        return false;
    return true;
}

/* How many calls past the first `from`, root first, the new stack shares with the thread's open
 * ones. */
static size_t tl_common_from(const struct tl_thread *th, const struct tl_frame *frames, size_t n,
                             size_t from)
{
    size_t max = n < th->n ? n : th->n;
    size_t k = from;
    while (k < max && tl_continues(&th->open[k], &frames[k], k ? frames[k - 1].lasti : -1))
        k++;
    return k - from;
}

/* Ends the open calls past the first keep, innermost first, so that a writer can stream. */
static void tl_close(struct timeline *tl, struct tl_thread *th, size_t keep, uint64_t end_hi,
                     bool open_end)
{
    while (th->n > keep) {
        struct tl_open *o = &th->open[--th->n];
        struct tl_span *s = &o->span;
        s->end = th->last_t;
        s->samples = th->feeds - o->first_feed + 1;
        s->open_end = open_end;
        s->end_hi = open_end ? s->end : end_hi;
        tl->emit(s, tl->ctx);
    }
}

/* Another sighting of an open call: hints keep their latest known value (its end and sample count
 * follow from the thread's, see struct tl_open). */
static void tl_extend(struct tl_open *o, const struct tl_frame *f, int32_t parent_lasti)
{
    if (f->lasti >= 0)
        o->lasti = f->lasti;
    if (f->argsig)
        o->argsig = f->argsig;
    if (o->site < 0)
        o->site = parent_lasti;
}

/* A call first seen at depth i of this sample; it began after the thread's last good sample. */
static void tl_begin(struct tl_open *o, uint32_t thread, const struct tl_thread *th,
                     const struct tl_frame *frames, size_t i, uint64_t t)
{
    const struct tl_frame *f = &frames[i];
    o->addr = f->addr;
    o->lasti = f->lasti;
    o->site = i ? frames[i - 1].lasti : -1;
    o->argsig = f->argsig;
    o->first_feed = th->feeds;
    o->span = (struct tl_span){
        .thread = thread,
        .function = f->function,
        .depth = (uint32_t)i,
        .call_line = i ? frames[i - 1].line : -1,
        .first_line = f->line,
        .begin_lo = th->seen ? th->last_t : t,
        .begin = t,
        .end = t,
        .end_hi = t,
        .samples = 1,
        .open_begin = !th->seen,
    };
}

int tl_feed(struct timeline *tl, uint32_t thread, uint64_t t_ns, const struct tl_frame *frames,
            size_t n)
{
    return tl_feed_same(tl, thread, t_ns, frames, n, 0);
}

int tl_feed_same(struct timeline *tl, uint32_t thread, uint64_t t_ns, const struct tl_frame *frames,
                 size_t n, size_t same)
{
    struct tl_thread *th = tl_thread(tl, thread, true);
    if (!th || tl_reserve(th, n) != 0)
        return -1;
    assert(!th->seen || t_ns >= th->last_t);
    if (!th->seen || same > th->n || same > n)
        same = 0;
    /* The first `same` frames are the previous sample's, field for field: they continue, and
     * extending them would change nothing (tl_extend keeps values those frames already set). */
    size_t k = same + tl_common_from(th, frames, n, same);
    tl_close(tl, th, k, t_ns, false);
    th->feeds++;
    for (size_t i = same; i < k; i++)
        tl_extend(&th->open[i], &frames[i], i ? frames[i - 1].lasti : -1);
    for (size_t i = k; i < n; i++) {
        tl_begin(&th->open[i], thread, th, frames, i, t_ns);
        if (tl->begin)
            tl->begin(&th->open[i].span, i, tl->ctx);
    }
    th->n = n;
    th->last_t = t_ns;
    th->seen = true;
    return 0;
}

/*
 * A torn sample shows nothing reliable, so it is not a sighting: the next good sample compares
 * against the last good stack, and its begin_lo / end_hi stay at the last good sample's time
 * (the widest honest bounds). There is thus nothing to record.
 */
void tl_feed_bad(struct timeline *tl, uint32_t thread, uint64_t t_ns)
{
    (void)tl;
    (void)thread;
    (void)t_ns;
}

void tl_end_thread(struct timeline *tl, uint32_t thread, uint64_t t_ns)
{
    struct tl_thread *th = tl_thread(tl, thread, false);
    if (!th || !th->seen)
        return;
    assert(t_ns >= th->last_t);
    tl_close(tl, th, 0, t_ns, false);
    th->seen = false;   /* a thread reusing this index starts afresh, with open_begin calls */
}

void tl_finish(struct timeline *tl, uint64_t t_ns)
{
    (void)t_ns;   /* nothing sampled after the last sample bounds an end: end_hi stays = end */
    for (size_t i = 0; i < tl->nthreads; i++) {
        struct tl_thread *th = &tl->threads[i];
        if (th->seen)
            tl_close(tl, th, 0, 0, true);
        th->seen = false;
    }
}
