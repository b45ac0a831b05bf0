/*
 * memround.c — a memory source that serves a whole sampling round from one syscall.
 *
 * A sampler reads nearly the same places every round: the runtime's interpreter list, the
 * interpreter, the GIL, each thread state, its frame pointer, its data-stack chunk, the C-stack
 * entry frame, the frame objects that changed. A syscall costs far more than the bytes it moves
 * (process_vm_readv ≈1.5 µs for anything up to a page here), so mem_round_begin() reads every
 * region the previous round used in ONE process_vm_readv, and reads during the round are copied
 * from it; only what the previous round did not read costs a syscall of its own. The regions used
 * this round become the next round's plan, so the plan follows the target as its stack moves.
 *
 * Consistency: the prefetched bytes are all read by one syscall at the start of the round, which
 * is as close together as a read of target memory can be. A reader that must see the target's
 * state *after* the round began (a torn-stack re-check) uses mem_read_fresh(), and a reader that
 * starts over after finding a torn stack calls mem_round_drop() first.
 */
#include "attach/mem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ROUND_MAX_REGIONS 256
#define ROUND_MAX_REGION (1u << 20)   /* larger reads are never prefetched */
#define ROUND_MAX_BYTES (4u << 20)    /* total prefetched per round */
#define ROUND_HINT_BITS 6

struct round_region {
    uint64_t addr;
    uint32_t len;
    uint32_t off;            /* into buf */
    bool ok;                 /* read by this round's prefetch */
    bool used;               /* served a read this round */
    uint8_t idle;            /* rounds since it last served a read */
    bool paged;              /* a page planned for a small miss (heap objects come back to it) */
    uint32_t ulo, uhi;       /* the bytes [ulo, uhi) of it that served reads this round */
};

/* An unused region stays planned this many rounds: a stack that churns (frame objects freed and
 * reallocated every call) comes back to the same pages every few rounds. Regions of up to
 * ROUND_IDLE_REGION (a few pages merged side by side: one pymalloc pool's neighbours), within
 * ROUND_IDLE_BYTES in all: a prefetched byte nobody reads is not free. Keeping only single pages
 * dropped merged ones at once, and 3.10 read 7.5 times a round instead of 2.5. */
#define ROUND_KEEP_IDLE 16
#define ROUND_IDLE_BYTES (64u << 10)
#define ROUND_IDLE_REGION (4 * 4096u)

struct mem_round {
    struct mem_src base;
    struct mem_src *inner;
    bool active, dropped;
    bool page_misses;        /* plan the whole page of each small miss (see mem_round_pages) */
    bool unplanned;          /* misses now are one-offs (mem_round_plan(false)): not planned */
    struct round_region plan[ROUND_MAX_REGIONS];
    uint32_t nplan;
    /* Regions read by syscall this round (misses), to add to the next plan. */
    struct { uint64_t addr; uint32_t len; bool paged; } miss[ROUND_MAX_REGIONS];
    uint32_t nmiss;
    uint8_t *buf;
    size_t cap;
    struct mem_iov iov[ROUND_MAX_REGIONS + MEM_ROUND_STAGE_MAX];
    int16_t which[ROUND_MAX_REGIONS + MEM_ROUND_STAGE_MAX];   /* read_plan()'s iov order */
    uint64_t hits, prefetches, refetches;
    /* Which plan region served a page last (a hint: checked before use). */
    struct page_hint { uint64_t page; uint32_t idx; } hints[1u << ROUND_HINT_BITS];
    /* mem_round_stage(): read after the plan in the round's one syscall. */
    struct mem_iov staged[MEM_ROUND_STAGE_MAX];
    int nstaged, staged_got;   /* staged_got -1: no round read them yet */
    uint64_t staged_key;
};

static const struct mem_ops round_ops;

static struct mem_round *as_round(struct mem_src *src)
{
    return src && src->ops == &round_ops ? (struct mem_round *)src : NULL;
}

static void region_use(struct round_region *r, uint64_t addr, size_t len)
{
    uint32_t lo = (uint32_t)(addr - r->addr), hi = lo + (uint32_t)len;
    if (!r->used || lo < r->ulo)
        r->ulo = lo;
    if (!r->used || hi > r->uhi)
        r->uhi = hi;
    r->used = true;
}

