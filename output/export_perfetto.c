/*
 * export_perfetto.c — the recording as a Perfetto trace for ui.perfetto.dev: a process track per
 * process, a thread track per thread holding its calls as nested TYPE_SLICE_BEGIN/END events,
 * counter tracks for each thread's CPU use (percent of one CPU, derived from the cumulative
 * user+system counters) and each process's RSS (bytes), and instants for process exits,
 * sampling overruns and notes.
 *
 * All packets are one sequence, so function names, source locations, the category and the debug
 * annotation names are interned once and referred to by iid. Times are the recorder's own
 * CLOCK_MONOTONIC: every timed packet says so (timestamp_clock_id = MONOTONIC), and a first
 * ClockSnapshot makes MONOTONIC the trace clock (and maps REALTIME, so the UI can show wall time).
 * Every packet is packed by protobuf-c as a one-packet Trace: their concatenation is the Trace,
 * written as it goes instead of held in memory.
 */
#include "output/export.h"

#include <stdio.h>
#include <stdlib.h>

#include "output/export_tracks.h"
#include "perfetto.pb-c.h"

#define PF_SEQUENCE 1            /* trusted_packet_sequence_id of every packet */
#define PF_CLOCK PT_PERFETTO__BUILTIN_CLOCK__BUILTIN_CLOCK_MONOTONIC
#define PF_CATEGORY_IID 1        /* "python" */
#define PF_FLAGS_CLEARED PT_PERFETTO__TRACE_PACKET__SEQUENCE_FLAGS__SEQ_INCREMENTAL_STATE_CLEARED
#define PF_FLAGS_NEEDS PT_PERFETTO__TRACE_PACKET__SEQUENCE_FLAGS__SEQ_NEEDS_INCREMENTAL_STATE

/* Interned debug annotation names, defined in the first packet. */
enum { PF_ANN_SAMPLES = 1, PF_ANN_CALL_LINE, PF_ANN_OPEN_BEGIN, PF_ANN_OPEN_END };
static const char *const pf_ann_names[] = {NULL, "samples", "call_line", "open_begin", "open_end"};

/* Track uuids: the kind in the high bits, the trace's id for the process or thread below. */
enum pf_track { PF_PROCESS = 1, PF_THREAD = 2, PF_CPU = 3, PF_RSS = 4 };

static uint64_t pf_uuid(enum pf_track kind, uint32_t id)
{
    return (uint64_t)kind << 40 | id;
}

/* A ProtobufCBuffer that appends to the output file. */
struct pf_sink {
    ProtobufCBuffer base;
    FILE *f;
    bool failed;
};

struct pf {
    const struct export_view *v;
    struct pf_sink sink;
    bool *named;                 /* by function id: its EventName and SourceLocation are out */
    bool *process_ok;            /* by process id */
};

static void pf_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
    struct pf_sink *s = (struct pf_sink *)buf;
    if (!s->failed && len && fwrite(data, 1, len, s->f) != len)
        s->failed = true;
}

static void pf_emit(struct pf *w, PtPerfetto__TracePacket *p)
{
    p->has_trusted_packet_sequence_id = true;
    p->trusted_packet_sequence_id = PF_SEQUENCE;
    PtPerfetto__Trace trace = PT_PERFETTO__TRACE__INIT;
    trace.n_packet = 1;
    trace.packet = &p;
    pt_perfetto__trace__pack_to_buffer(&trace, &w->sink.base);
}

static void pf_at(PtPerfetto__TracePacket *p, uint64_t t_ns)
{
    p->has_timestamp = true;
    p->timestamp = t_ns;
    p->has_timestamp_clock_id = true;
    p->timestamp_clock_id = PF_CLOCK;
}

static PtPerfetto__ClockSnapshot__Clock pf_clock(PtPerfetto__BuiltinClock id, uint64_t t_ns)
{
    PtPerfetto__ClockSnapshot__Clock c = PT_PERFETTO__CLOCK_SNAPSHOT__CLOCK__INIT;
    c.has_clock_id = c.has_timestamp = true;
    c.clock_id = id;
    c.timestamp = t_ns;
    return c;
}

/*
 * The first packet: starts the sequence's interning state, makes CLOCK_MONOTONIC the trace
 * clock, and interns what every slice refers to. BOOTTIME is mapped onto MONOTONIC one to one
 * for readers that ignore primary_trace_clock and convert everything to BOOTTIME.
 */
