// check_viewer.mjs — drives a page written by `pytrace view` in Debian's headless Chromium
// (playwright-core, no downloaded browser) and prints one JSON object of what it saw, for
// tests/integration/test_view.py to assert on. The page is opened from file://: it must need
// nothing else.
//
//   node check_viewer.mjs functional --html PAGE --search WORD [--shots DIR]
//       load, search, flame-graph zoom, theme, call-tree sorting, toggles, timeline zoom/pan
//   node check_viewer.mjs load --html PAGE [--expect-function NAME]
//       time from navigation to window.__pytraceReady (and whether function NAME is in the page)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.PYTRACE_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function parseArgs(argv) {
  const out = { cmd: argv[0] };
  for (let i = 1; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}

// A browser with a fresh profile, and a page that records every console error, page error,
// failed request and request that is not for the page itself.
async function open(html) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pytrace-view-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  const seen = { consoleErrors: [], pageErrors: [], failedRequests: [], otherRequests: [] };
  const url = pathToFileURL(path.resolve(html)).href;
  page.on('console', (m) => { if (m.type() === 'error') seen.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  page.on('requestfailed', (r) => seen.failedRequests.push(`${r.url()} ${r.failure()?.errorText}`));
  page.on('request', (r) => {
    if (r.url() !== url && !r.url().startsWith('data:')) seen.otherRequests.push(r.url());
  });
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { page, seen, url, close };
}

async function waitReady(page, url) {
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'load', timeout: 60000 });
  await page.waitForFunction(() => window.__pytraceReady === true, null, { timeout: 60000 });
  return { wallMs: Date.now() - t0, readyMs: await page.evaluate(() => window.__pytraceReadyMs) };
}

const flameFrames = (page) => page.evaluate(() => window.__pytrace.flame.frames());

async function search(page, word) {
  await page.fill('#search', word);
  await page.waitForFunction((w) => window.__pytrace.state.query === w, word);
  return page.evaluate(() => {
    const p = window.__pytrace;
    const frames = p.flame.frames().filter((f) => f.node);
    const rows = [...document.querySelectorAll('#calltree tbody tr[data-node]')];
    const matchRows = rows.filter((r) => r.classList.contains('match'));
    return {
      count: document.getElementById('search-count').textContent,
      flameHighlighted: frames.filter((f) => f.highlighted).map((f) => f.label),
      flameOthers: frames.filter((f) => !f.highlighted).map((f) => f.label),
      timeline: p.timeline.stats(),
      calltreeMatches: matchRows.map((r) => r.querySelector('td.name').textContent),
      calltreeRows: rows.length,
    };
  });
}

// Clicks the widest frame labelled `label` below the root and reads the layout back.
async function flameZoom(page, label) {
  const frames = await flameFrames(page);
  const target = frames.filter((f) => f.node && f.label === label).sort((a, b) => b.w - a.w)[0];
  if (!target) return { error: `no frame labelled ${label}`, labels: frames.map((f) => f.label) };
  const canvas = page.locator('#flame canvas');
  await canvas.click({ position: { x: target.x + Math.min(target.w / 2, 20), y: target.y + target.h / 2 } });
  const after = await flameFrames(page);
  const same = after.find((f) => f.node === target.node);
  const width = (await page.evaluate(() => window.__pytrace.flame.stats())).width;
  await canvas.click({ position: { x: 5, y: 5 } }); // the root frame
  const reset = await page.evaluate(() => window.__pytrace.flame.stats());
  return { before: target, after: same, width, zoomAfterRootClick: reset.zoom };
}

const background = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);

// Rows of the call tree as {node, parent, self, total}.
const treeRows = (page) => page.evaluate(() => [...document.querySelectorAll('#calltree tbody tr[data-node]')]
  .map((r) => ({ node: +r.dataset.node, parent: +r.dataset.parent, self: +r.dataset.self, total: +r.dataset.total })));

