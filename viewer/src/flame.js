// flame.js — the flame graph of the aggregated samples, drawn on a canvas root-first from the
// top (an icicle), children widest first. Clicking a frame zooms so it fills the width (its
// callers stay above it, full width); clicking one of those, or the root, zooms back out.
import { fmtInt, fmtPct, fmtUs } from './format.js';

const ROW = 18;
const MIN_W = 0.35; // narrower frames (and their callees) are not drawn

export class FlameGraph {
  constructor(el, model, palette, tooltip) {
    this.el = el;
    this.model = model;
    this.palette = palette;
    this.tooltip = tooltip;
    this.prof = null;
    this.search = null;
    this.zoom = 0;
    this.zoomPath = [];
    this.rects = [];
    this.canvas = document.createElement('canvas');
    el.appendChild(this.canvas);
    this.ctx = this.canvas.getContext('2d');
    this.canvas.addEventListener('click', (e) => this.onClick(e));
    this.canvas.addEventListener('mousemove', (e) => this.onMove(e));
    this.canvas.addEventListener('mouseleave', () => this.tooltip.hide());
  }

  setProfile(prof, rootLabel) {
    this.prof = prof;
    this.rootLabel = rootLabel;
    // keep the zoom on the same call path when the filter changes, as far as it still exists
    let node = 0;
    for (const fn of this.zoomPath) {
      const next = prof.kids(node).find((c) => prof.fn[c] === fn);
      if (next === undefined) break;
      node = next;
    }
    this.zoom = node;
    this.render();
  }

  setSearch(search) {
    this.search = search;
    this.render();
  }

  zoomTo(node) {
    this.zoom = node;
    this.zoomPath = [];
    for (let n = node; n > 0; n = this.prof.parent[n]) this.zoomPath.unshift(this.prof.fn[n]);
    this.render();
  }

  label(node) {
    if (node === 0) return this.rootLabel;
    return this.model.fnQual[this.prof.fn[node]];
  }

  // Frames laid out for the current zoom: [{node, x, y, w}] in CSS pixels.
  layout(width) {
    const p = this.prof;
    const out = [];
    const chain = [];
    for (let n = this.zoom; n >= 0; n = p.parent[n]) chain.unshift(n);
    chain.forEach((n, i) => out.push({ node: n, x: 0, y: i * ROW, w: width }));
    const whole = p.total[this.zoom];
    if (!whole) return out;
    const scale = width / whole;
    const base = chain.length - 1;
    const walk = (node, x, d) => {
      let cx = x;
      for (const c of p.kids(node)) {
        const w = p.total[c] * scale;
        if (w < MIN_W) break; // sorted widest first
        out.push({ node: c, x: cx, y: (base + d) * ROW, w });
        walk(c, cx, d + 1);
        cx += w;
      }
    };
    walk(this.zoom, 0, 1);
    return out;
  }

  render() {
    if (!this.prof) return;
    const width = Math.max(200, this.el.clientWidth - 2);
    const rects = this.layout(width);
    const height = rects.reduce((h, r) => Math.max(h, r.y + ROW), ROW) + 4;
    const dpr = window.devicePixelRatio || 1;
    const cv = this.canvas;
    cv.width = Math.round(width * dpr);
    cv.height = Math.round(height * dpr);
    cv.style.width = `${width}px`;
    cv.style.height = `${height}px`;
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = this.palette.bg;
    ctx.fillRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    let highlighted = 0;
    for (const r of rects) {
      const fn = r.node ? this.prof.fn[r.node] : 0;
      const hit = this.search && r.node && this.search.hit[fn];
      highlighted += hit ? 1 : 0;
      ctx.fillStyle = r.node ? this.palette.fill(fn, this.search) : this.palette.dim;
      ctx.fillRect(r.x, r.y, Math.max(r.w - 0.5, 0.5), ROW - 1);
      if (r.w > 36) {
        const chars = Math.floor((r.w - 8) / 6.2);
        const text = this.label(r.node);
        ctx.fillStyle = hit ? '#fff' : this.palette.text;
        ctx.fillText(text.length > chars ? `${text.slice(0, Math.max(chars - 1, 1))}…` : text,
          r.x + 4, r.y + ROW / 2);
      }
    }
    this.rects = rects;
    this.highlighted = highlighted;
    this.width = width;
  }

  hit(e) {
    const box = this.canvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    const y = e.clientY - box.top;
    for (let i = this.rects.length - 1; i >= 0; i--) {
      const r = this.rects[i];
      if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + ROW) return r;
    }
    return null;
  }

  onClick(e) {
    const r = this.hit(e);
    if (r) this.zoomTo(r.node);
  }

  onMove(e) {
    const r = this.hit(e);
    if (!r) {
      this.tooltip.hide();
      return;
    }
    const p = this.prof;
    const m = this.model;
    const period = m.meta.period_us;
    const fn = p.fn[r.node];
    const where = r.node ? `\n${m.fnFile[fn]}:${m.fnLine[fn]}` : '';
    this.tooltip.show(e, `${this.label(r.node)}${where}\n` +
      `total ${fmtInt(p.total[r.node])} samples (${fmtUs(p.total[r.node] * period)}, ${fmtPct(p.total[r.node], p.total[0])})\n` +
      `self ${fmtInt(p.self[r.node])} samples (${fmtUs(p.self[r.node] * period)}, ${fmtPct(p.self[r.node], p.total[0])})`);
  }

  // For tests and scripts: the frames drawn, with their labels.
  frames() {
    return this.rects.map((r) => ({
      node: r.node, label: this.label(r.node), x: r.x, y: r.y, w: r.w, h: ROW,
      highlighted: !!(this.search && r.node && this.search.hit[this.prof.fn[r.node]]),
    }));
  }

  stats() {
    return { drawn: this.rects.length, highlighted: this.highlighted, width: this.width, zoom: this.zoom };
  }
}
