/*
 * test_trace.c — output/trace_write.c, trace_intern.c and trace_read.c: every record kind
 * round-trips exactly (sample times to the microsecond as encoded), an unchanged sample costs about
 * two bytes, and no prefix, garbage file, flipped byte or inconsistent chunk makes the loader crash:
 * it says corrupt, or loads what came before and says truncated. Also: a writer killed after a
 * flush leaves a loadable file, and the file is private (0600).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "output/trace.h"
#include "pytrace.pb-c.h"
#include "tests/unit/span_assert.h"

#define MS 1000000ULL
#define T0 5000000000000ULL        /* an arbitrary CLOCK_MONOTONIC start */

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/pytrace-test-trace-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A path in the test's directory; each call returns its own copy (freed with the directory's
 * process: tests are short-lived, so the copies are kept in a small ring). */
static const char *tmp_path(const char *name)
{
    static char ring[8][128];
    static int next;
    char *path = ring[next++ % 8];
    snprintf(path, sizeof ring[0], "%s/%s", tmpdir, name);
    return path;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static const int64_t nspid[] = { 4242, 17 };
static const struct trace_tag tags[] = {
    { "équipe", "données" }, { "env", "prod" }, { "蛇", "🐍" },
};

static struct trace_meta test_meta(void)
{
    return (struct trace_meta){
        .pid = 4242, .nspid = nspid, .n_nspid = 2, .name = "worker-ß",
        .python_version = "3.12.1", .python_binary = "/usr/bin/python3.12",
        .cmdline = "python3 -m app --名前", .host = "host-1", .pytrace_version = "0.1.0",
        .start_wall_ns = 1700000000123456789ULL, .start_mono_ns = T0, .rate_hz = 1000,
        .blocking = true, .native = false, .tags = tags, .n_tags = 3,
        .filters = "exclude:idle; redact:/home/*",
    };
}

static struct trace_writer *open_writer(const char *path, const struct trace_meta *meta)
{
    struct trace_writer *w = NULL;
    struct pt_err err = { 0 };
    enum pt_status rc = trace_writer_open(&w, path, false, meta, &err);
    if (rc != PT_OK)
        fail_msg("trace_writer_open: %s", err.msg);
    return w;
}

static void flush_ok(struct trace_writer *w)
{
    struct pt_err err = { 0 };
    if (trace_flush(w, &err) != PT_OK)
        fail_msg("trace_flush: %s", err.msg);
}

static void close_ok(struct trace_writer *w, const struct trace_summary *sum)
{
    struct pt_err err = { 0 };
    if (trace_writer_close(w, sum, &err) != PT_OK)
        fail_msg("trace_writer_close: %s", err.msg);
}

static struct trace *load_ok(const char *path)
{
    struct trace *t = NULL;
    struct pt_err err = { 0 };
    enum pt_status rc = trace_load(path, &t, &err);
    if (rc != PT_OK)
        fail_msg("trace_load(%s): %s", path, err.msg);
    return t;
}

/* The documented time encoding, rebuilt independently: whole microseconds (rounded half away
 * from zero) from the previous reconstructed time; a thread's first sample in a chunk is exact. */
struct model_thread {
    bool fresh;
    uint64_t prev;
};

static uint64_t model_time(struct model_thread *m, uint64_t t)
{
    if (m->fresh) {
        m->fresh = false;
        return m->prev = t;
    }
    int64_t d = (int64_t)(t - m->prev);
    int64_t us = d >= 0 ? (d + 500) / 1000 : -((-d + 500) / 1000);
    return m->prev += (uint64_t)(us * 1000);
}

/* ---- the full round trip ------------------------------------------------------------------- */

#define NSAMPLES 10000
#define NSPANS 300
#define NCOUNTERS 200

struct expect {
    uint32_t fn[6], stack[12], proc[2], thread[3];
    struct trace_sample samples[NSAMPLES];
    struct tl_span spans[NSPANS];
    struct trace_counter counters[NCOUNTERS];
    struct trace_event events[8];
    size_t n_events;
};

static void build_stacks(struct trace_writer *w, struct expect *e)
{
    static const char *names[6][3] = {
        { "main", "main", "/srv/app/main.py" },
        { "handle", "Server.handle", "/srv/app/server.py" },
        { "函数", "模块.函数", "/srv/app/ünïcödé.py" },
        { "parse", "Parser.parse", "/srv/app/parse.py" },
        { "emoji_🐍", "<lambda>.emoji_🐍", "/srv/app/server.py" },
        { "wait", "Condition.wait", "/usr/lib/python3.12/threading.py" },
    };
    for (int i = 0; i < 6; i++)
        e->fn[i] = trace_function(w, names[i][0], names[i][1], names[i][2], 10 * i + 1);
    assert_int_equal(e->fn[0], 1);
    /* a small trie: 4 roots with chains of depth 3 */
    for (int i = 0; i < 12; i++) {
        uint32_t parent = i % 3 == 0 ? 0 : e->stack[i - 1];
        e->stack[i] = trace_stack(w, parent, e->fn[(i + i / 3) % 6], 100 + i);
        assert_int_not_equal(e->stack[i], 0);
    }
}

static void write_full(const char *path, struct expect *e)
{
    struct trace_meta meta = test_meta();
    struct trace_writer *w = open_writer(path, &meta);
    e->proc[0] = trace_process(w, 4242, 17, "python3 -m app", "3.12.1", 0);
    e->proc[1] = trace_process(w, 4300, 75, "python3 -c 'import 子'", "3.12.1", e->proc[0]);
    e->thread[0] = trace_thread(w, e->proc[0], 4242, 140001, "MainThread");
    e->thread[1] = trace_thread(w, e->proc[0], 4243, 140002, "worker-é");
    e->thread[2] = trace_thread(w, e->proc[1], 4300, 150001, "MainThread");
    build_stacks(w, e);

    struct model_thread model[3] = { { true, 0 }, { true, 0 }, { true, 0 } };
    uint64_t t = T0;
    size_t ns = 0, nc = 0;
    for (int i = 0; i < NSAMPLES; i++) {
        int k = i % 3;
        t += (k == 0 ? MS : 0) + rnd() % 997;             /* ns noise, not whole us */
        uint32_t stack = k == 0 ? e->stack[(i / 21) % 12]  /* changes now and then */
                       : k == 1 ? e->stack[rnd() % 12]     /* changes nearly always */
                       : (i > 5000 ? 0 : e->stack[5]);     /* never, then empty */
        uint8_t flags = (uint8_t)(((i / 150) % 2 ? TRACE_F_GIL : 0) | (i % 997 == 0 ? TRACE_F_BAD : 0));
        trace_sample(w, e->thread[k], t, stack, flags);
        e->samples[ns++] = (struct trace_sample){ e->thread[k], stack, model_time(&model[k], t), flags };
        if (i % 50 == 0 && nc < NCOUNTERS) {
            trace_counter(w, TRACE_C_CPU_USER_NS, e->thread[k], t, (int64_t)i * 1000);
            e->counters[nc++] = (struct trace_counter){ TRACE_C_CPU_USER_NS, e->thread[k], t, (int64_t)i * 1000 };
            int64_t rss = (i / 50) % 2 ? -5 : (int64_t)(rnd() >> 1);
            trace_counter(w, TRACE_C_RSS_BYTES, e->proc[1], t, rss);
            e->counters[nc++] = (struct trace_counter){ TRACE_C_RSS_BYTES, e->proc[1], t, rss };
        }
        if (i % 33 == 0 && i / 33 < NSPANS) {
            struct tl_span s = {
                .thread = e->thread[k], .function = e->fn[i % 6], .depth = (uint32_t)(i % 5),
                .call_line = i % 7 ? 40 + i : -1, .first_line = 7, .begin_lo = t - 3 * MS,
                .begin = t - 2 * MS, .end = t - 500, .end_hi = t, .samples = (uint64_t)i,
                .open_begin = i % 2, .open_end = i % 3 == 0, .off_cpu = i % 4 == 1 };
            if (s.open_begin)
                s.begin_lo = 0;                              /* unknown */
            trace_span(w, &s);
            e->spans[i / 33] = s;
        }
        if (i == 2000)
            trace_thread_name(w, e->thread[1], "renamed-✓");  /* after its entry was flushed */
        if (i % 1000 == 999) {
            flush_ok(w);
            for (int m = 0; m < 3; m++)
                model[m].fresh = true;
        }
    }
    static const char *texts[] = { NULL, "started", NULL, "ä note", NULL, NULL };
    for (int k = 1; k <= 6; k++) {
        struct trace_event ev = { (uint32_t)k, e->proc[k % 2], k % 3 ? e->thread[k % 3] : 0,
                                  t + (uint64_t)k, k == 2 ? -9 : k * 11, 0 };
        trace_event(w, (enum trace_event_kind)k, ev.process, ev.thread, ev.t_ns, ev.value,
                    texts[k - 1]);
        ev.text = texts[k - 1] ? trace_string(w, texts[k - 1]) : 0;
        e->events[e->n_events++] = ev;
    }
    struct trace_summary sum = {
        .end_mono_ns = t + MS, .samples = NSAMPLES, .walks = NSAMPLES / 3, .errors = 11,
        .missed = 2, .overruns = 3, .achieved_hz = 998.5, .exit_status = -15, .redacted = 4,
        .dropped = 5, .excluded = 6 };
    close_ok(w, &sum);
}

static void check_header(const struct trace *t)
{
    struct trace_meta m = test_meta();
    assert_int_equal(t->pid, m.pid);
    assert_int_equal(t->n_nspid, 2);
    assert_int_equal(t->nspid[0], 4242);
    assert_int_equal(t->nspid[1], 17);
    assert_string_equal(t->name, m.name);
    assert_string_equal(t->python_version, m.python_version);
    assert_string_equal(t->python_binary, m.python_binary);
    assert_string_equal(t->cmdline, m.cmdline);
    assert_string_equal(t->host, m.host);
    assert_string_equal(t->pytrace_version, m.pytrace_version);
    assert_string_equal(t->filters, m.filters);
    assert_true(t->start_wall_ns == m.start_wall_ns && t->start_mono_ns == m.start_mono_ns);
    assert_true(t->rate_hz == 1000.0 && t->blocking && !t->native);
    assert_int_equal(t->n_tags, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(t->tag_keys[i], tags[i].key);
        assert_string_equal(t->tag_values[i], tags[i].value);
    }
}

static void check_tables(const struct trace *t, const struct expect *e)
{
    assert_int_equal(t->n_processes, 3);
    assert_int_equal(t->processes[e->proc[1]].pid, 4300);
    assert_int_equal(t->processes[e->proc[1]].nspid, 75);
    assert_int_equal(t->processes[e->proc[1]].parent, e->proc[0]);
    assert_string_equal(trace_str(t, t->processes[e->proc[1]].cmdline), "python3 -c 'import 子'");
    assert_string_equal(trace_str(t, t->processes[e->proc[0]].python_version), "3.12.1");
    assert_int_equal(t->n_threads, 4);
    assert_string_equal(trace_str(t, t->threads[e->thread[0]].name), "MainThread");
    assert_string_equal(trace_str(t, t->threads[e->thread[1]].name), "renamed-✓");
    assert_int_equal(t->threads[e->thread[1]].tid, 4243);
    assert_int_equal(t->threads[e->thread[1]].thread_id, 140002);
    assert_int_equal(t->threads[e->thread[2]].process, e->proc[1]);
    assert_int_equal(t->n_functions, 7);
    const struct trace_function *f = &t->functions[e->fn[2]];
    assert_string_equal(trace_str(t, f->name), "函数");
    assert_string_equal(trace_str(t, f->qualname), "模块.函数");
    assert_string_equal(trace_str(t, f->file), "/srv/app/ünïcödé.py");
    assert_int_equal(f->first_line, 21);
    assert_int_equal(t->n_stacks, 13);
    for (int i = 0; i < 12; i++) {
        const struct trace_stack_node *k = &t->stacks[e->stack[i]];
        assert_int_equal(k->parent, i % 3 == 0 ? 0 : e->stack[i - 1]);
        assert_int_equal(k->function, e->fn[(i + i / 3) % 6]);
        assert_int_equal(k->line, 100 + i);
    }
}

/* Samples are stored per thread and chunk; each thread's own sequence keeps its order. */
static void check_samples(const struct trace *t, const struct expect *e)
{
    assert_int_equal(t->n_samples, NSAMPLES);
    for (int k = 0; k < 3; k++) {
        size_t j = 0;
        for (size_t i = 0; i < t->n_samples; i++) {
            if (t->samples[i].thread != e->thread[k])
                continue;
            while (e->samples[j].thread != e->thread[k])
                j++;
            const struct trace_sample *a = &t->samples[i], *b = &e->samples[j++];
            assert_int_equal(a->stack, b->stack);
            assert_int_equal(a->flags, b->flags);
            assert_int_equal(a->t_ns, b->t_ns);
        }
    }
}

static void check_records(const struct trace *t, const struct expect *e)
{
    assert_int_equal(t->n_spans, NSPANS);
    for (int i = 0; i < NSPANS; i++) {
        assert_span_equal(&t->spans[i], &e->spans[i]);
    }
    assert_int_equal(t->n_counters, NCOUNTERS);
    /* values are grouped per (kind, owner) in each chunk; each series keeps its order */
    for (size_t first = 0; first < NCOUNTERS; first++) {
        uint32_t kind = e->counters[first].kind, owner = e->counters[first].owner;
        size_t j = 0, seen = 0;
        for (size_t i = 0; i < t->n_counters; i++) {
            if (t->counters[i].kind != kind || t->counters[i].owner != owner)
                continue;
            while (e->counters[j].kind != kind || e->counters[j].owner != owner)
                j++;
            assert_int_equal(t->counters[i].t_ns, e->counters[j].t_ns);
            assert_int_equal(t->counters[i].value, e->counters[j].value);
            j++;
            seen++;
        }
        assert_true(seen > 0);
    }
    assert_int_equal(t->n_events, e->n_events);
    for (size_t i = 0; i < e->n_events; i++) {
        const struct trace_event *a = &t->events[i], *b = &e->events[i];
        assert_int_equal(a->kind, b->kind);
        assert_int_equal(a->process, b->process);
        assert_int_equal(a->thread, b->thread);
        assert_int_equal(a->t_ns, b->t_ns);
        assert_int_equal(a->value, b->value);
        assert_int_equal(a->text, b->text);
    }
    assert_string_equal(trace_str(t, t->events[3].text), "ä note");
}

static void test_every_record_kind_round_trips_exactly(void **state)
{
    (void)state;
    const char *path = tmp_path("full.pytrace");
    struct expect *e = calloc(1, sizeof *e);
    assert_non_null(e);
    write_full(path, e);
    struct trace *t = load_ok(path);
    assert_false(t->truncated);
    assert_true(t->has_trailer);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(t->valid_bytes, (uint64_t)st.st_size);
    check_header(t);
    check_tables(t, e);
    check_samples(t, e);
    check_records(t, e);
    assert_int_equal(t->summary.samples, NSAMPLES);
    assert_int_equal(t->summary.exit_status, -15);
    assert_int_equal(t->summary.excluded, 6);
    assert_true(t->summary.achieved_hz == 998.5 && t->summary.overruns == 3);
    print_message("round trip: %d samples in %lld bytes (%.2f bytes/sample with changing stacks)\n",
                  NSAMPLES, (long long)st.st_size, (double)st.st_size / NSAMPLES);
    trace_free(t);
    free(e);
}

/* ---- --locals: a span's variables ---------------------------------------------------------- */

static void test_span_locals_round_trip(void **state)
{
    (void)state;
    struct trace_meta meta = test_meta();
    meta.locals = true;
    const char *path = tmp_path("locals.pytrace");
    struct trace_writer *w = open_writer(path, &meta);
    uint32_t proc = trace_process(w, 4242, 4242, "python3 app.py", "3.12.1", 0);
    uint32_t th = trace_thread(w, proc, 4242, 1, "MainThread");
    uint32_t fn = trace_function(w, "f", "f", "app.py", 3);
    struct tl_local vars[3] = {
        {trace_string(w, "a"), trace_string(w, "list(3) [1, 2, 3]"), TL_LOCAL_ARG},
        {trace_string(w, "password"), trace_string(w, "<redacted>"), TL_LOCAL_ARG | TL_LOCAL_REDACTED},
        {trace_string(w, "x"), trace_string(w, "'h\xc3\xa9'"), 0},
    };
    for (int i = 0; i < 4; i++) {
        struct tl_span s = {.thread = th, .function = fn, .depth = 0, .call_line = -1,
                            .begin_lo = T0 + (uint64_t)i * MS, .begin = T0 + (uint64_t)i * MS + 1,
                            .end = T0 + (uint64_t)i * MS + 2, .end_hi = T0 + (uint64_t)i * MS + 3,
                            .samples = 1};
        if (i != 1) {   /* span 1 has none; span 3 was unreadable */
            s.locals = vars;
            s.n_locals = i == 3 ? 0 : (uint32_t)(3 - i / 2);
        }
        s.locals_flags = i == 3 ? TL_LOCALS_UNREADABLE : i == 2 ? TL_LOCALS_TRUNCATED : 0;
        trace_span(w, &s);
        if (i == 1)
            flush_ok(w);   /* spans in two chunks */
    }
    struct trace_summary sum = {.exit_status = INT64_MIN, .redacted = 2, .dropped = 1};
    close_ok(w, &sum);

    struct trace *t = load_ok(path);
    assert_true(t->has_locals);
    assert_int_equal(t->n_spans, 4);
    assert_int_equal(t->n_locals, 3 + 2);
    assert_int_equal(t->spans[0].n_locals, 3);
    assert_string_equal(trace_str(t, t->spans[0].locals[0].name), "a");
    assert_string_equal(trace_str(t, t->spans[0].locals[0].value), "list(3) [1, 2, 3]");
    assert_int_equal(t->spans[0].locals[1].flags, TL_LOCAL_ARG | TL_LOCAL_REDACTED);
    assert_string_equal(trace_str(t, t->spans[0].locals[2].value), "'h\xc3\xa9'");
    assert_int_equal(t->spans[1].n_locals, 0);
    assert_null(t->spans[1].locals);
    assert_int_equal(t->spans[2].n_locals, 2);
    assert_int_equal(t->spans[2].locals_flags, TL_LOCALS_TRUNCATED);
    assert_string_equal(trace_str(t, t->spans[2].locals[1].name), "password");
    assert_int_equal(t->spans[3].locals_flags, TL_LOCALS_UNREADABLE);
    assert_int_equal(t->summary.redacted, 2);
    assert_int_equal(t->summary.dropped, 1);
    trace_free(t);
}

/* ---- interning ------------------------------------------------------------------------------- */

static void test_equal_content_gives_equal_ids(void **state)
{
    (void)state;
    struct trace_meta meta = test_meta();
    struct trace_writer *w = open_writer(tmp_path("intern.pytrace"), &meta);
    assert_int_equal(trace_string(w, ""), 0);
    assert_int_equal(trace_string(w, NULL), 0);
    uint32_t a = trace_string(w, "alpha"), b = trace_string(w, "beta");
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    assert_int_equal(trace_string(w, "alpha"), a);
    uint32_t f = trace_function(w, "f", "C.f", "x.py", 3);
    assert_int_equal(trace_function(w, "f", "C.f", "x.py", 3), f);
    assert_int_not_equal(trace_function(w, "f", "C.f", "x.py", 4), f);
    uint32_t s = trace_stack(w, 0, f, 10);
    assert_int_equal(trace_stack(w, 0, f, 10), s);
    assert_int_not_equal(trace_stack(w, s, f, 10), s);
    assert_int_equal(trace_stack(w, 999, f, 10), 0);        /* unknown parent: refused */
    uint32_t p = trace_process(w, 1, 1, "cmd", "3.12", 0);
    assert_int_equal(trace_process(w, 1, 1, "cmd", "3.12", 0), p);
    uint32_t th = trace_thread(w, p, 7, 8, "one");
    assert_int_equal(trace_thread(w, p, 7, 8, "two"), th);  /* same thread, renamed */
    /* many entries force the hash tables to grow several times */
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "s%d", i);
        uint32_t id = trace_string(w, name);
        assert_int_equal(trace_string(w, name), id);
        assert_int_equal(trace_stack(w, s, f, i), trace_stack(w, s, f, i));
    }
    close_ok(w, NULL);
    struct trace *t = load_ok(tmp_path("intern.pytrace"));
    /* placeholder, alpha, beta, f, C.f, x.py, cmd, 3.12, one, two, then s0..s4999 */
    assert_int_equal(t->n_strings, 10 + 5000);
    assert_string_equal(trace_str(t, t->threads[th].name), "two");
    assert_int_equal(t->summary.exit_status, INT64_MIN);  /* close without a summary */
    trace_free(t);
}

