/*
 * push.c — the sink thread (see push.h): a bounded queue of finished files, bodies built by the
 * exporters into memory, POSTed with libcurl's multi interface so a transfer can be abandoned at
 * once when the daemon stops, whatever the receiver does.
 */
#include "output/push.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output/export.h"

struct push {
    struct push_opts o;
    bool enabled[PUSH_KINDS];
    struct curl_slist *hdr[PUSH_KINDS];
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **queue;                 /* ring of malloc'd paths */
    size_t head, count;
    bool draining;                /* no more files: finish the queue and exit */
    atomic_int abort_now;         /* stop at once, mid-transfer included */
    struct push_stats st;
};

static size_t push_discard(char *data, size_t size, size_t nmemb, void *ctx)
{
    (void)data;
    (void)ctx;
    return size * nmemb;
}

static struct curl_slist *push_headers(const struct push_opts *o, const char *content_type)
{
    struct curl_slist *l = curl_slist_append(NULL, content_type);
    l = l ? curl_slist_append(l, "Expect:") : NULL;
    for (size_t i = 0; l && i < o->n_headers; i++) {
        const char *kv = o->headers[i], *eq = strchr(kv, '=');
        char line[1024];
        if (!eq || strpbrk(kv, "\r\n"))
            continue;
        snprintf(line, sizeof line, "%.*s: %s", (int)(eq - kv), kv, eq + 1);
        struct curl_slist *n = curl_slist_append(l, line);
        if (!n)
            curl_slist_free_all(l);
        l = n;
    }
    return l;
}

/* One POST, abandoned as soon as abort_now is set. */
static enum pt_status push_post(struct push *p, const char *url, struct curl_slist *hdr,
                                const char *body, size_t len, struct pt_err *err)
{
    CURL *c = curl_easy_init();
    CURLM *m = curl_multi_init();
    if (!c || !m) {
        if (c)
            curl_easy_cleanup(c);
        if (m)
            curl_multi_cleanup(m);
        return pt_fail(err, PT_EFAIL, "cannot start an HTTP client for %s", url);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    long timeout_ms = (long)((p->o.timeout_s > 0 ? p->o.timeout_s : 10.0) * 1000);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "pytrace-daemon");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, push_discard);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_multi_add_handle(m, c);
    int running = 1;
    bool aborted = false;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK || !running)
            break;
        if (atomic_load(&p->abort_now)) {
            aborted = true;
            break;
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    CURLcode cc = CURLE_OK;
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            cc = msg->data.result;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_multi_cleanup(m);
    if (aborted)
        return pt_fail(err, PT_EFAIL, "%s: abandoned at shutdown", url);
    if (cc != CURLE_OK) {
        errbuf[strcspn(errbuf, "\r\n")] = '\0';
        return pt_fail(err, PT_EFAIL, "%s: %s%s%s%s", url, curl_easy_strerror(cc),
                       errbuf[0] ? " (" : "", errbuf, errbuf[0] ? ")" : "");
    }
    if (status < 200 || status > 299)
        return pt_fail(err, PT_EFAIL, "%s refused the upload: HTTP %ld", url, status);
    return PT_OK;
}

/* The body for one sink, built by its exporter into memory (malloc'd *body). */
static enum pt_status push_body(struct push *p, enum push_kind k, const struct trace *t,
                                char **body, size_t *len, struct pt_err *err)
{
    struct export_opts eo = { .to_s = -1, .service = p->o.service };
    struct export_view v;
    enum pt_status rc = export_view_init(&v, t, &eo, err);
    if (rc != PT_OK)
        return rc;
    *body = NULL;
    *len = 0;
    FILE *f = open_memstream(body, len);
    if (!f) {
        export_view_free(&v);
        return pt_fail(err, PT_EFAIL, "out of memory building an upload");
    }
    rc = k == PUSH_OTLP ? export_otlp(&v, f, err) : export_pprof(&v, f, err);
    fclose(f);
    export_view_free(&v);
    if (rc != PT_OK) {
        free(*body);
        *body = NULL;
    }
    return rc;
}

