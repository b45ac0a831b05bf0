/*
 * test_export_otlp.c — output/export_otlp.c: a small trace exported to memory unpacks with
 * protobuf-c into the resource, spans, parent links (each parent exists, shares the trace and
 * encloses its child), Unix times and attributes it should; --exclude re-links past a dropped
 * caller; each traced process is a resource of its own. POSTing to a collector on 127.0.0.1 (a
 * thread here) splits a large trace into requests under 4 MB, sends --header, and reports a
 * refusal or an unreachable collector in one line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "output/export.h"
#include "otlp.pb-c.h"

#define T0 5000000000000ULL                 /* CLOCK_MONOTONIC at the trace's start */
#define W0 1700000000000000000ULL           /* CLOCK_REALTIME at the same instant */
#define MS 1000000ULL

/* ---- A small trace, built in memory -------------------------------------------------------- */

enum { S_NONE, S_MAIN, S_WORK, S_LEAF, S_MAINPY, S_LIBPY, S_MAINTHREAD, S_WORKER, S_WORKQUAL,
       S_NAME, S_CMD, S_HOST, S_PYVER, S_PTVER, N_STRINGS };
enum { F_NONE, F_MAIN, F_WORK, F_LEAF, N_FUNCS };

static char *strings[N_STRINGS] = {
    "", "main", "work", "leaf", "/app/main.py", "/app/lib.py", "MainThread", "worker-0",
    "Worker.work", "demo", "python3 /app/main.py --fast", "box1", "3.11.7", "0.1.0",
};
static struct trace_function functions[N_FUNCS] = {
    { 0 },
    { S_MAIN, S_MAIN, S_MAINPY, 10 },
    { S_WORK, S_WORKQUAL, S_LIBPY, 20 },
    { S_LEAF, S_LEAF, S_MAINPY, 30 },
};
static struct trace_process processes[2] = { { 0 }, { 4242, 4242, S_CMD, S_PYVER, 0 } };
static struct trace_thread threads[3] = {
    { 0 }, { 1, 4242, 0x7f00, S_MAINTHREAD }, { 1, 4250, 0x7f01, S_WORKER },
};

/* A span seen first at begin (last unseen at begin_lo) and last at end (first unseen at end_hi),
 * times in ms after T0. */
static struct tl_span span(uint32_t thread, uint32_t fn, uint32_t depth, uint64_t lo, uint64_t b,
                           uint64_t e, uint64_t hi)
{
    return (struct tl_span){ .thread = thread, .function = fn, .depth = depth, .call_line = -1,
                             .begin_lo = T0 + lo * MS, .begin = T0 + b * MS, .end = T0 + e * MS,
                             .end_hi = T0 + hi * MS, .samples = 1 };
}

/* Main thread: main [10, 90] > work [20, 40] > leaf [30, 30], then main > work [50, 80].
 * Worker thread: work (already running at the start, still at the end) > leaf [10, 60], whose
 * midpoint end would pass its caller's end without the clamp. Spans are in end order, as
 * recorded (innermost first). */
static struct tl_span spans[6];

static struct trace trace;

static void build_trace(void)
{
    spans[0] = span(1, F_LEAF, 2, 29, 30, 30, 31);
    spans[1] = span(1, F_WORK, 1, 19, 20, 40, 41);
    spans[2] = span(1, F_WORK, 1, 49, 50, 80, 81);
    spans[3] = span(1, F_MAIN, 0, 9, 10, 90, 91);
    spans[4] = span(2, F_LEAF, 1, 9, 10, 60, 62);
    spans[5] = span(2, F_WORK, 0, 0, 0, 60, 60);
    spans[5].open_begin = spans[5].open_end = true;
    trace = (struct trace){
        .pid = 4242, .name = strings[S_NAME], .python_version = strings[S_PYVER],
        .cmdline = strings[S_CMD], .host = strings[S_HOST], .pytrace_version = strings[S_PTVER],
        .start_wall_ns = W0, .start_mono_ns = T0, .rate_hz = 1000,
        .strings = strings, .n_strings = N_STRINGS,
        .functions = functions, .n_functions = N_FUNCS,
        .processes = processes, .n_processes = 2,
        .threads = threads, .n_threads = 3,
        .spans = spans, .n_spans = sizeof spans / sizeof *spans,
        .has_trailer = true,
    };
}

