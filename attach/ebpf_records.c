/*
 * ebpf_records.c — the eBPF sampler's steady state (see ebpf.h): re-reading each target's thread
 * list into the threads map, and turning ring-buffer records into one-thread snapshots: frames
 * resolved through the process's code cache exactly as readers/stack.c resolves them, so lines
 * and functions match the ptrace sampler's.
 */
#ifdef PT_HAVE_EBPF
#include "attach/ebpf_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/proc.h"
#include "attach/sampler.h"

static struct ebpf_thread *thread_by_host(struct ebpf_target *t, pid_t host_tid)
{
    for (uint32_t i = 0; i < t->nth; i++)
        if (t->th[i].host_tid == host_tid)
            return &t->th[i];
    return NULL;
}

static struct ebpf_thread *new_thread(struct ebpf_target *t)
{
    if (t->nth == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 8;
        struct ebpf_thread *n = realloc(t->th, cap * sizeof *n);
        if (!n)
            return NULL;
        t->th = n;
        t->cap = cap;
    }
    struct ebpf_thread *th = &t->th[t->nth++];
    memset(th, 0, sizeof *th);
    return th;
}

/* A thread already asleep when we first see it never switches out under our eyes: give the
 * kernel its stack now (lasti already computed), so its wake-up still reports the sleep. */
static void seed_offcpu(struct ebpf_sampler *e, struct ebpf_target *t, const struct py_thread *pt,
                        pid_t host_tid)
{
    static struct pys_record r;
    struct proc_tstat st;
    if (proc_thread_stat(t->pid, host_tid, &st) != 0 || st.state == 'R')
        return;   /* woke up since the walk */
    uint64_t now = sampler_now_ns();
    memset(&r, 0, PYS_RECORD_HEADER_SIZE);
    r.kind = PYS_REC_OFFCPU;
    r.pid = (__u32)t->pid;
    r.tid = (__u32)host_tid;
    r.flags = PYS_F_SEEDED;
    r.t_ns = now;
    r.tstate = pt->tstate;
    uint32_t n = pt->nframes < PYS_MAX_FRAMES ? pt->nframes : PYS_MAX_FRAMES;
    if (pt->nframes > PYS_MAX_FRAMES)
        r.flags |= PYS_F_TRUNCATED;
    for (uint32_t i = 0; i < n; i++) {
        const struct py_frame *f = py_thread_frame(&t->walk, pt, i);
        r.frames[i] = (struct pys_frame){f->addr, f->code_addr, (__u64)(int64_t)f->lasti};
    }
    r.nframes = (__u16)n;
    __u32 key = (__u32)host_tid;
    bpf_map_update_elem(bpf_map__fd(e->skel->maps.offcpu), &key, &r, BPF_NOEXIST);
}

static bool has_new_thread(const struct ebpf_target *t)
{
    for (uint32_t i = 0; i < t->walk.nthreads; i++) {
        const struct py_thread *pt = &t->walk.threads[i];
        bool known = false;
        for (uint32_t k = 0; k < t->nth && !known; k++)
            known = t->th[k].native_id == pt->native_id && t->th[k].thread_id == pt->thread_id;
        if (!known)
            return true;
    }
    return false;
}

