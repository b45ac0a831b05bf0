/*
 * gen_view_trace.c — test-only: writes a large synthetic .pytrace with the real trace writer and
 * timeline, for the viewer's performance test (tests/integration/test_view.py). Each thread's
 * stack takes a seeded random walk over a few hundred functions in user, stdlib and
 * site-packages files, so the recording has a wide call tree and several hundred thousand spans.
 *
 * usage: gen_view_trace OUT [SAMPLES [THREADS]]   (default 1000000 samples over 8 threads)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/timeline.h"
#include "output/trace.h"

#define GEN_FUNCS 400
#define GEN_MAX_DEPTH 48
#define GEN_MAX_THREADS 64
#define GEN_PERIOD_NS 1000000ULL     /* 1 kHz */

struct gen_thread {
    uint32_t id;
    struct tl_frame frames[GEN_MAX_DEPTH];
    uint32_t nodes[GEN_MAX_DEPTH];   /* trace_stack id of each depth */
    size_t depth;
    int64_t cpu_ns;
};

static uint64_t gen_rng = 0x2545f4914f6cdd1dULL;

static uint32_t gen_rand(uint32_t n)
{
    gen_rng ^= gen_rng << 13;
    gen_rng ^= gen_rng >> 7;
    gen_rng ^= gen_rng << 17;
    return (uint32_t)(gen_rng % n);
}

static void gen_span(const struct tl_span *span, void *ctx)
{
    trace_span(ctx, span);
}

/* Functions 0..GEN_FUNCS-1: a quarter stdlib, a quarter site-packages, the rest the app's; one
 * with a name an HTML page must escape. */
static void gen_functions(struct trace_writer *w, uint32_t *ids)
{
    char name[64], file[160];
    for (int i = 0; i < GEN_FUNCS; i++) {
        if (i % 4 == 1)
            snprintf(file, sizeof file, "/usr/lib/python3.11/mod%d.py", i % 17);
        else if (i % 4 == 2)
            snprintf(file, sizeof file, "/srv/venv/lib/python3.11/site-packages/pkg%d/core.py",
                     i % 13);
        else
            snprintf(file, sizeof file, "/srv/app/module%d.py", i % 23);
        snprintf(name, sizeof name, "func_%d", i);
        const char *n = i == 7 ? "</script><!--<script>evil" : name;
        ids[i] = trace_function(w, n, n, file, 10 * i + 1);
    }
}

/* A new call on top of g's stack. Callees come from a window of functions that depends on the
 * caller, so the calls form a tree rather than noise. */
static void gen_push(struct trace_writer *w, struct gen_thread *g, const uint32_t *fn,
                     uint64_t *next_call)
{
    size_t d = g->depth++;
    uint32_t base = d ? g->frames[d - 1].function * 7 : 0;
    uint32_t f = fn[(base + gen_rand(6) + d * 31) % GEN_FUNCS];
    g->frames[d] = (struct tl_frame){.addr = ++*next_call, .function = f,
                                     .line = (int32_t)gen_rand(50) + 1, .lasti = -1};
    g->nodes[d] = trace_stack(w, d ? g->nodes[d - 1] : 0, f, g->frames[d].line);
}

/* One step of a thread's random walk: stay (40%), return (20%), return and call (20%) or call
 * (20%), so the depth wanders without drifting. The stack keeps at least three frames. */
static void gen_step(struct trace_writer *w, struct gen_thread *g, const uint32_t *fn,
                     uint64_t *next_call)
{
    uint32_t r = gen_rand(100);
    if (r >= 40 && r < 80 && g->depth > 3)
        g->depth--;
    if (r >= 60 && g->depth < GEN_MAX_DEPTH)
        gen_push(w, g, fn, next_call);
    while (g->depth < 3)
        gen_push(w, g, fn, next_call);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen_view_trace OUT [SAMPLES [THREADS]]\n");
        return 2;
    }
    uint64_t samples = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    unsigned nthreads = argc > 3 ? (unsigned)atoi(argv[3]) : 8;
    if (nthreads < 1 || nthreads > GEN_MAX_THREADS)
        nthreads = 8;
    const uint64_t t0 = 1000000000000ULL;
    struct trace_meta meta = {
        .pid = 4242, .name = "synthetic", .python_version = "3.11.7",
        .python_binary = "/usr/bin/python3.11", .cmdline = "python3 synthetic_workload.py",
        .host = "generator", .pytrace_version = "0.1.0", .start_wall_ns = 1700000000000000000ULL,
        .start_mono_ns = t0, .rate_hz = 1000,
    };
    struct pt_err err;
    pt_err_clear(&err);
    struct trace_writer *w;
    if (trace_writer_open(&w, argv[1], true, &meta, &err) != PT_OK) {
        fprintf(stderr, "gen_view_trace: %s\n", err.msg);
        return 1;
    }
    static uint32_t fn[GEN_FUNCS];
    static struct gen_thread th[GEN_MAX_THREADS];
    gen_functions(w, fn);
    struct timeline *tl = tl_new(gen_span, w);
    uint32_t proc = trace_process(w, 4242, 4242, meta.cmdline, "3.11.7", 0);
    char tname[32];
    for (unsigned i = 0; i < nthreads; i++) {
        snprintf(tname, sizeof tname, i ? "worker-%u" : "MainThread", i);
        th[i].id = trace_thread(w, proc, 4242 + i, 0x7f0000000000ULL + i, tname);
    }
    uint64_t next_call = 0, rounds = (samples + nthreads - 1) / nthreads, written = 0, t = t0;
    for (uint64_t r = 0; r < rounds && written < samples; r++) {
        t = t0 + r * GEN_PERIOD_NS;
        for (unsigned i = 0; i < nthreads && written < samples; i++, written++) {
            struct gen_thread *g = &th[i];
            gen_step(w, g, fn, &next_call);
            bool idle = i % 3 == 2 || gen_rand(10) == 0;
            uint8_t flags = idle ? TRACE_F_IDLE : (i == r % nthreads ? TRACE_F_GIL : 0);
            trace_sample(w, g->id, t, g->nodes[g->depth - 1], flags);
            tl_feed(tl, g->id, t, g->frames, g->depth);
            g->cpu_ns += idle ? 0 : (int64_t)GEN_PERIOD_NS;
            if (r % 10 == 0)
                trace_counter(w, TRACE_C_CPU_USER_NS, g->id, t, g->cpu_ns);
        }
        if (r % 10 == 0)
            trace_counter(w, TRACE_C_RSS_BYTES, proc, t, (int64_t)(50 + r % 977) << 20);
        if (trace_maybe_flush(w, t, &err) != PT_OK)
            break;
    }
    tl_finish(tl, t);
    tl_free(tl);
    struct trace_summary sum = {.end_mono_ns = t, .samples = written, .walks = rounds,
                                .achieved_hz = 1000, .exit_status = INT64_MIN};
    if (err.code != PT_OK || trace_writer_close(w, &sum, &err) != PT_OK) {
        fprintf(stderr, "gen_view_trace: %s\n", err.msg);
        return 1;
    }
    printf("%" PRIu64 " samples, %" PRIu64 " calls\n", written, next_call);
    return 0;
}
