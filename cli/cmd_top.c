/*
 * cmd_top.c — `pytrace top PID`: a live, top(1)-like view of which Python functions a process is
 * running now. It drives the same session loop as `attach` through a session_sink whose tick
 * redraws (at most once a second) and reads keys, so there is no second thread and no second
 * sampler. Without a terminal (or with --once) it samples one window and prints one table.
 */
#include <curses.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach/proc.h"
#include "attach/sampler.h"
#include "attach/session.h"
#include "cli/cli.h"
#include "output/topview.h"
#include "util/termtext.h"

#define TOP_MAX_SPECS 64
#define DRAW_NS 1000000000ULL       /* redraw at most once a second: a top, not a movie */
#define KEYS_NS 50000000ULL         /* read keys every 50 ms: responsive, ~20 reads a second */
#define HEADER_ROWS 5               /* 3 fact lines, a blank line, the column titles */

static const char top_usage[] =
    "usage: pytrace top PID [-r HZ] [--window SEC] [--once] [--gil] [--idle] [--thread SPEC]\n"
    "  Live view of the functions process PID is running (own and total time, like top).\n"
    "  -r, --rate HZ      samples per second (default 100)\n"
    "      --window SEC   sliding window the counts cover, 1..600 (default 5)\n"
    "      --once         sample one window, print one table to stdout and exit (also the\n"
    "                     behaviour when stdout is not a terminal)\n"
    "      --gil          start with only GIL-holding samples counted (key g)\n"
    "      --idle         start with idle samples included (key i)\n"
    "      --thread SPEC  only threads whose name matches glob SPEC or whose tid is SPEC\n"
    "                     (repeatable)\n"
    "  keys: 1-4 or s/arrows sort by a column, t cycle threads, g GIL-only, i idle, p pause,\n"
    "        n native frames, q quit\n";

static const char *const col_titles[TOP_SORT_COUNT] = {"%Own", "%Total", "OwnTime", "TotalTime"};

struct top_cli {
    double rate_hz;
    uint32_t window_s;
    bool once, gil, idle;
    const char *specs[TOP_MAX_SPECS];
    size_t nspecs;
};

struct top_ui {
    struct top_view *view;
    pid_t pid;
    char comm[64], version[32];
    volatile int *stop;
    struct top_query q;
    uint32_t window_s;
    bool curses, paused, dirty;
    uint64_t paused_at, last_draw, last_keys;
    uint64_t samples, errors;
    char status[96];
    char selected[96];              /* --thread SPECs, shown for "all threads" ("" none) */
    int stat_fd;                    /* /proc/PID/stat: CPU of the whole process */
    uint64_t cpu_ns, cpu_at;
    double cpu_pct;
    int64_t rss;
};

static volatile int top_stop;

static void on_signal(int sig)
{
    (void)sig;
    top_stop = 1;
}

static int top_parse(int argc, char **argv, struct top_cli *o, int *next)
{
    enum { O_WINDOW = 256, O_ONCE, O_GIL, O_IDLE, O_THREAD };
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},  {"window", required_argument, NULL, O_WINDOW},
        {"once", no_argument, NULL, O_ONCE},     {"gil", no_argument, NULL, O_GIL},
        {"idle", no_argument, NULL, O_IDLE},     {"thread", required_argument, NULL, O_THREAD},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->rate_hz = 100;
    o->window_s = 5;
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            o->rate_hz = strtod(optarg, &end);
            if (end == optarg || *end || !(o->rate_hz > 0) || o->rate_hz > 1e5)
                return cli_usage_error("top", "--rate takes a number of Hz in (0, 100000]");
            break;
        case O_WINDOW: {
            long w = strtol(optarg, &end, 10);
            if (*end || w < 1 || w > TOP_MAX_WINDOW_S)
                return cli_usage_error("top", "--window takes whole seconds in 1..%d",
                                       TOP_MAX_WINDOW_S);
            o->window_s = (uint32_t)w;
            break;
        }
        case O_ONCE: o->once = true; break;
        case O_GIL: o->gil = true; break;
        case O_IDLE: o->idle = true; break;
        case O_THREAD:
            if (o->nspecs == TOP_MAX_SPECS)
                return cli_usage_error("top", "too many --thread options");
            o->specs[o->nspecs++] = optarg;
            break;
        case 'h': return -1;
        default: return cli_usage_error("top", "unknown option");
        }
    }
    *next = optind;
    return 0;
}

