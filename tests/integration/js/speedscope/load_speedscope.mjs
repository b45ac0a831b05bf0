// load_speedscope.mjs — opens a speedscope file in the speedscope app itself (the build the npm
// package ships in dist/release), in Debian's headless Chromium driven by playwright-core, and
// reports what a person would see. Used by tests/integration/test_export_pprof_speedscope.py.
//
// usage: node load_speedscope.mjs APP_URL FILE EXPECT_TEXT [SCREENSHOT.png]
//   APP_URL      index.html#profileURL=... as served by the test
//   FILE         the same file on disk: checked against the schema the package ships first
//   EXPECT_TEXT  text that must appear once the profile is shown (a profile's name)
//   SCREENSHOT   where to save what the page showed (for a person reading a failure)
// Prints one JSON line {schemaErrors, pageErrors, consoleErrors, failedRequests, shown, text}
// and exits 0 whenever it could run the browser (the test judges); 2 on a usage or launch error.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const schemaPath = path.join(here, 'node_modules', 'speedscope', 'dist', 'release',
  'file-format-schema.json');

// The subset of JSON Schema draft-07 the speedscope schema uses: $ref, type, required,
// properties, additionalProperties, items, anyOf, const, enum.
function validate(schema, root, value, where, errors) {
  if (schema.$ref) {
    const name = schema.$ref.replace('#/definitions/', '');
    return validate(root.definitions[name], root, value, where, errors);
  }
  if (schema.anyOf) {
    const ok = schema.anyOf.some((s) => {
      const sub = [];
      validate(s, root, value, where, sub);
      return sub.length === 0;
    });
    if (!ok) errors.push(`${where}: matches none of anyOf`);
    return;
  }
  const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  if (schema.type && schema.type !== type && !(schema.type === 'integer' && type === 'number'))
    errors.push(`${where}: ${type}, expected ${schema.type}`);
  if ('const' in schema && value !== schema.const) errors.push(`${where}: not ${schema.const}`);
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${where}: ${value} not in enum`);
  if (type === 'object') {
    for (const key of schema.required || [])
      if (!(key in value)) errors.push(`${where}: missing ${key}`);
    for (const [key, v] of Object.entries(value)) {
      if (schema.properties && key in schema.properties)
        validate(schema.properties[key], root, v, `${where}.${key}`, errors);
      else if (schema.properties && schema.additionalProperties === false)
        errors.push(`${where}: unexpected ${key}`);
    }
  }
  if (type === 'array' && schema.items)
    value.forEach((v, i) => validate(schema.items, root, v, `${where}[${i}]`, errors));
}

async function main() {
  const [appUrl, file, expectText, screenshot] = process.argv.slice(2);
  if (!appUrl || !file || !expectText) {
    console.error('usage: node load_speedscope.mjs APP_URL FILE EXPECT_TEXT');
    return 2;
  }
  const schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));
  const schemaErrors = [];
  validate(schema, schema, JSON.parse(fs.readFileSync(file, 'utf8')), '$', schemaErrors);

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pytrace-speedscope-chromium-'));
  let context;
  try {
    // playwright passes --headless and the fresh --user-data-dir itself; the rest keeps Chromium
    // off the network (this machine's is closed) and quiet.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    console.error(`cannot launch /usr/bin/chromium: ${e.message}`);
    fs.rmSync(userDataDir, { recursive: true, force: true });
    return 2;
  }
  const pageErrors = [], consoleErrors = [], failedRequests = [];
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('requestfailed', (r) => failedRequests.push(r.url()));
    await page.goto(appUrl, { waitUntil: 'load' });
    // speedscope fetches profileURL itself; it either shows the profile or says it failed.
    const shown = await page.waitForFunction((want) => {
      const text = document.body ? document.body.innerText : '';
      if (text.includes(want)) return 'shown';
      if (/Something went wrong|Unrecognized format|failed to import/i.test(text)) return 'error';
      return false;
    }, expectText, { timeout: 60000 }).then((h) => h.jsonValue(), () => 'timeout');
    const text = await page.evaluate(() => document.body.innerText);
    if (screenshot) await page.screenshot({ path: screenshot });
    const title = await page.title();
    console.log(JSON.stringify({ schemaErrors: schemaErrors.slice(0, 20), pageErrors,
      consoleErrors, failedRequests, shown, title, text: text.slice(0, 2000) }));
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  return 0;
}

process.exitCode = await main();
