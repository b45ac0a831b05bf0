/*
 * record_session.c — the recorder as a session sink: attach/session.c and the eBPF session feed
 * any sink through struct session_sink; these adapters hand its calls to the rec_sink_* API
 * (record.c), which owns the recording.
 */
#include "output/record.h"

static uint32_t sk_process(void *c, struct py_proc *p, uint32_t parent)
{
    return rec_sink_process(c, p, parent);
}

static void sk_feed(void *c, uint32_t proc, struct py_proc *p, const struct py_snapshot *snap,
                    uint64_t t_ns)
{
    rec_sink_feed(c, proc, p, snap, t_ns);
}

static void sk_feed_native(void *c, uint32_t proc, struct py_proc *p,
                           const struct py_snapshot *snap, const struct native_snap *ns,
                           uint64_t t_ns)
{
    rec_sink_feed_native(c, proc, p, snap, ns, t_ns);
}

static void sk_feed_failed(void *c, uint32_t proc, uint64_t t_ns) { rec_sink_feed_failed(c, proc, t_ns); }

static void sk_process_exit(void *c, uint32_t proc, uint64_t t_ns, int64_t status)
{
    rec_sink_process_exit(c, proc, t_ns, status);
}

static enum pt_status sk_tick(void *c, uint64_t now_ns, struct pt_err *err)
{
    return rec_sink_tick(c, now_ns, err);
}

static void sk_off_cpu(void *c, uint32_t proc, struct py_proc *p, const struct py_snapshot *snap,
                       uint64_t t_begin, uint64_t t_end)
{
    (void)p;
    rec_sink_off_cpu(c, proc, snap, t_begin, t_end);
}

static uint64_t sk_samples(void *c) { return rec_sink_samples(c); }
static uint64_t sk_errors(void *c) { return rec_sink_errors(c); }
static uint64_t sk_bytes(void *c) { return rec_sink_bytes(c); }

struct session_sink rec_sink_as_session_sink(struct rec_sink *s)
{
    return (struct session_sink){
        .process = sk_process, .feed = sk_feed, .feed_failed = sk_feed_failed,
        .process_exit = sk_process_exit, .tick = sk_tick, .samples = sk_samples,
        .errors = sk_errors, .bytes = sk_bytes, .ctx = s, .feed_native = sk_feed_native,
        .off_cpu = sk_off_cpu,
    };
}