/* Process CPU % since the previous call, and RSS: the target's own cost, as top(1) shows it. */
static void proc_facts(struct top_ui *ui, uint64_t now)
{
    struct proc_tstat st;
    if (ui->stat_fd >= 0 && proc_thread_stat_fd(ui->stat_fd, &st) == 0) {
        uint64_t cpu = st.utime_ns + st.stime_ns;
        if (ui->cpu_at && now > ui->cpu_at)
            ui->cpu_pct = 100.0 * (double)(cpu - ui->cpu_ns) / (double)(now - ui->cpu_at);
        ui->cpu_ns = cpu;
        ui->cpu_at = now;
    }
    ui->rss = proc_rss(ui->pid);
}

static void thread_label(const struct top_ui *ui, char *out, size_t cap)
{
    struct top_thread_info ti;
    if (ui->q.thread < 0 || !top_view_thread(ui->view, (uint32_t)ui->q.thread, &ti))
        snprintf(out, cap, "%s", *ui->selected ? ui->selected : "All threads");
    else
        snprintf(out, cap, "Thread %" PRId64 " \"%s\"", ti.native_id, ti.name);
}

static void header_lines(const struct top_ui *ui, const struct top_stats *st, char l[3][256])
{
    char who[96];
    thread_label(ui, who, sizeof who);
    snprintf(l[0], 256, "PID %d (%s)  Python %s  Window %us  %s%s", (int)ui->pid,
             ui->comm, ui->version, ui->window_s, who, ui->paused ? "  [paused]" : "");
    double rounds = st->rounds ? (double)st->rounds : 1;
    snprintf(l[1], 256,
             "Samples %" PRIu64 "  Rate %.0f Hz  Errors %.1f%%  GIL %.1f%%  Threads %u "
             "(%u active, %u idle)",
             st->samples, st->rate_hz,
             st->samples ? 100.0 * (double)st->errors / (double)st->samples : 0.0,
             100.0 * (double)st->gil_rounds / rounds, st->threads, st->active, st->idle);
    snprintf(l[2], 256, "CPU %.0f%%  RSS %.1f MB  Sort: %s  Counting: %s, %s", ui->cpu_pct,
             ui->rss > 0 ? (double)ui->rss / (1 << 20) : 0.0, top_sort_name(ui->q.sort),
             ui->q.gil_only ? "GIL holders" : "all samples",
             ui->q.idle ? "idle included" : "idle excluded");
}

/* "file:line", keeping the end of the path when it does not fit in w columns. */
static void where(const struct top_row *r, int w, char *out, size_t cap)
{
    char full[4200];
    snprintf(full, sizeof full, "%s:%d", r->file, (int)r->line);
    int len = (int)strlen(full);
    if (w <= 0 || len <= w || w < 4)
        snprintf(out, cap, "%s", full);
    else
        snprintf(out, cap, "...%s", full + len - (w - 3));
}

/* One table line; fw = function column width, width = whole line (0: no limit). */
static void row_line(const struct top_row *r, int fw, int width, char *out, size_t cap)
{
    char own_t[32], tot_t[32], loc[4300];
    snprintf(own_t, sizeof own_t, "%.2fs", r->own_s);
    snprintf(tot_t, sizeof tot_t, "%.2fs", r->total_s);
    int left = 6 + 1 + 8 + 1 + 9 + 1 + 10 + 2 + fw + 2;
    where(r, width ? width - left : 0, loc, sizeof loc);
    snprintf(out, cap, "%5.1f%% %7.1f%% %9s %10s  %-*.*s  %s", r->own_pct, r->total_pct, own_t,
             tot_t, fw, fw, r->name, loc);
}

static void title_line(int fw, char *out, size_t cap)
{
    snprintf(out, cap, "%6s %8s %9s %10s  %-*s  %s", col_titles[0], col_titles[1], col_titles[2],
             col_titles[3], fw, "Function", "File:Line");
}

static int func_width(const struct top_row *rows, size_t n, int width)
{
    int fw = 8;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(rows[i].name) > fw)
            fw = (int)strlen(rows[i].name);
    if (width) {
        /* On a terminal the file keeps at least ~20 columns; long names are cut. */
        int room = width - (6 + 1 + 8 + 1 + 9 + 1 + 10 + 2 + 2) - 20;
        fw = fw > room ? room : fw;
        fw = fw < 8 ? 8 : fw;
    }
    return fw;
}

