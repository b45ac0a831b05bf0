/*
 * cmd_export.c — `pytrace export FILE -f FORMAT [-o OUT]`: one recording, opened by the tools
 * users already have. Shared options select threads, a time window, excluded files/modules, and
 * drop idle or non-GIL samples. A truncated file exports what it holds (with a warning); a corrupt
 * one exits 7.
 */
#include <getopt.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/record_config.h"
#include "util/privfile.h"
#include "output/export.h"
#include "util/rules.h"

#define EXPORT_MAX_OPTS 64

struct format {
    const char *name;
    export_fn fn;
    const char *suffix;   /* default output: FILE with .pytrace replaced by this */
};

static const struct format formats[] = {
    {"perfetto", export_perfetto, ".perfetto-trace"},
    {"chrome", export_chrome, ".chrome.json"},
    {"speedscope", export_speedscope, ".speedscope.json"},
    {"pprof", export_pprof, ".pb.gz"},
    {"collapsed", export_collapsed, ".collapsed.txt"},
    {"ndjson", export_ndjson, ".ndjson"},
    {"otlp", export_otlp, ".otlp.pb"},
};

static const char export_usage[] =
    "usage: pytrace export FILE -f FORMAT [-o OUT] [options]\n"
    "  FORMAT: perfetto (ui.perfetto.dev), chrome (chrome://tracing, Perfetto), speedscope,\n"
    "          pprof (go tool pprof, Pyroscope, Parca), collapsed (flamegraph.pl), ndjson, otlp\n"
    "  FILE '-' reads standard input (a pipe)\n"
    "  -o OUT             output file ('-' for stdout; default FILE with the format's suffix,\n"
    "                     or trace.SUFFIX here when FILE is '-' or a pipe)\n"
    "  --thread SPEC      only threads whose name matches glob SPEC or whose tid is SPEC\n"
    "  --from SEC         start SEC seconds into the trace\n"
    "  --to SEC           end SEC seconds into the trace\n"
    "  --exclude PATTERN  drop frames whose file or dotted module matches the glob (repeatable)\n"
    "  --filter FILE      apply the frame rules of FILE: exclude, fold, include (repeatable;\n"
    "                     docs/filters.md)\n"
    "  --no-stdlib        fold standard-library frames into their first caller's frame\n"
    "  --no-idle          drop samples of threads that were not running\n"
    "  --gil-only         keep only samples of threads holding the GIL\n"
    "  otlp: --endpoint URL [--header K=V ...] [--service NAME] POSTs instead of writing OUT\n";

static const struct format *find_format(const char *name)
{
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (!strcmp(formats[i].name, name))
            return &formats[i];
    return NULL;
}

