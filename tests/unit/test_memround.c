/*
 * test_memround.c — attach/memround.c, the round prefetch: what a round reads becomes the next
 * round's one-syscall plan; reads inside the plan cost no syscall of their own; fresh reads and
 * dropped rounds see the target as it is now; regions that fail or fall idle leave the plan.
 * The inner source is a fake whose bytes the tests change between reads, as a target would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "attach/mem.h"

struct fixture {
    struct mem_src *inner, *round;
    uint8_t *a, *b;          /* the fake's own bytes at 0x1000 and 0x9000 */
};

static int setup(void **state)
{
    static struct fixture f;
    uint8_t bytes[256];
    memset(bytes, 0x11, sizeof bytes);
    f.inner = mem_fake_new();
    assert_int_equal(mem_fake_add(f.inner, 0x1000, bytes, sizeof bytes), 0);
    memset(bytes, 0x22, sizeof bytes);
    assert_int_equal(mem_fake_add(f.inner, 0x9000, bytes, sizeof bytes), 0);
    f.a = mem_fake_region(f.inner, 0x1000);
    f.b = mem_fake_region(f.inner, 0x9000);
    f.round = mem_round_new(f.inner);
    assert_non_null(f.round);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mem_close(f->round);   /* closes the inner source too */
    return 0;
}

/* One round that reads 0x1000+16 (64 bytes) and 0x9000 (8 bytes). */
static void read_round(struct fixture *f, uint8_t *x, uint64_t *y)
{
    mem_round_begin(f->round);
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(mem_read_ptr(f->round, 0x9000, y), 0);
    mem_round_end(f->round);
}

/* n rounds that read only 0x9000 (the rest of the plan falls idle). */
static void rounds_reading_only_b(struct fixture *f, int n)
{
    uint64_t y;
    for (int i = 0; i < n; i++) {
        mem_round_begin(f->round);
        assert_int_equal(mem_read_ptr(f->round, 0x9000, &y), 0);
        mem_round_end(f->round);
    }
}

static void second_round_costs_one_syscall(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y;
    read_round(f, x, &y);
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(before, 2);
    read_round(f, x, &y);
    assert_int_equal(mem_syscalls(f->round) - before, 1);   /* the prefetch alone */
    assert_int_equal(x[0], 0x11);
    assert_int_equal(y & 0xff, 0x22);
}

static void prefetch_is_taken_at_round_start(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y;
    read_round(f, x, &y);
    mem_round_begin(f->round);
    f->a[0x10] = 0x5a;   /* the target writes after the prefetch */
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(x[0], 0x11);                         /* the round's instant */
    uint8_t now;
    assert_int_equal(mem_read_fresh(f->round, 0x1010, &now, 1), 0);
    assert_int_equal(now, 0x5a);                          /* a re-check sees the change */
    mem_round_drop(f->round);
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(x[0], 0x5a);                         /* a dropped round reads afresh */
    mem_round_end(f->round);
}

static void reads_outside_a_round_go_straight_through(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y;
    read_round(f, x, &y);
    f->a[0x10] = 0x77;
    assert_int_equal(mem_read(f->round, 0x1010, x, 1), 0);
    assert_int_equal(x[0], 0x77);
}

static void readv_mixes_hits_and_misses(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y, z = 0, w = 0;
    read_round(f, x, &y);
    mem_round_begin(f->round);
    uint64_t before = mem_syscalls(f->round);
    struct mem_iov iov[3] = {{0x1010, x, 64}, {0x9080, &z, 8}, {0x9000, &w, 8}};
    assert_int_equal(mem_readv(f->round, iov, 3), 3);
    assert_int_equal(mem_syscalls(f->round) - before, 1);   /* the miss only */
    assert_int_equal(w & 0xff, 0x22);
    /* A miss that fails: the count stops at it, as for any source. */
    struct mem_iov bad[3] = {{0x1010, x, 64}, {0x5000, &z, 8}, {0x9000, &w, 8}};
    assert_int_equal(mem_readv(f->round, bad, 3), 1);
    mem_round_end(f->round);
}

