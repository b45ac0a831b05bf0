/*
 * cmd_info.c — `pytrace info FILE [--json]`: what a trace holds. Target, interpreter, when and how
 * long, rate asked and achieved, threads and processes, errors, whether the file is whole, tags,
 * filters, and the ten hottest functions by self and by total samples. A truncated file is shown
 * with a warning (exit 0); a file that is not a trace at all exits 7.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "output/trace.h"
#include "util/termtext.h"

#define INFO_TOP 10

static const char info_usage[] =
    "usage: pytrace info FILE [--json]\n"
    "  Summarize a .pytrace recording: target, timing, rate, threads, processes, errors, and the\n"
    "  hottest functions by self samples (innermost frame) and total samples (anywhere on the\n"
    "  stack, once per sample). FILE '-' reads standard input (a pipe).\n"
    "  --json     one JSON object: {samples, duration_s, rate_hz, achieved_hz, threads: [{name,\n"
    "             tid, samples}], processes, errors, truncated, python_version, pid, top_self,\n"
    "             top_total, ...}\n";

/* Everything derived from the samples. Arrays are indexed by thread / function id. */
struct info_stats {
    uint64_t *thread_samples, *thread_gil, *thread_idle;
    uint64_t *process_samples;          /* by process id: its threads' samples */
    uint64_t *self, *total;
    uint32_t top_self[INFO_TOP], top_total[INFO_TOP];
    size_t n_top_self, n_top_total;
    uint64_t bad;
    uint64_t overrun_events;
    double duration_s, achieved_hz;
    bool achieved_estimated;
};

/* Self and total counts per function: each distinct stack is walked once, weighted by how many
 * samples showed it; a function recursing in one stack counts once for "total". */
static int count_functions(const struct trace *t, struct info_stats *s)
{
    uint64_t *per_stack = calloc(t->n_stacks, sizeof *per_stack);
    uint32_t *mark = calloc(t->n_functions, sizeof *mark);
    if (!per_stack || !mark) {
        free(per_stack);
        free(mark);
        return -1;
    }
    for (size_t i = 0; i < t->n_samples; i++)
        per_stack[t->samples[i].stack]++;
    for (uint32_t k = 1; k < t->n_stacks; k++) {
        if (!per_stack[k])
            continue;
        s->self[t->stacks[k].function] += per_stack[k];
        /* parents have smaller ids (the loader checked), so this walk ends */
        for (uint32_t n = k; n != 0; n = t->stacks[n].parent) {
            uint32_t f = t->stacks[n].function;
            if (mark[f] != k) {
                mark[f] = k;
                s->total[f] += per_stack[k];
            }
        }
    }
    free(per_stack);
    free(mark);
    return 0;
}

/* The INFO_TOP functions with the highest counts (ties: lower id first); function 0 is unknown
 * code and is left out. */
static size_t top_functions(const uint64_t *count, size_t n, uint32_t *out)
{
    size_t k = 0;
    for (uint32_t f = 1; f < n; f++) {
        size_t pos;
        if (!count[f])
            continue;
        if (k < INFO_TOP)
            pos = k++;
        else if (count[f] <= count[out[INFO_TOP - 1]])
            continue;
        else
            pos = INFO_TOP - 1;
        for (; pos > 0 && count[out[pos - 1]] < count[f]; pos--)
            out[pos] = out[pos - 1];
        out[pos] = f;
    }
    return k;
}

static uint64_t last_time(const struct trace *t)
{
    if (t->has_trailer && t->summary.end_mono_ns)
        return t->summary.end_mono_ns;
    uint64_t last = t->start_mono_ns;
    for (size_t i = 0; i < t->n_samples; i++)
        last = t->samples[i].t_ns > last ? t->samples[i].t_ns : last;
    for (size_t i = 0; i < t->n_events; i++)
        last = t->events[i].t_ns > last ? t->events[i].t_ns : last;
    for (size_t i = 0; i < t->n_counters; i++)
        last = t->counters[i].t_ns > last ? t->counters[i].t_ns : last;
    return last;
}

