/*
 * cmd_dump.c — `pytrace dump PID [--json] [--native]`: every thread's Python stack, now, without
 * stopping the target. A torn read (the target runs while we read) is retried a few times before a
 * thread is printed as partial. --native stops the threads for the length of the dump to unwind
 * their C stacks and prints mixed stacks (symbols/native.h).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "attach/proc.h"
#include "cli/cli.h"
#include "readers/locals.h"
#include "readers/walk.h"
#include "symbols/native.h"
#include "symbols/unwind.h"
#include "util/rules.h"
#include "util/termtext.h"

#define DUMP_RETRIES 5

static const char dump_usage[] =
    "usage: pytrace dump PID [--json] [--native] [--locals [--filter FILE]...]\n"
    "  Print the Python stack of every thread of process PID, innermost frame first.\n"
    "  --json     one JSON object: {pid, python_version, threads: [{thread_id, native_id, name,\n"
    "             holds_gil, idle, frames: [{function, qualname, file, line}]}]}\n"
    "  --native   mixed stacks: C frames (symbol, module) between the Python ones; stops the\n"
    "             target's threads (ptrace) for the length of the dump, then resumes them.\n"
    "             JSON frames get kind \"python\" or \"native\" (symbol, module, offset,\n"
    "             address, approximate).\n"
    "  --locals   also each frame's arguments and local variables (bounded renderings; names\n"
    "             that look secret, such as password or api_key, are shown as <redacted>);\n"
    "             with --json each frame gets \"locals\": [{name, value, arg, redacted}]\n"
    "  --filter FILE  value rules (allow/redact/drop, docs/filters.md) for --locals, after the\n"
    "             built-in secret-name defaults (repeatable; also PYTRACE_FILTER, ':'-separated)\n";

/* What --locals needs while printing: the rule chain and one reused buffer. */
struct dump_locals {
    const struct rules *rules;
    struct py_locals *buf;       /* NULL without --locals */
};

static const char *thread_state(const struct py_thread *t)
{
    if (t->holds_gil)
        return t->idle ? "idle, holds GIL" : "active, holds GIL";
    return t->idle ? "idle" : "active";
}

#define DUMP_MERGE_CAP (UNWIND_MAX_FRAMES + PY_MAX_FRAMES)

/* The stacks to print: Python only, or merged with the native ones when ns is set. */
struct dump_view {
    struct py_proc *p;
    const struct py_snapshot *s;
    const struct native_snap *ns;    /* NULL without --native */
    const struct dump_locals *dl;
    struct merge_item items[DUMP_MERGE_CAP];
};

/* Thread t's frames as merge items (Python-only frames when there is no native snapshot). */
static uint32_t view_items(struct dump_view *v, const struct py_thread *t,
                           const struct native_stack *nst, bool *uncertain)
{
    *uncertain = false;
    if (v->ns)
        return native_merge(v->ns, nst, v->s, t, v->items, DUMP_MERGE_CAP, uncertain);
    uint32_t n = t->nframes < DUMP_MERGE_CAP ? t->nframes : DUMP_MERGE_CAP;
    for (uint32_t k = 0; k < n; k++)
        v->items[k] = (struct merge_item){MERGE_PYTHON, k};
    return n;
}

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path ? path : "?";
}

static void print_native_text(const struct native_frame *f)
{
    if (f->sym.name)
        printf("    %s (%s+0x%llx)%s\n", f->sym.name, base_name(f->sym.module),
               (unsigned long long)f->sym.offset, f->sym.approximate ? " [approximate]" : "");
    else
        printf("    0x%llx (%s)\n", (unsigned long long)f->ip, base_name(f->sym.module));
}

static void print_locals_text(struct py_proc *p, const struct py_thread *t, const struct py_frame *f,
                              const struct dump_locals *dl)
{
    struct pt_err err;
    pt_err_clear(&err);
    if (py_locals_read(p, t, f, dl->rules, dl->buf, &err) != PT_OK) {
        printf("        <locals unreadable: %s>\n", err.msg);
        return;
    }
    for (int pass = 1; pass >= 0; pass--) {
        bool header = false;
        for (uint32_t i = 0; i < dl->buf->n; i++) {
            const struct py_local *l = &dl->buf->items[i];
            if (l->arg != (pass == 1))
                continue;
            if (!header)
                printf("        %s:\n", pass ? "Arguments" : "Locals");
            header = true;
            printf("            %s = %s\n", l->name, l->value);
        }
    }
    if (dl->buf->truncated)
        printf("            ... (more variables not shown)\n");
}
static json_t *locals_json(struct py_proc *p, const struct py_thread *t, const struct py_frame *f,
                           const struct dump_locals *dl)
{
    json_t *arr = json_array();
    struct pt_err err;
    pt_err_clear(&err);
    if (py_locals_read(p, t, f, dl->rules, dl->buf, &err) != PT_OK)
        return arr;
    for (uint32_t i = 0; i < dl->buf->n; i++) {
        const struct py_local *l = &dl->buf->items[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b}", "name", l->name, "value",
                                             l->value, "arg", l->arg, "redacted", l->redacted));
    }
    return arr;
}