/* Whether region r was read by this round's prefetch and holds all of [addr, addr+len). */
static bool region_holds(const struct round_region *r, uint64_t addr, size_t len)
{
    return r->ok && addr >= r->addr && addr - r->addr <= r->len && len <= r->len - (addr - r->addr);
}

/* The prefetched region that holds all of [addr, addr+len), or NULL; marks it used. A walk reads
 * its frames from the same few pages every round: the region each page was found in last is
 * tried first (a scan of the plan per frame was a tenth of a ≤ 3.10 sample's instructions). */
static struct round_region *round_find(struct mem_round *m, uint64_t addr, size_t len)
{
    if (!m->active || m->dropped)
        return NULL;
    uint64_t page = addr >> 12;
    struct page_hint *h = &m->hints[(page * 0x9e3779b97f4a7c15ULL) >> (64 - ROUND_HINT_BITS)];
    /* A hint from an earlier round may name another region now (the plan is rebuilt at each
     * round's end): whichever region it names is used only if it holds the bytes. */
    uint32_t i = h->page == page && h->idx < m->nplan && region_holds(&m->plan[h->idx], addr, len)
                     ? h->idx : 0;
    for (; i < m->nplan; i++) {
        struct round_region *r = &m->plan[i];
        if (region_holds(r, addr, len)) {
            /* A one-off read (mem_round_plan(false)) served here does not keep the region
             * planned: one wanted for this round only (mem_round_want) is read once. */
            if (!m->unplanned)
                region_use(r, addr, len);
            m->hits++;
            *h = (struct page_hint){page, i};
            return r;
        }
    }
    return NULL;
}

/* Serves [addr, addr+len) from the prefetch when one region holds all of it. */
static bool round_hit(struct mem_round *m, uint64_t addr, void *buf, size_t len)
{
    struct round_region *r = round_find(m, addr, len);
    if (r)
        memcpy(buf, m->buf + r->off + (addr - r->addr), len);
    return r != NULL;
}

#define ROUND_PAGE 4096u

static void note_miss(struct mem_round *m, uint64_t addr, size_t len, bool page)
{
    if (!m->active || m->unplanned || len == 0 || len > ROUND_MAX_REGION)
        return;
    bool paged = page && len <= ROUND_PAGE / 8 && (addr & (ROUND_PAGE - 1)) + len <= ROUND_PAGE;
    if (paged) {
        /* Objects of one size class share pymalloc pools: the next round's new frame object is
         * most likely in a page this round already touched. The page is mapped: we just read it. */
        addr &= ~(uint64_t)(ROUND_PAGE - 1);
        len = ROUND_PAGE;
    }
    for (uint32_t i = 0; i < m->nmiss; i++) {
        if (m->miss[i].addr == addr) {
            if (len > m->miss[i].len)
                m->miss[i].len = (uint32_t)len;
            m->miss[i].paged |= paged;
            return;
        }
    }
    if (m->nmiss < ROUND_MAX_REGIONS)
        m->miss[m->nmiss++] = (typeof(m->miss[0])){addr, (uint32_t)len, paged};
}

static void round_note_miss(struct mem_round *m, uint64_t addr, size_t len)
{
    note_miss(m, addr, len, m->page_misses);
}

/*
 * A read that missed the prefetch saw the target later than the prefetch did. Serving the rest of
 * this reader's reads from the older prefetch could pair a newer pointer with older bytes (a frame
 * pointer read now, the data stack it points into as it was at the round's start): so after a
 * planned miss the prefetch is set aside until mem_round_resume(), and reads stay in time order.
 * One-off reads (mem_round_plan(false): immutable code objects) do not count.
 */
static void round_after_miss(struct mem_round *m)
{
    if (m->active && !m->unplanned)
        m->dropped = true;
}

static int round_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    struct mem_round *m = (struct mem_round *)src;
    src->reads++;
    if (round_hit(m, addr, buf, len))
        return 0;
    if (mem_read(m->inner, addr, buf, len) != 0) {
        src->failures++;
        return -1;
    }
    round_note_miss(m, addr, len);
    round_after_miss(m);
    return 0;
}

/* Serves what it can from the prefetch and reads the rest with one inner readv. Returns the
 * number of leading iovs read completely, as mem_readv() does. */
