/*
 * test_export_pp.c — output/export_pprof.c and export_speedscope.c on a small trace written with
 * trace_writer_* and loaded back: the pprof profile gunzips and unpacks, its counts add up to the
 * selected samples, ids start at 1 and resolve, labels and the string table are right; the
 * speedscope document has one evented profile per thread whose events nest, never go back in
 * time, and are clamped inside their callers.
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
#include <zlib.h>

#include "output/export.h"
#include "profile.pb-c.h"

#define MS 1000000ULL
#define T0 7000000000000ULL            /* an arbitrary CLOCK_MONOTONIC start */
#define WALL0 1700000000000000000ULL   /* its CLOCK_REALTIME */

typedef Perftools__Profiles__Profile pprof_t;

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/pytrace-test-export-pp-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- The trace ------------------------------------------------------------------------------ */

/* Ids of what small_trace() wrote. */
struct ids {
    uint32_t main, work, leaf, module;   /* functions */
    uint32_t s_main, s_work, s_leaf, s_side;   /* stack nodes */
    uint32_t th_main, th_worker;
};

/* What small_trace() records, so the checks need no arithmetic of their own. */
enum {
    N_SAMPLES = 15,      /* all of them */
    N_IDLE = 5,          /* with TRACE_F_IDLE */
    N_MAIN_LEAF_GIL = 2, /* MainThread, main > work > leaf, holding the GIL */
};

static void small_samples(struct trace_writer *w, const struct ids *d)
{
    static const struct { int thread; int stack; uint8_t flags; } s[N_SAMPLES] = {
        {0, 1, TRACE_F_GIL}, {0, 1, TRACE_F_GIL}, {0, 1, TRACE_F_GIL},
        {0, 2, TRACE_F_GIL}, {0, 2, TRACE_F_GIL}, {0, 2, TRACE_F_IDLE},
        {0, 3, TRACE_F_GIL}, {0, 0, 0}, {0, 0, 0},
        {1, 2, TRACE_F_IDLE}, {1, 2, TRACE_F_IDLE}, {1, 2, TRACE_F_IDLE}, {1, 2, TRACE_F_IDLE},
        {1, 4, TRACE_F_BAD}, {1, 5, 0},
    };
    const uint32_t stacks[] = {d->s_main, d->s_work, d->s_leaf, d->s_side, d->s_leaf, 0};
    uint64_t tick[2] = {T0, T0};
    for (int i = 0; i < N_SAMPLES; i++) {
        int th = s[i].thread;
        trace_sample(w, th ? d->th_worker : d->th_main, tick[th], stacks[s[i].stack], s[i].flags);
        tick[th] += MS;
    }
}

/*
 * MainThread: main [0, 9.5] > work [0.5, 4.5] > leaf [1.5, 7] — leaf's estimate overruns its
 * caller's — then a sibling leaf at depth 1 from 4 ms, overlapping work's end. worker: one call
 * still open at the end. Times in ms after T0, midpoints of the bounds below.
 */
static void small_spans(struct trace_writer *w, const struct ids *d)
{
    const struct tl_span spans[] = {
        {.thread = d->th_main, .function = d->leaf, .depth = 2, .call_line = 12, .first_line = 21,
         .begin_lo = T0 + 1 * MS, .begin = T0 + 2 * MS, .end = T0 + 6 * MS, .end_hi = T0 + 8 * MS},
        {.thread = d->th_main, .function = d->work, .depth = 1, .call_line = 5, .first_line = 11,
         .begin_lo = T0, .begin = T0 + 1 * MS, .end = T0 + 4 * MS, .end_hi = T0 + 5 * MS},
        {.thread = d->th_main, .function = d->leaf, .depth = 1, .call_line = 6, .first_line = 22,
         .begin_lo = T0 + 3 * MS, .begin = T0 + 5 * MS, .end = T0 + 6 * MS, .end_hi = T0 + 7 * MS},
        {.thread = d->th_main, .function = d->main, .depth = 0, .call_line = -1, .first_line = 5,
         .begin = T0, .end = T0 + 9 * MS, .end_hi = T0 + 10 * MS, .open_begin = true},
        {.thread = d->th_worker, .function = d->module, .depth = 0, .call_line = -1,
         .first_line = 1, .begin = T0, .end = T0 + 5 * MS, .open_begin = true, .open_end = true},
    };
    for (size_t i = 0; i < sizeof spans / sizeof *spans; i++)
        trace_span(w, &spans[i]);
}

