/*
 * export_speedscope.c — the speedscope file format (speedscope.app's file-format-schema.json):
 * one evented profile per thread, opening and closing the calls the timeline found (spans),
 * placed by the midpoint estimator, in ns since the trace's start. Speedscope rebuilds a call tree
 * from the events and rejects a close that does not match the innermost open frame, so estimates
 * are made to nest here: each call is clamped inside its caller, and time never goes back. Calls
 * carry no GIL/idle state, so --no-idle and --gil-only (sample filters) leave them as they are.
 */
#include "output/export.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SS_SCHEMA "https://www.speedscope.app/file-format-schema.json"

/* One call, times in ns since the trace's start. */
struct ss_call {
    uint32_t thread, depth, function;
    uint64_t b, e;
};

/* An open call while events are written. */
struct ss_open {
    uint64_t e;
    uint32_t depth;
    json_int_t frame;
};

struct ss {
    const struct export_view *v;
    uint64_t base;            /* trace start (CLOCK_MONOTONIC); event times are relative to it */
    uint64_t lo, hi;          /* selected window, relative */
    FILE *out;
    json_t *frames;           /* shared.frames, filled as events name them */
    json_int_t *frame_of;     /* by function id: index in frames, -1 = not yet */
    struct ss_open *stack;
    size_t n_events;          /* written to the current profile */
};

