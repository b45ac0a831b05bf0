/* export_speedscope.c — placeholder until the speedscope exporter lands. */
#include "output/export.h"

enum pt_status export_speedscope(const struct export_view *v, FILE *out, struct pt_err *err)
{
    (void)v;
    (void)out;
    return pt_fail(err, PT_EFAIL, "export format 'speedscope' is not available in this build yet");
}