static void a_region_that_fails_is_read_on_demand(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y;
    read_round(f, x, &y);
    /* 0x1010 grows past its mapping next round: the prefetch stops there, and the reads of it
     * and of every region after it fall back to the inner source. */
    mem_round_begin(f->round);
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(mem_read_ptr(f->round, 0x9000, &y), 0);
    assert_int_not_equal(mem_read(f->round, 0x10f0, x, 64), 0);   /* past the region's end */
    mem_round_end(f->round);
    uint64_t hits, prefetches;
    uint32_t regions;
    mem_round_stats(f->round, &hits, &prefetches, &regions);
    assert_int_equal(regions, 2);   /* the failed read did not join the plan */
}

static void idle_regions_leave_the_plan(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y, hits, prefetches;
    uint32_t regions;
    read_round(f, x, &y);
    rounds_reading_only_b(f, 40);
    mem_round_stats(f->round, &hits, &prefetches, &regions);
    assert_int_equal(regions, 1);
}

/* A region that a one-off read made long (a block of fields) and that later rounds use only a
 * corner of gives up its unread pages; within a page it stays whole (the bytes are free). */
static void pages_no_read_used_leave_the_plan(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[3 * 4096];
    memset(big, 0x44, sizeof big);
    assert_int_equal(mem_fake_add(f->inner, 0x20000, big, sizeof big), 0);
    mem_round_begin(f->round);
    assert_int_equal(mem_read(f->round, 0x20000, big, sizeof big), 0);
    assert_int_equal(mem_read(f->round, 0x1000, big, 200), 0);
    mem_round_end(f->round);
    assert_true(mem_round_planned(f->round, 0x20000, 8));
    uint64_t v;
    mem_round_begin(f->round);
    assert_int_equal(mem_read_ptr(f->round, 0x22ff0, &v), 0);   /* the last page only */
    assert_int_equal(mem_read_ptr(f->round, 0x1010, &v), 0);
    mem_round_end(f->round);
    assert_true(mem_round_planned(f->round, 0x22ff0, 8));
    assert_false(mem_round_planned(f->round, 0x20000, 8));
    assert_false(mem_round_planned(f->round, 0x21000, 8));
    assert_true(mem_round_planned(f->round, 0x1000, 200));      /* one page: kept whole */
    mem_round_begin(f->round);
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(mem_read_ptr(f->round, 0x22ff0, &v), 0);
    assert_int_equal(mem_syscalls(f->round), before);
    assert_int_equal(v & 0xff, 0x44);
    assert_false(mem_round_planned(f->round, 0x22ff0, 8));      /* asked during a round: no */
    mem_round_end(f->round);
}

/* Page mode (frame objects): pages planned side by side merge into one region; when idle it
 * stays planned for a while like a single page (frames come back to the same pools), and leaves
 * after ROUND_KEEP_IDLE rounds. (Dropped at once, as it was, 3.10 read 7.5 times a round.) */
static void idle_merged_pages_stay_planned_in_page_mode(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[2 * 4096];
    memset(big, 0x55, sizeof big);
    assert_int_equal(mem_fake_add(f->inner, 0x40000, big, sizeof big), 0);
    mem_round_pages(f->round, true);
    uint64_t v;
    mem_round_begin(f->round);
    assert_int_equal(mem_read_ptr(f->round, 0x40100, &v), 0);
    assert_int_equal(mem_read_ptr(f->round, 0x41100, &v), 0);   /* the next page */
    mem_round_end(f->round);
    rounds_reading_only_b(f, 3);   /* rounds that do not touch them */
    assert_true(mem_round_planned(f->round, 0x40000, 2 * 4096));
    mem_round_begin(f->round);
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(mem_read_ptr(f->round, 0x41800, &v), 0);   /* a frame allocated there since */
    assert_int_equal(mem_syscalls(f->round), before);
    mem_round_end(f->round);
    rounds_reading_only_b(f, 40);
    assert_false(mem_round_planned(f->round, 0x40000, 8));
}

static void page_mode_plans_the_whole_page(void **state)
{
    struct fixture *f = *state;
    uint8_t big[4096];
    memset(big, 0x33, sizeof big);
    assert_int_equal(mem_fake_add(f->inner, 0x20000, big, sizeof big), 0);
    mem_round_pages(f->round, true);
    uint64_t v;
    mem_round_begin(f->round);
    assert_int_equal(mem_read_ptr(f->round, 0x20100, &v), 0);
    mem_round_end(f->round);
    mem_round_begin(f->round);
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(mem_read_ptr(f->round, 0x20800, &v), 0);   /* another object, same page */
    assert_int_equal(mem_syscalls(f->round), before);
    assert_int_equal(v & 0xff, 0x33);
    mem_round_end(f->round);
}

