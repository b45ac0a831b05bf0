/*
 * daemon_opts.c — parsing `pytrace daemon`'s command line (see daemon_opts.h). Durations take
 * ms/s/m/h suffixes, sizes K/M/G.
 */
#include "cli/daemon_opts.h"

#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/proc.h"
#include "cli/cli.h"
#include "util/config.h"

const char daemon_usage[] =
    "usage: pytrace daemon [options]\n"
    "  Trace every CPython process this process can see (a sidecar sharing the pod's PID\n"
    "  namespace, or a host service), each into its own rotated file. See docs/sidecar.md.\n"
    "  --match REGEX        only processes whose command line matches (extended regex)\n"
    "  --cgroup PATH        only processes in cgroup PATH or below\n"
    "  --uid UID            only processes of this user\n"
    "  --dir DIR            where traces go (default .; created 0700)\n"
    "  --by-date            in YYYY_MM_DD_HH_MM_SS folders, one per rotation (UTC)\n"
    "  --rotate DUR         finish and reopen every file every DUR (default 10m; 0 = never)\n"
    "  --rotate-size SIZE   ... and any file that reaches SIZE (default 64M; 0 = never)\n"
    "  --max-disk SIZE      delete the oldest finished files beyond SIZE (default 1G; 0 = no limit)\n"
    "  -r, --rate HZ        samples per second per process (default 100)\n"
    "  --otlp URL           POST the spans of each finished file (OTLP/HTTP, .../v1/traces)\n"
    "  --header K=V         HTTP header for the sinks (repeatable)\n"
    "  --service NAME       OTLP service.name and pprof app name (default: the process name)\n"
    "  --pprof-push URL     POST a pprof profile per finished file to URL/ingest (Pyroscope)\n"
    "  --push-attempts N    POSTs per file before it is dropped (default 5)\n"
    "  --push-backoff SEC   first retry delay, doubling (default 0.5)\n"
    "  --push-timeout SEC   per POST (default 10)\n"
    "  --status-interval DUR  status line in the log (default 1m)\n"
    "  --log-level LEVEL    debug, info, warn, error (default info)\n"
    "  --tag KEY=VALUE      stored in every file's header (repeatable)\n"
    "  --ebpf               sample every process with one in-kernel BPF sampler (on-CPU samples\n"
    "                       and off-CPU spans; root or CAP_BPF+CAP_PERFMON; docs/ebpf.md)\n"
    "  --filter FILE        filter/redaction rules for every file (repeatable; also\n"
    "                       PYTRACE_FILTER, ':'-separated; docs/filters.md)\n"
    "  --no-stdlib          fold standard-library frames\n"
    "  -d, --duration DUR   stop after DUR (default: until SIGTERM/SIGINT)\n"
    "  --jitter FRAC        random offset of each tick (fraction of the period)\n"
    "  Signals: SIGTERM/SIGINT finish every file and exit 0; SIGHUP rotates now.\n";

static int parse_dur(const char *s, uint64_t *ns)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || isinf(v))
        return -1;
    double mul = 1e9;
    if (!strcmp(end, "ms"))
        mul = 1e6;
    else if (!strcmp(end, "m"))
        mul = 60e9;
    else if (!strcmp(end, "h"))
        mul = 3600e9;
    else if (*end && strcmp(end, "s") != 0)
        return -1;
    *ns = (uint64_t)(v * mul);
    return 0;
}

/* A size such as 64M (util/config.c), or 0 for "no limit". */
static int parse_size(const char *s, uint64_t *out)
{
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return config_parse_size(s, out);
}

