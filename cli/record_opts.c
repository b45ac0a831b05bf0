/*
 * record_opts.c — shared option parsing and the record-then-summarise tail of `attach` and `run`.
 * The default file name carries the target's name, pid, the UTC time and a random id, so
 * recordings never overwrite each other; -o names the file (and replaces an existing one).
 */
#include "cli/record_opts.h"

#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "attach/ebpf.h"
#include "attach/proc.h"
#include "cli/cli.h"
#include "cli/record_config.h"
#include "output/record.h"
#include "util/config.h"
#include "util/rules.h"

#define PYTRACE_VERSION_STR "0.1.0"

const char record_usage[] =
    "  -r, --rate HZ        samples per second (default 1000)\n"
    "  -d, --duration SEC   stop after SEC seconds (default: until Ctrl-C or the target exits)\n"
    "  -o, --output FILE    trace file (default pytrace-<name>-<pid>-<UTC time>-<id>.pytrace)\n"
    "      --blocking       pause the target's threads for each sample (consistent stacks)\n"
    "      --native         also record native (C) frames between the Python ones; implies\n"
    "                       --blocking (docs/native.md)\n"
    "      --subprocesses   also record child processes (multiprocessing, gunicorn workers)\n"
    "      --thread SPEC    record only threads whose name matches glob SPEC or whose tid is\n"
    "                       SPEC (repeatable; alias --threads)\n"
    "      --gil            mark the trace to be viewed GIL-holding samples only (kept anyway)\n"
    "      --idle           mark the trace to be viewed with idle samples (kept anyway)\n"
    "      --name NAME      name of the recording (file name, header)\n"
    "      --tag KEY=VALUE  stored in the header (repeatable)\n"
    "      --max-size SIZE  stop when the file reaches SIZE bytes (K, M, G suffixes)\n"
    "      --jitter FRAC    random offset of each tick, a fraction of the period (default 0)\n"
    "      --locals         store each call's arguments and locals, read when it is first seen\n"
    "                       (secret-looking names are redacted; docs/locals.md)\n"
    "      --ebpf           sample in the kernel with eBPF (needs root or CAP_BPF+CAP_PERFMON;\n"
    "                       adds off-CPU spans; docs/ebpf.md)\n"
    "  -q, --quiet          no status line and no summary\n"
    "      --filter FILE    filter/redaction rules (repeatable; docs/filters.md)\n"
    "      --no-stdlib      fold standard-library frames into their first caller's frame\n"
    "      --output-dir DIR directory of the default trace file name\n"
    "      --config FILE    read options from FILE too (docs/config.md; `pytrace config`)\n";

