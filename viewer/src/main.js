// main.js — the viewer's entry point: reads the trace `pytrace view` embedded in the page, builds
// the timeline, flame graph and call tree, and wires the toolbar (search, thread, hide toggles,
// theme) to all three. Sets window.__pytraceReady once everything is drawn; window.__pytrace
// exposes the views to scripts and tests.
import { CallTree } from './calltree.js';
import { Palette } from './colors.js';
import { buildProfile, layoutSpans, loadModel } from './data.js';
import { FlameGraph } from './flame.js';
import { fmtInt, fmtUs } from './format.js';
import { renderMeta } from './meta.js';
import { matchFunctions } from './search.js';
import { Timeline } from './timeline.js';
import { Tooltip } from './tooltip.js';

const $ = (id) => document.getElementById(id);

function spanNote(model) {
  if (!model.spanTotal) return 'No calls (spans) were recorded in this trace: the timeline shows thread activity only.';
  if (model.spanKept >= model.spanTotal) return '';
  return `Showing the ${fmtInt(model.spanKept)} longest of ${fmtInt(model.spanTotal)} calls: the ` +
    `${fmtInt(model.spanTotal - model.spanKept)} shorter ones (each ${fmtUs(model.spanMinUs)} or less) ` +
    'are left out to keep the page fast. The flame graph and call tree still count every sample.';
}

function fillThreads(select, model) {
  const opts = [['0', `All threads (${fmtInt(model.meta.samples)} samples)`]];
  for (const t of model.threads) {
    if (t.samples) opts.push([String(t.id), `${t.name || '?'} (tid ${t.tid}, ${fmtInt(t.samples)} samples)`]);
  }
  select.replaceChildren(...opts.map(([v, text]) => {
    const o = document.createElement('option');
    o.value = v;
    o.textContent = text;
    return o;
  }));
}

function setTheme(dark, palette, redraw) {
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  const b = $('theme');
  b.textContent = dark ? 'Light theme' : 'Dark theme';
  b.setAttribute('aria-pressed', String(dark));
  palette.refresh();
  redraw();
}

// Milliseconds spent in each start-up phase, for window.__pytraceTimings.
const timings = {};
function timed(name, fn) {
  const t0 = performance.now();
  const r = fn();
  timings[name] = Math.round(performance.now() - t0);
  return r;
}

function start() {
  timings.beforeScript = Math.round(performance.now());
  const doc = timed('parse', () => JSON.parse($('pytrace-data').textContent));
  const model = timed('model', () => loadModel(doc));
  const palette = new Palette(model);
  const tooltip = new Tooltip($('tooltip'));
  const timeline = new Timeline($('timeline'), model, palette, tooltip);
  const flame = new FlameGraph($('flame'), model, palette, tooltip);
  const calltree = new CallTree($('calltree'), model);
  const state = { thread: 0, hideIdle: false, hideStdlib: false, hideSite: false, query: '' };

  renderMeta($('meta'), $('title'), model);
  fillThreads($('thread'), model);
  const note = spanNote(model);
  $('timeline-note').textContent = note;
  $('timeline-note').hidden = !note;

  const rootLabel = () => (state.thread ? `${model.threadName.get(state.thread)} (all samples)` : 'all threads');
  const refilter = () => {
    timed('layout', () => layoutSpans(model, state));
    const prof = timed('profile', () => buildProfile(model, state));
    timed('flame', () => flame.setProfile(prof, rootLabel()));
    timed('calltree', () => calltree.setProfile(prof, rootLabel()));
    timed('timeline', () => timeline.setFilter({ ...state }));
  };
  const research = () => {
    const search = matchFunctions(model, state.query);
    $('search-count').textContent = search ? `${fmtInt(search.count)} matching function${search.count === 1 ? '' : 's'}` : '';
    flame.setSearch(search);
    timeline.setSearch(search);
    calltree.setSearch(search);
  };
  const redraw = () => {
    flame.render();
    timeline.render();
  };

  let searchTimer = 0;
  $('search').addEventListener('input', (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.query = e.target.value;
      research();
    }, 120);
  });
  $('thread').addEventListener('change', (e) => {
    state.thread = Number(e.target.value);
    refilter();
  });
  for (const [id, key] of [['hide-stdlib', 'hideStdlib'], ['hide-site', 'hideSite'], ['hide-idle', 'hideIdle']]) {
    $(id).addEventListener('change', (e) => {
      state[key] = e.target.checked;
      refilter();
    });
  }
  $('theme').addEventListener('click', () => setTheme(document.documentElement.dataset.theme !== 'dark', palette, redraw));
  $('flame-reset').addEventListener('click', () => flame.zoomTo(0));
  $('timeline-reset').addEventListener('click', () => timeline.reset());
  for (const radio of document.querySelectorAll('input[name="tree-mode"]')) {
    radio.addEventListener('change', (e) => calltree.setMode(e.target.value));
  }
  let resizeFrame = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(redraw);
  });

  const dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  setTheme(dark, palette, () => {});
  refilter();
  window.__pytrace = { model, state, flame, timeline, calltree, refilter, research };
  window.__pytraceTimings = timings;
  window.__pytraceReadyMs = performance.now();
  window.__pytraceReady = true;
}

try {
  start();
} catch (err) {
  const p = document.createElement('p');
  p.className = 'note';
  p.textContent = `This page could not show the trace: ${err.message}`;
  document.body.prepend(p);
  throw err;
}
