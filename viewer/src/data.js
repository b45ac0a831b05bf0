// data.js — the embedded JSON (output/view_data.h documents it) turned into typed arrays, and the
// profile tree re-aggregated for the current filter: one thread or all, idle samples or not,
// stdlib / site-packages frames hidden (their time goes to the nearest shown caller).

export const KIND_USER = 0;
export const KIND_STDLIB = 1;
export const KIND_SITE = 2;
export const KIND_PRUNED = 3; // the "[small frames]" entry after the real functions

export const F_GIL = 1;
export const F_IDLE = 2;
export const F_BAD = 4;

// Spans whose samples were at least this idle count as idle time.
export const IDLE_SPAN_PCT = 50;

export function loadModel(doc) {
  const fns = doc.functions;
  const nf = fns.length;
  const model = {
    meta: doc.meta,
    durationUs: Math.max(1, doc.duration_us),
    fnName: new Array(nf),
    fnQual: new Array(nf),
    fnFile: new Array(nf),
    fnLine: new Int32Array(nf),
    fnKind: new Uint8Array(nf),
    treeParent: decodeParents(doc.tree.parent_back),
    treeFn: Int32Array.from(doc.tree.function),
    counts: decodeCounts(doc.counts),
    treePruned: doc.tree_pruned,
    threads: doc.threads,
    threadName: new Map(doc.threads.map((t) => [t.id, t.name || `tid ${t.tid}`])),
    processes: doc.processes,
    spans: doc.spans.map(loadSpans),
    spanTotal: doc.span_total,
    spanKept: doc.span_kept,
    spanMinUs: doc.span_min_us,
    activity: doc.activity,
    counters: doc.counters,
  };
  fns.forEach((f, i) => {
    model.fnName[i] = f[0] || '<unknown>';
    model.fnQual[i] = f[1] || f[0] || '<unknown>';
    model.fnFile[i] = f[2];
    model.fnLine[i] = f[3];
    model.fnKind[i] = i === nf - 1 ? KIND_PRUNED : f[4];
  });
  return model;
}

function decodeParents(back) {
  const p = new Int32Array(back.length);
  p[0] = -1;
  for (let i = 1; i < back.length; i++) p[i] = i - back[i];
  return p;
}

// Flat [thread, node, flags, n, ...] from the per-thread node deltas.
function decodeCounts(perThread) {
  const n = perThread.reduce((a, t) => a + t.data.length / 3, 0);
  const out = new Float64Array(n * 4);
  let k = 0;
  for (const t of perThread) {
    const d = t.data;
    let node = 0;
    for (let i = 0; i < d.length; i += 3, k += 4) {
      node += d[i];
      out[k] = t.thread;
      out[k + 1] = node;
      out[k + 2] = d[i + 1];
      out[k + 3] = d[i + 2];
    }
  }
  return out;
}

function loadSpans(s) {
  const d = s.data;
  const n = d.length / 5;
  const out = {
    thread: s.thread,
    n,
    maxDepth: s.max_depth,
    begin: new Float64Array(n),
    end: new Float64Array(n),
    depth: new Int32Array(n),
    fn: new Int32Array(n),
    idle: new Uint8Array(n),
    vdepth: new Int32Array(n), // depth among the spans shown (hidden kinds removed)
    visMaxDepth: s.max_depth,
    locals: s.locals || {}, // --locals: span index -> "name = value" lines
  };
  for (let i = 0, k = 0, b = 0; i < n; i++, k += 5) {
    b += d[k];
    out.begin[i] = b;
    out.end[i] = b + d[k + 1];
    out.depth[i] = d[k + 2];
    out.fn[i] = d[k + 3];
    out.idle[i] = d[k + 4];
  }
  out.vdepth.set(out.depth);
  return out;
}

// Is function fn hidden by the filter?
export function fnHidden(model, filter, fn) {
  const k = model.fnKind[fn];
  return (k === KIND_STDLIB && filter.hideStdlib) || (k === KIND_SITE && filter.hideSite);
}

