/*
 * export_otlp.c — every sampled call as an OpenTelemetry span (OTLP/protobuf, output/otlp.proto),
 * parented to its caller, with one resource per traced process. Written to a file as a single
 * ExportTraceServiceRequest, or POSTed with libcurl to a collector's /v1/traces in requests small
 * enough for its default size limit. A sampled call has no ids of its own, so ids are drawn at
 * random, and each top-level call of a thread starts its own trace.
 */
#include "output/export.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "otlp.pb-c.h"

/* Receivers commonly refuse bodies past 4 MiB (gRPC's default, which many HTTP receivers copy);
 * stay under it with room for what a collector adds. */
#define OTLP_MAX_REQUEST 4000000u
#define OTLP_SPAN_ATTRS 5                     /* code.function, .filepath, .lineno, thread.* */
#define OTLP_RES_ATTRS 6
#define OTLP_NONE SIZE_MAX

/* One exported call, in export order. */
struct otlp_rec {
    const struct tl_span *s;
    uint32_t process;                         /* t->processes index; 0: the header's process */
    size_t parent;                            /* recs index of the caller, or OTLP_NONE */
    uint64_t start, end;                      /* Unix ns */
};

/* Attributes shared by every span of one function or one thread. */
struct otlp_attrs {
    PtOtlp__KeyValue kv[3];
    PtOtlp__AnyValue av[3];
    size_t n;
    bool ready;
};

struct otlp_resource {
    PtOtlp__Resource msg;
    PtOtlp__KeyValue kv[OTLP_RES_ATTRS], *kvp[OTLP_RES_ATTRS];
    PtOtlp__AnyValue av[OTLP_RES_ATTRS];
    bool ready;
};

struct otlp {
    const struct export_view *v;
    const struct trace *t;
    size_t n;
    struct otlp_rec *recs;
    uint8_t (*ids)[24];                       /* per rec: span id [0, 8), trace id [8, 24) */
    PtOtlp__Span *spans, **span_ptrs;
    PtOtlp__KeyValue **attr_ptrs;             /* OTLP_SPAN_ATTRS per span */
    struct otlp_attrs *fn_attrs, *th_attrs;   /* by function id, by thread id */
    struct otlp_resource *resources;          /* by process id */
    PtOtlp__InstrumentationScope scope;
};

/* One request over recs [lo, hi): a ResourceSpans per run of spans from the same process. */
struct otlp_request {
    PtOtlp__ExportTraceServiceRequest msg;
    PtOtlp__ResourceSpans *rs, **rs_ptrs;
    PtOtlp__ScopeSpans *ss, **ss_ptrs;
};

static char *otlp_cstr(const char *s)
{
    /* protobuf-c declares strings mutable but only reads them when packing. */
    return (char *)(s ? s : "");
}

static void otlp_kv_str(PtOtlp__KeyValue *kv, PtOtlp__AnyValue *av, const char *key,
                        const char *val)
{
    pt_otlp__key_value__init(kv);
    pt_otlp__any_value__init(av);
    kv->key = otlp_cstr(key);
    kv->value = av;
    av->value_case = PT_OTLP__ANY_VALUE__VALUE_STRING_VALUE;
    av->string_value = otlp_cstr(val);
}

static void otlp_kv_int(PtOtlp__KeyValue *kv, PtOtlp__AnyValue *av, const char *key, int64_t val)
{
    pt_otlp__key_value__init(kv);
    pt_otlp__any_value__init(av);
    kv->key = otlp_cstr(key);
    kv->value = av;
    av->value_case = PT_OTLP__ANY_VALUE__VALUE_INT_VALUE;
    av->int_value = val;
}

/* ---- Selecting and nesting the calls --------------------------------------------------------- */

static uint32_t otlp_process_of(const struct trace *t, uint32_t thread)
{
    uint32_t p = thread < t->n_threads ? t->threads[thread].process : 0;
    return p < t->n_processes ? p : 0;
}

