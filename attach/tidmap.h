/*
 * tidmap.h — a target's thread ids as its own pid namespace numbers them, beside the ids pytrace
 * sees.
 *
 * CPython records a thread's native_id (gettid() inside the target) in the target's pid
 * namespace; /proc/PID/task/TID, ptrace and libunwind take the ids of the namespace pytrace's
 * /proc belongs to. The two differ when the target runs in a container and pytrace on the host:
 * the container's thread 21 is the host's thread 23251, and the host's /proc/PID/task/21 does not
 * exist (or, worse, is another thread). Each thread's /proc/PID/task/TID/status NSpid line lists
 * its id at every namespace level, outermost first: the map pairs the first ("host", the id
 * pytrace uses) with the last ("ns", the id the target and every output of pytrace show).
 *
 * A process never changes pid namespace, so one status read (on first use) says whether it has
 * one of its own; when it does not, both lookups are the identity and cost nothing more. When it
 * does, the map is read on first use and read again only when an id is missing from it: a host id
 * by reading that one thread's status, a namespace id by re-listing /proc/PID/task (reading only
 * the threads not mapped yet, and at most every TIDMAP_RESCAN_NS). The steady state reads nothing
 * and allocates nothing.
 *
 * The map lives in the target's struct py_proc (one per target, never global).
 */
#ifndef PT_TIDMAP_H
#define PT_TIDMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define TIDMAP_RESCAN_NS 10000000ULL   /* a missing namespace id re-lists the threads at most
                                        * every 10 ms (a thread state may outlive its thread) */

struct tidmap_pair {
    pid_t ns, host;
    bool seen;                   /* listed by the last re-listing (the others have exited) */
};

struct tidmap {
    pid_t pid;                   /* <= 0: no live process (a core or a fake): the identity */
    int8_t nested;               /* 0 not known yet, 1 no namespace of its own, 2 its own */
    struct tidmap_pair *pairs;
    uint32_t n, cap;
    uint64_t listed_ns;          /* when /proc/PID/task was last listed (0: never) */
};

/* An empty map for process pid (as pytrace's /proc numbers it). */
void tidmap_init(struct tidmap *m, pid_t pid);
void tidmap_free(struct tidmap *m);

/* The id pytrace's /proc, ptrace and libunwind know the target's thread ns_tid by, or -1 when no
 * live thread has it. */
pid_t tidmap_host(struct tidmap *m, pid_t ns_tid);

/* The id the target knows thread host_tid by (what CPython stores as its native_id), or -1 when
 * it is not a live thread of the target. */
pid_t tidmap_ns(struct tidmap *m, pid_t host_tid);

/* Records that thread host_tid is ns_tid in the target's namespace (the re-listing's way in;
 * tests build maps with it). 0, or -1 when out of memory. */
int tidmap_add(struct tidmap *m, pid_t ns_tid, pid_t host_tid);

/* Forgets thread ns_tid's pair (its host id named no live thread: the id was reused), so the next
 * lookup reads /proc again. */
void tidmap_forget(struct tidmap *m, pid_t ns_tid);

/* True when the target has a pid namespace of its own (the ids differ); reads /proc once. */
bool tidmap_nested(struct tidmap *m);

#endif
