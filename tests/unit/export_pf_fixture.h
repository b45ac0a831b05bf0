/*
 * export_pf_fixture.h — what test_export_pf.c and test_export_pf_both.c share: the fixture trace,
 * an exporter run into a memory FILE, and its output read back (Perfetto with the generated
 * protobuf-c code, Chrome JSON with jansson) with every invariant checked on the way: tracks before
 * their events, every END closing a BEGIN, ids defined before use. Test code; static inline.
 */
#ifndef PT_TESTS_EXPORT_PF_FIXTURE_H
#define PT_TESTS_EXPORT_PF_FIXTURE_H

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
static inline struct tl_span span(uint32_t thread, uint32_t fn, uint32_t depth, int lo, int b,
                                  int e, int hi)
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
static inline struct trace fx_trace(void)
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

static inline struct output run(export_fn fn, const struct trace *t, const struct export_opts *o)
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

static inline int pf_track_index(struct pf_read *r, uint64_t uuid)
{
    for (size_t i = 0; i < r->n_tracks; i++)
        if (r->tracks[i]->uuid == uuid)
            return (int)i;
    return -1;
}

static inline void pf_intern(struct pf_read *r, const PtPerfetto__InternedData *d)
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

static inline void pf_begin(struct pf_read *r, int tr, uint64_t ts,
                            const PtPerfetto__TrackEvent *ev, uint32_t flags)
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

static inline void pf_event(struct pf_read *r, const PtPerfetto__TracePacket *p)
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
static inline struct pf_read *pf_read(const struct output *o)
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

static inline void pf_free(struct pf_read *r)
{
    pt_perfetto__trace__free_unpacked(r->trace, NULL);
    free(r);
}

static inline const PtPerfetto__TrackDescriptor *pf_thread_track(struct pf_read *r, int32_t tid)
{
    for (size_t i = 0; i < r->n_tracks; i++)
        if (r->tracks[i]->thread && r->tracks[i]->thread->tid == tid)
            return r->tracks[i];
    return NULL;
}

/* The slices of a track in BEGIN order: children follow their parent. */
static inline size_t pf_slices_of(struct pf_read *r, uint64_t track, struct pf_slice *out)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_slices; i++)
        if (r->slices[i].track == track)
            out[n++] = r->slices[i];
    return n;
}

/* Children lie within their parent: a slice at depth d+1 lies within the last slice at depth d. */
static inline void assert_nested(const struct pf_slice *s, size_t n)
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
static inline double absd(double x)
{
    return x < 0 ? -x : x;
}

/* Microseconds (non-negative) to whole nanoseconds, rounded. */
static inline long long ns_of(double us)
{
    return (long long)(us * 1000 + 0.5);
}

/* ---- reading Chrome JSON back -------------------------------------------------------------- */

static inline json_t *ch_read(const struct output *o)
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

static inline size_t ch_count(json_t *doc, const char *ph, const char *name)
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

static inline json_t *ch_find(json_t *doc, const char *ph, const char *name, json_int_t tid)
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
static inline void ch_assert_nested(json_t *doc)
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

#endif
