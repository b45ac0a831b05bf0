// timeline.js — one lane group per thread: an activity strip (running vs idle samples over time)
// above the calls as nested bars, then the counters (CPU per thread, RSS per process). One canvas
// the size of the visible box, redrawn on scroll, so thousands of threads cost no DOM. Wheel or
// pinch zooms around the pointer, dragging pans (and scrolls vertically).
import { IDLE_SPAN_PCT } from './data.js';
import { fmtBytes, fmtUs, shortPath } from './format.js';

const AXIS_H = 22;
const LABEL_W = 160;
const LANE = 16;
const HEAD = 12;
const GAP = 6;
const COUNTER_H = 34;
const KIND_CPU_USER = 1;
const KIND_CPU_SYS = 2;
const KIND_RSS = 3;

// A tick step of 1, 2 or 5 times a power of ten giving about `target` ticks.
function niceStep(range, target) {
  const raw = range / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
}

// Cumulative CPU nanoseconds at times (µs) -> share of one core between successive points.
function cpuShare(points) {
  const out = [];
  for (let i = 2; i < points.length; i += 2) {
    const dt = points[i] - points[i - 2];
    if (dt <= 0) continue;
    out.push(points[i - 2], points[i], Math.max(0, (points[i + 1] - points[i - 1]) / (dt * 1000)));
  }
  return out;
}

// A span's recorded variables for the tooltip: the first 12 lines, each cut at 100 characters.
function localsText(text) {
  if (!text) return '';
  const lines = text.split('\n');
  const shown = lines.slice(0, 12).map((l) => (l.length > 100 ? l.slice(0, 99) + '\u2026' : l));
  if (lines.length > 12) shown.push(`\u2026 ${lines.length - 12} more`);
  return '\n' + shown.join('\n');
}

export class Timeline {
  constructor(el, model, palette, tooltip) {
    this.el = el;
    this.model = model;
    this.palette = palette;
    this.tooltip = tooltip;
    this.filter = {};
    this.search = null;
    this.start = 0;
    this.end = model.durationUs;
    this.scroller = document.createElement('div');
    this.scroller.className = 'tl-scroll';
    this.canvas = document.createElement('canvas');
    this.spacer = document.createElement('div');
    this.scroller.append(this.canvas, this.spacer);
    el.appendChild(this.scroller);
    this.ctx = this.canvas.getContext('2d');
    this.counterLanes = this.buildCounterLanes();
    this.activity = new Map(model.activity.threads.map((a) => [a.thread, a]));
    // the main thread usually has the lowest tid: show threads in the order they started
    this.threadOrder = [...model.threads].sort((a, b) => a.tid - b.tid || a.id - b.id);
    this.pointers = new Map();
    this.pending = false;
    this.bindEvents();
  }

  buildCounterLanes() {
    const m = this.model;
    const cpu = new Map();
    const lanes = [];
    for (const s of m.counters) {
      if (s.kind === KIND_RSS) {
        const p = m.processes.find((x) => x.id === s.owner);
        lanes.push({ label: `RSS pid ${p ? p.pid : s.owner}`, kind: KIND_RSS, lines: [s.points], fmt: fmtBytes });
      } else if (s.kind === KIND_CPU_USER || s.kind === KIND_CPU_SYS) {
        let lane = cpu.get(s.owner);
        if (!lane) {
          lane = { label: `CPU ${m.threadName.get(s.owner) || s.owner}`, kind: KIND_CPU_USER, thread: s.owner,
            lines: [], fmt: (v) => `${(v * 100).toFixed(0)}%`, step: true };
          cpu.set(s.owner, lane);
          lanes.push(lane);
        }
        lane.lines[s.kind === KIND_CPU_USER ? 0 : 1] = cpuShare(s.points);
      }
    }
    return lanes;
  }

  setFilter(filter) {
    this.filter = filter;
    this.render();
  }

  setSearch(search) {
    this.search = search;
    this.render();
  }

  reset() {
    this.start = 0;
    this.end = this.model.durationUs;
    this.render();
  }

