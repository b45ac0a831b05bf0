/*
 * export_chrome.c — the recording as Chrome Trace Event JSON, for chrome://tracing and
 * ui.perfetto.dev: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}. Calls are
 * complete ("X") events, nested per thread (export_tracks.h); process and thread names are
 * metadata ("M") events; RSS and CPU use are counter ("C") events; process exits, overruns and
 * notes are instant ("i") events. ts and dur are microseconds of CLOCK_MONOTONIC, as doubles.
 *
 * The events array is streamed: each event is a small jansson object, dumped and freed, so a
 * recording with millions of calls never becomes a DOM of millions of nodes.
 */
#include "output/export.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "output/export_tracks.h"

struct ch {
    const struct export_view *v;
    FILE *f;
    size_t n;                  /* events written so far */
    bool failed;
};

/* A JSON string that is never NULL: jansson refuses invalid UTF-8, which an in-memory trace can
 * hold (a loaded file cannot); such bytes become '?'. */
static json_t *ch_str(const char *s)
{
    json_t *j = json_string(s ? s : "");
    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return json_string("");
    for (unsigned char *p = (unsigned char *)copy; *p; p++)
        if (*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j ? j : json_string("");
}

static double ch_us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* Appends one event to the traceEvents array, one per line, and frees it. */
static void ch_emit(struct ch *w, json_t *ev)
{
    if (!ev) {
        w->failed = true;
        return;
    }
    if (fputs(w->n++ ? ",\n" : "\n", w->f) == EOF || json_dumpf(ev, w->f, JSON_COMPACT) != 0)
        w->failed = true;
    json_decref(ev);
}

static json_t *ch_event(const char *ph, const char *name, int64_t pid)
{
    json_t *ev = json_pack("{s:s, s:I}", "ph", ph, "pid", (json_int_t)pid);
    if (ev)
        json_object_set_new(ev, "name", ch_str(name));
    return ev;
}

/* A metadata event whose args hold one value. */
static void ch_meta(struct ch *w, const char *name, int64_t pid, const int64_t *tid,
                    const char *key, json_t *value)
{
    json_t *ev = ch_event("M", name, pid);
    if (ev && tid)
        json_object_set_new(ev, "tid", json_integer((json_int_t)*tid));
    if (ev)
        json_object_set_new(ev, "args", json_pack("{s:o}", key, value));
    else
        json_decref(value);
    ch_emit(w, ev);
}

/* ---- metadata ------------------------------------------------------------------------------ */

static void ch_names(struct ch *w, const bool *process_ok)
{
    const struct trace *t = w->v->t;
    for (uint32_t p = 1; p < t->n_processes; p++) {
        if (!process_ok[p])
            continue;
        const struct trace_process *pr = &t->processes[p];
        const char *cmdline = trace_str(t, pr->cmdline);
        ch_meta(w, "process_name", pr->pid, NULL, "name",
                ch_str(*cmdline ? cmdline : t->name ? t->name : "python"));
        const char *version = trace_str(t, pr->python_version);
        if (*version) {
            char label[96];
            snprintf(label, sizeof label, "Python %s", version);
            ch_meta(w, "process_labels", pr->pid, NULL, "labels", ch_str(label));
        }
    }
    for (uint32_t i = 1; i < t->n_threads; i++) {
        if (!w->v->thread_ok[i])
            continue;
        int64_t pid = export_tracks_pid(t, i), tid = t->threads[i].tid;
        ch_meta(w, "thread_name", pid, &tid, "name", ch_str(trace_str(t, t->threads[i].name)));
        ch_meta(w, "thread_sort_index", pid, &tid, "sort_index", json_integer(i));
    }
}

static void ch_set_str(json_t *o, const char *key, const char *value)
{
    json_object_set_new(o, key, ch_str(value));
}

/* What the recording was, for the viewer's metadata panel. Nanosecond clocks stay integers
 * (exact for Python readers; JavaScript rounds them). */
static json_t *ch_other_data(const struct trace *t)
{
    json_t *o = json_object(), *tags = json_object();
    ch_set_str(o, "pytrace_version", t->pytrace_version);
    json_object_set_new(o, "pid", json_integer((json_int_t)t->pid));
    ch_set_str(o, "name", t->name);
    ch_set_str(o, "python_version", t->python_version);
    ch_set_str(o, "python_binary", t->python_binary);
    ch_set_str(o, "cmdline", t->cmdline);
    ch_set_str(o, "host", t->host);
    ch_set_str(o, "clock", "CLOCK_MONOTONIC (ts, dur in microseconds)");
    ch_set_str(o, "span_estimator", "midpoint of each edge's sampling interval");
    json_object_set_new(o, "start_wall_ns", json_integer((json_int_t)t->start_wall_ns));
    json_object_set_new(o, "start_mono_ns", json_integer((json_int_t)t->start_mono_ns));
    json_object_set_new(o, "rate_hz", json_real(t->rate_hz));
    json_object_set_new(o, "blocking", json_boolean(t->blocking));
    json_object_set_new(o, "native", json_boolean(t->native));
    ch_set_str(o, "filters", t->filters);
    for (size_t i = 0; i < t->n_tags; i++)
        ch_set_str(tags, t->tag_keys[i] ? t->tag_keys[i] : "", t->tag_values[i]);
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "truncated", json_boolean(t->truncated));
    if (t->has_trailer) {
        const struct trace_summary *s = &t->summary;
        json_object_set_new(o, "samples", json_integer((json_int_t)s->samples));
        json_object_set_new(o, "errors", json_integer((json_int_t)s->errors));
        json_object_set_new(o, "missed", json_integer((json_int_t)s->missed));
        json_object_set_new(o, "overruns", json_integer((json_int_t)s->overruns));
        json_object_set_new(o, "achieved_hz", json_real(s->achieved_hz));
        if (s->exit_status != INT64_MIN)
            json_object_set_new(o, "exit_status", json_integer((json_int_t)s->exit_status));
    }
    return o;
}

