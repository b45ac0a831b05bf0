/*
 * cmd_config.c — `pytrace config [--config FILE] [recording options]`: the effective recording
 * configuration, each key with its value and where the value came from (default, FILE:LINE,
 * env PYTRACE_KEY, command line), then the rule chain a recording would use. Reads the same
 * sources, in the same order, as `attach` and `run` (docs/config.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/record_config.h"
#include "cli/record_opts.h"
#include "util/config.h"

static const char config_usage[] =
    "usage: pytrace config [--config FILE] [recording options]\n"
    "  Prints every recording option's effective value and its source: default, a config file\n"
    "  (/etc/pytrace.conf, $XDG_CONFIG_HOME/pytrace.conf or ~/.config/pytrace.conf, --config\n"
    "  FILE) as FILE:LINE, an environment variable (PYTRACE_RATE, ...) or the command line, then\n"
    "  the filter/redaction rule chain. Command line > environment > files.\n";

int cmd_config(int argc, char **argv)
{
    struct record_cli o;
    int next;
    int rc = record_parse("config", argc, argv, &o, &next);
    if (rc == -1) {
        printf("%s\nRecording options:\n%s", config_usage, record_usage);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (next != argc)
        return cli_usage_error("config", "unexpected argument '%s'", argv[next]);
    const struct config *c = record_config();
    for (size_t i = 0; c && i < config_n_keys; i++) {
        const char *origin, *value = config_get(c, config_keys[i].key, NULL, &origin);
        char line[4200];
        snprintf(line, sizeof line, "%s = %s", config_keys[i].key,
                 value ? value : config_keys[i].fallback);
        printf("%-44s # %s\n", line, origin);
    }
    const char *chain;
    record_config_rule_chain(&chain);
    printf("\n# filter/redaction rules, in order (the last matching rule wins):\n%s", chain);
    return 0;
}