/* Grouped by process (one resource each), then by thread, callers before callees. */
static int otlp_rec_cmp(const void *pa, const void *pb)
{
    const struct otlp_rec *a = pa, *b = pb;
    if (a->process != b->process)
        return a->process < b->process ? -1 : 1;
    if (a->s->thread != b->s->thread)
        return a->s->thread < b->s->thread ? -1 : 1;
    if (a->s->begin != b->s->begin)
        return a->s->begin < b->s->begin ? -1 : 1;
    if (a->s->depth != b->s->depth)
        return a->s->depth < b->s->depth ? -1 : 1;
    if (a->s->end != b->s->end)
        return a->s->end > b->s->end ? -1 : 1;
    return a->s < b->s ? -1 : a->s > b->s;
}

static enum pt_status otlp_collect(struct otlp *o, struct pt_err *err)
{
    const struct trace *t = o->t;
    o->recs = malloc((t->n_spans ? t->n_spans : 1) * sizeof *o->recs);
    if (!o->recs)
        return pt_fail(err, PT_EFAIL, "out of memory exporting OTLP");
    /* CLOCK_MONOTONIC to Unix time through the header's pair of readings taken together. */
    uint64_t to_unix = t->start_wall_ns - t->start_mono_ns;
    for (size_t i = 0; i < t->n_spans; i++) {
        const struct tl_span *s = &t->spans[i];
        if (!export_span_ok(o->v, s) || s->function >= t->n_functions)
            continue;
        uint64_t b = export_span_begin(s), e = export_span_end(s);
        o->recs[o->n++] = (struct otlp_rec){ .s = s, .process = otlp_process_of(t, s->thread),
                                             .parent = OTLP_NONE, .start = b + to_unix,
                                             .end = (e > b ? e : b) + to_unix };
    }
    qsort(o->recs, o->n, sizeof *o->recs, otlp_rec_cmp);
    return PT_OK;
}

/* Sightings nest exactly: a callee is only ever seen with its caller on the stack. */
static bool otlp_encloses(const struct otlp_rec *caller, const struct otlp_rec *callee)
{
    return caller->s->depth < callee->s->depth && caller->s->begin <= callee->s->begin &&
           callee->s->end <= caller->s->end;
}

/*
 * Each call's parent is the nearest enclosing call on its thread: one depth up, or further when
 * --exclude or the time window dropped the frames between. The midpoint estimates of a caller and
 * callee can cross by a sample around torn reads, so a callee is clamped into its caller: viewers
 * draw a child outside its parent badly. A root draws a new trace id; callees inherit it.
 */
static uint64_t otlp_clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void otlp_link(struct otlp *o, size_t *stack)
{
    size_t open = 0;   /* stack[0, open): the calls enclosing the current one, outermost first */
    for (size_t i = 0; i < o->n; i++) {
        struct otlp_rec *r = &o->recs[i];
        if (i && r->s->thread != o->recs[i - 1].s->thread)
            open = 0;
        while (open && !otlp_encloses(&o->recs[stack[open - 1]], r))
            open--;
        if (open) {
            const struct otlp_rec *p = &o->recs[stack[open - 1]];
            r->parent = stack[open - 1];
            r->start = otlp_clamp(r->start, p->start, p->end);
            r->end = otlp_clamp(r->end, r->start, p->end);
            memcpy(o->ids[i] + 8, o->ids[r->parent] + 8, 16);
        }
        stack[open++] = i;
    }
}

