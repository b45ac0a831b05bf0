/*
 * trace_fixture.h — what test_trace.c and test_trace_damaged.c share: a scratch directory for the
 * cmocka group, a seeded xorshift, the metadata every test trace carries, and writer and loader
 * calls that fail the test with the library's message. Test code; every helper is static inline.
 */
#ifndef PT_TESTS_TRACE_FIXTURE_H
#define PT_TESTS_TRACE_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/trace.h"

#define MS 1000000ULL
#define T0 5000000000000ULL        /* an arbitrary CLOCK_MONOTONIC start */

static char tmpdir[64];

static inline int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/pytrace-test-trace-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A path in the test's directory; each call returns its own copy (freed with the directory's
 * process: tests are short-lived, so the copies are kept in a small ring). */
static inline const char *tmp_path(const char *name)
{
    static char ring[8][128];
    static int next;
    char *path = ring[next++ % 8];
    snprintf(path, sizeof ring[0], "%s/%s", tmpdir, name);
    return path;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static inline uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const int64_t nspid[] = { 4242, 17 };
static const struct trace_tag tags[] = {
    { "équipe", "données" }, { "env", "prod" }, { "蛇", "🐍" },
};

static inline struct trace_meta test_meta(void)
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

static inline struct trace_writer *open_writer(const char *path, const struct trace_meta *meta)
{
    struct trace_writer *w = NULL;
    struct pt_err err = { 0 };
    enum pt_status rc = trace_writer_open(&w, path, false, meta, &err);
    if (rc != PT_OK)
        fail_msg("trace_writer_open: %s", err.msg);
    return w;
}

static inline void flush_ok(struct trace_writer *w)
{
    struct pt_err err = { 0 };
    if (trace_flush(w, &err) != PT_OK)
        fail_msg("trace_flush: %s", err.msg);
}

static inline void close_ok(struct trace_writer *w, const struct trace_summary *sum)
{
    struct pt_err err = { 0 };
    if (trace_writer_close(w, sum, &err) != PT_OK)
        fail_msg("trace_writer_close: %s", err.msg);
}

static inline struct trace *load_ok(const char *path)
{
    struct trace *t = NULL;
    struct pt_err err = { 0 };
    enum pt_status rc = trace_load(path, &t, &err);
    if (rc != PT_OK)
        fail_msg("trace_load(%s): %s", path, err.msg);
    return t;
}

#endif
