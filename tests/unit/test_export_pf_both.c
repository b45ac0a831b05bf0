/*
 * test_export_pf_both.c — output/export_perfetto.c and export_chrome.c held to the same rules, each
 * checked on both outputs read back by export_pf_fixture.h: tracks still described with no spans,
 * an empty trace, the --thread/--exclude/window filters, slices that nest whatever a damaged file
 * says, a trace written and loaded through the real file format, and write errors reported.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output/export.h"
#include "output/trace.h"
#include "perfetto.pb-c.h"
#include "tests/unit/export_pf_fixture.h"

/* ---- both formats -------------------------------------------------------------------------- */

static void test_zero_spans_still_describe_the_tracks(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    t.n_spans = 0;
    struct output o = run(export_perfetto, &t, NULL);
    struct pf_read *r = pf_read(&o);
    assert_int_equal(r->n_slices, 0);
    assert_non_null(pf_thread_track(r, 4243));
    pf_free(r);
    free(o.buf);
    o = run(export_chrome, &t, NULL);
    json_t *doc = ch_read(&o);
    assert_int_equal(ch_count(doc, "X", NULL), 0);
    assert_int_equal(ch_count(doc, "M", "thread_name"), 2);
    json_decref(doc);
    free(o.buf);
}

static void test_empty_trace_exports(void **state)
{
    (void)state;
    struct trace t = {.strings = fx_strings, .n_strings = 1, .n_functions = 1, .n_processes = 1,
                      .n_threads = 1, .functions = fx_functions, .processes = fx_processes,
                      .threads = fx_threads};
    struct output o = run(export_perfetto, &t, NULL);
    struct pf_read *r = pf_read(&o);
    assert_int_equal(r->n_tracks, 0);
    pf_free(r);
    free(o.buf);
    o = run(export_chrome, &t, NULL);
    json_t *doc = ch_read(&o);
    assert_int_equal(json_array_size(json_object_get(doc, "traceEvents")), 0);
    json_decref(doc);
    free(o.buf);
}

static void test_thread_filter_keeps_only_that_thread(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    const char *threads[] = {"worker-*"};
    struct export_opts opts = {.threads = threads, .n_threads = 1, .to_s = -1};
    struct output o = run(export_perfetto, &t, &opts);
    struct pf_read *r = pf_read(&o);
    assert_null(pf_thread_track(r, 4242));
    assert_non_null(pf_thread_track(r, 4243));
    assert_int_equal(r->n_slices, 2);
    pf_free(r);
    free(o.buf);
    o = run(export_chrome, &t, &opts);
    json_t *doc = ch_read(&o);
    assert_int_equal(ch_count(doc, "X", NULL), 2);
    assert_null(ch_find(doc, "M", "thread_name", 4242));
    assert_null(ch_find(doc, "C", "CPU % MainThread (tid 4242)", -1));
    assert_int_equal(ch_count(doc, "C", "RSS"), 2);    /* the selected thread's process */
    json_decref(doc);
    free(o.buf);
}

static void test_exclude_drops_those_frames_slices(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    const char *exclude[] = {"*/util.py"};
    struct export_opts opts = {.exclude = exclude, .n_exclude = 1, .to_s = -1};
    struct output o = run(export_perfetto, &t, &opts);
    struct pf_read *r = pf_read(&o);
    assert_int_equal(r->n_slices, N_SPANS - 3);
    for (size_t i = 0; i < r->n_slices; i++)
        assert_string_not_equal(r->names[r->slices[i].name_iid], "leaf");
    pf_free(r);
    free(o.buf);
    o = run(export_chrome, &t, &opts);
    json_t *doc = ch_read(&o);
    assert_int_equal(ch_count(doc, "X", "leaf"), 0);
    assert_int_equal(ch_count(doc, "X", NULL), N_SPANS - 3);
    json_decref(doc);
    free(o.buf);
}

static void test_window_clips_slices(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct export_opts opts = {.from_s = 0.002, .to_s = 0.004};
    struct output o = run(export_perfetto, &t, &opts);
    struct pf_read *r = pf_read(&o);
    for (size_t i = 0; i < r->n_slices; i++) {
        assert_true(r->slices[i].begin >= T0 + 2 * MS);
        assert_true(r->slices[i].end <= T0 + 4 * MS);
    }
    assert_int_equal(r->n_slices, 5);   /* main, work, leaf; work, leaf (worker) */
    pf_free(r);
    free(o.buf);
}

/* Spans a damaged file could hold: random depths, overlapping siblings, children outside their
 * parents, edges in the wrong order. Whatever they say, both outputs nest. */