static void test_invalid_utf8_becomes_replacement_character(void **state)
{
    (void)state;
    struct trace_meta meta = test_meta();
    meta.cmdline = "python3 \xff\xfe.py";
    const char *path = tmp_path("utf8.pytrace");
    unlink(path);
    struct trace_writer *w = open_writer(path, &meta);
    uint32_t bad = trace_string(w, "caf\xc3 \xed\xa0\x80!");    /* cut sequence, surrogate */
    assert_int_equal(trace_string(w, "caf\xc3 \xed\xa0\x80!"), bad);
    close_ok(w, NULL);
    struct trace *t = load_ok(path);
    assert_string_equal(t->cmdline, "python3 \xef\xbf\xbd\xef\xbf\xbd.py");
    assert_string_equal(trace_str(t, bad),
                        "caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
    trace_free(t);
}

/* ---- size ------------------------------------------------------------------------------------ */

/* Bytes per sample for n samples at 1 ms +-20 us, each picking one of n_stacks stacks. */
static double bytes_per_sample(const char *name, int n, int n_stacks)
{
    const char *path = tmp_path(name);
    unlink(path);
    struct trace_meta meta = test_meta();
    struct trace_writer *w = open_writer(path, &meta);
    uint32_t p = trace_process(w, 1, 1, "python3 app.py", "3.12.1", 0);
    uint32_t th = trace_thread(w, p, 1, 1, "MainThread");
    uint32_t stacks[64], parent = 0;
    for (int d = 0; d < 10; d++)        /* a realistic depth */
        parent = trace_stack(w, parent, trace_function(w, "f", "f", "app.py", d), d);
    for (int i = 0; i < n_stacks; i++)
        stacks[i] = trace_stack(w, parent, trace_function(w, "leaf", "leaf", "app.py", 0), i);
    flush_ok(w);
    uint64_t before = trace_bytes(w);
    struct pt_err err = { 0 };
    for (int i = 0; i < n; i++) {
        uint64_t t = T0 + (uint64_t)i * MS + rnd() % 40001 - 20000;   /* +-20 us */
        trace_sample(w, th, t, stacks[n_stacks > 1 ? rnd() % (uint64_t)n_stacks : 0], TRACE_F_GIL);
        assert_int_equal(trace_maybe_flush(w, t, &err), PT_OK);
    }
    flush_ok(w);
    double per = (double)(trace_bytes(w) - before) / n;
    close_ok(w, NULL);
    return per;
}

static void test_unchanged_sample_costs_about_two_bytes(void **state)
{
    (void)state;
    double steady = bytes_per_sample("steady.pytrace", 100000, 1);
    double changing = bytes_per_sample("changing.pytrace", 100000, 64);
    print_message("bytes/sample: %.3f unchanged stack, %.3f changing among 64 stacks\n",
                  steady, changing);
    assert_true(steady <= 1.1);   /* one byte per unchanged sample, plus chunk framing */
    assert_true(changing <= 4.1);
}

/* ---- damaged files ------------------------------------------------------------------------- */

/* A small trace of several chunks; returns its bytes. */
static unsigned char *small_trace(const char *path, size_t *len)
{
    unlink(path);
    struct trace_meta meta = test_meta();
    struct trace_writer *w = open_writer(path, &meta);
    uint32_t p = trace_process(w, 1, 1, "python3 small.py", "3.11.7", 0);
    uint32_t th[2] = { trace_thread(w, p, 1, 1, "MainThread"), trace_thread(w, p, 2, 2, "T") };
    uint32_t f = trace_function(w, "f", "f", "small.py", 1);
    uint32_t st[3] = { trace_stack(w, 0, f, 1), 0, 0 };
    st[1] = trace_stack(w, st[0], f, 2);
    st[2] = trace_stack(w, st[1], f, 3);
    uint64_t t = T0;
    for (int i = 0; i < 60; i++) {
        t += MS + (uint64_t)(i * 37 % 11);
        trace_sample(w, th[i % 2], t, st[i / 7 % 3], (uint8_t)(i % 5 == 0));
        if (i % 15 == 14) {
            trace_counter(w, TRACE_C_RSS_BYTES, p, t, i * 4096);
            trace_event(w, TRACE_E_NOTE, p, th[0], t, i, "n");
            flush_ok(w);
        }
    }
    struct trace_summary sum = { .end_mono_ns = t, .samples = 60, .exit_status = 0 };
    close_ok(w, &sum);
    return slurp(path, len);
}

static bool same_sample(const struct trace_sample *a, const struct trace_sample *b)
{
    return a->thread == b->thread && a->stack == b->stack && a->t_ns == b->t_ns &&
           a->flags == b->flags;
}

static void test_every_prefix_loads_or_is_corrupt(void **state)
{
    (void)state;
    size_t size;
    unsigned char *full = small_trace(tmp_path("small.pytrace"), &size);
    struct trace *whole = load_ok(tmp_path("small.pytrace"));
    assert_false(whole->truncated);
    size_t first_end = 8 + 8 + (full[8] | full[9] << 8 | full[10] << 16 | (size_t)full[11] << 24);
    const char *path = tmp_path("prefix.pytrace");
    for (size_t n = 0; n <= size; n++) {
        spit(path, full, n);
        struct trace *t = NULL;
        struct pt_err err = { 0 };
        enum pt_status rc = trace_load(path, &t, &err);
        if (n < first_end) {
            assert_int_equal(rc, PT_ECORRUPT);
            assert_null(t);
            assert_non_null(strstr(err.msg, path));
            continue;
        }
        assert_int_equal(rc, PT_OK);
        assert_int_equal(t->truncated, n < size);
        assert_true(t->valid_bytes <= n && t->valid_bytes >= first_end);
        assert_true(t->n_samples <= whole->n_samples);
        for (size_t i = 0; i < t->n_samples; i++)
            assert_true(same_sample(&t->samples[i], &whole->samples[i]));
        assert_string_equal(t->cmdline, whole->cmdline);
        trace_free(t);
    }
    trace_free(whole);
    free(full);
}

/* Loading must answer corrupt, or load and say truncated; never crash or claim a whole file. */
static void expect_rejected(const char *path, const void *buf, size_t len)
{
    spit(path, buf, len);
    struct trace *t = NULL;
    struct pt_err err = { 0 };
    enum pt_status rc = trace_load(path, &t, &err);
    if (rc == PT_OK) {
        assert_true(t->truncated);
        trace_free(t);
    } else {
        assert_int_equal(rc, PT_ECORRUPT);
        assert_null(t);
    }
}

static void test_garbage_is_corrupt_or_truncated(void **state)
{
    (void)state;
    const char *path = tmp_path("garbage.pytrace");
    unsigned char buf[4096];
    for (int round = 0; round < 300; round++) {
        size_t len = rnd() % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rnd();
        struct trace *t = NULL;
        struct pt_err err = { 0 };
        spit(path, buf, len);
        assert_int_equal(trace_load(path, &t, &err), PT_ECORRUPT);   /* no magic */
        assert_non_null(strstr(err.msg, "not a pytrace file"));
        memcpy(buf, TRACE_MAGIC, 8);
        if (round % 3 == 1 && len > 16)        /* a plausible small length field */
            buf[8] = (unsigned char)(len - 16), buf[9] = buf[10] = buf[11] = 0;
        expect_rejected(path, buf, len < 8 ? 8 : len);
    }
    size_t size;
    unsigned char *full = small_trace(tmp_path("flip.pytrace"), &size);
    static const unsigned char masks[] = { 0x01, 0x80, 0xff };
    for (size_t pos = 0; pos < size; pos++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            full[pos] ^= masks[m];
            expect_rejected(path, full, size);
            full[pos] ^= masks[m];
        }
    }
    free(full);
}

