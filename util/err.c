/* err.c — filling struct pt_err; see err.h for the contract. */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

enum pt_status pt_fail(struct pt_err *err, enum pt_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void pt_err_clear(struct pt_err *err)
{
    if (err) {
        err->code = PT_OK;
        err->msg[0] = '\0';
    }
}

const char *pt_status_name(enum pt_status code)
{
    switch (code) {
    case PT_OK: return "ok";
    case PT_EFAIL: return "failure";
    case PT_EUSAGE: return "usage";
    case PT_ENOPROC: return "no such process";
    case PT_EPERM: return "permission denied";
    case PT_ENOTPY: return "not a Python process";
    case PT_EVERSION: return "unsupported Python version";
    case PT_ECORRUPT: return "corrupt input";
    }
    return "unknown";
}