int record_parse(const char *verb, int argc, char **argv, struct record_cli *o, int *next)
{
    /* run: stop at the command ("+"), whose own options are not ours; attach: options may come
     * before or after the PID (GNU getopt moves the PID to the end). */
    const char *shortopts = strcmp(verb, "run") == 0 ? "+r:d:o:qh" : "r:d:o:qh";
    enum { O_BLOCKING = 256, O_SUBP, O_THREAD, O_GIL, O_IDLE, O_NAME, O_TAG, O_MAXSIZE, O_JITTER,
           O_NATIVE, O_FILTER, O_NOSTDLIB, O_OUTDIR, O_CONFIG, O_LOCALS, O_EBPF };
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        {"blocking", no_argument, NULL, O_BLOCKING},
        {"subprocesses", no_argument, NULL, O_SUBP},
        {"thread", required_argument, NULL, O_THREAD},
        {"threads", required_argument, NULL, O_THREAD},
        {"gil", no_argument, NULL, O_GIL},
        {"idle", no_argument, NULL, O_IDLE},
        {"name", required_argument, NULL, O_NAME},
        {"tag", required_argument, NULL, O_TAG},
        {"max-size", required_argument, NULL, O_MAXSIZE},
        {"jitter", required_argument, NULL, O_JITTER},
        {"native", no_argument, NULL, O_NATIVE},
        {"filter", required_argument, NULL, O_FILTER},
        {"no-stdlib", no_argument, NULL, O_NOSTDLIB},
        {"output-dir", required_argument, NULL, O_OUTDIR},
        {"config", required_argument, NULL, O_CONFIG},
        {"locals", no_argument, NULL, O_LOCALS},
        {"ebpf", no_argument, NULL, O_EBPF},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->rate_hz = 1000;
    /* Pass 0 finds --config, pass 1 reads the configuration as options, pass 2 the command line
     * (whose values replace them; its first --filter/--thread replaces the configured list). */
    int c, pass = 0, pargc = argc;
    char **pargv = argv;
    bool cli_filter = false, cli_thread = false;
again:
    optind = 0;
    opterr = pass == 2;
    char *end;
    while ((c = getopt_long(pargc, pargv, shortopts, opts, NULL)) != -1) {
        if (pass == 0) {
            o->config = c == O_CONFIG ? optarg : o->config;
            continue;
        }
        if (pass == 1 && c == '?')
            return cli_usage_error(verb, "bad value from %s", record_config_origin(optind - 1));
        if (pass == 2)
            record_config_note(opts, c, optarg);
        if (pass == 2 && ((c == O_FILTER && !cli_filter) || (c == O_THREAD && !cli_thread))) {
            *(c == O_FILTER ? &o->n_filters : &o->n_threads) = 0;
            *(c == O_FILTER ? &cli_filter : &cli_thread) = true;
        }
        switch (c) {
        case 'r':
            o->rate_hz = strtod(optarg, &end);
            if (end == optarg || *end || !(o->rate_hz > 0) || o->rate_hz > 1e6)
                return cli_usage_error(verb, "--rate takes a number of Hz in (0, 1000000]");
            break;
        case 'd':
            o->duration_s = strtod(optarg, &end);
            if (end == optarg || *end || !(o->duration_s > 0) || isinf(o->duration_s))
                return cli_usage_error(verb, "--duration takes a positive number of seconds");
            break;
        case 'o': o->output = optarg; break;
        case O_BLOCKING: o->blocking = true; break;
        case O_SUBP: o->subprocesses = true; break;
        case O_THREAD:
            if (o->n_threads == REC_MAX_THREADS)
                return cli_usage_error(verb, "too many --thread options");
            o->threads[o->n_threads++] = optarg;
            break;
        case O_GIL: o->gil = true; break;
        case O_IDLE: o->idle = true; break;
        case O_NAME: o->name = optarg; break;
        case O_TAG: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return cli_usage_error(verb, "--tag takes KEY=VALUE");
            if (o->n_tags == REC_MAX_TAGS)
                return cli_usage_error(verb, "too many --tag options");
            *eq = '\0';
            o->tags[o->n_tags++] = (struct trace_tag){optarg, eq + 1};
            break;
        }
        case O_MAXSIZE:
            if (config_parse_size(optarg, &o->max_size) != 0 || o->max_size == 0)
                return cli_usage_error(verb, "--max-size takes a size such as 64M");
            break;
        case O_JITTER:
            o->jitter = strtod(optarg, &end);
            if (end == optarg || *end || !(o->jitter >= 0) || o->jitter > 0.5)
                return cli_usage_error(verb, "--jitter takes a fraction in [0, 0.5]");
            break;
        case O_NATIVE: o->native = true; break;
        case O_LOCALS: o->locals = true; break;
        case O_EBPF: o->ebpf = true; break;
        case 'q': o->quiet = true; break;
        case O_FILTER:
            if (o->n_filters == REC_MAX_FILTERS)
                return cli_usage_error(verb, "too many --filter options");
            o->filters[o->n_filters++] = optarg;
            break;
        case O_NOSTDLIB: o->no_stdlib = true; break;
        case O_OUTDIR: o->output_dir = optarg; break;
        case O_CONFIG: break;   /* read in pass 0 */
        case 'h': return -1;
        default: return cli_usage_error(verb, "unknown option");
        }
    }
    if (pass < 2) {
        int rc = pass == 0 ? record_config_load(verb, o->config, opts, &pargc, &pargv) : 0;
        if (rc)
            return rc;
        if (pass == 1) {
            pargc = argc;
            pargv = argv;
        }
        pass++;
        goto again;
    }
    if (o->native && !o->blocking) {
        /* Native stacks can only be unwound from stopped threads. */
        o->blocking = true;
        if (!o->quiet)
            fprintf(stderr, "pytrace %s: --native implies --blocking: the target's threads are "
                    "paused for each sample\n", verb);
    }
    if (o->ebpf && !o->quiet)
        proc_warn_perf_rate(verb, o->rate_hz);
    *next = optind;
    return record_config_rules(o->filters, o->n_filters, o->no_stdlib);
}