/* Every id a loaded trace holds refers to an entry it also holds. */
static void check_references(const struct trace *t)
{
    for (size_t i = 1; i < t->n_functions; i++)
        assert_true(t->functions[i].name < t->n_strings && t->functions[i].file < t->n_strings &&
                    t->functions[i].qualname < t->n_strings);
    for (size_t i = 1; i < t->n_stacks; i++)
        assert_true(t->stacks[i].parent < i && t->stacks[i].function < t->n_functions);
    for (size_t i = 1; i < t->n_threads; i++)
        assert_true(t->threads[i].process < t->n_processes && t->threads[i].name < t->n_strings);
    for (size_t i = 0; i < t->n_samples; i++)
        assert_true(t->samples[i].thread > 0 && t->samples[i].thread < t->n_threads &&
                    t->samples[i].stack < t->n_stacks && t->samples[i].flags < 8);
    for (size_t i = 0; i < t->n_events; i++)
        assert_true(t->events[i].text < t->n_strings && t->events[i].thread < t->n_threads);
}

/* Damage behind a recomputed CRC reaches protobuf-c and the consistency checks. */
static void test_mutated_chunks_with_valid_crc_never_crash(void **state)
{
    (void)state;
    size_t size;
    unsigned char *full = small_trace(tmp_path("mutate-src.pytrace"), &size);
    size_t frames[64], nframes = 0;
    for (size_t off = 8; off + 8 <= size && nframes < 64; nframes++) {
        frames[nframes] = off;
        off += 8 + (full[off] | full[off + 1] << 8 | full[off + 2] << 16 | (size_t)full[off + 3] << 24);
    }
    assert_true(nframes >= 4);
    unsigned char *buf = malloc(size);
    assert_non_null(buf);
    const char *path = tmp_path("mutate.pytrace");
    for (int round = 0; round < 1500; round++) {
        memcpy(buf, full, size);
        size_t off = frames[rnd() % nframes];
        uint32_t len = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
        if (len == 0)
            continue;
        for (int k = 1 + (int)(rnd() % 4); k > 0; k--)
            buf[off + 8 + rnd() % len] = (unsigned char)rnd();
        uint32_t crc = (uint32_t)crc32(0L, buf + off + 8, len);
        for (int i = 0; i < 4; i++)
            buf[off + 4 + i] = (unsigned char)(crc >> 8 * i);
        spit(path, buf, size);
        struct trace *t = NULL;
        struct pt_err err = { 0 };
        enum pt_status rc = trace_load(path, &t, &err);
        if (rc == PT_OK) {
            check_references(t);
            trace_free(t);
        } else {
            assert_int_equal(rc, PT_ECORRUPT);
        }
    }
    free(buf);
    free(full);
}

