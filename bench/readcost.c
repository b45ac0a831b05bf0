/*
 * readcost.c — what reading another process's memory costs on this machine, by method: one
 * process_vm_readv, one pread on a kept-open /proc/PID/mem, the round prefetch's shape (7 regions
 * of a 3.12 sample in one readv) against the same 7 regions read one call each, and one pread of
 * /proc/PID/task/TID/stat. The target is a forked child that sleeps. Also what one wake-up of a
 * sleeping sampler costs, with nothing read: clock_nanosleep to absolute deadlines 1 ms and
 * 100 µs apart, as attach/sampler.c sleeps (timer slack 1 ns), and 1 ms apart with a busy core
 * (timer_wake_1khz_busy_core), and what one trap to the hypervisor costs (vm_exit_cpuid, wall
 * µs). Prints one JSON object:
 * {method: microseconds per call (CPU time of this process, user + system)}. Used by
 * bench/run.py's `reads` section; `readcost --wake` prints the wake-up figures alone (`sampling`).
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define ITER 20000

/* CPU µs per wake of a loop that only sleeps to absolute deadlines period_ns apart. */
static double wake_cost_us(long period_ns, int wakes)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long long due = (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    for (int i = 0; i < wakes; i++) {
        due += period_ns;
        struct timespec d = {(time_t)(due / 1000000000LL), (long)(due % 1000000000LL)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL);
    }
    getrusage(RUSAGE_SELF, &b);
    double us = (double)(b.ru_utime.tv_sec - a.ru_utime.tv_sec + b.ru_stime.tv_sec - a.ru_stime.tv_sec) * 1e6 +
                (double)(b.ru_utime.tv_usec - a.ru_utime.tv_usec + b.ru_stime.tv_usec - a.ru_stime.tv_usec);
    return us / wakes;
}

/* Wall µs per CPUID instruction: an x86 guest cannot run it without a trap to its hypervisor
 * (a VM exit and re-entry), so this is what one exit costs here; tens of ns on bare metal. -1
 * elsewhere. A sleeping sampler's wake-up is made of several exits (the timer armed, the idle
 * halt, the interrupt delivered): timer_wake_* over this is about how many. */
static double vm_exit_us(void)
{
#if defined(__x86_64__) || defined(__i386__)
    struct timespec a, b;
    unsigned eax = 0, ebx, ecx = 0, edx;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < ITER; i++)
        __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx)::"memory");
    clock_gettime(CLOCK_MONOTONIC, &b);
    (void)ebx;
    (void)edx;
    return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / ITER;
#else
    return -1;
#endif
}

/* The 1 kHz wake-up again, with a spinning child pinned to this process's CPU: the core never
 * idles between wakes (no halt, no idle exit), as when the sampler shares its core with work. */
static double wake_cost_busy_core_us(void)
{
    cpu_set_t was, one;
    if (sched_getaffinity(0, sizeof was, &was) != 0)
        return -1;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0)
        return -1;
    pid_t spin = fork();
    if (spin == 0) {
        for (;;)
            __asm__ volatile("" ::: "memory");
    }
    double us = spin > 0 ? wake_cost_us(1000000, 2000) : -1;
    if (spin > 0) {
        kill(spin, SIGKILL);
        waitpid(spin, NULL, 0);
    }
    sched_setaffinity(0, sizeof was, &was);
    return us;
}

/* The wake-up figures: idle core at 1 kHz and 10 kHz, busy core at 1 kHz, one VM exit. */
static void print_wake(void)
{
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    printf("\"timer_wake_1khz\": %.3f, \"timer_wake_10khz\": %.3f", wake_cost_us(1000000, 2000),
           wake_cost_us(100000, 10000));
    printf(", \"timer_wake_1khz_busy_core\": %.3f, \"vm_exit_cpuid\": %.3f",
           wake_cost_busy_core_us(), vm_exit_us());
}

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

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--wake") == 0) {   /* the wake-up figures alone */
        printf("{");
        print_wake();
        printf("}\n");
        return 0;
    }
    static uint8_t buf[1 << 16] __attribute__((aligned(4096))), out[1 << 16];
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
    /* The sampling round's own readv, as strace shows it for a steady 3.12 cpu_bound.py: before
     * this session's changes (interpreter, GIL, C stack, thread state, cframe, data stack, guard),
     * now (the interpreter kept 10 ms, the first cframe read served by the C-stack region), and
     * the least a consistent sample can read (thread state, C stack, data stack, guard). Each
     * region on a page of its own, as in the target. */
    static const size_t r_off[7] = {0x0da8, 0x11c0, 0x3030, 0x56c8, 0x3030, 0x8000, 0x3030};
    static const size_t r_len[7] = {392, 16, 216, 288, 8, 8192, 8};
    static const int now_idx[5] = {1, 2, 3, 5, 6}, floor_idx[4] = {3, 2, 5, 6};
    struct iovec rl[7], rr[7];
    for (int j = 0; j < 7; j++) {
        rl[j] = (struct iovec){out + r_off[j], r_len[j]};
        rr[j] = (struct iovec){(void *)(base + r_off[j]), r_len[j]};
    }
    MEASURE("round_3_12_before", process_vm_readv(child, rl, 7, rr, 7, 0));
    struct iovec nl[5], nr[5];
    for (int j = 0; j < 5; j++) {
        nl[j] = rl[now_idx[j]];
        nr[j] = rr[now_idx[j]];
    }
    MEASURE("round_3_12_now", process_vm_readv(child, nl, 5, nr, 5, 0));
    for (int j = 0; j < 4; j++) {
        nl[j] = rl[floor_idx[j]];
        nr[j] = rr[floor_idx[j]];
    }
    MEASURE("round_floor", process_vm_readv(child, nl, 4, nr, 4, 0));
    MEASURE("proc_task_stat_pread", if (pread(statfd, out, 1023, 0) < 0) return 1);
    printf(", ");
    print_wake();
    printf("}\n");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}
