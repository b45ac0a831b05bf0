/*
 * test_trace.c — output/trace_write.c, trace_intern.c and trace_read.c on whole files: every record
 * kind round-trips exactly (sample times to the microsecond as encoded), equal content interns to
 * equal ids, an unchanged sample costs about two bytes, and the file is private (0600). Damaged
 * files are test_trace_damaged.c's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output/trace.h"
#include "tests/unit/span_assert.h"
#include "tests/unit/trace_fixture.h"

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
        cmocka_unit_test(test_file_is_private_and_not_clobbered),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
