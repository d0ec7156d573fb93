// Open the gateway's status page (/lkn) in the system Chromium and read what it shows.
//
//   node tests/browser/status_page.mjs < spec.json   ->   one JSON result line on stdout
//
// Spec: url (the gateway's base URL), key (the API key, sent as HTTP Basic's password, as
// a person would type it; optional), screenshot (PNG path), wait_for (text that must
// appear in the page before the screenshot), timeout_ms.
// Result: {ok, text, engines, numbers, svg_rects, external_requests} or {ok: false, failure}.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

const spec = JSON.parse(readFileSync(0, 'utf8'));
const browser = await chromium.launch({
  executablePath: process.env.LKN_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let result;
try {
  const context = await browser.newContext(spec.key ? {httpCredentials: {username: 'lkn', password: spec.key}} : {});
  const page = await context.newPage();
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(spec.url)) external.push(r.url()); });
  const response = await page.goto(spec.url + '/lkn', {waitUntil: 'load', timeout: spec.timeout_ms ?? 30000});
  const status = response ? response.status() : 0;
  if (status !== 200) {
    result = {ok: false, failure: `HTTP ${status}`, status};
  } else {
    try {
      await page.waitForFunction((t) => document.body.innerText.includes(t), spec.wait_for ?? 'ready',
                                 {timeout: spec.timeout_ms ?? 30000});
    } catch (e) {
      if (spec.screenshot) await page.screenshot({path: spec.screenshot, fullPage: true});
      throw new Error(`${e}; page text: ${await page.evaluate(() => document.body.innerText)}`);
    }
    const text = await page.evaluate(() => document.body.innerText);
    const engines = await page.$$eval('#engines tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
    const numbers = await page.$$eval('#numbers b', (bs) => Object.fromEntries(bs.map((b) => [b.id, b.textContent])));
    const rects = await page.$$eval('svg rect', (rs) => rs.length);
    if (spec.screenshot) {
      mkdirSync(dirname(spec.screenshot), {recursive: true});
      await page.screenshot({path: spec.screenshot, fullPage: true});
    }
    result = {ok: true, status, text, engines, numbers, svg_rects: rects, external_requests: external};
  }
} catch (e) {
  result = {ok: false, failure: String(e)};
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