static void print_items_text(struct dump_view *v, const struct py_thread *t,
                             const struct native_stack *nst, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        const struct merge_item *it = &v->items[k];
        if (it->kind == MERGE_NATIVE) {
            print_native_text(&v->ns->frames[nst->first + it->index]);
            continue;
        }
        const struct py_frame *f = py_thread_frame(v->s, t, it->index);
        if (f->code) {
            printf("    %s (%s:%d)\n", f->code->qualname, f->code->filename, f->line);
            if (v->dl->buf)
                print_locals_text(v->p, t, f, v->dl);
        } else
            printf("    <unreadable code object at 0x%llx>\n", (unsigned long long)f->code_addr);
    }
}

/* Stopped threads that have no Python thread state (native-only threads). */
static bool is_python_thread(const struct py_snapshot *s, pid_t tid)
{
    for (uint32_t i = 0; i < s->nthreads; i++)
        if (s->threads[i].native_id == tid)
            return true;
    return false;
}

static void print_text(struct dump_view *v)
{
    struct py_proc *p = v->p;
    const struct py_snapshot *s = v->s;
    char ver[32], cmd[512] = "";
    py_version_str(&p->version, ver, sizeof ver);
    proc_cmdline(p->pid, cmd, sizeof cmd);
    printf("Process %d: %s\nPython v%s (%s)\n", (int)p->pid, cmd, ver, p->binary);
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const struct py_thread *t = &s->threads[i];
        const struct native_stack *nst = v->ns ? native_find(v->ns, t->native_id) : NULL;
        bool uncertain;
        uint32_t n = view_items(v, t, nst, &uncertain);
        printf("\nThread %lld (%s): \"%s\"%s%s%s%s\n", (long long)t->native_id, thread_state(t),
               t->name, t->bad ? " [partial: stack changed while read]" : "",
               t->truncated ? " [truncated]" : "",
               v->ns && !nst ? " [no native stack]" : "",
               uncertain ? " [merge uncertain]" : "");
        print_items_text(v, t, nst, n);
    }
    for (uint32_t i = 0; v->ns && i < v->ns->nstacks; i++) {
        const struct native_stack *nst = &v->ns->stacks[i];
        if (is_python_thread(s, nst->tid))
            continue;
        printf("\nThread %d (native only)\n", (int)nst->tid);
        for (uint32_t k = 0; k < nst->n; k++)
            print_native_text(&v->ns->frames[nst->first + k]);
    }
}

static json_t *frame_json(const struct dump_view *v, const struct py_thread *t,
                          const struct py_frame *f, bool kinds)
{
    json_t *j;
    if (!f->code)
        j = json_pack("{s:s, s:s, s:s, s:i, s:b}", "function", "<unknown>", "qualname",
                      "<unknown>", "file", "", "line", -1, "unreadable", 1);
    else
        j = json_pack("{s:s, s:s, s:s, s:i}", "function", f->code->name, "qualname",
                      f->code->qualname, "file", f->code->filename, "line", f->line);
    if (kinds && j)
        json_object_set_new(j, "kind", json_string("python"));
    if (j && f->code && v->dl->buf)
        json_object_set_new(j, "locals", locals_json(v->p, t, f, v->dl));
    return j;
}

static json_t *native_json(const struct native_frame *f)
{
    char addr[32];
    snprintf(addr, sizeof addr, "0x%llx", (unsigned long long)f->ip);
    return json_pack("{s:s, s:s?, s:s?, s:I, s:s, s:b}", "kind", "native", "symbol", f->sym.name,
                     "module", f->sym.module, "offset", (json_int_t)f->sym.offset, "address", addr,
                     "approximate", f->sym.approximate);
}

static json_t *frames_json(struct dump_view *v, const struct py_thread *t, bool *uncertain,
                           bool *has_native)
{
    const struct native_stack *nst = v->ns ? native_find(v->ns, t->native_id) : NULL;
    uint32_t n = view_items(v, t, nst, uncertain);
    *has_native = nst != NULL;
    json_t *frames = json_array();
    for (uint32_t k = 0; k < n; k++) {
        const struct merge_item *it = &v->items[k];
        json_array_append_new(frames, it->kind == MERGE_NATIVE
                                          ? native_json(&v->ns->frames[nst->first + it->index])
                                          : frame_json(v, t, py_thread_frame(v->s, t, it->index),
                                                       v->ns));
    }
    return frames;
}

static json_t *native_only_json(const struct dump_view *v)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; v->ns && i < v->ns->nstacks; i++) {
        const struct native_stack *nst = &v->ns->stacks[i];
        if (is_python_thread(v->s, nst->tid))
            continue;
        json_t *frames = json_array();
        for (uint32_t k = 0; k < nst->n; k++)
            json_array_append_new(frames, native_json(&v->ns->frames[nst->first + k]));
        json_array_append_new(arr, json_pack("{s:i, s:o}", "native_id", (int)nst->tid, "frames",
                                             frames));
    }
    return arr;
}

