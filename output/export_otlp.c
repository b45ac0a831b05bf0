/* export_otlp.c — placeholder until the otlp exporter lands. */
#include "output/export.h"

enum pt_status export_otlp(const struct export_view *v, FILE *out, struct pt_err *err)
{
    (void)v;
    (void)out;
    return pt_fail(err, PT_EFAIL, "export format 'otlp' is not available in this build yet");
}