/* Exports t with opts to memory and unpacks the request. */
static PtOtlp__ExportTraceServiceRequest *export_mem(const struct trace *t,
                                                     const struct export_opts *opts)
{
    struct export_view v;
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(export_view_init(&v, t, opts, &err), PT_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    enum pt_status rc = export_otlp(&v, out, &err);
    fclose(out);
    export_view_free(&v);
    if (rc != PT_OK)
        fail_msg("export_otlp: %s", err.msg);
    PtOtlp__ExportTraceServiceRequest *req =
        pt_otlp__export_trace_service_request__unpack(NULL, len, (uint8_t *)buf);
    free(buf);
    assert_non_null(req);
    return req;
}

static const PtOtlp__AnyValue *attr(PtOtlp__KeyValue **kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kvs[i]->key, key))
            return kvs[i]->value;
    return NULL;
}

static void assert_str_attr(PtOtlp__KeyValue **kvs, size_t n, const char *key, const char *want)
{
    const PtOtlp__AnyValue *v = attr(kvs, n, key);
    if (!v)
        fail_msg("attribute %s missing", key);
    assert_int_equal(v->value_case, PT_OTLP__ANY_VALUE__VALUE_STRING_VALUE);
    assert_string_equal(v->string_value, want);
}

static void assert_int_attr(PtOtlp__KeyValue **kvs, size_t n, const char *key, int64_t want)
{
    const PtOtlp__AnyValue *v = attr(kvs, n, key);
    if (!v)
        fail_msg("attribute %s missing", key);
    assert_int_equal(v->value_case, PT_OTLP__ANY_VALUE__VALUE_INT_VALUE);
    assert_int_equal(v->int_value, want);
}

/* Every span of the request, in order. */
static size_t all_spans(const PtOtlp__ExportTraceServiceRequest *req, PtOtlp__Span **out,
                        size_t cap)
{
    size_t n = 0;
    for (size_t r = 0; r < req->n_resource_spans; r++)
        for (size_t s = 0; s < req->resource_spans[r]->n_scope_spans; s++) {
            const PtOtlp__ScopeSpans *ss = req->resource_spans[r]->scope_spans[s];
            for (size_t k = 0; k < ss->n_spans; k++) {
                assert_true(n < cap);
                out[n++] = ss->spans[k];
            }
        }
    return n;
}

static PtOtlp__Span *find_parent(PtOtlp__Span **all, size_t n, const PtOtlp__Span *child)
{
    for (size_t i = 0; i < n; i++)
        if (all[i]->span_id.len == 8 &&
            !memcmp(all[i]->span_id.data, child->parent_span_id.data, 8))
            return all[i];
    return NULL;
}

/* The span called name that starts ns after the trace's start. */
static PtOtlp__Span *by_name_start(PtOtlp__Span **all, size_t n, const char *name, uint64_t ns)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(all[i]->name, name) && all[i]->start_time_unix_nano == W0 + ns)
            return all[i];
    fail_msg("no span %s starting %llu ns in", name, (unsigned long long)ns);
    return NULL;
}

/* ---- Files ------------------------------------------------------------------------------- */

static void test_resource_names_the_process_and_service(void **state)
{
    (void)state;
    struct export_opts o = { .to_s = -1 };
    PtOtlp__ExportTraceServiceRequest *req = export_mem(&trace, &o);
    assert_int_equal(req->n_resource_spans, 1);
    const PtOtlp__Resource *res = req->resource_spans[0]->resource;
    assert_non_null(res);
    assert_str_attr(res->attributes, res->n_attributes, "service.name", "demo");
    assert_int_attr(res->attributes, res->n_attributes, "process.pid", 4242);
    assert_str_attr(res->attributes, res->n_attributes, "process.command_line",
                    "python3 /app/main.py --fast");
    assert_str_attr(res->attributes, res->n_attributes, "host.name", "box1");
    assert_str_attr(res->attributes, res->n_attributes, "process.runtime.name", "CPython");
    assert_str_attr(res->attributes, res->n_attributes, "process.runtime.version", "3.11.7");
    assert_int_equal(req->resource_spans[0]->n_scope_spans, 1);
    assert_string_equal(req->resource_spans[0]->scope_spans[0]->scope->name, "pytrace");
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);

    o.service = "checkout";
    req = export_mem(&trace, &o);
    res = req->resource_spans[0]->resource;
    assert_str_attr(res->attributes, res->n_attributes, "service.name", "checkout");
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
}