static int round_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    struct mem_round *m = (struct mem_round *)src;
    src->reads++;
    struct mem_iov missv[64];
    int idx[64], k = 0;
    if (n > 64) {
        /* Rare and large: no prefetch bookkeeping. */
        int got = mem_readv(m->inner, iov, n);
        if (got < n)
            src->failures++;
        return got;
    }
    for (int i = 0; i < n; i++) {
        if (round_hit(m, iov[i].addr, iov[i].buf, iov[i].len))
            continue;
        missv[k] = iov[i];
        idx[k++] = i;
    }
    if (k == 0)
        return n;
    int got = mem_readv(m->inner, missv, k);
    for (int j = 0; j < got; j++)
        round_note_miss(m, missv[j].addr, missv[j].len);
    round_after_miss(m);
    if (got == k)
        return n;
    src->failures++;
    return idx[got];   /* the first iov that was neither prefetched nor read */
}

static void round_close(struct mem_src *src)
{
    struct mem_round *m = (struct mem_round *)src;
    mem_close(m->inner);
    free(m->buf);
    free(m);
}

static const struct mem_ops round_ops = {round_read, round_readv, round_close};

struct mem_src *mem_round_new(struct mem_src *inner)
{
    struct mem_round *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base.ops = &round_ops;
    m->inner = inner;
    return &m->base;
}

/*
 * One syscall: the plan's regions, with lead (a reader's own fresh read: 3.11+, a thread's
 * guarded read, whose last iovec is the sample's instant) among them: after the plan's other
 * regions (a 3.12 thread's first frame-pointer read, planned beside its entry frame on the C
 * stack, must come before it), before its paged ones. What a walk reaches through pointers from
 * lead (generators' and coroutines' frames on the heap) is then read no earlier than those
 * pointers, and the walk's re-check of the top afterwards covers it; read before them, a frame
 * freed and reused in between came out as another call's. process_vm_readv stops at the first
 * region that fails (unmapped since): the ones before it are good, the rest are read on demand.
 * paged_only: the other regions are neither read nor touched (they keep the round's first read).
 * Returns how many of lead were read; *plan_ok, whether all of what was asked was.
 */
static int read_plan(struct mem_round *m, const struct mem_iov *lead, int nlead, bool paged_only,
                     bool *plan_ok)
{
    int np = (int)m->nplan, n = 0, lead_at = -1;
    int16_t *which = m->which;   /* iov k reads plan region which[k], or lead for -1 */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < np; i++) {
            struct round_region *r = &m->plan[i];
            if (r->paged != (pass == 1) || (paged_only && !r->paged))
                continue;
            r->ok = false;
            which[n] = (int16_t)i;
            m->iov[n++] = (struct mem_iov){r->addr, m->buf + r->off, r->len};
        }
        if (pass == 0) {
            lead_at = n;
            for (int i = 0; i < nlead; i++) {
                which[n] = -1;
                m->iov[n++] = lead[i];
            }
        }
    }
    int got = n ? mem_readv(m->inner, m->iov, n) : 0;
    for (int k = 0; k < got; k++)
        if (which[k] >= 0)
            m->plan[which[k]].ok = true;
    *plan_ok = got == n;
    return got <= lead_at ? 0 : got - lead_at < nlead ? got - lead_at : nlead;
}

void mem_round_begin(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    if (!m)
        return;
    m->active = true;
    m->dropped = false;
    m->nmiss = 0;
    for (uint32_t i = 0; i < m->nplan; i++)
        m->plan[i].used = false;
    if (m->nplan == 0 && m->nstaged == 0)
        return;
    /* A staged read that was not all made is made again by its reader, fresh. */
    bool plan_ok;
    int got = read_plan(m, m->staged, m->nstaged, false, &plan_ok);
    m->prefetches++;
    if (m->nstaged)
        m->staged_got = got;
}

void mem_round_stage(struct mem_src *src, uint64_t key, const struct mem_iov *iov, int n)
{
    struct mem_round *m = as_round(src);
    if (!m || n <= 0 || n > MEM_ROUND_STAGE_MAX || m->active)
        return;
    memcpy(m->staged, iov, (size_t)n * sizeof *iov);
    m->nstaged = n;
    m->staged_key = key;
    m->staged_got = -1;
}

