/*
 * view_tree.c — the viewer's sample tree: the stack trie with lines merged away (one node per
 * call path of functions), the samples counted per (thread, node, flags), and, over the node
 * budget, the smallest subtrees folded into one "[small frames]" node per kept parent so every
 * sample is still counted once.
 */
#include "output/view_data.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* A count of samples: thread, innermost tree node, flags. */
struct vrec {
    uint32_t thread, node, flags;
    uint64_t n;
};

/* The function tree: the stack trie with lines merged away. */
struct vtree {
    uint32_t *parent, *function;
    size_t n, cap;
    uint64_t *keys;               /* open addressing: (parent << 32 | function) -> node */
    uint32_t *vals;               /* 0 = empty slot (node 0, the root, is never a child) */
    size_t slots;
};

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* ---- the function tree --------------------------------------------------------------------- */

static uint64_t tree_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static int tree_init(struct vtree *tr, size_t max_nodes)
{
    memset(tr, 0, sizeof *tr);
    tr->cap = max_nodes + 1;
    for (tr->slots = 16; tr->slots < 2 * tr->cap; tr->slots *= 2)
        ;
    tr->parent = malloc(tr->cap * sizeof *tr->parent);
    tr->function = malloc(tr->cap * sizeof *tr->function);
    tr->keys = malloc(tr->slots * sizeof *tr->keys);
    tr->vals = calloc(tr->slots, sizeof *tr->vals);
    if (!tr->parent || !tr->function || !tr->keys || !tr->vals)
        return -1;
    tr->parent[0] = tr->function[0] = 0;
    tr->n = 1;
    return 0;
}

static void tree_free(struct vtree *tr)
{
    free(tr->parent);
    free(tr->function);
    free(tr->keys);
    free(tr->vals);
}

/* The child of `parent` for `function`, created when new. The caller sized the tree so it never
 * needs to grow (at most one node per stack-trie node). */
static uint32_t tree_child(struct vtree *tr, uint32_t parent, uint32_t function)
{
    uint64_t key = (uint64_t)parent << 32 | function;
    size_t mask = tr->slots - 1, i = tree_hash(key) & mask;
    for (; tr->vals[i]; i = (i + 1) & mask)
        if (tr->keys[i] == key)
            return tr->vals[i];
    assert(tr->n < tr->cap);
    uint32_t id = (uint32_t)tr->n++;
    tr->parent[id] = parent;
    tr->function[id] = function;
    tr->keys[i] = key;
    tr->vals[i] = id;
    return id;
}

static int rec_cmp(const void *a, const void *b)
{
    const struct vrec *x = a, *y = b;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    return x->flags < y->flags ? -1 : x->flags > y->flags;
}

/* Sorts recs and merges equal (thread, node, flags); returns the new count. */
static size_t recs_merge(struct vrec *r, size_t n)
{
    if (!n)
        return 0;
    qsort(r, n, sizeof *r, rec_cmp);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (rec_cmp(&r[k], &r[i]) == 0)
            r[k].n += r[i].n;
        else
            r[++k] = r[i];
    }
    return k + 1;
}

/* One rec per run of equal (thread, node, flags) in file order, then merged. */
static struct vrec *count_samples(const struct trace *t, const uint32_t *node_of, size_t *n_out)
{
    struct vrec *r = malloc((t->n_samples ? t->n_samples : 1) * sizeof *r);
    size_t n = 0;
    if (!r)
        return NULL;
    for (size_t i = 0; i < t->n_samples; i++) {
        const struct trace_sample *s = &t->samples[i];
        if (!s->thread || s->thread >= t->n_threads || s->stack >= t->n_stacks)
            continue;
        struct vrec x = {s->thread, node_of[s->stack], s->flags & 7u, 1};
        if (n && rec_cmp(&r[n - 1], &x) == 0)
            r[n - 1].n++;
        else
            r[n++] = x;
    }
    *n_out = recs_merge(r, n);
    return r;
}

static int u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Least subtree total a node needs to be kept so that kept nodes plus one "pruned" bucket per
 * kept parent fit the budget (a node's total is at least any descendant's, so the kept nodes
 * form a tree). */
static uint64_t prune_threshold(const uint64_t *total, size_t n, size_t budget)
{
    size_t nonzero = 0;
    for (size_t i = 1; i < n; i++)
        nonzero += total[i] > 0;
    if (nonzero + 1 <= budget)
        return 1;
    size_t k = budget / 2 > 1 ? budget / 2 : 1;
    uint64_t *s = malloc(nonzero * sizeof *s);
    if (!s)
        return UINT64_MAX;
    size_t m = 0;
    for (size_t i = 1; i < n; i++)
        if (total[i])
            s[m++] = total[i];
    qsort(s, m, sizeof *s, u64_desc);
    uint64_t thr = s[k - 1] + 1;          /* at most k-1 non-root nodes exceed s[k-1] */
    free(s);
    return thr;
}

