/*
 * test_export_pf.c — output/export_perfetto.c and export_chrome.c (and the slice nesting they
 * share, output/export_tracks.h), each format on its own, on export_pf_fixture.h's trace read back.
 * Pinned: track descriptors and the clock, slices that nest (children clamped inside parents),
 * interned ids defined before use, microsecond ts/dur, metadata, counters and instants. What both
 * formats must do alike (filters, damaged spans, a loaded file) is test_export_pf_both.c's.
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

#include "output/export.h"
#include "output/trace.h"
#include "perfetto.pb-c.h"
#include "tests/unit/export_pf_fixture.h"

/* ---- Perfetto ------------------------------------------------------------------------------ */

static void test_perfetto_clock_is_monotonic_and_maps_wall_time(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_perfetto, &t, NULL);
    struct pf_read *r = pf_read(&o);
    const PtPerfetto__ClockSnapshot *snap = r->trace->packet[0]->clock_snapshot;
    assert_int_equal(snap->primary_trace_clock,
                     PT_PERFETTO__BUILTIN_CLOCK__BUILTIN_CLOCK_MONOTONIC);
    bool mono = false, wall = false;
    for (size_t i = 0; i < snap->n_clocks; i++) {
        if (snap->clocks[i]->clock_id == PT_PERFETTO__BUILTIN_CLOCK__BUILTIN_CLOCK_MONOTONIC)
            mono = snap->clocks[i]->timestamp == T0;
        if (snap->clocks[i]->clock_id == PT_PERFETTO__BUILTIN_CLOCK__BUILTIN_CLOCK_REALTIME)
            wall = snap->clocks[i]->timestamp == WALL0;
    }
    assert_true(mono && wall);
    pf_free(r);
    free(o.buf);
}

static void test_perfetto_describes_process_threads_and_counters(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_perfetto, &t, NULL);
    struct pf_read *r = pf_read(&o);
    const PtPerfetto__TrackDescriptor *proc = NULL;
    size_t counters = 0;
    for (size_t i = 0; i < r->n_tracks; i++) {
        if (r->tracks[i]->process)
            proc = r->tracks[i];
        counters += r->tracks[i]->counter != NULL;
    }
    assert_non_null(proc);
    assert_int_equal(proc->process->pid, 4242);
    assert_string_equal(proc->process->process_name, "python3 app.py --fast");
    const PtPerfetto__TrackDescriptor *main = pf_thread_track(r, 4242);
    const PtPerfetto__TrackDescriptor *worker = pf_thread_track(r, 4243);
    assert_non_null(main);
    assert_non_null(worker);
    assert_string_equal(main->thread->thread_name, "MainThread");
    assert_string_equal(worker->thread->thread_name, "worker-0");
    assert_int_equal(worker->thread->pid, 4242);
    assert_int_equal(worker->parent_uuid, proc->uuid);
    assert_int_equal(counters, 2);      /* MainThread's CPU, the process's RSS */
    assert_int_equal(r->n_tracks, 5);
    pf_free(r);
    free(o.buf);
}

static void test_perfetto_slices_nest_and_children_are_clamped(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_perfetto, &t, NULL);
    struct pf_read *r = pf_read(&o);
    struct pf_slice s[16];
    size_t n = pf_slices_of(r, pf_thread_track(r, 4242)->uuid, s);
    assert_int_equal(n, 5);
    assert_nested(s, n);
    /* main (open at both ends: first and last sample), work, leaf clamped, other, leaf */
    assert_string_equal(r->names[s[0].name_iid], "main");
    assert_int_equal(s[0].begin, T0);
    assert_int_equal(s[0].end, T0 + 10 * MS);
    assert_string_equal(r->names[s[1].name_iid], "work");
    assert_int_equal(s[1].begin, T0 + 3 * MS / 2);
    assert_int_equal(s[1].end, T0 + 11 * MS / 2);
    assert_string_equal(r->names[s[2].name_iid], "leaf");
    assert_int_equal(s[2].depth, 2);
    assert_int_equal(s[2].begin, T0 + 5 * MS / 2);
    assert_int_equal(s[2].end, T0 + 11 * MS / 2);   /* estimate 6.0 ms, parent ends at 5.5 */
    assert_string_equal(r->names[s[3].name_iid], "other");
    assert_int_equal(s[3].begin, T0 + 11 * MS / 2);
    assert_int_equal(s[3].depth, 1);
    n = pf_slices_of(r, pf_thread_track(r, 4243)->uuid, s);
    assert_int_equal(n, 2);
    assert_nested(s, n);
    pf_free(r);
    free(o.buf);
}

static void test_perfetto_interns_names_and_source_locations_once(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_perfetto, &t, NULL);
    struct pf_read *r = pf_read(&o);   /* checks every iid is defined before it is used */
    size_t names = 0;
    for (size_t i = 0; i < MAX_IIDS; i++)
        names += r->names[i] != NULL;
    assert_int_equal(names, 4);         /* main, work, leaf, other: leaf's three uses share one */
    const PtPerfetto__SourceLocation *loc = r->locs[F_WORK];
    assert_non_null(loc);
    assert_string_equal(loc->file_name, "/app/app.py");
    assert_string_equal(loc->function_name, "Worker.work");
    assert_int_equal(loc->line_number, 20);
    pf_free(r);
    free(o.buf);
}