static void test_random_spans_always_nest(void **state)
{
    (void)state;
    static struct tl_span spans[300];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < 300; i++) {
            uint64_t v[4];
            for (int k = 0; k < 4; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                v[k] = x;
            }
            uint64_t b = T0 + v[0] % (50 * MS), e = b + v[1] % (20 * MS);
            spans[i] = (struct tl_span){
                .thread = 1 + (uint32_t)(v[2] % 2), .function = 1 + (uint32_t)(v[3] % 4),
                .depth = (uint32_t)(v[2] >> 8) % 6, .call_line = -1,
                .begin_lo = (v[3] >> 8) % 7 ? b - (v[3] >> 16) % (3 * MS) : b + MS,
                .begin = b, .end = e,
                .end_hi = (v[3] >> 24) % 7 ? e + (v[3] >> 32) % (3 * MS) : e - 1,
                .samples = 1, .open_begin = (v[1] >> 40) % 5 == 0,
                .open_end = (v[0] >> 40) % 5 == 0};
        }
        struct trace t = fx_trace();
        t.spans = spans;
        t.n_spans = 300;
        struct output o = run(export_perfetto, &t, NULL);
        struct pf_read *r = pf_read(&o);
        assert_int_equal(r->n_slices, 300);
        static struct pf_slice s[300];
        for (int32_t tid = 4242; tid <= 4243; tid++)
            assert_nested(s, pf_slices_of(r, pf_thread_track(r, tid)->uuid, s));
        pf_free(r);
        free(o.buf);
        o = run(export_chrome, &t, NULL);
        json_t *doc = ch_read(&o);
        assert_int_equal(ch_count(doc, "X", NULL), 300);
        ch_assert_nested(doc);
        json_decref(doc);
        free(o.buf);
    }
}

/* The same exporters on a trace written and loaded back through the real file format. */
static void test_exports_a_loaded_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/pytrace-test-export-pf-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.pytrace", dir);
    struct trace_meta meta = {.pid = 4242, .name = "app", .python_version = "3.12.1",
                              .cmdline = "python3 app.py", .start_wall_ns = WALL0,
                              .start_mono_ns = T0, .rate_hz = 1000};
    struct trace_writer *w = NULL;
    struct pt_err err = {0};
    assert_int_equal(trace_writer_open(&w, path, false, &meta, &err), PT_OK);
    uint32_t f_main = trace_function(w, "main", "main", "/app/app.py", 10);
    uint32_t f_work = trace_function(w, "work", "Worker.work", "/app/app.py", 20);
    uint32_t proc = trace_process(w, 4242, 17, "python3 app.py", "3.12.1", 0);
    uint32_t th = trace_thread(w, proc, 4242, 1, "MainThread");
    uint32_t stack = trace_stack(w, trace_stack(w, 0, f_main, 11), f_work, 21);
    for (int i = 0; i <= 10; i++)
        trace_sample(w, th, T0 + (uint64_t)i * MS, stack, TRACE_F_GIL);
    struct tl_span a = span(th, f_main, 0, 0, 0, 10, 10), b = span(th, f_work, 1, 1, 2, 5, 6);
    trace_span(w, &b);
    trace_span(w, &a);
    trace_counter(w, TRACE_C_RSS_BYTES, proc, T0 + MS, 123456);
    struct trace_summary sum = {.end_mono_ns = T0 + 10 * MS, .samples = 11, .exit_status = 0};
    assert_int_equal(trace_writer_close(w, &sum, &err), PT_OK);
    struct trace *t = NULL;
    assert_int_equal(trace_load(path, &t, &err), PT_OK);
    struct output o = run(export_perfetto, t, NULL);
    struct pf_read *r = pf_read(&o);
    assert_int_equal(r->n_slices, 2);
    assert_string_equal(r->names[r->slices[0].name_iid], "main");
    assert_string_equal(pf_thread_track(r, 4242)->thread->thread_name, "MainThread");
    pf_free(r);
    free(o.buf);
    o = run(export_chrome, t, NULL);
    json_t *doc = ch_read(&o);
    assert_int_equal(ch_count(doc, "X", NULL), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "otherData"),
                                                        "exit_status")), 0);
    json_decref(doc);
    free(o.buf);
    trace_free(t);
    unlink(path);
    rmdir(dir);
}

static void test_write_error_is_reported(void **state)
{
    (void)state;
    FILE *full = fopen("/dev/full", "w");
    if (!full)
        skip();
    struct trace t = fx_trace();
    struct export_opts none = {.to_s = -1};
    struct export_view v;
    struct pt_err err = {0};
    assert_int_equal(export_view_init(&v, &t, &none, &err), PT_OK);
    assert_int_equal(export_perfetto(&v, full, &err), PT_EFAIL);
    assert_non_null(strstr(err.msg, "write error"));
    clearerr(full);
    assert_int_equal(export_chrome(&v, full, &err), PT_EFAIL);
    export_view_free(&v);
    fclose(full);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_spans_still_describe_the_tracks),
        cmocka_unit_test(test_empty_trace_exports),
        cmocka_unit_test(test_thread_filter_keeps_only_that_thread),
        cmocka_unit_test(test_exclude_drops_those_frames_slices),
        cmocka_unit_test(test_window_clips_slices),
        cmocka_unit_test(test_random_spans_always_nest),
        cmocka_unit_test(test_exports_a_loaded_file),
        cmocka_unit_test(test_write_error_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