/* A page read whole for frame objects, whose reads keep to a few bytes of it round after round,
 * is cut to them (with the one-off reads it serves: 2.7's interpreter fields sat beside a frame,
 * and cut off they missed every round); an object allocated elsewhere on the page later is a
 * miss that brings the whole page back. */
static void heap_page_is_cut_to_the_bytes_it_serves(void **state)
{
    struct fixture *f = *state;
    uint8_t big[4096];
    memset(big, 0x44, sizeof big);
    assert_int_equal(mem_fake_add(f->inner, 0x30000, big, sizeof big), 0);
    mem_round_pages(f->round, true);
    uint64_t v, w[2];
    for (int i = 0; i < 40; i++) {
        mem_round_begin(f->round);
        assert_int_equal(mem_read_ptr(f->round, 0x30100, &v), 0);
        mem_round_plan(f->round, false);
        assert_int_equal(mem_read(f->round, 0x30300, w, sizeof w), 0);
        mem_round_plan(f->round, true);
        mem_round_end(f->round);
    }
    assert_false(mem_round_planned(f->round, 0x30000, 4096));
    assert_true(mem_round_planned(f->round, 0x30100, 0x30310 - 0x30100));
    mem_round_begin(f->round);
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(mem_read(f->round, 0x30300, w, sizeof w), 0);
    assert_int_equal(mem_read_ptr(f->round, 0x30100, &v), 0);
    assert_int_equal(mem_syscalls(f->round), before);
    assert_int_equal(mem_read_ptr(f->round, 0x30800, &v), 0);   /* a frame allocated since */
    assert_int_equal(mem_syscalls(f->round), before + 1);
    mem_round_end(f->round);
    assert_true(mem_round_planned(f->round, 0x30000, 4096));
}

static void non_round_sources_ignore_round_calls(void **state)
{
    (void)state;
    struct mem_src *m = mem_fake_new();
    uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    assert_int_equal(mem_fake_add(m, 0x100, b, 8), 0);
    mem_round_begin(m);
    mem_round_drop(m);
    assert_int_equal(mem_read_fresh(m, 0x100, out, 8), 0);
    assert_memory_equal(out, b, 8);
    mem_round_end(m);
    assert_int_equal(mem_syscalls(m), 1);
    mem_close(m);
}

/* A staged read rides in the round's prefetch syscall, after the plan (in time order), and is
 * handed to its reader once: one syscall for the whole round. */
static void staged_read_joins_the_prefetch_syscall(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64], st[16];
    uint64_t y;
    read_round(f, x, &y);
    const struct mem_iov iov[1] = {{0x9008, st, sizeof st}};
    mem_round_stage(f->round, 77, iov, 1);
    uint64_t before = mem_syscalls(f->round);
    mem_round_begin(f->round);
    assert_int_equal(mem_syscalls(f->round) - before, 1);
    assert_int_equal(mem_round_staged(f->round, 76), -1);   /* staged under another key */
    assert_int_equal(mem_round_staged(f->round, 77), 1);
    assert_int_equal(st[0], 0x22);
    assert_int_equal(mem_round_staged(f->round, 77), -1);   /* handed out once */
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(mem_syscalls(f->round) - before, 1);
    mem_round_end(f->round);
}

/* A staged read that fails, or is not taken in its round, is not handed out later. */
static void staged_read_is_for_one_round(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64], st[16];
    uint64_t y;
    read_round(f, x, &y);
    const struct mem_iov bad[1] = {{0x50000, st, sizeof st}};   /* unmapped */
    mem_round_stage(f->round, 5, bad, 1);
    mem_round_begin(f->round);
    assert_int_equal(mem_round_staged(f->round, 5), 0);
    mem_round_end(f->round);
    const struct mem_iov ok[1] = {{0x9000, st, sizeof st}};
    mem_round_stage(f->round, 6, ok, 1);
    mem_round_begin(f->round);
    mem_round_end(f->round);
    mem_round_begin(f->round);
    assert_int_equal(mem_round_staged(f->round, 6), -1);
    mem_round_end(f->round);
}

