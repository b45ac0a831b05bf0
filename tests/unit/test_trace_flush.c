/*
 * test_trace_flush.c — output/trace_write.c's flush policy (trace_maybe_flush): a chunk is
 * written once a second, or as soon as it holds TRACE_FLUSH_BYTES, whichever comes first, so a
 * 100 kHz recording never packs more than that in one stall of the sampling thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output/trace.h"

/* Packed at ≈ 5 ns a byte in the sampling thread, a chunk must fit the sampler's 1 ms catch-up. */
_Static_assert(TRACE_FLUSH_BYTES <= 192u << 10, "a chunk this large stalls a 100 kHz sampler");

#define MS 1000000ULL
#define T0 5000000000000ULL        /* an arbitrary CLOCK_MONOTONIC start */

static char path[64];

static struct trace_writer *open_writer(void)
{
    strcpy(path, "/tmp/pytrace-test-flush-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct trace_meta meta = {.pid = 4242, .name = "worker", .python_version = "3.12.1",
                              .start_mono_ns = T0, .rate_hz = 100000};
    struct trace_writer *w = NULL;
    struct pt_err err = {0};
    if (trace_writer_open(&w, path, true, &meta, &err) != PT_OK)
        fail_msg("trace_writer_open: %s", err.msg);
    return w;
}

static void close_writer(struct trace_writer *w)
{
    struct trace_summary sum = {0};
    assert_int_equal(trace_writer_close(w, &sum, NULL), PT_OK);
    unlink(path);
}

/* A sample of a stack never seen: a new function (its strings) and a new stack entry. */
static void new_stack_sample(struct trace_writer *w, uint32_t th, int i, uint64_t t_ns)
{
    char name[96];
    snprintf(name, sizeof name, "handler_%06d_with_a_long_generated_name_like_an_orm_query", i);
    uint32_t f = trace_function(w, name, name, "/srv/app/generated/module_with_a_long_path.py", i);
    trace_sample(w, th, t_ns, trace_stack(w, 0, f, i), 0);
}

static void a_chunk_is_written_when_it_holds_128_kib_without_waiting_for_the_second(void **state)
{
    (void)state;
    struct trace_writer *w = open_writer();
    uint32_t th = trace_thread(w, 0, 1, 1, "MainThread");
    uint64_t before = trace_bytes(w), last = before, biggest = 0;
    int flushes = 0;
    /* 8,000 new stacks at 100 kHz: 80 ms of recording. */
    for (int i = 0; i < 8000; i++) {
        uint64_t t = T0 + (uint64_t)i * 10000;
        new_stack_sample(w, th, i, t);
        assert_int_equal(trace_maybe_flush(w, t, NULL), PT_OK);
        uint64_t now = trace_bytes(w);
        if (now != last) {
            flushes++;
            biggest = now - last > biggest ? now - last : biggest;
            last = now;
        }
    }
    uint64_t written = last - before;
    assert_true(written > 4 * (uint64_t)TRACE_FLUSH_BYTES);   /* 754 KB when written */
    /* Each chunk about TRACE_FLUSH_BYTES as packed (the estimate is close, not exact). */
    assert_true(biggest <= TRACE_FLUSH_BYTES + TRACE_FLUSH_BYTES / 4);
    assert_true((uint64_t)flushes >= written / (TRACE_FLUSH_BYTES + TRACE_FLUSH_BYTES / 4));
    close_writer(w);
}

static void a_small_chunk_waits_for_the_second(void **state)
{
    (void)state;
    struct trace_writer *w = open_writer();
    uint32_t th = trace_thread(w, 0, 1, 1, "MainThread");
    uint32_t st = trace_stack(w, 0, trace_function(w, "f", "f", "f.py", 1), 1);
    assert_int_equal(trace_maybe_flush(w, T0, NULL), PT_OK);
    uint64_t before = trace_bytes(w);
    for (int i = 0; i < 1000; i++) {
        uint64_t t = T0 + (uint64_t)i * MS / 2;   /* 2 kHz for 0.5 s */
        trace_sample(w, th, t, st, 0);
        assert_int_equal(trace_maybe_flush(w, t, NULL), PT_OK);
    }
    assert_int_equal(trace_bytes(w), before);
    assert_int_equal(trace_maybe_flush(w, T0 + TRACE_FLUSH_NS, NULL), PT_OK);
    assert_true(trace_bytes(w) > before);
    close_writer(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_chunk_is_written_when_it_holds_128_kib_without_waiting_for_the_second),
        cmocka_unit_test(a_small_chunk_waits_for_the_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
