// SPDX-License-Identifier: GPL-2.0
/*
 * pysample.bpf.c — the in-kernel half of `--ebpf` sampling (docs/ebpf.md).
 *
 * on_cpu_clock runs on every CPU at the sampling rate (a software CPU-clock perf event) in the
 * context of whatever thread it interrupted; if that thread is in `threads` it walks the thread's
 * Python frames — the thread is stopped for the whole walk, so the stack cannot tear — and sends
 * the code address and instruction of each frame through the ring buffer. on_switch (sched_switch)
 * saves a traced thread's stack when it blocks and sends it, with the sleep's length, when the
 * thread runs again: off-CPU time. Layout offsets come per process from `procs` (pysample.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "pysample.h"

char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PYS_MAX_PROCS);
    __type(key, __u32);
    __type(value, struct pys_layout);
} procs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PYS_MAX_THREADS);
    __type(key, __u32);
    __type(value, struct pys_thread);
} threads SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PYS_MAX_OFFCPU);
    __type(key, __u32);
    __type(value, struct pys_record);
} offcpu SEC(".maps");

/* tid → when a traced thread was preempted (no stack walked: see on_switch). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PYS_MAX_OFFCPU);
    __type(key, __u32);
    __type(value, __u64);
} preempted SEC(".maps");

/* Slot 0: the perf-event program, slot 1: sched_switch (they never nest on one CPU, but keep
 * them apart anyway). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, struct pys_record);
} scratch SEC(".maps");

struct frame_buf {
    __u8 b[PYS_FRAME_BUF + 8];
};

/* 3.11+: a copy of the thread's data-stack chunk, where its Python frames are (one read for the
 * whole stack instead of one per frame). */
struct stack_copy {
    __u8 b[PYS_STACK_COPY + 8];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, struct stack_copy);
} stackcopy SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, struct frame_buf);
} framebuf SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20);
} events SEC(".maps");

__u64 stats[PYS_S_COUNT];
__u64 last_miss_wake;   /* when a PYS_REC_MISS last woke user space */
const volatile __u32 want_offcpu = 1;
const volatile __u64 period_ns = 1000000;

struct walk_ctx {
    struct pys_record *rec;
    const struct pys_layout *L;
    struct frame_buf *fb;
    struct stack_copy *sc;
    __u64 sc_base, sc_len;        /* the copy holds [sc_base, sc_base + sc_len) */
    __u64 frame;
    __u32 n;
};

static __always_inline __u64 field_u64(const struct frame_buf *fb, __s32 off)
{
    __u32 o = (__u32)off;
    if (off < 0 || o > PYS_FRAME_BUF - 8)
        return 0;
    return *(const __u64 *)&fb->b[o & (PYS_FRAME_BUF - 1)];
}

/* A field of the frame at offset o of the stack copy (the copy is PYS_STACK_COPY + 8 bytes: any
 * masked offset leaves room for 8). */
static __always_inline __u64 copy_u64(const struct stack_copy *sc, __u32 o, __s32 off)
{
    return *(const __u64 *)&sc->b[(o + (__u32)off) & (PYS_STACK_COPY - 1)];
}

/* One 3.11+ frame that lies in the stack copy. */
static __always_inline void walk_copied(struct walk_ctx *c, __u32 o)
{
    const struct pys_layout *L = c->L;
    const struct stack_copy *sc = c->sc;
    __u64 code = copy_u64(sc, o, L->f_code) & ~L->code_tag_mask;
    __u64 back = copy_u64(sc, o, L->f_back);
    int shim = 0;
    if (L->f_owner >= 0) {
        __s8 owner = (__s8)sc->b[(o + (__u32)L->f_owner) & (PYS_STACK_COPY - 1)];
        shim = (L->owner_cstack >= 0 && owner == L->owner_cstack) ||
               (L->owner_interp >= 0 && owner == L->owner_interp);
    }
    if (!shim) {
        struct pys_frame *f = &c->rec->frames[c->n & (PYS_MAX_FRAMES - 1)];
        f->addr = c->frame;
        f->code = code;
        f->instr = copy_u64(sc, o, L->f_instr);
        c->n++;
    }
    c->frame = back;
}