static void draw(struct top_ui *ui, uint64_t now)
{
    const struct top_row *rows;
    struct top_stats st;
    size_t n = top_view_rows(ui->view, &ui->q, ui->paused ? ui->paused_at : now, &rows, &st);
    char l[3][256], line[4400];
    header_lines(ui, &st, l);
    int fw = func_width(rows, n, COLS);
    erase();
    for (int i = 0; i < 3 && i < LINES; i++)
        mvaddnstr(i, 0, l[i], COLS);
    if (LINES > 4) {
        title_line(fw, line, sizeof line);
        attron(A_REVERSE);
        mvaddnstr(4, 0, line, COLS);
        for (int x = (int)strlen(line); x < COLS; x++)
            addch(' ');
        attroff(A_REVERSE);
    }
    for (size_t i = 0; i < n && HEADER_ROWS + (int)i < LINES - 1; i++) {
        row_line(&rows[i], fw, COLS, line, sizeof line);
        mvaddnstr(HEADER_ROWS + (int)i, 0, line, COLS);
    }
    mvaddnstr(LINES - 1, 0,
              ui->status[0] ? ui->status
                            : "1-4/s sort  t thread  g GIL-only  i idle  p pause  n native  q quit",
              COLS);
    refresh();
    ui->status[0] = '\0';
}

/* t: all threads, then each selected thread in turn, then all again. */
static void next_thread(struct top_ui *ui)
{
    struct top_thread_info ti;
    for (uint32_t i = (uint32_t)(ui->q.thread + 1); i < top_view_threads(ui->view); i++) {
        if (top_view_thread(ui->view, i, &ti) && ti.selected) {
            ui->q.thread = (int32_t)i;
            return;
        }
    }
    ui->q.thread = -1;
}

static void on_key(struct top_ui *ui, int ch, uint64_t now)
{
    ui->dirty = true;
    switch (ch) {
    case 'q': case 'Q': *ui->stop = 1; break;
    case '1': case '2': case '3': case '4': ui->q.sort = (enum top_sort)(ch - '1'); break;
    case 's': case KEY_RIGHT: ui->q.sort = (enum top_sort)((ui->q.sort + 1) % TOP_SORT_COUNT); break;
    case KEY_LEFT:
        ui->q.sort = (enum top_sort)((ui->q.sort + TOP_SORT_COUNT - 1) % TOP_SORT_COUNT);
        break;
    case 'p':
        ui->paused = !ui->paused;
        ui->paused_at = now;
        break;
    case 't': next_thread(ui); break;
    case 'g': ui->q.gil_only = !ui->q.gil_only; break;
    case 'i': ui->q.idle = !ui->q.idle; break;
    case 'n':
        snprintf(ui->status, sizeof ui->status, "native frames need --native (not available yet)");
        break;
    case KEY_RESIZE: break;
    default: ui->dirty = false; break;
    }
}

static uint32_t sk_process(void *c, struct py_proc *p, uint32_t parent)
{
    struct top_ui *ui = c;
    (void)parent;
    py_version_str(&p->version, ui->version, sizeof ui->version);
    return 1;
}

static void sk_feed(void *c, uint32_t proc, struct py_proc *p, const struct py_snapshot *snap,
                    uint64_t t_ns)
{
    struct top_ui *ui = c;
    (void)proc, (void)p;
    ui->samples += snap->nthreads;
    ui->errors += snap->bad_threads;
    if (!ui->paused)
        top_view_feed(ui->view, snap, t_ns);
}

static void sk_feed_failed(void *c, uint32_t proc, uint64_t t_ns)
{
    struct top_ui *ui = c;
    (void)proc;
    ui->samples++;
    ui->errors++;
    if (!ui->paused)
        top_view_feed_failed(ui->view, t_ns);
}

static void sk_process_exit(void *c, uint32_t proc, uint64_t t_ns, int64_t status)
{
    (void)c, (void)proc, (void)t_ns, (void)status;
}

static enum pt_status sk_tick(void *c, uint64_t now, struct pt_err *err)
{
    struct top_ui *ui = c;
    (void)err;
    if (!ui->curses)
        return PT_OK;
    if (now - ui->last_keys >= KEYS_NS) {
        ui->last_keys = now;
        for (int ch; (ch = getch()) != ERR;)
            on_key(ui, ch, now);
    }
    if (ui->dirty || now - ui->last_draw >= DRAW_NS) {
        if (now - ui->last_draw >= DRAW_NS)
            proc_facts(ui, now);
        draw(ui, now);
        ui->last_draw = now;
        ui->dirty = false;
    }
    return PT_OK;
}

static uint64_t sk_samples(void *c) { return ((struct top_ui *)c)->samples; }
static uint64_t sk_errors(void *c) { return ((struct top_ui *)c)->errors; }
static uint64_t sk_bytes(void *c) { (void)c; return 0; }

/* The one table of --once (or of a pipe): every row, names and paths uncut. */
static void print_once(struct top_ui *ui, uint64_t now)
{
    const struct top_row *rows;
    struct top_stats st;
    proc_facts(ui, now);
    size_t n = top_view_rows(ui->view, &ui->q, now, &rows, &st);
    char l[3][256], line[4400];
    header_lines(ui, &st, l);
    printf("%s\n%s\n%s\n\n", l[0], l[1], l[2]);
    int fw = func_width(rows, n, 0);
    title_line(fw, line, sizeof line);
    printf("%s\n", line);
    for (size_t i = 0; i < n; i++) {
        row_line(&rows[i], fw, 0, line, sizeof line);
        printf("%s\n", line);
    }
    fflush(stdout);
}