/* <pprof_url>/ingest?name=APP{pid=..,nspid=..}&from=..&until=..&format=pprof */
static char *push_pprof_url(struct push *p, const struct trace *t)
{
    char app[512], *esc;
    int64_t nspid = t->n_nspid ? t->nspid[t->n_nspid - 1] : t->pid;
    snprintf(app, sizeof app, "%s{pid=%" PRId64 ",nspid=%" PRId64 "}",
             p->o.service ? p->o.service : (t->name[0] ? t->name : "python"), t->pid, nspid);
    CURL *c = curl_easy_init();
    esc = c ? curl_easy_escape(c, app, 0) : NULL;
    if (c)
        curl_easy_cleanup(c);
    if (!esc)
        return NULL;
    uint64_t from = t->start_wall_ns / 1000000000ULL;
    uint64_t dur = t->has_trailer && t->summary.end_mono_ns > t->start_mono_ns
                       ? (t->summary.end_mono_ns - t->start_mono_ns) / 1000000000ULL : 0;
    const char *base = p->o.pprof_url;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    bool has_ingest = strstr(base, "/ingest") != NULL;
    char *url = NULL;
    if (asprintf(&url, "%.*s%s%sname=%s&from=%" PRIu64 "&until=%" PRIu64
                 "&format=pprof&spyName=pytrace&sampleRate=%.0f",
                 (int)n, base, has_ingest ? "" : "/ingest", strchr(base, '?') ? "&" : "?", esc,
                 from, from + dur + 1, t->rate_hz) < 0)
        url = NULL;
    curl_free(esc);
    return url;
}

/* Waits the backoff, or less if told to abort; true when aborted. */
static bool push_wait(struct push *p, double secs)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(secs * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000ULL);
    ts.tv_nsec = (long)(ns % 1000000000ULL);
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->abort_now))
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&p->mu);
    return atomic_load(&p->abort_now);
}

static void push_count(struct push *p, enum push_kind k, int what)
{
    pthread_mutex_lock(&p->mu);
    if (what == 0)
        p->st.k[k].sent++;
    else if (what == 1)
        p->st.k[k].failures++;
    else
        p->st.k[k].dropped++;
    pthread_mutex_unlock(&p->mu);
}

static void push_one(struct push *p, enum push_kind k, const char *path, const struct trace *t)
{
    struct pt_err err;
    pt_err_clear(&err);
    char *body = NULL, *url = NULL;
    size_t len = 0;
    enum pt_status rc = push_body(p, k, t, &body, &len, &err);
    if (rc == PT_OK) {
        url = k == PUSH_OTLP ? strdup(p->o.otlp_url) : push_pprof_url(p, t);
        if (!url)
            rc = pt_fail(&err, PT_EFAIL, "out of memory building the upload URL");
    }
    int attempts = p->o.attempts > 0 ? p->o.attempts : 5;
    double backoff = p->o.backoff_s > 0 ? p->o.backoff_s : 0.5;
    for (int a = 0; rc == PT_OK; a++) {
        rc = push_post(p, url, p->hdr[k], body, len, &err);
        if (rc == PT_OK)
            break;
        push_count(p, k, 1);
        if (a + 1 >= attempts || push_wait(p, backoff))
            break;
        backoff *= 2;
        rc = PT_OK;
    }
    push_count(p, k, rc == PT_OK ? 0 : 2);
    if (p->o.note)
        p->o.note(p->o.ctx, k, path, rc == PT_OK, err.msg);
    free(body);
    free(url);
}

static void push_handle(struct push *p, const char *path)
{
    struct trace *t = NULL;
    struct pt_err err;
    pt_err_clear(&err);
    if (trace_load(path, &t, &err) != PT_OK) {
        for (int k = 0; k < PUSH_KINDS; k++) {
            if (!p->enabled[k])
                continue;
            push_count(p, (enum push_kind)k, 2);
            if (p->o.note)
                p->o.note(p->o.ctx, (enum push_kind)k, path, false, err.msg);
        }
        return;
    }
    for (int k = 0; k < PUSH_KINDS; k++)
        if (p->enabled[k]) {
            if (atomic_load(&p->abort_now)) {
                push_count(p, (enum push_kind)k, 2);
                continue;
            }
            push_one(p, (enum push_kind)k, path, t);
        }
    trace_free(t);
}