/* ---- well-framed chunks that lie --------------------------------------------------------- */

static void append_chunk(const char *path, const Pytrace__Chunk *c)
{
    size_t len = pytrace__chunk__get_packed_size(c);
    unsigned char *buf = malloc(len + 8);
    assert_non_null(buf);
    pytrace__chunk__pack(c, buf + 8);
    uint32_t crc = (uint32_t)crc32(0L, buf + 8, (uInt)len);
    for (int i = 0; i < 4; i++) {
        buf[i] = (unsigned char)(len >> 8 * i);
        buf[4 + i] = (unsigned char)(crc >> 8 * i);
    }
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len + 8), (ssize_t)(len + 8));
    close(fd);
    free(buf);
}

/* A valid unfinished trace (1 thread, 1 stack, 3 samples) plus one crafted chunk. */
static void check_lying_chunk(const char *path, const Pytrace__Chunk *c)
{
    unlink(path);
    struct trace_meta meta = test_meta();
    struct trace_writer *w = open_writer(path, &meta);
    uint32_t th = trace_thread(w, 0, 1, 1, "MainThread");
    uint32_t st = trace_stack(w, 0, trace_function(w, "f", "f", "f.py", 1), 1);
    for (int i = 0; i < 3; i++)
        trace_sample(w, th, T0 + (uint64_t)i * MS, st, 0);
    flush_ok(w);
    uint64_t good = trace_bytes(w);
    append_chunk(path, c);
    struct trace *t = load_ok(path);
    assert_true(t->truncated);
    assert_int_equal(t->valid_bytes, good);
    assert_int_equal(t->n_samples, 3);
    assert_int_equal(t->n_stacks, 2);
    assert_int_equal(t->n_strings, 4);      /* "", MainThread, f, f.py: nothing of the liar */
    trace_free(t);
    struct pt_err err = { 0 };
    trace_writer_close(w, NULL, &err);      /* overwrites the crafted chunk; we are done */
}

