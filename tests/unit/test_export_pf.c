/*
 * test_export_pf.c — output/export_perfetto.c and export_chrome.c (and the slice nesting they
 * share, output/export_tracks.h): a small trace in memory is exported to a memory FILE and read
 * back — Perfetto with the generated protobuf-c code, Chrome JSON with jansson. Pinned: track
 * descriptors and the clock, slices that nest (every END closes a BEGIN on its track, children
 * inside parents, even when the estimator or a damaged file says otherwise), interned ids defined
 * before use, microsecond ts/dur, metadata, counters, and the --thread/--exclude/window filters.
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

#define MS 1000000ULL
#define T0 5000000000000ULL        /* an arbitrary CLOCK_MONOTONIC start */
#define WALL0 1700000000000000000ULL

/* ---- the fixture: two threads of one process, spans 1 ms apart ------------------------------ */

enum { S_EMPTY, S_MAIN, S_WORK, S_WORKER_WORK, S_LEAF, S_OTHER, S_APP, S_UTIL, S_CMD, S_VER,
       S_MAINTHREAD, S_WORKER0, S_NOTE, S_BAD, N_STRINGS };

static char *fx_strings[N_STRINGS] = {
    "", "main", "work", "Worker.work", "leaf", "other", "/app/app.py",
    "/usr/lib/python3.12/util.py", "python3 app.py --fast", "3.12.1", "MainThread", "worker-0",
    "hello", "bad\xff\xfe_bytes",
};

static struct trace_function fx_functions[] = {
    {0, 0, 0, 0},
    {S_MAIN, S_MAIN, S_APP, 10},
    {S_WORK, S_WORKER_WORK, S_APP, 20},
    {S_LEAF, S_LEAF, S_UTIL, 5},
    {S_OTHER, S_OTHER, S_APP, 30},
};
enum { F_MAIN = 1, F_WORK, F_LEAF, F_OTHER };

static struct trace_process fx_processes[] = {{0, 0, 0, 0, 0}, {4242, 17, S_CMD, S_VER, 0}};
static struct trace_thread fx_threads[] = {
    {0, 0, 0, 0}, {1, 4242, 1, S_MAINTHREAD}, {1, 4243, 2, S_WORKER0},
};

/* A span on `thread` with first/last sightings b, e and neighbours lo, hi (all in ms from T0). */
static struct tl_span span(uint32_t thread, uint32_t fn, uint32_t depth, int lo, int b, int e,
                           int hi)
{
    return (struct tl_span){
        .thread = thread, .function = fn, .depth = depth, .call_line = depth ? 40 + (int)depth : -1,
        .first_line = 1, .begin_lo = T0 + (uint64_t)lo * MS, .begin = T0 + (uint64_t)b * MS,
        .end = T0 + (uint64_t)e * MS, .end_hi = T0 + (uint64_t)hi * MS,
        .samples = (uint64_t)(e - b + 1), .open_begin = lo == b, .open_end = e == hi};
}

enum { SP_A, SP_B, SP_C, SP_D, SP_E, SP_F, SP_G, N_SPANS };

static struct tl_span fx_spans[N_SPANS];
static struct trace_counter fx_counters[8];
static struct trace_event fx_events[3];
static struct trace_sample fx_samples[2];

/*
 * MainThread: main [0,10] (open at both ends) > work [1.5,5.5] > leaf [2.5,6.0]: the leaf's end
 * interval is wider than its parent's (a torn sample), so its estimate pokes out and must be
 * clamped to 5.5; then other [5.5,8.5] > leaf [6.5,7.5]. worker-0: work [0.5,9.5] > leaf [3.5,4.5].
 */
