/*
 * cli.h — the command-line verbs. Each verb lives in cli/cmd_<verb>.c, parses its own options,
 * prints, and returns the process exit code (the enum pt_status values of util/err.h).
 */
#ifndef PT_CLI_H
#define PT_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

int cmd_dump(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_view(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_daemon(int argc, char **argv);

struct rules;
/* The rule chain for --filter FILE... (cli_rules.c): built-in defaults, PYTRACE_FILTER, files. */
enum pt_status cli_rules(struct rules **out, bool no_stdlib, const char *const *files, size_t n,
                         struct pt_err *err);

/* Prints "pytrace: <msg>" for a failed status and returns its exit code. */
int cli_report(const struct pt_err *err);

/* Prints a usage error and returns PT_EUSAGE. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a positive pid; returns 0 or -1. */
int cli_parse_pid(const char *s, int *pid);

/* The output path a verb derives from its input trace `in`: in without ".pytrace", then suffix;
 * "trace" then suffix, in the current directory, when in is "-" or not a regular file (a pipe,
 * /dev/stdin: nothing to be written beside it). */
void cli_default_out(const char *in, const char *suffix, char *out, size_t cap);

#endif
