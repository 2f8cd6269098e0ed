#!/usr/bin/env node
// End-to-end test of the web dashboard against real certctl-server processes in headless
// Chromium (Debian's `chromium`, driven by playwright-core).
//
//   node e2e/dashboard.e2e.mjs            (from web/, after `npm run build`)
//
// Environment:
//   CERTCTL_SERVER_BIN  server binary (default ../target/debug/certctl-server, relative to web/)
//   CHROMIUM_PATH       browser (default /usr/bin/chromium)
//   E2E_HEADED=1        show the browser (needs a display)
//
// Part 1 starts a server on an empty SQLite database, visits every page empty, then drives
// the main flows through the UI. Part 3 checks a server with authentication off. Part 4 sends
// the digest through the email notifier plugin to a local SMTP sink. Part 2
// starts a server whose database holds 10,000 certificates and measures the certificates
// page's first render. Screenshots go to
// e2e/out/. Prints "N passed, N failed, N skipped" and exits non-zero on any failure.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_BIN = process.env.CERTCTL_SERVER_BIN ? path.resolve(process.env.CERTCTL_SERVER_BIN) : path.resolve(WEB, '../target/debug/certctl-server');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DIST = path.join(WEB, 'dist');
const OUT = path.join(WEB, 'e2e', 'out');
const FIRST_RENDER_BUDGET_MS = 1000;
// Built connector plugins (plugins/build.sh, run by the Rust test suite). When the nginx one is
// there, server 1 loads it alone, so the target form is generated from its config schema.
const PLUGIN_SRC = process.env.CERTCTL_E2E_PLUGIN ?? path.resolve(WEB, '../target/plugins/dist/nginx');
// The built email notifier plugin: server 4 loads it to send the digest to a local SMTP sink.
const EMAIL_PLUGIN_SRC = process.env.CERTCTL_E2E_EMAIL_PLUGIN ?? path.resolve(WEB, '../target/plugins/dist/email');
const SEED_COUNT = 10_000;

// ---------------------------------------------------------------- reporting

const results = { passed: 0, failed: 0, skipped: 0 };
const failures = [];
const notes = [];
const t0 = Date.now();

function log(msg) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  console.log(`[${s}s] ${msg}`);
}

function skip(name, why) {
  results.skipped++;
  notes.push(`SKIPPED ${name}: ${why}`);
  log(`SKIP  ${name} — ${why}`);
}

