/*
 * cmd_run.c — `pytrace run [options] -- CMD [ARGS...]`: start CMD, record it from its first
 * Python frame, and exit with its exit status (128 + N when a signal N killed it). Signals sent to
 * pytrace by another process are forwarded to CMD; a terminal's Ctrl-C already reaches CMD (same
 * process group), so it is not sent twice. A second signal stops the recording at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/ebpf.h"
#include "attach/sampler.h"
#include "cli/cli.h"
#include "cli/record_opts.h"

#define RUN_FIND_PYTHON_NS 2000000000ULL   /* how long CMD may take to show an interpreter */

static volatile int run_stop;
static volatile pid_t run_child;
static volatile int run_signals;

static void on_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    if (++run_signals > 1) {
        run_stop = 1;
        return;
    }
    /* From the terminal the child got it too; from kill(2) it did not. */
    if (run_child > 0 && si && si->si_code <= 0)
        kill(run_child, sig);
    if (run_child <= 0)
        run_stop = 1;
}

/* Starts argv; returns its pid once exec succeeded, -1 (with a message) when it did not. */
static pid_t spawn(char **argv)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        execvp(argv[0], argv);
        int e = errno;
        (void)!write(fds[1], &e, sizeof e);
        _exit(127);
    }
    close(fds[1]);
    int e = 0;
    ssize_t n;
    while ((n = read(fds[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    if (n > 0) {
        waitpid(pid, NULL, 0);
        fprintf(stderr, "pytrace run: cannot run '%s': %s\n", argv[0], strerror(e));
        return -1;
    }
    return pid;
}

/* Polls until the child shows a CPython runtime (libpython mapped / static binary exec'd). */
static enum pt_status find_python(pid_t pid, struct py_proc **out, struct pt_err *err)
{
    uint64_t deadline = sampler_now_ns() + RUN_FIND_PYTHON_NS;
    enum pt_status rc;
    for (;;) {
        rc = py_proc_open(out, pid, err);
        if (rc == PT_OK || rc == PT_ENOPROC || rc == PT_EPERM || rc == PT_EVERSION)
            return rc;
        if (sampler_now_ns() > deadline || run_stop)
            return rc;
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

static int exit_code_of(int64_t status)
{
    if (status == INT64_MIN)
        return 0;
    return status >= 0 ? (int)status : 128 + (int)-status;
}

int cmd_run(int argc, char **argv)
{
    struct record_cli o;
    int next;
    int rc = record_parse("run", argc, argv, &o, &next);
    if (rc == -1) {
        printf("usage: pytrace run [options] -- CMD [ARGS...]\n"
               "  Start CMD and record it; exits with CMD's exit status.\n%s", record_usage);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (next < argc && !strcmp(argv[next], "--"))
        next++;
    if (next >= argc)
        return cli_usage_error("run", "expected a command after --");
    struct pt_err eerr;
    pt_err_clear(&eerr);
    if (o.ebpf && (ebpf_check(&eerr) != PT_OK ||   /* before CMD starts, not after */
                   ebpf_session_prepare(o.rate_hz, &eerr) != PT_OK))
        return cli_report(&eerr);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    pid_t pid = spawn(argv + next);
    if (pid < 0) {
        ebpf_session_discard();
        return PT_EFAIL;
    }
    run_child = pid;
    struct pt_err err;
    pt_err_clear(&err);
    struct py_proc *p = NULL;
    enum pt_status st = find_python(pid, &p, &err);
    if (st != PT_OK && !(o.subprocesses && st == PT_ENOTPY)) {
        ebpf_session_discard();
        if (st == PT_ENOPROC) {
            /* CMD finished before an interpreter could be seen. */
            int status = 0;
            waitpid(pid, &status, 0);
            fprintf(stderr, "pytrace run: '%s' exited before pytrace found a Python interpreter "
                    "in it\n", argv[next]);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        cli_report(&err);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return st;
    }
    struct session_result res;
    rc = record_and_report(&o, p, pid, pid, &run_stop, &res);
    ebpf_session_discard();   /* when record_and_report() stopped before its session */
    py_proc_close(p);
    int64_t status = res.root_exit_status;
    if (status == INT64_MIN) {
        /* Recording stopped first (second signal, -d, --max-size): CMD keeps running on its own
         * unless it was stopped by signal; wait only if it has already gone. */
        int ws = 0;
        if (waitpid(pid, &ws, WNOHANG) == pid)
            status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -(int64_t)WTERMSIG(ws);
    }
    if (rc != 0)
        return rc;
    return exit_code_of(status);
}
