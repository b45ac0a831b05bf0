/*
 * view_data.c — a loaded trace aggregated for the HTML viewer (see view_data.h for the document).
 * Samples fold into a function tree with per-(thread, node, flags) counts, pruned to a node
 * budget; spans keep the longest within a budget; counters and per-thread activity are bucketed
 * over time. Everything is O(n log n) in the trace's size.
 */
#include "output/view_data.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "output/export.h"

/* Per thread, its samples' times in order and how many of the first k were idle. */
struct vthreads {
    size_t *off;                  /* thread i's samples are [off[i], off[i+1]) */
    uint64_t *t_ns;
    uint32_t *idle_before;        /* idle_before[k] = idle samples in [off[i], k) of k's thread */
};

struct vctx {
    const struct trace *t;
    struct view_opts o;
    uint64_t t0, t_end;
};

static uint64_t rel_us(const struct vctx *c, uint64_t t_ns)
{
    return t_ns > c->t0 ? (t_ns - c->t0) / 1000 : 0;
}

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* A JSON string of s; bytes of a string that is not valid UTF-8 (a Python 2 str, a damaged file)
 * become '?', so a table never loses an entry and its ids still line up. */
static json_t *view_jstr(const char *s)
{
    json_t *j = json_string(s ? s : "");
    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return json_string("?");
    for (unsigned char *p = (unsigned char *)copy; *p; p++)
        if (*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static double finite_or_0(double v)
{
    return isfinite(v) ? v : 0.0;
}

/* ---- classification ------------------------------------------------------------------------ */

/* Does `s` contain "/lib/pythonX.Y/" (or lib64) for some digits X and Y? */
static bool under_lib_python(const char *s)
{
    for (const char *p = strstr(s, "/lib"); p; p = strstr(p + 1, "/lib")) {
        const char *q = p + 4;
        if (!strncmp(q, "64", 2))
            q += 2;
        if (strncmp(q, "/python", 7) != 0)
            continue;
        q += 7;
        if (*q < '0' || *q > '9')
            continue;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q++ != '.' || *q < '0' || *q > '9')
            continue;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q == '/')
            return true;
    }
    return false;
}

enum view_kind view_classify(const char *file)
{
    if (!file)
        return VIEW_KIND_USER;
    if (strstr(file, "/site-packages/") || strstr(file, "/dist-packages/"))
        return VIEW_KIND_SITE;
    if (!strncmp(file, "<frozen ", 8) || under_lib_python(file))
        return VIEW_KIND_STDLIB;
    return VIEW_KIND_USER;
}

/* ---- per-thread sample index --------------------------------------------------------------- */

static int u64_asc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted sample times per thread, with idle samples' low bit set while sorting (a nanosecond
 * does not matter here), then the idle prefix counts. */
static int vthreads_build(const struct trace *t, struct vthreads *vt)
{
    size_t nt = t->n_threads;
    vt->off = calloc(nt + 1, sizeof *vt->off);
    vt->t_ns = malloc((t->n_samples + 1) * sizeof *vt->t_ns);
    vt->idle_before = malloc((t->n_samples + 1) * sizeof *vt->idle_before);
    size_t *fill = calloc(nt + 1, sizeof *fill);
    if (!vt->off || !vt->t_ns || !vt->idle_before || !fill) {
        free(fill);
        return -1;
    }
    for (size_t i = 0; i < t->n_samples; i++)
        if (t->samples[i].thread && t->samples[i].thread < nt)
            vt->off[t->samples[i].thread + 1]++;
    for (size_t i = 0; i < nt; i++)
        vt->off[i + 1] += vt->off[i];
    memcpy(fill, vt->off, (nt + 1) * sizeof *fill);
    for (size_t i = 0; i < t->n_samples; i++) {
        const struct trace_sample *s = &t->samples[i];
        if (s->thread && s->thread < nt)
            vt->t_ns[fill[s->thread]++] = (s->t_ns & ~1ULL) | !!(s->flags & TRACE_F_IDLE);
    }
    free(fill);
    for (size_t th = 1; th < nt; th++) {
        uint64_t *a = vt->t_ns + vt->off[th];
        size_t n = vt->off[th + 1] - vt->off[th];
        uint32_t idle = 0;
        size_t k = 1;
        while (k < n && a[k - 1] <= a[k])   /* a thread's samples are in order unless damaged */
            k++;
        if (k < n)
            qsort(a, n, sizeof *a, u64_asc);
        for (k = 0; k < n; k++) {
            vt->idle_before[vt->off[th] + k] = idle;
            idle += (uint32_t)(a[k] & 1);
        }
    }
    return 0;
}

