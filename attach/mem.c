/*
 * mem.c — memory sources: a live process (process_vm_readv, /proc/PID/mem fallback) and an
 * in-memory fake. Neither ever writes to or stops the target; a read that does not complete is
 * simply a failed read (the target may have unmapped the page under us).
 */
#include "attach/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- live process ---------------------------------------------------------------------- */

struct mem_live {
    struct mem_src base;
    pid_t pid;
    int memfd;          /* /proc/PID/mem, opened lazily when process_vm_readv is refused */
    int use_pread;
};

/* process_vm_readv takes at most IOV_MAX iovecs per call. */
#define MEM_IOV_BATCH 1024

static int live_read_pread(struct mem_live *m, uint64_t addr, void *buf, size_t len)
{
    if (m->memfd < 0)
        return -1;
    ssize_t got = pread(m->memfd, buf, len, (off_t)addr);
    return got == (ssize_t)len ? 0 : -1;
}

static int live_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    struct mem_live *m = (struct mem_live *)src;
    src->reads++;
    if (len == 0)
        return 0;
    if (!m->use_pread) {
        struct iovec local = {buf, len};
        struct iovec remote = {(void *)(uintptr_t)addr, len};
        ssize_t got = process_vm_readv(m->pid, &local, 1, &remote, 1, 0);
        if (got == (ssize_t)len)
            return 0;
        if (got < 0 && (errno == ENOSYS || errno == EPERM) && m->memfd >= 0) {
            /* seccomp or an LSM refused the syscall but /proc/PID/mem is open: use it. */
            m->use_pread = 1;
        } else {
            src->failures++;
            return -1;
        }
    }
    if (live_read_pread(m, addr, buf, len) == 0)
        return 0;
    src->failures++;
    return -1;
}

static int live_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    struct mem_live *m = (struct mem_live *)src;
    if (m->use_pread) {
        for (int i = 0; i < n; i++)
            if (live_read(src, iov[i].addr, iov[i].buf, iov[i].len) != 0)
                return i;
        return n;
    }
    struct iovec local[MEM_IOV_BATCH], remote[MEM_IOV_BATCH];
    int done = 0;
    while (done < n) {
        int k = n - done < MEM_IOV_BATCH ? n - done : MEM_IOV_BATCH;
        size_t want = 0;
        for (int i = 0; i < k; i++) {
            local[i].iov_base = iov[done + i].buf;
            local[i].iov_len = iov[done + i].len;
            remote[i].iov_base = (void *)(uintptr_t)iov[done + i].addr;
            remote[i].iov_len = iov[done + i].len;
            want += iov[done + i].len;
        }
        src->reads++;
        ssize_t got = process_vm_readv(m->pid, local, (unsigned long)k, remote, (unsigned long)k, 0);
        if (got == (ssize_t)want) {
            done += k;
            continue;
        }
        /* A partial read stops at the first remote iovec that failed: count whole ones. */
        src->failures++;
        size_t acc = 0;
        int whole = 0;
        if (got > 0)
            while (whole < k && acc + iov[done + whole].len <= (size_t)got)
                acc += iov[done + whole++].len;
        return done + whole;
    }
    return n;
}

static void live_close(struct mem_src *src)
{
    struct mem_live *m = (struct mem_live *)src;
    if (m->memfd >= 0)
        close(m->memfd);
    free(m);
}

static const struct mem_ops live_ops = {live_read, live_readv, live_close};