static enum pt_status otlp_random(uint8_t *buf, size_t len, struct pt_err *err)
{
    while (len) {
        ssize_t got = getrandom(buf, len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return pt_fail(err, PT_EFAIL, "cannot draw random span ids: %s", strerror(errno));
        buf += got;
        len -= (size_t)got;
    }
    return PT_OK;
}

/* All-zero ids are invalid in OTLP; a draw of one is made valid rather than drawn again. */
static void otlp_nonzero(uint8_t *id, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (id[i])
            return;
    id[len - 1] = 1;
}

static enum pt_status otlp_assign_ids(struct otlp *o, struct pt_err *err)
{
    size_t n = o->n ? o->n : 1;
    o->ids = malloc(n * sizeof *o->ids);
    size_t *stack = malloc(n * sizeof *stack);
    enum pt_status rc = o->ids && stack ? PT_OK : pt_fail(err, PT_EFAIL, "out of memory");
    if (rc == PT_OK)
        rc = otlp_random(o->ids[0], n * sizeof *o->ids, err);
    if (rc == PT_OK) {
        for (size_t i = 0; i < o->n; i++) {
            otlp_nonzero(o->ids[i], 8);
            otlp_nonzero(o->ids[i] + 8, 16);
        }
        otlp_link(o, stack);
    }
    free(stack);
    return rc;
}

/* ---- Messages -------------------------------------------------------------------------------- */

static const struct otlp_attrs *otlp_function_attrs(struct otlp *o, uint32_t id)
{
    struct otlp_attrs *a = &o->fn_attrs[id];
    if (!a->ready) {
        const struct trace_function *fn = &o->t->functions[id];
        otlp_kv_str(&a->kv[0], &a->av[0], "code.function", trace_str(o->t, fn->name));
        otlp_kv_str(&a->kv[1], &a->av[1], "code.filepath", trace_str(o->t, fn->file));
        otlp_kv_int(&a->kv[2], &a->av[2], "code.lineno", fn->first_line);
        a->n = 3;
        a->ready = true;
    }
    return a;
}

/* thread.id is the OS thread id: the number ps, top and the kernel's logs show. */
static const struct otlp_attrs *otlp_thread_attrs(struct otlp *o, uint32_t id)
{
    struct otlp_attrs *a = &o->th_attrs[id];
    if (!a->ready) {
        const struct trace_thread *th = &o->t->threads[id];
        otlp_kv_int(&a->kv[0], &a->av[0], "thread.id", th->tid);
        a->n = 1;
        const char *name = trace_str(o->t, th->name);
        if (*name) {
            otlp_kv_str(&a->kv[1], &a->av[1], "thread.name", name);
            a->n = 2;
        }
        a->ready = true;
    }
    return a;
}

static void otlp_fill_span(struct otlp *o, size_t i)
{
    const struct otlp_rec *r = &o->recs[i];
    const struct trace_function *fn = &o->t->functions[r->s->function];
    PtOtlp__Span *sp = &o->spans[i];
    pt_otlp__span__init(sp);
    sp->trace_id = (ProtobufCBinaryData){ 16, o->ids[i] + 8 };
    sp->span_id = (ProtobufCBinaryData){ 8, o->ids[i] };
    if (r->parent != OTLP_NONE)
        sp->parent_span_id = (ProtobufCBinaryData){ 8, o->ids[r->parent] };
    const char *qual = trace_str(o->t, fn->qualname);
    sp->name = otlp_cstr(*qual ? qual : trace_str(o->t, fn->name));
    sp->kind = PT_OTLP__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
    sp->start_time_unix_nano = r->start;
    sp->end_time_unix_nano = r->end;
    PtOtlp__KeyValue **attrs = &o->attr_ptrs[i * OTLP_SPAN_ATTRS];
    const struct otlp_attrs *groups[2] = { otlp_function_attrs(o, r->s->function),
                                           otlp_thread_attrs(o, r->s->thread) };
    for (size_t g = 0; g < 2; g++)
        for (size_t k = 0; k < groups[g]->n; k++)
            attrs[sp->n_attributes++] = (PtOtlp__KeyValue *)&groups[g]->kv[k];
    sp->attributes = attrs;
    o->span_ptrs[i] = sp;
}

/* The resource of process p (0: the header's), with the header's values where p has none. */
static PtOtlp__Resource *otlp_resource(struct otlp *o, uint32_t p)
{
    struct otlp_resource *res = &o->resources[p];
    if (res->ready)
        return &res->msg;
    const struct trace *t = o->t;
    const struct trace_process *pr = p ? &t->processes[p] : NULL;
    const char *cmd = pr ? trace_str(t, pr->cmdline) : "";
    const char *ver = pr ? trace_str(t, pr->python_version) : "";
    const char *svc = o->v->o->service && *o->v->o->service ? o->v->o->service : t->name;
    const char *strs[][2] = {
        { "service.name", svc && *svc ? svc : "unknown_service:python" },
        { "process.command_line", *cmd ? cmd : t->cmdline },
        { "host.name", t->host },
        { "process.runtime.name", "CPython" },
        { "process.runtime.version", *ver ? ver : t->python_version },
    };
    size_t n = 0;
    otlp_kv_int(&res->kv[n], &res->av[n], "process.pid", pr && pr->pid ? pr->pid : t->pid);
    n++;
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
        if (strs[k][1] && *strs[k][1]) {
            otlp_kv_str(&res->kv[n], &res->av[n], strs[k][0], strs[k][1]);
            n++;
        }
    for (size_t k = 0; k < n; k++)
        res->kvp[k] = &res->kv[k];
    pt_otlp__resource__init(&res->msg);
    res->msg.n_attributes = n;
    res->msg.attributes = res->kvp;
    res->ready = true;
    return &res->msg;
}

static enum pt_status otlp_build(struct otlp *o, struct pt_err *err)
{
    const struct trace *t = o->t;
    size_t n = o->n ? o->n : 1;
    o->spans = malloc(n * sizeof *o->spans);
    o->span_ptrs = malloc(n * sizeof *o->span_ptrs);
    o->attr_ptrs = malloc(n * OTLP_SPAN_ATTRS * sizeof *o->attr_ptrs);
    o->fn_attrs = calloc(t->n_functions + 1, sizeof *o->fn_attrs);
    o->th_attrs = calloc(t->n_threads + 1, sizeof *o->th_attrs);
    o->resources = calloc(t->n_processes + 1, sizeof *o->resources);
    if (!o->spans || !o->span_ptrs || !o->attr_ptrs || !o->fn_attrs || !o->th_attrs ||
        !o->resources)
        return pt_fail(err, PT_EFAIL, "out of memory exporting OTLP");
    for (size_t i = 0; i < o->n; i++)
        otlp_fill_span(o, i);
    pt_otlp__instrumentation_scope__init(&o->scope);
    o->scope.name = otlp_cstr("pytrace");
    o->scope.version = otlp_cstr(t->pytrace_version);
    return PT_OK;
}

static void otlp_free(struct otlp *o)
{
    free(o->recs);
    free(o->ids);
    free(o->spans);
    free(o->span_ptrs);
    free(o->attr_ptrs);
    free(o->fn_attrs);
    free(o->th_attrs);
    free(o->resources);
}

static void otlp_request_free(struct otlp_request *q)
{
    free(q->rs);
    free(q->rs_ptrs);
    free(q->ss);
    free(q->ss_ptrs);
}

static size_t otlp_runs(const struct otlp *o, size_t lo, size_t hi)
{
    size_t runs = 1;
    for (size_t i = lo + 1; i < hi; i++)
        runs += o->recs[i].process != o->recs[i - 1].process;
    return runs;
}

static void otlp_add_run(struct otlp *o, struct otlp_request *q, uint32_t process, size_t lo,
                         size_t hi)
{
    size_t k = q->msg.n_resource_spans++;
    PtOtlp__ScopeSpans *ss = &q->ss[k];
    PtOtlp__ResourceSpans *rs = &q->rs[k];
    pt_otlp__scope_spans__init(ss);
    ss->scope = &o->scope;
    ss->n_spans = hi - lo;
    ss->spans = o->span_ptrs + lo;
    q->ss_ptrs[k] = ss;
    pt_otlp__resource_spans__init(rs);
    rs->resource = otlp_resource(o, process);
    rs->n_scope_spans = 1;
    rs->scope_spans = &q->ss_ptrs[k];
    q->rs_ptrs[k] = rs;
}

/* Builds the request for recs [lo, hi); with no spans, the header's resource alone. */
static enum pt_status otlp_request(struct otlp *o, size_t lo, size_t hi, struct otlp_request *q,
                                   struct pt_err *err)
{
    memset(q, 0, sizeof *q);
    size_t runs = otlp_runs(o, lo, hi);
    q->rs = malloc(runs * sizeof *q->rs);
    q->rs_ptrs = malloc(runs * sizeof *q->rs_ptrs);
    q->ss = malloc(runs * sizeof *q->ss);
    q->ss_ptrs = malloc(runs * sizeof *q->ss_ptrs);
    if (!q->rs || !q->rs_ptrs || !q->ss || !q->ss_ptrs) {
        otlp_request_free(q);
        return pt_fail(err, PT_EFAIL, "out of memory exporting OTLP");
    }
    pt_otlp__export_trace_service_request__init(&q->msg);
    q->msg.resource_spans = q->rs_ptrs;
    size_t start = lo;
    for (size_t i = lo + 1; i <= hi; i++)
        if (i == hi || o->recs[i].process != o->recs[i - 1].process) {
            otlp_add_run(o, q, o->recs[start].process, start, i);
            start = i;
        }
    if (lo == hi)
        otlp_add_run(o, q, 0, lo, hi);
    return PT_OK;
}

/* ---- Writing to a file ----------------------------------------------------------------------- */

struct otlp_file_buffer {
    ProtobufCBuffer base;
    FILE *out;
    bool failed;
};

static void otlp_file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct otlp_file_buffer *f = (struct otlp_file_buffer *)b;
    if (!f->failed && fwrite(data, 1, len, f->out) != len)
        f->failed = true;
}

