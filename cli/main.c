/*
 * main.c — `pytrace VERB ...`: dispatch to cli/cmd_<verb>.c, top-level help and version.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

#define PYTRACE_VERSION "0.1.0"

static const char usage[] =
    "usage: pytrace VERB [options]\n"
    "\n"
    "  dump    PID [--json] [--locals]      all threads' Python stacks, now\n"
    "  top     PID [-r HZ] [--window SEC] [--once] [--gil] [--idle] [--thread SPEC]\n"
    "                                       live view of the functions running now\n"
    "  attach  PID [-r HZ] [-d SEC] [-o FILE] record a running process\n"
    "  run     [options] -- CMD [ARGS...]   start CMD and record it\n"
    "  info    FILE [--json]                what a trace holds\n"
    "  export  FILE -f FORMAT [-o OUT]      perfetto, chrome, speedscope, pprof, collapsed,\n"
    "                                       ndjson, otlp\n"
    "  view    FILE [-o OUT.html]           self-contained HTML viewer: timeline, flame graph,\n"
    "                                       call tree\n"
    "  config  [--config FILE] [options]    effective recording options and where each\n"
    "                                       came from; the filter/redaction rules\n"
    "  daemon  [--match RE] [--dir DIR] ...  sidecar: trace every Python process, rotated files\n"
    "\n"
    "Exit codes: 0 ok, 1 failure, 2 usage, 3 no such process, 4 permission denied,\n"
    "5 not a Python process, 6 unsupported Python version, 7 corrupt or truncated input file.\n"
    "Run `pytrace VERB --help` for a verb's options.\n";

int cli_report(const struct pt_err *err)
{
    if (err->code != PT_OK)
        fprintf(stderr, "pytrace: %s\n", err->msg[0] ? err->msg : pt_status_name(err->code));
    return (int)err->code;
}

int cli_usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pytrace %s: ", verb);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see `pytrace %s --help`)\n", verb);
    va_end(ap);
    return PT_EUSAGE;
}

int cli_parse_pid(const char *s, int *pid)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v <= 0 || v > 0x3fffffff)
        return -1;
    *pid = (int)v;
    return 0;
}

void cli_default_out(const char *in, const char *suffix, char *out, size_t cap)
{
    struct stat st;
    size_t n = strlen(in), e = strlen(".pytrace");
    if (!strcmp(in, "-") || stat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(out, cap, "trace%s", suffix);
        return;
    }
    if (n > e && !strcmp(in + n - e, ".pytrace"))
        n -= e;
    snprintf(out, cap, "%.*s%s", (int)n, in, suffix);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return PT_EUSAGE;
    }
    const char *verb = argv[1];
    if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(verb, "--version") || !strcmp(verb, "version")) {
        printf("pytrace %s\n", PYTRACE_VERSION);
        return 0;
    }
    if (!strcmp(verb, "dump"))
        return cmd_dump(argc - 1, argv + 1);
#ifndef PT_DUMP_ONLY
    if (!strcmp(verb, "attach"))
        return cmd_attach(argc - 1, argv + 1);
    if (!strcmp(verb, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(verb, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(verb, "export"))
        return cmd_export(argc - 1, argv + 1);
    if (!strcmp(verb, "view"))
        return cmd_view(argc - 1, argv + 1);
    if (!strcmp(verb, "top"))
        return cmd_top(argc - 1, argv + 1);
    if (!strcmp(verb, "config"))
        return cmd_config(argc - 1, argv + 1);
    if (!strcmp(verb, "daemon"))
        return cmd_daemon(argc - 1, argv + 1);
#endif
    fprintf(stderr, "pytrace: unknown verb '%s'\n%s", verb, usage);
    return PT_EUSAGE;
}
