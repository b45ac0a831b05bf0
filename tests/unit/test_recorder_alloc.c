/*
 * test_recorder_alloc.c — the whole sampling path allocates nothing in steady state: a real
 * CPython process (Debian's /usr/bin/python3.11, or PYTRACE_ALLOC_PYTHON) running
 * shared/workloads/cpu_bound.py, walked and recorded round after round exactly as the session
 * does (py_walk, rec_sink_feed, rec_sink_tick with its chunk flushes), with malloc, calloc and
 * realloc of every pytrace object counted (the test is linked with -Wl,--wrap). After a 3 s
 * warm-up, 3 s of rounds (thousands, ~40 frames each, the stack changing every round) make no
 * call — except that this workload still shows a never-seen stack shape now and then, and the
 * recorder's tables (stack trie, chunk buffers) reach a new high-water mark and double
 * (trace_intern.c): amortised O(log n) over a whole recording, never per sample. So: none at all
 * while reading the target (py_walk), and at most a handful in the recorder (0-3 seen).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "output/record.h"
#include "readers/walk.h"

static volatile int counting;
static unsigned long n_alloc;   /* while counting */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    n_alloc += counting;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    n_alloc += counting;
    return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    n_alloc += counting;
    return __real_realloc(p, n);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void steady_recording_allocates_nothing(void **state)
{
    (void)state;
    const char *python = getenv("PYTRACE_ALLOC_PYTHON");
    if (!python)
        python = "/usr/bin/python3.11";
    if (access(python, X_OK) != 0) {
        printf("skipped: %s not found\n", python);
        skip();
    }
    char workload[4096];
    snprintf(workload, sizeof workload, "%s/../shared/workloads/cpu_bound.py", PT_SOURCE_ROOT);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(ready[0]);
        char fdarg[16];
        snprintf(fdarg, sizeof fdarg, "%d", ready[1]);
        execl(python, python, "-c",
              "import os, sys, runpy; os.write(int(sys.argv[1]), b'r'); "
              "sys.argv = [sys.argv[2], '--depth', '30', '--seconds', '60']; "
              "runpy.run_path(sys.argv[0], run_name='__main__')",
              fdarg, workload, (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);   /* the interpreter is up */
    close(ready[0]);

    struct pt_err err;
    struct py_proc *p = NULL;
    assert_int_equal(py_proc_open(&p, child, &err), PT_OK);
    char path[] = "/tmp/pytrace-alloc-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct trace_meta meta = {.pid = child, .name = "alloc", .rate_hz = 1000};
    struct rec_thread_filter filter = {NULL, 0};
    struct rec_sink *sink = NULL;
    assert_int_equal(rec_sink_open(&sink, path, true, &meta, &filter, 10000000ull, &err), PT_OK);
    uint32_t proc = rec_sink_process(sink, p, 0);
    struct py_snapshot snap;
    py_snapshot_init(&snap);

    /* Warm-up: 3 s of rounds, every few hundred microseconds (the stack changes throughout). */
    uint64_t end = now_ns() + 3000000000ull, rounds = 0, frames = 0;
    unsigned long walk_allocs = 0;
    uint64_t unchanged0 = 0;
    int phase = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (phase == 0 && t >= end) {
            phase = 1;
            counting = 1;
            unchanged0 = rec_sink_frames_unchanged(sink);
            end = t + 3000000000ull;
        } else if (phase == 1 && t >= end) {
            counting = 0;
            break;
        }
        unsigned long before = n_alloc;
        enum pt_status rc = py_walk(p, &snap, PY_WALK_OS_STATE, &err);
        walk_allocs += n_alloc - before;
        if (rc == PT_OK) {
            rec_sink_feed(sink, proc, p, &snap, t);
            if (phase == 1) {
                rounds++;
                frames += snap.nthreads ? snap.threads[0].nframes : 0;
            }
        }
        assert_int_equal(rec_sink_tick(sink, t, &err), PT_OK);
        usleep(300);
    }
    uint64_t unchanged = rec_sink_frames_unchanged(sink) - unchanged0;
    printf("rounds counted: %llu, mean depth %.1f, allocations: %lu (reading: %lu), "
           "frames the recorder skipped as unchanged: %.1f%%\n",
           (unsigned long long)rounds, rounds ? (double)frames / (double)rounds : 0.0, n_alloc,
           walk_allocs, frames ? 100.0 * (double)unchanged / (double)frames : 0.0);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    struct trace_summary sum;
    memset(&sum, 0, sizeof sum);
    assert_int_equal(rec_sink_close(sink, now_ns(), &sum, &err), PT_OK);
    py_snapshot_free(&snap);
    py_proc_close(p);
    unlink(path);
    assert_true(rounds > 1000);
    assert_true(frames > 30 * rounds);
    assert_int_equal(walk_allocs, 0);
    assert_true(n_alloc <= 8);
    /* cpu_bound.py's recursion stands still under its leaf calls: most frames of a sample are
     * the previous sample's (the recorder's unchanged-prefix path is in use). */
    assert_true(unchanged > frames / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steady_recording_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