bool mem_round_planned(struct mem_src *src, uint64_t addr, size_t len)
{
    struct mem_round *m = as_round(src);
    if (!m || m->active)
        return false;
    for (uint32_t i = 0; i < m->nplan; i++) {
        const struct round_region *r = &m->plan[i];
        if (addr >= r->addr && addr - r->addr <= r->len && len <= r->len - (addr - r->addr))
            return true;
    }
    return false;
}

void mem_round_want(struct mem_src *src, uint64_t addr, size_t len)
{
    struct mem_round *m = as_round(src);
    if (m && m->active)
        round_note_miss(m, addr, len);
}

void mem_round_want_page(struct mem_src *src, uint64_t addr)
{
    struct mem_round *m = as_round(src);
    if (m && m->active)
        note_miss(m, addr, 1, true);
}

int mem_round_staged(struct mem_src *src, uint64_t key)
{
    struct mem_round *m = as_round(src);
    if (!m || !m->nstaged || m->staged_key != key)
        return -1;
    int got = m->staged_got;
    m->nstaged = 0;
    m->staged_got = -1;
    return got;
}

/* Regions closer than this are read as one: the kernel's cost is per iovec and per page, and the
 * bytes between two regions this close are on pages that are mapped already (theirs). */
#define ROUND_COALESCE_GAP 512u

static void region_merge(struct round_region *into, const struct round_region *r, uint64_t lo,
                         uint64_t hi)
{
    into->addr = lo;
    into->len = (uint32_t)(hi - lo);
    into->idle = r->idle < into->idle ? r->idle : into->idle;
    into->paged = into->paged || r->paged;
}

/* Whether reading a and b as one region [lo, hi) pins no page that reading them apart would not,
 * and copies at most a page: then one iovec does for both. */
static bool merge_is_free(const struct round_region *a, const struct round_region *b, uint64_t lo,
                          uint64_t hi)
{
    if (!a->len || !b->len || hi - lo > ROUND_PAGE)
        return false;
    uint64_t a0 = a->addr / ROUND_PAGE, a1 = (a->addr + a->len - 1) / ROUND_PAGE;
    uint64_t b0 = b->addr / ROUND_PAGE, b1 = (b->addr + b->len - 1) / ROUND_PAGE;
    uint64_t both = (a1 - a0 + 1) + (b1 - b0 + 1);
    uint64_t o0 = a0 > b0 ? a0 : b0, o1 = a1 < b1 ? a1 : b1;
    if (o0 <= o1)
        both -= o1 - o0 + 1;   /* pages they share */
    return (hi - 1) / ROUND_PAGE - lo / ROUND_PAGE + 1 <= both;
}

/* How many regions back a region may join one that takes it in without another page. */
#define ROUND_JOIN_LOOKBACK 8

/*
 * Merges each region into the one before it when they overlap or nearly touch (frames side by side
 * in an older data-stack chunk, walked one after the other), so a deep stack is a handful of
 * iovecs rather than one per frame. The plan is NOT sorted: process_vm_readv copies iovecs in
 * order, and first-use order is what keeps a round consistent — a thread state and its frame
 * pointer are read before the data stack they point into, so a frame pushed in between is in
 * the copy rather than missing from it (or, worse, stale in it). The one exception: a region
 * that one up to ROUND_JOIN_LOOKBACK earlier takes in without another page joins it. Recomputes
 * offsets.
 */
