/*
 * ebpf.h — sampling with eBPF instead of process_vm_readv (`--ebpf`, docs/ebpf.md).
 *
 * One software CPU-clock perf event per CPU runs a BPF program (bpf/pysample.bpf.c) that, when
 * it interrupts a thread of a traced process, walks that thread's Python frames in the kernel
 * and sends code addresses and instruction offsets through a ring buffer. A sched_switch program
 * records the stack a traced thread had when it blocked and, when it runs again, how long it was
 * off the CPU. User space keeps the BPF maps current (which pids, which threads with which
 * PyThreadState, the layout of each process) and turns records into struct py_snapshot through
 * each process's code cache, so they reach a session_sink like the ptrace sampler's snapshots.
 *
 * One struct ebpf_sampler can trace many processes at once (of any supported version, in any
 * pid namespace): the maps are keyed by pid and tid as the initial pid namespace sees them. It is
 * single-threaded: call every function from one thread.
 *
 * The daemon's use: ebpf_open() once; ebpf_add_target() for each Python process it starts
 * watching (with the handle its sink's process() returned), ebpf_remove_target() when one exits
 * or is dropped; ebpf_poll() in its loop (it also refreshes thread lists); ebpf_close() at the end.
 */
#ifndef PT_EBPF_H
#define PT_EBPF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach/session.h"
#include "readers/runtime.h"
#include "util/err.h"

struct ebpf_sampler;

struct ebpf_opts {
    double rate_hz;           /* CPU-clock samples per second and CPU */
    bool off_cpu;             /* attach the sched_switch program (off-CPU spans) */
};

struct ebpf_stats {
    uint64_t samples;         /* on-CPU records the kernel sent */
    uint64_t off_cpu;         /* off-CPU records sent */
    uint64_t misses;          /* samples of a traced process's thread not yet in the map */
    uint64_t drops;           /* records lost: ring buffer full */
    uint64_t faults;          /* stacks cut by a failed read */
    uint64_t refreshes;       /* thread-list refreshes done by user space */
    uint64_t late;            /* records older than their thread's last sample, dropped */
    uint64_t gap_samples;     /* ticks the CPU clock lost (throttled) while a thread ran, filled in */
    uint64_t unresolved;      /* frames whose code object was gone when its record was read
                               * (shown as an unknown function; the stack stays good) */
    uint64_t prog_run_ns;     /* kernel time in the programs (bpf_stats), 0 when not enabled */
    uint64_t prog_run_cnt;
    uint64_t clock_run_ns, clock_run_cnt;     /* ... of which the CPU-clock program */
    uint64_t switch_run_ns, switch_run_cnt;   /* ... and the sched_switch program */
};

/*
 * Checks that this build has eBPF support and that the kernel has BTF;
 * PT_EFAIL names what is missing (clang, bpftool, libbpf at build time; /sys/kernel/btf/vmlinux at
 * run time). Does not need privileges.
 */
enum pt_status ebpf_check(struct pt_err *err);

/* Loads and attaches the programs. PT_EPERM names the capabilities to grant. */
enum pt_status ebpf_open(struct ebpf_sampler **out, const struct ebpf_opts *o,
                         struct pt_err *err);

/*
 * Starts tracing p (which must outlive its registration); `proc` is the sink's handle for it
 * (what session_sink.process() returned), passed back to feed(). Fills the maps with p's layout
 * and current threads. Errors: PT_EVERSION for a layout the BPF walk cannot follow, PT_EFAIL when
 * a map is full.
 */
enum pt_status ebpf_add_target(struct ebpf_sampler *e, struct py_proc *p, uint32_t proc,
                               struct pt_err *err);

/* Stops tracing pid (its records still queued are dropped). */
void ebpf_remove_target(struct ebpf_sampler *e, pid_t pid);

/*
 * Waits up to timeout_ms for records and hands them to sink (feed for samples, feed and off_cpu
 * for off-CPU periods), then refreshes thread lists that are due (every 100 ms, sooner after
 * misses). Returns the number of records handled, or -1 on a ring-buffer error.
 */
int ebpf_poll(struct ebpf_sampler *e, const struct session_sink *sink, int timeout_ms);

/* How long the next ebpf_poll() may wait, given the longest the caller would like: code objects
 * are named when their records are drained, so while the targets still meet code objects never
 * seen (imports, start-up: one may be freed before a late drain names it) drains come every
 * 100 ms; once that has stopped for a second, every long_ms. */
int ebpf_poll_ms(const struct ebpf_sampler *e, int long_ms);

/* Ends the recording's open waits: every traced thread still blocked now gets its off-CPU
 * period (and idle samples) up to now. Call once, after the last ebpf_poll(). */
void ebpf_flush(struct ebpf_sampler *e, const struct session_sink *sink);

void ebpf_get_stats(struct ebpf_sampler *e, struct ebpf_stats *out);

void ebpf_close(struct ebpf_sampler *e);

/*
 * `run --ebpf`: loads and attaches the BPF programs before CMD starts (the verifier takes up to a
 * second here, which CMD would otherwise spend unrecorded); the next ebpf_session_run() uses
 * them. ebpf_session_discard() closes them when no session comes.
 */
enum pt_status ebpf_session_prepare(double rate_hz, struct pt_err *err);
void ebpf_session_discard(void);

/*
 * The recording loop of `attach --ebpf` / `run --ebpf`: session_run()'s contract (stops at the
 * duration, *stop, max_size, or the target's exit) with root traced through eBPF.
 */
enum pt_status ebpf_session_run(const struct session_opts *o, struct py_proc *root,
                                pid_t root_pid, pid_t child_pid, const struct session_sink *sink,
                                volatile int *stop, struct session_result *res,
                                struct pt_err *err);

/*
 * `daemon --ebpf`: one sampler for every process o->discover hands over (added as found, removed
 * when they exit), until *stop or the duration. The sink owns what the processes become.
 */
enum pt_status ebpf_daemon_run(const struct session_opts *o, const struct session_sink *sink,
                               volatile int *stop, struct session_result *res,
                               struct pt_err *err);

#endif
