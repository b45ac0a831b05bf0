/*
 * mem.h — the memory-source interface: the only way readers touch target memory.
 *
 * A struct mem_src reads bytes at a target address. Implementations:
 *   - live process: process_vm_readv, falling back to pread on /proc/PID/mem when the syscall is
 *     refused (seccomp, old kernels) — both read without stopping the target;
 *   - fake: a set of in-memory regions, for unit tests and fuzzing.
 * A read either fills the whole buffer and returns 0, or returns -1 (unmapped, torn mapping, target
 * gone). Callers treat every byte they get as untrusted.
 */
#ifndef PT_MEM_H
#define PT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

struct mem_iov {
    uint64_t addr;
    void *buf;
    size_t len;
};

struct mem_src;

struct mem_ops {
    int (*read)(struct mem_src *src, uint64_t addr, void *buf, size_t len);
    /* Reads every iov; returns the number of leading iovs read completely (n on success). */
    int (*readv)(struct mem_src *src, const struct mem_iov *iov, int n);
    void (*close)(struct mem_src *src);
};

struct mem_src {
    const struct mem_ops *ops;
    uint64_t reads;      /* calls made (syscalls for a live source) */
    uint64_t failures;   /* reads that did not complete */
};

static inline int mem_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    return src->ops->read(src, addr, buf, len);
}

static inline int mem_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    return src->ops->readv(src, iov, n);
}

/* Reads a 64-bit little-endian pointer; returns 0 or -1. */
static inline int mem_read_ptr(struct mem_src *src, uint64_t addr, uint64_t *out)
{
    return mem_read(src, addr, out, sizeof *out);
}

void mem_close(struct mem_src *src);

/* Live process. Fails with PT_ENOPROC, PT_EPERM (with advice) or PT_EFAIL. */
enum pt_status mem_open_pid(struct mem_src **out, pid_t pid, struct pt_err *err);

/* Fake memory: regions are copied in; reads that are not wholly inside one region fail. */
struct mem_src *mem_fake_new(void);
int mem_fake_add(struct mem_src *src, uint64_t addr, const void *bytes, size_t len);
/* Returns a pointer to the fake's own copy of the region starting at addr (to poke tests' bytes). */
void *mem_fake_region(struct mem_src *src, uint64_t addr);
/* From now on every read of the fake fails with ESRCH: the process has exited. */
void mem_fake_gone(struct mem_src *src);

/*
 * Round prefetch (memround.c): a source wrapping `inner` (owned) that reads, at
 * mem_round_begin(), every region the previous round used in one syscall, and serves reads from
 * that copy until mem_round_end(). Outside a round it reads straight through. On any other source
 * these functions are no-ops / plain reads, so readers call them unconditionally.
 */
struct mem_src *mem_round_new(struct mem_src *inner);
void mem_round_begin(struct mem_src *src);
void mem_round_end(struct mem_src *src);
/* The prefetched bytes of [addr, addr+len) in place (no copy), valid until mem_round_end(), or
 * NULL when the round's prefetch does not hold all of them. */
const uint8_t *mem_round_peek(struct mem_src *src, uint64_t addr, size_t len);
/* Whether reads that miss the prefetch join the next round's plan (default on). Readers turn it
 * off around one-off reads — decoding a new or re-validated code object — so that a round after
 * such reads does not prefetch them again for nothing. */
void mem_round_plan(struct mem_src *src, bool on);
/* Plan the whole 4 KiB page around each small miss (heap objects such as frame objects: their
 * successors are usually allocated in the same pools); such a page stays planned a few rounds
 * after its last use. Returns the previous setting. */
bool mem_round_pages(struct mem_src *src, bool on);
/* Stop serving from this round's prefetch (a torn stack is being read again). A read that misses
 * the prefetch does the same (the data read later must not be older), until: */
void mem_round_drop(struct mem_src *src);
/* Serve from the prefetch again: a reader starts on something independent (the next thread). */
void mem_round_resume(struct mem_src *src);
/* Reads the target now, never from the prefetch (re-checks that must see later state). */
int mem_read_fresh(struct mem_src *src, uint64_t addr, void *buf, size_t len);
int mem_readv_fresh(struct mem_src *src, const struct mem_iov *iov, int n);
/* Syscalls made so far by the underlying source (a walk that made none since it read the thread
 * state saw one instant of the target). */
uint64_t mem_syscalls(struct mem_src *src);
/*
 * Reads iov (at most MEM_ROUND_STAGE_MAX, into the caller's buffers, which must stay valid) in the
 * next mem_round_begin()'s syscall, after the plan (before its paged regions: see memround.c): one
 * syscall for the round's prefetch and a reader's own fresh read that it knows in advance (3.11+:
 * the first thread's guarded read).
 * mem_round_staged(src, key) then says how many of them were read (leading iovs, as mem_readv
 * returns), or -1 when nothing was staged under key or no round began since; it clears the stage.
 */
#define MEM_ROUND_STAGE_MAX 8
void mem_round_stage(struct mem_src *src, uint64_t key, const struct mem_iov *iov, int n);
/* Before mem_round_begin(): whether its prefetch will read [addr, addr+len) (a region of the
 * plan holds it). A staged read need not read it again: mem_round_peek() has it after begin. */
bool mem_round_planned(struct mem_src *src, uint64_t addr, size_t len);
/* During a round: plan [addr, addr+len) for the next rounds as if a read had missed it, without
 * reading it now (a reader that reads it some other way this round, and would rather have the
 * prefetch read it: beside a region already planned it costs no iovec of its own). */
void mem_round_want(struct mem_src *src, uint64_t addr, size_t len);
/* During a round: plan the page around addr as mem_round_pages() plans a small miss's (a reader
 * that learned from what it read that it was a heap object). */
void mem_round_want_page(struct mem_src *src, uint64_t addr);
int mem_round_staged(struct mem_src *src, uint64_t key);
/* During a round: reads the whole plan again, with the round's misses, in one syscall, and serves
 * reads from that newer copy (a walk starts over from it). 0, or -1 when not all of it was read. */
int mem_round_refetch(struct mem_src *src);
/* mem_round_refetch() with iov (at most MEM_ROUND_STAGE_MAX) read last in the same syscall, after
 * every region of the plan: what a reader reads there is at least as new as all of the copy.
 * Returns how many of iov were read (as mem_readv), or -1 when the plan was not all read. */
int mem_round_refetch_then(struct mem_src *src, const struct mem_iov *iov, int n);
/* A fresh readv of iov (at most MEM_ROUND_STAGE_MAX). When the round's prefetch was set aside (a
 * retried walk), the plan is read again in the same syscall, around iov as a round's prefetch is
 * (its paged regions after it), so the walk that follows has its other regions (3.11+:
 * generators' and coroutines' frames on the heap) from that instant instead of a syscall each.
 * heap: the reader will read heap objects' pages after iov: the plan's paged regions are read
 * again after it even when the prefetch is in use (a thread other than the staged one). Returns
 * as mem_readv. */
int mem_round_refetch_with(struct mem_src *src, const struct mem_iov *iov, int n, bool heap);
/* Whether a read of this round missed the prefetch and set it aside (reads go to the target). */
bool mem_round_dropped(struct mem_src *src);
/* Reads served from prefetches, prefetch syscalls made, regions in the current plan. */
void mem_round_stats(struct mem_src *src, uint64_t *hits, uint64_t *prefetches, uint32_t *regions);

#endif
