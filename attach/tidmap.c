/*
 * tidmap.c — thread ids between the target's pid namespace and pytrace's (see tidmap.h): the
 * NSpid line of each /proc/PID/task/TID/status, read once per thread, kept in a small table.
 */
#include "attach/tidmap.h"

#include <stdlib.h>
#include <string.h>

#include "attach/proc.h"
#include "attach/sampler.h"

#define TIDMAP_MAX_LEVELS 32      /* the kernel nests pid namespaces 32 deep at most */

void tidmap_init(struct tidmap *m, pid_t pid)
{
    memset(m, 0, sizeof *m);
    m->pid = pid;
}

void tidmap_free(struct tidmap *m)
{
    free(m->pairs);
    tidmap_init(m, m->pid);
}

bool tidmap_nested(struct tidmap *m)
{
    if (m->pid <= 0)
        return false;
    if (!m->nested) {
        /* 0 levels (no NSpid line, or the process is gone) reads as "no namespace": nothing
         * better can be done, and the identity is what pytrace did before it knew. */
        pid_t ids[TIDMAP_MAX_LEVELS];
        m->nested = proc_nspid(m->pid, ids, TIDMAP_MAX_LEVELS) > 1 ? 2 : 1;
    }
    return m->nested == 2;
}

static struct tidmap_pair *by_host(struct tidmap *m, pid_t host)
{
    for (uint32_t i = 0; i < m->n; i++)
        if (m->pairs[i].host == host)
            return &m->pairs[i];
    return NULL;
}

static struct tidmap_pair *by_ns(struct tidmap *m, pid_t ns)
{
    for (uint32_t i = 0; i < m->n; i++)
        if (m->pairs[i].ns == ns)
            return &m->pairs[i];
    return NULL;
}

/* Drops pair i (order does not matter). */
static void drop(struct tidmap *m, uint32_t i)
{
    m->pairs[i] = m->pairs[--m->n];
}

int tidmap_add(struct tidmap *m, pid_t ns_tid, pid_t host_tid)
{
    /* Either id may have been another thread's before (ids are reused once threads exit): the
     * pair that held it is dead, so it goes. */
    for (uint32_t i = 0; i < m->n;) {
        if (m->pairs[i].ns == ns_tid || m->pairs[i].host == host_tid)
            drop(m, i);
        else
            i++;
    }
    if (m->n == m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : 32;
        struct tidmap_pair *p = realloc(m->pairs, cap * sizeof *p);
        if (!p)
            return -1;
        m->pairs = p;
        m->cap = cap;
    }
    m->pairs[m->n++] = (struct tidmap_pair){ns_tid, host_tid, true};
    return 0;
}

/* Maps one thread from its own status file; 0, or -1 when it is gone. */
static int map_host(struct tidmap *m, pid_t host)
{
    pid_t ids[TIDMAP_MAX_LEVELS];
    int k = proc_thread_nspid(m->pid, host, ids, TIDMAP_MAX_LEVELS);
    if (k <= 0 || ids[0] != host)
        return -1;
    return tidmap_add(m, ids[k - 1], host);
}

/* Lists /proc/PID/task again: threads not mapped yet are read, exited ones dropped. */
static void relist(struct tidmap *m)
{
    static __thread pid_t tids[PROC_MAX_TASKS];
    m->listed_ns = sampler_now_ns();
    int n = proc_threads(m->pid, tids, PROC_MAX_TASKS);
    if (n < 0)
        return;   /* the process is gone: what is known stays, it harms no one */
    for (uint32_t i = 0; i < m->n; i++)
        m->pairs[i].seen = false;
    for (int k = 0; k < n; k++) {
        struct tidmap_pair *p = by_host(m, tids[k]);
        if (p)
            p->seen = true;
        else
            map_host(m, tids[k]);   /* added as seen */
    }
    for (uint32_t i = 0; i < m->n;) {
        if (m->pairs[i].seen)
            i++;
        else
            drop(m, i);
    }
}

pid_t tidmap_host(struct tidmap *m, pid_t ns_tid)
{
    if (ns_tid <= 0)
        return -1;
    if (!tidmap_nested(m))
        return ns_tid;
    const struct tidmap_pair *p = by_ns(m, ns_tid);
    if (!p && (!m->listed_ns || sampler_now_ns() - m->listed_ns >= TIDMAP_RESCAN_NS)) {
        relist(m);
        p = by_ns(m, ns_tid);
    }
    return p ? p->host : -1;
}

pid_t tidmap_ns(struct tidmap *m, pid_t host_tid)
{
    if (host_tid <= 0)
        return -1;
    if (!tidmap_nested(m))
        return host_tid;
    const struct tidmap_pair *p = by_host(m, host_tid);
    if (!p && map_host(m, host_tid) == 0)
        p = by_host(m, host_tid);
    return p ? p->ns : -1;
}

void tidmap_forget(struct tidmap *m, pid_t ns_tid)
{
    for (uint32_t i = 0; i < m->n; i++) {
        if (m->pairs[i].ns == ns_tid) {
            drop(m, i);
            return;
        }
    }
}
