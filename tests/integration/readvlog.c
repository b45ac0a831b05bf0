/*
 * readvlog.c — an LD_PRELOAD shim for tests/integration/test_read_shape.py: counts pytrace's
 * process_vm_readv calls by shape (remote iovecs, pages they span) and, at exit, writes
 * "iovecs pages calls" lines to the file named by $READVLOG_OUT. Calls in the first
 * $READVLOG_SKIP_MS milliseconds after the first one (start-up: decoding code objects, names)
 * are not counted. The call itself is passed on unchanged (a raw syscall), so pytrace behaves as
 * without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_IOV 16
#define MAX_PAGES 64

static unsigned long shape[MAX_IOV + 1][MAX_PAGES + 1];
static unsigned long long first_ns, skip_ns;

static unsigned long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ULL + (unsigned long long)t.tv_nsec;
}

ssize_t process_vm_readv(pid_t pid, const struct iovec *local, unsigned long liovcnt,
                         const struct iovec *remote, unsigned long riovcnt, unsigned long flags)
{
    unsigned long long now = now_ns();
    if (!first_ns) {
        const char *skip = getenv("READVLOG_SKIP_MS");
        first_ns = now;
        skip_ns = skip ? strtoull(skip, NULL, 10) * 1000000ULL : 0;
    }
    if (now - first_ns < skip_ns)
        return syscall(SYS_process_vm_readv, pid, local, liovcnt, remote, riovcnt, flags);
    unsigned long pages = 0;
    for (unsigned long i = 0; i < riovcnt; i++) {
        unsigned long lo = (unsigned long)remote[i].iov_base, hi = lo + remote[i].iov_len;
        if (remote[i].iov_len)
            pages += ((hi - 1) >> 12) - (lo >> 12) + 1;
    }
    shape[riovcnt < MAX_IOV ? riovcnt : MAX_IOV][pages < MAX_PAGES ? pages : MAX_PAGES]++;
    return syscall(SYS_process_vm_readv, pid, local, liovcnt, remote, riovcnt, flags);
}

__attribute__((destructor)) static void readvlog_write(void)
{
    const char *path = getenv("READVLOG_OUT");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f)
        return;
    for (int i = 0; i <= MAX_IOV; i++)
        for (int p = 0; p <= MAX_PAGES; p++)
            if (shape[i][p])
                fprintf(f, "%d %d %lu\n", i, p, shape[i][p]);
    fclose(f);
}