static void pf_start(struct pf *w)
{
    const struct trace *t = w->v->t;
    PtPerfetto__ClockSnapshot__Clock clocks[3] = {
        pf_clock(PF_CLOCK, t->start_mono_ns),
        pf_clock(PT_PERFETTO__BUILTIN_CLOCK__BUILTIN_CLOCK_BOOTTIME, t->start_mono_ns),
        pf_clock(PT_PERFETTO__BUILTIN_CLOCK__BUILTIN_CLOCK_REALTIME, t->start_wall_ns),
    };
    PtPerfetto__ClockSnapshot__Clock *clock_ptrs[3] = {&clocks[0], &clocks[1], &clocks[2]};
    PtPerfetto__ClockSnapshot snap = PT_PERFETTO__CLOCK_SNAPSHOT__INIT;
    snap.n_clocks = t->start_wall_ns ? 3 : 2;
    snap.clocks = clock_ptrs;
    snap.has_primary_trace_clock = true;
    snap.primary_trace_clock = PF_CLOCK;

    PtPerfetto__EventCategory cat = PT_PERFETTO__EVENT_CATEGORY__INIT, *cat_ptr = &cat;
    cat.has_iid = true;
    cat.iid = PF_CATEGORY_IID;
    cat.name = "python";
    PtPerfetto__DebugAnnotationName names[4], *name_ptrs[4];
    for (int i = 0; i < 4; i++) {
        names[i] = (PtPerfetto__DebugAnnotationName)PT_PERFETTO__DEBUG_ANNOTATION_NAME__INIT;
        names[i].has_iid = true;
        names[i].iid = (uint64_t)i + 1;
        names[i].name = (char *)pf_ann_names[i + 1];
        name_ptrs[i] = &names[i];
    }
    PtPerfetto__InternedData interned = PT_PERFETTO__INTERNED_DATA__INIT;
    interned.n_event_categories = 1;
    interned.event_categories = &cat_ptr;
    interned.n_debug_annotation_names = 4;
    interned.debug_annotation_names = name_ptrs;

    PtPerfetto__TracePacket p = PT_PERFETTO__TRACE_PACKET__INIT;
    p.has_first_packet_on_sequence = p.first_packet_on_sequence = true;
    p.has_sequence_flags = true;
    p.sequence_flags = PF_FLAGS_CLEARED;
    p.interned_data = &interned;
    p.data_case = PT_PERFETTO__TRACE_PACKET__DATA_CLOCK_SNAPSHOT;
    p.clock_snapshot = &snap;
    pf_emit(w, &p);
}

/* ---- track descriptors --------------------------------------------------------------------- */

static void pf_track(struct pf *w, PtPerfetto__TrackDescriptor *d)
{
    PtPerfetto__TracePacket p = PT_PERFETTO__TRACE_PACKET__INIT;
    p.data_case = PT_PERFETTO__TRACE_PACKET__DATA_TRACK_DESCRIPTOR;
    p.track_descriptor = d;
    pf_emit(w, &p);
}

static void pf_process_track(struct pf *w, uint32_t id)
{
    const struct trace *t = w->v->t;
    const struct trace_process *pr = &t->processes[id];
    const char *cmdline = trace_str(t, pr->cmdline);
    PtPerfetto__ProcessDescriptor proc = PT_PERFETTO__PROCESS_DESCRIPTOR__INIT;
    proc.has_pid = true;
    proc.pid = (int32_t)pr->pid;
    proc.process_name = (char *)(*cmdline ? cmdline : t->name ? t->name : "python");
    PtPerfetto__TrackDescriptor d = PT_PERFETTO__TRACK_DESCRIPTOR__INIT;
    d.has_uuid = true;
    d.uuid = pf_uuid(PF_PROCESS, id);
    d.process = &proc;
    pf_track(w, &d);
}