/* After a miss (a frame object in a page the plan did not hold), the whole plan is read again
 * with the missed region in one syscall: reads then come from that newer copy, the prefetch is
 * back in use, and the missed region is served without a syscall of its own. */
static void refetch_reads_plan_and_misses_in_one_syscall(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y, z = 0;
    read_round(f, x, &y);
    read_round(f, x, &y);   /* the buffer has grown to the plan: room for a miss */
    mem_round_begin(f->round);
    assert_false(mem_round_dropped(f->round));
    assert_int_equal(mem_read_ptr(f->round, 0x9080, &z), 0);   /* not planned: a miss */
    assert_true(mem_round_dropped(f->round));
    f->a[0x10] = 0x5a;   /* the target moves on */
    f->b[0x80] = 0x33;
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(mem_round_refetch(f->round), 0);
    assert_int_equal(mem_syscalls(f->round) - before, 1);
    assert_false(mem_round_dropped(f->round));
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(mem_read_ptr(f->round, 0x9080, &z), 0);
    assert_int_equal(mem_syscalls(f->round) - before, 1);   /* both from the new copy */
    assert_int_equal(x[0], 0x5a);
    assert_int_equal(z & 0xff, 0x33);
    /* A re-read that fails (the target is gone) leaves the round set aside: reads go to the
     * target, never to a copy only partly from the new instant. */
    mem_fake_gone(f->inner);
    assert_int_equal(mem_round_refetch(f->round), -1);
    assert_true(mem_round_dropped(f->round));
    mem_round_end(f->round);
    /* Outside a round, or on a source without rounds, there is nothing to read again. */
    assert_int_equal(mem_round_refetch(f->round), -1);
    assert_false(mem_round_dropped(f->round));
    assert_int_equal(mem_round_refetch(f->inner), -1);
}

/* A region wanted during a round is not read then; the next round's prefetch reads it, in one
 * region with a planned neighbour (3.12's frame pointer beside the entry frame on the C stack:
 * one iovec, not two). Wanted outside a round, nothing happens. */
static void wanted_region_joins_its_neighbour_next_round(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y;
    for (int i = 0; i < 2; i++) {   /* the plan: 0x9000, then 0x1010 (the order of first use) */
        mem_round_begin(f->round);
        assert_int_equal(mem_read_ptr(f->round, 0x9000, &y), 0);
        assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
        if (i == 0)
            mem_round_end(f->round);
    }
    uint64_t before = mem_syscalls(f->round);
    mem_round_want(f->round, 0x1000, 8);   /* after its neighbour's read, as the walk does */
    assert_int_equal(mem_syscalls(f->round), before);   /* not read now */
    mem_round_end(f->round);
    assert_true(mem_round_planned(f->round, 0x1000, 8));
    mem_round_want(f->round, 0x5000, 8);   /* outside a round: ignored */
    assert_false(mem_round_planned(f->round, 0x5000, 8));
    uint64_t hits, prefetches;
    uint32_t regions;
    mem_round_stats(f->round, &hits, &prefetches, &regions);
    assert_int_equal(regions, 2);   /* 0x9000, and 0x1000..0x1050 in one */
    f->a[0] = 0x77;
    mem_round_begin(f->round);
    before = mem_syscalls(f->round);
    const uint8_t *p = mem_round_peek(f->round, 0x1000, 8);
    assert_non_null(p);
    assert_int_equal(p[0], 0x77);
    assert_int_equal(mem_syscalls(f->round), before);
    mem_round_end(f->round);
}

/* Small regions on one page join the region a little earlier in the plan that is on it, even
 * with another region between them in first-use order (a 3.12 C stack: entry frames of nested
 * eval loops, then the frame pointer beside them): one iovec for the page. A region on a page of
 * its own stays apart. */
