// format.js — numbers, times and text for labels and tooltips.

const nf = new Intl.NumberFormat('en-US');

export function fmtInt(n) {
  return nf.format(Math.round(n));
}

// A duration given in microseconds, with a unit that suits it.
export function fmtUs(us) {
  const a = Math.abs(us);
  if (a === 0) return '0';
  if (a >= 60e6) return `${(us / 60e6).toFixed(a >= 600e6 ? 0 : 1)} min`;
  if (a >= 1e6) return `${(us / 1e6).toFixed(a >= 10e6 ? 1 : 2)} s`;
  if (a >= 1e3) return `${(us / 1e3).toFixed(a >= 10e3 ? 1 : 2)} ms`;
  return `${us.toFixed(a >= 10 ? 0 : 1)} µs`;
}

export function fmtPct(part, whole) {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '0.0%';
}

export function fmtBytes(b) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// The last `max` characters of a path, marked as cut.
export function shortPath(p, max = 60) {
  return p.length > max ? `…${p.slice(p.length - max + 1)}` : p;
}
