// meta.js — the header: what was recorded, when, how, and how whole the file is.
import { fmtInt, fmtPct, fmtUs } from './format.js';

export function renderMeta(dl, titleEl, model) {
  const m = model.meta;
  titleEl.textContent = `${m.name || 'trace'} (pid ${m.pid})`;
  document.title = `pytrace: ${m.name || 'trace'} (pid ${m.pid})`;
  const achieved = `${m.achieved_hz.toFixed(1)} Hz achieved${m.achieved_estimated ? ' (estimated)' : ''}`;
  const missed = m.missed == null ? '' : `, ${fmtInt(m.missed)} rounds missed`;
  const tags = Object.entries(m.tags || {}).map(([k, v]) => `${k}=${v}`).join(', ');
  const items = [
    ['Target', `${m.name} (pid ${m.pid})`],
    ['Python', `${m.python_version} ${m.python_binary ? `(${m.python_binary})` : ''}`],
    ['Command', m.cmdline],
    ['Host', m.host],
    ['Start', m.start],
    ['Duration', fmtUs(m.duration_s * 1e6)],
    ['Rate', `${m.rate_hz} Hz asked, ${achieved}${missed}`],
    ['Samples', fmtInt(m.samples)],
    ['Errors', `${fmtInt(m.errors)} (${fmtPct(m.errors, m.samples)} torn reads)`],
    ['Truncated', m.truncated ? `yes: the file ends after ${fmtInt(m.valid_bytes)} bytes` : 'no', m.truncated],
    ['Threads', fmtInt(model.threads.length)],
    ['Recorded by', `pytrace ${m.pytrace_version}`],
  ];
  if (tags) items.push(['Tags', tags]);
  if (m.filters) items.push(['Filters', m.filters]);
  if (model.treePruned) items.push(['Pruned', `${fmtInt(model.treePruned)} small call paths shown as [small frames]`]);
  dl.replaceChildren(...items.map(([k, v, warn]) => {
    const div = document.createElement('div');
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = k;
    dd.textContent = v;
    dd.title = v;
    if (warn) dd.className = 'warn';
    div.append(dt, dd);
    return div;
  }));
}