let currentPage = null;

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.passed++;
    log(`PASS  ${name} (${Date.now() - started} ms)`);
    return true;
  } catch (e) {
    results.failed++;
    failures.push(`${name}: ${e?.message ?? e}`);
    log(`FAIL  ${name} (${Date.now() - started} ms)\n        ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n        ')}`);
    if (currentPage) {
      const file = path.join(OUT, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
      await currentPage.screenshot({ path: file, fullPage: true }).catch(() => {});
      log(`        screenshot: ${path.relative(WEB, file)}`);
    }
    return false;
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// ---------------------------------------------------------------- server processes

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const started = new Set();
// Whatever happens (a failed step, an exception, Ctrl-C), no server outlives the test.
process.on('exit', () => {
  for (const p of started) if (p.exitCode === null) p.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

class Server {
  constructor(name) {
    this.name = name;
    this.dir = mkdtempSync(path.join(tmpdir(), `certctl-e2e-${name}-`));
    this.key = `e2e-${randomBytes(12).toString('hex')}`;
    this.proc = null;
    /** Extra environment (notification channels, …). */
    this.env = {};
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  get dbPath() {
    return path.join(this.dir, 'certctl.db');
  }

  async start() {
    this.port = await freePort();
    const logFile = createWriteStream(path.join(this.dir, 'server.log'), { flags: 'a' });
    this.proc = spawn(SERVER_BIN, [], {
      env: {
        ...process.env,
        CERTCTL_SERVER_HOST: '127.0.0.1',
        CERTCTL_SERVER_PORT: String(this.port),
        CERTCTL_DATA_DIR: this.dir,
        CERTCTL_DATABASE_URL: '',
        CERTCTL_TLS_MODE: 'off',
        CERTCTL_AUTH_TYPE: this.authNone ? 'none' : 'api-key',
        CERTCTL_ADMIN_API_KEY: this.key,
        CERTCTL_KEYGEN_MODE: 'server',
        CERTCTL_WEB_DIR: DIST,
        CERTCTL_LOG_LEVEL: 'info,sqlx=warn',
        CERTCTL_AUDIT_FLUSH_TIMEOUT_SECONDS: '5',
        CERTCTL_PLUGIN_DIR: this.pluginDir ?? path.join(this.dir, 'plugins'),
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.add(this.proc);
    this.proc.stdout.pipe(logFile);
    this.proc.stderr.pipe(logFile);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) break;
      try {
        const r = await fetch(`${this.base}/ready`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(150);
    }
    const tail = readFileSync(path.join(this.dir, 'server.log'), 'utf8').split('\n').slice(-20).join('\n');
    throw new Error(`server ${this.name} did not become ready (exit ${this.proc.exitCode}):\n${tail}`);
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }

  async api(method, p, body) {
    const r = await fetch(`${this.base}/api/v1${p}`, {
      method,
      headers: { Authorization: `Bearer ${this.key}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    if (!r.ok) throw new Error(`${method} ${p} → ${r.status} ${text.slice(0, 200)}`);
    return json;
  }

  async routes() {
    const doc = await (await fetch(`${this.base}/api/v1/openapi.json`)).json();
    const out = new Set();
    for (const [p, ops] of Object.entries(doc.paths ?? {})) for (const m of Object.keys(ops)) out.add(`${m.toUpperCase()} ${p.replace(/\{[^}]+\}/g, '{}')}`);
    return out;
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- browser helpers

const consoleErrors = [];

function watch(page) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push({ text: msg.text(), url: msg.location()?.url ?? '', at: page.url() });
  });
  page.on('pageerror', (err) => consoleErrors.push({ text: `pageerror: ${err.message}`, url: '', at: page.url() }));
}

function takeErrors() {
  return consoleErrors.splice(0, consoleErrors.length);
}

function assertNoConsoleErrors(where) {
  const errs = takeErrors();
  assert(errs.length === 0, `console errors on ${where}:\n${errs.map((e) => `  ${e.text} ${e.url} (at ${e.at})`).join('\n')}`);
}

async function settle(page) {
  // Spinners gone (queries answered), then a beat for the last render.
  await page.waitForFunction(() => document.querySelectorAll('.loading').length === 0, null, { timeout: 15_000 });
  await page.waitForTimeout(250);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

async function signIn(page, server, { remember = false } = {}) {
  await page.goto(`${server.base}/`);
  await page.locator('#api-key').fill(server.key);
  if (remember) await page.locator('#remember').check();
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
}

async function h1(page, text) {
  await page.locator('main h1').filter({ hasText: text }).first().waitFor({ timeout: 15_000 });
}

const PAGES = [
  ['overview', '/', 'Overview'],
  ['certificates', '/certificates', 'Certificates'],
  ['certificate-new', '/certificates/new', 'New certificate'],
  ['jobs', '/jobs', 'Jobs'],
  ['agents', '/agents', 'Agents'],
  ['targets', '/targets', 'Targets'],
  ['notifications', '/notifications', 'Notifications'],
  ['digest', '/digest', 'Digest'],
  ['audit', '/audit', 'Audit log'],
  ['audit-api-calls', '/audit?tab=api-calls', 'Audit log'],
  ['issuers', '/issuers', 'Issuers'],
  ['profiles', '/profiles', 'Profiles'],
  ['policies', '/policies', 'Policies'],
  ['policy-violations', '/policies?tab=violations', 'Policy violations'],
  ['renewal-policies', '/renewal-policies', 'Renewal policies'],
  ['teams', '/teams', 'Teams'],
  ['owners', '/owners', 'Owners'],
  ['plugins', '/plugins', 'Plugins'],
  ['not-found', '/no-such-page', 'Page not found'],
];

/** Empty-state text each list page shows on an empty database. */
const EMPTY_TEXT = {
  overview: 'No certificates yet',
  certificates: 'No certificates yet',
  jobs: 'No jobs yet',
  agents: 'No agents registered',
  targets: 'No targets yet',
  notifications: 'No notifications',
  profiles: 'No profiles yet',
  policies: 'No policies yet',
  'policy-violations': 'No violations',
  'renewal-policies': 'No renewal policies yet',
  teams: 'No teams yet',
  owners: 'No owners yet',
};

async function visitAll(page, server, prefix, extra = []) {
  for (const [name, url, heading] of [...PAGES, ...extra]) {
    await step(`${prefix}: ${name} page renders without console errors`, async () => {
      takeErrors();
      await page.goto(`${server.base}${url}`);
      if (name === 'not-found') await page.getByText(heading).waitFor();
      else await h1(page, heading);
      await settle(page);
      if (prefix === 'empty' && EMPTY_TEXT[name]) {
        await page.getByText(EMPTY_TEXT[name]).first().waitFor({ timeout: 5000 });
      }
      await shot(page, `${prefix}-${name}`);
      assertNoConsoleErrors(`${prefix} ${name}`);
    });
  }
}

/**
 * Runs in the page before any of its scripts: records (ms since navigation start) the first
 * frame after table rows entered the DOM, independently of the app's own code.
 */
function observeRows() {
  const obs = new MutationObserver(() => {
    if (document.querySelector('tbody tr[data-row]')) {
      obs.disconnect();
      requestAnimationFrame(() => {
        window.__e2eRowsVisibleAt = performance.now();
      });
    }
  });
  obs.observe(document, { childList: true, subtree: true });
}

async function rowsVisibleAt(page) {
  await page.waitForFunction(() => typeof window.__e2eRowsVisibleAt === 'number');
  return page.evaluate(() => window.__e2eRowsVisibleAt);
}

/** Where the first render's time went: document, scripts, API calls (ms since navigation start). */
async function timingBreakdown(page) {
  return page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const parts = [`html ${nav.responseEnd.toFixed(0)}`, `domInteractive ${nav.domInteractive.toFixed(0)}`];
    for (const r of performance.getEntriesByType('resource')) {
      const u = new URL(r.name);
      parts.push(`${u.pathname.replace(/^\/api\/v1/, '')}${u.search ? '?…' : ''} ${r.startTime.toFixed(0)}→${r.responseEnd.toFixed(0)}`);
    }
    return parts.join(' | ');
  });
}

// ---------------------------------------------------------------- seeding

function seedSql(now) {
  const ts = (expr) => `strftime('%Y-%m-%dT%H:%M:%fZ', ${expr})`;
  return `
PRAGMA journal_mode=WAL;
BEGIN;
INSERT INTO renewal_policies (id, name, renewal_window_days, auto_renew, max_retries, retry_interval_seconds, alert_thresholds_days, created_at, updated_at)
VALUES ('rp-seed', 'seed: no auto-renew, no warnings', 30, 0, 3, 3600, '[]', '${now}', '${now}');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${SEED_COUNT}),
d(i, days) AS (SELECT i, ((i * 37) % 400) - 30 FROM n)
INSERT INTO managed_certificates (id, name, common_name, sans, environment, issuer_id, renewal_policy_id, status, expires_at, tags, created_at, updated_at)
SELECT printf('mc-seed-%05d', i), printf('seed-%05d', i), printf('host%05d.example.com', i),
       json_array(printf('host%05d.example.com', i)),
       CASE i % 3 WHEN 0 THEN 'production' WHEN 1 THEN 'staging' ELSE 'dev' END,
       'iss-local', 'rp-seed',
       CASE WHEN i % 97 = 0 THEN 'Archived' WHEN i % 89 = 0 THEN 'Revoked' WHEN days < 0 THEN 'Expired' WHEN days < 30 THEN 'Expiring' ELSE 'Active' END,
       ${ts(`'now', printf('%+d days', days), printf('%+d seconds', i % 86400)`)},
       '{}', ${ts(`'now', printf('-%d minutes', i)`)}, ${ts(`'now', printf('-%d minutes', i)`)}
FROM d;
COMMIT;
`;
}

function seed(dbPath) {
  const sql = seedSql(new Date().toISOString());
  try {
    execFileSync('sqlite3', [dbPath], { input: sql, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    if (e.code !== 'ENOENT') throw new Error(`sqlite3: ${e.stderr?.toString() ?? e.message}`);
    // No sqlite3 CLI: python3's sqlite3 module does the same.
    execFileSync('python3', ['-c', 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.stdin.read()); c.close()', dbPath], { input: sql });
  }
}

/**
 * Runs SQL against a running server's SQLite database (WAL; waits for its write lock): how
 * the test puts rows in states only time and failing deliveries reach (e.g. DeadLetter).
 */
function sqlExec(dbPath, sql) {
  const input = `PRAGMA busy_timeout=5000;\n${sql}\n`;
  try {
    execFileSync('sqlite3', [dbPath], { input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    if (e.code !== 'ENOENT') throw new Error(`sqlite3: ${e.stderr?.toString() ?? e.message}`);
    execFileSync('python3', ['-c', 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=5); c.executescript(sys.stdin.read()); c.close()', dbPath], { input });
  }
}

const sqlText = (v) => `'${String(v).replace(/'/g, "''")}'`;

// ---------------------------------------------------------------- part 1

async function part1(browser) {
  const server = new Server('main');
  if (existsSync(path.join(PLUGIN_SRC, 'plugin.wasm')) && existsSync(path.join(PLUGIN_SRC, 'plugin.toml'))) {
    server.pluginDir = path.join(server.dir, 'plugins');
    mkdirSync(path.join(server.pluginDir, 'nginx'), { recursive: true });
    for (const f of ['plugin.wasm', 'plugin.toml']) symlinkSync(path.join(PLUGIN_SRC, f), path.join(server.pluginDir, 'nginx', f));
  } else {
    notes.push(`NOTE no built nginx plugin at ${PLUGIN_SRC} (plugins/build.sh): the target form used the plain JSON config field`);
  }
  await server.start();
  log(`server 1 (empty database) on ${server.base}, data dir ${server.dir}`);
  const routes = await server.routes();
  const hasRevoke = routes.has('POST /api/v1/certificates/{}/revoke');
  const hasExport = routes.has('GET /api/v1/certificates/{}/export/pem');
  const hasPlugins = routes.has('GET /api/v1/plugins');
  log(`optional endpoints: revoke=${hasRevoke} export/pem=${hasExport} plugins=${hasPlugins}`);

  await step('serving: index no-cache, hashed assets immutable, SPA fallback, API 404 untouched', async () => {
    const index = await fetch(`${server.base}/`);
    assert(index.status === 200, `/ → ${index.status}`);
    assert(index.headers.get('cache-control') === 'no-cache', `index cache-control ${index.headers.get('cache-control')}`);
    const html = await index.text();
    const asset = html.match(/\/assets\/[^"]+\.js/)?.[0];
    assert(asset, 'no script asset in index.html');
    const a = await fetch(`${server.base}${asset}`);
    assert(a.status === 200 && a.headers.get('cache-control') === 'public, max-age=31536000, immutable', `asset ${a.status} ${a.headers.get('cache-control')}`);
    assert((a.headers.get('content-type') ?? '').startsWith('text/javascript'), `asset type ${a.headers.get('content-type')}`);
    const deep = await fetch(`${server.base}/certificates/mc-anything?page=2`);
    assert(deep.status === 200 && (await deep.text()) === html, 'deep link did not answer index.html');
    const api404 = await fetch(`${server.base}/api/v1/no-such-thing`, { headers: { Authorization: `Bearer ${server.key}` } });
    assert(api404.status === 404 && (api404.headers.get('content-type') ?? '').includes('json'), `api 404 → ${api404.status}`);
    const wk = await fetch(`${server.base}/.well-known/nothing-here`);
    assert(wk.status === 404, `/.well-known fallback → ${wk.status}`);
    const missingAsset = await fetch(`${server.base}/assets/nope-123.js`);
    assert(missingAsset.status === 404, `missing asset → ${missingAsset.status}`);
    const health = await fetch(`${server.base}/health`);
    assert(health.status === 200 && (await health.json()).status === 'ok', '/health');
    const trav = await fetch(`${server.base}/..%2f..%2fetc/passwd`);
    assert(!(await trav.text()).includes('root:'), 'path traversal');
  });

  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  currentPage = page;
  watch(page);

  await step('sign-in: form shown, a wrong key is refused, the right key signs in', async () => {
    await page.goto(`${server.base}/`);
    await page.locator('#api-key').waitFor();
    await shot(page, 'signin');
    takeErrors();
    await page.locator('#api-key').fill('not-the-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That API key was not accepted.').waitFor();
    // The browser logs the refused check (401) itself; that one message is expected here.
    const errs = takeErrors();
    assert(errs.every((e) => /401/.test(e.text) && e.url.endsWith('/api/v1/auth/check')), `unexpected errors: ${JSON.stringify(errs)}`);
    await page.locator('#api-key').fill(server.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await h1(page, 'Overview');
    const stored = await page.evaluate(() => [sessionStorage.getItem('certctl.apiKey'), localStorage.getItem('certctl.apiKey')]);
    assert(stored[0] === server.key && stored[1] === null, `key stored as ${JSON.stringify(stored)}`);
    assertNoConsoleErrors('sign-in');
  });

  await visitAll(page, server, 'empty');

  // ---- create a certificate through the form and watch it become Active
  let certId = null;
  const cn = `web-${Date.now().toString(36)}.example.com`;
  await step('certificates: create through the New certificate form; it becomes Active without a reload', async () => {
    await page.goto(`${server.base}/certificates`);
    await page.getByRole('link', { name: 'Create a certificate' }).click();
    await h1(page, 'New certificate');
    await page.locator('#cert-issuer_id option[value="iss-local"]').waitFor({ state: 'attached' });
    assert((await page.locator('#cert-issuer_id').inputValue()) === 'iss-local', 'issuer not preselected');
    await page.locator('#cert-name').fill('e2e-web');
    await page.locator('#cert-common_name').fill(cn);
    await page.locator('#cert-sans').fill(`${cn}, www.${cn}`);
    await page.locator('#cert-environment').fill('production');
    await page.locator('#cert-tags').fill('{"app": "e2e"}');
    await page.evaluate(() => {
      window.__e2eNoReload = true;
    });
    const started = Date.now();
    await page.getByRole('button', { name: 'Create certificate' }).click();
    await page.waitForURL(/\/certificates\/mc-[^/]+$/);
    certId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    await page.locator('main h1 [data-status="Active"]').waitFor({ timeout: 20_000 });
    log(`        ${certId} Active ${Date.now() - started} ms after submit`);
    assert(await page.evaluate(() => window.__e2eNoReload === true), 'the page was reloaded');
    await page.locator('.panel', { hasText: 'Versions' }).locator('tbody tr').first().waitFor();
    assert((await page.locator('.panel', { hasText: 'Versions' }).locator('tbody tr').count()) === 1, 'expected one version');
    await page.getByText('www.' + cn).first().waitFor();
    await settle(page);
    await shot(page, 'certificate-detail-active');
    assertNoConsoleErrors('certificate create');
  });

  await step('certificates: renew from the detail page; the new version appears live', async () => {
    assert(certId, 'no certificate');
    const versions = page.locator('.panel', { hasText: 'Versions' }).locator('tbody tr');
    await page.evaluate(() => {
      window.__e2eNoReload = true;
    });
    await page.getByRole('button', { name: 'Renew', exact: true }).click();
    await page.getByText('Renewal queued for 1 certificate.').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('.panel tbody tr').length > 0);
    await versions.nth(1).waitFor({ timeout: 20_000 });
    await page.locator('main h1 [data-status="Active"]').waitFor({ timeout: 20_000 });
    assert(await page.evaluate(() => window.__e2eNoReload === true), 'the page was reloaded');
    assertNoConsoleErrors('renew');
  });

  await step('targets: create a target through the form, map it to the certificate, queue a deployment', async () => {
    await page.goto(`${server.base}/targets`);
    await page.getByRole('button', { name: 'New target' }).click();
    await page.locator('#targets-name').fill('e2e nginx');
    await page.locator('#targets-type').selectOption('nginx');
    if (server.pluginDir && hasPlugins) {
      // The nginx plugin's config_schema drives the form: one input per property.
      await page.locator('#targets-config-cert_path').fill('/etc/nginx/certs/e2e.pem');
      await page.getByRole('button', { name: 'Create target' }).click();
      await page.getByText('Key path required').waitFor(); // required by the plugin's schema
      await page.locator('#targets-config-key_path').fill('/etc/nginx/certs/e2e.key');
      await shot(page, 'target-form-from-plugin-schema');
    } else {
      await page.locator('#targets-config').fill('{"cert_path": "/etc/nginx/certs/e2e.pem"}');
    }
    await page.getByRole('button', { name: 'Create target' }).click();
    await page.locator('tbody tr', { hasText: 'e2e nginx' }).waitFor();
    if (server.pluginDir && hasPlugins) {
      const t = (await server.api('GET', '/targets?name=e2e%20nginx')).data[0];
      assert(t.config.cert_path === '/etc/nginx/certs/e2e.pem' && t.config.key_path === '/etc/nginx/certs/e2e.key', `config ${JSON.stringify(t.config)}`);
    }
    await page.goto(`${server.base}/certificates/${encodeURIComponent(certId)}`);
    await page.getByLabel('Target to map').selectOption({ label: 'e2e nginx (nginx)' });
    await page.getByRole('button', { name: 'Map target' }).click();
    const row = page.locator('.panel', { hasText: 'Deployment targets' }).locator('tbody tr', { hasText: 'e2e nginx' });
    await row.waitFor();
    await row.getByRole('button', { name: 'Deploy now' }).click();
    await page.getByText(/Deployment to e2e nginx queued/).waitFor();
    const jobs = await server.api('GET', `/jobs?certificate_id=${encodeURIComponent(certId)}&type=Deployment`);
    assert(jobs.total === 1, `deployment jobs: ${jobs.total}`);
    assertNoConsoleErrors('targets');
  });

  await step('certificates: PEM export', async () => {
    await page.goto(`${server.base}/certificates/${encodeURIComponent(certId)}`);
    await h1(page, 'e2e-web');
    await settle(page);
    const button = page.getByRole('button', { name: 'Export PEM' });
    if (!hasExport) {
      assert(await button.isDisabled(), 'Export PEM should be disabled when the endpoint is absent');
      await page.getByTestId('unavailable-note').getByText(/PEM export/).waitFor();
      skip('PEM export', 'GET /api/v1/certificates/{id}/export/pem is not on this server (404); the UI shows "not available on this server"');
      return;
    }
    await button.click();
    const pem = page.getByLabel('Certificate PEM');
    await pem.waitFor();
    const text = await pem.inputValue();
    assert(text.includes('-----BEGIN CERTIFICATE-----'), 'no PEM in export');
    const download = page.waitForEvent('download');
    await page.getByTestId('pem-certificate').getByRole('button', { name: 'Download' }).click();
    const file = await (await download).path();
    assert(readFileSync(file, 'utf8').includes('BEGIN CERTIFICATE'), 'downloaded PEM');
    await shot(page, 'certificate-export-pem');
    await page.keyboard.press('Escape');
    assertNoConsoleErrors('export');
  });

  await step('certificates: revoke with a reason', async () => {
    const button = page.getByRole('button', { name: 'Revoke', exact: true });
    if (!hasRevoke) {
      assert(await button.isDisabled(), 'Revoke should be disabled when the endpoint is absent');
      await page.getByTestId('unavailable-note').getByText(/Revocation/).waitFor();
      skip('revoke', 'POST /api/v1/certificates/{id}/revoke is not on this server (404); the UI shows "not available on this server"');
      return;
    }
    await button.click();
    await page.locator('#revoke-reason').selectOption('keyCompromise');
    await page.getByTestId('confirm-revoke').click();
    await page.locator('main h1 [data-status="Revoked"]').waitFor({ timeout: 15_000 });
    await shot(page, 'certificate-revoked');
    assertNoConsoleErrors('revoke');
  });

  await step('audit: filter by the certificate finds its events; CSV and JSON export', async () => {
    await page.goto(`${server.base}/audit`);
    await h1(page, 'Audit log');
    await page.locator('#audit-resource_id').fill(certId);
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/resource_id=/);
    // Wait for the filtered answer (the previous page stays on screen while it loads).
    await page.waitForFunction(
      (id) => {
        const rows = [...document.querySelectorAll('tbody tr')];
        return rows.length > 0 && rows.every((r) => r.children[3]?.textContent?.includes(id)) && rows.some((r) => r.children[2]?.textContent === 'certificate_created');
      },
      certId,
      { timeout: 15_000 },
    );
    const actions = await page.locator('tbody tr td:nth-child(3)').allInnerTexts();
    assert(actions.includes('certificate_created'), `actions: ${actions}`);
    assert(actions.includes('certificate_issued'), `actions: ${actions}`);
    if (hasRevoke) assert(actions.some((a) => /revok/i.test(a)), `no revocation event in ${actions}`);
    const rowIds = await page.locator('tbody tr td:nth-child(4)').allInnerTexts();
    assert(rowIds.every((r) => r.includes(certId)), 'filter leaked other resources');
    await shot(page, 'audit-filtered');

    let download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export CSV' }).click();
    const csv = readFileSync(await (await download).path(), 'utf8');
    const lines = csv.trim().split('\r\n');
    assert(lines[0] === 'id,timestamp,actor,actor_type,action,resource_type,resource_id,details', `csv header ${lines[0]}`);
    assert(lines.length - 1 === actions.length, `csv rows ${lines.length - 1} vs table ${actions.length}`);
    assert(lines.slice(1).every((l) => l.includes(certId)), 'csv rows');

    download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export JSON' }).click();
    const json = JSON.parse(readFileSync(await (await download).path(), 'utf8'));
    assert(Array.isArray(json) && json.length === actions.length && json.every((e) => e.resource_id === certId), 'json export');
    assertNoConsoleErrors('audit');
  });

  await step('jobs: approval-required issuance is approved in the UI and completes live; another is rejected', async () => {
    const profile = await server.api('POST', '/profiles', { name: 'e2e needs approval', requires_approval: true });
    const a = await server.api('POST', '/certificates', { name: 'e2e-approve', common_name: 'approve.example.com', issuer_id: 'iss-local', profile_id: profile.id });
    const b = await server.api('POST', '/certificates', { name: 'e2e-reject', common_name: 'reject.example.com', issuer_id: 'iss-local', profile_id: profile.id });
    await page.goto(`${server.base}/jobs?status=AwaitingApproval`);
    await h1(page, 'Jobs');
    const rowA = page.locator('tbody tr', { hasText: a.id });
    const rowB = page.locator('tbody tr', { hasText: b.id });
    await rowA.waitFor({ timeout: 15_000 });
    await rowB.waitFor();
    await shot(page, 'jobs-awaiting-approval');
    await rowA.getByRole('button', { name: 'Approve' }).click();
    await page.getByText(/^Approve: job-/).waitFor();
    await rowB.getByRole('button', { name: 'Reject' }).click();
    await page.locator('#job-reason').fill('not needed (e2e)');
    await page.getByRole('button', { name: 'Reject job' }).click();
    await page.getByText(/^Reject: job-/).waitFor();
    // The list is filtered to AwaitingApproval: both rows leave it by polling alone.
    await rowA.waitFor({ state: 'detached', timeout: 15_000 });
    await rowB.waitFor({ state: 'detached', timeout: 15_000 });
    await page.getByText('No jobs match these filters').waitFor();
    await page.goto(`${server.base}/certificates/${encodeURIComponent(a.id)}`);
    await page.locator('main h1 [data-status="Active"]').waitFor({ timeout: 20_000 });
    const jobs = await server.api('GET', `/jobs?certificate_id=${b.id}`);
    assert(['Failed', 'Cancelled'].includes(jobs.data[0].status), `rejected job is ${jobs.data[0].status}`);
    await page.goto(`${server.base}/jobs/${encodeURIComponent(jobs.data[0].id)}`);
    await page.getByText('not needed (e2e)').first().waitFor();
    await settle(page);
    await shot(page, 'job-detail-rejected');
    assertNoConsoleErrors('jobs');
  });

  await step('certificates: bulk renew and bulk revoke of a multi-selection', async () => {
    for (const n of [1, 2]) {
      await server.api('POST', '/certificates', { name: `e2e-bulk-${n}`, common_name: `bulk${n}.example.com`, issuer_id: 'iss-local', environment: 'bulk' });
    }
    const activeBulk = async () => (await server.api('GET', '/certificates?environment=bulk&status=Active&per_page=10')).total;
    for (let i = 0; i < 100 && (await activeBulk()) < 2; i++) await sleep(200);
    await page.goto(`${server.base}/certificates?environment=bulk`);
    await page.getByTestId('page-range').filter({ hasText: 'of 2' }).waitFor();
    await page.getByLabel('Select all on this page').check();
    await page.getByText('2 selected').waitFor();
    await page.getByRole('button', { name: 'Renew selected' }).click();
    await page.getByText('Renewal queued for 2 certificates.').waitFor();
    const renewals = await server.api('GET', '/jobs?type=Renewal&per_page=50');
    const bulkIds = (await server.api('GET', '/certificates?environment=bulk')).data.map((c) => c.id);
    assert(bulkIds.every((id) => renewals.data.some((j) => j.certificate_id === id)), 'renewal jobs missing');
    for (let i = 0; i < 100 && (await activeBulk()) < 2; i++) await sleep(200);
    if (!hasRevoke) {
      skip('bulk revoke', 'no revoke endpoint on this server');
      return;
    }
    await page.getByLabel('Select all on this page').check();
    await page.getByRole('button', { name: 'Revoke selected' }).click();
    await page.locator('#revoke-reason').selectOption('superseded');
    await page.getByTestId('confirm-revoke').click();
    await page.getByText(/^Revoked 2/).waitFor();
    await page.waitForFunction(() => {
      const s = [...document.querySelectorAll('tbody [data-status]')].map((e) => e.getAttribute('data-status'));
      return s.length === 2 && s.every((x) => x === 'Revoked');
    }, null, { timeout: 15_000 });
    await shot(page, 'certificates-bulk-revoked');
    assertNoConsoleErrors('bulk');
  });

  await step('notifications: unread count, mark read', async () => {
    await server.api('POST', '/notifications', { type: 'ExpirationWarning', message: 'e2e: certificate expires soon', certificate_id: certId, channel: 'email' });
    await page.goto(`${server.base}/notifications?read=false`);
    await h1(page, 'Notifications');
    const item = page.locator('.notifications li', { hasText: 'e2e: certificate expires soon' });
    await item.waitFor();
    // Delivery is shown per row: the channel and its status (no email notifier on this
    // server, so it stays Pending; the processor says why once it has looked at it).
    await item.locator('[data-channel="email"]').waitFor();
    const shown = await item.locator('[data-status]').getAttribute('data-status');
    const api = (await server.api('GET', '/notifications?read=false&per_page=100')).data.find((n) => n.message === 'e2e: certificate expires soon');
    assert(shown === 'Pending' && api?.status === 'Pending', `row status ${shown}, API ${api?.status}`);
    await page.getByRole('heading', { name: 'Delivery channels' }).waitFor();
    await page.getByText('No notification channels configured').waitFor();
    await page.locator('.nav-count').waitFor();
    await shot(page, 'notifications-delivery');
    await item.getByRole('button', { name: 'Mark read' }).click();
    await item.waitFor({ state: 'detached' });
    const mine = (await server.api('GET', '/notifications?read=true')).data.find((n) => n.message === 'e2e: certificate expires soon');
    assert(mine?.read === true, 'notification not marked read');
    // Others (e.g. the renewal's success notice) are marked read all at once.
    const bulk = page.getByRole('button', { name: /^Mark \d+ shown as read$/ });
    if (await bulk.count()) await bulk.click();
    await page.getByText('All caught up').waitFor();
    const unread = await server.api('GET', '/notifications?read=false');
    assert(unread.total === 0, `unread notifications left: ${unread.total}`);
    await page.locator('.nav-count').waitFor({ state: 'detached', timeout: 35_000 }).catch(() => {});
    assertNoConsoleErrors('notifications');
  });

  await step('notifications: a dead-lettered notification is requeued from the UI; a refused requeue shows the API error', async () => {
    const dead = await server.api('POST', '/notifications', { type: 'RenewalFailure', message: 'e2e: dead-lettered webhook', certificate_id: certId, channel: 'webhook' });
    const raced = await server.api('POST', '/notifications', { type: 'DeploymentFailure', message: 'e2e: failed then sent', certificate_id: certId, channel: 'slack' });
    // Five failed deliveries end in DeadLetter; a failed one waits for its retry.
    sqlExec(
      server.dbPath,
      `UPDATE notification_events SET status = 'DeadLetter', attempts = 5, last_error = 'e2e: connection refused (hooks.example.com:443)', next_attempt_at = NULL WHERE id = ${sqlText(dead.id)};
       UPDATE notification_events SET status = 'Failed', attempts = 2, last_error = 'e2e: HTTP 500 from slack', next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 hour') WHERE id = ${sqlText(raced.id)};`,
    );
    assert((await server.api('GET', `/notifications/${dead.id}`)).status === 'DeadLetter', 'seeding DeadLetter failed');

    await page.goto(`${server.base}/notifications`);
    await h1(page, 'Notifications');
    await page.getByLabel('Delivery status').selectOption('DeadLetter');
    await page.waitForURL(/status=DeadLetter/);
    const row = page.locator('.notifications li', { hasText: 'e2e: dead-lettered webhook' });
    await row.waitFor();
    // The filtered answer replaces the previous list (kept on screen while it loads): one row.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('.notifications li')];
      return rows.length === 1 && rows[0].dataset.delivery === 'DeadLetter';
    }, null, { timeout: 15_000 });
    await row.locator('[data-channel="webhook"]').waitFor();
    await row.locator('[data-status="DeadLetter"]').waitFor();
    await row.getByTestId('attempts').filter({ hasText: '5 attempts' }).waitFor();
    await row.getByTestId('last-error').filter({ hasText: 'connection refused (hooks.example.com:443)' }).waitFor();
    await shot(page, 'notifications-dead-letter');
    takeErrors();
    await row.getByRole('button', { name: 'Requeue' }).click();
    await page.getByText(`Requeued ${dead.id}`).waitFor();
    // Back to Pending: it leaves the dead-letter view without a reload.
    await row.waitFor({ state: 'detached', timeout: 15_000 });
    await page.getByText('No notifications match these filters').waitFor();
    const after = await server.api('GET', `/notifications/${dead.id}`);
    assert(after.status === 'Pending' && after.attempts === 0, `after requeue: ${after.status}, ${after.attempts} attempts`);
    await page.getByLabel('Delivery status').selectOption('Pending');
    await page.waitForURL(/status=Pending/);
    await page.locator('.notifications li', { hasText: 'e2e: dead-lettered webhook' }).locator('[data-status="Pending"]').waitFor();
    assert((await page.locator('.notifications li', { hasText: 'e2e: dead-lettered webhook' }).getByRole('button', { name: 'Requeue' }).count()) === 0, 'Requeue offered on a Pending row');
    assertNoConsoleErrors('requeue');

    // The Failed row is delivered behind the page's back: the server refuses the requeue (409)
    // and the page says why, then shows where the row is now.
    await page.getByLabel('Delivery status').selectOption('Failed');
    const failedRow = page.locator('.notifications li', { hasText: 'e2e: failed then sent' });
    await failedRow.locator('[data-status="Failed"]').waitFor();
    await failedRow.locator('[data-channel="slack"]').waitFor();
    sqlExec(server.dbPath, `UPDATE notification_events SET status = 'Sent', sent_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), last_error = NULL WHERE id = ${sqlText(raced.id)};`);
    await failedRow.getByRole('button', { name: 'Requeue' }).click();
    await page.locator('.toast.tone-bad', { hasText: `Requeue ${raced.id}:` }).filter({ hasText: 'is Sent; only Failed and DeadLetter' }).waitFor();
    await failedRow.waitFor({ state: 'detached', timeout: 15_000 });
    await shot(page, 'notifications-requeue-refused');
    // The browser logs the refused request (409) itself; that one message is expected here.
    const errs = takeErrors();
    assert(errs.length > 0 && errs.every((e) => /409/.test(e.text) && e.url.endsWith(`/notifications/${raced.id}/requeue`)), `unexpected errors: ${JSON.stringify(errs)}`);
    assert((await server.api('GET', `/notifications/${raced.id}`)).status === 'Sent', 'a Sent notification was requeued');
    await server.api('POST', `/notifications/${dead.id}/read`);
    await server.api('POST', `/notifications/${raced.id}/read`);
  });

  await step('digest: without an email channel the page says what to set, and nothing is sent', async () => {
    const listing = await server.api('GET', '/notifiers');
    assert(listing.digest?.can_send === false, `this server has an email channel: ${JSON.stringify(listing.digest)}`);
    takeErrors();
    await page.goto(`${server.base}/notifications`);
    await h1(page, 'Notifications');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Digest' }).click();
    await h1(page, 'Digest');
    const box = page.getByTestId('digest-not-configured');
    await box.waitFor();
    await box.getByText('CERTCTL_SMTP_HOST').first().waitFor();
    await box.getByText(/not configured/i).first().waitFor();
    assert(await page.getByRole('button', { name: 'Send now' }).isDisabled(), 'Send now enabled without an email channel');
    assert((await page.locator('iframe.digest-preview').count()) === 0, 'a preview is shown without an email channel');
    await settle(page);
    await shot(page, 'digest-not-configured');
    assertNoConsoleErrors('digest');
    // What the page relies on: the send endpoint refuses with a JSON error naming the variables.
    const r = await fetch(`${server.base}/api/v1/digest/send`, { method: 'POST', headers: { Authorization: `Bearer ${server.key}` } });
    const body = await r.json();
    assert(r.status === 503 && /CERTCTL_SMTP_HOST/.test(body?.error?.message ?? ''), `digest/send → ${r.status} ${JSON.stringify(body)}`);
  });

  await step('issuers: form uses the plugin schema when one is supplied, else plain fields', async () => {
    await page.goto(`${server.base}/issuers`);
    await h1(page, 'Issuers');
    await page.locator('tbody tr', { hasText: 'iss-local' }).waitFor();
    await page.getByRole('button', { name: 'New issuer' }).click();
    await page.locator('#issuers-name').fill('e2e acme');
    await page.locator('#issuers-type').selectOption('acme');
    let plugins = [];
    if (hasPlugins) {
      const body = await server.api('GET', '/plugins');
      plugins = Array.isArray(body) ? body : (body.data ?? body.plugins ?? []);
    }
    const acme = plugins.find((p) => p.id === 'acme' && p.config_schema && Object.keys(p.config_schema.properties ?? {}).length);
    if (acme) {
      const first = Object.keys(acme.config_schema.properties)[0];
      await page.locator(`#issuers-config-${first}`).waitFor();
    } else {
      await page.getByLabel('Configuration (JSON)').waitFor();
      notes.push('NOTE issuer form: no plugin config_schema for "acme" on this server; the plain JSON config field was used');
    }
    await shot(page, 'issuer-form');
    await page.getByRole('button', { name: 'Cancel' }).click();
    assertNoConsoleErrors('issuers');
  });

  await step('plugins page', async () => {
    await page.goto(`${server.base}/plugins`);
    await h1(page, 'Plugins');
    if (!hasPlugins) {
      await page.getByText('not available on this server').first().waitFor();
      skip('plugins list', 'GET /api/v1/plugins is not on this server (404); the page shows "not available on this server"');
    } else if (server.pluginDir) {
      const card = page.locator('[data-plugin="nginx"]');
      await card.waitFor();
      await card.getByText('Configuration fields (3)').waitFor();
      await settle(page);
      await shot(page, 'plugins');
    } else {
      await page.waitForFunction(() => document.querySelectorAll('.plugin, .empty').length > 0);
    }
    assertNoConsoleErrors('plugins');
  });

  // Every page again, now with data, plus the detail pages.
  const agent = await server.api('POST', '/agents', { name: 'e2e-agent', hostname: 'e2e-host' }).catch(() => null);
  const someJob = (await server.api('GET', `/jobs?certificate_id=${encodeURIComponent(certId)}`)).data[0];
  await visitAll(page, server, 'data', [
    ['certificate-detail', `/certificates/${encodeURIComponent(certId)}`, 'e2e-web'],
    ['job-detail', `/jobs/${encodeURIComponent(someJob.id)}`, 'job'],
    ...(agent ? [['agent-detail', `/agents/${encodeURIComponent(agent.id)}`, 'e2e-agent']] : []),
  ]);

  await step('overview shows counts, chart and recent jobs; a narrow screen gets the menu button', async () => {
    await page.goto(`${server.base}/`);
    await h1(page, 'Overview');
    await page.getByTestId('count-total').waitFor();
    assert(Number(await page.getByTestId('count-total').innerText()) >= 3, 'total count');
    // The 90-day certificates made above land in the chart's last weeks.
    await page.locator('svg.chart text.value').first().waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('button', { name: 'Menu' }).waitFor();
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Certificates' }).click();
    await h1(page, 'Certificates');
    await page.getByRole('button', { name: 'Menu' }).waitFor();
    await settle(page);
    await shot(page, 'mobile-certificates');
    await page.setViewportSize({ width: 1366, height: 900 });
    assertNoConsoleErrors('overview');
  });

  await step('sign out forgets the key', async () => {
    await page.setViewportSize({ width: 1366, height: 900 });
    await page.goto(`${server.base}/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#api-key').waitFor();
    const stored = await page.evaluate(() => [sessionStorage.getItem('certctl.apiKey'), localStorage.getItem('certctl.apiKey')]);
    assert(stored[0] === null && stored[1] === null, 'key still stored');
    await page.reload();
    await page.locator('#api-key').waitFor();
    assertNoConsoleErrors('sign out');
  });

  await context.close();
  currentPage = null;
  await server.stop();
  return server;
}

// ---------------------------------------------------------------- part 2

async function part2(browser) {
  const server = new Server('10k');
  await server.start();
  await server.stop();
  const seedStart = Date.now();
  seed(server.dbPath);
  log(`seeded ${SEED_COUNT} certificates in ${Date.now() - seedStart} ms`);
  await server.start();
  log(`server 2 (${SEED_COUNT} certificates) on ${server.base}`);
  // Let the startup ticks of the scheduler loops finish before measuring.
  await sleep(1500);
  const total = (await server.api('GET', '/certificates?per_page=1&fields=id')).total;

  await step(`seeded database holds ${SEED_COUNT} certificates`, async () => {
    assert(total === SEED_COUNT, `total ${total}`);
  });

  const measure = async (label, ctxOpts) => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, ...ctxOpts });
    await context.addInitScript((key) => sessionStorage.setItem('certctl.apiKey', key), server.key);
    await context.addInitScript(observeRows);
    const page = await context.newPage();
    currentPage = page;
    watch(page);
    await page.goto(`${server.base}/certificates`, { waitUntil: 'commit' });
    await page.locator('tbody tr[data-row]').first().waitFor({ timeout: 10_000 });
    const ms = await rowsVisibleAt(page);
    const mark = await page.evaluate(() => performance.getEntriesByName('certctl:certificates-rows')[0]?.startTime ?? null);
    log(`        first render (${label}): ${ms.toFixed(0)} ms to visible rows (navigation start → rows; app mark at ${mark?.toFixed(0)} ms)`);
    log(`        ${await timingBreakdown(page)}`);
    return { context, page, ms };
  };

  // Three cold loads (each a fresh browser context: empty cache, new renderer); the median is
  // asserted, so one load slowed by a busy machine does not decide the result. When that
  // median misses, a second batch of three runs once and decides (both batches are printed
  // with the load average, so a slow app still fails and a busy machine is visible as such).
  let cold;
  await step(`certificates page first render with ${SEED_COUNT} certificates < ${FIRST_RENDER_BUDGET_MS} ms (cold cache, median of 3)`, async () => {
    const batch = async (n) => {
      const times = [];
      for (let i = 0; i < 3; i++) {
        if (cold) await cold.context.close();
        cold = await measure(`cold cache, batch ${n} load ${i + 1}`, {});
        times.push(cold.ms);
      }
      const median = [...times].sort((a, b) => a - b)[1];
      const load = loadavg()[0].toFixed(2);
      notes.push(`first render of /certificates with ${SEED_COUNT} certificates (cold cache, batch ${n}): median ${median.toFixed(0)} ms of ${times.map((t) => t.toFixed(0)).join(', ')} ms; load average ${load} on ${cpus().length} CPUs`);
      log(`        batch ${n}: median ${median.toFixed(0)} ms (load average ${load})`);
      return { median, times };
    };
    let r = await batch(1);
    if (r.median >= FIRST_RENDER_BUDGET_MS) r = await batch(2);
    assert(r.median < FIRST_RENDER_BUDGET_MS, `median first render ${r.median.toFixed(0)} ms (loads: ${r.times.map((t) => t.toFixed(0)).join(', ')} ms)`);
  });

  await step(`certificates page render again (warm cache) < ${FIRST_RENDER_BUDGET_MS} ms`, async () => {
    const page = cold.page;
    await page.goto(`${server.base}/certificates`, { waitUntil: 'commit' });
    await page.locator('tbody tr[data-row]').first().waitFor();
    const ms = await rowsVisibleAt(page);
    log(`        first render (warm cache): ${ms.toFixed(0)} ms`);
    notes.push(`first render of /certificates with ${SEED_COUNT} certificates: ${ms.toFixed(0)} ms (warm cache)`);
    assert(ms < FIRST_RENDER_BUDGET_MS, `warm render took ${ms.toFixed(0)} ms`);
  });

  await step('pagination over 10,000 certificates: next, last, per-page, sort', async () => {
    const page = cold.page;
    const range = page.getByTestId('page-range');
    await range.filter({ hasText: '1–50 of 10,000' }).waitFor();
    const firstIds = await page.locator('tbody tr[data-row]').evaluateAll((rows) => rows.map((r) => r.dataset.row));
    assert(firstIds.length === 50, `rows on page 1: ${firstIds.length}`);
    await page.getByRole('button', { name: 'Next page' }).click();
    await range.filter({ hasText: '51–100 of 10,000' }).waitFor();
    await page.waitForURL(/page=2/);
    await page.waitForFunction((first) => document.querySelector('tbody tr[data-row]')?.getAttribute('data-row') !== first, firstIds[0]);
    const secondIds = await page.locator('tbody tr[data-row]').evaluateAll((rows) => rows.map((r) => r.dataset.row));
    assert(secondIds.length === 50 && !secondIds.some((id) => firstIds.includes(id)), 'page 2 overlaps page 1');
    await page.getByRole('button', { name: 'Last page' }).click();
    await page.getByTestId('page-number').filter({ hasText: 'Page 200 of 200' }).waitFor();
    await page.getByLabel('Rows per page').selectOption('200');
    await page.getByTestId('page-number').filter({ hasText: 'Page 1 of 50' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-row]').length === 200);
    await page.getByRole('button', { name: /^Name/ }).click();
    await page.waitForURL(/sort=name/);
    await page.waitForFunction(() => document.querySelector('tbody tr[data-row]')?.getAttribute('data-row') === 'mc-seed-00001');
    await page.getByRole('button', { name: /^Name/ }).click();
    await page.waitForURL(/sort=-name/);
    await page.waitForFunction(() => document.querySelector('tbody tr[data-row]')?.getAttribute('data-row') === 'mc-seed-10000');
    await shot(page, 'seeded-certificates');
    assertNoConsoleErrors('pagination');
  });

  await step('filters and bulk selection on the large list', async () => {
    const page = cold.page;
    await page.goto(`${server.base}/certificates`);
    await page.getByRole('group', { name: 'Status' }).getByRole('button', { name: 'Expiring' }).click();
    await page.waitForURL(/status=Expiring/);
    const expected = (await server.api('GET', '/certificates?status=Expiring&per_page=1&fields=id')).total;
    await page.getByTestId('page-range').filter({ hasText: `of ${expected.toLocaleString('en-US')}` }).waitFor();
    const statuses = await page.locator('tbody [data-status]').evaluateAll((els) => els.map((e) => e.dataset.status));
    assert(statuses.length > 0 && statuses.every((s) => s === 'Expiring'), `statuses ${[...new Set(statuses)]}`);
    await page.getByLabel('Select all on this page').check();
    await page.getByText('50 selected').waitFor();
    await page.getByRole('button', { name: 'Clear selection' }).click();
    assertNoConsoleErrors('filters');
  });

  await step('overview with 10,000 certificates: counts add up, chart renders', async () => {
    const page = cold.page;
    await page.goto(`${server.base}/`);
    await page.getByTestId('count-total').filter({ hasText: '10,000' }).waitFor();
    await page.locator('svg.chart text.value').first().waitFor();
    await settle(page);
    await shot(page, 'seeded-overview');
    assertNoConsoleErrors('seeded overview');
  });

  await cold?.context.close();
  currentPage = null;
  await server.stop();
  return server;
}

// ---------------------------------------------------------------- part 3

async function part3(browser) {
  const server = new Server('open');
  server.authNone = true;
  await server.start();
  log(`server 3 (CERTCTL_AUTH_TYPE=none) on ${server.base}`);
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  currentPage = page;
  watch(page);
  await step('auth none: no sign-in form, pages work, no sign-out button', async () => {
    takeErrors();
    await page.goto(`${server.base}/`);
    await h1(page, 'Overview');
    await page.getByText('authentication off').waitFor();
    assert((await page.getByRole('button', { name: 'Sign out' }).count()) === 0, 'sign-out shown with auth off');
    await page.goto(`${server.base}/certificates`);
    await page.getByText('No certificates yet').first().waitFor();
    await settle(page);
    await shot(page, 'auth-none-certificates');
    assertNoConsoleErrors('auth none');
  });
  await context.close();
  currentPage = null;
  await server.stop();
  return server;
}

// ---------------------------------------------------------------- part 4

/**
 * A minimal SMTP server on 127.0.0.1 (no TLS, no AUTH) that keeps what it is sent: the
 * digest's delivery target in part 4.
 */
async function smtpSink() {
  const messages = [];
  const auths = [];
  const sockets = new Set();
  const srv = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    let data = null;
    let envelope = { from: null, to: [] };
    const say = (line) => sock.write(`${line}\r\n`);
    say('220 e2e-sink ESMTP');
    sock.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (data !== null) {
          if (line === '.') {
            messages.push({ ...envelope, data: data.join('\r\n') });
            data = null;
            envelope = { from: null, to: [] };
            say('250 queued');
          } else data.push(line.startsWith('..') ? line.slice(1) : line);
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') sock.write('250-e2e-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') say('250 e2e-sink');
        else if (verb === 'MAIL') {
          envelope.from = line.match(/<([^>]*)>/)?.[1] ?? null;
          say('250 ok');
        } else if (verb === 'RCPT') {
          envelope.to.push(line.match(/<([^>]*)>/)?.[1] ?? '');
          say('250 ok');
        } else if (verb === 'DATA') {
          data = [];
          say('354 end with .');
        } else if (verb === 'QUIT') {
          say('221 bye');
          sock.end();
        } else if (verb === 'AUTH') {
          auths.push(Buffer.from(line.split(' ')[2] ?? '', 'base64').toString('utf8').split('\0').slice(1));
          say('235 authenticated');
        } else if (verb === 'RSET' || verb === 'NOOP') say('250 ok');
        else say('502 not implemented');
      }
    });
  });
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: srv.address().port,
    messages,
    auths,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

async function part4(browser) {
  if (!existsSync(path.join(EMAIL_PLUGIN_SRC, 'plugin.wasm')) || !existsSync(path.join(EMAIL_PLUGIN_SRC, 'plugin.toml'))) {
    skip('digest with an email channel', `no built email notifier plugin at ${EMAIL_PLUGIN_SRC} (bash plugins/build.sh)`);
    return null;
  }
  const sink = await smtpSink();
  const smtpPassword = `pw-${randomBytes(9).toString('hex')}`;
  const server = new Server('mail');
  server.pluginDir = path.join(server.dir, 'plugins');
  mkdirSync(path.join(server.pluginDir, 'email'), { recursive: true });
  for (const f of ['plugin.wasm', 'plugin.toml']) symlinkSync(path.join(EMAIL_PLUGIN_SRC, f), path.join(server.pluginDir, 'email', f));
  server.env = {
    CERTCTL_SMTP_HOST: '127.0.0.1',
    CERTCTL_SMTP_PORT: String(sink.port),
    CERTCTL_SMTP_USE_TLS: 'false',
    CERTCTL_SMTP_FROM_ADDRESS: 'certctl-e2e@example.com',
    CERTCTL_SMTP_USERNAME: 'e2e-user',
    CERTCTL_SMTP_PASSWORD: smtpPassword,
    CERTCTL_DIGEST_RECIPIENTS: 'ops-e2e@example.com',
  };
  try {
    await server.start();
    log(`server 4 (email channel → SMTP sink on 127.0.0.1:${sink.port}) on ${server.base}`);
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    // Init scripts run in every frame; the sandboxed preview frame has no storage (by design).
    await context.addInitScript((key) => {
      if (window.top === window) sessionStorage.setItem('certctl.apiKey', key);
    }, server.key);
    const page = await context.newPage();
    currentPage = page;
    watch(page);

    await step('digest: preview in a sandboxed iframe, Send now e-mails it and says to whom', async () => {
      takeErrors();
      await page.goto(`${server.base}/digest`);
      await h1(page, 'Digest');
      const frame = page.locator('iframe.digest-preview');
      await frame.waitFor({ timeout: 15_000 });
      assert((await frame.getAttribute('sandbox')) === '', `sandbox="${await frame.getAttribute('sandbox')}"`);
      assert(((await frame.getAttribute('srcdoc')) ?? '').includes('certctl certificate digest'), 'srcdoc is not the digest');
      await page.frameLocator('iframe.digest-preview').getByRole('heading', { name: 'certctl certificate digest' }).waitFor();
      assert((await page.getByTestId('digest-not-configured').count()) === 0, 'not-configured shown with an email channel');
      await settle(page);
      await shot(page, 'digest-preview');
      await page.getByRole('button', { name: 'Send now' }).click();
      await page.getByTestId('digest-send-result').filter({ hasText: 'Digest sent to 1 recipient: ops-e2e@example.com.' }).waitFor({ timeout: 30_000 });
      assert(sink.messages.length === 1, `SMTP sink got ${sink.messages.length} messages`);
      const m = sink.messages[0];
      assert(m.from === 'certctl-e2e@example.com' && m.to.join() === 'ops-e2e@example.com', `envelope ${m.from} → ${m.to}`);
      assert(/^Subject: .*digest/im.test(m.data), 'no digest subject in the message');
      assert(sink.auths.length === 1 && sink.auths[0][0] === 'e2e-user' && sink.auths[0][1] === smtpPassword, `AUTH ${JSON.stringify(sink.auths)}`);
      assertNoConsoleErrors('digest send');
    });

    await step('notifications: the configured email channel is listed, its secrets never', async () => {
      await page.goto(`${server.base}/notifications`);
      await h1(page, 'Notifications');
      const row = page.locator('.notifiers tr[data-channel="email"]');
      await row.waitFor();
      await row.getByText('CERTCTL_SMTP_HOST').waitFor();
      await row.getByText(`127.0.0.1:${sink.port}`).first().waitFor();
      await row.getByText('e2e-user').waitFor();
      await row.getByText('***').first().waitFor();
      assert(!(await page.content()).includes(smtpPassword), 'the SMTP password is on the page');
      await settle(page);
      await shot(page, 'notifications-channels');
      assertNoConsoleErrors('channels');
    });

    await step('digest: a failed delivery is reported as such (not as "not configured")', async () => {
      await sink.close();
      await page.goto(`${server.base}/digest`);
      await page.locator('iframe.digest-preview').waitFor({ timeout: 15_000 });
      takeErrors();
      await page.getByRole('button', { name: 'Send now' }).click();
      const result = page.getByTestId('digest-send-result');
      await result.filter({ hasText: 'The digest was not sent:' }).waitFor({ timeout: 30_000 });
      assert((await page.getByTestId('digest-not-configured').count()) === 0, 'a delivery failure shown as not configured');
      await shot(page, 'digest-send-failed');
      // The browser logs the refused request (503) itself; that one message is expected here.
      const errs = takeErrors();
      assert(errs.length > 0 && errs.every((e) => /503/.test(e.text) && e.url.endsWith('/api/v1/digest/send')), `unexpected errors: ${JSON.stringify(errs)}`);
    });
    await context.close();
    currentPage = null;
  } finally {
    await sink.close();
    await server.stop();
  }
  return server;
}

// ---------------------------------------------------------------- main

async function main() {
  for (const [what, p] of [
    ['server binary (build it: cargo build -p certctl-host)', SERVER_BIN],
    ['built dashboard (npm run build)', path.join(DIST, 'index.html')],
    ['chromium (apt-get install chromium)', CHROMIUM],
  ]) {
    if (!existsSync(p)) {
      console.error(`missing ${what}: ${p}`);
      process.exit(2);
    }
  }
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: process.env.E2E_HEADED !== '1',
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ].filter((a) => process.env.E2E_HEADED !== '1' || a !== '--headless=new'),
  });
  const servers = [];
  const only = process.env.E2E_ONLY ?? '';
  if (only) notes.push(`NOTE E2E_ONLY=${only}: the other part did not run`);
  try {
    if (!only || only === 'part1') servers.push(await part1(browser));
  } catch (e) {
    results.failed++;
    failures.push(`part 1 aborted: ${e?.stack ?? e}`);
    log(`FAIL  part 1 aborted: ${e?.stack ?? e}`);
  }
  try {
    if (!only || only === 'part3') servers.push(await part3(browser));
  } catch (e) {
    results.failed++;
    failures.push(`part 3 aborted: ${e?.stack ?? e}`);
    log(`FAIL  part 3 aborted: ${e?.stack ?? e}`);
  }
  try {
    if (!only || only === 'part4') {
      const s = await part4(browser);
      if (s) servers.push(s);
    }
  } catch (e) {
    results.failed++;
    failures.push(`part 4 aborted: ${e?.stack ?? e}`);
    log(`FAIL  part 4 aborted: ${e?.stack ?? e}`);
  }
  try {
    if (!only || only === 'part2') servers.push(await part2(browser));
  } catch (e) {
    results.failed++;
    failures.push(`part 2 aborted: ${e?.stack ?? e}`);
    log(`FAIL  part 2 aborted: ${e?.stack ?? e}`);
  }
  await browser.close();
  if (results.failed === 0) for (const s of servers) s.cleanup();
  else log(`server data dirs kept for inspection: ${servers.map((s) => s.dir).join(', ') || '(see above)'}`);

  writeFileSync(path.join(OUT, 'summary.txt'), [...notes, ...failures.map((f) => `FAILED ${f}`), ''].join('\n'));
  console.log('');
  for (const n of notes) console.log(n);
  for (const f of failures) console.log(`FAILED ${f.split('\n')[0]}`);
  console.log(`\n${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped (${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${path.relative(process.cwd(), OUT) || OUT})`);
  process.exit(results.failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  console.log(`\n${results.passed} passed, ${results.failed + 1} failed, ${results.skipped} skipped`);
  process.exit(1);
});