static long walk_one(__u32 i, void *data)
{
    struct walk_ctx *c = data;
    const struct pys_layout *L = c->L;
    struct pys_record *rec = c->rec;
    struct frame_buf *fb = c->fb;
    if (!c->frame)
        return 1;
    if (c->n >= PYS_MAX_FRAMES) {
        rec->flags |= PYS_F_TRUNCATED;
        return 1;
    }
    /* 1..PYS_FRAME_BUF without a branch the compiler could reorder past the verifier's view. */
    __u32 len = ((L->frame_len - 1) & (PYS_FRAME_BUF - 1)) + 1;
    __u64 o = c->frame - c->sc_base;
    if (c->sc && c->frame >= c->sc_base && o + len <= c->sc_len) {
        /* In the stack copy (3.11+, every frame of a plain call chain): its fields are read
         * where they are, without a helper call or a copy per frame. */
        walk_copied(c, (__u32)o);
        return 0;
    }
    long rc = bpf_probe_read_user(fb->b, len, (const void *)c->frame);
    if (rc != 0) {
        rec->flags |= PYS_F_FAULT;
        return 1;
    }
    __u64 code = field_u64(fb, L->f_code) & ~L->code_tag_mask;
    __u64 back = field_u64(fb, L->f_back);
    int shim = 0;
    __u64 instr;
    if (L->frame_model == PYS_FRAMES_INTERP) {
        __s32 oo = L->f_owner;
        if (oo >= 0 && oo < PYS_FRAME_BUF) {
            __s8 owner = (__s8)fb->b[oo & (PYS_FRAME_BUF - 1)];
            shim = (L->owner_cstack >= 0 && owner == L->owner_cstack) ||
                   (L->owner_interp >= 0 && owner == L->owner_interp);
        }
        instr = field_u64(fb, L->f_instr);
    } else {
        __s32 io = L->f_instr;
        instr = 0;
        if (io >= 0 && io <= PYS_FRAME_BUF - 4)
            instr = (__u64)(__s64)*(const __s32 *)&fb->b[io & (PYS_FRAME_BUF - 1)];
    }
    if (!shim) {
        struct pys_frame *f = &rec->frames[c->n & (PYS_MAX_FRAMES - 1)];
        f->addr = c->frame;
        f->code = code;
        f->instr = instr;
        c->n++;
    }
    c->frame = back;
    return 0;
}

/* Fills rec with the current thread's stack; returns the record's size to send. */
static __always_inline __u32 walk_stack(__u32 slot, struct pys_record *rec,
                                        const struct pys_layout *L, __u64 tstate)
{
    struct frame_buf *fb = bpf_map_lookup_elem(&framebuf, &slot);
    if (!fb)
        return 0;
    __u64 frame = 0;
    rec->flags = 0;
    rec->nframes = 0;
    long rc = 0;
    if (L->ts_current_frame >= 0) {
        rc = bpf_probe_read_user(&frame, 8, (const void *)(tstate + L->ts_current_frame));
    } else if (L->ts_cframe >= 0) {
        __u64 cf = 0;
        rc = bpf_probe_read_user(&cf, 8, (const void *)(tstate + L->ts_cframe));
        if (rc == 0 && cf)
            rc = bpf_probe_read_user(&frame, 8, (const void *)(cf + L->cf_current_frame));
    } else if (L->ts_frame >= 0) {
        rc = bpf_probe_read_user(&frame, 8, (const void *)(tstate + L->ts_frame));
    }
    if (rc != 0)
        rec->flags |= PYS_F_FAULT;
    rec->gil_holder = 0;
    if (L->gil_holder_addr) {
        __u64 holder = 0;
        __u32 locked = 1;
        bpf_probe_read_user(&holder, 8, (const void *)L->gil_holder_addr);
        if (L->gil_locked_addr)
            bpf_probe_read_user(&locked, 4, (const void *)L->gil_locked_addr);
        rec->gil_holder = locked ? holder : 0;
    }
    struct walk_ctx c = {.rec = rec, .L = L, .fb = fb, .frame = frame, .n = 0};
    if (frame && L->ts_datastack_chunk >= 0 && L->ts_datastack_top >= 0) {
        __u64 chunk = 0, top = 0;
        bpf_probe_read_user(&chunk, 8, (const void *)(tstate + L->ts_datastack_chunk));
        bpf_probe_read_user(&top, 8, (const void *)(tstate + L->ts_datastack_top));
        struct stack_copy *sc = bpf_map_lookup_elem(&stackcopy, &slot);
        if (sc && chunk && top > chunk && top - chunk <= PYS_STACK_COPY) {
            __u32 n = (__u32)(top - chunk);
            n = ((n - 1) & (PYS_STACK_COPY - 1)) + 1;
            if (bpf_probe_read_user(sc->b, n, (const void *)chunk) == 0) {
                c.sc = sc;
                c.sc_base = chunk;
                c.sc_len = n;
            }
        }
    }
    if (frame)
        bpf_loop(PYS_MAX_FRAMES + 1, walk_one, &c, 0);
    __u32 n = c.n;
    if (n > PYS_MAX_FRAMES)
        n = PYS_MAX_FRAMES;
    rec->nframes = (__u16)n;
    if (rec->flags & PYS_F_FAULT)
        __sync_fetch_and_add(&stats[PYS_S_FAULTS], 1);
    return (__u32)PYS_RECORD_HEADER_SIZE + n * (__u32)sizeof(struct pys_frame);
}

/* The traced thread tid of process pid, or NULL (counting a miss when the process is traced). */
static __always_inline struct pys_thread *traced(__u32 pid, __u32 tid, struct pys_layout **L)
{
    struct pys_thread *th = bpf_map_lookup_elem(&threads, &tid);
    *L = bpf_map_lookup_elem(&procs, &pid);
    if (!*L)
        return NULL;
    if (!th || th->pid != pid) {
        __sync_fetch_and_add(&stats[PYS_S_MISSES], 1);
        /* Records come without wake-ups; a new thread should not wait for the next drain to be
         * mapped. A thread that never maps (no thread state: a native thread) wakes user space
         * at most every PYS_MISS_WAKE_NS. */
        __u64 now = bpf_ktime_get_ns();
        if (now - last_miss_wake >= PYS_MISS_WAKE_NS) {
            last_miss_wake = now;
            __u64 tag = PYS_REC_MISS;
            bpf_ringbuf_output(&events, &tag, sizeof tag, BPF_RB_FORCE_WAKEUP);
        }
        return NULL;
    }
    return th;
}

