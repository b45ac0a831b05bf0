/* export_chrome.c — placeholder until the chrome exporter lands. */
#include "output/export.h"

enum pt_status export_chrome(const struct export_view *v, FILE *out, struct pt_err *err)
{
    (void)v;
    (void)out;
    return pt_fail(err, PT_EFAIL, "export format 'chrome' is not available in this build yet");
}