static void vthreads_free(struct vthreads *vt)
{
    free(vt->off);
    free(vt->t_ns);
    free(vt->idle_before);
}

/* First index in [lo, hi) whose time is >= t (or > t when `after`). */
static size_t vthreads_bound(const struct vthreads *vt, size_t lo, size_t hi, uint64_t t,
                             bool after)
{
    t &= ~1ULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t x = vt->t_ns[mid] & ~1ULL;
        if (x < t || (after && x == t))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Share (0-100) of thread th's samples in [b, e] that were idle. */
static unsigned idle_pct(const struct vthreads *vt, uint32_t th, uint64_t b, uint64_t e)
{
    size_t lo = vthreads_bound(vt, vt->off[th], vt->off[th + 1], b, false);
    size_t hi = vthreads_bound(vt, lo, vt->off[th + 1], e, true);
    if (hi <= lo)
        return 0;
    /* idle_before[] holds counts before each sample; past the thread's last one, add it */
    uint32_t end_idle = hi < vt->off[th + 1]
                            ? vt->idle_before[hi]
                            : vt->idle_before[hi - 1] + (uint32_t)(vt->t_ns[hi - 1] & 1);
    return (unsigned)((uint64_t)(end_idle - vt->idle_before[lo]) * 100 / (hi - lo));
}

/* ---- spans --------------------------------------------------------------------------------- */

struct vspan {
    uint64_t b, e;                /* midpoint estimates */
    uint64_t seen_b, seen_e;      /* first and last sighting */
    uint32_t thread, depth, function;
    const struct tl_span *span;   /* for its locals (--locals) */
};

static uint64_t vspan_dur(const struct vspan *s)
{
    return s->e - s->b;
}

/* Longest first; among equals the outer call first, so a kept call keeps its caller. */
static int vspan_by_length(const void *a, const void *b)
{
    const struct vspan *x = a, *y = b;
    uint64_t dx = vspan_dur(x), dy = vspan_dur(y);
    if (dx != dy)
        return dx < dy ? 1 : -1;
    return x->depth < y->depth ? -1 : x->depth > y->depth;
}

static int vspan_by_thread_time(const void *a, const void *b)
{
    const struct vspan *x = a, *y = b;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    return x->depth < y->depth ? -1 : x->depth > y->depth;
}

/* A span's estimated bounds; a damaged file's out-of-order bounds fall back to the sightings. */
static bool vspan_from(const struct trace *t, const struct tl_span *s, struct vspan *out)
{
    if (!s->thread || s->thread >= t->n_threads || s->function >= t->n_functions)
        return false;
    bool lo_ok = s->open_begin || s->begin_lo <= s->begin;
    bool hi_ok = s->open_end || s->end_hi >= s->end;
    out->b = lo_ok ? export_span_begin(s) : s->begin;
    out->e = hi_ok ? export_span_end(s) : s->end;
    if (out->e < out->b)
        out->e = out->b;
    out->seen_b = s->begin;
    out->seen_e = s->end < s->begin ? s->begin : s->end;
    out->thread = s->thread;
    out->depth = s->depth;
    out->function = s->function;
    out->span = s;
    return true;
}

/* "name = value" lines of a span's locals (arguments first as recorded), or NULL when none. */
static json_t *vspan_locals(const struct trace *t, const struct tl_span *s)
{
    if (!s->n_locals || !s->locals)
        return NULL;
    size_t cap = 1, len = 0;
    for (uint32_t k = 0; k < s->n_locals; k++)
        cap += strlen(trace_str(t, s->locals[k].name)) + strlen(trace_str(t, s->locals[k].value)) + 4;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    for (uint32_t k = 0; k < s->n_locals; k++)
        len += (size_t)snprintf(text + len, cap - len, "%s%s = %s", k ? "\n" : "",
                                trace_str(t, s->locals[k].name), trace_str(t, s->locals[k].value));
    json_t *j = json_string(text);
    free(text);
    return j;
}

/* Adds "spans", "span_total", "span_kept", "span_min_us". */
static int add_spans(const struct vctx *c, const struct vthreads *vt, json_t *doc)
{
    const struct trace *t = c->t;
    struct vspan *v = malloc((t->n_spans ? t->n_spans : 1) * sizeof *v);
    if (!v)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < t->n_spans; i++)
        n += vspan_from(t, &t->spans[i], &v[n]);
    double min_us = 0;
    if (n > c->o.span_budget) {
        qsort(v, n, sizeof *v, vspan_by_length);
        n = c->o.span_budget;
        min_us = n ? (double)vspan_dur(&v[n - 1]) / 1000.0 : 0;
    }
    qsort(v, n, sizeof *v, vspan_by_thread_time);
    json_t *spans = json_array();
    for (size_t i = 0; i < n;) {
        uint32_t th = v[i].thread, max_depth = 0;
        uint64_t prev = 0;
        json_t *data = json_array(), *locals = json_object();
        for (size_t first = i; i < n && v[i].thread == th; i++) {
            json_t *lv = vspan_locals(t, v[i].span);
            if (lv) {   /* keyed by the span's index within its thread */
                char key[24];
                snprintf(key, sizeof key, "%zu", i - first);
                json_object_set_new(locals, key, lv);
            }
            uint64_t b = rel_us(c, v[i].b);
            max_depth = v[i].depth > max_depth ? v[i].depth : max_depth;
            json_array_append_new(data, jint(b - prev));
            json_array_append_new(data, jint(rel_us(c, v[i].e) - b));
            prev = b;
            json_array_append_new(data, jint(v[i].depth));
            json_array_append_new(data, jint(v[i].function));
            json_array_append_new(data, jint(idle_pct(vt, th, v[i].seen_b, v[i].seen_e)));
        }
        json_t *js = json_pack("{s:I, s:I, s:o}", "thread", (json_int_t)th, "max_depth",
                               (json_int_t)max_depth, "data", data);
        if (json_object_size(locals))
            json_object_set_new(js, "locals", locals);
        else
            json_decref(locals);
        json_array_append_new(spans, js);
    }
    free(v);
    json_object_set_new(doc, "spans", spans);
    json_object_set_new(doc, "span_total", jint(t->n_spans));
    json_object_set_new(doc, "span_kept", jint(n));
    json_object_set_new(doc, "span_min_us", json_real(min_us));
    return 0;
}