static uint64_t clamp_u64(uint64_t x, uint64_t lo, uint64_t hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* The trace's start exactly as export_view_init takes it (--from/--to count from there; the
 * first sample may precede the header's clock), and the selected window relative to it. */
static void ss_window(struct ss *s)
{
    const struct trace *t = s->v->t;
    s->base = t->start_mono_ns;
    if (t->n_samples && t->samples[0].t_ns < s->base)
        s->base = t->samples[0].t_ns;
    uint64_t end = t->has_trailer ? t->summary.end_mono_ns : 0;
    for (size_t i = 0; i < t->n_samples; i++)
        if (t->samples[i].t_ns > end)
            end = t->samples[i].t_ns;
    for (size_t i = 0; i < t->n_spans; i++)
        if (export_span_end(&t->spans[i]) > end)
            end = export_span_end(&t->spans[i]);
    if (end > s->v->t1)
        end = s->v->t1;
    s->lo = s->v->t0 > s->base ? s->v->t0 - s->base : 0;
    s->hi = end > s->base ? end - s->base : 0;
    if (s->hi < s->lo)
        s->hi = s->lo;
}

/* The index in shared.frames of function fn, added on first use. */
static json_int_t ss_frame(struct ss *s, uint32_t fn)
{
    const struct trace *t = s->v->t;
    if (fn >= t->n_functions)
        fn = 0;
    if (s->frame_of[fn] >= 0)
        return s->frame_of[fn];
    json_t *f;
    if (!fn) {
        f = json_pack("{s:s}", "name", "<unknown>");
    } else {
        const struct trace_function *tf = &t->functions[fn];
        const char *name = *trace_str(t, tf->qualname) ? trace_str(t, tf->qualname)
                                                        : trace_str(t, tf->name);
        f = json_pack("{s:s, s:s}", "name", name, "file", trace_str(t, tf->file));
        if (f && tf->first_line > 0)
            json_object_set_new(f, "line", json_integer(tf->first_line));
    }
    if (!f || json_array_append_new(s->frames, f) != 0)
        return -1;
    return s->frame_of[fn] = (json_int_t)json_array_size(s->frames) - 1;
}

static int cmp_call(const void *a, const void *b)
{
    const struct ss_call *x = a, *y = b;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    if (x->depth != y->depth)   /* a caller before the callee seen at the same instant */
        return x->depth < y->depth ? -1 : 1;
    if (x->e != y->e)
        return x->e > y->e ? -1 : 1;
    return 0;
}

/* Selected spans as calls clamped to the window, by thread, then start, then depth. */
static struct ss_call *ss_calls(const struct ss *s, size_t *n_out)
{
    const struct trace *t = s->v->t;
    struct ss_call *calls = malloc((t->n_spans + 1) * sizeof *calls);
    size_t n = 0;
    for (size_t i = 0; calls && i < t->n_spans; i++) {
        const struct tl_span *sp = &t->spans[i];
        if (!export_span_ok(s->v, sp))
            continue;
        uint64_t b = export_span_begin(sp), e = export_span_end(sp);
        b = clamp_u64(b > s->base ? b - s->base : 0, s->lo, s->hi);
        e = clamp_u64(e > s->base ? e - s->base : 0, b, s->hi);
        calls[n++] = (struct ss_call){sp->thread, sp->depth, sp->function, b, e};
    }
    if (calls)
        qsort(calls, n, sizeof *calls, cmp_call);
    *n_out = n;
    return calls;
}

/* Writes `,"key":value` (no comma when first); steals value, NULL meaning out of memory. */
static int ss_member(struct ss *s, bool first, const char *key, json_t *value)
{
    int rc = -1;
    if (value && fprintf(s->out, "%s\"%s\":", first ? "" : ",", key) >= 0)
        rc = json_dumpf(value, s->out, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(value);
    return rc;
}

/* One event of the events array being written. */
static int ss_event(struct ss *s, const char *type, json_int_t frame, uint64_t at)
{
    json_t *ev = json_pack("{s:s, s:I, s:I}", "type", type, "frame", frame, "at", (json_int_t)at);
    int rc = -1;
    if (ev && (!s->n_events || fputc(',', s->out) != EOF))
        rc = json_dumpf(ev, s->out, JSON_COMPACT);
    json_decref(ev);
    s->n_events++;
    return rc;
}

/*
 * Open/close events of one thread's calls (sorted by cmp_call). Invariant: no event written so far
 * lies after the end of a call still open, so clamping a new call into the innermost open one
 * keeps every close matched and every time non-decreasing. Returns 0, -1 on OOM.
 */
static int ss_thread_events(struct ss *s, const struct ss_call *calls, size_t n)
{
    size_t depth = 0;
    uint64_t last = s->lo;
    for (size_t i = 0; i <= n; i++) {
        const struct ss_call *c = i < n ? &calls[i] : NULL;
        /* Close what ended before c starts, and every call at c's depth or deeper: a sibling
         * whose estimate overlaps c ends first and c starts when it ends. */
        while (depth && (!c || s->stack[depth - 1].depth >= c->depth ||
                         s->stack[depth - 1].e < c->b)) {
            const struct ss_open *o = &s->stack[--depth];
            last = o->e > last ? o->e : last;
            if (ss_event(s, "C", o->frame, last) != 0)
                return -1;
        }
        if (!c)
            break;
        uint64_t b = c->b > last ? c->b : last;
        uint64_t e = depth && c->e > s->stack[depth - 1].e ? s->stack[depth - 1].e : c->e;
        if (e < b)
            e = b;
        json_int_t frame = ss_frame(s, c->function);
        if (frame < 0 || ss_event(s, "O", frame, b) != 0)
            return -1;
        s->stack[depth++] = (struct ss_open){e, c->depth, frame};
        last = b;
    }
    return 0;
}

/* The thread's evented profile, as an element of the profiles array (first: no comma). */
static int ss_thread_profile(struct ss *s, uint32_t thread, const struct ss_call *calls, size_t n,
                             bool first)
{
    const struct trace *t = s->v->t;
    const struct trace_thread *th = &t->threads[thread];
    const char *name = *trace_str(t, th->name) ? trace_str(t, th->name) : "thread";
    if (fputs(first ? "{" : ",{", s->out) == EOF ||
        ss_member(s, true, "type", json_string("evented")) != 0 ||
        ss_member(s, false, "name", json_sprintf("%s (tid %lld)", name, (long long)th->tid)) != 0 ||
        ss_member(s, false, "unit", json_string("nanoseconds")) != 0 ||
        ss_member(s, false, "startValue", json_integer((json_int_t)s->lo)) != 0 ||
        ss_member(s, false, "endValue", json_integer((json_int_t)s->hi)) != 0 ||
        fputs(",\"events\":[", s->out) == EOF)
        return -1;
    s->n_events = 0;
    if (ss_thread_events(s, calls, n) != 0)
        return -1;
    return fputs("]}", s->out) == EOF ? -1 : 0;
}

/* Whether a selected thread has anything to show: a call or a selected sample. */
static bool ss_thread_shown(const struct ss *s, uint32_t thread, size_t n_calls)
{
    if (!s->v->thread_ok[thread])
        return false;
    if (n_calls)
        return true;
    const struct trace *t = s->v->t;
    for (size_t i = 0; i < t->n_samples; i++)
        if (t->samples[i].thread == thread && export_sample_ok(s->v, &t->samples[i]))
            return true;
    return false;
}

/* The profiles array's elements, one per thread shown, in thread id order. */
static int ss_profiles(struct ss *s)
{
    const struct trace *t = s->v->t;
    size_t n_calls, at = 0, shown = 0;
    struct ss_call *calls = ss_calls(s, &n_calls);
    if (!calls)
        return -1;
    for (uint32_t th = 1; th < t->n_threads; th++) {
        size_t from = at;
        while (at < n_calls && calls[at].thread == th)
            at++;
        if (!ss_thread_shown(s, th, at - from))
            continue;
        if (ss_thread_profile(s, th, calls + from, at - from, !shown++) != 0) {
            free(calls);
            return -1;
        }
    }
    free(calls);
    return 0;
}

/* The document, streamed: events are written as they are made, never held (a long trace has
 * millions). Frames are only known once every event is out, so "shared" comes last. */
static int ss_document(struct ss *s)
{
    const struct trace *t = s->v->t;
    const char *version = *t->pytrace_version ? t->pytrace_version : "(unknown version)";
    if (fputc('{', s->out) == EOF || ss_member(s, true, "$schema", json_string(SS_SCHEMA)) != 0 ||
        ss_member(s, false, "name", json_string(*t->name ? t->name : "pytrace")) != 0 ||
        ss_member(s, false, "activeProfileIndex", json_integer(0)) != 0 ||
        ss_member(s, false, "exporter", json_sprintf("pytrace %s", version)) != 0 ||
        fputs(",\"profiles\":[", s->out) == EOF || ss_profiles(s) != 0 ||
        fputs("],\"shared\":{\"frames\":", s->out) == EOF ||
        json_dumpf(s->frames, s->out, JSON_COMPACT) != 0 || fputs("}}\n", s->out) == EOF)
        return -1;
    return 0;
}

enum pt_status export_speedscope(const struct export_view *v, FILE *out, struct pt_err *err)
{
    const struct trace *t = v->t;
    struct ss s = {.v = v, .out = out};
    int rc = -1;
    s.frames = json_array();
    s.frame_of = malloc((t->n_functions + 1) * sizeof *s.frame_of);
    /* At most every call of one thread is open at once. */
    s.stack = malloc((t->n_spans + 1) * sizeof *s.stack);
    if (s.frames && s.frame_of && s.stack) {
        for (size_t i = 0; i <= t->n_functions; i++)
            s.frame_of[i] = -1;
        ss_window(&s);
        rc = ss_document(&s);
    }
    json_decref(s.frames);
    free(s.frame_of);
    free(s.stack);
    if (rc == 0)
        return PT_OK;
    return pt_fail(err, PT_EFAIL, ferror(out) ? "cannot write the speedscope file"
                                              : "out of memory writing the speedscope file");
}
