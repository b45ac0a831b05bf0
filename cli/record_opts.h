/*
 * record_opts.h — the options `attach` and `run` share, parsed once, and the common tail of both
 * verbs: open the trace, run the session, print the summary.
 */
#ifndef PT_RECORD_OPTS_H
#define PT_RECORD_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach/session.h"
#include "output/trace.h"

#define REC_MAX_TAGS 64
#define REC_MAX_THREADS 64
#define REC_MAX_FILTERS 32

struct record_cli {
    double rate_hz;
    double duration_s;
    const char *output;
    const char *name;
    bool blocking, subprocesses, native, quiet, gil, idle;
    bool locals;                 /* --locals: spans carry their call's variables */
    bool ebpf;                  /* --ebpf: sample with the BPF backend (attach/ebpf.h) */
    double jitter;
    uint64_t max_size;
    struct trace_tag tags[REC_MAX_TAGS];
    size_t n_tags;
    const char *threads[REC_MAX_THREADS];
    size_t n_threads;
    const char *filters[REC_MAX_FILTERS];   /* --filter FILE, in order (docs/filters.md) */
    size_t n_filters;
    bool no_stdlib;                         /* --no-stdlib: fold standard-library frames */
    const char *output_dir;                 /* --output-dir: directory of the default file */
    const char *config;                     /* --config FILE (docs/config.md) */
};

/* Parses argv from optind-style index 1; stops at the first non-option (attach's PID) or at "--"
 * (run's command). Values from configuration files and PYTRACE_* variables come first, the
 * command line wins (cli/record_config.h); the rule files are loaded too. Returns 0 and sets
 * *next to the first unparsed index, or an exit code. */
int record_parse(const char *verb, int argc, char **argv, struct record_cli *o, int *next);

/* Usage text of the shared options. */
extern const char record_usage[];

/* Opens the trace for root (may be NULL with --subprocesses), records, prints the summary.
 * Returns the process exit code for the recording (0 ok); *res gets the session result. */
int record_and_report(const struct record_cli *o, struct py_proc *root, pid_t root_pid,
                      pid_t child_pid, volatile int *stop, struct session_result *res);

#endif
