/*
 * caps.h — can this process read other processes at all? The daemon checks at start, so a
 * sidecar deployed without the right securityContext says exactly what is missing instead of
 * silently tracing nothing.
 */
#ifndef PT_CAPS_H
#define PT_CAPS_H

#include <stdbool.h>

struct caps_report {
    bool root;                 /* effective uid 0 */
    bool cap_sys_ptrace;       /* CAP_SYS_PTRACE in the effective set */
    int ptrace_scope;          /* kernel.yama.ptrace_scope; -1 when Yama is absent */
    int seccomp;               /* Seccomp: 0 none, 1 strict, 2 filter; -1 unknown */
    bool vm_readv_ok;          /* process_vm_readv works (on ourselves): no seccomp block */
    int vm_readv_errno;
};

void caps_check(struct caps_report *r);

#endif