static struct trace *small_trace(struct ids *d)
{
    static int serial;
    char path[128];
    snprintf(path, sizeof path, "%s/small-%d.pytrace", tmpdir, serial++);
    struct trace_meta meta = {
        .pid = 100, .name = "app", .python_version = "3.12.1", .python_binary = "/usr/bin/python3",
        .cmdline = "python3 app.py", .pytrace_version = "0.1.0", .start_wall_ns = WALL0,
        .start_mono_ns = T0, .rate_hz = 1000,
    };
    struct trace_writer *w = NULL;
    struct pt_err err = {0};
    if (trace_writer_open(&w, path, false, &meta, &err) != PT_OK)
        fail_msg("trace_writer_open: %s", err.msg);
    uint32_t proc = trace_process(w, 100, 100, "python3 app.py", "3.12.1", 0);
    d->th_main = trace_thread(w, proc, 100, 1, "MainThread");
    d->th_worker = trace_thread(w, proc, 101, 2, "worker");
    d->main = trace_function(w, "main", "main", "app.py", 1);
    d->work = trace_function(w, "work", "Worker.work", "app.py", 10);
    d->leaf = trace_function(w, "leaf", "leaf", "lib.py", 20);
    d->module = trace_function(w, "<module>", "<module>", "app.py", 1);
    d->s_main = trace_stack(w, 0, d->main, 5);
    d->s_work = trace_stack(w, d->s_main, d->work, 12);
    d->s_leaf = trace_stack(w, d->s_work, d->leaf, 21);
    d->s_side = trace_stack(w, d->s_main, d->leaf, 22);
    small_samples(w, d);
    small_spans(w, d);
    struct trace_summary sum = {.end_mono_ns = T0 + 10 * MS, .samples = N_SAMPLES,
                                .exit_status = INT64_MIN};
    if (trace_writer_close(w, &sum, &err) != PT_OK)
        fail_msg("trace_writer_close: %s", err.msg);
    struct trace *t = NULL;
    if (trace_load(path, &t, &err) != PT_OK)
        fail_msg("trace_load: %s", err.msg);
    unlink(path);
    assert_int_equal(t->n_samples, N_SAMPLES);
    return t;
}

/* Runs exporter fn on t under opts into memory. */
static char *export_mem(export_fn fn, const struct trace *t, const struct export_opts *o,
                        size_t *len, uint64_t *kept)
{
    struct export_view v;
    struct pt_err err = {0};
    assert_int_equal(export_view_init(&v, t, o, &err), PT_OK);
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    if (fn(&v, f, &err) != PT_OK)
        fail_msg("export: %s", err.msg);
    assert_int_equal(fclose(f), 0);
    *kept = v.samples_kept;
    export_view_free(&v);
    return buf;
}

static const struct export_opts all_opts = {.to_s = -1};

/* ---- pprof ---------------------------------------------------------------------------------- */

static uint8_t *gunzip(const char *in, size_t len, size_t *out_len)
{
    assert_true(len > 2);
    assert_int_equal((uint8_t)in[0], 0x1f);   /* a gzip member, not a bare zlib stream */
    assert_int_equal((uint8_t)in[1], 0x8b);
    z_stream zs = {0};
    assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    size_t cap = 1 << 16, n = 0;
    uint8_t *out = malloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    int rc;
    do {
        if (n == cap)
            out = realloc(out, cap *= 2);
        zs.next_out = out + n;
        zs.avail_out = (uInt)(cap - n);
        rc = inflate(&zs, Z_NO_FLUSH);
        assert_true(rc == Z_OK || rc == Z_STREAM_END);
        n = cap - zs.avail_out;
    } while (rc != Z_STREAM_END);
    assert_int_equal(zs.avail_in, 0);   /* nothing after the member */
    inflateEnd(&zs);
    *out_len = n;
    return out;
}

static pprof_t *pprof_of(const struct trace *t, const struct export_opts *o, uint64_t *kept)
{
    size_t len, raw_len;
    char *gz = export_mem(export_pprof, t, o, &len, kept);
    uint8_t *raw = gunzip(gz, len, &raw_len);
    pprof_t *p = perftools__profiles__profile__unpack(NULL, raw_len, raw);
    assert_non_null(p);
    free(gz);
    free(raw);
    return p;
}