/* ---- activity and counters ----------------------------------------------------------------- */

static void add_activity(const struct vctx *c, const struct vthreads *vt, json_t *doc)
{
    size_t active = 0;
    for (uint32_t th = 1; th < c->t->n_threads; th++)
        active += vt->off[th] != vt->off[th + 1];
    /* thousands of threads get coarser strips, so the page stays small */
    size_t nb = c->o.activity_buckets;
    if (active && nb > VIEW_ACTIVITY_CELLS / active)
        nb = VIEW_ACTIVITY_CELLS / active > 20 ? VIEW_ACTIVITY_CELLS / active : 20;
    uint64_t dur = rel_us(c, c->t_end) + 1;
    uint64_t width = (dur + nb - 1) / nb;
    json_t *threads = json_array();
    for (uint32_t th = 1; th < c->t->n_threads; th++) {
        if (vt->off[th] == vt->off[th + 1])
            continue;
        uint32_t *run = calloc(2 * nb, sizeof *run);
        if (!run)
            continue;
        uint32_t *idle = run + nb;
        for (size_t k = vt->off[th]; k < vt->off[th + 1]; k++) {
            uint64_t b = rel_us(c, vt->t_ns[k]) / width;
            (vt->t_ns[k] & 1 ? idle : run)[b < nb ? b : nb - 1]++;
        }
        json_t *jr = json_array(), *ji = json_array();
        for (size_t b = 0; b < nb; b++) {
            json_array_append_new(jr, jint(run[b]));
            json_array_append_new(ji, jint(idle[b]));
        }
        free(run);
        json_array_append_new(threads, json_pack("{s:I, s:o, s:o}", "thread", (json_int_t)th,
                                                 "running", jr, "idle", ji));
    }
    json_object_set_new(doc, "activity", json_pack("{s:I, s:I, s:o}", "buckets", (json_int_t)nb,
                                                   "bucket_us", (json_int_t)width,
                                                   "threads", threads));
}

