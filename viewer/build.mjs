// build.mjs — bundles the viewer (src/) into one HTML page template, run by meson (see the
// viewer block of meson.build): installs the npm packages of package-lock.json when they are
// missing or stale, bundles src/main.js and src/style.css with esbuild and inlines both into
// src/index.html, whose "@@PYTRACE_DATA@@" placeholder `pytrace view` fills with the trace.
// If `npm ci` fails (no registry), it warns and writes an empty template: the C build still
// passes and `pytrace view` says what to do.
//
// usage: node build.mjs --out FILE [--npm NPM] [--depfile FILE]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STAMP = path.join(HERE, 'node_modules', '.pytrace-stamp');
const LOCK_DIR = path.join(HERE, '.npm-ci.lock');
const PLACEHOLDER = '@@PYTRACE_DATA@@';

function parseArgs(argv) {
  const args = { npm: 'npm', out: null, depfile: null };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args) || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    args[key] = argv[i + 1];
  }
  if (!args.out) throw new Error('--out FILE is required');
  return args;
}

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// What the installed node_modules must match: the manifest and its lock.
function wantedStamp() {
  const h = createHash('sha256');
  for (const f of ['package.json', 'package-lock.json']) h.update(fs.readFileSync(path.join(HERE, f)));
  return h.digest('hex');
}

function modulesFresh(stamp) {
  try {
    return fs.readFileSync(STAMP, 'utf8') === stamp;
  } catch {
    return false;
  }
}

// Several build directories may build the viewer at once: one `npm ci` at a time.
function withLock(fn) {
  for (let waited = 0; ; waited += 500) {
    try {
      fs.mkdirSync(LOCK_DIR);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const age = Date.now() - fs.statSync(LOCK_DIR, { throwIfNoEntry: false })?.mtimeMs;
      if (age > 10 * 60 * 1000) fs.rmSync(LOCK_DIR, { recursive: true, force: true });
      sleepMs(500);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

function ensureModules(npm) {
  const stamp = wantedStamp();
  if (modulesFresh(stamp)) return true;
  return withLock(() => {
    if (modulesFresh(stamp)) return true;
    process.stderr.write('viewer: installing npm packages (npm ci in viewer/)\n');
    const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: HERE, stdio: ['ignore', 2, 2],
    });
    if (r.status !== 0) return false;
    fs.writeFileSync(STAMP, stamp);
    return true;
  });
}

function writeAtomic(file, text) {
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function writeDepfile(depfile, out, deps) {
  if (!depfile) return;
  const esc = (p) => p.replace(/([ #$\\])/g, '\\$1');
  writeAtomic(depfile, `${esc(out)}: ${deps.map(esc).join(' ')}\n`);
}

function bundle() {
  const esbuild = createRequire(path.join(HERE, 'package.json'))('esbuild');
  const js = esbuild.buildSync({
    absWorkingDir: HERE, entryPoints: ['src/main.js'], bundle: true, minify: true,
    format: 'iife', target: ['es2020'], write: false, metafile: true, legalComments: 'none',
    charset: 'utf8',
  });
  const css = esbuild.transformSync(fs.readFileSync(path.join(HERE, 'src/style.css'), 'utf8'),
    { loader: 'css', minify: true });
  const code = js.outputFiles[0].text;
  if (/<\/script/i.test(code) || /<\/style/i.test(css.code) || code.includes(PLACEHOLDER))
    throw new Error('the bundled code would end its <script>/<style> element early');
  const template = fs.readFileSync(path.join(HERE, 'src/index.html'), 'utf8');
  const html = template
    .replace('<!--PYTRACE_STYLE-->', () => `<style>${css.code}</style>`)
    .replace('<!--PYTRACE_SCRIPT-->', () => `<script>${code}</script>`);
  if (html.split(PLACEHOLDER).length !== 2)
    throw new Error(`src/index.html must hold ${PLACEHOLDER} exactly once`);
  const inputs = Object.keys(js.metafile.inputs).map((p) => path.join(HERE, p));
  return { html, inputs: [...inputs, path.join(HERE, 'src/style.css'), path.join(HERE, 'src/index.html')] };
}

const args = parseArgs(process.argv.slice(2));
const out = path.resolve(args.out);
const always = ['build.mjs', 'package.json', 'package-lock.json'].map((f) => path.join(HERE, f));
if (!ensureModules(args.npm)) {
  process.stderr.write('viewer: WARNING: `npm ci` failed in viewer/: the HTML viewer is not built; ' +
    '`pytrace view` will say so. Run `npm ci` in viewer/, then ninja again.\n');
  writeAtomic(out, '');
  // the stamp is missing, so ninja retries on the next build
  writeDepfile(args.depfile, out, [...always, STAMP]);
} else {
  const { html, inputs } = bundle();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeAtomic(out, html);
  writeDepfile(args.depfile, out, [...always, STAMP, ...inputs]);
}