static void pf_thread_track(struct pf *w, uint32_t id)
{
    const struct trace *t = w->v->t;
    const struct trace_thread *th = &t->threads[id];
    PtPerfetto__ThreadDescriptor thread = PT_PERFETTO__THREAD_DESCRIPTOR__INIT;
    thread.has_pid = thread.has_tid = true;
    thread.pid = (int32_t)export_tracks_pid(t, id);
    thread.tid = (int32_t)th->tid;
    thread.thread_name = (char *)trace_str(t, th->name);
    PtPerfetto__TrackDescriptor d = PT_PERFETTO__TRACK_DESCRIPTOR__INIT;
    d.has_uuid = true;
    d.uuid = pf_uuid(PF_THREAD, id);
    if (th->process && th->process < t->n_processes && w->process_ok[th->process]) {
        d.has_parent_uuid = true;
        d.parent_uuid = pf_uuid(PF_PROCESS, th->process);
    }
    d.thread = &thread;
    pf_track(w, &d);
}

static void pf_counter_track(struct pf *w, uint64_t uuid, uint64_t parent, const char *name,
                             PtPerfetto__CounterDescriptor__Unit unit)
{
    PtPerfetto__CounterDescriptor counter = PT_PERFETTO__COUNTER_DESCRIPTOR__INIT;
    counter.has_unit = true;
    counter.unit = unit;
    PtPerfetto__TrackDescriptor d = PT_PERFETTO__TRACK_DESCRIPTOR__INIT;
    d.has_uuid = d.has_parent_uuid = true;
    d.uuid = uuid;
    d.parent_uuid = parent;
    d.name = (char *)name;
    d.counter = &counter;
    pf_track(w, &d);
}

static bool pf_rss_ok(const struct pf *w, const struct trace_counter *c)
{
    const struct export_view *v = w->v;
    return c->kind == TRACE_C_RSS_BYTES && c->owner && c->owner < v->t->n_processes &&
           w->process_ok[c->owner] && c->t_ns >= v->t0 && c->t_ns <= v->t1;
}

/* Every track, before any timed packet: a reader then knows each track before its first event. */
static enum pt_status pf_tracks(struct pf *w, const struct export_cpu_point *cpu, size_t n_cpu,
                                struct pt_err *err)
{
    const struct trace *t = w->v->t;
    for (uint32_t p = 1; p < t->n_processes; p++)
        if (w->process_ok[p])
            pf_process_track(w, p);
    for (uint32_t i = 1; i < t->n_threads; i++)
        if (w->v->thread_ok[i])
            pf_thread_track(w, i);
    for (size_t i = 0; i < n_cpu; i++)
        if (i == 0 || cpu[i].thread != cpu[i - 1].thread)
            pf_counter_track(w, pf_uuid(PF_CPU, cpu[i].thread), pf_uuid(PF_THREAD, cpu[i].thread),
                             "CPU %", PT_PERFETTO__COUNTER_DESCRIPTOR__UNIT__UNIT_UNSPECIFIED);
    bool *has_rss = calloc(t->n_processes + 1, sizeof *has_rss);
    if (!has_rss)
        return pt_fail(err, PT_EFAIL, "out of memory");
    for (size_t i = 0; i < t->n_counters; i++)
        if (pf_rss_ok(w, &t->counters[i]))
            has_rss[t->counters[i].owner] = true;
    for (uint32_t p = 1; p < t->n_processes; p++)
        if (has_rss[p])
            pf_counter_track(w, pf_uuid(PF_RSS, p), pf_uuid(PF_PROCESS, p), "RSS",
                             PT_PERFETTO__COUNTER_DESCRIPTOR__UNIT__UNIT_SIZE_BYTES);
    free(has_rss);
    return PT_OK;
}

/* ---- slices -------------------------------------------------------------------------------- */

static PtPerfetto__DebugAnnotation pf_ann(uint64_t name_iid)
{
    PtPerfetto__DebugAnnotation a = PT_PERFETTO__DEBUG_ANNOTATION__INIT;
    a.name_field_case = PT_PERFETTO__DEBUG_ANNOTATION__NAME_FIELD_NAME_IID;
    a.name_iid = name_iid;
    return a;
}

/* The debug annotations of a slice: how many samples saw the call, the caller's line, and
 * whether an edge is only where the recording started or stopped. Returns the count. */
