/*
 * readcost.c — what reading another process's memory costs on this machine, by method: one
 * process_vm_readv, one pread on a kept-open /proc/PID/mem, the round prefetch's shape (7 regions
 * of a 3.12 sample in one readv) against the same 7 regions read one call each, and one pread of
 * /proc/PID/task/TID/stat. The target is a forked child that sleeps. Prints one JSON object:
 * {method: microseconds per call (CPU time of this process, user + system)}. Used by
 * bench/run.py's `reads` section.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define ITER 20000

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* The regions of one steady 3.12 sample: runtime, interpreter, GIL, thread state, cframe,
 * entry frame, data-stack chunk (offsets into the child's buffer). */
static const size_t shape_off[7] = {0, 8192, 9216, 16384, 24576, 24640, 32768};
static const size_t shape_len[7] = {8, 392, 16, 288, 8, 104, 12236};

int main(void)
{
    static uint8_t buf[1 << 16], out[1 << 16];
    memset(buf, 0x5a, sizeof buf);
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        for (;;)
            pause();
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)child);
    int memfd = open(path, O_RDONLY);
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)child, (int)child);
    int statfd = open(path, O_RDONLY);
    uintptr_t base = (uintptr_t)buf;
    struct iovec l[7], r[7];
    double t;
    printf("{");

#define MEASURE(name, body)                                                                        \
    do {                                                                                           \
        t = cpu_us();                                                                              \
        for (int i = 0; i < ITER; i++) {                                                           \
            body;                                                                                  \
        }                                                                                          \
        printf("%s\"%s\": %.3f", first ? "" : ", ", name, (cpu_us() - t) / ITER);                 \
        first = 0;                                                                                 \
    } while (0)

    int first = 1;
    for (int k = 0; k < 2; k++) {
        size_t len = k ? 4096 : 64;
        l[0] = (struct iovec){out, len};
        r[0] = (struct iovec){(void *)base, len};
        MEASURE(k ? "process_vm_readv_4k" : "process_vm_readv_64", process_vm_readv(child, l, 1, r, 1, 0));
        MEASURE(k ? "pread_mem_4k" : "pread_mem_64", if (pread(memfd, out, len, (off_t)base) < 0) return 1);
    }
    for (int j = 0; j < 7; j++) {
        l[j] = (struct iovec){out + shape_off[j], shape_len[j]};
        r[j] = (struct iovec){(void *)(base + shape_off[j]), shape_len[j]};
    }
    MEASURE("sample_shape_one_readv", process_vm_readv(child, l, 7, r, 7, 0));
    MEASURE("sample_shape_seven_readv", for (int j = 0; j < 7; j++) process_vm_readv(child, &l[j], 1, &r[j], 1, 0));
    MEASURE("sample_shape_seven_pread",
            for (int j = 0; j < 7; j++) if (pread(memfd, out, shape_len[j], (off_t)(base + shape_off[j])) < 0) return 1);
    MEASURE("proc_task_stat_pread", if (pread(statfd, out, 1023, 0) < 0) return 1);
    printf("}\n");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}
