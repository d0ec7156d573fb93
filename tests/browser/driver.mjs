// Drive Open WebUI's chat page in the system Chromium, like a person would, for one scenario.
//
//   node tests/browser/driver.mjs < scenario.json   ->   one JSON result line on stdout
//
// Scenario (JSON on stdin):
//   url          Open WebUI's base URL (required)
//   message      what to type in the chat box (required)
//   screenshot   PNG path, written at the end (also when the scenario fails)
//   model        model id to pick in the model selector (optional: keep the default)
//   expect       "answer" (default) or "error": how the reply is expected to end
//   show_usage   hover the reply's Info button and read its tooltip (default false)
//   stop         click the Stop button as soon as the reply has begun (default false)
//   timeout_ms   overall budget for the reply (default 180000)
// Result: {ok, answer, error_text, usage_text, model_shown, partials, elapsed_ms, steps}
// or {ok: false, failure, page_text, steps}. Diagnostics go to stderr.
//
// Chromium is Debian's (/usr/bin/chromium or $LKN_CHROMIUM) with the flags this machine
// needs; no browser is ever downloaded. Selectors are those of Open WebUI 0.12.4.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const spec = JSON.parse(readFileSync(0, 'utf8'));
const timeoutMs = spec.timeout_ms ?? 180000;
const expectError = (spec.expect ?? 'answer') === 'error';
const steps = [];
const t0 = Date.now();
const step = (what) => {
  steps.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);
  process.stderr.write(`[driver] ${steps[steps.length - 1]}\n`);
};

async function replyState(page) {
  return page.evaluate(() => {
    const replies = [...document.querySelectorAll('#messages-container div[id^="message-"]')]
      .filter((el) => !el.classList.contains('user-message'));
    const reply = replies[replies.length - 1];
    if (!reply) return null;
    const content = reply.querySelector('#response-content-container');
    // The answer is markdown; a failed reply shows a grey banner (an info icon and the
    // error's message) as a direct child of the content container instead.
    const prose = content ? [...content.querySelectorAll('.markdown-prose')] : [];
    const banner = content ? content.querySelector(':scope > div:has(> svg)') : null;
    const model = reply.querySelector('#response-message-model-name');
    return {
      id: reply.id,
      text: prose.map((el) => el.innerText.trim()).join('\n').trim(),
      done: !!reply.querySelector('.copy-response-button, button[aria-label="Info"]'),
      banner: banner ? banner.innerText.trim() : '',
      model: model ? model.innerText.trim() : '',
    };
  });
}

async function pickModel(page, model) {
  await page.click('#model-selector-model-button');
  await page.fill('#model-search-input', model);
  await page.click(`button[role=option][aria-label="Select ${model} model"]`);
  const shown = (await page.innerText('#model-selector-model-button')).trim();
  if (shown !== model) throw new Error(`the model selector shows '${shown}', not '${model}'`);
}

async function run(page) {
  await page.goto(spec.url, { waitUntil: 'load', timeout: 60000 });
  await page.waitForSelector('#chat-input', { timeout: 60000 });
  step('chat page loaded');
  // A fresh data dir greets the user with a "What's New" dialog.
  const welcome = page.getByRole('button', { name: "Okay, Let's Go!" });
  try {
    await welcome.waitFor({ state: 'visible', timeout: 3000 });
    await welcome.click();
    step('closed the welcome dialog');
  } catch {
    // not shown: nothing to close
  }
  if (spec.model) {
    await pickModel(page, spec.model);
    step(`picked model ${spec.model}`);
  }
  await page.click('#chat-input');
  await page.keyboard.type(spec.message);
  await page.keyboard.press('Enter');
  step('message sent');

  const partials = new Set();
  let state = null;
  let stoppedAt = 0;
  const deadline = t0 + timeoutMs;
  for (;;) {
    state = await replyState(page);
    if (state && state.text && !state.done) partials.add(state.text);
    if (state && (state.done || state.banner)) break;
    if (spec.stop && !stoppedAt && partials.size > 0) {
      await page.click('button[aria-label="Stop"]', { timeout: 10000 });
      stoppedAt = Date.now();
      step('stop clicked');
    }
    if (stoppedAt && Date.now() - stoppedAt > 15000) break;
    if (Date.now() > deadline) {
      throw new Error(`no complete reply within ${timeoutMs} ms (last: ${JSON.stringify(state)})`);
    }
    await page.waitForTimeout(200);
  }
  // An error banner can come with, or right after, the end of the reply: let it settle.
  await page.waitForTimeout(expectError ? 1000 : 300);
  state = await replyState(page);
  step(state.banner ? 'reply ended with an error banner'
    : `reply complete (${state.text.length} chars)`);

  let usageText = '';
  if (spec.show_usage) {
    const info = page.locator(`#${state.id} button[aria-label="Info"]`);
    await info.waitFor({ state: 'visible', timeout: 10000 });
    await info.hover();
    const tooltip = page.locator('[data-tippy-root]').last();
    await tooltip.waitFor({ state: 'visible', timeout: 10000 });
    usageText = (await tooltip.innerText()).trim();
    step('usage tooltip shown');
  }
  return {
    ok: true,
    answer: state.text,
    error_text: state.banner,
    usage_text: usageText,
    model_shown: state.model,
    partials: partials.size,
  };
}

async function main() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'lkn-chromium-'));
  let context = null;
  let result;
  let page = null;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.LKN_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 860 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => process.stderr.write(`[page] ${err.message}\n`));
    result = await run(page);
  } catch (err) {
    let pageText = '';
    try { pageText = page ? await page.innerText('body') : ''; } catch { /* page gone */ }
    const failure = String(err && err.stack ? err.stack : err);
    result = { ok: false, failure, page_text: pageText };
  }
  if (page && spec.screenshot) {
    try {
      mkdirSync(dirname(spec.screenshot), { recursive: true });
      await page.screenshot({ path: spec.screenshot });
    } catch (err) {
      process.stderr.write(`[driver] screenshot failed: ${err}\n`);
    }
  }
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  result.elapsed_ms = Date.now() - t0;
  result.steps = steps;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exitCode = result.ok ? 0 : 1;
}

await main();
