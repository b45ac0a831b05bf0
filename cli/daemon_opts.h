/*
 * daemon_opts.h — `pytrace daemon`'s options, and its log: one `level time message` line per
 * event on stderr (time in UTC, ISO 8601 with milliseconds).
 */
#ifndef PT_DAEMON_OPTS_H
#define PT_DAEMON_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "output/trace.h"

#define DAEMON_MAX_OPTS 64

enum { DLOG_DEBUG = 0, DLOG_INFO = 1, DLOG_WARN = 2, DLOG_ERROR = 3 };

struct daemon_cli {
    double rate_hz, duration_s, jitter;
    const char *match, *cgroup, *dir;
    long uid;
    bool by_date;
    uint64_t rotate_ns, rotate_bytes, max_disk, status_ns;
    const char *otlp, *pprof, *service;
    const char *headers[DAEMON_MAX_OPTS];
    size_t n_headers;
    struct trace_tag tags[DAEMON_MAX_OPTS];
    size_t n_tags;
    int push_attempts;
    double push_backoff, push_timeout;
    int log_level;
    const char *filters[DAEMON_MAX_OPTS];   /* --filter FILE (rules, docs/filters.md) */
    size_t n_filters;
    bool no_stdlib;
    bool ebpf;                          /* --ebpf: one BPF sampler for every process */
};

extern const char daemon_usage[];

/* 0, -1 for --help, or an exit code (usage error already printed). */
int daemon_parse(int argc, char **argv, struct daemon_cli *o);

void dlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
