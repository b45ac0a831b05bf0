/*
 * record_config.h — where record_parse() (cli/record_opts.c) gets configuration files, PYTRACE_*
 * variables and the rule chain from (cli/record_config.c). The state is the process's: a pytrace
 * process makes one recording.
 */
#ifndef PT_RECORD_CONFIG_H
#define PT_RECORD_CONFIG_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

struct config;
struct rules;

/* Reads /etc/pytrace.conf, the user's file, config_file (--config, may be NULL) and the
 * environment, and sets *argc and *argv to the effective values as options of opts ("--rate=250",
 * "--blocking"), argv[0] = verb. Returns 0, or an exit code after printing why. */
int record_config_load(const char *verb, const char *config_file, const struct option *opts,
                       int *argc, char ***argv);

/* The configuration source (e.g. "env PYTRACE_RATE", "FILE:3") of option index in that argv. */
const char *record_config_origin(int index);

/* Notes a command-line option (getopt value c of opts, its argument) for `pytrace config`. */
void record_config_note(const struct option *opts, int c, const char *arg);

/* The effective configuration after record_parse() (NULL before). */
const struct config *record_config(void);

/* Builds the rule chain: the defaults (and stdlib folding), then each file in order. Returns 0 or
 * an exit code after printing the error (a bad rule file: 2, naming FILE:LINE). */
int record_config_rules(const char *const *files, size_t n, bool no_stdlib);

/* A chain of the defaults (and stdlib folding), then each file in order, for `export` and `view`.
 * Returns 0 and *out (rules_free it), or an exit code after printing the error. */
int record_config_build_rules(const char *const *files, size_t n, bool no_stdlib,
                              struct rules **out);

/* The chain built by record_config_rules() (NULL before) and its description for the header. */
const struct rules *record_config_rule_chain(const char **description);

#endif