static const char *pstr(const pprof_t *p, int64_t i)
{
    assert_true(i >= 0 && (size_t)i < p->n_string_table);
    return p->string_table[i];
}

static const Perftools__Profiles__Location *ploc(const pprof_t *p, uint64_t id)
{
    assert_true(id >= 1 && id <= p->n_location);
    assert_int_equal(p->location[id - 1]->id, id);   /* ids are 1..n in order */
    return p->location[id - 1];
}

static const Perftools__Profiles__Function *pfn(const pprof_t *p, uint64_t id)
{
    assert_true(id >= 1 && id <= p->n_function);
    assert_int_equal(p->function[id - 1]->id, id);
    return p->function[id - 1];
}

/* The leaf function's name and line of sample s. */
static const char *leaf_name(const pprof_t *p, const Perftools__Profiles__Sample *s, int64_t *line)
{
    assert_true(s->n_location_id >= 1);
    const Perftools__Profiles__Location *l = ploc(p, s->location_id[0]);
    assert_int_equal(l->n_line, 1);
    *line = l->line[0]->line;
    return pstr(p, pfn(p, l->line[0]->function_id)->name);
}

/* Label `key` of s as a string ("" when absent), or its number in *num. */
static const char *label(const pprof_t *p, const Perftools__Profiles__Sample *s, const char *key,
                         int64_t *num)
{
    for (size_t i = 0; i < s->n_label; i++) {
        if (strcmp(pstr(p, s->label[i]->key), key) != 0)
            continue;
        if (num)
            *num = s->label[i]->num;
        return pstr(p, s->label[i]->str);
    }
    return "";
}

static void test_pprof_header_types_and_strings(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    uint64_t kept;
    pprof_t *p = pprof_of(t, &all_opts, &kept);
    assert_true(p->n_string_table > 1);
    assert_string_equal(p->string_table[0], "");
    static const char *types[3][2] = {{"samples", "count"}, {"wall", "nanoseconds"},
                                      {"cpu", "nanoseconds"}};
    assert_int_equal(p->n_sample_type, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(pstr(p, p->sample_type[i]->type), types[i][0]);
        assert_string_equal(pstr(p, p->sample_type[i]->unit), types[i][1]);
    }
    assert_non_null(p->period_type);
    assert_string_equal(pstr(p, p->period_type->type), "wall");
    assert_string_equal(pstr(p, p->period_type->unit), "nanoseconds");
    assert_int_equal(p->period, 1000000);                       /* 1e9 / 1000 Hz */
    assert_string_equal(pstr(p, p->default_sample_type), "wall");
    assert_int_equal(p->time_nanos, WALL0);
    assert_int_equal(p->duration_nanos, 10 * MS);
    assert_int_equal(p->n_mapping, 1);
    assert_string_equal(pstr(p, p->mapping[0]->filename), "/usr/bin/python3");
    assert_true(p->mapping[0]->has_functions);
    perftools__profiles__profile__free_unpacked(p, NULL);
    trace_free(t);
}

static void test_pprof_counts_add_up_to_selected_samples(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    const struct export_opts no_idle = {.to_s = -1, .no_idle = true};
    const char *threads[] = {"worker"};
    const struct export_opts worker = {.to_s = -1, .threads = threads, .n_threads = 1};
    const struct export_opts *opts[] = {&all_opts, &no_idle, &worker};
    const uint64_t expect[] = {N_SAMPLES, N_SAMPLES - N_IDLE, 6};
    for (int k = 0; k < 3; k++) {
        uint64_t kept;
        pprof_t *p = pprof_of(t, opts[k], &kept);
        assert_int_equal(kept, expect[k]);
        int64_t sum[3] = {0}, idle = 0;
        for (size_t i = 0; i < p->n_sample; i++) {
            const Perftools__Profiles__Sample *s = p->sample[i];
            assert_int_equal(s->n_value, 3);
            for (int v = 0; v < 3; v++)
                sum[v] += s->value[v];
            bool is_idle = !strcmp(label(p, s, "idle", NULL), "true");
            idle += is_idle ? s->value[0] : 0;
            assert_int_equal(s->value[1], s->value[0] * 1000000);
            assert_int_equal(s->value[2], is_idle ? 0 : s->value[0] * 1000000);
        }
        assert_int_equal(sum[0], kept);
        assert_int_equal(sum[1], (int64_t)kept * 1000000);
        assert_int_equal(sum[2], ((int64_t)kept - idle) * 1000000);
        assert_int_equal(idle, k == 0 ? N_IDLE : k == 1 ? 0 : 4);
        perftools__profiles__profile__free_unpacked(p, NULL);
    }
    trace_free(t);
}