static __always_inline void send(struct pys_record *rec, __u32 size, enum pys_stat what)
{
    if (size < PYS_RECORD_HEADER_SIZE || size > sizeof(*rec))
        return;
    /* No wake-up per record: user space drains the buffer every few ms; it is woken only when
     * the buffer fills past a quarter (a wake-up per sample would cost more than the sample). */
    __u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (2 << 20) ? BPF_RB_FORCE_WAKEUP
                                                                          : BPF_RB_NO_WAKEUP;
    if (bpf_ringbuf_output(&events, rec, size, flags) != 0)
        __sync_fetch_and_add(&stats[PYS_S_DROPS], 1);
    else
        __sync_fetch_and_add(&stats[what], 1);
}

SEC("perf_event")
int on_cpu_clock(struct bpf_perf_event_data *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 pid = id >> 32, tid = (__u32)id;
    if (!pid)
        return 0;
    struct pys_layout *L;
    struct pys_thread *th = traced(pid, tid, &L);
    if (!th)
        return 0;
    __u32 slot = 0;
    struct pys_record *rec = bpf_map_lookup_elem(&scratch, &slot);
    if (!rec)
        return 0;
    rec->kind = PYS_REC_SAMPLE;
    rec->pid = pid;
    rec->tid = tid;
    rec->t_ns = bpf_ktime_get_ns();
    rec->t_end_ns = 0;
    rec->tstate = th->tstate;
    __u32 size = walk_stack(0, rec, L, th->tstate);
    send(rec, size, PYS_S_SAMPLES);
    return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state)
{
    if (!want_offcpu)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    /* The thread coming back: send its sleep, if we saw it start. */
    __u32 ntid = (__u32)next->pid;
    struct pys_record *held = bpf_map_lookup_elem(&offcpu, &ntid);
    if (held) {
        held->t_end_ns = now;
        __u32 n = held->nframes;
        if (n > PYS_MAX_FRAMES)
            n = PYS_MAX_FRAMES;
        send(held, (__u32)PYS_RECORD_HEADER_SIZE + n * (__u32)sizeof(struct pys_frame),
             PYS_S_OFFCPU);
        bpf_map_delete_elem(&offcpu, &ntid);
    } else {
        /* Back from a preemption: worth a record only when the wait spans a tick of the sampling
         * grid (user space gives it the thread's last sampled stack). */
        __u64 *t_out = bpf_map_lookup_elem(&preempted, &ntid);
        if (t_out) {
            __u64 t0 = *t_out;
            bpf_map_delete_elem(&preempted, &ntid);
            __u32 slot = 1;
            struct pys_record *rec = bpf_map_lookup_elem(&scratch, &slot);
            if (rec && period_ns && t0 / period_ns != now / period_ns) {
                rec->kind = PYS_REC_OFFCPU;
                rec->pid = (__u32)next->tgid;
                rec->tid = ntid;
                rec->nframes = 0;
                rec->flags = PYS_F_PREEMPTED;
                rec->t_ns = t0;
                rec->t_end_ns = now;
                rec->tstate = 0;
                rec->gil_holder = 0;
                send(rec, (__u32)PYS_RECORD_HEADER_SIZE, PYS_S_OFFCPU);
            }
        }
    }
    /* The thread leaving (still current: its memory is readable). Blocked: its stack is saved
     * for the off-CPU record. Preempted while runnable: only the time (a walk at every
     * preemption would cost more than the samples it stands for). */
    __u64 id = bpf_get_current_pid_tgid();
    __u32 pid = id >> 32, tid = (__u32)id;
    if (!pid)
        return 0;
    if (prev_state & (0x10 | 0x20 | 0x80))   /* EXIT_DEAD, EXIT_ZOMBIE, TASK_DEAD: exiting */
        return 0;
    struct pys_layout *L;
    struct pys_thread *th = traced(pid, tid, &L);
    if (!th)
        return 0;
    if (preempt || prev_state == 0) {
        bpf_map_update_elem(&preempted, &tid, &now, BPF_ANY);
        return 0;
    }
    __u32 slot = 1;
    struct pys_record *rec = bpf_map_lookup_elem(&scratch, &slot);
    if (!rec)
        return 0;
    rec->kind = PYS_REC_OFFCPU;
    rec->pid = pid;
    rec->tid = tid;
    rec->t_ns = now;
    rec->t_end_ns = 0;
    rec->tstate = th->tstate;
    walk_stack(1, rec, L, th->tstate);
    bpf_map_update_elem(&offcpu, &tid, rec, BPF_ANY);
    return 0;
}
