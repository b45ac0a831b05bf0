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

#endif