static void test_pprof_ids_start_at_one_and_resolve(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    uint64_t kept;
    pprof_t *p = pprof_of(t, &all_opts, &kept);
    /* One location per (function, line): main:5, work:12, leaf:21, leaf:22, torn, no frame. */
    assert_int_equal(p->n_location, 6);
    for (size_t i = 0; i < p->n_location; i++) {
        const Perftools__Profiles__Location *l = ploc(p, i + 1);
        assert_int_equal(l->mapping_id, 1);
        assert_int_equal(l->n_line, 1);
        pfn(p, l->line[0]->function_id);
        for (size_t j = 0; j < i; j++)
            assert_false(p->location[j]->line[0]->function_id == l->line[0]->function_id &&
                         p->location[j]->line[0]->line == l->line[0]->line);
    }
    for (size_t i = 0; i < p->n_sample; i++)
        for (size_t k = 0; k < p->sample[i]->n_location_id; k++)
            ploc(p, p->sample[i]->location_id[k]);
    /* main, Worker.work, leaf, <torn sample>, <no Python frame>: <module> has no sample. */
    assert_int_equal(p->n_function, 5);
    bool seen_work = false;
    for (size_t i = 0; i < p->n_function; i++) {
        const Perftools__Profiles__Function *f = pfn(p, i + 1);
        const char *name = pstr(p, f->name);
        if (!strcmp(name, "Worker.work")) {
            seen_work = true;
            assert_string_equal(pstr(p, f->system_name), "work");
            assert_string_equal(pstr(p, f->filename), "app.py");
            assert_int_equal(f->start_line, 10);
        } else if (!strcmp(name, "main") || !strcmp(name, "leaf")) {
            /* Equal to the name: left out, or pprof would "demangle" it. */
            assert_int_equal(f->system_name, 0);
        } else {
            assert_true(!strcmp(name, "<torn sample>") || !strcmp(name, "<no Python frame>"));
        }
    }
    assert_true(seen_work);
    perftools__profiles__profile__free_unpacked(p, NULL);
    trace_free(t);
}

static void test_pprof_samples_split_by_thread_and_state_with_labels(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    uint64_t kept;
    pprof_t *p = pprof_of(t, &all_opts, &kept);
    bool leaf_gil = false, leaf_idle = false, torn = false;
    for (size_t i = 0; i < p->n_sample; i++) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        int64_t line, tid = 0;
        const char *leaf = leaf_name(p, s, &line);
        const char *thread = label(p, s, "thread_name", NULL);
        label(p, s, "tid", &tid);
        const char *gil = label(p, s, "gil", NULL), *idle = label(p, s, "idle", NULL);
        assert_true(!strcmp(gil, "true") || !strcmp(gil, "false"));
        assert_true(!strcmp(idle, "true") || !strcmp(idle, "false"));
        assert_int_equal(tid, !strcmp(thread, "MainThread") ? 100 : 101);
        if (!strcmp(thread, "MainThread") && !strcmp(leaf, "leaf") && line == 21) {
            /* Leaf first: leaf:21 < Worker.work:12 < main:5. */
            assert_int_equal(s->n_location_id, 3);
            if (!strcmp(gil, "true")) {
                leaf_gil = true;
                assert_int_equal(s->value[0], N_MAIN_LEAF_GIL);
                assert_string_equal(idle, "false");
            } else {
                leaf_idle = true;
                assert_int_equal(s->value[0], 1);
                assert_string_equal(idle, "true");
            }
            const Perftools__Profiles__Location *root = ploc(p, s->location_id[2]);
            assert_string_equal(pstr(p, pfn(p, root->line[0]->function_id)->name), "main");
            assert_int_equal(root->line[0]->line, 5);
        }
        if (!strcmp(leaf, "<torn sample>")) {
            torn = true;
            assert_string_equal(thread, "worker");
            assert_int_equal(s->value[0], 1);
        }
    }
    assert_true(leaf_gil && leaf_idle && torn);
    perftools__profiles__profile__free_unpacked(p, NULL);
    trace_free(t);
}

