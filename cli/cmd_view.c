/*
 * cmd_view.c — `pytrace view FILE [-o OUT.html]`: one self-contained HTML page to explore a
 * recording offline. The page is the viewer bundle built from viewer/ (found next to this binary)
 * with the trace, aggregated in C by output/view_data.c, spliced in as JSON at its placeholder.
 * A truncated file is shown with a warning; a corrupt one exits 7.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/record_config.h"
#include "output/trace_filter.h"
#include "util/rules.h"
#include "util/privfile.h"
#include "output/view_data.h"

#define VIEW_BUNDLE "viewer.bundle.html"
#define VIEW_PLACEHOLDER "@@PYTRACE_DATA@@"

static const char view_usage[] =
    "usage: pytrace view FILE [-o OUT.html] [--span-budget N]\n"
    "  Write one self-contained HTML page (no network needed) to explore a recording: a timeline\n"
    "  per thread, a flame graph, a call tree, search, and toggles to hide stdlib, site-packages\n"
    "  and idle time. Open it in any browser. FILE '-' reads standard input (a pipe).\n"
    "  -o OUT            output file ('-' for stdout; default: FILE with .pytrace replaced\n"
    "                    by .html, or trace.html here when FILE is '-' or a pipe)\n"
    "  --span-budget N   most timeline spans embedded; the longest are kept (default 200000)\n"
    "  --filter FILE     apply the frame rules of FILE: exclude, fold, include (repeatable;\n"
    "                    docs/filters.md)\n"
    "  --no-stdlib       fold standard-library frames into their first caller's frame\n"
    "  The page template is viewer.bundle.html next to the pytrace binary (or in\n"
    "  ../share/pytrace/, or $PYTRACE_VIEWER), built from viewer/ when npm is found.\n";

static const char view_not_built[] =
    "pytrace view: the HTML viewer was not built (npm not found at build time): apt-get install "
    "npm && meson setup --reconfigure build && ninja -C build\n";

/* Reads the bundle at path: 0 and its bytes, 1 when there is no such file, -1 (with *why) when
 * it is empty ("empty", the build could not install its npm packages) or unreadable. */
static int view_read_bundle(const char *path, char **buf, size_t *len, const char **why)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return 1;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    char *b = size > 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)size + 1) : NULL;
    if (b && fread(b, 1, (size_t)size, f) == (size_t)size) {
        b[size] = '\0';
        fclose(f);
        *buf = b;
        *len = (size_t)size;
        return 0;
    }
    free(b);
    fclose(f);
    *why = size == 0 ? "empty" : "damaged";
    return -1;
}

/* The bundle's bytes, from $PYTRACE_VIEWER, next to this binary, or in ../share/pytrace/; NULL
 * with *why ("missing", "empty", "damaged") and path naming the file found, if any. */
static char *view_load_bundle(size_t *len, char *path, size_t cap, const char **why)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *dir = ".";
    if (n > 0) {
        exe[n] = '\0';
        dir = dirname(exe);
    }
    const char *env = getenv("PYTRACE_VIEWER");
    *why = "missing";
    for (int i = env && *env ? 0 : 1; i < 3; i++) {
        if (i == 0)
            snprintf(path, cap, "%s", env);
        else
            snprintf(path, cap, "%s/%s" VIEW_BUNDLE, dir, i == 1 ? "" : "../share/pytrace/");
        char *buf = NULL;
        int rc = view_read_bundle(path, &buf, len, why);
        if (rc == 0)
            *why = NULL;
        if (rc <= 0)
            return buf;
    }
    path[0] = '\0';
    return NULL;
}

struct view_sink {
    FILE *out;
    int failed;
};

/* json_dump_callback sink: '<' only occurs inside JSON strings, so writing it as \u003c keeps
 * the JSON equal and the HTML parser from ever seeing "</script" or "<!--" in the data. */
static int view_write_json(const char *buf, size_t size, void *data)
{
    struct view_sink *s = data;
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (buf[i] != '<')
            continue;
        if (fwrite(buf + start, 1, i - start, s->out) != i - start ||
            fputs("\\u003c", s->out) == EOF)
            return s->failed = -1;
        start = i + 1;
    }
    if (fwrite(buf + start, 1, size - start, s->out) != size - start)
        return s->failed = -1;
    return 0;
}

static int view_write_page(FILE *out, const char *bundle, size_t len, const char *at,
                           const json_t *doc)
{
    size_t head = (size_t)(at - bundle), skip = strlen(VIEW_PLACEHOLDER);
    struct view_sink sink = {out, 0};
    if (fwrite(bundle, 1, head, out) != head)
        return -1;
    if (json_dump_callback(doc, view_write_json, &sink, JSON_COMPACT | JSON_REAL_PRECISION(10)) ||
        sink.failed)
        return -1;
    size_t tail = len - head - skip;
    return fwrite(at + skip, 1, tail, out) == tail ? 0 : -1;
}