static struct trace fx_trace(void)
{
    fx_spans[SP_A] = span(1, F_MAIN, 0, 0, 0, 10, 10);
    fx_spans[SP_B] = span(1, F_WORK, 1, 1, 2, 5, 6);
    fx_spans[SP_C] = span(1, F_LEAF, 2, 2, 3, 5, 7);
    fx_spans[SP_D] = span(1, F_OTHER, 1, 5, 6, 8, 9);
    fx_spans[SP_E] = span(1, F_LEAF, 2, 6, 7, 7, 8);
    fx_spans[SP_F] = span(2, F_WORK, 0, 0, 1, 9, 10);
    fx_spans[SP_G] = span(2, F_LEAF, 1, 3, 4, 4, 5);
    /* CPU of MainThread: 4 ms in the first 5 ms (80 %), 1 ms in the next 5 (20 %). */
    fx_counters[0] = (struct trace_counter){TRACE_C_CPU_USER_NS, 1, T0, 0};
    fx_counters[1] = (struct trace_counter){TRACE_C_CPU_SYS_NS, 1, T0, 0};
    fx_counters[2] = (struct trace_counter){TRACE_C_CPU_USER_NS, 1, T0 + 5 * MS, 3 * (int64_t)MS};
    fx_counters[3] = (struct trace_counter){TRACE_C_CPU_SYS_NS, 1, T0 + 5 * MS, 1 * (int64_t)MS};
    fx_counters[4] = (struct trace_counter){TRACE_C_CPU_USER_NS, 1, T0 + 10 * MS, 4 * (int64_t)MS};
    fx_counters[5] = (struct trace_counter){TRACE_C_CPU_SYS_NS, 1, T0 + 10 * MS, 1 * (int64_t)MS};
    fx_counters[6] = (struct trace_counter){TRACE_C_RSS_BYTES, 1, T0, 1000000};
    fx_counters[7] = (struct trace_counter){TRACE_C_RSS_BYTES, 1, T0 + 5 * MS, 2000000};
    fx_events[0] = (struct trace_event){TRACE_E_PROCESS_START, 1, 0, 0, 4242, S_CMD};
    fx_events[1] = (struct trace_event){TRACE_E_NOTE, 1, 0, T0 + 4 * MS, 0, S_NOTE};
    fx_events[2] = (struct trace_event){TRACE_E_PROCESS_EXIT, 1, 0, T0 + 10 * MS, 0, 0};
    fx_samples[0] = (struct trace_sample){1, 0, T0, 0};
    fx_samples[1] = (struct trace_sample){2, 0, T0, 0};
    return (struct trace){
        .pid = 4242, .name = "app", .python_version = "3.12.1", .python_binary = "/usr/bin/python3",
        .cmdline = "python3 app.py --fast", .host = "host-1", .pytrace_version = "0.1.0",
        .start_wall_ns = WALL0, .start_mono_ns = T0, .rate_hz = 1000,
        .strings = fx_strings, .n_strings = N_STRINGS,
        .functions = fx_functions, .n_functions = 5,
        .processes = fx_processes, .n_processes = 2,
        .threads = fx_threads, .n_threads = 3,
        .samples = fx_samples, .n_samples = 2,
        .spans = fx_spans, .n_spans = N_SPANS,
        .counters = fx_counters, .n_counters = 8,
        .events = fx_events, .n_events = 3,
        .has_trailer = true, .summary = {.end_mono_ns = T0 + 10 * MS, .samples = 22,
                                         .exit_status = INT64_MIN},
    };
}

/* ---- running an exporter ------------------------------------------------------------------- */

struct output {
    char *buf;
    size_t len;
};

static struct output run(export_fn fn, const struct trace *t, const struct export_opts *o)
{
    struct export_opts none = {.to_s = -1};
    struct export_view v;
    struct pt_err err = {0};
    struct output out = {NULL, 0};
    if (export_view_init(&v, t, o ? o : &none, &err) != PT_OK)
        fail_msg("export_view_init: %s", err.msg);
    FILE *f = open_memstream(&out.buf, &out.len);
    assert_non_null(f);
    if (fn(&v, f, &err) != PT_OK)
        fail_msg("export: %s", err.msg);
    assert_int_equal(fclose(f), 0);
    export_view_free(&v);
    return out;
}

/* ---- reading Perfetto back ----------------------------------------------------------------- */

#define MAX_TRACKS 64
#define MAX_DEPTH 512
#define MAX_IIDS 4096
#define MAX_SLICES 8192

struct pf_slice {
    uint64_t track, begin, end, name_iid;
    size_t depth;
};