static uint32_t round_coalesce(struct round_region *plan, uint32_t n, uint32_t *bytes)
{
    uint32_t out = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct round_region *last = out ? &plan[out - 1] : NULL;
        uint64_t new_end = plan[i].addr + plan[i].len;
        if (last) {
            uint64_t lo = plan[i].addr < last->addr ? plan[i].addr : last->addr;
            uint64_t end = last->addr + last->len;
            uint64_t hi = new_end > end ? new_end : end;
            bool near = plan[i].addr <= end + ROUND_COALESCE_GAP &&
                        last->addr <= new_end + ROUND_COALESCE_GAP;
            if (near && hi - lo <= ROUND_MAX_REGION) {
                region_merge(last, &plan[i], lo, hi);
                continue;
            }
        }
        /* A small region that one a little earlier in the plan can take in without pinning
         * another page joins it: the C stack of a 3.12 thread running nested eval loops (an
         * entry frame per loop, and the frame pointer beside the innermost: within a page, or
         * across the boundary of two) is then one iovec, not one each. Read a few iovecs earlier
         * within the same syscall, which is all the order it gives up. */
        struct round_region *same = NULL;
        for (uint32_t k = out; k > 0 && out - k < ROUND_JOIN_LOOKBACK && !same; k--) {
            struct round_region *o = &plan[k - 1];
            uint64_t lo = plan[i].addr < o->addr ? plan[i].addr : o->addr;
            uint64_t end = o->addr + o->len, hi = new_end > end ? new_end : end;
            if (merge_is_free(o, &plan[i], lo, hi))
                same = o;
        }
        if (same) {
            uint64_t end = same->addr + same->len;
            region_merge(same, &plan[i], plan[i].addr < same->addr ? plan[i].addr : same->addr,
                         new_end > end ? new_end : end);
            continue;
        }
        plan[out++] = plan[i];
    }
    uint32_t off = 0;
    for (uint32_t i = 0; i < out; i++) {
        plan[i].off = off;
        off += plan[i].len;
    }
    *bytes = off;
    return out;
}

static uint64_t pages(uint64_t addr, uint64_t len)
{
    return len ? ((addr + len - 1) / ROUND_PAGE) - (addr / ROUND_PAGE) + 1 : 0;
}

/* Next plan = this round's used prefetched regions, then its misses, in first-use order as far as
 * cheap (prefetched ones first: they were the stable part). Grows buf only when the plan grows. */
void mem_round_end(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    if (!m || !m->active)
        return;
    m->active = false;
    m->nstaged = 0;   /* a stage is for one round: its reader did not come */
    uint32_t n = 0, bytes = 0, idle_bytes = 0;
    for (uint32_t i = 0; i < m->nplan; i++) {
        struct round_region *r = &m->plan[i];
        r->idle = r->used ? 0 : (uint8_t)(r->idle + 1);
        if (!r->used) {
            /* Only the churning heap of frame objects comes back to idle pages; elsewhere an
             * unused region is a one-off and goes at once. */
            if (!(m->page_misses || r->paged) || r->idle > ROUND_KEEP_IDLE || r->len > ROUND_IDLE_REGION ||
                idle_bytes + r->len > ROUND_IDLE_BYTES)
                continue;
            idle_bytes += r->len;
        } else if (!(m->page_misses || r->paged) && pages(r->addr + r->ulo, r->uhi - r->ulo) < pages(r->addr, r->len)) {
            /* Pages of it that served no read this round go (a region merged with a one-off
             * read next to it would otherwise keep the one-off's pages for good); within a
             * page, the bytes are free. */
            r->addr += r->ulo;
            r->len = r->uhi - r->ulo;
        }
        m->plan[n] = *r;
        m->plan[n].off = bytes;
        bytes += m->plan[n].len;
        n++;
    }
    for (uint32_t i = 0; i < m->nmiss && n < ROUND_MAX_REGIONS; i++) {
        if (bytes + m->miss[i].len > ROUND_MAX_BYTES)
            continue;
        bool dup = false;
        for (uint32_t j = 0; j < n && !dup; j++)
            dup = m->plan[j].addr == m->miss[i].addr && m->plan[j].len >= m->miss[i].len;
        if (dup)
            continue;
        m->plan[n] = (struct round_region){m->miss[i].addr, m->miss[i].len, bytes, false, false, 0,
                                           m->miss[i].paged, 0, 0};
        bytes += m->miss[i].len;
        n++;
    }
    n = round_coalesce(m->plan, n, &bytes);
    if (bytes > m->cap) {
        size_t cap = m->cap ? m->cap : 16384;
        while (cap < bytes)
            cap *= 2;
        uint8_t *b = realloc(m->buf, cap);
        if (!b) {
            m->nplan = 0;
            return;
        }
        m->buf = b;
        m->cap = cap;
    }
    m->nplan = n;
}

