/*
 * memround_priv.h — the round prefetch's state, shared by memround.c (a round's reads) and
 * memplan.c (the plan the next round reads). Not for other modules: they use attach/mem.h.
 */
#ifndef PT_ATTACH_MEMROUND_PRIV_H
#define PT_ATTACH_MEMROUND_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "attach/mem.h"

#define ROUND_PAGE 4096u
#define ROUND_MAX_REGIONS 256
#define ROUND_MAX_REGION (1u << 20)   /* larger reads are never prefetched */
#define ROUND_MAX_BYTES (4u << 20)    /* total prefetched per round */
#define ROUND_HINT_BITS 6

struct round_region {
    uint64_t addr;
    uint32_t len;
    uint32_t off;            /* into buf */
    bool ok;                 /* read by this round's prefetch */
    bool used;               /* served a read this round (not a one-off: it stays planned) */
    bool touched;            /* served any read this round, one-offs too */
    uint8_t idle;            /* rounds since it last served a read */
    bool paged;              /* a page planned for a small miss (heap objects come back to it) */
    uint32_t ulo, uhi;       /* the bytes [ulo, uhi) of it that served reads this round (touched) */
    /* Heap regions (whole pages, for frame objects): the bytes [wlo, whi) that served reads in
     * the last wrounds rounds (0, 0: none yet), to trim the page to (memplan.c). */
    uint64_t wlo, whi;
    uint8_t wrounds;
};

/* A heap region is trimmed to the bytes that served reads over this many rounds, when that saves
 * at least ROUND_TRIM_MIN bytes of copying (the pages stay pinned either way: a frame object
 * allocated later outside them is a miss, which plans its page again). */
#define ROUND_TRIM_ROUNDS 32
#define ROUND_TRIM_MIN 1024u
#define ROUND_TRIM_ALIGN 64u

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
    /* mem_round_stage(): read in the round's one syscall, after the plan's regions except the
     * paged ones, which follow it. */
    struct mem_iov staged[MEM_ROUND_STAGE_MAX];
    int nstaged, staged_got;   /* staged_got -1: no round read them yet */
    uint64_t staged_key;
};

extern const struct mem_ops mem_round_ops;

static inline struct mem_round *as_round(struct mem_src *src)
{
    return src && src->ops == &mem_round_ops ? (struct mem_round *)src : NULL;
}

#endif