static int counter_cmp(const void *a, const void *b)
{
    const struct trace_counter *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->owner != y->owner)
        return x->owner < y->owner ? -1 : 1;
    return x->t_ns < y->t_ns ? -1 : x->t_ns > y->t_ns;
}

/* Time bucket (0 to cap-1) of a point of a series spanning [t_lo, t_lo + span). */
static size_t counter_bucket(uint64_t t_ns, uint64_t t_lo, uint64_t span, size_t cap)
{
    return (size_t)((double)(t_ns - t_lo) / (double)span * (double)cap);
}

/* One series k[0..n), sorted by time, cut to at most `cap` points over equal time buckets: each
 * bucket's last value (cumulative CPU time) or largest (RSS). */
static json_t *counter_series(const struct vctx *c, const struct trace_counter *k, size_t n,
                              size_t cap)
{
    bool use_max = k[0].kind == TRACE_C_RSS_BYTES;
    uint64_t t_lo = k[0].t_ns, span = k[n - 1].t_ns - t_lo + 1;
    json_t *pts = json_array();
    for (size_t i = 0; i < n;) {
        size_t best = i, bucket = counter_bucket(k[i].t_ns, t_lo, span, cap);
        for (i++; n > cap && i < n && counter_bucket(k[i].t_ns, t_lo, span, cap) == bucket; i++)
            if (!use_max || k[i].value >= k[best].value)
                best = i;
        json_array_append_new(pts, jint(rel_us(c, k[best].t_ns)));
        json_array_append_new(pts, json_integer(k[best].value));
    }
    return json_pack("{s:I, s:I, s:o}", "kind", (json_int_t)k[0].kind,
                     "owner", (json_int_t)k[0].owner, "points", pts);
}

static int add_counters(const struct vctx *c, json_t *doc)
{
    const struct trace *t = c->t;
    size_t n = t->n_counters;
    struct trace_counter *k = malloc((n ? n : 1) * sizeof *k);
    if (!k)
        return -1;
    if (n) {
        memcpy(k, t->counters, n * sizeof *k);
        qsort(k, n, sizeof *k, counter_cmp);
    }
    size_t n_series = 0;
    for (size_t i = 0; i < n; i++)
        n_series += i == 0 || k[i].kind != k[i - 1].kind || k[i].owner != k[i - 1].owner;
    /* many series (a CPU pair per thread) get fewer points each, so the page stays small */
    size_t cap = c->o.counter_points;
    if (n_series && cap > VIEW_COUNTER_TOTAL / n_series)
        cap = VIEW_COUNTER_TOTAL / n_series > 20 ? VIEW_COUNTER_TOTAL / n_series : 20;
    json_t *series = json_array();
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && k[j].kind == k[i].kind && k[j].owner == k[i].owner)
            j++;
        json_array_append_new(series, counter_series(c, k + i, j - i, cap));
        i = j;
    }
    free(k);
    json_object_set_new(doc, "counters", series);
    return 0;
}

/* ---- tables and metadata ------------------------------------------------------------------- */

static json_t *strings_json(const struct trace *t)
{
    json_t *a = json_array();
    for (size_t i = 0; i < t->n_strings; i++)
        json_array_append_new(a, view_jstr(trace_str(t, (uint32_t)i)));
    return a;
}