int ebpf_refresh(struct ebpf_sampler *e, struct ebpf_target *t, uint64_t now)
{
    struct pt_err err;
    int mapped = 0;
    t->last_refresh = now;
    e->refreshes++;
    /* The thread list only: no /proc reads (off-CPU seeding reads the state by host tid), and
     * no stacks unless a thread is new (its stack seeds its off-CPU state). */
    if (py_walk(t->p, &t->walk, PY_WALK_NO_STACKS, &err) != PT_OK)
        return 0;
    if (has_new_thread(t) && py_walk(t->p, &t->walk, 0, &err) != PT_OK)
        return 0;
    /* Names as the ptrace sampler reads them (when the threads change, and every second), and
     * again at the next refreshes while a thread has none: a thread is mapped as soon as it
     * runs, often before threading has entered it in its table. */
    uint64_t sig = py_thread_set_sig(&t->walk);
    bool threads_changed = sig != t->last_thread_sig;
    if (threads_changed || t->name_tries || now - t->last_names >= EBPF_NAMES_NS) {
        py_thread_names(t->p, &t->walk);
        bool unnamed = false;
        for (uint32_t i = 0; i < t->walk.nthreads; i++)
            unnamed |= !t->walk.threads[i].name[0] || t->walk.threads[i].name_os;
        if (!unnamed)
            t->name_tries = 0;
        else if (threads_changed)
            t->name_tries = EBPF_NAME_TRIES;
        else if (t->name_tries)
            t->name_tries--;
        t->last_thread_sig = sig;
        t->last_names = now;
    }
    int fd = bpf_map__fd(e->skel->maps.threads);
    for (uint32_t i = 0; i < t->nth; i++)
        t->th[i].seen = false;
    for (uint32_t i = 0; i < t->walk.nthreads; i++) {
        const struct py_thread *pt = &t->walk.threads[i];
        struct ebpf_thread *th = NULL;
        for (uint32_t k = 0; k < t->nth && !th; k++)
            if (t->th[k].native_id == pt->native_id && t->th[k].thread_id == pt->thread_id)
                th = &t->th[k];
        bool fresh = !th;
        if (fresh) {
            /* The kernel's maps are keyed by the initial namespace's tid (bpf/pysample.h). */
            pid_t host = tidmap_host(&t->p->tids, (pid_t)pt->native_id);
            if (host <= 0 || !(th = new_thread(t)))
                continue;
            th->host_tid = host;
            mapped++;
            th->native_id = pt->native_id;
            th->thread_id = pt->thread_id;
        }
        th->seen = true;
        if (pt->name[0])
            snprintf(th->name, sizeof th->name, "%s", pt->name);
        if (fresh || th->tstate != pt->tstate) {
            th->tstate = pt->tstate;
            struct pys_thread v = {pt->tstate, (__u32)t->pid, 0};
            __u32 key = (__u32)th->host_tid;
            bpf_map_update_elem(fd, &key, &v, BPF_ANY);
        }
        /* (seed_offcpu reads the state by host tid: this walk read no OS state) */
        if (fresh && !pt->bad)
            seed_offcpu(e, t, pt, th->host_tid);
    }
    for (uint32_t i = 0; i < t->nth && t->walk.complete; i++) {
        if (t->th[i].seen)
            continue;
        ebpf_forget_thread(e, t->th[i].host_tid);
        free(t->th[i].last);
        t->th[i--] = t->th[--t->nth];
    }
    code_cache_recheck(t->p->codes, t->p->mem, &t->p->layout, &t->p->types);
    return mapped;
}

/* Byte offset of the instruction in progress, as stack.c computes it. */
static int32_t lasti_of(const struct py_layout *L, const struct pys_frame *f, bool seeded)
{
    int64_t lasti = -1;
    if (seeded) {
        lasti = (int64_t)f->instr;
    } else if (L->frame_model == PY_FRAMES_OBJECTS) {
        lasti = (int32_t)f->instr;
        if (L->linetable == PY_LT_LINETABLE310 && lasti >= 0)
            lasti *= 2;
    } else {
        uint64_t start = f->code + (uint64_t)L->co_code_adaptive;
        if (f->instr >= start && f->instr - start < (1u << 30))
            lasti = (int64_t)(f->instr - start);
    }
    return lasti >= 0 && lasti < INT32_MAX ? (int32_t)lasti : -1;
}