/* A file holds one request (one protobuf document), however large. */
static enum pt_status otlp_write(struct otlp *o, FILE *out, struct pt_err *err)
{
    if (!out)
        return pt_fail(err, PT_EFAIL, "OTLP export needs an output file or an --endpoint");
    struct otlp_request q;
    enum pt_status rc = otlp_request(o, 0, o->n, &q, err);
    if (rc != PT_OK)
        return rc;
    struct otlp_file_buffer buf = { .base = { .append = otlp_file_append }, .out = out };
    protobuf_c_message_pack_to_buffer(&q.msg.base, &buf.base);
    otlp_request_free(&q);
    if (buf.failed || ferror(out))
        return pt_fail(err, PT_EFAIL, "write error while exporting OTLP");
    return PT_OK;
}

/* ---- POSTing to a collector ------------------------------------------------------------------ */

static size_t otlp_varint_len(size_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

/* What a new resource run adds to a request: the ResourceSpans and ScopeSpans around spans. */
static size_t otlp_run_overhead(struct otlp *o, uint32_t process)
{
    return protobuf_c_message_get_packed_size(&otlp_resource(o, process)->base) +
           protobuf_c_message_get_packed_size(&o->scope.base) + 32;
}

/* Splits recs into requests of at most OTLP_MAX_REQUEST bytes (a lone larger span goes alone).
 * bounds[k]..bounds[k + 1] is request k; returns the number of requests (at least one). */
static size_t otlp_plan(struct otlp *o, size_t *bounds)
{
    size_t k = 0, size = 0;
    bounds[0] = 0;
    for (size_t i = 0; i < o->n; i++) {
        size_t body = protobuf_c_message_get_packed_size(&o->spans[i].base);
        size_t add = 1 + otlp_varint_len(body) + body;
        bool new_run = i == bounds[k] || o->recs[i].process != o->recs[i - 1].process;
        if (new_run)
            add += otlp_run_overhead(o, o->recs[i].process);
        if (i > bounds[k] && size + add > OTLP_MAX_REQUEST) {
            bounds[++k] = i;
            size = 0;
            add += new_run ? 0 : otlp_run_overhead(o, o->recs[i].process);
        }
        size += add;
    }
    bounds[++k] = o->n;
    return k;
}

struct otlp_http {
    const char *url;
    CURL *curl;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
};

/* The collector's answer (an ExportTraceServiceResponse, or an error text) is not needed: the
 * status says it all, and curl would otherwise print the body on stdout. */
static size_t otlp_discard(char *data, size_t size, size_t nmemb, void *ctx)
{
    (void)data;
    (void)ctx;
    return size * nmemb;
}

/* Appends line to *l; on failure frees the whole list and leaves NULL. */
static bool otlp_slist_add(struct curl_slist **l, const char *line)
{
    struct curl_slist *next = curl_slist_append(*l, line);
    if (!next)
        curl_slist_free_all(*l);
    *l = next;
    return next != NULL;
}

static enum pt_status otlp_http_headers(struct otlp_http *h, const struct export_opts *opts,
                                        struct pt_err *err)
{
    struct curl_slist *l = NULL;
    /* "Expect:" turns off curl's 100-continue wait on large bodies: a round trip per request,
     * or a second's stall with receivers that ignore it. */
    bool ok = otlp_slist_add(&l, "Content-Type: application/x-protobuf") &&
              otlp_slist_add(&l, "Expect:");
    for (size_t i = 0; ok && i < opts->n_headers; i++) {
        const char *kv = opts->headers[i], *eq = strchr(kv, '=');
        if (!eq || eq == kv || strpbrk(kv, "\r\n")) {
            curl_slist_free_all(l);
            return pt_fail(err, PT_EUSAGE, "--header '%.*s...' is not KEY=VALUE on one line",
                           (int)strcspn(kv, "=\r\n"), kv);
        }
        char *line;
        if (asprintf(&line, "%.*s: %s", (int)(eq - kv), kv, eq + 1) < 0)
            line = NULL;
        ok = line && otlp_slist_add(&l, line);
        free(line);
    }
    if (!ok) {
        curl_slist_free_all(l);
        return pt_fail(err, PT_EFAIL, "out of memory");
    }
    h->headers = l;
    return PT_OK;
}

static enum pt_status otlp_http_open(struct otlp_http *h, const struct export_opts *opts,
                                     struct pt_err *err)
{
    memset(h, 0, sizeof *h);
    h->url = opts->endpoint;
    enum pt_status rc = otlp_http_headers(h, opts, err);
    if (rc != PT_OK)
        return rc;
    if (!(h->curl = curl_easy_init()))
        return pt_fail(err, PT_EFAIL, "cannot start an HTTP client for %s", h->url);
    CURL *c = h->curl;
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "pytrace");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, otlp_discard);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    return PT_OK;
}

