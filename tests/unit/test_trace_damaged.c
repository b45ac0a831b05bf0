/*
 * test_trace_damaged.c — output/trace_read.c on files it did not get whole: no prefix, garbage
 * file, flipped byte or inconsistent chunk makes the loader crash: it says corrupt, or loads what
 * came before and says truncated. Also: a writer killed after a flush leaves a loadable file.
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
#include "tests/unit/trace_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_prefix_loads_or_is_corrupt),
        cmocka_unit_test(test_garbage_is_corrupt_or_truncated),
        cmocka_unit_test(test_mutated_chunks_with_valid_crc_never_crash),
        cmocka_unit_test(test_chunk_with_unknown_ids_ends_the_load),
        cmocka_unit_test(test_first_chunk_must_be_a_header),
        cmocka_unit_test(test_killed_writer_leaves_flushed_samples),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