/*
 * A walk that ran into a region the prefetch did not hold (a frame object in a page the last round
 * did not touch) would otherwise read the rest of its stack one syscall per frame, each a little
 * later than the one before: on a recursion that unwinds and comes back every ~100 µs, 45 syscalls
 * and a stack that moved under them. Instead the whole plan, with this round's misses, is read
 * again in one syscall: a newer single instant the walk can start over from. Not when the buffer
 * would have to grow (pointers from mem_round_peek() must stay valid): the round's end grows it.
 */
/* The plan, with this round's misses, read again with extra in one syscall (read_plan).
 * Returns how many of extra were read, or -1 when the plan itself was not all read. */
static int refetch(struct mem_round *m, const struct mem_iov *extra, int nextra)
{
    uint32_t n = m->nplan;
    uint32_t bytes = m->plan[n - 1].off + m->plan[n - 1].len;
    for (uint32_t i = 0; i < m->nmiss && n < ROUND_MAX_REGIONS; i++) {
        if (bytes + m->miss[i].len > m->cap)
            continue;   /* next round's plan has it */
        m->plan[n++] = (struct round_region){m->miss[i].addr, m->miss[i].len, bytes, false, true,
                                             0, m->miss[i].paged, 0, m->miss[i].len};
        bytes += m->miss[i].len;
        m->miss[i--] = m->miss[--m->nmiss];
    }
    m->nplan = n;
    bool plan_ok;
    int got = read_plan(m, extra, nextra, false, &plan_ok);
    m->refetches++;
    /* Partly read: the walk reads afresh, as after any miss, rather than from two instants. */
    m->dropped = !plan_ok;
    return m->dropped ? -1 : got;
}

int mem_round_refetch(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    if (!m || !m->active || !m->nplan)
        return -1;
    return refetch(m, NULL, 0) == 0 ? 0 : -1;
}

static bool has_paged(const struct mem_round *m)
{
    for (uint32_t i = 0; i < m->nplan; i++)
        if (m->plan[i].paged)
            return true;
    return false;
}

int mem_round_refetch_with(struct mem_src *src, const struct mem_iov *iov, int n, bool heap)
{
    struct mem_round *m = as_round(src);
    if (!m || !m->active || !m->nplan || n > MEM_ROUND_STAGE_MAX ||
        !(m->dropped || (heap && has_paged(m))))
        return mem_readv_fresh(src, iov, n);
    src->reads++;
    if (!m->dropped) {
        /* The prefetch is in use, but its heap pages are older than iov: read again after it. */
        bool paged_ok;
        return read_plan(m, iov, n, true, &paged_ok);
    }
    int got = refetch(m, iov, n);
    return got >= 0 ? got : mem_readv_fresh(src, iov, n);
}

bool mem_round_dropped(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    return m && m->active && m->dropped;
}

const uint8_t *mem_round_peek(struct mem_src *src, uint64_t addr, size_t len)
{
    struct mem_round *m = as_round(src);
    struct round_region *r = m ? round_find(m, addr, len) : NULL;
    return r ? m->buf + r->off + (addr - r->addr) : NULL;
}

void mem_round_plan(struct mem_src *src, bool on)
{
    struct mem_round *m = as_round(src);
    if (m)
        m->unplanned = !on;
}

bool mem_round_pages(struct mem_src *src, bool on)
{
    struct mem_round *m = as_round(src);
    if (!m)
        return false;
    bool was = m->page_misses;
    m->page_misses = on;
    return was;
}

void mem_round_resume(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    if (m)
        m->dropped = false;
}

void mem_round_drop(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    if (m)
        m->dropped = true;
}

int mem_read_fresh(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    struct mem_round *m = as_round(src);
    if (!m)
        return mem_read(src, addr, buf, len);
    src->reads++;
    return mem_read(m->inner, addr, buf, len);
}

int mem_readv_fresh(struct mem_src *src, const struct mem_iov *iov, int n)
{
    struct mem_round *m = as_round(src);
    if (!m)
        return mem_readv(src, iov, n);
    src->reads++;
    return mem_readv(m->inner, iov, n);
}

uint64_t mem_syscalls(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    return m ? m->inner->reads : src->reads;
}

void mem_round_stats(struct mem_src *src, uint64_t *hits, uint64_t *prefetches, uint32_t *regions)
{
    struct mem_round *m = as_round(src);
    *hits = m ? m->hits : 0;
    *prefetches = m ? m->prefetches : 0;
    *regions = m ? m->nplan : 0;
}