// The displayed tree for filter {thread (0 = all), hideIdle, hideStdlib, hideSite}:
// {n, fn, parent (root: -1), self, total, kids(node)}. kids() gives a node's children with
// samples, largest first, sorted on first use (a view only asks for the nodes it shows).
export function buildProfile(model, filter) {
  const nt = model.treeParent.length;
  let n = nt;
  let fn = model.treeFn;
  let parent = model.treeParent;
  let map = null;
  if (filter.hideStdlib || filter.hideSite) {
    // a hidden frame's callees hang from its caller, merged by function
    const nf = model.fnName.length;
    const made = new Map();
    map = new Int32Array(nt);
    fn = new Int32Array(nt);
    parent = new Int32Array(nt);
    parent[0] = -1;
    n = 1;
    for (let i = 1; i < nt; i++) {
      const p = map[model.treeParent[i]];
      const f = model.treeFn[i];
      if (fnHidden(model, filter, f)) {
        map[i] = p;
        continue;
      }
      const key = p * nf + f;
      let c = made.get(key);
      if (c === undefined) {
        c = n++;
        fn[c] = f;
        parent[c] = p;
        made.set(key, c);
      }
      map[i] = c;
    }
  }
  const self = new Float64Array(n);
  const cs = model.counts;
  for (let k = 0; k < cs.length; k += 4) {
    if (filter.thread && cs[k] !== filter.thread) continue;
    if (filter.hideIdle && (cs[k + 2] & F_IDLE)) continue;
    self[map ? map[cs[k + 1]] : cs[k + 1]] += cs[k + 3];
  }
  const total = Float64Array.from(self);
  for (let i = n - 1; i > 0; i--) total[parent[i]] += total[i];
  // children in one array, grouped by parent (counting sort)
  const start = new Int32Array(n + 1);
  for (let i = 1; i < n; i++) if (total[i] > 0) start[parent[i] + 1]++;
  for (let i = 0; i < n; i++) start[i + 1] += start[i];
  const list = new Int32Array(start[n]);
  const fill = start.slice(0, n);
  for (let i = 1; i < n; i++) if (total[i] > 0) list[fill[parent[i]]++] = i;
  const sorted = new Map();
  const kids = (node) => {
    let k = sorted.get(node);
    if (!k) {
      k = Array.from(list.subarray(start[node], start[node + 1]));
      k.sort((x, y) => total[y] - total[x]);
      sorted.set(node, k);
    }
    return k;
  };
  return { n, fn: fn.subarray(0, n), parent: parent.subarray(0, n), self, total, kids };
}

// Per function: self and total samples over the displayed tree, a recursive function's total
// counted once per stack.
export function functionTotals(model, prof) {
  const nf = model.fnName.length;
  const self = new Float64Array(nf);
  const total = new Float64Array(nf);
  const onPath = new Int32Array(nf);
  const stack = [[0, 0]]; // [node, next child index]
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, idx] = top;
    if (idx === 0 && node !== 0) {
      const f = prof.fn[node];
      self[f] += prof.self[node];
      if (onPath[f]++ === 0) total[f] += prof.total[node];
    }
    const ch = prof.kids(node);
    if (idx < ch.length) {
      top[1]++;
      stack.push([ch[idx], 0]);
    } else {
      stack.pop();
      if (node !== 0) onPath[prof.fn[node]]--;
    }
  }
  return { self, total };
}

// Depth of each span among the shown ones, for hidden kinds: a shown span's depth is the number
// of shown spans open around it. Spans are sorted by begin, then depth.
export function layoutSpans(model, filter) {
  for (const s of model.spans) {
    if (!filter.hideStdlib && !filter.hideSite) {
      s.vdepth.set(s.depth);
      s.visMaxDepth = s.maxDepth;
      continue;
    }
    const open = []; // [end, depth, shown]
    let shownOpen = 0;
    let maxD = 0;
    for (let i = 0; i < s.n; i++) {
      while (open.length) {
        const top = open[open.length - 1];
        if (top[0] >= s.begin[i] && top[1] < s.depth[i]) break;
        open.pop();
        if (top[2]) shownOpen--;
      }
      const shown = !fnHidden(model, filter, s.fn[i]);
      s.vdepth[i] = shown ? shownOpen : -1;
      if (shown && shownOpen > maxD) maxD = shownOpen;
      open.push([s.end[i], s.depth[i], shown]);
      if (shown) shownOpen++;
    }
    s.visMaxDepth = maxD;
  }
}