/* Fills e->one with the record's thread and frames. */
static int to_snapshot(struct ebpf_sampler *e, struct ebpf_target *t, const struct ebpf_thread *th,
                       const struct pys_record *r, uint32_t n)
{
    struct py_snapshot *s = &e->one;
    if (!s->cap_threads) {
        s->threads = calloc(1, sizeof *s->threads);
        if (!s->threads)
            return -1;
        s->cap_threads = 1;
    }
    if (s->cap_frames < PYS_MAX_FRAMES) {
        struct py_frame *f = realloc(s->frames, PYS_MAX_FRAMES * sizeof *f);
        if (!f)
            return -1;
        s->frames = f;
        s->cap_frames = PYS_MAX_FRAMES;
    }
    struct py_proc *p = t->p;
    struct py_thread *pt = &s->threads[0];
    /* The previous record's frames, when they are this thread's, line up root first with this
     * one's: a frame at the same depth with the same address, code and offset keeps its code
     * entry and line (it is still running that code) without a lookup. */
    uint32_t on = s->nthreads && e->one_p == p && pt->tstate == r->tstate ? s->nframes : 0;
    uint32_t keep = on < n ? on : n;
    if (keep && on != n)
        memmove(&s->frames[n - keep], &s->frames[on - keep], keep * sizeof *s->frames);
    e->one_p = p;
    memset(pt, 0, sizeof *pt);
    pt->tstate = r->tstate;
    pt->thread_id = th->thread_id;
    pt->native_id = th->native_id;
    pt->holds_gil = r->gil_holder && r->gil_holder == r->tstate;
    pt->truncated = (r->flags & PYS_F_TRUNCATED) != 0;
    pt->bad = (r->flags & PYS_F_FAULT) != 0;
    pt->nframes = n;
    size_t nl = strnlen(th->name, sizeof pt->name - 1);   /* per record: no printf */
    memcpy(pt->name, th->name, nl);
    pt->name[nl] = '\0';
    bool seeded = (r->flags & PYS_F_SEEDED) != 0;
    /* Root-side frames sent exactly as last time need nothing at all: compared as sent, without
     * working out their offsets (a deep stack whose leaf moves is most of them). */
    uint32_t same = 0;
    if (keep && seeded == e->one_seeded) {
        const struct pys_frame *a = &r->frames[n - 1], *b = &e->one_raw[on - 1];
        while (same < keep && a->addr == b->addr && a->code == b->code && a->instr == b->instr &&
               s->frames[n - 1 - same].code) {
            same++;
            a--;
            b--;
        }
    }
    memcpy(e->one_raw, r->frames, n * sizeof *r->frames);
    e->one_seeded = seeded;
    for (uint32_t i = 0; i < n - same; i++) {
        const struct pys_frame *rf = &r->frames[i];
        struct py_frame *f = &s->frames[i];
        int32_t lasti = lasti_of(&p->layout, rf, seeded);
        if (i >= n - keep && f->addr == rf->addr && f->code_addr == rf->code && f->lasti == lasti &&
            f->code)
            continue;
        f->addr = rf->addr;
        f->code_addr = rf->code;
        f->lasti = lasti;
        py_frame_resolve(p, f);
        f->argsig = 0;
        /* The kernel read a consistent stack: a code object freed before its record was read
         * (an imported module's body, an exec'd string) leaves one frame unnamed, not the
         * sample torn. */
        e->unresolved += !f->code;
    }
    s->nthreads = 1;
    s->nframes = n;
    s->complete = false;
    s->t_ns = r->t_ns;
    s->gil_holder = r->gil_holder;
    s->bad_threads = pt->bad ? 1 : 0;
    return 0;
}

/* An off-CPU period: samples at the sampling period across it (idle when the thread blocked,
 * running when it was preempted), so sample counts cover wall time as the ptrace sampler's do;
 * then, for a blocked period, the period itself for the sink's off-CPU span. */
static void deliver_offcpu(struct ebpf_sampler *e, struct ebpf_target *t, struct ebpf_thread *th,
                           const struct pys_record *r)
{
    const struct session_sink *sk = e->sink;
    struct py_thread *pt = &e->one.threads[0];
    bool runnable = (r->flags & PYS_F_PREEMPTED) != 0;   /* waited for a CPU, not for an event */
    pt->idle = !runnable;
    pt->os_state = runnable ? 'R' : 'S';
    /* A seed can predate a sample taken while user space was seeding it: start after that. */
    uint64_t begin = r->t_ns > th->last_t ? r->t_ns : th->last_t + 1;
    if (begin >= r->t_end_ns) {
        e->late++;
        return;
    }
    /* On the sampling grid (multiples of the period), as the CPU clock samples: a wait shorter
     * than the period gets a sample with the probability it would have had on the CPU. */
    uint64_t n = 0, first = (begin + e->period_ns - 1) / e->period_ns * e->period_ns;
    for (uint64_t ts = first; ts < r->t_end_ns && n < EBPF_MAX_IDLE_SAMPLES; ts += e->period_ns, n++) {
        sk->feed(sk->ctx, t->proc, t->p, &e->one, ts);
        th->last_t = ts;
    }
    if (sk->off_cpu && !runnable)
        sk->off_cpu(sk->ctx, t->proc, t->p, &e->one, begin, r->t_end_ns);
}