/* ---- calls --------------------------------------------------------------------------------- */

static json_t *ch_call_args(const struct trace *t, const struct tl_span *s)
{
    json_t *args = json_object();
    if (s->function && s->function < t->n_functions) {
        const struct trace_function *fn = &t->functions[s->function];
        ch_set_str(args, "file", trace_str(t, fn->file));
        json_object_set_new(args, "line", json_integer(fn->first_line));
        ch_set_str(args, "qualname", trace_str(t, fn->qualname));
    }
    json_object_set_new(args, "samples", json_integer((json_int_t)s->samples));
    if (s->call_line >= 0)
        json_object_set_new(args, "call_line", json_integer(s->call_line));
    if (s->open_begin)   /* the call was already running when the recording started */
        json_object_set_new(args, "open_begin", json_true());
    if (s->open_end)     /* ... or still running when it stopped */
        json_object_set_new(args, "open_end", json_true());
    if (s->n_locals && s->locals) {   /* --locals: the call's variables at its first sighting */
        json_t *vars = json_object();
        for (uint32_t k = 0; k < s->n_locals; k++)
            json_object_set_new(vars, trace_str(t, s->locals[k].name),
                                json_string(trace_str(t, s->locals[k].value)));
        json_object_set_new(args, "locals", vars);
    }
    return args;
}

static void ch_call(struct ch *w, const struct export_slice *sl)
{
    const struct trace *t = w->v->t;
    const struct tl_span *s = &t->spans[sl->span];
    const char *name = s->function && s->function < t->n_functions
                           ? trace_str(t, t->functions[s->function].name) : "<unknown>";
    json_t *ev = ch_event("X", name, export_tracks_pid(t, sl->thread));
    if (ev) {
        json_object_set_new(ev, "tid", json_integer((json_int_t)t->threads[sl->thread].tid));
        /* --ebpf off-CPU periods get their own category (and colour in chrome://tracing). */
        json_object_set_new(ev, "cat", json_string(s->off_cpu ? "off-cpu" : "python"));
        if (s->off_cpu)
            json_object_set_new(ev, "cname", json_string("grey"));
        json_object_set_new(ev, "ts", json_real(ch_us(sl->begin)));
        json_object_set_new(ev, "dur", json_real(ch_us(sl->end - sl->begin)));
        json_object_set_new(ev, "args", ch_call_args(t, s));
    }
    ch_emit(w, ev);
}

/* ---- counters and instants ----------------------------------------------------------------- */

static void ch_counter(struct ch *w, const char *name, int64_t pid, uint64_t t_ns,
                       const char *key, json_t *value)
{
    json_t *ev = ch_event("C", name, pid);
    if (ev) {
        json_object_set_new(ev, "ts", json_real(ch_us(t_ns)));
        json_object_set_new(ev, "args", json_pack("{s:o}", key, value));
    } else {
        json_decref(value);
    }
    ch_emit(w, ev);
}