static void test_every_parent_exists_and_encloses_its_child(void **state)
{
    (void)state;
    struct export_opts o = { .to_s = -1 };
    PtOtlp__ExportTraceServiceRequest *req = export_mem(&trace, &o);
    PtOtlp__Span *all[16];
    size_t n = all_spans(req, all, 16);
    assert_int_equal(n, 6);
    size_t roots = 0;
    for (size_t i = 0; i < n; i++) {
        const PtOtlp__Span *s = all[i];
        assert_int_equal(s->trace_id.len, 16);
        assert_int_equal(s->span_id.len, 8);
        assert_true(s->start_time_unix_nano <= s->end_time_unix_nano);
        assert_int_equal(s->kind, PT_OTLP__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL);
        if (!s->parent_span_id.len) {
            roots++;
            continue;
        }
        const PtOtlp__Span *p = find_parent(all, n, s);
        if (!p)
            fail_msg("parent of %s is not in the export", s->name);
        assert_memory_equal(p->trace_id.data, s->trace_id.data, 16);
        assert_true(p->start_time_unix_nano <= s->start_time_unix_nano);
        assert_true(s->end_time_unix_nano <= p->end_time_unix_nano);
    }
    assert_int_equal(roots, 2);   /* main on the main thread, work on the worker */
    PtOtlp__Span *leaf = by_name_start(all, n, "leaf", 29500000);
    PtOtlp__Span *work1 = by_name_start(all, n, "Worker.work", 19500000);
    PtOtlp__Span *work2 = by_name_start(all, n, "Worker.work", 49500000);
    PtOtlp__Span *main = by_name_start(all, n, "main", 9500000);
    assert_ptr_equal(find_parent(all, n, leaf), work1);
    assert_ptr_equal(find_parent(all, n, work1), main);
    assert_ptr_equal(find_parent(all, n, work2), main);
    /* Each thread's top-level call is a trace of its own. */
    PtOtlp__Span *wwork = by_name_start(all, n, "Worker.work", 0);
    assert_memory_not_equal(main->trace_id.data, wwork->trace_id.data, 16);
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
}

static void test_times_are_unix_ns_by_the_midpoint_estimator(void **state)
{
    (void)state;
    struct export_opts o = { .to_s = -1 };
    PtOtlp__ExportTraceServiceRequest *req = export_mem(&trace, &o);
    PtOtlp__Span *all[16];
    size_t n = all_spans(req, all, 16);
    PtOtlp__Span *main = by_name_start(all, n, "main", 9500000);
    assert_int_equal(main->end_time_unix_nano, W0 + 90500000);
    /* Open at both ends: its sightings are the best bounds. */
    PtOtlp__Span *wwork = by_name_start(all, n, "Worker.work", 0);
    assert_int_equal(wwork->end_time_unix_nano, W0 + 60 * MS);
    /* The worker's leaf ends at midpoint 61 ms, past its caller's last sighting: clamped. */
    PtOtlp__Span *wleaf = by_name_start(all, n, "leaf", 9500000);
    assert_int_equal(wleaf->end_time_unix_nano, W0 + 60 * MS);
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
}

static void test_span_attributes_name_code_and_thread(void **state)
{
    (void)state;
    struct export_opts o = { .to_s = -1 };
    PtOtlp__ExportTraceServiceRequest *req = export_mem(&trace, &o);
    PtOtlp__Span *all[16];
    size_t n = all_spans(req, all, 16);
    PtOtlp__Span *work = by_name_start(all, n, "Worker.work", 19500000);
    assert_str_attr(work->attributes, work->n_attributes, "code.function", "work");
    assert_str_attr(work->attributes, work->n_attributes, "code.filepath", "/app/lib.py");
    assert_int_attr(work->attributes, work->n_attributes, "code.lineno", 20);
    assert_int_attr(work->attributes, work->n_attributes, "thread.id", 4242);
    assert_str_attr(work->attributes, work->n_attributes, "thread.name", "MainThread");
    PtOtlp__Span *wleaf = by_name_start(all, n, "leaf", 9500000);
    assert_int_attr(wleaf->attributes, wleaf->n_attributes, "thread.id", 4250);
    assert_str_attr(wleaf->attributes, wleaf->n_attributes, "thread.name", "worker-0");
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
}

