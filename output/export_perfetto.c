/* export_perfetto.c — placeholder until the perfetto exporter lands. */
#include "output/export.h"

enum pt_status export_perfetto(const struct export_view *v, FILE *out, struct pt_err *err)
{
    (void)v;
    (void)out;
    return pt_fail(err, PT_EFAIL, "export format 'perfetto' is not available in this build yet");
}
