/*
 * proc.h — facts about a process from /proc: memory maps, threads, executable, namespaces,
 * per-thread scheduler state and CPU time, RSS.
 *
 * Files of the target are named through /proc/PID/root/<path> (proc_root_path), so a sidecar in
 * another mount namespace opens the target's own libpython rather than one of its own.
 */
#ifndef PT_PROC_H
#define PT_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

struct proc_map {
    uint64_t start, end, offset;
    uint64_t inode;
    bool r, w, x;
    char path[PATH_MAX];   /* as the target sees it; "" for anonymous mappings */
};

/* Reads /proc/PID/maps into a malloc'd array (caller frees *out). PT_ENOPROC if the pid is gone. */
enum pt_status proc_maps(pid_t pid, struct proc_map **out, size_t *n, struct pt_err *err);

/* True if a process with this pid exists (zombies count as gone). */
bool proc_alive(pid_t pid);
/* The same from /proc/PID/stat kept open in *fd (-1: opened now; the caller closes it): one
 * pread a check, and a pid reused after the process died does not pass for it. */
bool proc_alive_fd(pid_t pid, int *fd);

/* kernel.perf_event_max_sample_rate: the most samples a second a perf event may take (the
 * kernel lowers it when sampling interrupts run long); -1 when it cannot be read. */
long proc_perf_max_rate(void);

/* Warns on stderr (one line naming the sysctl) when --ebpf at rate_hz would be throttled by
 * perf_event_max_sample_rate (rate_hz at or above it). */
void proc_warn_perf_rate(const char *verb, double rate_hz);

/* readlink of /proc/PID/exe into buf ("" on failure); returns 0 or -1. */
int proc_exe(pid_t pid, char *buf, size_t cap);

/* "/proc/PID/root" + path, the way to open a file as the target sees it. */
void proc_root_path(pid_t pid, const char *path, char *out, size_t cap);

/* Thread ids from /proc/PID/task, up to cap; returns the count (or -1 if the pid is gone). */
int proc_threads(pid_t pid, pid_t *tids, int cap);

/* Threads the helpers that list them all (proc_children, tidmap) look at, at most. */
#define PROC_MAX_TASKS 8192

/* Child processes of pid, from /proc/PID/task/TID/children of each of its threads (a child is
 * listed under the thread that forked it), up to cap; returns the count (-1 if the pid is gone).
 * An orphan is re-parented to the nearest subreaper and is no longer listed. */
int proc_children(pid_t pid, pid_t *out, int cap);

/* The process ptrace-ing pid (TracerPid in /proc/PID/status); 0 when none or unknown. */
pid_t proc_tracer(pid_t pid);

/* Pids of this process in each nested PID namespace (NSpid line), outermost first; returns the
 * count (1 when not in a child namespace, 0 when unknown). */
int proc_nspid(pid_t pid, pid_t *out, int cap);

/* The same for one thread (/proc/PID/task/TID/status): its tid at each level. */
int proc_thread_nspid(pid_t pid, pid_t tid, pid_t *out, int cap);

/* Parses the NSpid line of a /proc status file's text (pure: no I/O); returns the count, 0 when
 * the line is missing (kernels before 4.1) or malformed. */
int proc_parse_nspid(const char *status, pid_t *out, int cap);

struct proc_tstat {
    char state;          /* R running, S sleeping, D disk, T stopped, t traced, Z zombie ... */
    uint64_t utime_ns;   /* user CPU */
    uint64_t stime_ns;   /* system CPU */
};

/* Scheduler state and CPU time of one thread (/proc/PID/task/TID/stat); 0 or -1. */
int proc_thread_stat(pid_t pid, pid_t tid, struct proc_tstat *out);

/* The same from an open /proc/PID/task/TID/stat (read with pread at offset 0). */
int proc_thread_stat_fd(int fd, struct proc_tstat *out);

/* The command line with NULs turned into spaces; returns 0 or -1. */
int proc_cmdline(pid_t pid, char *buf, size_t cap);

/* comm (the kernel's short name) of a process or thread (tid may equal pid); 0 or -1. */
int proc_comm(pid_t pid, pid_t tid, char *buf, size_t cap);

/* Resident set size in bytes, or -1. */
int64_t proc_rss(pid_t pid);
/* The same from /proc/PID/statm kept open (proc_rss_open(): its fd, or -1): one pread, no
 * open/close and no path to format, for a recorder that reads it every 10 ms. */
int proc_rss_open(pid_t pid);
int64_t proc_rss_fd(int fd);

#endif
