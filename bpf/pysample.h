/*
 * pysample.h — what the eBPF sampler (pysample.bpf.c) and its user side (attach/ebpf.c) share:
 * map keys and values, and the ring-buffer record. Included by the BPF object (after vmlinux.h)
 * and by C11 user code (after <linux/types.h>), so only __u32/__u64-style types appear here.
 *
 * Maps, all keyed in the initial pid namespace (what bpf_get_current_pid_tgid() returns):
 *   procs    pid → struct pys_layout   one per traced process: where CPython keeps what
 *   threads  tid → struct pys_thread   every Python thread of a traced process, with its
 *                                      PyThreadState address; user space keeps it current
 *   offcpu   tid → struct pys_record   the stack a traced thread had when it went to sleep
 *   preempted tid → __u64              when a traced thread was preempted
 *   scratch  per-CPU records the walk fills before copying them out
 *   events   ring buffer of struct pys_record (only the used frames are sent)
 */
#ifndef PT_PYSAMPLE_H
#define PT_PYSAMPLE_H

#define PYS_MAX_FRAMES 128        /* frames walked per sample; deeper stacks are cut */
#define PYS_FRAME_BUF 256         /* bytes of one frame read at once (offsets must fit) */
#define PYS_MAX_PROCS 1024
#define PYS_MAX_THREADS 16384
#define PYS_MAX_OFFCPU 4096
#define PYS_STACK_COPY 16384      /* bytes of a 3.11+ data-stack chunk copied in one read */

enum pys_frame_model {
    PYS_FRAMES_OBJECTS = 1,       /* PyFrameObject, f_back chain, int f_lasti (≤3.10) */
    PYS_FRAMES_INTERP = 2,        /* _PyInterpreterFrame, previous chain, instruction pointer */
};

/* Per-process layout: offsets copied from struct py_layout, addresses resolved by user space. */
struct pys_layout {
    __u32 frame_model;
    __u32 frame_len;              /* bytes read per frame, ≤ PYS_FRAME_BUF */
    __s32 ts_frame;               /* tstate->frame (≤3.10), else -1 */
    __s32 ts_cframe;              /* tstate->cframe (3.11–3.12), else -1 */
    __s32 cf_current_frame;       /* cframe->current_frame */
    __s32 ts_current_frame;       /* tstate->current_frame (3.13+), else -1 */
    __s32 f_back;                 /* f_back / previous */
    __s32 f_code;                 /* f_code / f_executable */
    __s32 f_instr;                /* f_lasti (int) / prev_instr / instr_ptr (pointer) */
    __s32 f_owner;                /* owner (char), -1 before 3.11 */
    __s32 owner_cstack;           /* owner value of shim frames to skip, -1 none */
    __s32 owner_interp;           /* second shim owner value (3.14+), -1 none */
    __s32 ts_datastack_chunk;     /* 3.11+: tstate->datastack_chunk, else -1 */
    __s32 ts_datastack_top;       /* 3.11+: tstate->datastack_top, else -1 */
    __u64 code_tag_mask;          /* low bits to clear from f_executable (3.14+) */
    __u64 gil_holder_addr;        /* address of the GIL holder's tstate pointer, 0 unknown */
    __u64 gil_locked_addr;        /* address of the GIL's int locked, 0 = holder alone is valid */
};

struct pys_thread {
    __u64 tstate;
    __u32 pid;
    __u32 pad;
};

enum pys_kind {
    PYS_REC_SAMPLE = 1,           /* on-CPU: the thread was interrupted by the CPU clock */
    PYS_REC_OFFCPU = 2,           /* the thread slept from t_ns to t_end_ns with this stack */
    PYS_REC_MISS = 3,             /* 8 bytes, no header: a thread of a traced process has no
                                     thread state in the map yet; sent (at most every
                                     PYS_MISS_WAKE_NS) only to wake user space for a refresh */
};
#define PYS_MISS_WAKE_NS 100000000ULL

enum pys_flags {
    PYS_F_TRUNCATED = 1 << 0,     /* deeper than PYS_MAX_FRAMES: the outermost frames are missing */
    PYS_F_FAULT = 1 << 1,         /* a read failed (page not present): the stack is partial */
    PYS_F_SEEDED = 1 << 2,        /* off-CPU record seeded by user space: instr holds lasti, and
                                     t_ns is when pytrace first saw the thread asleep */
    PYS_F_PREEMPTED = 1 << 3,     /* off-CPU record: waited for a CPU (preempted); no frames are
                                     sent, the thread's last sampled stack stands for them */
};

struct pys_frame {
    __u64 addr;                   /* frame object / interpreter frame */
    __u64 code;                   /* code object (tag bits cleared) */
    __u64 instr;                  /* f_lasti (objects) or the instruction pointer (interp) */
};

struct pys_record {
    __u32 kind;                   /* enum pys_kind */
    __u32 pid;                    /* tgid, initial pid namespace */
    __u32 tid;
    __u16 nframes;
    __u16 flags;                  /* enum pys_flags */
    __u64 t_ns;                   /* bpf_ktime_get_ns() = CLOCK_MONOTONIC */
    __u64 t_end_ns;               /* off-CPU: when it ran again; sample: 0 */
    __u64 tstate;
    __u64 gil_holder;             /* tstate holding the GIL at t_ns, 0 none/unknown */
    struct pys_frame frames[PYS_MAX_FRAMES];   /* innermost first; only nframes are sent */
};

#define PYS_RECORD_HEADER_SIZE ((unsigned long)&((struct pys_record *)0)->frames)

/* Counters in the object's .bss (index into `stats`). */
enum pys_stat {
    PYS_S_SAMPLES = 0,            /* on-CPU samples sent */
    PYS_S_OFFCPU = 1,             /* off-CPU records sent */
    PYS_S_MISSES = 2,             /* a traced process's thread missing from `threads` */
    PYS_S_DROPS = 3,              /* ring buffer full */
    PYS_S_FAULTS = 4,             /* partial stacks */
    PYS_S_COUNT = 8,
};

#endif