static void small_regions_on_one_page_are_one_iovec(void **state)
{
    struct fixture *f = *state;
    uint8_t x[16];
    uint64_t y;
    for (int i = 0; i < 2; i++) {
        mem_round_begin(f->round);
        assert_int_equal(mem_read(f->round, 0x1010, x, 16), 0);   /* page 0x1000 */
        assert_int_equal(mem_read_ptr(f->round, 0x9000, &y), 0);  /* page 0x9000 */
        assert_int_equal(mem_read(f->round, 0x10e0, x, 16), 0);   /* page 0x1000, 200 B on */
        mem_round_end(f->round);
    }
    uint64_t hits, prefetches;
    uint32_t regions;
    mem_round_stats(f->round, &hits, &prefetches, &regions);
    assert_int_equal(regions, 2);
    assert_true(mem_round_planned(f->round, 0x1010, 0xe0));
    f->a[0xe0] = 0x99;
    mem_round_begin(f->round);
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(mem_read(f->round, 0x10e0, x, 16), 0);
    assert_int_equal(x[0], 0x99);
    assert_int_equal(mem_syscalls(f->round), before);
    mem_round_end(f->round);
}

/* Across a page boundary too, when reading them as one pins no page more (a C stack whose entry
 * frames straddle two pages); regions two pages apart stay two iovecs (one would pin the page
 * between them). */
static void regions_join_only_when_no_page_is_added(void **state)
{
    struct fixture *f = *state;
    static uint8_t bytes[3 * 4096];
    memset(bytes, 0x66, sizeof bytes);
    assert_int_equal(mem_fake_add(f->inner, 0x30000, bytes, sizeof bytes), 0);
    uint64_t v;
    for (int i = 0; i < 2; i++) {
        mem_round_begin(f->round);
        assert_int_equal(mem_read_ptr(f->round, 0x30f80, &v), 0);   /* page 0x30000 */
        assert_int_equal(mem_read_ptr(f->round, 0x9000, &v), 0);
        assert_int_equal(mem_read_ptr(f->round, 0x31300, &v), 0);   /* page 0x31000: joins */
        assert_int_equal(mem_read_ptr(f->round, 0x1000, &v), 0);
        assert_int_equal(mem_read_ptr(f->round, 0x32800, &v), 0);   /* 0x32000: two pages on */
        mem_round_end(f->round);
    }
    uint64_t hits, prefetches;
    uint32_t regions;
    mem_round_stats(f->round, &hits, &prefetches, &regions);
    assert_int_equal(regions, 4);   /* 0x30f80..0x31308, 0x9000, 0x1000, 0x32800 */
    assert_true(mem_round_planned(f->round, 0x30f80, 0x388));
}

/* A source that logs the addresses it reads, in order, over the fixture's fake (not owned). */
struct orderlog {
    struct mem_src base;
    struct mem_src *inner;
    uint64_t addr[32];
    int n;
};

static int ol_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    struct orderlog *o = (struct orderlog *)src;
    src->reads++;
    if (o->n < 32)
        o->addr[o->n++] = addr;
    return mem_read(o->inner, addr, buf, len);
}

static int ol_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    struct orderlog *o = (struct orderlog *)src;
    src->reads++;
    for (int i = 0; i < n; i++) {
        if (o->n < 32)
            o->addr[o->n++] = iov[i].addr;
        if (mem_read(o->inner, iov[i].addr, iov[i].buf, iov[i].len) != 0)
            return i;
    }
    return n;
}

static void ol_close(struct mem_src *src)
{
    (void)src;
}

static const struct mem_ops ol_ops = {ol_read, ol_readv, ol_close};

/* A round over f's memory with a 4 KiB heap page of `fill` at heap_addr, logging the order of its
 * reads in o. */
static struct mem_src *heap_round(struct fixture *f, struct orderlog *o, uint64_t heap_addr,
                                  uint8_t *heap, int fill)
{
    memset(heap, fill, 4096);
    assert_int_equal(mem_fake_add(f->inner, heap_addr, heap, 4096), 0);
    *o = (struct orderlog){.base.ops = &ol_ops, .inner = f->inner};
    struct mem_src *round = mem_round_new(&o->base);
    assert_non_null(round);
    return round;
}

/*
 * 3.11+: a generator's frame that missed the prefetch plans its page (mem_round_want_page), as
 * frame objects' pages are planned up to 3.10; the next object on that page comes from the
 * prefetch, and the page stays planned a few idle rounds. It is read after the staged read
 * (whose last iovec is the sample's instant): a frame read before the pointer to it could be
 * another call's, freed and reused in between. Other regions come before it, as before.
 */