static bool start_curses(void)
{
    /* newterm, not initscr: an unknown TERM is an error we report, not an exit inside curses. */
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr)
        return false;
    set_term(scr);
    cbreak();
    noecho();
    nodelay(stdscr, TRUE);
    keypad(stdscr, TRUE);
    curs_set(0);
    return true;
}

static void install_signals(void)
{
    /* Installed before curses starts, so curses keeps ours: a signal ends the loop and the
     * normal path runs endwin(). SIGWINCH stays curses' own (it turns into KEY_RESIZE). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static int top_run(const struct top_cli *o, struct py_proc *p, pid_t pid, struct top_ui *ui)
{
    struct session_sink sink = {
        .process = sk_process, .feed = sk_feed, .feed_failed = sk_feed_failed,
        .process_exit = sk_process_exit, .tick = sk_tick, .samples = sk_samples,
        .errors = sk_errors, .bytes = sk_bytes, .ctx = ui,
    };
    struct session_opts so = {
        .rate_hz = o->rate_hz,
        .duration_s = ui->curses ? 0 : (double)o->window_s,
    };
    struct session_result res;
    struct pt_err err;
    pt_err_clear(&err);
    proc_facts(ui, sampler_now_ns());
    enum pt_status rc = session_run(&so, p, pid, 0, &sink, &top_stop, &res, &err);
    if (ui->curses)
        endwin();
    if (rc != PT_OK)
        return cli_report(&err);
    if (!ui->curses)
        print_once(ui, res.end_ns);
    if (res.end == SESSION_TARGET_EXITED)
        fprintf(stderr, "pytrace top: process %d exited\n", (int)pid);
    return 0;
}

int cmd_top(int argc, char **argv)
{
    struct top_cli o;
    int next = 0, pid;
    int rc = top_parse(argc, argv, &o, &next);
    if (rc == -1) {
        fputs(top_usage, stdout);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (next != argc - 1)
        return cli_usage_error("top", "expected exactly one PID after the options");
    if (cli_parse_pid(argv[next], &pid) != 0)
        return cli_usage_error("top", "'%s' is not a process id", argv[next]);

    struct pt_err err;
    pt_err_clear(&err);
    struct py_proc *p = NULL;
    if (py_proc_open(&p, pid, &err) != PT_OK)
        return cli_report(&err);
    struct top_ui ui = {
        .pid = pid, .stop = &top_stop, .window_s = o.window_s, .stat_fd = -1,
        .q = {.thread = -1, .gil_only = o.gil, .idle = o.idle, .sort = TOP_SORT_OWN_PCT},
    };
    for (size_t i = 0, at = 0; i < o.nspecs && at < sizeof ui.selected; i++)
        at += (size_t)snprintf(ui.selected + at, sizeof ui.selected - at, "%s%s",
                               i ? ", " : "Threads ", o.specs[i]);
    proc_comm(pid, pid, ui.comm, sizeof ui.comm);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    ui.stat_fd = open(path, O_RDONLY | O_CLOEXEC);
    install_signals();
    ui.curses = !o.once && isatty(STDOUT_FILENO) && start_curses();
    /* The view keeps whole seconds. One table covers a recording of window_s seconds that began
     * part-way into a second, so it spans window_s + 1 of them: with window_s buckets the first
     * fell out (--once --window 1 printed no samples). */
    ui.view = top_view_new(ui.curses ? o.window_s : o.window_s + 1);
    if (!ui.view) {
        if (ui.curses)
            endwin();
        if (ui.stat_fd >= 0)
            close(ui.stat_fd);
        py_proc_close(p);
        pt_fail(&err, PT_EFAIL, "out of memory");
        return cli_report(&err);
    }
    top_view_set_thread_filter(ui.view, o.specs, o.nspecs);
    if (!o.once && isatty(STDOUT_FILENO) && !ui.curses)
        fprintf(stderr, "pytrace top: cannot drive this terminal (TERM=%s): printing one table\n",
                getenv("TERM") ? getenv("TERM") : "");
    if (!ui.curses)
        term_filter_stdout();   /* the table's names come from the target (curses shows ^[) */
    rc = top_run(&o, p, pid, &ui);
    if (ui.stat_fd >= 0)
        close(ui.stat_fd);
    top_view_free(ui.view);
    py_proc_close(p);
    return rc;
}