/* What a decoded Perfetto trace holds, after every invariant has been checked. */
struct pf_read {
    PtPerfetto__Trace *trace;
    size_t n_tracks, n_slices, n_instants, n_counters;
    const PtPerfetto__TrackDescriptor *tracks[MAX_TRACKS];
    struct pf_slice slices[MAX_SLICES];
    const char *names[MAX_IIDS];                 /* EventName by iid */
    const PtPerfetto__SourceLocation *locs[MAX_IIDS];
    bool cats[8], anns[8];
    /* per track: the open slices */
    size_t open[MAX_TRACKS][MAX_DEPTH], top[MAX_TRACKS];
    uint64_t last_ts[MAX_TRACKS];
};

static int pf_track_index(struct pf_read *r, uint64_t uuid)
{
    for (size_t i = 0; i < r->n_tracks; i++)
        if (r->tracks[i]->uuid == uuid)
            return (int)i;
    return -1;
}

static void pf_intern(struct pf_read *r, const PtPerfetto__InternedData *d)
{
    for (size_t i = 0; i < d->n_event_names; i++) {
        assert_true(d->event_names[i]->has_iid && d->event_names[i]->iid > 0);
        assert_true(d->event_names[i]->iid < MAX_IIDS);
        assert_null(r->names[d->event_names[i]->iid]);   /* never redefined */
        r->names[d->event_names[i]->iid] = d->event_names[i]->name;
    }
    for (size_t i = 0; i < d->n_source_locations; i++) {
        assert_true(d->source_locations[i]->iid > 0 && d->source_locations[i]->iid < MAX_IIDS);
        r->locs[d->source_locations[i]->iid] = d->source_locations[i];
    }
    for (size_t i = 0; i < d->n_event_categories; i++)
        r->cats[d->event_categories[i]->iid % 8] = true;
    for (size_t i = 0; i < d->n_debug_annotation_names; i++)
        r->anns[d->debug_annotation_names[i]->iid % 8] = true;
}

static void pf_begin(struct pf_read *r, int tr, uint64_t ts, const PtPerfetto__TrackEvent *ev,
                     uint32_t flags)
{
    assert_true(flags & PT_PERFETTO__TRACE_PACKET__SEQUENCE_FLAGS__SEQ_NEEDS_INCREMENTAL_STATE);
    if (ev->name_field_case == PT_PERFETTO__TRACK_EVENT__NAME_FIELD_NAME_IID) {
        assert_true(ev->name_iid < MAX_IIDS);
        assert_non_null(r->names[ev->name_iid]);   /* defined earlier on the sequence */
        assert_true(ev->has_source_location_iid);
        assert_non_null(r->locs[ev->source_location_iid]);
    }
    for (size_t i = 0; i < ev->n_category_iids; i++)
        assert_true(r->cats[ev->category_iids[i] % 8]);
    for (size_t i = 0; i < ev->n_debug_annotations; i++)
        assert_true(r->anns[ev->debug_annotations[i]->name_iid % 8]);
    assert_true(r->n_slices < MAX_SLICES && r->top[tr] < MAX_DEPTH);
    r->slices[r->n_slices] = (struct pf_slice){r->tracks[tr]->uuid, ts, 0,
                                               ev->name_field_case ==
                                                       PT_PERFETTO__TRACK_EVENT__NAME_FIELD_NAME_IID
                                                   ? ev->name_iid : 0,
                                               r->top[tr]};
    r->open[tr][r->top[tr]++] = r->n_slices++;
}