/*
 * Drops nodes without samples and, over budget, folds the smallest subtrees into one bucket node
 * (function `bucket_fn`) under their nearest kept ancestor. Rewrites tr and recs; returns how many
 * sampled nodes were folded, or -1 on OOM.
 */
static long tree_prune(struct vtree *tr, struct vrec *recs, size_t *n_recs, size_t budget,
                       uint32_t bucket_fn)
{
    const uint32_t NONE = UINT32_MAX;
    size_t n = tr->n, m = 0;
    uint64_t *total = calloc(n, sizeof *total);
    uint32_t *newid = malloc(n * sizeof *newid), *bucket = malloc(n * sizeof *bucket);
    uint32_t *np = malloc(n * sizeof *np), *nf = malloc(n * sizeof *nf);
    long folded = -1;
    if (!total || !newid || !bucket || !np || !nf)
        goto out;
    for (size_t i = 0; i < *n_recs; i++)
        total[recs[i].node] += recs[i].n;
    for (size_t i = n - 1; i > 0; i--)
        total[tr->parent[i]] += total[i];
    uint64_t thr = prune_threshold(total, n, budget);
    if (thr == UINT64_MAX)
        goto out;
    /* kept nodes first, in id order, so parents still come before children */
    for (size_t i = 0; i < n; i++) {
        bucket[i] = NONE;
        newid[i] = NONE;
        if (i == 0 || total[i] >= thr) {
            newid[i] = (uint32_t)m;
            np[m] = i ? newid[tr->parent[i]] : 0;
            nf[m++] = tr->function[i];
        }
    }
    /* then one bucket per kept parent of folded nodes; a folded node's samples go there */
    folded = 0;
    for (size_t i = 1; i < n; i++) {
        uint32_t p = tr->parent[i];
        if (newid[i] != NONE || !total[i])
            continue;
        folded++;
        if (newid[p] == NONE) {
            bucket[i] = bucket[p];   /* p folded too: where p's samples went */
            continue;
        }
        if (bucket[p] == NONE) {
            bucket[p] = (uint32_t)m;
            np[m] = newid[p];
            nf[m++] = bucket_fn;
        }
        bucket[i] = bucket[p];
    }
    for (size_t i = 0; i < *n_recs; i++) {
        uint32_t x = recs[i].node;
        recs[i].node = newid[x] != NONE ? newid[x] : bucket[x];
    }
    *n_recs = recs_merge(recs, *n_recs);
    free(tr->parent);
    free(tr->function);
    tr->parent = np;
    tr->function = nf;
    tr->n = m;
    np = nf = NULL;
out:
    free(total);
    free(newid);
    free(bucket);
    free(np);
    free(nf);
    return folded;
}

int view_tree_add(const struct trace *t, size_t node_budget, json_t *doc)
{
    struct vtree tr;
    uint32_t *node_of = malloc((t->n_stacks ? t->n_stacks : 1) * sizeof *node_of);
    struct vrec *recs = NULL;
    size_t n_recs = 0;
    int rc = -1;
    if (!node_of || tree_init(&tr, t->n_stacks) != 0)
        goto out;
    node_of[0] = 0;
    for (size_t k = 1; k < t->n_stacks; k++)   /* the loader checked parent < k */
        node_of[k] = tree_child(&tr, node_of[t->stacks[k].parent], t->stacks[k].function);
    recs = count_samples(t, node_of, &n_recs);
    long folded = recs ? tree_prune(&tr, recs, &n_recs, node_budget,
                                    (uint32_t)t->n_functions) : -1;
    if (folded < 0)
        goto out;
    /* small numbers parse fast: parents as distances back, counts per thread with node deltas */
    json_t *parent = json_array(), *function = json_array(), *counts = json_array();
    for (size_t i = 0; i < tr.n; i++) {
        json_array_append_new(parent, jint(i ? i - tr.parent[i] : 0));
        json_array_append_new(function, jint(tr.function[i]));
    }
    for (size_t i = 0; i < n_recs;) {
        uint32_t th = recs[i].thread, prev = 0;
        json_t *data = json_array();
        for (; i < n_recs && recs[i].thread == th; i++) {
            json_array_append_new(data, jint(recs[i].node - prev));
            json_array_append_new(data, jint(recs[i].flags));
            json_array_append_new(data, jint(recs[i].n));
            prev = recs[i].node;
        }
        json_array_append_new(counts, json_pack("{s:I, s:o}", "thread", (json_int_t)th,
                                                "data", data));
    }
    json_object_set_new(doc, "tree", json_pack("{s:o, s:o}", "parent_back", parent,
                                                "function", function));
    json_object_set_new(doc, "tree_pruned", jint((uint64_t)folded));
    json_object_set_new(doc, "counts", counts);
    rc = 0;
out:
    if (node_of)
        tree_free(&tr);
    free(node_of);
    free(recs);
    return rc;
}