/* [[name, qualname, file, first_line, kind]]; plus the pruned-frames entry when the tree needs
 * it (always present: the page looks it up only when the tree uses it). */
static json_t *functions_json(const struct trace *t)
{
    json_t *a = json_array();
    for (size_t i = 0; i < t->n_functions; i++) {
        const struct trace_function *f = &t->functions[i];
        const char *file = trace_str(t, f->file);
        json_array_append_new(a, json_pack("[o, o, o, i, i]", view_jstr(trace_str(t, f->name)),
                                           view_jstr(trace_str(t, f->qualname)), view_jstr(file),
                                           (int)f->first_line, (int)view_classify(file)));
    }
    json_array_append_new(a, json_pack("[s, s, s, i, i]", "[small frames]",
                                       "[frames pruned to fit the viewer's budget]", "", 0,
                                       (int)VIEW_KIND_USER));
    return a;
}

static json_t *threads_json(const struct trace *t, const struct vthreads *vt)
{
    json_t *a = json_array();
    for (uint32_t i = 1; i < t->n_threads; i++) {
        const struct trace_thread *th = &t->threads[i];
        uint64_t n = vt->off[i + 1] - vt->off[i];
        json_array_append_new(a, json_pack("{s:I, s:o, s:I, s:I, s:I}", "id", (json_int_t)i,
                                           "name", view_jstr(trace_str(t, th->name)),
                                           "tid", (json_int_t)th->tid,
                                           "process", (json_int_t)th->process,
                                           "samples", (json_int_t)n));
    }
    return a;
}

static json_t *processes_json(const struct trace *t)
{
    json_t *a = json_array();
    for (uint32_t i = 1; i < t->n_processes; i++) {
        const struct trace_process *p = &t->processes[i];
        json_array_append_new(a, json_pack("{s:I, s:I, s:o, s:o}", "id", (json_int_t)i,
                                           "pid", (json_int_t)p->pid,
                                           "cmdline", view_jstr(trace_str(t, p->cmdline)),
                                           "python_version",
                                           view_jstr(trace_str(t, p->python_version))));
    }
    return a;
}

static void iso_time(uint64_t wall_ns, char *out, size_t cap)
{
    time_t sec = (time_t)(wall_ns / 1000000000u);
    struct tm tm;
    char base[32];
    if (!gmtime_r(&sec, &tm) || !strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm)) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, "%s.%03uZ", base, (unsigned)(wall_ns / 1000000u % 1000u));
}

static json_t *meta_json(const struct vctx *c, const struct vthreads *vt)
{
    const struct trace *t = c->t;
    char when[64];
    iso_time(t->start_wall_ns, when, sizeof when);
    uint64_t errors = 0, busiest = 0;
    for (size_t i = 0; i < t->n_samples; i++)
        errors += (t->samples[i].flags & TRACE_F_BAD) != 0;
    for (size_t i = 1; i < t->n_threads; i++)
        busiest = vt->off[i + 1] - vt->off[i] > busiest ? vt->off[i + 1] - vt->off[i] : busiest;
    uint64_t dur_ns = c->t_end > t->start_mono_ns ? c->t_end - t->start_mono_ns : 0;
    double duration_s = (double)dur_ns / 1e9;
    /* without a trailer, the busiest thread saw one sample per sampling round */
    double achieved = t->has_trailer ? t->summary.achieved_hz
                      : duration_s > 0 ? (double)busiest / duration_s : 0;
    double rate = finite_or_0(t->rate_hz) > 0 ? t->rate_hz : 0;
    double hz = finite_or_0(achieved) > 0 ? achieved : rate;
    json_t *tags = json_object();
    for (size_t i = 0; i < t->n_tags; i++)
        if (t->tag_keys[i])
            json_object_set_new(tags, t->tag_keys[i], view_jstr(t->tag_values[i]));
    json_t *m = json_pack(
        "{s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:s, s:f, s:f, s:f, s:b, s:b, s:b, s:I, s:I,"
        " s:b, s:I, s:o, s:o, s:f}",
        "name", view_jstr(t->name), "pid", (json_int_t)t->pid,
        "python_version", view_jstr(t->python_version),
        "python_binary", view_jstr(t->python_binary), "cmdline", view_jstr(t->cmdline),
        "host", view_jstr(t->host), "pytrace_version", view_jstr(t->pytrace_version),
        "start", when, "duration_s", duration_s, "rate_hz", rate,
        "achieved_hz", finite_or_0(achieved), "achieved_estimated", !t->has_trailer,
        "blocking", t->blocking, "native", t->native, "samples", (json_int_t)t->n_samples,
        "errors", (json_int_t)errors, "truncated", t->truncated,
        "valid_bytes", (json_int_t)t->valid_bytes, "tags", tags,
        "filters", view_jstr(t->filters), "period_us", hz > 0 ? 1e6 / hz : 1000.0);
    if (!m)
        return NULL;
    json_object_set_new(m, "missed", t->has_trailer ? jint(t->summary.missed) : json_null());
    json_object_set_new(m, "overruns", t->has_trailer ? jint(t->summary.overruns) : json_null());
    return m;
}

