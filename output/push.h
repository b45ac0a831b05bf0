/*
 * push.h — the daemon's sinks: finished .pytrace files sent where the team looks, off the
 * sampling thread.
 *
 * push_file() only queues a path (a bounded queue; a full queue drops the file for the sinks and
 * counts it — the local file stays). One thread takes files in order, loads each, and for every
 * configured sink builds the body with the exporters and POSTs it with libcurl:
 *   OTLP   the file's spans (export_otlp) to otlp_url, an OTLP/HTTP /v1/traces endpoint;
 *   pprof  a gzipped profile.proto (export_pprof) to a Pyroscope-compatible
 *          <pprof_url>/ingest?name=APP{pid=..,nspid=..}&from=..&until=..&format=pprof
 * A failed POST (no connection, timeout, HTTP status outside 2xx) is retried with exponential
 * backoff; when the attempts are used up the file is dropped for that sink and counted. The local
 * file is never touched here. push_stop() lets the thread finish within a grace time, then aborts
 * the transfer in flight and counts everything not sent as dropped — so SIGTERM is never held up
 * by a hanging receiver.
 */
#ifndef PT_PUSH_H
#define PT_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum push_kind { PUSH_OTLP = 0, PUSH_PPROF = 1, PUSH_KINDS = 2 };

struct push_opts {
    const char *otlp_url;         /* NULL: no OTLP sink */
    const char *pprof_url;        /* NULL: no pprof sink */
    const char *const *headers;   /* "K=V", sent to both sinks */
    size_t n_headers;
    const char *service;          /* OTLP service.name and pprof app name; NULL: the trace's name */
    size_t queue_cap;             /* 0 = 64 files */
    int attempts;                 /* POSTs per file and sink; 0 = 5 */
    double backoff_s;             /* wait before the first retry, doubling; 0 = 0.5 s */
    double timeout_s;             /* per POST; 0 = 10 s */
    /* Called on the push thread after each file and sink: ok, or the last failure's message. */
    void (*note)(void *ctx, enum push_kind kind, const char *path, bool ok, const char *msg);
    void *ctx;
};

struct push_stats {
    uint64_t queued;              /* files accepted into the queue */
    uint64_t queue_full;          /* files refused because the queue was full */
    struct {
        uint64_t sent;            /* files delivered */
        uint64_t failures;        /* failed POST attempts (retried or not) */
        uint64_t dropped;         /* files not delivered: queue full, attempts used up, shutdown */
    } k[PUSH_KINDS];
};

struct push;

/* Starts the push thread (none when neither URL is set: push_file then does nothing). */
enum pt_status push_new(struct push **out, const struct push_opts *o, struct pt_err *err);

/* Queues a finished file; never blocks. False when it was dropped (queue full). */
bool push_file(struct push *p, const char *path);

void push_get_stats(struct push *p, struct push_stats *out);

/* Sends what it can within grace_ns, then aborts, counts the rest as dropped, and frees p.
 * *out gets the final counts (may be NULL). */
void push_stop(struct push *p, uint64_t grace_ns, struct push_stats *out);

#endif