static void test_pprof_excluded_frames_leave_the_stacks(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    const char *ex[] = {"lib.py"};
    const struct export_opts o = {.to_s = -1, .exclude = ex, .n_exclude = 1};
    uint64_t kept;
    pprof_t *p = pprof_of(t, &o, &kept);
    int64_t sum = 0;
    for (size_t i = 0; i < p->n_sample; i++) {
        for (size_t k = 0; k < p->sample[i]->n_location_id; k++) {
            const Perftools__Profiles__Location *l = ploc(p, p->sample[i]->location_id[k]);
            assert_string_not_equal(pstr(p, pfn(p, l->line[0]->function_id)->name), "leaf");
        }
        sum += p->sample[i]->value[0];
    }
    assert_int_equal(sum, N_SAMPLES);   /* frames go, samples stay */
    perftools__profiles__profile__free_unpacked(p, NULL);
    trace_free(t);
}

/* ---- speedscope ----------------------------------------------------------------------------- */

static json_t *speedscope_of(const struct trace *t, const struct export_opts *o)
{
    size_t len;
    uint64_t kept;
    char *text = export_mem(export_speedscope, t, o, &len, &kept);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!doc)
        fail_msg("speedscope output is not JSON: %s (line %d)", jerr.text, jerr.line);
    free(text);
    return doc;
}

static const char *frame_name(json_t *doc, json_int_t i)
{
    json_t *frames = json_object_get(json_object_get(doc, "shared"), "frames");
    assert_true(i >= 0 && (size_t)i < json_array_size(frames));
    return json_string_value(json_object_get(json_array_get(frames, (size_t)i), "name"));
}

/* The profile named name, checked for balance and order; NULL when absent. */
static json_t *checked_profile(json_t *doc, const char *name)
{
    json_t *profiles = json_object_get(doc, "profiles"), *p;
    size_t i;
    json_array_foreach(profiles, i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")), name) != 0)
            continue;
        assert_string_equal(json_string_value(json_object_get(p, "type")), "evented");
        assert_string_equal(json_string_value(json_object_get(p, "unit")), "nanoseconds");
        json_int_t last = json_integer_value(json_object_get(p, "startValue"));
        json_int_t end = json_integer_value(json_object_get(p, "endValue"));
        json_int_t open[64];
        size_t depth = 0, k;
        json_t *ev;
        json_array_foreach(json_object_get(p, "events"), k, ev) {
            json_int_t at = json_integer_value(json_object_get(ev, "at"));
            json_int_t frame = json_integer_value(json_object_get(ev, "frame"));
            assert_true(at >= last && at <= end);
            last = at;
            frame_name(doc, frame);
            if (!strcmp(json_string_value(json_object_get(ev, "type")), "O")) {
                assert_true(depth < 64);
                open[depth++] = frame;
            } else {
                assert_string_equal(json_string_value(json_object_get(ev, "type")), "C");
                assert_true(depth > 0);
                assert_int_equal(open[--depth], frame);
            }
        }
        assert_int_equal(depth, 0);
        return p;
    }
    return NULL;
}

/* Event k of profile p as "O name at" for compact comparison. */
static void event_text(json_t *doc, json_t *p, size_t k, char *out, size_t cap)
{
    json_t *ev = json_array_get(json_object_get(p, "events"), k);
    assert_non_null(ev);
    snprintf(out, cap, "%s %s %lld", json_string_value(json_object_get(ev, "type")),
             frame_name(doc, json_integer_value(json_object_get(ev, "frame"))),
             (long long)json_integer_value(json_object_get(ev, "at")));
}

