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
 * starts over after finding a torn stack calls mem_round_drop() first. What the next round's plan
 * keeps (and merges, and leaves idle) is memplan.c's.
 */
#include "attach/memround_priv.h"

#include <stdlib.h>
#include <string.h>



/* [addr, addr+len) of r served a read; planned: a read that keeps r in the plan (not a one-off,
 * whose bytes still count where r is cut to what it served). */
static void region_use(struct round_region *r, uint64_t addr, size_t len, bool planned)
{
    uint32_t lo = (uint32_t)(addr - r->addr), hi = lo + (uint32_t)len;
    if (!r->touched || lo < r->ulo)
        r->ulo = lo;
    if (!r->touched || hi > r->uhi)
        r->uhi = hi;
    r->touched = true;
    r->used |= planned;
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
            region_use(r, addr, len, !m->unplanned);
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

const struct mem_ops mem_round_ops = {round_read, round_readv, round_close};

struct mem_src *mem_round_new(struct mem_src *inner)
{
    struct mem_round *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base.ops = &mem_round_ops;
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
static int read_plan(struct mem_round *m, const struct mem_iov *lead, int nlead, bool lead_last,
                     bool paged_only, bool *plan_ok)
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
        if (pass == (lead_last ? 1 : 0)) {
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
        m->plan[i].used = m->plan[i].touched = false;
    if (m->nplan == 0 && m->nstaged == 0)
        return;
    /* A staged read that was not all made is made again by its reader, fresh. */
    bool plan_ok;
    int got = read_plan(m, m->staged, m->nstaged, false, false, &plan_ok);
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

/* The plan, with this round's misses, read again with extra in one syscall (read_plan).
 * Returns how many of extra were read, or -1 when the plan itself was not all read. */
static int refetch(struct mem_round *m, const struct mem_iov *extra, int nextra, bool extra_last)
{
    uint32_t n = m->nplan;
    uint32_t bytes = m->plan[n - 1].off + m->plan[n - 1].len;
    for (uint32_t i = 0; i < m->nmiss && n < ROUND_MAX_REGIONS; i++) {
        if (bytes + m->miss[i].len > m->cap)
            continue;   /* next round's plan has it */
        m->plan[n++] = (struct round_region){.addr = m->miss[i].addr, .len = m->miss[i].len,
                                             .off = bytes, .used = true, .touched = true,
                                             .paged = m->miss[i].paged, .uhi = m->miss[i].len};
        bytes += m->miss[i].len;
        m->miss[i--] = m->miss[--m->nmiss];
    }
    m->nplan = n;
    bool plan_ok;
    int got = read_plan(m, extra, nextra, extra_last, false, &plan_ok);
    m->refetches++;
    /* Partly read: the walk reads afresh, as after any miss, rather than from two instants. */
    m->dropped = !plan_ok;
    return m->dropped ? -1 : got;
}

/*
 * A walk that ran into a region the prefetch did not hold (a frame object in a page the last round
 * did not touch) would otherwise read the rest of its stack one syscall per frame, each a little
 * later than the one before: on a recursion that unwinds and comes back every ~100 µs, 45 syscalls
 * and a stack that moved under them. Instead the whole plan, with this round's misses, is read
 * again in one syscall: a newer single instant the walk can start over from. Not when the buffer
 * would have to grow (pointers from mem_round_peek() must stay valid): the round's end grows it.
 */
int mem_round_refetch(struct mem_src *src)
{
    struct mem_round *m = as_round(src);
    if (!m || !m->active || !m->nplan)
        return -1;
    return refetch(m, NULL, 0, false) == 0 ? 0 : -1;
}

int mem_round_refetch_then(struct mem_src *src, const struct mem_iov *iov, int n)
{
    struct mem_round *m = as_round(src);
    if (!m || !m->active || !m->nplan || n > MEM_ROUND_STAGE_MAX)
        return -1;
    src->reads++;
    int got = refetch(m, iov, n, true);
    return got < 0 ? -1 : got;
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
        return read_plan(m, iov, n, false, true, &paged_ok);
    }
    int got = refetch(m, iov, n, false);
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