int cmd_export(int argc, char **argv)
{
    enum { O_THREAD = 256, O_FROM, O_TO, O_EXCLUDE, O_NOIDLE, O_GIL, O_ENDPOINT, O_HEADER,
           O_SERVICE, O_FILTER, O_NOSTDLIB };
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"thread", required_argument, NULL, O_THREAD},
        {"from", required_argument, NULL, O_FROM},
        {"to", required_argument, NULL, O_TO},
        {"exclude", required_argument, NULL, O_EXCLUDE},
        {"no-idle", no_argument, NULL, O_NOIDLE},
        {"gil-only", no_argument, NULL, O_GIL},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"header", required_argument, NULL, O_HEADER},
        {"service", required_argument, NULL, O_SERVICE},
        {"filter", required_argument, NULL, O_FILTER},
        {"no-stdlib", no_argument, NULL, O_NOSTDLIB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *threads[EXPORT_MAX_OPTS], *excludes[EXPORT_MAX_OPTS],
        *headers[EXPORT_MAX_OPTS], *filters[EXPORT_MAX_OPTS];
    size_t n_filters = 0;
    bool no_stdlib = false;
    struct export_opts o = {.threads = threads, .exclude = excludes, .headers = headers,
                            .to_s = -1};
    const char *format = NULL, *outpath = NULL;
    char *end;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'o': outpath = optarg; break;
        case O_THREAD:
            if (o.n_threads == EXPORT_MAX_OPTS)
                return cli_usage_error("export", "too many --thread options");
            threads[o.n_threads++] = optarg;
            break;
        case O_FROM:
        case O_TO: {
            double v = strtod(optarg, &end);
            if (end == optarg || *end || !(v >= 0) || isinf(v))
                return cli_usage_error("export", "--from/--to take seconds into the trace");
            if (c == O_FROM)
                o.from_s = v;
            else
                o.to_s = v;
            break;
        }
        case O_EXCLUDE:
            if (o.n_exclude == EXPORT_MAX_OPTS)
                return cli_usage_error("export", "too many --exclude options");
            excludes[o.n_exclude++] = optarg;
            break;
        case O_NOIDLE: o.no_idle = true; break;
        case O_GIL: o.gil_only = true; break;
        case O_ENDPOINT: o.endpoint = optarg; break;
        case O_HEADER:
            if (!strchr(optarg, '=') || o.n_headers == EXPORT_MAX_OPTS)
                return cli_usage_error("export", "--header takes KEY=VALUE");
            headers[o.n_headers++] = optarg;
            break;
        case O_SERVICE: o.service = optarg; break;
        case O_FILTER:
            if (n_filters == EXPORT_MAX_OPTS)
                return cli_usage_error("export", "too many --filter options");
            filters[n_filters++] = optarg;
            break;
        case O_NOSTDLIB: no_stdlib = true; break;
        case 'h': fputs(export_usage, stdout); return 0;
        default: return cli_usage_error("export", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("export", "expected exactly one trace FILE");
    if (!format)
        return cli_usage_error("export", "-f FORMAT is required");
    const struct format *fmt = find_format(format);
    if (!fmt)
        return cli_usage_error("export", "unknown format '%s'", format);
    if (o.endpoint && strcmp(fmt->name, "otlp") != 0)
        return cli_usage_error("export", "--endpoint goes with -f otlp");
    if (o.from_s > 0 && o.to_s >= 0 && o.to_s <= o.from_s)
        return cli_usage_error("export", "--to must be after --from");

    const char *in = argv[optind];
    struct pt_err err;
    pt_err_clear(&err);
    struct rules *rules = NULL;
    if (n_filters || no_stdlib) {
        int rrc = record_config_build_rules(filters, n_filters, no_stdlib, &rules);
        if (rrc)
            return rrc;
        o.rules = rules;
    }
    struct trace *t = NULL;
    if (trace_load(in, &t, &err) != PT_OK) {
        rules_free(rules);
        return cli_report(&err);
    }
    if (t->truncated)
        fprintf(stderr, "pytrace: %s is truncated after %llu bytes (recording interrupted?); "
                "exporting what it holds\n", in, (unsigned long long)t->valid_bytes);
    struct export_view v;
    enum pt_status rc = export_view_init(&v, t, &o, &err);
    if (rc != PT_OK) {
        trace_free(t);
        rules_free(rules);
        return cli_report(&err);
    }
    char path[4096];
    FILE *out = NULL;
    if (o.endpoint) {
        rc = fmt->fn(&v, NULL, &err);
    } else {
        if (outpath && !strcmp(outpath, "-")) {
            out = stdout;
            snprintf(path, sizeof path, "standard output");
        } else {
            if (outpath)
                snprintf(path, sizeof path, "%s", outpath);
            else
                cli_default_out(in, fmt->suffix, path, sizeof path);
            out = privfile_open(path);
            if (!out) {
                export_view_free(&v);
                trace_free(t);
                rules_free(rules);
                fprintf(stderr, "pytrace: cannot write %s: %s\n", path, strerror(errno));
                return PT_EFAIL;
            }
        }
        rc = fmt->fn(&v, out, &err);
        bool to_stdout = out == stdout;   /* not compared after fclose (-Wuse-after-free) */
        if (!to_stdout && fclose(out) != 0 && rc == PT_OK)
            rc = pt_fail(&err, PT_EFAIL, "cannot write %s: %s", path, strerror(errno));
        if (to_stdout)
            fflush(stdout);
        if (rc == PT_OK && !to_stdout && isatty(2))
            fprintf(stderr, "pytrace: wrote %s (%s, %llu samples)\n", path, fmt->name,
                    (unsigned long long)v.samples_kept);
    }
    export_view_free(&v);
    trace_free(t);
    rules_free(rules);
    return rc == PT_OK ? 0 : cli_report(&err);
}