static size_t pf_span_args(const struct tl_span *s, PtPerfetto__DebugAnnotation *a)
{
    size_t n = 0;
    a[n] = pf_ann(PF_ANN_SAMPLES);
    a[n].value_case = PT_PERFETTO__DEBUG_ANNOTATION__VALUE_UINT_VALUE;
    a[n++].uint_value = s->samples;
    if (s->call_line >= 0) {
        a[n] = pf_ann(PF_ANN_CALL_LINE);
        a[n].value_case = PT_PERFETTO__DEBUG_ANNOTATION__VALUE_INT_VALUE;
        a[n++].int_value = s->call_line;
    }
    for (int k = 0; k < 2; k++) {
        if (!(k ? s->open_end : s->open_begin))
            continue;
        a[n] = pf_ann(k ? PF_ANN_OPEN_END : PF_ANN_OPEN_BEGIN);
        a[n].value_case = PT_PERFETTO__DEBUG_ANNOTATION__VALUE_BOOL_VALUE;
        a[n++].bool_value = true;
    }
    return n;
}

/* --locals: a span's variables as string annotations "locals.NAME" (the UI nests them under
 * "locals" in the slice's arguments). Returns the count; names are built in names[]. */
#define PF_MAX_LOCALS 64
static size_t pf_locals_args(const struct trace *t, const struct tl_span *s,
                             PtPerfetto__DebugAnnotation *a, char (*names)[96])
{
    size_t n = 0;
    for (uint32_t k = 0; k < s->n_locals && s->locals && n < PF_MAX_LOCALS; k++, n++) {
        snprintf(names[n], sizeof names[n], "locals.%s", trace_str(t, s->locals[k].name));
        a[n] = (PtPerfetto__DebugAnnotation)PT_PERFETTO__DEBUG_ANNOTATION__INIT;
        a[n].name_field_case = PT_PERFETTO__DEBUG_ANNOTATION__NAME_FIELD_NAME;
        a[n].name = names[n];
        a[n].value_case = PT_PERFETTO__DEBUG_ANNOTATION__VALUE_STRING_VALUE;
        a[n].string_value = (char *)trace_str(t, s->locals[k].value);
    }
    return n;
}

/* A function's EventName and SourceLocation, interned where the function first appears. */
struct pf_names {
    PtPerfetto__InternedData interned;
    PtPerfetto__EventName name, *name_ptr;
    PtPerfetto__SourceLocation loc, *loc_ptr;
};

/* Fills n for function fn (its id is the iid of both entries) and returns its InternedData, or
 * NULL when an earlier packet on the sequence defined them already. */
static PtPerfetto__InternedData *pf_intern(struct pf *w, uint32_t fn, struct pf_names *n)
{
    const struct trace *t = w->v->t;
    const struct trace_function *f = &t->functions[fn];
    if (w->named[fn])
        return NULL;
    w->named[fn] = true;
    *n = (struct pf_names){.interned = PT_PERFETTO__INTERNED_DATA__INIT,
                           .name = PT_PERFETTO__EVENT_NAME__INIT,
                           .loc = PT_PERFETTO__SOURCE_LOCATION__INIT};
    n->name.has_iid = n->loc.has_iid = true;
    n->name.iid = n->loc.iid = fn;
    n->name.name = (char *)trace_str(t, f->name);
    n->loc.file_name = (char *)trace_str(t, f->file);
    n->loc.function_name = (char *)(*trace_str(t, f->qualname) ? trace_str(t, f->qualname)
                                                                : n->name.name);
    n->loc.has_line_number = f->first_line > 0;
    n->loc.line_number = f->first_line > 0 ? (uint32_t)f->first_line : 0;
    n->name_ptr = &n->name;
    n->loc_ptr = &n->loc;
    n->interned.n_event_names = n->interned.n_source_locations = 1;
    n->interned.event_names = &n->name_ptr;
    n->interned.source_locations = &n->loc_ptr;
    return &n->interned;
}

