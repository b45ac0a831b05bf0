/*
 * ptrace.h — pausing a target's threads, only when asked (--blocking, --native).
 *
 * PTRACE_SEIZE attaches without stopping anything; PTRACE_INTERRUPT + waitpid stops a thread for
 * the length of one sample; PTRACE_CONT resumes it (re-injecting any signal that arrived while it
 * was stopped). Every path — errors, SIGINT/SIGTERM, target exit — ends in ptg_detach(). If pytrace
 * itself is killed, the kernel detaches and resumes the threads (they are in ptrace-stops, not
 * group-stops), so the target is never left stopped.
 */
#ifndef PT_PTRACE_H
#define PT_PTRACE_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/err.h"

struct ptg_thread {
    pid_t tid;
    bool seized;
    bool stopped;
    int pending_signal;     /* signal that arrived while stopped: re-injected on resume */
};

struct ptrace_group {
    pid_t pid;
    struct ptg_thread *threads;
    int n, cap;
};

/* Seizes every thread of pid (new threads are picked up by ptg_stop_all). */
enum pt_status ptg_attach(struct ptrace_group *g, pid_t pid, struct pt_err *err);

/* Stops every thread (seizing threads that appeared since). Returns 0, or -1 when the process is
 * gone; threads that vanished meanwhile are dropped. */
int ptg_stop_all(struct ptrace_group *g);

/* Resumes every thread stopped by ptg_stop_all. */
void ptg_resume_all(struct ptrace_group *g);

/* Resumes and detaches from every thread; safe to call twice. */
void ptg_detach(struct ptrace_group *g);

#endif
