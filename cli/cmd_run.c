/*
 * cmd_run.c — `pytrace run [options] -- CMD [ARGS...]`: start CMD, record it from its first
 * Python frame, and exit with its exit status (128 + N when a signal N killed it). When no Python
 * was recorded at all, the exit code says so (5) unless CMD itself failed: a script must be able
 * to tell "ran, nothing recorded" from success. Signals sent to pytrace by another process are
 * forwarded to CMD; a terminal's Ctrl-C already reaches CMD (same process group), so it is not
 * sent twice. A second signal stops the recording at once.
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
#include "attach/proc.h"
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

/*
 * Polls until the child shows a CPython runtime (libpython mapped / static binary exec'd). With
 * --subprocesses the wait also ends (PT_ENOTPY) as soon as CMD has a child of its own: CMD is a
 * wrapper (a shell running python without exec), and the session takes over from there, watching
 * CMD and its descendants; waiting longer would leave the child's first seconds unrecorded.
 */
static enum pt_status find_python(pid_t pid, bool subprocesses, struct py_proc **out,
                                  struct pt_err *err)
{
    uint64_t deadline = sampler_now_ns() + RUN_FIND_PYTHON_NS;
    enum pt_status rc;
    for (;;) {
        rc = py_proc_open(out, pid, err);
        if (rc == PT_OK || rc == PT_ENOPROC || rc == PT_EPERM || rc == PT_EVERSION)
            return rc;
        pid_t kid;
        if (sampler_now_ns() > deadline || run_stop ||
            (subprocesses && proc_children(pid, &kid, 1) > 0))
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

/* Nothing was recorded: one line naming CMD (and the way out when the Python is a child), and
 * CMD's own failure as the exit code when it failed — it says more than ours — else 5. */
static int no_python(const struct record_cli *o, const char *cmd, const char *what,
                     const char *outcome, int code)
{
    fprintf(stderr, "pytrace run: no Python interpreter found in '%s'%s; %s%s\n", cmd, what,
            outcome,
            o->subprocesses ? "" : " (if it starts python as a child process, add --subprocesses)");
    return code != 0 ? code : PT_ENOTPY;
}

int cmd_run(int argc, char **argv)
{
    struct record_cli o;
    int next;
    int rc = record_parse("run", argc, argv, &o, &next);
    if (rc == -1) {
        printf("usage: pytrace run [options] -- CMD [ARGS...]\n"
               "  Start CMD and record it; exits with CMD's exit status (128+N: killed by\n"
               "  signal N). CMD must be Python within 2 s (it may exec python); with\n"
               "  --subprocesses it may also be a wrapper (a shell script) whose Python\n"
               "  descendants are recorded, until CMD and every recorded process have exited.\n"
               "  No Python found, nothing recorded: exit 5, or CMD's status if CMD failed.\n"
               "  Without --subprocesses a CMD still not Python after 2 s is stopped (SIGTERM);\n"
               "  with it the trace is written all the same and holds no samples.\n%s",
               record_usage);
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
    enum pt_status st = find_python(pid, o.subprocesses, &p, &err);
    if (st != PT_OK && !(o.subprocesses && st == PT_ENOTPY)) {
        ebpf_session_discard();
        if (st == PT_ENOPROC) {
            /* CMD finished before an interpreter could be seen. */
            int ws = 0;
            waitpid(pid, &ws, 0);
            int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
            char what[64];
            snprintf(what, sizeof what, " before it exited (status %d)", code);
            return no_python(&o, argv[next], what, "nothing recorded", code);
        }
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        if (st == PT_ENOTPY)   /* our SIGTERM is not CMD's failure */
            return no_python(&o, argv[next], " within 2 s, so it was stopped", "nothing recorded",
                             0);
        return cli_report(&err);
    }
    struct session_result res = {.root_exit_status = INT64_MIN};
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
    if (res.processes == 0)   /* --subprocesses: the file holds CMD's header and no samples */
        return no_python(&o, argv[next], " or its child processes", "the trace holds no samples",
                         exit_code_of(status));
    return exit_code_of(status);
}