static int parse_level(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

enum { O_MATCH = 256, O_CGROUP, O_UID, O_DIR, O_BYDATE, O_ROTATE, O_ROTSIZE, O_MAXDISK, O_OTLP,
       O_HEADER, O_SERVICE, O_PPROF, O_ATTEMPTS, O_BACKOFF, O_PTIMEOUT, O_STATUS, O_LOG, O_TAG,
       O_JITTER, O_EBPF, O_FILTER, O_NOSTDLIB };

static const struct option daemon_long[] = {
    {"match", required_argument, NULL, O_MATCH}, {"cgroup", required_argument, NULL, O_CGROUP},
    {"uid", required_argument, NULL, O_UID}, {"dir", required_argument, NULL, O_DIR},
    {"by-date", no_argument, NULL, O_BYDATE}, {"rotate", required_argument, NULL, O_ROTATE},
    {"rotate-size", required_argument, NULL, O_ROTSIZE},
    {"max-disk", required_argument, NULL, O_MAXDISK}, {"rate", required_argument, NULL, 'r'},
    {"otlp", required_argument, NULL, O_OTLP}, {"header", required_argument, NULL, O_HEADER},
    {"service", required_argument, NULL, O_SERVICE},
    {"pprof-push", required_argument, NULL, O_PPROF},
    {"push-attempts", required_argument, NULL, O_ATTEMPTS},
    {"push-backoff", required_argument, NULL, O_BACKOFF},
    {"push-timeout", required_argument, NULL, O_PTIMEOUT},
    {"status-interval", required_argument, NULL, O_STATUS},
    {"log-level", required_argument, NULL, O_LOG}, {"tag", required_argument, NULL, O_TAG},
    {"duration", required_argument, NULL, 'd'}, {"jitter", required_argument, NULL, O_JITTER},
    {"ebpf", no_argument, NULL, O_EBPF}, {"help", no_argument, NULL, 'h'},
    {"filter", required_argument, NULL, O_FILTER}, {"no-stdlib", no_argument, NULL, O_NOSTDLIB},
    {NULL, 0, NULL, 0},
};

static int daemon_opt(int c, struct daemon_cli *o)
{
    char *end;
    uint64_t ns;
    switch (c) {
    case O_MATCH: o->match = optarg; return 0;
    case O_CGROUP: o->cgroup = optarg; return 0;
    case O_UID:
        o->uid = strtol(optarg, &end, 10);
        return *end || o->uid < 0 ? cli_usage_error("daemon", "--uid takes a number") : 0;
    case O_DIR: o->dir = optarg; return 0;
    case O_BYDATE: o->by_date = true; return 0;
    case O_ROTATE:
        return parse_dur(optarg, &o->rotate_ns) ? cli_usage_error("daemon", "--rotate takes a "
                                                                  "duration such as 10m") : 0;
    case O_ROTSIZE:
        return parse_size(optarg, &o->rotate_bytes) ? cli_usage_error("daemon", "--rotate-size "
                                                                      "takes a size such as 64M") : 0;
    case O_MAXDISK:
        return parse_size(optarg, &o->max_disk) ? cli_usage_error("daemon", "--max-disk takes "
                                                                  "a size such as 1G") : 0;
    case 'r':
        o->rate_hz = strtod(optarg, &end);
        return end == optarg || *end || !(o->rate_hz > 0) || o->rate_hz > 10000
                   ? cli_usage_error("daemon", "--rate takes a number of Hz in (0, 10000]") : 0;
    case O_OTLP: o->otlp = optarg; return 0;
    case O_PPROF: o->pprof = optarg; return 0;
    case O_SERVICE: o->service = optarg; return 0;
    case O_HEADER:
        if (!strchr(optarg, '=') || o->n_headers == DAEMON_MAX_OPTS)
            return cli_usage_error("daemon", "--header takes KEY=VALUE");
        o->headers[o->n_headers++] = optarg;
        return 0;
    case O_TAG: {
        char *eq = strchr(optarg, '=');
        if (!eq || eq == optarg || o->n_tags == DAEMON_MAX_OPTS)
            return cli_usage_error("daemon", "--tag takes KEY=VALUE");
        *eq = '\0';
        o->tags[o->n_tags++] = (struct trace_tag){optarg, eq + 1};
        return 0;
    }
    case O_ATTEMPTS:
        o->push_attempts = (int)strtol(optarg, &end, 10);
        return *end || o->push_attempts < 1 ? cli_usage_error("daemon", "--push-attempts takes "
                                                              "a positive number") : 0;
    case O_BACKOFF:
    case O_PTIMEOUT: {
        double v = strtod(optarg, &end);
        if (end == optarg || *end || !(v > 0) || isinf(v))
            return cli_usage_error("daemon", "--push-backoff/--push-timeout take seconds");
        *(c == O_BACKOFF ? &o->push_backoff : &o->push_timeout) = v;
        return 0;
    }
    case O_STATUS:
        return parse_dur(optarg, &o->status_ns) ? cli_usage_error("daemon", "--status-interval "
                                                                  "takes a duration") : 0;
    case O_LOG:
        o->log_level = parse_level(optarg);
        return o->log_level < 0 ? cli_usage_error("daemon", "--log-level is debug, info, warn or "
                                                  "error") : 0;
    case 'd':
        if (parse_dur(optarg, &ns) || !ns)
            return cli_usage_error("daemon", "--duration takes a positive duration");
        o->duration_s = (double)ns / 1e9;
        return 0;
    case O_JITTER:
        o->jitter = strtod(optarg, &end);
        return end == optarg || *end || !(o->jitter >= 0) || o->jitter > 0.5
                   ? cli_usage_error("daemon", "--jitter takes a fraction in [0, 0.5]") : 0;
    case O_FILTER:
        if (o->n_filters == DAEMON_MAX_OPTS)
            return cli_usage_error("daemon", "too many --filter options");
        o->filters[o->n_filters++] = optarg;
        return 0;
    case O_NOSTDLIB: o->no_stdlib = true; return 0;
    case O_EBPF: o->ebpf = true; return 0;
    default: return cli_usage_error("daemon", "unknown option");
    }
}

int daemon_parse(int argc, char **argv, struct daemon_cli *o)
{
    memset(o, 0, sizeof *o);
    o->rate_hz = 100;
    o->dir = ".";
    o->uid = -1;
    o->rotate_ns = 600ULL * 1000000000ULL;
    o->rotate_bytes = 64ULL << 20;
    o->max_disk = 1ULL << 30;
    o->status_ns = 60ULL * 1000000000ULL;
    o->log_level = DLOG_INFO;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "r:d:h", daemon_long, NULL)) != -1) {
        if (c == 'h')
            return -1;
        int rc = daemon_opt(c, o);
        if (rc != 0)
            return rc;
    }
    if (optind != argc)
        return cli_usage_error("daemon", "unexpected argument '%s'", argv[optind]);
    if (o->ebpf)
        proc_warn_perf_rate("daemon", o->rate_hz);
    return 0;
}
