/*
 * ptrace.c — seize / interrupt / continue / detach for a whole thread group. Each waitpid result
 * is examined: a signal-delivery stop is remembered and re-injected, an exit drops the thread.
 */
#include "attach/ptrace.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "attach/proc.h"

#define PTG_MAX_THREADS 8192

static struct ptg_thread *find(struct ptrace_group *g, pid_t tid)
{
    for (int i = 0; i < g->n; i++)
        if (g->threads[i].tid == tid)
            return &g->threads[i];
    return NULL;
}

static struct ptg_thread *add(struct ptrace_group *g, pid_t tid)
{
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 16;
        struct ptg_thread *t = realloc(g->threads, (size_t)cap * sizeof *t);
        if (!t)
            return NULL;
        g->threads = t;
        g->cap = cap;
    }
    struct ptg_thread *t = &g->threads[g->n++];
    memset(t, 0, sizeof *t);
    t->tid = tid;
    return t;
}

/* Seizes threads listed in /proc that we do not hold yet. Returns how many are held. */
static int seize_new(struct ptrace_group *g, int *first_errno)
{
    static pid_t tids[PTG_MAX_THREADS];
    int n = proc_threads(g->pid, tids, PTG_MAX_THREADS);
    for (int i = 0; i < n; i++) {
        if (find(g, tids[i]))
            continue;
        struct ptg_thread *t = add(g, tids[i]);
        if (!t)
            break;
        if (ptrace(PTRACE_SEIZE, tids[i], NULL, NULL) == 0) {
            t->seized = true;
        } else {
            if (first_errno && !*first_errno)
                *first_errno = errno;
            g->n--;   /* a thread that exited between listing and seizing */
        }
    }
    return g->n;
}

enum pt_status ptg_attach(struct ptrace_group *g, pid_t pid, struct pt_err *err)
{
    memset(g, 0, sizeof *g);
    g->pid = pid;
    int e = 0;
    if (seize_new(g, &e) > 0)
        return PT_OK;
    ptg_detach(g);
    pid_t tracer = e == EPERM ? proc_tracer(pid) : 0;
    if (tracer > 0) {
        /* Not a permission problem: a process has one tracer (gdb, strace, another pytrace
         * --native or --blocking). */
        char comm[64] = "?";
        proc_comm(tracer, tracer, comm, sizeof comm);
        return pt_fail(err, PT_EPERM,
                       "process %d is already traced by process %d (%s): only one tracer at a "
                       "time; wait for it to finish, or record without --native/--blocking",
                       (int)pid, (int)tracer, comm);
    }
    if (e == EPERM)
        return pt_fail(err, PT_EPERM,
                       "cannot ptrace process %d (is a debugger attached already?): " PT_PERM_ADVICE,
                       (int)pid);
    return pt_fail(err, PT_ENOPROC, "cannot ptrace process %d: %s", (int)pid,
                   e ? strerror(e) : "no threads");
}

/* Waits for t's interrupt stop; a signal-delivery stop on the way is remembered. */
static int wait_stopped(struct ptg_thread *t)
{
    for (;;) {
        int status;
        pid_t r = waitpid(t->tid, &status, __WALL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status))
            return -1;
        if (!WIFSTOPPED(status))
            continue;
        int sig = WSTOPSIG(status);
        if ((status >> 16) == PTRACE_EVENT_STOP)
            return 0;   /* our interrupt (or a group-stop): stopped */
        /* A real signal arrived first: keep it for PTRACE_CONT, and the interrupt still pends. */
        t->pending_signal = sig;
        if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) != 0)
            return -1;
        t->pending_signal = 0;
    }
}

int ptg_stop_all(struct ptrace_group *g)
{
    seize_new(g, NULL);
    int live = 0;
    for (int i = 0; i < g->n; i++) {
        struct ptg_thread *t = &g->threads[i];
        if (!t->seized || t->stopped)
            continue;
        if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) != 0) {
            t->seized = false;
            continue;
        }
        if (wait_stopped(t) == 0) {
            t->stopped = true;
            live++;
        } else {
            t->seized = false;
        }
    }
    /* Drop threads that are gone. */
    int k = 0;
    for (int i = 0; i < g->n; i++)
        if (g->threads[i].seized)
            g->threads[k++] = g->threads[i];
    g->n = k;
    return live > 0 ? 0 : -1;
}

void ptg_resume_all(struct ptrace_group *g)
{
    for (int i = 0; i < g->n; i++) {
        struct ptg_thread *t = &g->threads[i];
        if (t->stopped) {
            ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)t->pending_signal);
            t->pending_signal = 0;
            t->stopped = false;
        }
    }
}

void ptg_detach(struct ptrace_group *g)
{
    for (int i = 0; i < g->n; i++) {
        struct ptg_thread *t = &g->threads[i];
        if (!t->seized)
            continue;
        if (!t->stopped) {
            /* PTRACE_DETACH needs a stopped tracee. */
            if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) == 0 && wait_stopped(t) == 0)
                t->stopped = true;
        }
        ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)t->pending_signal);
        t->seized = t->stopped = false;
    }
    free(g->threads);
    g->threads = NULL;
    g->n = g->cap = 0;
}
