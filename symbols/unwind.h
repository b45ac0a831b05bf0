/*
 * unwind.h — native call stacks of a stopped thread, with libunwind's ptrace accessors.
 *
 * One unwinder per target process: it keeps a libunwind address space with global caching, so
 * the unwind tables of each module are parsed once (cold set-up costs milliseconds, warm unwinds
 * a couple of microseconds per frame). The thread must be in a ptrace-stop of ours
 * (attach/ptrace.h: ptg_stop_all) while unwind_thread runs; this module never stops, resumes or
 * detaches anything itself.
 */
#ifndef PT_UNWIND_H
#define PT_UNWIND_H

#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

#define UNWIND_MAX_FRAMES 512    /* deeper native stacks are cut */

struct unwinder;

enum pt_status unwind_open(struct unwinder **out, struct pt_err *err);
void unwind_close(struct unwinder *uw);

/*
 * Unwinds thread tid (stopped by us) into ips, innermost first: ips[0] is the thread's current
 * pc, every later entry a return address. Stops at cap frames, at the end of the stack, or at
 * the first frame libunwind cannot step past (a frame without unwind info): what was found is
 * kept. Returns the number of frames (0 when even the registers could not be read).
 */
int unwind_thread(struct unwinder *uw, pid_t tid, uint64_t *ips, int cap);

#endif
