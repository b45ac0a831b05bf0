/*
 * memplan.c — the next round's plan of the round prefetch (memround.c): which of this round's
 * regions stay (used ones; idle heap pages a while), which misses join them, and how regions
 * close together merge into one iovec without pinning another page, in first-use order.
 */
#include "attach/memround_priv.h"

#include <stdlib.h>

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
    /* The window of bytes read starts again: the region is not what it was. */
    into->wlo = into->whi = 0;
    into->wrounds = 0;
}

/* A used heap region: the bytes it served this round join its window; after ROUND_TRIM_ROUNDS
 * rounds it is cut to the window (64-byte aligned) when that copies ROUND_TRIM_MIN bytes less.
 * A page read whole for frame objects copies 4 KiB a round for the few hundred bytes of a
 * frame or two; at depth 50 on 3.8, 19 pages (76 KiB) a round, 9% of pytrace's time in the
 * kernel's copy. */
static void heap_trim(struct round_region *r)
{
    uint64_t lo = r->addr + r->ulo, hi = r->addr + r->uhi;
    if (!r->whi) {
        r->wlo = lo;
        r->whi = hi;
    } else {
        r->wlo = lo < r->wlo ? lo : r->wlo;
        r->whi = hi > r->whi ? hi : r->whi;
    }
    if (++r->wrounds < ROUND_TRIM_ROUNDS)
        return;
    uint64_t tlo = r->wlo & ~(uint64_t)(ROUND_TRIM_ALIGN - 1);
    uint64_t thi = (r->whi + ROUND_TRIM_ALIGN - 1) & ~(uint64_t)(ROUND_TRIM_ALIGN - 1);
    tlo = tlo < r->addr ? r->addr : tlo;
    thi = thi > r->addr + r->len ? r->addr + r->len : thi;
    if (thi > tlo && (thi - tlo) + ROUND_TRIM_MIN <= r->len) {
        r->addr = tlo;
        r->len = (uint32_t)(thi - tlo);
    }
    r->wlo = r->whi = 0;
    r->wrounds = 0;
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
        bool heap = m->page_misses || r->paged;
        if (!r->used) {
            /* Only the churning heap of frame objects comes back to idle pages; elsewhere an
             * unused region is a one-off and goes at once. */
            if (!heap || r->idle > ROUND_KEEP_IDLE || r->len > ROUND_IDLE_REGION ||
                idle_bytes + r->len > ROUND_IDLE_BYTES)
                continue;
            idle_bytes += r->len;
        } else if (heap) {
            /* Frame objects' pages (<= 3.10: pages planned for a small miss) only. 3.11+'s
             * generator frames churn through theirs, and trimmed they missed more
             * (generators.py, 3.12: 1.03-1.17x CPU); a region kept whole only because frame
             * objects' rounds keep everything (2.7's interpreter fields beside one-off reads)
             * missed them every round. */
            if (m->page_misses && r->paged)
                heap_trim(r);
        } else if (pages(r->addr + r->ulo, r->uhi - r->ulo) < pages(r->addr, r->len)) {
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
        m->plan[n] = (struct round_region){.addr = m->miss[i].addr, .len = m->miss[i].len,
                                           .off = bytes, .paged = m->miss[i].paged};
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
