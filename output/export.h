/*
 * export.h — from a loaded .pytrace to the formats users' tools open.
 *
 * Every exporter reads a struct export_view: the trace plus the user's selection (threads, time
 * window, excluded files/modules, idle and GIL filters), resolved once into lookup tables so each
 * exporter only asks "is this sample / span / frame in?". Exporters write to a FILE (binary
 * formats too) and return PT_OK or fill err.
 */
#ifndef PT_EXPORT_H
#define PT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "output/trace.h"
#include "util/err.h"

struct rules;

struct export_opts {
    const char *const *threads;   /* --thread: name glob or tid; none = all */
    size_t n_threads;
    double from_s, to_s;          /* --from/--to: seconds since the trace's start; to_s < 0: end */
    const char *const *exclude;   /* --exclude: glob over file paths or dotted module names;
                                   * each is the rules `exclude file:P` and `exclude module:P`
                                   * applied after `rules` */
    size_t n_exclude;
    const struct rules *rules;    /* --filter/--no-stdlib frame rules (util/rules.h); NULL none */
    bool no_idle;                 /* drop samples of threads that were not running */
    bool gil_only;                /* keep only samples of threads holding the GIL */
    /* OTLP */
    const char *endpoint;         /* POST here instead of writing a file */
    const char *const *headers;   /* "K=V" */
    size_t n_headers;
    const char *service;          /* service.name; default: the trace's name */
};

struct export_view {
    const struct trace *t;
    const struct export_opts *o;
    uint64_t t0, t1;              /* selected CLOCK_MONOTONIC window [t0, t1] */
    bool *thread_ok;              /* by thread id */
    bool *function_excluded;      /* by function id: exclude rules and --exclude */
    bool *function_folded;        /* by function id: fold rules */
    bool *span_hidden;            /* by span index: excluded, or folded under a folded caller;
                                   * NULL when no function is folded */
    uint64_t samples_kept;        /* samples passing the filters */
    double period_ns;             /* what one sample stands for: 1 / achieved rate (the asked
                                   * rate when the trace has no trailer) */
};

enum pt_status export_view_init(struct export_view *v, const struct trace *t,
                                const struct export_opts *o, struct pt_err *err);
void export_view_free(struct export_view *v);

bool export_sample_ok(const struct export_view *v, const struct trace_sample *s);
bool export_span_ok(const struct export_view *v, const struct tl_span *s);

/* One frame of an exported stack. */
struct export_frame {
    uint32_t function;
    int32_t line;
};

/* The stack ending at trie node `leaf`, root first, excluded frames removed and each run of
 * folded frames reduced to its outermost one (docs/filters.md). Returns the depth (frames
 * written up to cap; deeper stacks keep their innermost cap frames). */
size_t export_stack(const struct export_view *v, uint32_t leaf, struct export_frame *out,
                    size_t cap);

/* "function (file:line)", the frame label of collapsed stacks. */
int export_frame_label(const struct export_view *v, const struct export_frame *f, char *out,
                       size_t cap);

/* Span start/end under the midpoint estimator of docs/timing.md. */
uint64_t export_span_begin(const struct tl_span *s);
uint64_t export_span_end(const struct tl_span *s);

#define EXPORT_MAX_DEPTH 4096

typedef enum pt_status (*export_fn)(const struct export_view *v, FILE *out, struct pt_err *err);

enum pt_status export_ndjson(const struct export_view *v, FILE *out, struct pt_err *err);
enum pt_status export_collapsed(const struct export_view *v, FILE *out, struct pt_err *err);
enum pt_status export_chrome(const struct export_view *v, FILE *out, struct pt_err *err);
enum pt_status export_speedscope(const struct export_view *v, FILE *out, struct pt_err *err);
enum pt_status export_pprof(const struct export_view *v, FILE *out, struct pt_err *err);
enum pt_status export_perfetto(const struct export_view *v, FILE *out, struct pt_err *err);
/* Writes the OTLP ExportTraceServiceRequest to out, or POSTs it when o->endpoint is set. */
enum pt_status export_otlp(const struct export_view *v, FILE *out, struct pt_err *err);

#endif
