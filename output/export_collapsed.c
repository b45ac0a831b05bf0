/*
 * export_collapsed.c — collapsed stacks for flamegraph.pl and friends: one line per distinct
 * stack, `frame;frame;...;frame COUNT`, root first, frames as `function (file:line)`. Stacks are
 * aggregated by trie node (the same stack is the same leaf node), then by label after excluded
 * frames are removed.
 */
#include "output/export.h"

#include <stdlib.h>
#include <string.h>

struct line_count {
    char *text;
    uint64_t count;
};

static int cmp_text(const void *a, const void *b)
{
    return strcmp(((const struct line_count *)a)->text, ((const struct line_count *)b)->text);
}

enum pt_status export_collapsed(const struct export_view *v, FILE *out, struct pt_err *err)
{
    const struct trace *t = v->t;
    uint64_t *by_node = calloc(t->n_stacks + 1, sizeof *by_node);
    struct export_frame *frames = malloc(EXPORT_MAX_DEPTH * sizeof *frames);
    struct line_count *lines = NULL;
    size_t n_lines = 0;
    enum pt_status rc = PT_OK;
    if (!by_node || !frames) {
        rc = pt_fail(err, PT_EFAIL, "out of memory");
        goto out;
    }
    /* Every selected sample is counted, so the counts add up to the samples: torn samples and
     * threads with no Python frame get a line of their own. */
    uint64_t torn = 0, empty = 0;
    for (size_t i = 0; i < t->n_samples; i++) {
        const struct trace_sample *s = &t->samples[i];
        if (!export_sample_ok(v, s))
            continue;
        if (s->flags & TRACE_F_BAD)
            torn++;
        else if (!s->stack || s->stack >= t->n_stacks)
            empty++;
        else
            by_node[s->stack]++;
    }
    lines = calloc(t->n_stacks + 3, sizeof *lines);
    if (!lines) {
        rc = pt_fail(err, PT_EFAIL, "out of memory");
        goto out;
    }
    for (uint32_t node = 1; node < t->n_stacks; node++) {
        if (!by_node[node])
            continue;
        size_t depth = export_stack(v, node, frames, EXPORT_MAX_DEPTH);
        if (!depth) {
            empty += by_node[node];   /* every frame excluded */
            continue;
        }
        size_t cap = 256, len = 0;
        char *text = malloc(cap);
        for (size_t d = 0; text && d < depth; d++) {
            char label[8192];
            int n = export_frame_label(v, &frames[d], label, sizeof label);
            if (n < 0)
                continue;
            /* ';' separates frames and a newline ends the stack: keep both out of labels, and
             * every other control character too (names come from the target). */
            for (char *p = label; *p; p++)
                if (*p == ';')
                    *p = ',';
                else if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    *p = ' ';
            size_t need = len + (size_t)n + 2;
            if (need > cap) {
                while (cap < need)
                    cap *= 2;
                char *grown = realloc(text, cap);
                if (!grown) {
                    free(text);
                    text = NULL;
                    break;
                }
                text = grown;
            }
            if (d)
                text[len++] = ';';
            memcpy(text + len, label, (size_t)n + 1);
            len += (size_t)n;
        }
        if (!text) {
            rc = pt_fail(err, PT_EFAIL, "out of memory");
            goto out;
        }
        lines[n_lines++] = (struct line_count){text, by_node[node]};
    }
    if (torn && (lines[n_lines].text = strdup("<torn sample>")))
        lines[n_lines++].count = torn;
    if (empty && (lines[n_lines].text = strdup("<no Python frame>")))
        lines[n_lines++].count = empty;
    /* Exclusions can make different nodes print the same stack: merge equal lines. */
    qsort(lines, n_lines, sizeof *lines, cmp_text);
    for (size_t i = 0; i < n_lines; i++) {
        uint64_t count = lines[i].count;
        while (i + 1 < n_lines && !strcmp(lines[i].text, lines[i + 1].text))
            count += lines[++i].count;
        fprintf(out, "%s %llu\n", lines[i].text, (unsigned long long)count);
    }
out:
    for (size_t i = 0; lines && i < n_lines; i++)
        free(lines[i].text);
    free(lines);
    free(frames);
    free(by_node);
    return rc;
}