static void test_chunk_with_unknown_ids_ends_the_load(void **state)
{
    (void)state;
    const char *path = tmp_path("liar.pytrace");
    uint64_t tick[2] = { (1000u << 2) | 1, 0 };   /* zigzag(-1000) << 1 | changed, then a repeat */
    uint32_t ref[1] = { 99u << 3 };               /* stack 99: unknown */
    Pytrace__SampleBlock blk = PYTRACE__SAMPLE_BLOCK__INIT, *blkp = &blk;
    blk.thread = 1; blk.t0_ns = T0; blk.period_us = 1000;
    blk.n_tick = 2; blk.tick = tick; blk.n_ref = 1; blk.ref = ref;
    Pytrace__StringEntry str = PYTRACE__STRING_ENTRY__INIT, *strp = &str;
    str.id = 10; str.value = "x";
    Pytrace__StackNode node = PYTRACE__STACK_NODE__INIT, *nodep = &node;
    node.id = 2; node.function = 50;
    Pytrace__Function fn = PYTRACE__FUNCTION__INIT, *fnp = &fn;
    fn.id = 2; fn.name = 77;
    Pytrace__Span span = PYTRACE__SPAN__INIT, *spanp = &span;
    Pytrace__Event ev = PYTRACE__EVENT__INIT, *evp = &ev;
    ev.text = 999;
    Pytrace__ThreadName rn = PYTRACE__THREAD_NAME__INIT, *rnp = &rn;
    rn.thread = 3;
    int64_t cdt = 5, cdv = 6;
    Pytrace__CounterSeries cs = PYTRACE__COUNTER_SERIES__INIT, *csp = &cs;
    cs.kind = TRACE_C_CPU_USER_NS; cs.owner = 9; cs.n_dt_ns = cs.n_dvalue = 1;
    cs.dt_ns = &cdt; cs.dvalue = &cdv;
    Pytrace__Header hdr = PYTRACE__HEADER__INIT;

    Pytrace__Chunk c = PYTRACE__CHUNK__INIT;
    c.n_samples = 1; c.samples = &blkp;                 /* a sample of an unknown stack */
    check_lying_chunk(path, &c);
    ref[0] = 1u << 3; blk.thread = 5;                   /* an unknown thread */
    check_lying_chunk(path, &c);
    blk.thread = 1; tick[0] &= ~1ULL;                   /* a block opening with "same as before" */
    check_lying_chunk(path, &c);
    tick[0] |= 1; tick[1] |= 1;                         /* two changed samples, one stack ref */
    check_lying_chunk(path, &c);
    tick[1] = 0;
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.n_strings = 1; c.strings = &strp;                 /* a string id out of sequence */
    check_lying_chunk(path, &c);
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.n_stacks = 1; c.stacks = &nodep;                  /* a node of an unknown function */
    check_lying_chunk(path, &c);
    node.function = 0; node.parent = 2;                 /* its own parent */
    check_lying_chunk(path, &c);
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.n_functions = 1; c.functions = &fnp;              /* a function of an unknown string */
    check_lying_chunk(path, &c);
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.n_spans = 1; c.spans = &spanp;                    /* a span of thread 0 */
    check_lying_chunk(path, &c);
    uint32_t bthread[2] = { 1, 5 }, bfn[2] = { 0, 0 }, bu32[2] = { 0, 0 };
    int32_t bi32[2] = { 0, 0 };
    int64_t bi64[2] = { 0, 0 };
    uint64_t bu64[2] = { 0, 0 };
    Pytrace__SpanBlock sb = PYTRACE__SPAN_BLOCK__INIT;
    sb.n_thread = sb.n_function = sb.n_depth = sb.n_flags = sb.n_call_line = 2;
    sb.n_first_line = sb.n_begin = sb.n_begin_lo = sb.n_end = sb.n_end_hi = sb.n_samples = 2;
    sb.thread = bthread; sb.function = bfn; sb.depth = bu32; sb.flags = bu32;
    sb.call_line = bi32; sb.first_line = bi32; sb.begin = bi64; sb.begin_lo = bi64;
    sb.end = bi64; sb.end_hi = bi64; sb.samples = bu64;
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.span_block = &sb;                                 /* a span row of unknown thread 5 */
    check_lying_chunk(path, &c);
    bthread[1] = 0;                                     /* of thread 0 */
    check_lying_chunk(path, &c);
    bthread[1] = 1; sb.n_end = 1;                       /* columns of unequal length */
    check_lying_chunk(path, &c);
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.n_events = 1; c.events = &evp;                    /* an event with an unknown text */
    check_lying_chunk(path, &c);
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.n_thread_names = 1; c.thread_names = &rnp;        /* a rename of an unknown thread */
    check_lying_chunk(path, &c);
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.n_counters = 1; c.counters = &csp;                /* CPU time of an unknown thread */
    check_lying_chunk(path, &c);
    c = (Pytrace__Chunk)PYTRACE__CHUNK__INIT;
    c.header = &hdr;                                    /* a second header */
    check_lying_chunk(path, &c);
}