static void test_excluded_caller_links_to_the_next_enclosing_call(void **state)
{
    (void)state;
    const char *exclude[] = { "*/lib.py" };
    struct export_opts o = { .to_s = -1, .exclude = exclude, .n_exclude = 1 };
    PtOtlp__ExportTraceServiceRequest *req = export_mem(&trace, &o);
    PtOtlp__Span *all[16];
    size_t n = all_spans(req, all, 16);
    assert_int_equal(n, 3);   /* main, and leaf twice */
    PtOtlp__Span *leaf = by_name_start(all, n, "leaf", 29500000);
    PtOtlp__Span *main = by_name_start(all, n, "main", 9500000);
    assert_ptr_equal(find_parent(all, n, leaf), main);
    PtOtlp__Span *wleaf = by_name_start(all, n, "leaf", 9500000);
    assert_int_equal(wleaf->parent_span_id.len, 0);
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
}

static void test_no_selected_span_still_names_the_resource(void **state)
{
    (void)state;
    const char *only[] = { "no-such-thread" };
    struct export_opts o = { .to_s = -1, .threads = only, .n_threads = 1 };
    PtOtlp__ExportTraceServiceRequest *req = export_mem(&trace, &o);
    assert_int_equal(req->n_resource_spans, 1);
    const PtOtlp__Resource *res = req->resource_spans[0]->resource;
    assert_int_attr(res->attributes, res->n_attributes, "process.pid", 4242);
    PtOtlp__Span *all[4];
    assert_int_equal(all_spans(req, all, 4), 0);
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
}

static void test_each_process_is_a_resource(void **state)
{
    (void)state;
    /* A subprocess (pid 4300, its own command line) with one thread that ran main once. */
    static char *strs[N_STRINGS + 2];
    memcpy(strs, strings, sizeof strings);
    strs[N_STRINGS] = "python3 child.py";
    strs[N_STRINGS + 1] = "child-main";
    struct trace_process procs[3] = { processes[0], processes[1],
                                      { 4300, 1, N_STRINGS, S_PYVER, 1 } };
    struct trace_thread ths[4] = { threads[0], threads[1], threads[2],
                                   { 2, 4300, 0x9000, N_STRINGS + 1 } };
    struct tl_span sp[7];
    memcpy(sp, spans, sizeof spans);
    sp[6] = span(3, F_MAIN, 0, 4, 5, 7, 8);
    struct trace t = trace;
    t.strings = strs;
    t.n_strings = N_STRINGS + 2;
    t.processes = procs;
    t.n_processes = 3;
    t.threads = ths;
    t.n_threads = 4;
    t.spans = sp;
    t.n_spans = 7;
    struct export_opts o = { .to_s = -1 };
    PtOtlp__ExportTraceServiceRequest *req = export_mem(&t, &o);
    assert_int_equal(req->n_resource_spans, 2);
    const PtOtlp__ResourceSpans *child = req->resource_spans[1];
    assert_int_attr(child->resource->attributes, child->resource->n_attributes, "process.pid",
                    4300);
    assert_str_attr(child->resource->attributes, child->resource->n_attributes,
                    "process.command_line", "python3 child.py");
    assert_str_attr(child->resource->attributes, child->resource->n_attributes, "service.name",
                    "demo");
    assert_int_equal(child->scope_spans[0]->n_spans, 1);
    assert_int_equal(req->resource_spans[0]->scope_spans[0]->n_spans, 6);
    pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
}

/* ---- A collector on 127.0.0.1 -------------------------------------------------------------- */

#define MAX_POSTS 64

struct collector {
    int fd, port, status;                   /* status: what every request is answered */
    pthread_t thread;
    size_t n_posts;
    char *bodies[MAX_POSTS];
    size_t lens[MAX_POSTS];
    char headers[MAX_POSTS][2048];
};