static int view_report_bundle(const char *why, const char *path)
{
    if (!strcmp(why, "missing"))
        fputs(view_not_built, stderr);
    else if (!strcmp(why, "empty"))
        fprintf(stderr, "pytrace view: the HTML viewer was not built (its npm packages could not "
                "be installed at build time, %s is empty): run `npm ci` in viewer/, then "
                "ninja -C build\n", path);
    else
        fprintf(stderr, "pytrace view: %s is damaged (no data placeholder): rebuild it with "
                "ninja -C build\n", path);
    return PT_EFAIL;
}

int cmd_view(int argc, char **argv)
{
    enum { O_BUDGET = 256, O_FILTER, O_NOSTDLIB };
    static const char *filters[64];
    size_t n_filters = 0;
    bool no_stdlib = false;
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"span-budget", required_argument, NULL, O_BUDGET},
        {"filter", required_argument, NULL, O_FILTER},
        {"no-stdlib", no_argument, NULL, O_NOSTDLIB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct view_opts vo = {0};
    const char *outpath = NULL;
    char *end;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': outpath = optarg; break;
        case O_BUDGET: {
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*end || !*optarg || v == 0 || v > 100000000ULL)
                return cli_usage_error("view", "--span-budget takes a positive count");
            vo.span_budget = (size_t)v;
            break;
        }
        case O_FILTER:
            if (n_filters == sizeof filters / sizeof *filters)
                return cli_usage_error("view", "too many --filter options");
            filters[n_filters++] = optarg;
            break;
        case O_NOSTDLIB: no_stdlib = true; break;
        case 'h': fputs(view_usage, stdout); return 0;
        default: return cli_usage_error("view", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("view", "expected exactly one trace FILE");
    const char *in = argv[optind];
    struct rules *rules = NULL;
    int rrc = record_config_build_rules(filters, n_filters, no_stdlib, &rules);
    if (rrc)
        return rrc;

    char bundle_path[PATH_MAX + 64] = "";
    const char *why = NULL;
    size_t blen = 0;
    char *bundle = view_load_bundle(&blen, bundle_path, sizeof bundle_path, &why);
    const char *at = bundle ? strstr(bundle, VIEW_PLACEHOLDER) : NULL;
    if (!at) {
        free(bundle);
        rules_free(rules);
        return view_report_bundle(why ? why : "damaged", bundle_path);
    }

    struct pt_err err;
    pt_err_clear(&err);
    struct trace *t = NULL;
    enum pt_status lrc = trace_load(in, &t, &err);
    if (lrc == PT_OK)
        lrc = trace_apply_rules(t, rules, &err);
    rules_free(rules);
    if (lrc != PT_OK) {
        trace_free(t);
        free(bundle);
        return cli_report(&err);
    }
    if (t->truncated)
        fprintf(stderr, "pytrace: %s is truncated after %" PRIu64 " bytes (recording "
                "interrupted?); showing what it holds\n", in, t->valid_bytes);
    json_t *doc = NULL;
    if (view_data_build(t, &vo, &doc, &err) != PT_OK) {
        trace_free(t);
        free(bundle);
        return cli_report(&err);
    }

    char path[4096];
    FILE *out;
    if (outpath && !strcmp(outpath, "-")) {
        out = stdout;
        snprintf(path, sizeof path, "standard output");
    } else {
        if (outpath)
            snprintf(path, sizeof path, "%s", outpath);
        else
            cli_default_out(in, ".html", path, sizeof path);
        out = privfile_open(path);
    }
    bool to_stdout = out == stdout;
    struct stat st;
    bool regular = out && !to_stdout && fstat(fileno(out), &st) == 0 && S_ISREG(st.st_mode);
    int rc = 0;
    if (!out || view_write_page(out, bundle, blen, at, doc) != 0)
        rc = PT_EFAIL;
    if (out && (to_stdout ? fflush(out) : fclose(out)) != 0)
        rc = PT_EFAIL;
    if (rc && regular)
        unlink(path);   /* a half-written page would only fail later, in the browser */
    if (rc)
        fprintf(stderr, "pytrace: cannot write %s\n", path);
    else if (!to_stdout && isatty(2))
        fprintf(stderr, "pytrace: wrote %s (%zu samples, %" PRIu64 " of %zu spans); open it in "
                "a browser\n", path, t->n_samples,
                (uint64_t)json_integer_value(json_object_get(doc, "span_kept")), t->n_spans);
    json_decref(doc);
    trace_free(t);
    free(bundle);
    return rc;
}