static void heap_pages_are_read_after_the_staged_read(void **state)
{
    struct fixture *f = *state;
    static uint8_t heap[4096];
    struct orderlog o;
    struct mem_src *round = heap_round(f, &o, 0x60000, heap, 0x44);
    uint64_t v;
    mem_round_begin(round);
    assert_int_equal(mem_read_ptr(round, 0x9000, &v), 0);
    assert_int_equal(mem_read_ptr(round, 0x60100, &v), 0);   /* a generator's frame */
    mem_round_want_page(round, 0x60100);
    mem_round_end(round);
    uint8_t st[16];
    const struct mem_iov iov[1] = {{0x1000, st, sizeof st}};
    mem_round_stage(round, 9, iov, 1);
    o.n = 0;
    mem_round_begin(round);
    assert_int_equal(mem_round_staged(round, 9), 1);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.addr[0], 0x9000);
    assert_int_equal(o.addr[1], 0x1000);    /* the staged read */
    assert_int_equal(o.addr[2], 0x60000);   /* the heap page, after it */
    uint64_t before = mem_syscalls(round);
    assert_int_equal(mem_read_ptr(round, 0x60800, &v), 0);   /* another object on the page */
    assert_int_equal(mem_syscalls(round), before);
    assert_int_equal(v & 0xff, 0x44);
    mem_round_end(round);
    for (int i = 0; i < 3; i++) {   /* rounds that do not touch it */
        mem_round_begin(round);
        assert_int_equal(mem_read_ptr(round, 0x9000, &v), 0);
        mem_round_end(round);
    }
    assert_true(mem_round_planned(round, 0x60000, 4096));
    mem_close(round);
}

/* Frame objects' guard (stack_refetch): the plan read again with one more iovec, read last in the
 * same syscall, after the heap pages too: the thread's top frame pointer as it is after the copy. */
static void refetch_then_reads_its_iovec_after_the_whole_plan(void **state)
{
    struct fixture *f = *state;
    static uint8_t heap[4096];
    struct orderlog o;
    struct mem_src *round = heap_round(f, &o, 0x70000, heap, 0x55);
    uint64_t v;
    for (int i = 0; i < 2; i++) {   /* planned: 0x9000, then a frame object's page */
        mem_round_begin(round);
        assert_int_equal(mem_read_ptr(round, 0x9000, &v), 0);
        assert_int_equal(mem_read_ptr(round, 0x70100, &v), 0);
        mem_round_want_page(round, 0x70100);
        mem_round_end(round);
    }
    mem_round_begin(round);
    uint8_t g[16];
    const struct mem_iov iov[1] = {{0x1000, g, sizeof g}};
    o.n = 0;
    uint64_t before = mem_syscalls(round);
    assert_int_equal(mem_round_refetch_then(round, iov, 1), 1);
    assert_int_equal(mem_syscalls(round) - before, 1);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.addr[0], 0x9000);
    assert_int_equal(o.addr[1], 0x70000);   /* the page */
    assert_int_equal(o.addr[2], 0x1000);    /* the guard, last */
    assert_false(mem_round_dropped(round));
    assert_int_equal(mem_read_ptr(round, 0x70200, &v), 0);   /* served from the new copy */
    assert_int_equal(mem_syscalls(round) - before, 1);
    mem_round_end(round);
    /* Outside a round there is no plan to read again. */
    assert_int_equal(mem_round_refetch_then(round, iov, 1), -1);
    mem_close(round);
}

/*
 * A thread read after the round's prefetch (not the staged one) whose walks read heap frames: its
 * fresh read takes the plan's heap pages with it, after it, in one syscall; the plan's other
 * regions keep the prefetch's bytes. Without heap frames it is a fresh read alone.
 */
