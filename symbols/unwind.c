/*
 * unwind.c — remote unwinding through libunwind-ptrace: one address space per target (caching
 * on), one _UPT context per thread and unwind. Loops are cut by requiring the stack pointer to
 * move up at every step.
 */
#include "symbols/unwind.h"

#include <libunwind-ptrace.h>
#include <stdlib.h>

struct unwinder {
    unw_addr_space_t as;
};

enum pt_status unwind_open(struct unwinder **out, struct pt_err *err)
{
    struct unwinder *uw = calloc(1, sizeof *uw);
    if (!uw)
        return pt_fail(err, PT_EFAIL, "out of memory for the native unwinder");
    uw->as = unw_create_addr_space(&_UPT_accessors, 0);
    if (!uw->as) {
        free(uw);
        return pt_fail(err, PT_EFAIL, "libunwind could not create an address space for the "
                       "native unwinder; --native is unavailable");
    }
    unw_set_caching_policy(uw->as, UNW_CACHE_GLOBAL);
    *out = uw;
    return PT_OK;
}

void unwind_close(struct unwinder *uw)
{
    if (!uw)
        return;
    unw_destroy_addr_space(uw->as);
    free(uw);
}

int unwind_thread(struct unwinder *uw, pid_t tid, uint64_t *ips, int cap)
{
    void *upt = _UPT_create(tid);
    if (!upt)
        return 0;
    unw_cursor_t c;
    int n = 0;
    if (unw_init_remote(&c, uw->as, upt) == 0) {
        unw_word_t last_sp = 0, last_ip = 0;
        while (n < cap) {
            unw_word_t ip = 0, sp = 0;
            if (unw_get_reg(&c, UNW_REG_IP, &ip) != 0 || unw_get_reg(&c, UNW_REG_SP, &sp) != 0 ||
                ip == 0)
                break;
            /* The stack pointer only moves up towards the caller; anything else is a corrupt frame
             * (or a loop), where the stack is cut rather than guessed. */
            if (n > 0 && (sp < last_sp || (sp == last_sp && ip == last_ip)))
                break;
            ips[n++] = ip;
            last_sp = sp;
            last_ip = ip;
            if (unw_step(&c) <= 0)
                break;
        }
    }
    _UPT_destroy(upt);
    return n;
}
