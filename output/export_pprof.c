/* export_pprof.c — placeholder until the pprof exporter lands. */
#include "output/export.h"

enum pt_status export_pprof(const struct export_view *v, FILE *out, struct pt_err *err)
{
    (void)v;
    (void)out;
    return pt_fail(err, PT_EFAIL, "export format 'pprof' is not available in this build yet");
}