  // The lane groups shown, top to bottom, with their offsets in the scrolled content.
  rows() {
    const out = [];
    let y = 0;
    const th = this.filter.thread;
    const spansOf = new Map(this.model.spans.map((s) => [s.thread, s]));
    for (const t of this.threadOrder) {
      if (th && t.id !== th) continue;
      const spans = spansOf.get(t.id);
      if (!spans && !this.activity.has(t.id)) continue;
      const depth = spans ? spans.visMaxDepth + 1 : 0;
      const h = HEAD + depth * LANE + GAP;
      out.push({ type: 'thread', thread: t, spans, act: this.activity.get(t.id), top: y, height: h });
      y += h;
    }
    for (const lane of this.counterLanes) {
      if (th && lane.thread && lane.thread !== th) continue;
      out.push({ type: 'counter', lane, top: y, height: COUNTER_H });
      y += COUNTER_H;
    }
    return { rows: out, height: y };
  }

  scheduleRender() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const { rows, height } = this.rows();
    this.layoutRows = rows;
    const width = Math.max(300, this.el.clientWidth - 2);
    const viewH = Math.min(height + AXIS_H, Math.max(260, Math.round(window.innerHeight * 0.6)));
    this.scroller.style.height = `${viewH + 2}px`;
    this.spacer.style.height = `${Math.max(0, height + AXIS_H - viewH)}px`;
    const dpr = window.devicePixelRatio || 1;
    const cv = this.canvas;
    if (cv.width !== Math.round(width * dpr) || cv.height !== Math.round(viewH * dpr)) {
      cv.width = Math.round(width * dpr);
      cv.height = Math.round(viewH * dpr);
      cv.style.width = `${width}px`;
      cv.style.height = `${viewH}px`;
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = this.palette.bg;
    ctx.fillRect(0, 0, width, viewH);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    this.width = width;
    this.viewH = viewH;
    this.scale = (width - LABEL_W) / (this.end - this.start);
    const scroll = this.scroller.scrollTop;
    this.drawn = 0;
    this.highlighted = 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, AXIS_H, width, viewH - AXIS_H);
    ctx.clip();
    for (const r of rows) {
      const top = AXIS_H + r.top - scroll;
      if (top > viewH || top + r.height < AXIS_H) continue;
      if (r.type === 'thread') this.drawThread(r, top);
      else this.drawCounter(r, top);
    }
    ctx.restore();
    this.drawAxis();
  }

  x(us) {
    return LABEL_W + (us - this.start) * this.scale;
  }

  drawThread(r, top) {
    const ctx = this.ctx;
    const pal = this.palette;
    ctx.fillStyle = pal.fg;
    ctx.fillText(r.thread.name || `tid ${r.thread.tid}`, 6, top + HEAD / 2 + 1, LABEL_W - 12);
    if (r.act) this.drawActivity(r.act, top + 2, HEAD - 4);
    ctx.strokeStyle = pal.border;
    ctx.beginPath();
    ctx.moveTo(0, top + r.height - 0.5);
    ctx.lineTo(this.width, top + r.height - 0.5);
    ctx.stroke();
    if (r.spans) this.drawSpans(r.spans, top + HEAD);
  }

  drawActivity(act, y, h) {
    const ctx = this.ctx;
    const bw = this.model.activity.bucket_us;
    const first = Math.max(0, Math.floor(this.start / bw));
    const last = Math.min(act.running.length - 1, Math.floor(this.end / bw));
    for (let b = first; b <= last; b++) {
      const run = act.running[b];
      const idle = this.filter.hideIdle ? 0 : act.idle[b];
      if (!run && !idle) continue;
      const x0 = Math.max(LABEL_W, this.x(b * bw));
      const x1 = Math.min(this.width, this.x((b + 1) * bw));
      ctx.fillStyle = run >= idle ? this.palette.running : this.palette.idle;
      ctx.fillRect(x0, y, Math.max(1, x1 - x0), h);
    }
  }

  drawSpans(s, top) {
    const ctx = this.ctx;
    const pal = this.palette;
    const search = this.search;
    const hideIdle = this.filter.hideIdle;
    const lastX = new Float64Array(s.visMaxDepth + 1).fill(-Infinity);
    const lastHit = new Uint8Array(s.visMaxDepth + 1);
    const right = this.width;
    for (let i = 0; i < s.n; i++) {
      if (s.begin[i] > this.end) break; // sorted by begin
      const d = s.vdepth[i];
      if (d < 0 || s.end[i] < this.start || (hideIdle && s.idle[i] >= IDLE_SPAN_PCT)) continue;
      const y = top + d * LANE;
      if (y > this.viewH || y + LANE < AXIS_H) continue;
      const fn = s.fn[i];
      const hit = search ? search.hit[fn] : 0;
      const x0 = Math.max(LABEL_W, this.x(s.begin[i]));
      let x1 = Math.min(right, this.x(s.end[i]));
      if (x1 - x0 < 1) {
        if (x0 < lastX[d] + 1 && (lastHit[d] || !hit)) continue; // this pixel is drawn already
        x1 = x0 + 1;
      }
      lastX[d] = x1;
      lastHit[d] = hit;
      ctx.fillStyle = pal.fill(fn, search);
      ctx.fillRect(x0, y, x1 - x0, LANE - 1);
      this.drawn++;
      this.highlighted += hit;
      if (x1 - x0 > 40) {
        const label = this.model.fnQual[fn];
        const chars = Math.floor((x1 - x0 - 8) / 6.2);
        ctx.fillStyle = hit ? '#fff' : pal.text;
        ctx.fillText(label.length > chars ? `${label.slice(0, Math.max(1, chars - 1))}…` : label,
          x0 + 4, y + LANE / 2);
      }
    }
  }

  drawCounter(r, top) {
    const ctx = this.ctx;
    const pal = this.palette;
    const lane = r.lane;
    ctx.fillStyle = pal.muted;
    ctx.fillText(lane.label, 6, top + COUNTER_H / 2, LABEL_W - 12);
    let max = 0;
    for (const pts of lane.lines) {
      if (!pts) continue;
      const stride = lane.step ? 3 : 2;
      for (let i = stride - 1; i < pts.length; i += stride) max = Math.max(max, pts[i]);
    }
    if (lane.kind === KIND_CPU_USER) max = Math.max(max, 1);
    if (!max) return;
    const y0 = top + COUNTER_H - 4;
    const h = COUNTER_H - 10;
    lane.lines.forEach((pts, k) => {
      if (!pts) return;
      ctx.strokeStyle = k ? pal.muted : pal.accent;
      ctx.beginPath();
      if (lane.step) {
        for (let i = 0; i < pts.length; i += 3) {
          const y = y0 - (pts[i + 2] / max) * h;
          ctx.moveTo(Math.max(LABEL_W, this.x(pts[i])), y);
          ctx.lineTo(Math.min(this.width, this.x(pts[i + 1])), y);
        }
      } else {
        for (let i = 0; i < pts.length; i += 2) {
          const x = Math.min(this.width, Math.max(LABEL_W, this.x(pts[i])));
          const y = y0 - (pts[i + 1] / max) * h;
          if (i) ctx.lineTo(x, y);
          else ctx.moveTo(x, y);
        }
      }
      ctx.stroke();
    });
    ctx.fillStyle = pal.muted;
    ctx.fillText(`max ${lane.fmt(max)}`, LABEL_W - 70, top + 8, 64);
  }

  drawAxis() {
    const ctx = this.ctx;
    const pal = this.palette;
    ctx.fillStyle = pal.bg;
    ctx.fillRect(0, 0, this.width, AXIS_H);
    ctx.strokeStyle = pal.axis;
    ctx.fillStyle = pal.muted;
    const range = this.end - this.start;
    const step = niceStep(range, Math.max(2, (this.width - LABEL_W) / 110));
    ctx.beginPath();
    for (let t = Math.ceil(this.start / step) * step; t <= this.end; t += step) {
      const x = Math.round(this.x(t)) + 0.5;
      ctx.moveTo(x, AXIS_H - 6);
      ctx.lineTo(x, AXIS_H);
      ctx.fillText(fmtUs(t), x + 3, AXIS_H / 2 - 1);
    }
    ctx.moveTo(LABEL_W, AXIS_H - 0.5);
    ctx.lineTo(this.width, AXIS_H - 0.5);
    ctx.stroke();
    ctx.fillText(`${fmtUs(range)} shown`, 6, AXIS_H / 2 - 1);
  }

  // ---- interaction ------------------------------------------------------------------------

  zoomAt(px, factor) {
    const dur = this.model.durationUs;
    const t = this.start + (Math.max(px, LABEL_W) - LABEL_W) / this.scale;
    const range = Math.min(dur, Math.max(10, (this.end - this.start) * factor));
    let start = t - (t - this.start) * (range / (this.end - this.start));
    start = Math.min(Math.max(0, start), dur - range);
    this.start = start;
    this.end = start + range;
    this.scheduleRender();
  }

  panBy(dx) {
    const dur = this.model.durationUs;
    const range = this.end - this.start;
    const start = Math.min(Math.max(0, this.start - dx / this.scale), dur - range);
    this.start = start;
    this.end = start + range;
    this.scheduleRender();
  }

  bindEvents() {
    const cv = this.canvas;
    const localX = (e) => e.clientX - cv.getBoundingClientRect().left;
    cv.addEventListener('wheel', (e) => {
      e.preventDefault();
      if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) this.panBy(-(e.deltaX || e.deltaY));
      else this.zoomAt(localX(e), Math.exp(e.deltaY * (e.ctrlKey ? 0.01 : 0.002)));
    }, { passive: false });
    cv.addEventListener('pointerdown', (e) => {
      cv.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      cv.classList.add('dragging');
      this.tooltip.hide();
    });
    const up = (e) => {
      this.pointers.delete(e.pointerId);
      if (!this.pointers.size) cv.classList.remove('dragging');
    };
    cv.addEventListener('pointerup', up);
    cv.addEventListener('pointercancel', up);
    cv.addEventListener('pointermove', (e) => {
      const prev = this.pointers.get(e.pointerId);
      if (!prev) {
        this.hover(e);
        return;
      }
      if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.entries()];
        const other = a[0] === e.pointerId ? b[1] : a[1];
        const before = Math.abs(prev.x - other.x);
        const after = Math.abs(e.clientX - other.x);
        if (before > 10 && after > 10) this.zoomAt((e.clientX + other.x) / 2 - cv.getBoundingClientRect().left, before / after);
      } else {
        this.panBy(e.clientX - prev.x);
        this.scroller.scrollTop -= e.clientY - prev.y;
      }
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    });
    cv.addEventListener('mouseleave', () => this.tooltip.hide());
    this.scroller.addEventListener('scroll', () => this.scheduleRender());
  }

  // The span under the pointer, shown in the tooltip (with its variables, --locals).
  hover(e) {
    const box = this.canvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    const y = e.clientY - box.top - AXIS_H + this.scroller.scrollTop;
    const row = (this.layoutRows || []).find((r) => y >= r.top && y < r.top + r.height);
    if (!row || row.type !== 'thread' || !row.spans || x < LABEL_W) {
      this.tooltip.hide();
      return;
    }
    const d = Math.floor((y - row.top - HEAD) / LANE);
    const t = this.start + (x - LABEL_W) / this.scale;
    const slack = 1 / this.scale;
    const s = row.spans;
    let found = -1;
    for (let i = 0; i < s.n && s.begin[i] <= t + slack; i++) {
      if (s.vdepth[i] === d && s.end[i] >= t - slack &&
          !(this.filter.hideIdle && s.idle[i] >= IDLE_SPAN_PCT)) found = i;
    }
    if (found < 0) {
      this.tooltip.hide();
      return;
    }
    const m = this.model;
    const fn = s.fn[found];
    this.tooltip.show(e, `${m.fnQual[fn]}\n${shortPath(m.fnFile[fn], 80)}:${m.fnLine[fn]}\n` +
      `${fmtUs(s.end[found] - s.begin[found])} from ${fmtUs(s.begin[found])} (${row.thread.name})\n` +
      `idle ${s.idle[found]}% of its samples` + localsText(s.locals[found]));
  }

  stats() {
    return { drawn: this.drawn, highlighted: this.highlighted, start: this.start, end: this.end };
  }
}