static void test_speedscope_document_shape(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    json_t *doc = speedscope_of(t, &all_opts);
    assert_string_equal(json_string_value(json_object_get(doc, "$schema")),
                        "https://www.speedscope.app/file-format-schema.json");
    assert_string_equal(json_string_value(json_object_get(doc, "name")), "app");
    assert_string_equal(json_string_value(json_object_get(doc, "exporter")), "pytrace 0.1.0");
    assert_int_equal(json_integer_value(json_object_get(doc, "activeProfileIndex")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "profiles")), 2);
    json_t *frames = json_object_get(json_object_get(doc, "shared"), "frames"), *f;
    size_t i;
    bool seen_work = false;
    json_array_foreach(frames, i, f) {
        assert_non_null(json_string_value(json_object_get(f, "name")));
        assert_non_null(json_string_value(json_object_get(f, "file")));
        if (!strcmp(json_string_value(json_object_get(f, "name")), "Worker.work")) {
            seen_work = true;
            assert_string_equal(json_string_value(json_object_get(f, "file")), "app.py");
            assert_int_equal(json_integer_value(json_object_get(f, "line")), 10);
        }
    }
    assert_true(seen_work);
    json_t *p = checked_profile(doc, "MainThread (tid 100)");
    assert_non_null(p);
    assert_int_equal(json_integer_value(json_object_get(p, "startValue")), 0);
    assert_int_equal(json_integer_value(json_object_get(p, "endValue")), 10 * MS);
    assert_non_null(checked_profile(doc, "worker (tid 101)"));
    json_decref(doc);
    trace_free(t);
}

static void test_speedscope_events_nest_inside_callers(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    json_t *doc = speedscope_of(t, &all_opts);
    json_t *p = checked_profile(doc, "MainThread (tid 100)");
    assert_non_null(p);
    /* Midpoints, relative to the start; leaf's end clamped to work's (4.5 ms); the sibling leaf
     * (estimated from 4 ms) opens when work closes; main is open from the start. */
    static const char *expect[] = {
        "O main 0", "O Worker.work 500000", "O leaf 1500000", "C leaf 4500000",
        "C Worker.work 4500000", "O leaf 4500000", "C leaf 6500000", "C main 9500000",
    };
    assert_int_equal(json_array_size(json_object_get(p, "events")), 8);
    for (size_t k = 0; k < 8; k++) {
        char text[128];
        event_text(doc, p, k, text, sizeof text);
        assert_string_equal(text, expect[k]);
    }
    p = checked_profile(doc, "worker (tid 101)");
    char text[128];
    event_text(doc, p, 1, text, sizeof text);
    assert_string_equal(text, "C <module> 5000000");   /* open end: its last sighting */
    json_decref(doc);
    trace_free(t);
}

static void test_speedscope_window_and_thread_selection(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    const char *threads[] = {"100"};
    const struct export_opts o = {.threads = threads, .n_threads = 1, .from_s = 0.002,
                                  .to_s = 0.006};
    json_t *doc = speedscope_of(t, &o);
    assert_int_equal(json_array_size(json_object_get(doc, "profiles")), 1);
    json_t *p = checked_profile(doc, "MainThread (tid 100)");
    assert_non_null(p);
    assert_int_equal(json_integer_value(json_object_get(p, "startValue")), 2 * MS);
    assert_int_equal(json_integer_value(json_object_get(p, "endValue")), 6 * MS);
    char text[128];
    event_text(doc, p, 0, text, sizeof text);
    assert_string_equal(text, "O main 2000000");            /* clamped to the window */
    json_decref(doc);
    trace_free(t);
}

static void test_empty_trace_exports_valid_documents(void **state)
{
    (void)state;
    struct ids d;
    struct trace *t = small_trace(&d);
    const struct export_opts o = {.to_s = -1, .gil_only = true, .no_idle = true,
                                  .threads = (const char *[]){"nobody"}, .n_threads = 1};
    uint64_t kept;
    pprof_t *p = pprof_of(t, &o, &kept);
    assert_int_equal(kept, 0);
    assert_int_equal(p->n_sample, 0);
    assert_string_equal(p->string_table[0], "");
    perftools__profiles__profile__free_unpacked(p, NULL);
    json_t *doc = speedscope_of(t, &o);
    assert_int_equal(json_array_size(json_object_get(doc, "profiles")), 0);
    json_decref(doc);
    trace_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pprof_header_types_and_strings),
        cmocka_unit_test(test_pprof_counts_add_up_to_selected_samples),
        cmocka_unit_test(test_pprof_ids_start_at_one_and_resolve),
        cmocka_unit_test(test_pprof_samples_split_by_thread_and_state_with_labels),
        cmocka_unit_test(test_pprof_excluded_frames_leave_the_stacks),
        cmocka_unit_test(test_speedscope_document_shape),
        cmocka_unit_test(test_speedscope_events_nest_inside_callers),
        cmocka_unit_test(test_speedscope_window_and_thread_selection),
        cmocka_unit_test(test_empty_trace_exports_valid_documents),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