async function sortChecks(page) {
  const out = {};
  for (const mode of ['tree', 'flat']) {
    await page.check(`input[name="tree-mode"][value="${mode}"]`);
    for (const key of ['self', 'total']) {
      const header = page.locator(`#calltree th[data-sort="${key}"]`);
      await header.click();
      let state = await page.evaluate(() => window.__pytrace.calltree.stats());
      if (state.sortKey !== key || state.sortAsc) {
        await header.click(); // the second click flips to descending
        state = await page.evaluate(() => window.__pytrace.calltree.stats());
      }
      out[`${mode}_${key}`] = { rows: await treeRows(page), state };
    }
  }
  await page.check('input[name="tree-mode"][value="tree"]');
  return out;
}

async function toggles(page) {
  const profileOf = () => page.evaluate(() => {
    const p = window.__pytrace;
    const prof = p.flame.prof;
    const kinds = new Set();
    for (let i = 1; i < prof.n; i++) if (prof.total[i] > 0) kinds.add(p.model.fnKind[prof.fn[i]]);
    return { total: prof.total[0], kinds: [...kinds] };
  });
  const before = await profileOf();
  await page.check('#hide-stdlib');
  const noStdlib = await profileOf();
  await page.uncheck('#hide-stdlib');
  await page.check('#hide-idle');
  const noIdle = await profileOf();
  await page.uncheck('#hide-idle');
  return { before, noStdlib, noIdle };
}

async function timelineMoves(page) {
  const canvas = page.locator('#timeline canvas');
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  const stats = () => page.evaluate(() => window.__pytrace.timeline.stats());
  const before = await stats();
  await page.mouse.move(box.x + box.width * 0.6, box.y + 60);
  await page.mouse.wheel(0, -600);
  await page.waitForFunction((s) => window.__pytrace.timeline.stats().end - window.__pytrace.timeline.stats().start < s, before.end - before.start);
  const zoomed = await stats();
  await page.mouse.move(box.x + box.width * 0.6, box.y + 60);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.4, box.y + 60, { steps: 5 });
  await page.mouse.up();
  await page.waitForTimeout(50); // one animation frame for the redraw
  const panned = await stats();
  await page.click('#timeline-reset');
  return { before, zoomed, panned };
}

async function functional(a) {
  const { page, seen, url, close } = await open(a.html);
  try {
    const load = await waitReady(page, url);
    const result = { load };
    if (a.shots) {
      fs.mkdirSync(a.shots, { recursive: true });
      await page.locator('#timeline-view').screenshot({ path: path.join(a.shots, 'viewer-timeline.png') });
      await page.locator('#flame-view').screenshot({ path: path.join(a.shots, 'viewer-flamegraph.png') });
      await page.locator('#calltree-view').screenshot({ path: path.join(a.shots, 'viewer-calltree.png') });
    }
    result.meta = await page.evaluate(() => document.getElementById('meta').innerText);
    result.search = await search(page, a.search);
    result.zoom = await flameZoom(page, a.search);
    await search(page, '');
    result.themeBefore = await background(page);
    await page.click('#theme');
    result.themeAfter = await background(page);
    await page.click('#theme');
    result.sort = await sortChecks(page);
    result.toggles = await toggles(page);
    result.timeline = await timelineMoves(page);
    result.seen = seen;
    return result;
  } finally {
    await close();
  }
}

async function load(a) {
  const { page, seen, url, close } = await open(a.html);
  try {
    const timing = await waitReady(page, url);
    const counts = await page.evaluate(() => ({
      spans: window.__pytrace.timeline.stats(), frames: window.__pytrace.flame.frames().length,
      phases: window.__pytraceTimings,
    }));
    const hasFunction = a['expect-function'] === undefined ? null
      : await page.evaluate((name) => window.__pytrace.model.fnName.includes(name), a['expect-function']);
    return { ...timing, counts, hasFunction, seen };
  } finally {
    await close();
  }
}

const a = parseArgs(process.argv.slice(2));
const run = { functional, load }[a.cmd];
if (!run || !a.html) {
  process.stderr.write('usage: check_viewer.mjs functional|load --html PAGE [--search WORD] [--shots DIR]\n');
  process.exit(2);
}
run(a).then((r) => process.stdout.write(`${JSON.stringify(r)}\n`), (e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