static void pf_begin(struct pf *w, const struct export_slice *sl)
{
    const struct trace *t = w->v->t;
    const struct tl_span *s = &t->spans[sl->span];
    uint64_t category = PF_CATEGORY_IID;
    PtPerfetto__DebugAnnotation args[4 + PF_MAX_LOCALS], *arg_ptrs[4 + PF_MAX_LOCALS];
    static char local_names[PF_MAX_LOCALS][96];
    for (size_t i = 0; i < 4 + PF_MAX_LOCALS; i++)
        arg_ptrs[i] = &args[i];
    PtPerfetto__TrackEvent ev = PT_PERFETTO__TRACK_EVENT__INIT;
    ev.has_type = ev.has_track_uuid = true;
    ev.type = PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN;
    ev.track_uuid = pf_uuid(PF_THREAD, sl->thread);
    ev.n_category_iids = 1;
    ev.category_iids = &category;
    ev.n_debug_annotations = pf_span_args(s, args);
    ev.n_debug_annotations += pf_locals_args(t, s, args + ev.n_debug_annotations, local_names);
    ev.debug_annotations = arg_ptrs;

    PtPerfetto__TracePacket p = PT_PERFETTO__TRACE_PACKET__INIT;
    struct pf_names names;
    if (s->function && s->function < t->n_functions) {
        ev.name_field_case = PT_PERFETTO__TRACK_EVENT__NAME_FIELD_NAME_IID;
        ev.name_iid = s->function;
        ev.has_source_location_iid = true;
        ev.source_location_iid = s->function;
        p.interned_data = pf_intern(w, s->function, &names);
    } else {
        ev.name_field_case = PT_PERFETTO__TRACK_EVENT__NAME_FIELD_NAME;
        ev.name = "<unknown>";
    }
    pf_at(&p, sl->begin);
    p.has_sequence_flags = true;
    p.sequence_flags = PF_FLAGS_NEEDS;
    p.data_case = PT_PERFETTO__TRACE_PACKET__DATA_TRACK_EVENT;
    p.track_event = &ev;
    pf_emit(w, &p);
}

static void pf_end(struct pf *w, const struct export_slice *sl)
{
    PtPerfetto__TrackEvent ev = PT_PERFETTO__TRACK_EVENT__INIT;
    ev.has_type = ev.has_track_uuid = true;
    ev.type = PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_SLICE_END;
    ev.track_uuid = pf_uuid(PF_THREAD, sl->thread);
    PtPerfetto__TracePacket p = PT_PERFETTO__TRACE_PACKET__INIT;
    pf_at(&p, sl->end);
    p.data_case = PT_PERFETTO__TRACE_PACKET__DATA_TRACK_EVENT;
    p.track_event = &ev;
    pf_emit(w, &p);
}

/* BEGIN and END events in time order per thread: before a slice begins, every open slice that
 * does not enclose it ends (export_tracks_slices() made their ends come no later). */
static enum pt_status pf_slices(struct pf *w, const struct export_slice *s, size_t n,
                                struct pt_err *err)
{
    uint32_t *stack = malloc((n ? n : 1) * sizeof *stack);
    if (!stack)
        return pt_fail(err, PT_EFAIL, "out of memory");
    size_t top = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && s[i].thread != s[i - 1].thread)
            while (top)
                pf_end(w, &s[stack[--top]]);
        while (top && stack[top - 1] != s[i].parent)
            pf_end(w, &s[stack[--top]]);
        pf_begin(w, &s[i]);
        stack[top++] = (uint32_t)i;
    }
    while (top)
        pf_end(w, &s[stack[--top]]);
    free(stack);
    return PT_OK;
}

/* ---- counters and instants ----------------------------------------------------------------- */

static void pf_counter(struct pf *w, uint64_t uuid, uint64_t t_ns, const int64_t *ival,
                       double dval)
{
    PtPerfetto__TrackEvent ev = PT_PERFETTO__TRACK_EVENT__INIT;
    ev.has_type = ev.has_track_uuid = true;
    ev.type = PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_COUNTER;
    ev.track_uuid = uuid;
    if (ival) {
        ev.counter_value_field_case = PT_PERFETTO__TRACK_EVENT__COUNTER_VALUE_FIELD_COUNTER_VALUE;
        ev.counter_value = *ival;
    } else {
        ev.counter_value_field_case =
            PT_PERFETTO__TRACK_EVENT__COUNTER_VALUE_FIELD_DOUBLE_COUNTER_VALUE;
        ev.double_counter_value = dval;
    }
    PtPerfetto__TracePacket p = PT_PERFETTO__TRACE_PACKET__INIT;
    pf_at(&p, t_ns);
    p.data_case = PT_PERFETTO__TRACE_PACKET__DATA_TRACK_EVENT;
    p.track_event = &ev;
    pf_emit(w, &p);
}