/* Chrome keys counters by process and name, so each thread's CPU series is named after it. */
static void ch_counters(struct ch *w, const bool *process_ok, const struct export_cpu_point *cpu,
                        size_t n_cpu)
{
    const struct export_view *v = w->v;
    const struct trace *t = v->t;
    char name[256];
    for (size_t i = 0; i < n_cpu; i++) {
        const struct trace_thread *th = &t->threads[cpu[i].thread];
        snprintf(name, sizeof name, "CPU %% %s (tid %lld)", trace_str(t, th->name),
                 (long long)th->tid);
        ch_counter(w, name, export_tracks_pid(t, cpu[i].thread), cpu[i].t_ns, "percent",
                   json_real(cpu[i].percent));
    }
    for (size_t i = 0; i < t->n_counters; i++) {
        const struct trace_counter *c = &t->counters[i];
        if (c->kind != TRACE_C_RSS_BYTES || !c->owner || c->owner >= t->n_processes ||
            !process_ok[c->owner] || c->t_ns < v->t0 || c->t_ns > v->t1)
            continue;
        ch_counter(w, "RSS", t->processes[c->owner].pid, c->t_ns, "bytes",
                   json_integer((json_int_t)c->value));
    }
}

static void ch_instants(struct ch *w, const bool *process_ok)
{
    const struct export_view *v = w->v;
    const struct trace *t = v->t;
    char label[96];
    for (size_t i = 0; i < t->n_events; i++) {
        const struct trace_event *e = &t->events[i];
        /* Events of no particular process go with the first one. */
        uint32_t proc = e->process && e->process < t->n_processes ? e->process : 1;
        const char *name = label;
        if (e->kind == TRACE_E_PROCESS_EXIT)
            snprintf(label, sizeof label, "process exit (status %lld)", (long long)e->value);
        else if (e->kind == TRACE_E_OVERRUN)
            snprintf(label, sizeof label, "sampling overrun (%lld missed)", (long long)e->value);
        else if (e->kind == TRACE_E_NOTE)
            name = trace_str(t, e->text);
        else
            continue;   /* thread and process starts: the tracks show them */
        if (proc >= t->n_processes || !process_ok[proc] || e->t_ns < v->t0 || e->t_ns > v->t1)
            continue;
        int64_t pid = t->processes[proc].pid;
        json_t *ev = ch_event("i", name, pid);
        if (ev) {
            json_object_set_new(ev, "s", json_string("p"));
            json_object_set_new(ev, "tid", json_integer((json_int_t)pid));
            json_object_set_new(ev, "ts", json_real(ch_us(e->t_ns)));
        }
        ch_emit(w, ev);
    }
}

/* ---- the whole trace ----------------------------------------------------------------------- */

static void ch_close(struct ch *w)
{
    json_t *other = ch_other_data(w->v->t);
    if (fputs("\n],\"displayTimeUnit\":\"ms\",\"otherData\":", w->f) == EOF || !other ||
        json_dumpf(other, w->f, JSON_COMPACT) != 0 || fputs("}\n", w->f) == EOF)
        w->failed = true;
    json_decref(other);
}

enum pt_status export_chrome(const struct export_view *v, FILE *out, struct pt_err *err)
{
    struct ch w = {.v = v, .f = out};
    struct export_slice *slices = NULL;
    struct export_cpu_point *cpu = NULL;
    size_t n_slices = 0, n_cpu = 0;
    bool *process_ok = export_tracks_processes(v);
    enum pt_status rc = process_ok ? PT_OK : pt_fail(err, PT_EFAIL, "out of memory");
    if (rc != PT_OK || (rc = export_tracks_slices(v, &slices, &n_slices, err)) != PT_OK ||
        (rc = export_tracks_cpu(v, &cpu, &n_cpu, err)) != PT_OK)
        goto out;
    if (fputs("{\"traceEvents\":[", out) == EOF)
        w.failed = true;
    ch_names(&w, process_ok);
    for (size_t i = 0; i < n_slices; i++)
        ch_call(&w, &slices[i]);
    ch_counters(&w, process_ok, cpu, n_cpu);
    ch_instants(&w, process_ok);
    ch_close(&w);
    if (w.failed || fflush(out) != 0 || ferror(out))
        rc = pt_fail(err, PT_EFAIL, "write error while exporting Chrome trace JSON");
out:
    free(cpu);
    free(slices);
    free(process_ok);
    return rc;
}
