/*
 * cmd_attach.c — `pytrace attach PID [options]`: record a running process until -d, Ctrl-C /
 * SIGTERM, or its exit. The file is finished on every one of those paths.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/record_opts.h"

static volatile int attach_stop;

static void on_signal(int sig)
{
    (void)sig;
    attach_stop = 1;
}

int cmd_attach(int argc, char **argv)
{
    struct record_cli o;
    int next, pid;
    int rc = record_parse("attach", argc, argv, &o, &next);
    if (rc == -1) {
        printf("usage: pytrace attach PID [options]\n  Record process PID.\n%s", record_usage);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (next != argc - 1)
        return cli_usage_error("attach", "expected exactly one PID after the options");
    if (cli_parse_pid(argv[next], &pid) != 0)
        return cli_usage_error("attach", "'%s' is not a process id", argv[next]);

    struct pt_err err;
    pt_err_clear(&err);
    struct py_proc *p = NULL;
    if (py_proc_open(&p, pid, &err) != PT_OK)
        return cli_report(&err);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    struct session_result res;
    rc = record_and_report(&o, p, pid, 0, &attach_stop, &res);
    py_proc_close(p);
    return rc;
}