static void a_later_threads_read_takes_the_heap_pages_after_it(void **state)
{
    struct fixture *f = *state;
    static uint8_t heap[4096];
    struct orderlog o;
    struct mem_src *round = heap_round(f, &o, 0x60000, heap, 0x44);
    uint8_t *live = mem_fake_region(f->inner, 0x60000);
    uint64_t v, g = 0;
    for (int i = 0; i < 2; i++) {
        mem_round_begin(round);
        assert_int_equal(mem_read_ptr(round, 0x9000, &v), 0);
        assert_int_equal(mem_read_ptr(round, 0x60100, &v), 0);
        if (i == 0)
            mem_round_want_page(round, 0x60100);
        mem_round_end(round);
    }
    mem_round_begin(round);
    live[0x100] = 0x5b;   /* the target moves on after the prefetch */
    f->b[0] = 0x23;
    const struct mem_iov iov[1] = {{0x1000, &g, 8}};
    uint64_t before = mem_syscalls(round);
    o.n = 0;
    assert_int_equal(mem_round_refetch_with(round, iov, 1, true), 1);
    assert_int_equal(mem_syscalls(round) - before, 1);
    assert_int_equal(o.n, 2);
    assert_int_equal(o.addr[0], 0x1000);
    assert_int_equal(o.addr[1], 0x60000);
    assert_int_equal(mem_read_ptr(round, 0x60100, &v), 0);
    assert_int_equal(v & 0xff, 0x5b);   /* the heap page, as new as the read */
    assert_int_equal(mem_read_ptr(round, 0x9000, &v), 0);
    assert_int_equal(v & 0xff, 0x22);   /* the rest, as the prefetch had it */
    assert_int_equal(mem_syscalls(round) - before, 1);
    o.n = 0;
    assert_int_equal(mem_round_refetch_with(round, iov, 1, false), 1);
    assert_int_equal(o.n, 1);
    mem_round_end(round);
    mem_close(round);
}

/*
 * A retried walk's fresh read (3.11+: the guarded read again) takes the plan with it, in the same
 * syscall, when the round's prefetch was set aside: the walk's other regions are then as new as
 * the read, not a syscall each. While the prefetch is in use, it is a fresh read alone.
 */
static void a_retried_fresh_read_takes_the_plan_with_it(void **state)
{
    struct fixture *f = *state;
    uint8_t x[64];
    uint64_t y, g = 0;
    read_round(f, x, &y);
    read_round(f, x, &y);
    mem_round_begin(f->round);
    f->a[0x10] = 0x5a;   /* the target moves on */
    const struct mem_iov iov[1] = {{0x9010, &g, 8}};
    uint64_t before = mem_syscalls(f->round);
    assert_int_equal(mem_round_refetch_with(f->round, iov, 1, false), 1);
    assert_int_equal(mem_syscalls(f->round) - before, 1);
    assert_int_equal(g & 0xff, 0x22);
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(x[0], 0x11);   /* still the round's copy */
    mem_round_drop(f->round);
    before = mem_syscalls(f->round);
    assert_int_equal(mem_round_refetch_with(f->round, iov, 1, false), 1);
    assert_false(mem_round_dropped(f->round));
    assert_int_equal(mem_read(f->round, 0x1010, x, 64), 0);
    assert_int_equal(x[0], 0x5a);   /* the plan, read again with it */
    assert_int_equal(mem_syscalls(f->round) - before, 1);
    mem_round_end(f->round);
    before = mem_syscalls(f->round);
    assert_int_equal(mem_round_refetch_with(f->round, iov, 1, false), 1);   /* outside a round */
    assert_int_equal(mem_syscalls(f->round) - before, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(second_round_costs_one_syscall),
        T(prefetch_is_taken_at_round_start),
        T(reads_outside_a_round_go_straight_through),
        T(readv_mixes_hits_and_misses),
        T(a_region_that_fails_is_read_on_demand),
        T(idle_regions_leave_the_plan),
        T(pages_no_read_used_leave_the_plan),
        T(page_mode_plans_the_whole_page),
        T(heap_page_is_cut_to_the_bytes_it_serves),
        T(idle_merged_pages_stay_planned_in_page_mode),
        T(staged_read_joins_the_prefetch_syscall),
        T(staged_read_is_for_one_round),
        T(refetch_reads_plan_and_misses_in_one_syscall),
        T(wanted_region_joins_its_neighbour_next_round),
        T(small_regions_on_one_page_are_one_iovec),
        T(regions_join_only_when_no_page_is_added),
        T(heap_pages_are_read_after_the_staged_read),
        T(refetch_then_reads_its_iovec_after_the_whole_plan),
        T(a_retried_fresh_read_takes_the_plan_with_it),
        T(a_later_threads_read_takes_the_heap_pages_after_it),
        cmocka_unit_test(non_round_sources_ignore_round_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