/* Reads one request (headers, then Content-Length bytes) from conn; false at EOF. */
static bool collector_read(struct collector *c, int conn)
{
    char head[2048];
    size_t got = 0;
    while (got < sizeof head - 1) {
        ssize_t r = recv(conn, head + got, 1, 0);
        if (r <= 0)
            return false;
        got++;
        if (got >= 4 && !memcmp(head + got - 4, "\r\n\r\n", 4))
            break;
    }
    head[got] = '\0';
    const char *cl = strcasestr(head, "\r\ncontent-length:");
    size_t len = cl ? strtoul(cl + 17, NULL, 10) : 0;
    char *body = malloc(len ? len : 1);
    for (size_t off = 0; off < len;) {
        ssize_t r = recv(conn, body + off, len - off, 0);
        if (r <= 0) {
            free(body);
            return false;
        }
        off += (size_t)r;
    }
    if (c->n_posts < MAX_POSTS) {
        memcpy(c->headers[c->n_posts], head, got + 1);
        c->lens[c->n_posts] = len;
        c->bodies[c->n_posts++] = body;
    } else {
        free(body);
    }
    char reply[128];
    int n = snprintf(reply, sizeof reply, "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nno",
                     c->status);
    return send(conn, reply, (size_t)n, MSG_NOSIGNAL) == n;
}

/* Serves connections until the listening socket is shut down. */
static void *collector_main(void *arg)
{
    struct collector *c = arg;
    for (;;) {
        int conn = accept(c->fd, NULL, NULL);
        if (conn < 0)
            return NULL;
        while (collector_read(c, conn))
            ;
        close(conn);
    }
}

static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void collector_start(struct collector *c, int status)
{
    memset(c, 0, sizeof *c);
    c->status = status;
    c->fd = listen_local(&c->port);
    assert_true(c->fd >= 0);
    assert_int_equal(listen(c->fd, 8), 0);
    assert_int_equal(pthread_create(&c->thread, NULL, collector_main, c), 0);
}

/* Stops serving; what was received stays readable until collector_free. */
static void collector_stop(struct collector *c)
{
    shutdown(c->fd, SHUT_RDWR);   /* wakes accept() */
    pthread_join(c->thread, NULL);
    close(c->fd);
}

static void collector_free(struct collector *c)
{
    for (size_t i = 0; i < c->n_posts; i++)
        free(c->bodies[i]);
}

static enum pt_status export_post(const struct trace *t, const char *url, const char *const *hdrs,
                                  size_t n_hdrs, struct pt_err *err)
{
    struct export_opts o = { .to_s = -1, .endpoint = url, .headers = hdrs, .n_headers = n_hdrs };
    struct export_view v;
    pt_err_clear(err);
    assert_int_equal(export_view_init(&v, t, &o, err), PT_OK);
    enum pt_status rc = export_otlp(&v, NULL, err);
    export_view_free(&v);
    return rc;
}

/* A trace of many calls with long names: well past one request's 4 MB. */
#define BIG_SPANS 40000

static struct trace big;
static struct tl_span *big_spans;
static char *big_strings[4];
static char long_file[200];

static void build_big(void)
{
    memset(long_file, 'p', sizeof long_file - 1);
    long_file[0] = '/';
    big_strings[0] = "";
    big_strings[1] = "handler";
    big_strings[2] = long_file;
    big_strings[3] = "t";
    static struct trace_function fns[2] = { { 0 }, { 1, 1, 2, 5 } };
    static struct trace_thread ths[2] = { { 0 }, { 1, 99, 1, 3 } };
    big_spans = calloc(BIG_SPANS, sizeof *big_spans);
    assert_non_null(big_spans);
    for (size_t i = 0; i < BIG_SPANS; i++)
        big_spans[i] = span(1, 1, 0, 2 * i, 2 * i + 1, 2 * i + 1, 2 * i + 2);
    big = trace;
    big.strings = big_strings;
    big.n_strings = 4;
    big.functions = fns;
    big.n_functions = 2;
    big.threads = ths;
    big.n_threads = 2;
    big.spans = big_spans;
    big.n_spans = BIG_SPANS;
}

