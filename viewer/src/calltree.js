// calltree.js — the call tree as a table: top-down (expandable, siblings sorted) or by function
// (flat, recursion counted once), sortable by self or total time by clicking a column header.
// Search matches are marked and, top-down, their callers expanded so they show.
import { functionTotals, KIND_SITE, KIND_STDLIB } from './data.js';
import { fmtInt, fmtPct, fmtUs, shortPath } from './format.js';

const MAX_ROWS = 3000;
const HOT_DEPTH = 14;
const KIND_NAME = { [KIND_STDLIB]: 'stdlib', [KIND_SITE]: 'site-packages' };

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
}

export class CallTree {
  constructor(el, model) {
    this.el = el;
    this.model = model;
    this.mode = 'tree';
    this.sortKey = 'total';
    this.sortAsc = false;
    this.search = null;
    this.expanded = new Set();
    el.addEventListener('click', (e) => this.onClick(e));
  }

  setProfile(prof, rootLabel) {
    this.prof = prof;
    this.rootLabel = rootLabel;
    this.flat = null;
    this.expandHotPath();
    this.expandMatches();
    this.render();
  }

  setMode(mode) {
    this.mode = mode;
    this.render();
  }

  setSearch(search) {
    this.search = search;
    this.expandMatches();
    this.render();
  }

  sortBy(key) {
    if (this.sortKey === key) this.sortAsc = !this.sortAsc;
    else [this.sortKey, this.sortAsc] = [key, key === 'name'];
    this.render();
  }

  // Open the root and, from it, the biggest child while it holds a fair share of the time.
  expandHotPath() {
    const p = this.prof;
    this.expanded = new Set([0]);
    let node = 0;
    for (let d = 0; d < HOT_DEPTH; d++) {
      const c = p.kids(node)[0];
      if (c === undefined || p.total[c] < 0.05 * p.total[0]) break;
      this.expanded.add(c);
      node = c;
    }
  }

  // Open the callers of the biggest matches.
  expandMatches() {
    if (!this.search || !this.prof) return;
    const p = this.prof;
    const hits = [];
    for (let i = 1; i < p.n; i++) if (p.total[i] > 0 && this.search.hit[p.fn[i]]) hits.push(i);
    hits.sort((a, b) => p.total[b] - p.total[a]);
    for (const h of hits.slice(0, 50)) for (let n = p.parent[h]; n >= 0; n = p.parent[n]) this.expanded.add(n);
  }

  compare() {
    const dir = this.sortAsc ? 1 : -1;
    if (this.sortKey === 'name') return (a, b) => dir * a.name.localeCompare(b.name);
    const k = this.sortKey;
    return (a, b) => dir * (a[k] - b[k]) || b.total - a.total;
  }

  treeRows() {
    const p = this.prof;
    const cmp = this.compare();
    const rows = [];
    const entry = (node, depth, parent) => ({
      node, depth, parent, fn: node ? p.fn[node] : 0, name: node ? this.model.fnQual[p.fn[node]] : this.rootLabel,
      self: p.self[node], total: p.total[node], kids: p.kids(node).length,
    });
    const walk = (e) => {
      rows.push(e);
      if (rows.length >= MAX_ROWS || !this.expanded.has(e.node)) return;
      const kids = p.kids(e.node).map((c) => entry(c, e.depth + 1, e.node)).sort(cmp);
      for (const k of kids) {
        if (rows.length >= MAX_ROWS) return;
        walk(k);
      }
    };
    walk(entry(0, 0, -1));
    return rows;
  }

  flatRows() {
    if (!this.flat) this.flat = functionTotals(this.model, this.prof);
    const { self, total } = this.flat;
    const rows = [];
    for (let f = 1; f < total.length; f++) {
      if (total[f] > 0) rows.push({ node: -1, depth: 0, parent: -1, fn: f, name: this.model.fnQual[f], self: self[f], total: total[f], kids: 0 });
    }
    return rows.sort(this.compare());
  }

  header() {
    const col = (key, label, cls = '') => {
      const sorted = this.sortKey === key ? ` sorted${this.sortAsc ? ' asc' : ''}` : '';
      return `<th class="sortable ${cls}${sorted}" data-sort="${key}">${label}</th>`;
    };
    return `<thead><tr>${col('name', 'Function', 'name')}${col('self', 'Self time')}<th>Self %</th>` +
      `${col('total', 'Total time')}<th>Total %</th><th class="name">File</th></tr></thead>`;
  }

  render() {
    if (!this.prof) return;
    const m = this.model;
    const period = m.meta.period_us;
    const whole = this.prof.total[0];
    const all = this.mode === 'tree' ? this.treeRows() : this.flatRows();
    const rows = all.slice(0, MAX_ROWS);
    let matches = 0;
    const body = rows.map((r) => {
      const hit = this.search && r.fn && this.search.hit[r.fn];
      matches += hit ? 1 : 0;
      const twisty = this.mode === 'tree' && r.kids ? (this.expanded.has(r.node) ? '▾' : '▸') : '';
      const kind = KIND_NAME[m.fnKind[r.fn]];
      const file = r.fn ? `${m.fnFile[r.fn]}:${m.fnLine[r.fn]}` : '';
      return `<tr data-node="${r.node}" data-parent="${r.parent}" data-depth="${r.depth}" ` +
        `data-self="${r.self}" data-total="${r.total}"${hit ? ' class="match"' : ''}>` +
        `<td class="name" style="padding-left:${8 + r.depth * 14}px"><span class="twisty">${twisty}</span>` +
        `${esc(r.name)}${kind ? `<span class="kind">${kind}</span>` : ''}</td>` +
        `<td title="${fmtInt(r.self)} samples">${fmtUs(r.self * period)}</td><td>${fmtPct(r.self, whole)}</td>` +
        `<td title="${fmtInt(r.total)} samples">${fmtUs(r.total * period)}</td><td>${fmtPct(r.total, whole)}</td>` +
        `<td class="file" title="${esc(file)}">${esc(shortPath(file, 70))}</td></tr>`;
    }).join('');
    const more = all.length > MAX_ROWS || (this.mode === 'tree' && rows.length >= MAX_ROWS)
      ? `<tr class="more"><td colspan="6">Only the first ${fmtInt(MAX_ROWS)} rows are shown: search or collapse to narrow.</td></tr>` : '';
    this.el.innerHTML = `<table>${this.header()}<tbody>${body}${more}</tbody></table>`;
    this.matches = matches;
  }

  onClick(e) {
    const th = e.target.closest('th[data-sort]');
    if (th) {
      this.sortBy(th.dataset.sort);
      return;
    }
    const tr = e.target.closest('tr[data-node]');
    if (!tr || this.mode !== 'tree') return;
    const node = Number(tr.dataset.node);
    if (!this.prof.kids(node).length) return;
    if (this.expanded.has(node)) this.expanded.delete(node);
    else this.expanded.add(node);
    this.render();
  }

  stats() {
    return { rows: this.el.querySelectorAll('tbody tr[data-node]').length, matches: this.matches, sortKey: this.sortKey, sortAsc: this.sortAsc, mode: this.mode };
  }
}