/* The thread's last on-CPU sample as a record of r's header (pid, tid, times), in e->tmp. */
static const struct pys_record *last_as_record(struct ebpf_sampler *e, const struct ebpf_thread *th,
                                               const struct pys_record *r, uint16_t flags)
{
    memcpy(e->tmp, r, PYS_RECORD_HEADER_SIZE);
    e->tmp->tstate = th->last_tstate;
    e->tmp->gil_holder = th->last_gil_holder;   /* a preempted thread keeps the GIL */
    e->tmp->flags = (uint16_t)(flags | th->last_flags);
    e->tmp->nframes = th->n_last;
    memcpy(e->tmp->frames, th->last, th->n_last * sizeof *th->last);
    return e->tmp;
}

/*
 * Ticks the CPU clock did not deliver while the thread ran: the kernel throttles a perf event
 * that takes more than kernel.perf_event_max_sample_rate / HZ samples in a tick (and lowers that
 * rate itself when sampling interrupts run long: on this VM it fell to 1,000, and at 1 kHz about
 * one sample in eight was lost). Waits are filled in on the sampling grid, so lost running time
 * would tip the shares toward waiting (phases.py: query() 0.25 of samples against 0.228 of the
 * time). A gap of more than 1.5 periods between two on-CPU samples, with no wait recorded
 * between them, gets the missing ticks with the earlier sample's stack, as a wait for a CPU does.
 */
static void fill_gap(struct ebpf_sampler *e, struct ebpf_target *t, struct ebpf_thread *th,
                     const struct pys_record *r)
{
    if (!e->tmp)
        return;
    const struct pys_record *g = last_as_record(e, th, r, 0);
    if (to_snapshot(e, t, th, g, th->n_last) != 0)
        return;
    for (uint64_t ts = th->last_t + e->period_ns, n = 0;
         ts + e->period_ns / 2 < r->t_ns && n < EBPF_MAX_IDLE_SAMPLES; ts += e->period_ns, n++) {
        e->sink->feed(e->sink->ctx, t->proc, t->p, &e->one, ts);
        th->last_t = ts;
        e->gap_samples++;
    }
}

static void on_record(struct ebpf_sampler *e, const struct pys_record *r, size_t size)
{
    if (size < PYS_RECORD_HEADER_SIZE || !e->sink)
        return;
    uint32_t n = r->nframes;
    if (n > PYS_MAX_FRAMES || PYS_RECORD_HEADER_SIZE + n * sizeof(struct pys_frame) > size)
        return;
    struct ebpf_target *t = NULL;
    for (uint32_t i = 0; i < e->ntargets && !t; i++)
        if (e->targets[i]->pid == (pid_t)r->pid)
            t = e->targets[i];
    if (!t)
        return;
    struct ebpf_thread *th = thread_by_host(t, (pid_t)r->tid);
    if (!th) {
        t->last_refresh = 0;
        return;
    }
    if (r->kind == PYS_REC_SAMPLE && th->on_cpu && th->n_last &&
        r->t_ns > th->last_t + e->period_ns + e->period_ns / 2)
        fill_gap(e, t, th, r);
    if (r->kind == PYS_REC_OFFCPU && (r->flags & PYS_F_PREEMPTED)) {
        /* No frames: the last sampled stack stands for the wait. */
        if (!th->last || !e->tmp)
            return;
        r = last_as_record(e, th, r, PYS_F_PREEMPTED);
        n = th->n_last;
    } else if (r->kind == PYS_REC_SAMPLE && (th->last || (th->last = malloc(PYS_MAX_FRAMES *
                                                                        sizeof *th->last)))) {
        memcpy(th->last, r->frames, n * sizeof *th->last);
        th->n_last = (uint16_t)n;
        th->last_flags = r->flags & (PYS_F_TRUNCATED | PYS_F_FAULT);
        th->last_tstate = r->tstate;
        th->last_gil_holder = r->gil_holder;
    }
    if (to_snapshot(e, t, th, r, n) != 0)
        return;
    e->handled++;
    if (r->kind == PYS_REC_SAMPLE) {
        if (r->t_ns <= th->last_t) {
            e->late++;
            return;
        }
        e->sink->feed(e->sink->ctx, t->proc, t->p, &e->one, r->t_ns);
        th->last_t = r->t_ns;
        th->on_cpu = true;
    } else if (r->kind == PYS_REC_OFFCPU && r->t_end_ns > r->t_ns) {
        deliver_offcpu(e, t, th, r);
        th->on_cpu = false;
    }
}

