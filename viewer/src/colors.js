// colors.js — frame colours shared by the timeline and the flame graph: the hue tells the kind
// of code (yours warm, stdlib blue, site-packages green), a hash of the name varies it so
// neighbours differ; the theme's CSS variables set lightness and the match/dim colours.
import { KIND_PRUNED, KIND_SITE, KIND_STDLIB } from './data.js';

function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

export class Palette {
  constructor(model) {
    this.model = model;
    this.refresh();
  }

  // Re-read the theme (after the dark/light toggle).
  refresh() {
    const css = getComputedStyle(document.documentElement);
    const v = (name) => css.getPropertyValue(name).trim();
    this.light = v('--frame-light') || '72%';
    this.text = v('--frame-text');
    this.match = v('--match');
    this.dim = v('--dim');
    this.fg = v('--fg');
    this.muted = v('--muted');
    this.axis = v('--axis');
    this.bg = v('--bg');
    this.border = v('--border');
    this.idle = v('--idle');
    this.running = v('--running');
    this.accent = v('--accent');
    this.cache = new Map();
  }

  frame(fn) {
    let c = this.cache.get(fn);
    if (c) return c;
    const h = hash(this.model.fnQual[fn] || '');
    const kind = this.model.fnKind[fn];
    let hue;
    let sat = 70;
    if (kind === KIND_STDLIB) hue = 200 + (h % 40);
    else if (kind === KIND_SITE) hue = 95 + (h % 50);
    else if (kind === KIND_PRUNED) [hue, sat] = [0, 0];
    else hue = 5 + (h % 45);
    c = `hsl(${hue} ${sat}% ${this.light})`;
    this.cache.set(fn, c);
    return c;
  }

  // The fill of a frame given the search state: matches stand out, the rest fade.
  fill(fn, search) {
    if (!search) return this.frame(fn);
    return search.hit[fn] ? this.match : this.dim;
  }
}
