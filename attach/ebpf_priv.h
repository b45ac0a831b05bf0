/*
 * ebpf_priv.h — state shared by the eBPF sampler's files (ebpf.c: loading and targets;
 * ebpf_records.c: thread-list refresh and ring-buffer records). Not an API: see ebpf.h.
 */
#ifndef PT_EBPF_PRIV_H
#define PT_EBPF_PRIV_H

#include <errno.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "attach/ebpf.h"
#include "bpf/pysample.h"
#include "pysample.skel.h"

#define EBPF_REFRESH_NS 100000000ULL      /* thread lists re-read every 100 ms */
#define EBPF_MISS_REFRESH_NS 10000000ULL  /* ... or after 10 ms when the kernel missed a thread */
#define EBPF_FRESH_CODE_NS 1000000000ULL /* new code objects met this recently: ... */
#define EBPF_FRESH_POLL_MS 100            /* ... drain this often (ebpf_poll_ms) */
#define EBPF_NAMES_NS 1000000000ULL      /* thread names re-read every second (renames) */
#define EBPF_NAME_TRIES 20                /* ... and at the next refreshes, EBPF_MISS_REFRESH_NS
                                           * apart, for a new thread not in threading's table yet
                                           * (it has no name, or only its OS name) */
#define EBPF_FUTILE_MAX 4                 /* ... unless that many such refreshes mapped nothing */
#define EBPF_MAX_IDLE_SAMPLES 1000000     /* per off-CPU period */
#define EBPF_DRAIN_MAX_NS 50000000ULL    /* one drain stops after this long (ebpf_poll) */
#define EBPF_DRAIN_CHECK 64               /* records between looks at the clock in a drain */
#define EBPF_DRAIN_CUT (-ECANCELED)       /* ebpf_on_record's return: the drain's time is up */

struct ebpf_thread {
    pid_t host_tid;
    int64_t native_id;           /* as the target sees it (its pid namespace) */
    uint64_t thread_id, tstate;
    bool seen;
    uint64_t last_t;             /* time of the last sample fed: records never go back in time */
    struct pys_frame *last;      /* frames of the last on-CPU sample (for preempted periods) */
    uint16_t n_last, last_flags;
    uint64_t last_tstate, last_gil_holder;
    bool on_cpu;                 /* the last record fed was an on-CPU sample (not a wait) */
    char name[64];
};

struct ebpf_target {
    pid_t pid;
    struct py_proc *p;
    uint32_t proc;
    struct py_snapshot walk;
    struct ebpf_thread *th;
    uint32_t nth, cap;
    uint64_t last_refresh;
    uint64_t last_thread_sig;    /* py_thread_set_sig at the last name read */
    uint64_t last_names;         /* when thread names were last read */
    uint8_t name_tries;          /* refreshes left to name a thread that had none yet */
};

struct ebpf_sampler {
    struct pysample *skel;
    struct ring_buffer *rb;
    struct bpf_link **links;
    int nlinks;
    struct ebpf_target **targets;
    uint32_t ntargets, cap_targets;
    struct py_snapshot one;
    bool refresh_pending;            /* a miss waits for its refresh (EBPF_MISS_REFRESH_NS) */
    bool naming;                     /* a target has a thread still without its name (name_tries) */
    uint32_t futile;                 /* miss-driven refreshes in a row that mapped no thread: the
                                      * missing threads have no thread state (native threads) */
    const struct py_proc *one_p;     /* whose thread's frames `one` holds (NULL: none) */
    struct pys_frame one_raw[PYS_MAX_FRAMES];   /* the record `one` was made from, as sent */
    bool one_seeded;
    struct pys_record *tmp;      /* a preempted period with the thread's last stack filled in */
    const struct session_sink *sink;
    uint64_t period_ns;
    uint64_t last_misses, refreshes;
    uint64_t unresolved;             /* see ebpf_stats */
    uint64_t new_code_ns;            /* when a drain last met a code object never seen */
    uint64_t late;               /* records older than their thread's last sample (dropped) */
    uint64_t gap_samples;        /* ticks the CPU clock lost while a thread ran, filled in */
    int handled;
    uint32_t drained;            /* records this drain, for EBPF_DRAIN_CHECK */
    uint64_t drain_until_ns;     /* this drain stops at this time (EBPF_DRAIN_MAX_NS; 0: none) */
};

/* Re-reads t's thread list and brings the threads map (and off-CPU seeds) up to date. */
/* Re-reads t's thread list into the threads map; returns how many threads it newly mapped. */
int ebpf_refresh(struct ebpf_sampler *e, struct ebpf_target *t, uint64_t now);

/* Removes a thread from the threads and offcpu maps. */
void ebpf_forget_thread(struct ebpf_sampler *e, pid_t host_tid);

/* ring_buffer__new callback (ctx = the sampler). */
int ebpf_on_record(void *ctx, void *data, size_t size);

#endif