enum pt_status mem_open_pid(struct mem_src **out, pid_t pid, struct pt_err *err)
{
    *out = NULL;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return pt_fail(err, PT_ENOPROC, "no such process: %d (check the pid with ps)", (int)pid);
    struct mem_live *m = calloc(1, sizeof *m);
    if (!m)
        return pt_fail(err, PT_EFAIL, "out of memory");
    m->base.ops = &live_ops;
    m->pid = pid;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    m->memfd = open(path, O_RDONLY | O_CLOEXEC);
    int open_errno = errno;
    /* Probe: a zero-length process_vm_readv still checks ptrace access to the target. */
    struct iovec l = {NULL, 0}, r = {NULL, 0};
    if (process_vm_readv(pid, &l, 1, &r, 1, 0) < 0) {
        int e = errno;
        if (e == ESRCH) {
            live_close(&m->base);
            return pt_fail(err, PT_ENOPROC, "no such process: %d (it may have just exited)", (int)pid);
        }
        if (e == EPERM && m->memfd < 0) {
            live_close(&m->base);
            return pt_fail(err, PT_EPERM, "permission denied reading process %d: " PT_PERM_ADVICE,
                           (int)pid);
        }
        if (m->memfd >= 0)
            m->use_pread = 1;
    }
    if (m->memfd < 0 && open_errno == ENOENT) {
        live_close(&m->base);
        return pt_fail(err, PT_ENOPROC, "no such process: %d", (int)pid);
    }
    *out = &m->base;
    return PT_OK;
}

void mem_close(struct mem_src *src)
{
    if (src)
        src->ops->close(src);
}

/* ---- fake ------------------------------------------------------------------------------ */

struct fake_region {
    uint64_t addr;
    size_t len;
    uint8_t *bytes;
};

struct mem_fake {
    struct mem_src base;
    struct fake_region *regions;
    size_t n, cap;
    bool gone;   /* the "process" exited: reads fail with ESRCH, as process_vm_readv's do */
};

static int fake_read(struct mem_src *src, uint64_t addr, void *buf, size_t len)
{
    struct mem_fake *f = (struct mem_fake *)src;
    src->reads++;
    if (f->gone) {
        src->failures++;
        errno = ESRCH;
        return -1;
    }
    for (size_t i = 0; i < f->n; i++) {
        struct fake_region *r = &f->regions[i];
        if (addr >= r->addr && addr - r->addr <= r->len && len <= r->len - (addr - r->addr)) {
            memcpy(buf, r->bytes + (addr - r->addr), len);
            return 0;
        }
    }
    src->failures++;
    errno = EFAULT;   /* unmapped, as process_vm_readv says */
    return -1;
}

void mem_fake_gone(struct mem_src *src)
{
    ((struct mem_fake *)src)->gone = true;
}

/* One call, as a live source's one syscall: reads counts it once. */
static int fake_readv(struct mem_src *src, const struct mem_iov *iov, int n)
{
    uint64_t reads = src->reads;
    for (int i = 0; i < n; i++) {
        if (fake_read(src, iov[i].addr, iov[i].buf, iov[i].len) != 0) {
            src->reads = reads + 1;
            return i;
        }
    }
    src->reads = reads + 1;
    return n;
}

static void fake_close(struct mem_src *src)
{
    struct mem_fake *f = (struct mem_fake *)src;
    for (size_t i = 0; i < f->n; i++)
        free(f->regions[i].bytes);
    free(f->regions);
    free(f);
}

static const struct mem_ops fake_ops = {fake_read, fake_readv, fake_close};

struct mem_src *mem_fake_new(void)
{
    struct mem_fake *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->base.ops = &fake_ops;
    return &f->base;
}

int mem_fake_add(struct mem_src *src, uint64_t addr, const void *bytes, size_t len)
{
    struct mem_fake *f = (struct mem_fake *)src;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct fake_region *r = realloc(f->regions, cap * sizeof *r);
        if (!r)
            return -1;
        f->regions = r;
        f->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    if (len)
        memcpy(copy, bytes, len);
    f->regions[f->n++] = (struct fake_region){addr, len, copy};
    return 0;
}

void *mem_fake_region(struct mem_src *src, uint64_t addr)
{
    struct mem_fake *f = (struct mem_fake *)src;
    for (size_t i = 0; i < f->n; i++)
        if (f->regions[i].addr == addr)
            return f->regions[i].bytes;
    return NULL;
}