static int compute_stats(const struct trace *t, struct info_stats *s)
{
    memset(s, 0, sizeof *s);
    s->thread_samples = calloc(t->n_threads, sizeof *s->thread_samples);
    s->thread_gil = calloc(t->n_threads, sizeof *s->thread_gil);
    s->thread_idle = calloc(t->n_threads, sizeof *s->thread_idle);
    s->process_samples = calloc(t->n_processes, sizeof *s->process_samples);
    s->self = calloc(t->n_functions, sizeof *s->self);
    s->total = calloc(t->n_functions, sizeof *s->total);
    if (!s->thread_samples || !s->thread_gil || !s->thread_idle || !s->process_samples ||
        !s->self || !s->total || count_functions(t, s) != 0)
        return -1;
    uint64_t busiest = 0;
    for (size_t i = 0; i < t->n_samples; i++) {
        const struct trace_sample *x = &t->samples[i];
        if (++s->thread_samples[x->thread] > busiest)
            busiest = s->thread_samples[x->thread];
        s->thread_gil[x->thread] += (x->flags & TRACE_F_GIL) != 0;
        s->thread_idle[x->thread] += (x->flags & TRACE_F_IDLE) != 0;
        s->process_samples[t->threads[x->thread].process]++;
        if (x->flags & TRACE_F_BAD)
            s->bad++;
    }
    for (size_t i = 0; i < t->n_events; i++)
        if (t->events[i].kind == TRACE_E_OVERRUN)
            s->overrun_events++;
    uint64_t end = last_time(t);
    s->duration_s = end > t->start_mono_ns ? (double)(end - t->start_mono_ns) / 1e9 : 0;
    if (t->has_trailer) {
        s->achieved_hz = t->summary.achieved_hz;
    } else {
        /* no trailer to say how many rounds ran: the busiest thread saw one sample per round */
        s->achieved_estimated = true;
        s->achieved_hz = s->duration_s > 0 ? (double)busiest / s->duration_s : 0;
    }
    s->n_top_self = top_functions(s->self, t->n_functions, s->top_self);
    s->n_top_total = top_functions(s->total, t->n_functions, s->top_total);
    return 0;
}