int ebpf_on_record(void *ctx, void *data, size_t size)
{
    struct ebpf_sampler *e = ctx;
    on_record(e, data, size);
    /* A producer faster than this consumer would keep one drain going for ever, and with it the
     * recording's deadline, Ctrl-C and the writer's flushes: the drain stops after
     * EBPF_DRAIN_MAX_NS. libbpf has taken this record off the ring; the rest wait for the next
     * drain. */
    if (++e->drained % EBPF_DRAIN_CHECK == 0 && e->drain_until_ns &&
        sampler_now_ns() >= e->drain_until_ns)
        return EBPF_DRAIN_CUT;
    return 0;
}

int ebpf_poll(struct ebpf_sampler *e, const struct session_sink *sink, int timeout_ms)
{
    e->sink = sink;
    e->handled = 0;
    /* A miss whose refresh had to wait for EBPF_MISS_REFRESH_NS, or a thread still without
     * its name: come back for it in time. */
    int soon = (int)(EBPF_MISS_REFRESH_NS / 1000000);
    if ((e->refresh_pending || e->naming) && timeout_ms > soon)
        timeout_ms = soon;
    uint64_t unresolved = e->unresolved, codes = 0;
    for (uint32_t i = 0; i < e->ntargets; i++)
        codes += code_cache_size(e->targets[i]->p->codes);
    /* Records come without wake-ups (see send() in pysample.bpf.c): wait, then drain, for
     * EBPF_DRAIN_MAX_NS at most. */
    e->drained = 0;
    e->drain_until_ns = sampler_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ULL +
                        EBPF_DRAIN_MAX_NS;
    int rc = ring_buffer__poll(e->rb, timeout_ms);
    if (rc < 0 && rc != -EINTR && rc != EBPF_DRAIN_CUT)
        return -1;
    if (rc != EBPF_DRAIN_CUT) {
        e->drained = 0;
        e->drain_until_ns = sampler_now_ns() + EBPF_DRAIN_MAX_NS;
        rc = ring_buffer__consume(e->rb);
        if (rc < 0 && rc != -EINTR && rc != EBPF_DRAIN_CUT)
            return -1;
    }
    uint64_t now = sampler_now_ns();
    for (uint32_t i = 0; i < e->ntargets; i++)
        codes -= code_cache_size(e->targets[i]->p->codes);   /* the cache only grows */
    if (codes || unresolved != e->unresolved || !e->new_code_ns)
        e->new_code_ns = now;   /* (and the first drain: start-up) */
    uint64_t misses = e->skel->bss->stats[PYS_S_MISSES];
    /* Misses hurry the refresh, unless the last ones were for threads no refresh maps. */
    bool missed = (misses != e->last_misses && e->futile < EBPF_FUTILE_MAX) || e->refresh_pending;
    if (misses == e->last_misses)
        e->futile = 0;
    e->last_misses = misses;
    e->refresh_pending = false;
    e->naming = false;
    for (uint32_t i = 0; i < e->ntargets; i++) {
        struct ebpf_target *t = e->targets[i];
        /* A new thread is often mapped before threading has entered it in _active: its name is
         * tried again every EBPF_MISS_REFRESH_NS, as it may not live until the next regular
         * refresh (drains are up to 500 ms apart). */
        uint64_t due = missed || t->name_tries ? EBPF_MISS_REFRESH_NS : EBPF_REFRESH_NS;
        if (now - t->last_refresh >= due) {
            int mapped = ebpf_refresh(e, t, now);
            if (missed)
                e->futile = mapped ? 0 : e->futile + 1;
            /* A new thread's state may not name it yet (up to 3.11 it has its creator's ids until
             * it runs; from 3.12 none until bound): come back in EBPF_MISS_REFRESH_NS rather than
             * at the kernel's next miss wake-up, PYS_MISS_WAKE_NS (100 ms) later. */
            if (missed && !mapped && e->futile < EBPF_FUTILE_MAX)
                e->refresh_pending = true;
        } else if (missed) {
            e->refresh_pending = true;
        }
        e->naming |= t->name_tries != 0;
    }
    return e->handled;
}

