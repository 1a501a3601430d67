// The demo page in a real browser: headless Chromium driven by
// playwright-core against bin/wsrelay on loopback. Two pages meet in a room,
// chat, message each other directly and see each other's presence; then the
// relay restarts and both pages reconnect and join the room again.
//
// CHROMIUM names the browser (default /usr/bin/chromium, Debian's package);
// DEMO_SCREENSHOT, when set, is where to save a screenshot of the demo page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { freePort, startRelay } from './relay.mjs';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 10000; // ms for any one thing a user would wait for

let relay;
let browser;
const pageErrors = [];
const consoleErrors = [];
const foreign = [];
// While the relay restarts the browser itself logs the refused connections
// and upgrades; those, and only during the restart, are expected.
let restarting = false;
const restartNoise = /net::ERR_CONNECTION_REFUSED|net::ERR_CONNECTION_RESET|net::ERR_EMPTY_RESPONSE|Unexpected response code: 503/;

before(async () => {
  relay = await startRelay(await freePort());
  // launch() starts Chromium with a new, empty --user-data-dir of its own
  // and removes it on close.
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 30000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  await relay?.stop();
});

async function openDemo(peer) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (err) => pageErrors.push(`${peer}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (restarting && restartNoise.test(msg.text())) return;
    consoleErrors.push(`${peer}: ${msg.text()} (${msg.location().url})`);
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(relay.base.replace(/:\d+$/, ''))) foreign.push(req.url());
  });
  await page.goto(`${relay.base}/?peer=${peer}`);
  return page;
}

// waitText waits until the element matching selector contains text.
function waitText(page, selector, text) {
  return page.waitForFunction(
    ([sel, t]) => (document.querySelector(sel)?.textContent || '').includes(t),
    [selector, text],
    { timeout: WAIT },
  );
}

async function joinRoom(page, room) {
  await page.getByLabel('Room name').fill(room);
  await page.getByLabel('Room name').press('Enter'); // the keyboard works as well as the mouse
  await waitText(page, '#rooms', room);
}

async function say(page, text) {
  await page.getByLabel(/^Message to room/).fill(text);
  await page.getByLabel(/^Message to room/).press('Enter');
}

test('two pages chat in a room, message each other and survive a relay restart', async () => {
  const alice = await openDemo('alice');
  const bob = await openDemo('bob');

  // Each page shows its own peer id once connected.
  await waitText(alice, '#peer-id', 'alice');
  await waitText(bob, '#peer-id', 'bob');
  await waitText(alice, '#status', 'connected');

  // The form refuses an invalid room name before anything is sent.
  const roomInput = alice.getByLabel('Room name');
  await roomInput.fill('no spaces allowed');
  assert.equal(await roomInput.evaluate((el) => el.validity.patternMismatch), true, 'the room name pattern is in force');
  await roomInput.fill('rooms/ok_name-1.x:y');
  assert.equal(await roomInput.evaluate((el) => el.checkValidity()), true, 'every allowed character passes');

  // Both join the room and see each other.
  await joinRoom(alice, 'lobby');
  await joinRoom(bob, 'lobby');
  await waitText(alice, '#presence', 'bob');
  await waitText(bob, '#presence', 'alice');
  await waitText(alice, '#log', 'bob joined lobby');

  // Room chat.
  await say(alice, 'hello from alice');
  await waitText(bob, '#log', 'alice: hello from alice');
  assert.equal(await alice.getByLabel(/^Message to room/).inputValue(), '', 'the sent message leaves the input');

  // Direct message: bob picks alice from the presence list.
  await bob.getByRole('button', { name: 'Message alice directly' }).click();
  assert.equal(await bob.getByLabel('Direct message to peer').inputValue(), 'alice');
  await bob.getByLabel('Direct message', { exact: true }).fill('psst, alice');
  await bob.getByRole('button', { name: 'Send direct' }).click();
  await waitText(alice, '#log', 'bob: psst, alice');
  const tag = await alice.locator('#log li.direct').last().locator('.tag').textContent();
  assert.equal(tag, 'direct');

  // Live stats from /stats.
  await alice.waitForFunction(() => Number(document.querySelector('#stat-connections')?.textContent) >= 2, null, { timeout: WAIT });

  if (process.env.DEMO_SCREENSHOT) {
    await say(bob, 'hi alice! ready for the call?');
    await waitText(alice, '#log', 'ready for the call?');
    await alice.locator('#direct-to').fill('bob');
    await alice.waitForTimeout(2200); // one stats refresh with the latest counts
    await alice.screenshot({ path: process.env.DEMO_SCREENSHOT });
  }

  // The relay restarts on the same port: the pages notice, reconnect with
  // their ids and join their room again.
  restarting = true;
  await relay.stop();
  await waitText(alice, '#status', 'reconnecting');
  await waitText(alice, '#log', 'reconnecting');
  await alice.waitForFunction(() => !document.querySelector('#presence').textContent.includes('bob'), null, { timeout: WAIT });
  relay = await startRelay(relay.port);
  await waitText(alice, '#status', 'connected');
  await waitText(bob, '#status', 'connected');
  restarting = false;
  await waitText(alice, '#peer-id', 'alice');
  await waitText(alice, '#presence', 'bob');
  await waitText(bob, '#presence', 'alice');
  await say(bob, 'back after the restart');
  await waitText(alice, '#log', 'bob: back after the restart');

  assert.deepEqual(pageErrors, [], 'no script errors in the pages');
  assert.deepEqual(consoleErrors, [], 'no errors in the browser console (invalid markup, failed loads)');
  assert.deepEqual(foreign, [], 'the demo loads nothing from other hosts');
});