static void pf_counters(struct pf *w, const struct export_cpu_point *cpu, size_t n_cpu)
{
    const struct trace *t = w->v->t;
    for (size_t i = 0; i < n_cpu; i++)
        pf_counter(w, pf_uuid(PF_CPU, cpu[i].thread), cpu[i].t_ns, NULL, cpu[i].percent);
    for (size_t i = 0; i < t->n_counters; i++)
        if (pf_rss_ok(w, &t->counters[i]))
            pf_counter(w, pf_uuid(PF_RSS, t->counters[i].owner), t->counters[i].t_ns,
                       &t->counters[i].value, 0);
}

/* The instant's label, or NULL for kinds the tracks already show (thread and process start). */
static const char *pf_event_label(const struct trace *t, const struct trace_event *e, char *buf,
                                  size_t cap)
{
    switch (e->kind) {
    case TRACE_E_PROCESS_EXIT:
        snprintf(buf, cap, "process exit (status %lld)", (long long)e->value);
        return buf;
    case TRACE_E_OVERRUN:
        snprintf(buf, cap, "sampling overrun (%lld missed)", (long long)e->value);
        return buf;
    case TRACE_E_NOTE:
        return trace_str(t, e->text);
    default:
        return NULL;
    }
}

static void pf_instants(struct pf *w)
{
    const struct export_view *v = w->v;
    const struct trace *t = v->t;
    char buf[96];
    for (size_t i = 0; i < t->n_events; i++) {
        const struct trace_event *e = &t->events[i];
        /* Events of no particular process go on the first one's track. */
        uint32_t proc = e->process && e->process < t->n_processes ? e->process : 1;
        const char *label = pf_event_label(t, e, buf, sizeof buf);
        if (!label || proc >= t->n_processes || !w->process_ok[proc] || e->t_ns < v->t0 ||
            e->t_ns > v->t1)
            continue;
        PtPerfetto__TrackEvent ev = PT_PERFETTO__TRACK_EVENT__INIT;
        ev.has_type = ev.has_track_uuid = true;
        ev.type = PT_PERFETTO__TRACK_EVENT__TYPE__TYPE_INSTANT;
        ev.track_uuid = pf_uuid(PF_PROCESS, proc);
        ev.name_field_case = PT_PERFETTO__TRACK_EVENT__NAME_FIELD_NAME;
        ev.name = (char *)label;
        PtPerfetto__TracePacket p = PT_PERFETTO__TRACE_PACKET__INIT;
        pf_at(&p, e->t_ns);
        p.data_case = PT_PERFETTO__TRACE_PACKET__DATA_TRACK_EVENT;
        p.track_event = &ev;
        pf_emit(w, &p);
    }
}

/* ---- the whole trace ----------------------------------------------------------------------- */

enum pt_status export_perfetto(const struct export_view *v, FILE *out, struct pt_err *err)
{
    const struct trace *t = v->t;
    struct pf w = {.v = v, .sink = {.base = {.append = pf_append}, .f = out}};
    struct export_slice *slices = NULL;
    struct export_cpu_point *cpu = NULL;
    size_t n_slices = 0, n_cpu = 0;
    enum pt_status rc = PT_EFAIL;
    w.named = calloc(t->n_functions + 1, sizeof *w.named);
    w.process_ok = export_tracks_processes(v);
    if (!w.named || !w.process_ok) {
        rc = pt_fail(err, PT_EFAIL, "out of memory");
        goto out;
    }
    if ((rc = export_tracks_slices(v, &slices, &n_slices, err)) != PT_OK ||
        (rc = export_tracks_cpu(v, &cpu, &n_cpu, err)) != PT_OK)
        goto out;
    pf_start(&w);
    if ((rc = pf_tracks(&w, cpu, n_cpu, err)) != PT_OK ||
        (rc = pf_slices(&w, slices, n_slices, err)) != PT_OK)
        goto out;
    pf_counters(&w, cpu, n_cpu);
    pf_instants(&w);
    if (w.sink.failed || fflush(out) != 0 || ferror(out))
        rc = pt_fail(err, PT_EFAIL, "write error while exporting Perfetto");
out:
    free(cpu);
    free(slices);
    free(w.process_ok);
    free(w.named);
    return rc;
}