static void free_stats(struct info_stats *s)
{
    free(s->thread_samples);
    free(s->thread_gil);
    free(s->thread_idle);
    free(s->process_samples);
    free(s->self);
    free(s->total);
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

/* JSON has no NaN or infinity (and jansson refuses them); a damaged file may hold either. */
static double finite_or_0(double v)
{
    return isfinite(v) ? v : 0.0;
}

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ---- text ---------------------------------------------------------------------------------- */

static void print_function(const struct trace *t, uint32_t f, uint64_t n)
{
    const struct trace_function *fn = &t->functions[f];
    const char *q = trace_str(t, fn->qualname);
    if (trace_fn_native(t, f)) {
        printf("  %10" PRIu64 "  %5.1f%%  %s (%s) [native%s]\n", n, pct(n, t->n_samples),
               trace_str(t, fn->name), trace_str(t, fn->file),
               trace_fn_native(t, f)->approximate ? ", approximate" : "");
        return;
    }
    printf("  %10" PRIu64 "  %5.1f%%  %s (%s:%d)\n", n, pct(n, t->n_samples),
           *q ? q : trace_str(t, fn->name), trace_str(t, fn->file), (int)fn->first_line);
}

static void print_header(const struct trace *t, const char *path)
{
    char when[64];
    iso_time(t->start_wall_ns, when, sizeof when);
    printf("File:        %s\n", path);
    printf("Target:      %s, pid %" PRId64, t->name, t->pid);
    if (t->n_nspid) {
        printf(" (NSpid");
        for (size_t i = 0; i < t->n_nspid; i++)
            printf(" %" PRId64, t->nspid[i]);
        printf(")");
    }
    printf("\nPython:      %s (%s)\n", t->python_version, t->python_binary);
    printf("Command:     %s\n", t->cmdline);
    printf("Host:        %s\n", t->host);
    printf("Recorded by: pytrace %s\n", t->pytrace_version);
    if (t->recording_id[0])
        printf("Rotation:    file %u of recording %s (pytrace daemon)\n", t->rotation_seq,
               t->recording_id);
    printf("Started:     %s (CLOCK_MONOTONIC %" PRIu64 " ns)\n", when, t->start_mono_ns);
}

/* The rule chain, one rule per line, and what the rules removed (the trailer's counts). */
static void print_filters(const struct trace *t)
{
    printf("Filters:     %s", *t->filters ? "" : "none\n");
    for (const char *p = t->filters; *p;) {
        size_t n = strcspn(p, "\n");
        printf("%s%.*s\n", p == t->filters ? "" : "             ", (int)n, p);
        p += n + (p[n] == '\n');
    }
    if (t->has_trailer)
        printf("Removed:     %" PRIu64 " values redacted, %" PRIu64 " dropped, %" PRIu64
               " frames excluded or folded\n", t->summary.redacted, t->summary.dropped,
               t->summary.excluded);
}

static void print_text(const struct trace *t, const struct info_stats *s, const char *path)
{
    print_header(t, path);
    printf("Duration:    %.3f s\n", s->duration_s);
    printf("Rate:        %g Hz asked, %.1f Hz achieved%s%s%s\n", t->rate_hz, s->achieved_hz,
           s->achieved_estimated ? " (estimated: no trailer)" : "",
           t->blocking ? ", blocking" : "", t->native ? ", native" : "");
    printf("Samples:     %zu\n", t->n_samples);
    printf("Errors:      %" PRIu64 " (%.2f%% of samples were torn reads)\n", s->bad,
           pct(s->bad, t->n_samples));
    if (t->has_trailer)
        printf("Missed:      %" PRIu64 " rounds missed, %" PRIu64 " overruns\n",
               t->summary.missed, t->summary.overruns);
    if (t->has_trailer && t->summary.walks && t->summary.busy_ns)
        printf("Cost:        %.1f us of sampling work per round (wall clock, waits excluded)\n",
               (double)t->summary.busy_ns / 1e3 / (double)t->summary.walks);
    else
        printf("Missed:      unknown (no trailer), %" PRIu64 " overrun events\n",
               s->overrun_events);
    if (t->truncated)
        printf("Truncated:   yes, valid up to byte %" PRIu64 "\n", t->valid_bytes);
    else
        printf("Truncated:   no (%" PRIu64 " bytes)\n", t->valid_bytes);
    printf("Tags:        ");
    for (size_t i = 0; i < t->n_tags; i++)
        printf("%s%s=%s", i ? ", " : "", t->tag_keys[i], t->tag_values[i]);
    printf("%s\n", t->n_tags ? "" : "none");
    print_filters(t);
    if (t->has_locals)
        printf("Locals:      recorded (--locals): each call's arguments and locals\n");
    if (t->backend && *t->backend)
        printf("Backend:     %s\n", t->backend);

    printf("\nThreads (%zu):\n  %10s  %10s  %6s  %6s  %s\n", t->n_threads - 1, "tid", "samples",
           "GIL", "idle", "name");
    for (uint32_t i = 1; i < t->n_threads; i++)
        printf("  %10" PRId64 "  %10" PRIu64 "  %5.1f%%  %5.1f%%  %s\n", t->threads[i].tid,
               s->thread_samples[i], pct(s->thread_gil[i], s->thread_samples[i]),
               pct(s->thread_idle[i], s->thread_samples[i]), trace_str(t, t->threads[i].name));
    printf("\nProcesses (%zu):\n", t->n_processes - 1);
    for (uint32_t i = 1; i < t->n_processes; i++) {
        const struct trace_process *p = &t->processes[i];
        printf("  pid %" PRId64 " (ns %" PRId64 "), %" PRIu64 " samples, Python %s: %s\n", p->pid,
               p->nspid, s->process_samples[i], trace_str(t, p->python_version),
               trace_str(t, p->cmdline));
    }
    printf("\nTop functions by self samples:\n");
    for (size_t i = 0; i < s->n_top_self; i++)
        print_function(t, s->top_self[i], s->self[s->top_self[i]]);
    printf("\nTop functions by total samples:\n");
    for (size_t i = 0; i < s->n_top_total; i++)
        print_function(t, s->top_total[i], s->total[s->top_total[i]]);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *top_json(const struct trace *t, const uint32_t *top, size_t n,
                        const uint64_t *count)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct trace_function *fn = &t->functions[top[i]];
        const struct trace_fn_native *nat = trace_fn_native(t, top[i]);
        json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:f}",
            "function", trace_str(t, fn->name), "qualname", trace_str(t, fn->qualname),
            "file", trace_str(t, fn->file), "line", (int)fn->first_line,
            "samples", (json_int_t)count[top[i]], "percent", pct(count[top[i]], t->n_samples));
        json_object_set_new(j, "kind", json_string(nat ? "native" : "python"));
        if (nat)
            json_object_set_new(j, "approximate", json_boolean(nat->approximate));
        json_array_append_new(arr, j);
    }
    return arr;
}

static json_t *threads_json(const struct trace *t, const struct info_stats *s)
{
    json_t *arr = json_array();
    for (uint32_t i = 1; i < t->n_threads; i++) {
        const struct trace_thread *th = &t->threads[i];
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
            "name", trace_str(t, th->name), "tid", (json_int_t)th->tid,
            "thread_id", (json_int_t)th->thread_id, "process", (json_int_t)th->process,
            "samples", (json_int_t)s->thread_samples[i],
            "gil_samples", (json_int_t)s->thread_gil[i],
            "idle_samples", (json_int_t)s->thread_idle[i]));
    }
    return arr;
}

static json_t *processes_json(const struct trace *t, const struct info_stats *s)
{
    json_t *arr = json_array();
    for (uint32_t i = 1; i < t->n_processes; i++) {
        const struct trace_process *p = &t->processes[i];
        json_array_append_new(arr, json_pack("{s:I, s:I, s:s, s:s, s:I, s:I}",
            "pid", (json_int_t)p->pid, "nspid", (json_int_t)p->nspid,
            "cmdline", trace_str(t, p->cmdline),
            "python_version", trace_str(t, p->python_version), "parent", (json_int_t)p->parent,
            "samples", (json_int_t)s->process_samples[i]));
    }
    return arr;
}