static void otlp_http_close(struct otlp_http *h)
{
    if (h->curl)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
}

static enum pt_status otlp_http_post(struct otlp_http *h, const uint8_t *body, size_t len,
                                     const char *part, struct pt_err *err)
{
    h->errbuf[0] = '\0';
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode cc = curl_easy_perform(h->curl);
    if (cc != CURLE_OK) {
        h->errbuf[strcspn(h->errbuf, "\r\n")] = '\0';   /* some curl versions end it with \n */
        bool unreachable = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                           cc == CURLE_OPERATION_TIMEDOUT;
        return pt_fail(err, PT_EFAIL, "OTLP collector at %s %s: %s%s%s%s%s", h->url,
                       unreachable ? "is unreachable" : "did not take the export",
                       curl_easy_strerror(cc), h->errbuf[0] ? " (" : "", h->errbuf,
                       h->errbuf[0] ? ")" : "", part);
    }
    long status = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299)
        return pt_fail(err, PT_EFAIL, "OTLP collector at %s refused the export: HTTP %ld%s",
                       h->url, status, part);
    return PT_OK;
}

static enum pt_status otlp_post_one(struct otlp *o, struct otlp_http *h, size_t lo, size_t hi,
                                    const char *part, struct pt_err *err)
{
    struct otlp_request q;
    enum pt_status rc = otlp_request(o, lo, hi, &q, err);
    if (rc != PT_OK)
        return rc;
    size_t len = protobuf_c_message_get_packed_size(&q.msg.base);
    uint8_t *body = malloc(len ? len : 1);
    if (!body)
        rc = pt_fail(err, PT_EFAIL, "out of memory exporting OTLP");
    else {
        protobuf_c_message_pack(&q.msg.base, body);
        rc = otlp_http_post(h, body, len, part, err);
    }
    free(body);
    otlp_request_free(&q);
    return rc;
}