static void pf_event(struct pf_read *r, const PtPerfetto__TracePacket *p)
{
    const PtPerfetto__TrackEvent *ev = p->track_event;
    assert_true(p->has_timestamp && p->has_timestamp_clock_id);
    assert_int_equal(p->timestamp_clock_id, PT_PERFETTO__BUILTIN_CLOCK__BUILTIN_CLOCK_MONOTONIC);
    assert_true(ev->has_track_uuid && ev->has_type);
    int tr = pf_track_index(r, ev->track_uuid);
    assert_true(tr >= 0);                 /* the track was described before its first event */
    const PtPerfetto__TrackDescriptor *d = r->tracks[tr];
    if (ev->type == PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_COUNTER) {
        assert_non_null(d->counter);
        r->n_counters++;
        return;
    }
    assert_null(d->counter);
    if (ev->type == PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_INSTANT) {
        r->n_instants++;
        return;
    }
    assert_non_null(d->thread);           /* slices only on thread tracks */
    assert_true(p->timestamp >= r->last_ts[tr]);   /* time order per track */
    r->last_ts[tr] = p->timestamp;
    if (ev->type == PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN) {
        pf_begin(r, tr, p->timestamp, ev, p->sequence_flags);
    } else {
        assert_int_equal(ev->type, PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_SLICE_END);
        assert_true(r->top[tr] > 0);      /* every END closes a BEGIN on the same track */
        r->slices[r->open[tr][--r->top[tr]]].end = p->timestamp;
    }
}

/* Decodes and checks; the caller frees with pf_free(). */
static struct pf_read *pf_read(const struct output *o)
{
    struct pf_read *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->trace = pt_perfetto__trace__unpack(NULL, o->len, (const uint8_t *)o->buf);
    assert_non_null(r->trace);
    assert_true(r->trace->n_packet > 0);
    const PtPerfetto__TracePacket *first = r->trace->packet[0];
    assert_int_equal(first->data_case, PT_PERFETTO__TRACE_PACKET__DATA_CLOCK_SNAPSHOT);
    assert_true(first->first_packet_on_sequence);
    assert_true(first->sequence_flags &
                PT_PERFETTO__TRACE_PACKET__SEQUENCE_FLAGS__SEQ_INCREMENTAL_STATE_CLEARED);
    for (size_t i = 0; i < r->trace->n_packet; i++) {
        const PtPerfetto__TracePacket *p = r->trace->packet[i];
        assert_true(p->has_trusted_packet_sequence_id && p->trusted_packet_sequence_id == 1);
        if (p->interned_data)
            pf_intern(r, p->interned_data);
        if (p->data_case == PT_PERFETTO__TRACE_PACKET__DATA_TRACK_DESCRIPTOR) {
            assert_true(p->track_descriptor->has_uuid);
            assert_int_equal(pf_track_index(r, p->track_descriptor->uuid), -1);   /* unique */
            assert_true(r->n_tracks < MAX_TRACKS);
            r->tracks[r->n_tracks++] = p->track_descriptor;
        } else if (p->data_case == PT_PERFETTO__TRACE_PACKET__DATA_TRACK_EVENT) {
            pf_event(r, p);
        }
    }
    for (size_t i = 0; i < r->n_tracks; i++)
        assert_int_equal(r->top[i], 0);  /* every BEGIN was closed */
    return r;
}

static void pf_free(struct pf_read *r)
{
    pt_perfetto__trace__free_unpacked(r->trace, NULL);
    free(r);
}

static const PtPerfetto__TrackDescriptor *pf_thread_track(struct pf_read *r, int32_t tid)
{
    for (size_t i = 0; i < r->n_tracks; i++)
        if (r->tracks[i]->thread && r->tracks[i]->thread->tid == tid)
            return r->tracks[i];
    return NULL;
}

/* The slices of a track in BEGIN order: children follow their parent. */
static size_t pf_slices_of(struct pf_read *r, uint64_t track, struct pf_slice *out)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_slices; i++)
        if (r->slices[i].track == track)
            out[n++] = r->slices[i];
    return n;
}

/* Children lie within their parent: a slice at depth d+1 lies within the last slice at depth d. */
static void assert_nested(const struct pf_slice *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(s[i].begin <= s[i].end);
        if (s[i].depth == 0)
            continue;
        size_t p = i;
        while (p > 0 && s[--p].depth != s[i].depth - 1)
            ;
        assert_int_equal(s[p].depth, s[i].depth - 1);
        assert_true(s[p].begin <= s[i].begin && s[i].end <= s[p].end);
    }
}

/* Without libm (the unit tests do not link it). */
static double absd(double x)
{
    return x < 0 ? -x : x;
}