static void test_perfetto_counters_cpu_rate_and_rss(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_perfetto, &t, NULL);
    struct pf_read *r = pf_read(&o);
    double cpu[8];
    int64_t rss[8];
    size_t n_cpu = 0, n_rss = 0;
    for (size_t i = 0; i < r->trace->n_packet; i++) {
        const PtPerfetto__TracePacket *p = r->trace->packet[i];
        if (p->data_case != PT_PERFETTO__TRACE_PACKET__DATA_TRACK_EVENT ||
            p->track_event->type != PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_COUNTER)
            continue;
        if (p->track_event->counter_value_field_case ==
            PT_PERFETTO__TRACK_EVENT__COUNTER_VALUE_FIELD_DOUBLE_COUNTER_VALUE)
            cpu[n_cpu++] = p->track_event->double_counter_value;
        else
            rss[n_rss++] = p->track_event->counter_value;
    }
    assert_int_equal(n_cpu, 3);
    assert_true(absd(cpu[0] - 80) < 1e-9 && absd(cpu[1] - 20) < 1e-9 && absd(cpu[2] - 20) < 1e-9);
    assert_int_equal(n_rss, 2);
    assert_int_equal(rss[0], 1000000);
    assert_int_equal(rss[1], 2000000);
    assert_int_equal(r->n_instants, 2);   /* the note and the exit; the start has no time */
    pf_free(r);
    free(o.buf);
}

/* ---- Chrome -------------------------------------------------------------------------------- */

static void test_chrome_has_metadata_and_other_data(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_chrome, &t, NULL);
    json_t *doc = ch_read(&o);
    json_t *pn = ch_find(doc, "M", "process_name", -1);
    assert_non_null(pn);
    assert_int_equal(json_integer_value(json_object_get(pn, "pid")), 4242);
    assert_string_equal(json_string_value(json_object_get(json_object_get(pn, "args"), "name")),
                        "python3 app.py --fast");
    json_t *tn = ch_find(doc, "M", "thread_name", 4243);
    assert_non_null(tn);
    assert_string_equal(json_string_value(json_object_get(json_object_get(tn, "args"), "name")),
                        "worker-0");
    assert_int_equal(ch_count(doc, "M", "thread_sort_index"), 2);
    json_t *other = json_object_get(doc, "otherData");
    assert_string_equal(json_string_value(json_object_get(other, "python_version")), "3.12.1");
    assert_int_equal(json_integer_value(json_object_get(other, "start_mono_ns")), T0);
    assert_int_equal(json_integer_value(json_object_get(other, "samples")), 22);
    json_decref(doc);
    free(o.buf);
}

static void test_chrome_x_events_in_microseconds_with_args(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_chrome, &t, NULL);
    json_t *doc = ch_read(&o);
    assert_int_equal(ch_count(doc, "X", NULL), N_SPANS);
    ch_assert_nested(doc);
    json_t *work = ch_find(doc, "X", "work", 4242);
    assert_non_null(work);
    assert_string_equal(json_string_value(json_object_get(work, "cat")), "python");
    assert_int_equal(json_integer_value(json_object_get(work, "pid")), 4242);
    double ts = json_real_value(json_object_get(work, "ts"));
    double dur = json_real_value(json_object_get(work, "dur"));
    assert_true(absd(ts - (double)(T0 + 3 * MS / 2) / 1000.0) < 1e-6);
    assert_true(absd(dur - 4000.0) < 1e-6);   /* 1.5 ms to 5.5 ms */
    json_t *args = json_object_get(work, "args");
    assert_string_equal(json_string_value(json_object_get(args, "file")), "/app/app.py");
    assert_int_equal(json_integer_value(json_object_get(args, "line")), 20);
    assert_string_equal(json_string_value(json_object_get(args, "qualname")), "Worker.work");
    json_t *leaf = ch_find(doc, "X", "leaf", 4242);   /* the clamped one comes first */
    assert_true(absd(json_real_value(json_object_get(leaf, "dur")) - 3000.0) < 1e-6);
    json_decref(doc);
    free(o.buf);
}

static void test_chrome_counters_and_instants(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct output o = run(export_chrome, &t, NULL);
    json_t *doc = ch_read(&o);
    assert_int_equal(ch_count(doc, "C", "RSS"), 2);
    json_t *cpu = ch_find(doc, "C", "CPU % MainThread (tid 4242)", -1);
    assert_non_null(cpu);
    assert_true(absd(json_real_value(json_object_get(json_object_get(cpu, "args"), "percent")) -
                     80) < 1e-9);
    assert_int_equal(ch_count(doc, "i", NULL), 2);
    assert_non_null(ch_find(doc, "i", "hello", -1));
    json_decref(doc);
    free(o.buf);
}

static void test_chrome_invalid_utf8_still_valid_json(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    fx_threads[2].name = S_BAD;
    struct output o = run(export_chrome, &t, NULL);
    fx_threads[2].name = S_WORKER0;
    json_t *doc = ch_read(&o);
    json_t *tn = ch_find(doc, "M", "thread_name", 4243);
    assert_string_equal(json_string_value(json_object_get(json_object_get(tn, "args"), "name")),
                        "bad??_bytes");
    json_decref(doc);
    free(o.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfetto_clock_is_monotonic_and_maps_wall_time),
        cmocka_unit_test(test_perfetto_describes_process_threads_and_counters),
        cmocka_unit_test(test_perfetto_slices_nest_and_children_are_clamped),
        cmocka_unit_test(test_perfetto_interns_names_and_source_locations_once),
        cmocka_unit_test(test_perfetto_counters_cpu_rate_and_rss),
        cmocka_unit_test(test_chrome_has_metadata_and_other_data),
        cmocka_unit_test(test_chrome_x_events_in_microseconds_with_args),
        cmocka_unit_test(test_chrome_counters_and_instants),
        cmocka_unit_test(test_chrome_invalid_utf8_still_valid_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
