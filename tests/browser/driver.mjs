// Drive Open WebUI's chat page in the system Chromium, like a person would, for one scenario.
//
//   node tests/browser/driver.mjs < scenario.json   ->   one JSON result line on stdout
//
// Scenario (JSON on stdin):
//   url          Open WebUI's base URL (required)
//   message      what to type in the chat box (required)
//   screenshot   PNG path, written at the end (also when the scenario fails)
//   model        model id to pick in the model selector (optional: keep the default)
//   list_models  open the model selector first and read the models it offers (default
//                false); with `wait_models` (ids), until all of those are offered
//   expect       "answer" (default) or "error": how the reply is expected to end
//   show_usage   hover the reply's Info button and read its tooltip (default false)
//   stop         click the Stop button as soon as the reply has begun (default false)
//   leave        close the tab as soon as the reply has begun, as a person closing it
//                would (default false): the result is the reply as it was then
//   unfold       click the reply's first folded block (a reasoning block) open and read it;
//                the screenshot then shows it open (default false)
//   screenshot_folded  PNG path, written once the reply is complete, before anything is
//                unfolded (optional)
//   timeout_ms   overall budget for the reply (default 180000)
// Result: {ok, answer, error_text, usage_text, model_shown, partials, blocks, reply_text,
// unfolded, models_listed, elapsed_ms, steps} or {ok: false, failure, page_text, steps};
// `blocks` are the reply's foldable blocks as Open WebUI renders them (label, expanded,
// body text: what is in the page, empty while folded), `reply_text` everything the reply
// shows, `answer` the reply's text outside those blocks, `unfolded` the first block once
// opened (with `answer` as the page then shows it), `models_listed` the model ids the
// selector offered (null without list_models). Diagnostics go to stderr.
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
    // Open WebUI's Collapsible (reasoning, tool calls ...): a <div> holding a header
    // <button aria-expanded> and, only while open, a second child with the block's body.
    const headers = content ? [...content.querySelectorAll('button[aria-expanded]')] : [];
    const blocks = headers.map((button) => {
      const root = button.parentElement;
      const body = [...root.children].filter((el) => el !== button);
      return {
        label: button.innerText.trim(),
        expanded: button.getAttribute('aria-expanded') === 'true',
        body: body.map((el) => el.innerText.trim()).join('\n').trim(),
      };
    });
    // The answer: the prose as rendered with those blocks hidden for the moment of reading
    // (innerText leaves out what is not displayed; nothing repaints in between).
    const roots = headers.map((button) => button.parentElement);
    const display = roots.map((el) => el.style.display);
    roots.forEach((el) => { el.style.display = 'none'; });
    // A block's own markdown (the note inside an open reasoning block) is prose too: leave
    // it out (innerText of an element that is not rendered falls back to all its text).
    const shown = prose.filter((el) => !roots.some((root) => root.contains(el)))
      .map((el) => el.innerText.trim());
    roots.forEach((el, i) => { el.style.display = display[i]; });
    return {
      id: reply.id,
      text: shown.join('\n').trim(),
      reply_text: content ? content.innerText.trim() : '',
      blocks,
      done: !!reply.querySelector('.copy-response-button, button[aria-label="Info"]'),
      banner: banner ? banner.innerText.trim() : '',
      model: model ? model.innerText.trim() : '',
    };
  });
}

async function shoot(page, path) {
  mkdirSync(dirname(path), { recursive: true });
  await page.screenshot({ path });
}

async function pickModel(page, model) {
  await page.click('#model-selector-model-button');
  await page.fill('#model-search-input', model);
  await page.click(`button[role=option][aria-label="Select ${model} model"]`);
  const shown = (await page.innerText('#model-selector-model-button')).trim();
  if (shown !== model) throw new Error(`the model selector shows '${shown}', not '${model}'`);
}

// The model ids the selector offers (its options are labelled "Select <id> model").
async function listModels(page, wanted) {
  const deadline = Date.now() + 60000;
  for (;;) {
    await page.click('#model-selector-model-button');
    await page.waitForSelector('button[role=option][aria-label^="Select "]', { timeout: 30000 });
    const listed = await page.$$eval('button[role=option][aria-label^="Select "]', (options) =>
      options.map((el) => el.getAttribute('aria-label').replace(/^Select (.*) model$/, '$1')));
    await page.keyboard.press('Escape');
    await page.waitForSelector('#model-search-input', { state: 'detached', timeout: 10000 })
      .catch(() => {});
    if (wanted.every((id) => listed.includes(id)) || Date.now() > deadline) return listed;
    await page.waitForTimeout(1000);
  }
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
  let modelsListed = null;
  if (spec.list_models) {
    modelsListed = await listModels(page, spec.wait_models ?? []);
    step(`the model selector lists ${JSON.stringify(modelsListed)}`);
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
    if (spec.leave && partials.size > 0) {
      step('tab closed while the reply streamed');
      const shown = state.text;
      if (spec.screenshot) await shoot(page, spec.screenshot);
      await page.close();
      return { ok: true, answer: shown, error_text: '', usage_text: '', model_shown: state.model,
        partials: partials.size, blocks: [], reply_text: shown, unfolded: null, left: true };
    }
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

  if (spec.screenshot_folded) {
    await page.locator(`#${state.id}`).scrollIntoViewIfNeeded();
    await shoot(page, spec.screenshot_folded);
    step('screenshot of the folded reply');
  }
  let unfolded = null;
  if (spec.unfold) {
    if (!state.blocks.length) throw new Error('the reply has no foldable block to open');
    await page.locator(`#${state.id} #response-content-container button[aria-expanded]`).first().click();
    // The body slides open (300 ms): wait until it is in the page.
    await page.waitForFunction((id) => {
      const button = document.querySelector(`#${id} #response-content-container button[aria-expanded]`);
      return button && button.getAttribute('aria-expanded') === 'true'
        && [...button.parentElement.children].some((el) => el !== button && el.innerText.trim());
    }, state.id, { timeout: 10000 });
    await page.waitForTimeout(500);
    const opened = await replyState(page);
    unfolded = { ...opened.blocks[0], answer: opened.text };
    step(`unfolded the block '${unfolded.label}'`);
  }

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
    blocks: state.blocks,
    reply_text: state.reply_text,
    unfolded,
    models_listed: modelsListed,
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
  if (page && spec.screenshot && !(result.ok && result.left)) {
    try {
      await shoot(page, spec.screenshot);
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