/* Microseconds (non-negative) to whole nanoseconds, rounded. */
static long long ns_of(double us)
{
    return (long long)(us * 1000 + 0.5);
}

/* ---- reading Chrome JSON back -------------------------------------------------------------- */

static json_t *ch_read(const struct output *o)
{
    json_error_t e;
    json_t *doc = json_loadb(o->buf, o->len, 0, &e);
    if (!doc)
        fail_msg("chrome JSON does not parse: %s (line %d)", e.text, e.line);
    assert_true(json_is_array(json_object_get(doc, "traceEvents")));
    assert_string_equal(json_string_value(json_object_get(doc, "displayTimeUnit")), "ms");
    assert_true(json_is_object(json_object_get(doc, "otherData")));
    return doc;
}

static size_t ch_count(json_t *doc, const char *ph, const char *name)
{
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(json_object_get(doc, "traceEvents"), i, ev) {
        assert_non_null(json_string_value(json_object_get(ev, "ph")));
        if (!strcmp(json_string_value(json_object_get(ev, "ph")), ph) &&
            (!name || !strcmp(json_string_value(json_object_get(ev, "name")), name)))
            n++;
    }
    return n;
}

static json_t *ch_find(json_t *doc, const char *ph, const char *name, json_int_t tid)
{
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(doc, "traceEvents"), i, ev)
        if (!strcmp(json_string_value(json_object_get(ev, "ph")), ph) &&
            !strcmp(json_string_value(json_object_get(ev, "name")), name) &&
            (tid < 0 || json_integer_value(json_object_get(ev, "tid")) == tid))
            return ev;
    return NULL;
}

/* Per tid, X events in file order nest: each lies within the enclosing one still open. */
static void ch_assert_nested(json_t *doc)
{
    json_int_t tids[16];
    size_t ntids = 0, i;
    json_t *ev;
    json_array_foreach(json_object_get(doc, "traceEvents"), i, ev) {
        json_int_t tid = json_integer_value(json_object_get(ev, "tid"));
        bool known = false;
        for (size_t k = 0; k < ntids; k++)
            known |= tids[k] == tid;
        if (!known && !strcmp(json_string_value(json_object_get(ev, "ph")), "X"))
            tids[ntids++] = tid;
        assert_true(ntids < 16);
    }
    for (size_t k = 0; k < ntids; k++) {
        /* In whole nanoseconds: microsecond doubles near 5e9 carry rounding noise. */
        long long stack_end[MAX_DEPTH], last_ts = -1;
        size_t top = 0;
        json_array_foreach(json_object_get(doc, "traceEvents"), i, ev) {
            if (strcmp(json_string_value(json_object_get(ev, "ph")), "X") ||
                json_integer_value(json_object_get(ev, "tid")) != tids[k])
                continue;
            long long ts = ns_of(json_real_value(json_object_get(ev, "ts")));
            long long dur = ns_of(json_real_value(json_object_get(ev, "dur")));
            assert_true(dur >= 0 && ts >= last_ts);
            last_ts = ts;
            while (top && stack_end[top - 1] <= ts && !(dur == 0 && stack_end[top - 1] == ts))
                top--;
            if (top)
                assert_true(ts + dur <= stack_end[top - 1]);
            assert_true(top < MAX_DEPTH);
            stack_end[top++] = ts + dur;
        }
    }
}

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
        cmocka_unit_test(test_perfetto_clock_is_monotonic_and_maps_wall_time),
        cmocka_unit_test(test_perfetto_describes_process_threads_and_counters),
        cmocka_unit_test(test_perfetto_slices_nest_and_children_are_clamped),
        cmocka_unit_test(test_perfetto_interns_names_and_source_locations_once),
        cmocka_unit_test(test_perfetto_counters_cpu_rate_and_rss),
        cmocka_unit_test(test_chrome_has_metadata_and_other_data),
        cmocka_unit_test(test_chrome_x_events_in_microseconds_with_args),
        cmocka_unit_test(test_chrome_counters_and_instants),
        cmocka_unit_test(test_chrome_invalid_utf8_still_valid_json),
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