static enum pt_status otlp_post_all(struct otlp *o, struct pt_err *err)
{
    size_t *bounds = malloc((o->n + 2) * sizeof *bounds);
    if (!bounds)
        return pt_fail(err, PT_EFAIL, "out of memory exporting OTLP");
    size_t parts = otlp_plan(o, bounds);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct otlp_http h;
    enum pt_status rc = otlp_http_open(&h, o->v->o, err);
    for (size_t k = 0; rc == PT_OK && k < parts; k++) {
        char part[96] = "";
        if (parts > 1)
            snprintf(part, sizeof part, " (request %zu of %zu%s)", k + 1, parts,
                     k ? "; the earlier ones were delivered" : "");
        rc = otlp_post_one(o, &h, bounds[k], bounds[k + 1], part, err);
    }
    otlp_http_close(&h);
    curl_global_cleanup();
    free(bounds);
    return rc;
}

enum pt_status export_otlp(const struct export_view *v, FILE *out, struct pt_err *err)
{
    struct otlp o = { .v = v, .t = v->t };
    enum pt_status rc = otlp_collect(&o, err);
    if (rc == PT_OK)
        rc = otlp_assign_ids(&o, err);
    if (rc == PT_OK)
        rc = otlp_build(&o, err);
    if (rc == PT_OK)
        rc = v->o->endpoint ? otlp_post_all(&o, err) : otlp_write(&o, out, err);
    otlp_free(&o);
    return rc;
}