static void test_first_chunk_must_be_a_header(void **state)
{
    (void)state;
    const char *path = tmp_path("headless.pytrace");
    struct trace *t = NULL;
    struct pt_err err = { 0 };
    spit(path, TRACE_MAGIC, 8);                          /* magic alone */
    assert_int_equal(trace_load(path, &t, &err), PT_ECORRUPT);
    Pytrace__Chunk c = PYTRACE__CHUNK__INIT;
    Pytrace__Trailer tr = PYTRACE__TRAILER__INIT;
    c.trailer = &tr;
    append_chunk(path, &c);                              /* a whole chunk, but no header */
    assert_int_equal(trace_load(path, &t, &err), PT_ECORRUPT);
    assert_null(t);
    assert_non_null(strstr(err.msg, "byte 8"));
    assert_int_equal(trace_load(tmp_path("does-not-exist"), &t, &err), PT_EFAIL);
    assert_int_equal(trace_load(tmpdir, &t, &err), PT_EFAIL);
}

/* ---- a writer that dies -------------------------------------------------------------------- */

static void test_killed_writer_leaves_flushed_samples(void **state)
{
    (void)state;
    const char *path = tmp_path("killed.pytrace");
    unlink(path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Like SIGKILL: flushed chunks are on disk, nothing else happens. */
        struct trace_meta meta = test_meta();
        struct trace_writer *w = NULL;
        if (trace_writer_open(&w, path, false, &meta, NULL) != PT_OK)
            _exit(1);
        uint32_t th = trace_thread(w, 0, 1, 1, "MainThread");
        uint32_t st = trace_stack(w, 0, trace_function(w, "f", "f", "f.py", 1), 1);
        for (int i = 0; i < 2500; i++) {
            trace_sample(w, th, T0 + (uint64_t)i * MS, st, 0);
            if (i == 999 || i == 1999)
                trace_flush(w, NULL);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct trace *t = load_ok(path);
    assert_true(t->truncated);
    assert_false(t->has_trailer);
    assert_int_equal(t->n_samples, 2000);
    assert_int_equal(t->samples[1999].t_ns, T0 + 1999 * MS);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(t->valid_bytes, (uint64_t)st.st_size);
    trace_free(t);
}

/* ---- the file itself ----------------------------------------------------------------------- */

static void test_file_is_private_and_not_clobbered(void **state)
{
    (void)state;
    const char *path = tmp_path("mode.pytrace");
    unlink(path);
    mode_t old = umask(0);
    struct trace_meta meta = test_meta();
    struct trace_writer *w = open_writer(path, &meta);
    close_ok(w, NULL);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    struct pt_err err = { 0 };
    assert_int_equal(trace_writer_open(&w, path, false, &meta, &err), PT_EFAIL);
    assert_null(w);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 8);                         /* untouched */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(trace_writer_open(&w, path, true, &meta, &err), PT_OK);
    close_ok(w, NULL);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    umask(old);
    struct trace *t = load_ok(path);
    assert_false(t->truncated);
    trace_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_record_kind_round_trips_exactly),
        cmocka_unit_test(test_equal_content_gives_equal_ids),
        cmocka_unit_test(test_span_locals_round_trip),
        cmocka_unit_test(test_invalid_utf8_becomes_replacement_character),
        cmocka_unit_test(test_unchanged_sample_costs_about_two_bytes),
        cmocka_unit_test(test_every_prefix_loads_or_is_corrupt),
        cmocka_unit_test(test_garbage_is_corrupt_or_truncated),
        cmocka_unit_test(test_mutated_chunks_with_valid_crc_never_crash),
        cmocka_unit_test(test_chunk_with_unknown_ids_ends_the_load),
        cmocka_unit_test(test_first_chunk_must_be_a_header),
        cmocka_unit_test(test_killed_writer_leaves_flushed_samples),
        cmocka_unit_test(test_file_is_private_and_not_clobbered),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