static void test_post_splits_a_large_trace_under_4mb_with_headers(void **state)
{
    (void)state;
    build_big();
    struct collector c;
    collector_start(&c, 200);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", c.port);
    const char *hdrs[] = { "x-api-key=secret", "X-Scope-OrgID=team=a" };
    struct pt_err err;
    enum pt_status rc = export_post(&big, url, hdrs, 2, &err);
    collector_stop(&c);
    if (rc != PT_OK)
        fail_msg("post: %s", err.msg);
    assert_true(c.n_posts >= 2);
    size_t total = 0;
    for (size_t i = 0; i < c.n_posts; i++) {
        assert_true(c.lens[i] <= 4000000);
        if (i + 1 < c.n_posts)
            assert_true(c.lens[i] > 3900000);   /* requests are filled, not many small ones */
        assert_non_null(strcasestr(c.headers[i], "\r\nx-api-key: secret\r\n"));
        assert_non_null(strcasestr(c.headers[i], "\r\nX-Scope-OrgID: team=a\r\n"));
        assert_non_null(strcasestr(c.headers[i], "\r\nContent-Type: application/x-protobuf\r\n"));
        assert_non_null(strstr(c.headers[i], "POST /v1/traces "));
        PtOtlp__ExportTraceServiceRequest *req =
            pt_otlp__export_trace_service_request__unpack(NULL, c.lens[i], (uint8_t *)c.bodies[i]);
        assert_non_null(req);
        PtOtlp__Span **all = malloc(BIG_SPANS * sizeof *all);
        total += all_spans(req, all, BIG_SPANS);
        free(all);
        const PtOtlp__Resource *res = req->resource_spans[0]->resource;
        assert_str_attr(res->attributes, res->n_attributes, "service.name", "demo");
        pt_otlp__export_trace_service_request__free_unpacked(req, NULL);
    }
    assert_int_equal(total, BIG_SPANS);
    collector_free(&c);
    free(big_spans);
}

static void test_post_refused_names_endpoint_and_status(void **state)
{
    (void)state;
    struct collector c;
    collector_start(&c, 500);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", c.port);
    struct pt_err err;
    enum pt_status rc = export_post(&trace, url, NULL, 0, &err);
    collector_stop(&c);
    assert_int_equal(rc, PT_EFAIL);
    assert_non_null(strstr(err.msg, url));
    assert_non_null(strstr(err.msg, "refused the export: HTTP 500"));
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(c.n_posts, 1);
    collector_free(&c);
}

static void test_post_unreachable_says_so(void **state)
{
    (void)state;
    int port;
    int fd = listen_local(&port);   /* bound, never listening: connections are refused */
    assert_true(fd >= 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", port);
    struct pt_err err;
    enum pt_status rc = export_post(&trace, url, NULL, 0, &err);
    close(fd);
    assert_int_equal(rc, PT_EFAIL);
    assert_non_null(strstr(err.msg, url));
    assert_non_null(strstr(err.msg, "is unreachable: Couldn't connect to server"));
}

static void test_header_with_a_line_break_is_refused(void **state)
{
    (void)state;
    const char *hdrs[] = { "x-api-key=a\r\nHost: evil" };
    struct pt_err err;
    assert_int_equal(export_post(&trace, "http://127.0.0.1:9/v1/traces", hdrs, 1, &err),
                     PT_EUSAGE);
    assert_non_null(strstr(err.msg, "--header"));
    assert_null(strpbrk(err.msg, "\r\n"));
}

static int setup(void **state)
{
    (void)state;
    build_trace();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource_names_the_process_and_service),
        cmocka_unit_test(test_every_parent_exists_and_encloses_its_child),
        cmocka_unit_test(test_times_are_unix_ns_by_the_midpoint_estimator),
        cmocka_unit_test(test_span_attributes_name_code_and_thread),
        cmocka_unit_test(test_excluded_caller_links_to_the_next_enclosing_call),
        cmocka_unit_test(test_no_selected_span_still_names_the_resource),
        cmocka_unit_test(test_each_process_is_a_resource),
        cmocka_unit_test(test_post_splits_a_large_trace_under_4mb_with_headers),
        cmocka_unit_test(test_post_refused_names_endpoint_and_status),
        cmocka_unit_test(test_post_unreachable_says_so),
        cmocka_unit_test(test_header_with_a_line_break_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