static int print_json(struct dump_view *v)
{
    struct py_proc *p = v->p;
    const struct py_snapshot *s = v->s;
    char ver[32];
    py_version_str(&p->version, ver, sizeof ver);
    json_t *threads = json_array();
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const struct py_thread *t = &s->threads[i];
        bool uncertain, has_native;
        json_t *frames = frames_json(v, t, &uncertain, &has_native);
        json_t *jt = json_pack("{s:I, s:I, s:s, s:b, s:b, s:I, s:b, s:b, s:o}",
                               "thread_id", (json_int_t)t->thread_id,
                               "native_id", (json_int_t)t->native_id,
                               "name", t->name,
                               "holds_gil", t->holds_gil,
                               "idle", t->idle,
                               "interpreter_id", (json_int_t)t->interp_id,
                               "partial", t->bad,
                               "truncated", t->truncated,
                               "frames", frames);
        if (v->ns) {
            json_object_set_new(jt, "native_stack", json_boolean(has_native));
            json_object_set_new(jt, "merge_uncertain", json_boolean(uncertain));
        }
        json_array_append_new(threads, jt);
    }
    static const char *const anchors[] = {"", "symbol", "section", "scan"};
    json_t *root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}", "pid", (int)p->pid,
                             "python_version", ver, "binary", p->binary,
                             "layout", p->layout_from_debug_offsets ? "debug-offsets" : "table",
                             "runtime_found_by", anchors[p->anchor <= 3 ? p->anchor : 0],
                             "threads", threads);
    if (v->ns) {
        json_object_set_new(root, "native_only_threads", native_only_json(v));
        json_object_set_new(root, "native_unwind_us", json_real((double)v->ns->unwind_ns / 1e3));
        json_object_set_new(root, "native_symbols_us", json_real((double)v->ns->symbol_ns / 1e3));
    }
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) == 0 ? 0 : PT_EFAIL;
    putchar('\n');
    json_decref(root);
    return rc;
}

/* Walks (and with native, stops, unwinds and resumes) into *s / *ns. */
static enum pt_status dump_walk(struct py_proc *p, struct py_snapshot *s, struct native_proc *np,
                                struct native_snap *ns, struct pt_err *err)
{
    enum pt_status rc = PT_OK;
    for (int attempt = 0; attempt < DUMP_RETRIES; attempt++) {
        code_cache_tick(p->codes);
        if (np)   /* threads stopped: the Python stacks cannot tear */
            return native_dump(np, p, s, PY_WALK_OS_STATE | PY_WALK_NAMES, ns, err);
        rc = py_walk(p, s, PY_WALK_OS_STATE | PY_WALK_NAMES, err);
        if (rc != PT_OK || s->bad_threads == 0)
            break;
    }
    return rc;
}

int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"native", no_argument, NULL, 'n'},
        {"locals", no_argument, NULL, 'l'},
        {"filter", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, native = 0, locals = 0, c, pid;
    const char *filters[16];
    size_t n_filters = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(dump_usage, stdout); return 0;
        case 'n': native = 1; break;
        case 'l': locals = 1; break;
        case 'f':
            if (n_filters == sizeof filters / sizeof filters[0])
                return cli_usage_error("dump", "too many --filter options");
            filters[n_filters++] = optarg;
            break;
        default: return cli_usage_error("dump", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("dump", "expected exactly one PID");
    if (cli_parse_pid(argv[optind], &pid) != 0)
        return cli_usage_error("dump", "'%s' is not a process id", argv[optind]);
    if (!json)
        term_filter_stdout();   /* names from the target never drive the terminal */

    struct pt_err err;
    pt_err_clear(&err);
    struct dump_locals dl = {NULL, NULL};
    struct rules *rules = NULL;
    if (locals && cli_rules(&rules, false, filters, n_filters, &err) != PT_OK)
        return cli_report(&err);
    if (locals && !(dl.buf = malloc(sizeof *dl.buf))) {
        rules_free(rules);
        return cli_report(&(struct pt_err){PT_EFAIL, "out of memory"});
    }
    dl.rules = rules;
    struct py_proc *p = NULL;
    struct native_proc *np = NULL;
    if (py_proc_open(&p, pid, &err) != PT_OK ||
        (native && native_open(&np, pid, &err) != PT_OK)) {
        py_proc_close(p);
        free(dl.buf);
        rules_free(rules);
        return cli_report(&err);
    }
    struct py_snapshot s;
    py_snapshot_init(&s);
    struct native_snap ns = {0};
    enum pt_status rc = dump_walk(p, &s, np, &ns, &err);
    int exit_code = 0;
    static struct dump_view v;
    v = (struct dump_view){.p = p, .s = &s, .ns = np ? &ns : NULL, .dl = &dl};
    if (rc != PT_OK)
        exit_code = cli_report(&err);
    else if (json)
        exit_code = print_json(&v);
    else
        print_text(&v);
    native_snap_free(&ns);
    native_close(np);
    py_snapshot_free(&s);
    py_proc_close(p);
    free(dl.buf);
    rules_free(rules);
    return exit_code;
}