static void *push_main(void *arg)
{
    struct push *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->count && !p->draining && !atomic_load(&p->abort_now))
            pthread_cond_wait(&p->cv, &p->mu);
        if (atomic_load(&p->abort_now) || !p->count)
            break;
        char *path = p->queue[p->head];
        p->head = (p->head + 1) % p->o.queue_cap;
        p->count--;
        pthread_mutex_unlock(&p->mu);
        push_handle(p, path);
        free(path);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

enum pt_status push_new(struct push **out, const struct push_opts *o, struct pt_err *err)
{
    struct push *p = calloc(1, sizeof *p);
    if (!p)
        return pt_fail(err, PT_EFAIL, "out of memory");
    p->o = *o;
    if (!p->o.queue_cap)
        p->o.queue_cap = 64;
    p->enabled[PUSH_OTLP] = o->otlp_url != NULL;
    p->enabled[PUSH_PPROF] = o->pprof_url != NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->abort_now, 0);
    *out = p;
    if (!o->otlp_url && !o->pprof_url)
        return PT_OK;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    p->hdr[PUSH_OTLP] = push_headers(o, "Content-Type: application/x-protobuf");
    p->hdr[PUSH_PPROF] = push_headers(o, "Content-Type: application/octet-stream");
    p->queue = calloc(p->o.queue_cap, sizeof *p->queue);
    /* The daemon's signals (SIGTERM, SIGHUP) belong to the sampling thread: the push thread is
     * created with them blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    bool started = p->queue && p->hdr[PUSH_OTLP] && p->hdr[PUSH_PPROF] &&
                   pthread_create(&p->thread, NULL, push_main, p) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        push_stop(p, 0, NULL);
        *out = NULL;
        return pt_fail(err, PT_EFAIL, "cannot start the sink thread");
    }
    p->started = true;
    return PT_OK;
}

static void push_drop_locked(struct push *p)
{
    for (int k = 0; k < PUSH_KINDS; k++)
        if (p->enabled[k])
            p->st.k[k].dropped++;
}

bool push_file(struct push *p, const char *path)
{
    if (!p || !p->started)
        return true;
    char *copy = strdup(path);
    pthread_mutex_lock(&p->mu);
    bool ok = copy && p->count < p->o.queue_cap && !p->draining;
    if (ok) {
        p->queue[(p->head + p->count) % p->o.queue_cap] = copy;
        p->count++;
        p->st.queued++;
        pthread_cond_broadcast(&p->cv);
    } else {
        p->st.queue_full++;
        push_drop_locked(p);
        free(copy);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void push_get_stats(struct push *p, struct push_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    pthread_mutex_unlock(&p->mu);
}

void push_stop(struct push *p, uint64_t grace_ns, struct push_stats *out)
{
    if (!p)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->draining = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + grace_ns;
        ts.tv_sec += (time_t)(ns / 1000000000ULL);
        ts.tv_nsec = (long)(ns % 1000000000ULL);
        if (pthread_timedjoin_np(p->thread, NULL, &ts) != 0) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->abort_now, 1);
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            pthread_join(p->thread, NULL);
        }
    }
    for (; p->count; p->count--) {
        free(p->queue[p->head]);
        p->head = (p->head + 1) % p->o.queue_cap;
        push_drop_locked(p);
    }
    if (out)
        *out = p->st;
    curl_slist_free_all(p->hdr[PUSH_OTLP]);
    curl_slist_free_all(p->hdr[PUSH_PPROF]);
    if (p->o.otlp_url || p->o.pprof_url)
        curl_global_cleanup();
    free(p->queue);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