/* Time 0 and the last moment anything happened. */
static void time_bounds(const struct trace *t, uint64_t *t0, uint64_t *t_end)
{
    uint64_t lo = t->start_mono_ns, hi = t->start_mono_ns;
    for (size_t i = 0; i < t->n_samples; i++) {
        lo = t->samples[i].t_ns < lo ? t->samples[i].t_ns : lo;
        hi = t->samples[i].t_ns > hi ? t->samples[i].t_ns : hi;
    }
    for (size_t i = 0; i < t->n_spans; i++) {
        uint64_t e = export_span_end(&t->spans[i]);
        hi = e > hi && e - hi < (1ULL << 50) ? e : hi;   /* ignore a damaged span's wild end */
    }
    for (size_t i = 0; i < t->n_counters; i++)
        hi = t->counters[i].t_ns > hi ? t->counters[i].t_ns : hi;
    if (t->has_trailer && t->summary.end_mono_ns > hi)
        hi = t->summary.end_mono_ns;
    *t0 = lo;
    *t_end = hi;
}

enum pt_status view_data_build(const struct trace *t, const struct view_opts *o, json_t **out,
                               struct pt_err *err)
{
    struct vctx c = {.t = t};
    if (o)
        c.o = *o;
    c.o.span_budget = c.o.span_budget ? c.o.span_budget : VIEW_SPAN_BUDGET;
    c.o.node_budget = c.o.node_budget > 2 ? c.o.node_budget : VIEW_NODE_BUDGET;
    c.o.counter_points = c.o.counter_points ? c.o.counter_points : VIEW_COUNTER_POINTS;
    c.o.activity_buckets = c.o.activity_buckets ? c.o.activity_buckets : VIEW_ACTIVITY_BUCKETS;
    time_bounds(t, &c.t0, &c.t_end);

    struct vthreads vt = {0};
    json_t *doc = json_object();
    *out = NULL;
    if (!doc || vthreads_build(t, &vt) != 0)
        goto oom;
    json_object_set_new(doc, "version", json_integer(1));
    json_object_set_new(doc, "meta", meta_json(&c, &vt));
    json_object_set_new(doc, "t0_ns", jint(c.t0));
    json_object_set_new(doc, "duration_us", jint(rel_us(&c, c.t_end)));
    json_object_set_new(doc, "strings", strings_json(t));
    json_object_set_new(doc, "functions", functions_json(t));
    json_object_set_new(doc, "threads", threads_json(t, &vt));
    json_object_set_new(doc, "processes", processes_json(t));
    if (view_tree_add(t, c.o.node_budget, doc) != 0 || add_spans(&c, &vt, doc) != 0 ||
        add_counters(&c, doc) != 0)
        goto oom;
    add_activity(&c, &vt, doc);
    vthreads_free(&vt);
    *out = doc;
    return PT_OK;
oom:
    vthreads_free(&vt);
    json_decref(doc);
    return pt_fail(err, PT_EFAIL, "out of memory aggregating the trace for the viewer");
}