static int print_json(const struct trace *t, const struct info_stats *s, const char *path)
{
    char when[64];
    iso_time(t->start_wall_ns, when, sizeof when);
    json_t *nspid = json_array(), *tags = json_object();
    for (size_t i = 0; i < t->n_nspid; i++)
        json_array_append_new(nspid, json_integer(t->nspid[i]));
    for (size_t i = 0; i < t->n_tags; i++)
        json_object_set_new(tags, t->tag_keys[i], json_string(t->tag_values[i]));
    json_t *root = json_pack(
        "{s:s, s:I, s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:b,"
        " s:b, s:b, s:I, s:I, s:f, s:o, s:o, s:b, s:I, s:o, s:s, s:o, s:o}",
        "file", path, "pid", (json_int_t)t->pid, "nspid", nspid, "name", t->name,
        "python_version", t->python_version, "python_binary", t->python_binary,
        "cmdline", t->cmdline, "host", t->host, "pytrace_version", t->pytrace_version,
        "start", when, "start_wall_ns", (json_int_t)t->start_wall_ns,
        "start_mono_ns", (json_int_t)t->start_mono_ns, "duration_s", s->duration_s,
        "rate_hz", finite_or_0(t->rate_hz), "achieved_hz", finite_or_0(s->achieved_hz),
        "achieved_estimated", s->achieved_estimated, "blocking", t->blocking,
        "native", t->native, "samples", (json_int_t)t->n_samples, "errors", (json_int_t)s->bad,
        "error_percent", pct(s->bad, t->n_samples), "threads", threads_json(t, s),
        "processes", processes_json(t, s), "truncated", t->truncated,
        "valid_bytes", (json_int_t)t->valid_bytes, "tags", tags, "filters", t->filters,
        "top_self", top_json(t, s->top_self, s->n_top_self, s->self),
        "top_total", top_json(t, s->top_total, s->n_top_total, s->total));
    if (!root)
        return PT_EFAIL;
    json_object_set_new(root, "locals", json_boolean(t->has_locals));
    if (t->recording_id[0]) {   /* a daemon's rotated file */
        json_object_set_new(root, "recording_id", json_string(t->recording_id));
        json_object_set_new(root, "rotation_seq", json_integer((json_int_t)t->rotation_seq));
    }
    if (t->backend && *t->backend)
        json_object_set_new(root, "backend", json_string(t->backend));
    if (t->has_trailer) {
        json_object_set_new(root, "redacted", json_integer((json_int_t)t->summary.redacted));
        json_object_set_new(root, "dropped", json_integer((json_int_t)t->summary.dropped));
        json_object_set_new(root, "missed", json_integer((json_int_t)t->summary.missed));
        json_object_set_new(root, "overruns", json_integer((json_int_t)t->summary.overruns));
        json_object_set_new(root, "walks", json_integer((json_int_t)t->summary.walks));
        json_object_set_new(root, "busy_ns", json_integer((json_int_t)t->summary.busy_ns));
        json_object_set_new(root, "redacted", json_integer((json_int_t)t->summary.redacted));
        json_object_set_new(root, "dropped", json_integer((json_int_t)t->summary.dropped));
        json_object_set_new(root, "excluded", json_integer((json_int_t)t->summary.excluded));
    } else {
        json_object_set_new(root, "missed", json_null());
        json_object_set_new(root, "overruns", json_null());
    }
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12)) == 0 ? 0 : PT_EFAIL;
    putchar('\n');
    json_decref(root);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(info_usage, stdout); return 0;
        default: return cli_usage_error("info", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("info", "expected exactly one FILE");
    const char *path = argv[optind];
    if (!json)
        term_filter_stdout();   /* names from the target never drive the terminal */

    struct pt_err err;
    pt_err_clear(&err);
    struct trace *t = NULL;
    if (trace_load(path, &t, &err) != PT_OK)
        return cli_report(&err);
    if (t->truncated)
        fprintf(stderr, "pytrace: %s is truncated after %" PRIu64 " bytes (recording "
                "interrupted?); showing what it holds\n", path, t->valid_bytes);
    struct info_stats s;
    int rc = 0;
    if (compute_stats(t, &s) != 0) {
        fprintf(stderr, "pytrace: out of memory summarizing %s\n", path);
        rc = PT_EFAIL;
    } else if (json) {
        rc = print_json(t, &s, path);
    } else {
        print_text(t, &s, path);
    }
    free_stats(&s);
    trace_free(t);
    return rc;
}