int ebpf_poll_ms(const struct ebpf_sampler *e, int long_ms)
{
    uint64_t now = sampler_now_ns();
    bool fresh = !e->new_code_ns || now - e->new_code_ns < EBPF_FRESH_CODE_NS;
    return fresh && long_ms > EBPF_FRESH_POLL_MS ? EBPF_FRESH_POLL_MS : long_ms;
}

void ebpf_flush(struct ebpf_sampler *e, const struct session_sink *sink)
{
    struct pys_record *r = malloc(sizeof *r);
    if (!r)
        return;
    e->sink = sink;
    e->drain_until_ns = 0;   /* no time limit: the seeds are few */
    int fd = bpf_map__fd(e->skel->maps.offcpu);
    uint64_t now = sampler_now_ns();
    __u32 key = 0, next;
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
        first = false;
        key = next;
        if (bpf_map_lookup_elem(fd, &key, r) == 0 && r->t_ns < now && r->nframes <= PYS_MAX_FRAMES) {
            r->t_end_ns = now;
            ebpf_on_record(e, r, PYS_RECORD_HEADER_SIZE + r->nframes * sizeof(struct pys_frame));
        }
    }
    free(r);
}

void ebpf_get_stats(struct ebpf_sampler *e, struct ebpf_stats *out)
{
    memset(out, 0, sizeof *out);
    const __u64 *s = e->skel->bss->stats;
    out->samples = s[PYS_S_SAMPLES];
    out->off_cpu = s[PYS_S_OFFCPU];
    out->misses = s[PYS_S_MISSES];
    out->drops = s[PYS_S_DROPS];
    out->faults = s[PYS_S_FAULTS];
    out->refreshes = e->refreshes;
    out->late = e->late;
    out->gap_samples = e->gap_samples;
    out->unresolved = e->unresolved;
    struct bpf_program *progs[2] = {e->skel->progs.on_cpu_clock, e->skel->progs.on_switch};
    for (int i = 0; i < 2; i++) {
        struct bpf_prog_info info;
        __u32 len = sizeof info;
        memset(&info, 0, sizeof info);
        int fd = bpf_program__fd(progs[i]);
        if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
            out->prog_run_ns += info.run_time_ns;
            out->prog_run_cnt += info.run_cnt;
            *(i ? &out->switch_run_ns : &out->clock_run_ns) = info.run_time_ns;
            *(i ? &out->switch_run_cnt : &out->clock_run_cnt) = info.run_cnt;
        }
    }
}

void ebpf_close(struct ebpf_sampler *e)
{
    if (!e)
        return;
    ring_buffer__free(e->rb);
    for (int i = 0; i < e->nlinks; i++)
        bpf_link__destroy(e->links[i]);
    free(e->links);
    while (e->ntargets)
        ebpf_remove_target(e, e->targets[0]->pid);
    free(e->targets);
    pysample__destroy(e->skel);
    py_snapshot_free(&e->one);
    free(e->tmp);
    free(e);
}
#endif
