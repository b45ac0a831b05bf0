/*
 * cmd_dump.c — `pytrace dump PID [--json]`: every thread's Python stack, now, without stopping the
 * target. A torn read (the target runs while we read) is retried a few times before a thread is
 * printed as partial.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/proc.h"
#include "cli/cli.h"
#include "readers/locals.h"
#include "readers/walk.h"
#include "util/rules.h"

#define DUMP_RETRIES 5

static const char dump_usage[] =
    "usage: pytrace dump PID [--json] [--locals]\n"
    "  Print the Python stack of every thread of process PID, innermost frame first.\n"
    "  --json     one JSON object: {pid, python_version, threads: [{thread_id, native_id, name,\n"
    "             holds_gil, idle, frames: [{function, qualname, file, line}]}]}\n"
    "  --locals   also each frame's arguments and local variables (bounded renderings; names\n"
    "             that look secret, such as password or api_key, are shown as <redacted>);\n"
    "             with --json each frame gets \"locals\": [{name, value, arg, redacted}]\n";

/* What --locals needs while printing: the rule chain and one reused buffer. */
struct dump_locals {
    const struct rules *rules;
    struct py_locals *buf;
};

static const char *thread_state(const struct py_thread *t)
{
    if (t->holds_gil)
        return t->idle ? "idle, holds GIL" : "active, holds GIL";
    return t->idle ? "idle" : "active";
}

/* Prints frame f's arguments, then its other locals, below its line. */
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

static void print_text(struct py_proc *p, const struct py_snapshot *s, const struct dump_locals *dl)
{
    char ver[32], cmd[512] = "";
    py_version_str(&p->version, ver, sizeof ver);
    proc_cmdline(p->pid, cmd, sizeof cmd);
    printf("Process %d: %s\nPython v%s (%s)\n", (int)p->pid, cmd, ver, p->binary);
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const struct py_thread *t = &s->threads[i];
        printf("\nThread %lld (%s): \"%s\"%s%s\n", (long long)t->native_id, thread_state(t),
               t->name, t->bad ? " [partial: stack changed while read]" : "",
               t->truncated ? " [truncated]" : "");
        for (uint32_t k = 0; k < t->nframes; k++) {
            const struct py_frame *f = py_thread_frame(s, t, k);
            if (f->code) {
                printf("    %s (%s:%d)\n", f->code->qualname, f->code->filename, f->line);
                if (dl->buf)
                    print_locals_text(p, t, f, dl);
            } else
                printf("    <unreadable code object at 0x%llx>\n", (unsigned long long)f->code_addr);
        }
    }
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

static json_t *frame_json(struct py_proc *p, const struct py_thread *t, const struct py_frame *f,
                          const struct dump_locals *dl)
{
    if (!f->code)
        return json_pack("{s:s, s:s, s:s, s:i, s:b}", "function", "<unknown>", "qualname",
                         "<unknown>", "file", "", "line", -1, "unreadable", 1);
    json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "function", f->code->name, "qualname",
                          f->code->qualname, "file", f->code->filename, "line", f->line);
    if (dl->buf)
        json_object_set_new(j, "locals", locals_json(p, t, f, dl));
    return j;
}

static int print_json(struct py_proc *p, const struct py_snapshot *s, const struct dump_locals *dl)
{
    char ver[32];
    py_version_str(&p->version, ver, sizeof ver);
    json_t *threads = json_array();
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const struct py_thread *t = &s->threads[i];
        json_t *frames = json_array();
        for (uint32_t k = 0; k < t->nframes; k++)
            json_array_append_new(frames, frame_json(p, t, py_thread_frame(s, t, k), dl));
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
        json_array_append_new(threads, jt);
    }
    static const char *const anchors[] = {"", "symbol", "section", "scan"};
    json_t *root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}", "pid", (int)p->pid,
                             "python_version", ver, "binary", p->binary,
                             "layout", p->layout_from_debug_offsets ? "debug-offsets" : "table",
                             "runtime_found_by", anchors[p->anchor <= 3 ? p->anchor : 0],
                             "threads", threads);
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) == 0 ? 0 : PT_EFAIL;
    putchar('\n');
    json_decref(root);
    return rc;
}

int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"native", no_argument, NULL, 'n'},
        {"locals", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, locals = 0, c, pid;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(dump_usage, stdout); return 0;
        case 'l': locals = 1; break;
        case 'n':
            fprintf(stderr, "pytrace dump: --native is not available in this version yet\n");
            return PT_EFAIL;
        default: return cli_usage_error("dump", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("dump", "expected exactly one PID");
    if (cli_parse_pid(argv[optind], &pid) != 0)
        return cli_usage_error("dump", "'%s' is not a process id", argv[optind]);

    struct pt_err err;
    pt_err_clear(&err);
    struct dump_locals dl = {NULL, NULL};
    struct rules *rules = NULL;
    if (locals) {
        if (rules_new(&rules, false, &err) != PT_OK)
            return cli_report(&err);
        dl.rules = rules;
        dl.buf = malloc(sizeof *dl.buf);
        if (!dl.buf) {
            rules_free(rules);
            return cli_report(&(struct pt_err){PT_EFAIL, "out of memory"});
        }
    }
    struct py_proc *p = NULL;
    if (py_proc_open(&p, pid, &err) != PT_OK) {
        free(dl.buf);
        rules_free(rules);
        return cli_report(&err);
    }
    struct py_snapshot s;
    py_snapshot_init(&s);
    enum pt_status rc = PT_OK;
    for (int attempt = 0; attempt < DUMP_RETRIES; attempt++) {
        code_cache_tick(p->codes);
        rc = py_walk(p, &s, PY_WALK_OS_STATE | PY_WALK_NAMES, &err);
        if (rc != PT_OK || s.bad_threads == 0)
            break;
    }
    int exit_code = 0;
    if (rc != PT_OK)
        exit_code = cli_report(&err);
    else if (json)
        exit_code = print_json(p, &s, &dl);
    else
        print_text(p, &s, &dl);
    py_snapshot_free(&s);
    py_proc_close(p);
    free(dl.buf);
    rules_free(rules);
    return exit_code;
}