static void sanitize(char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
            *s = '_';
}

static void default_path(const struct record_cli *o, pid_t pid, char *out, size_t cap)
{
    char name[64] = "python", stamp[32];
    if (o->name)
        snprintf(name, sizeof name, "%s", o->name);
    else
        proc_comm(pid, pid, name, sizeof name);
    sanitize(name);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    uint32_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id)
        id = (uint32_t)now ^ (uint32_t)getpid() * 2654435761u;
    snprintf(out, cap, "%s%spytrace-%s-%d-%s-%08x.pytrace", o->output_dir ? o->output_dir : "",
             o->output_dir ? "/" : "", name, (int)pid, stamp, id);
}

static uint64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void human_bytes(uint64_t b, char *out, size_t cap)
{
    if (b >= 10u << 20)
        snprintf(out, cap, "%.1f MB", (double)b / (1 << 20));
    else if (b >= 10u << 10)
        snprintf(out, cap, "%.1f KB", (double)b / (1 << 10));
    else
        snprintf(out, cap, "%" PRIu64 " B", b);
}

int record_and_report(const struct record_cli *o, struct py_proc *root, pid_t root_pid,
                      pid_t child_pid, volatile int *stop, struct session_result *res)
{
    char path[4096], cmd[4096] = "", host[256] = "", ver[32] = "", comm[64] = "";
    if (o->output)
        snprintf(path, sizeof path, "%s", o->output);
    else
        default_path(o, root_pid, path, sizeof path);
    proc_cmdline(root_pid, cmd, sizeof cmd);
    proc_comm(root_pid, root_pid, comm, sizeof comm);
    gethostname(host, sizeof host - 1);
    if (root)
        py_version_str(&root->version, ver, sizeof ver);
    pid_t nspid[8];
    int nns = proc_nspid(root_pid, nspid, 8);
    int64_t ns64[8];
    for (int i = 0; i < nns; i++)
        ns64[i] = nspid[i];

    struct trace_tag tags[REC_MAX_TAGS + 2];
    size_t n_tags = 0;
    for (size_t i = 0; i < o->n_tags; i++)
        tags[n_tags++] = o->tags[i];
    if (o->gil)
        tags[n_tags++] = (struct trace_tag){"view.gil_only", "1"};
    if (o->idle)
        tags[n_tags++] = (struct trace_tag){"view.idle", "1"};

    struct trace_meta meta = {
        .pid = root_pid,
        .nspid = ns64,
        .n_nspid = (size_t)(nns > 0 ? nns : 0),
        .name = o->name ? o->name : comm,
        .python_version = ver,
        .python_binary = root ? root->binary : "",
        .cmdline = cmd,
        .host = host,
        .pytrace_version = PYTRACE_VERSION_STR,
        .rate_hz = o->rate_hz,
        .blocking = o->blocking,
        .native = o->native,
        .tags = tags,
        .n_tags = n_tags,
        .locals = o->locals,
        .backend = o->ebpf ? "ebpf" : "",
    };
    const struct rules *rules = record_config_rule_chain(&meta.filters);
    meta.start_mono_ns = clock_ns(CLOCK_MONOTONIC);
    meta.start_wall_ns = clock_ns(CLOCK_REALTIME);

    struct pt_err err;
    pt_err_clear(&err);
    if (o->ebpf && ebpf_check(&err) != PT_OK)
        return cli_report(&err);
    struct rec_sink *sink;
    struct rec_thread_filter filter = {o->threads, o->n_threads};
    if (rec_sink_open(&sink, path, o->output != NULL, &meta, &filter, 10000000ULL, &err) != PT_OK)
        return cli_report(&err);
    rec_sink_set_rules(sink, rules);
    if (o->locals && rec_sink_capture_locals(sink, rules, &err) != PT_OK) {
        struct trace_summary none = {.exit_status = INT64_MIN};
        struct pt_err ignored;
        rec_sink_close(sink, 0, &none, &ignored);
        return cli_report(&err);
    }

    struct session_opts so = {
        .rate_hz = o->rate_hz,
        .duration_s = o->duration_s,
        .jitter = o->jitter,
        .blocking = o->blocking,
        .subprocesses = o->subprocesses,
        .native = o->native,
        .max_size = o->max_size,
        .status_line = !o->quiet && isatty(2),
        .out_path = path,
    };
    struct session_sink ss = rec_sink_as_session_sink(sink);
    enum pt_status rc = o->ebpf ? ebpf_session_run(&so, root, root_pid, child_pid, &ss, stop, res, &err)
                                : session_run(&so, root, root_pid, child_pid, &ss, stop, res, &err);
    struct trace_summary sum = {
        .end_mono_ns = res->end_ns,
        .walks = res->walks,
        .missed = res->missed,
        .overruns = res->overruns,
        .achieved_hz = res->achieved_hz,
        .busy_ns = res->busy_ns,
        .exit_status = res->root_exit_status,
    };
    struct rec_locals_stats ls = rec_sink_locals_stats(sink);
    struct pt_err cerr;
    pt_err_clear(&cerr);
    enum pt_status crc = rec_sink_close(sink, res->end_ns, &sum, &cerr);
    if (rc != PT_OK)
        return cli_report(&err);
    if (crc != PT_OK)
        return cli_report(&cerr);
    if (!o->quiet) {
        char size[32];
        bool to_stdout = strcmp(path, "-") == 0;
        FILE *f = to_stdout ? NULL : fopen(path, "re");
        uint64_t bytes = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            bytes = (uint64_t)ftell(f);
            fclose(f);
        }
        human_bytes(bytes, size, sizeof size);
        if (to_stdout)
            snprintf(path, sizeof path, "standard output");
        double secs = (double)(res->end_ns - res->start_ns) / 1e9;
        const char *why = res->end == SESSION_TARGET_EXITED ? ", target exited"
                          : res->end == SESSION_MAX_SIZE    ? ", --max-size reached"
                                                            : "";
        fprintf(stderr,
                "pytrace: recorded %.1f s, %" PRIu64 " samples at %.1f Hz (asked %.0f), %.2f%% "
                "errors%s -> %s (%s)\n",
                secs, sum.samples, res->achieved_hz, o->rate_hz,
                sum.samples ? 100.0 * (double)sum.errors / (double)sum.samples : 0.0, why, path,
                size);
        if (o->locals)
            fprintf(stderr, "pytrace: --locals: %" PRIu64 " calls' variables read (%" PRIu64
                    " unreadable), %.1f us and %.1f memory reads each, %.1f us per sample; %"
                    PRIu64 " values redacted, %" PRIu64 " dropped\n", ls.captures, ls.failed,
                    ls.captures ? (double)ls.ns / 1e3 / (double)ls.captures : 0.0,
                    ls.captures ? (double)ls.reads / (double)ls.captures : 0.0,
                    sum.samples ? (double)ls.ns / 1e3 / (double)sum.samples : 0.0, sum.redacted,
                    sum.dropped);
    }
    return 0;
}
