// The demo page in a real browser: headless Chromium driven by
// playwright-core against bin/wsrelay on loopback. Two pages meet in a room,
// chat, message each other directly and see each other's presence; then the
// relay restarts and both pages reconnect and join the room again. A page
// whose connection a TCP proxy cuts resumes its session by itself. A page
// with a key identity signs the relay's challenge with WebCrypto's Ed25519
// and enters a private room with a room token.
//
// CHROMIUM names the browser (default /usr/bin/chromium, Debian's package);
// DEMO_SCREENSHOT, when set, is where to save a screenshot of the demo page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { RelayClient, generateKeyPair, keyId } from '../wsrelay.js';
import { freePort, startRelay, roomToken, waitFor } from './relay.mjs';
import { startProxy } from './proxy.mjs';

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

async function openDemo(peer, base = relay.base, query = `?peer=${peer}`) {
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
    if (!req.url().startsWith(base.replace(/:\d+$/, ''))) foreign.push(req.url());
  });
  await page.goto(`${base}/${query}`);
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
  // The new relay knows nothing of the old sessions: the page says so.
  await waitText(alice, '#log', 'new session; joining lobby again');
  await waitText(alice, '#peer-id', 'alice');
  await waitText(alice, '#presence', 'bob');
  await waitText(bob, '#presence', 'alice');
  await say(bob, 'back after the restart');
  await waitText(alice, '#log', 'bob: back after the restart');

  assert.deepEqual(pageErrors, [], 'no script errors in the pages');
  assert.deepEqual(consoleErrors, [], 'no errors in the browser console (invalid markup, failed loads)');
  assert.deepEqual(foreign, [], 'the demo loads nothing from other hosts');
});

// Session resume in a real browser (docs/protocol.md section 10). The page is
// served, and its WebSocket carried, by a TCP proxy in this test. The proxy
// resets the WebSocket's two TCP connections, no close frame, and holds the
// page's reconnect for a while, as a network that fails and comes back would.
// A peer in Node.js keeps chatting in the page's room all along, and a second
// page in the room watches. The page resumes by itself through the proxy and
// shows every message once, in order; the others never see the page leave.
test('a page whose connection is cut resumes its session: every message once and in order, no peer_left', async (t) => {
  const own = await startRelay(await freePort());
  const proxy = await startProxy(own.port);
  const node = { c: null, sending: false };
  t.after(async () => {
    node.sending = false;
    node.c?.close();
    await proxy.close();
    await own.stop();
  });
  const room = 'resume-room';

  // No ?peer: the relay picks the id, and it must not change.
  const page = await openDemo('resume-page', proxy.base, `?room=${room}`);
  await waitText(page, '#status', 'connected');
  await waitText(page, '#rooms', room);
  const pageId = await page.evaluate(() => window.relay.peer);
  assert.match(pageId, /^[A-Za-z0-9_-]{22}$/, 'a relay-assigned id');
  await waitText(page, '#peer-id', pageId);

  node.c = new RelayClient(own.ws, { WebSocket, peer: 'node-chatter', ackTimeout: WAIT, reconnect: false });
  await node.c.connect();
  const presence = []; // what the Node peer is told about the page
  node.c.on('peer_joined', (m) => m.peer === pageId && presence.push(`joined ${m.room}`));
  node.c.on('peer_left', (m) => m.peer === pageId && presence.push(`left ${m.room}`));
  assert.deepEqual(await node.c.join(room), [pageId]);
  await waitText(page, '#log', `node-chatter joined ${room}`);
  // A second page in the room, connected to the relay directly, watches.
  const watcher = await openDemo('resume-watcher', own.base, `?peer=watcher&room=${room}`);
  await waitText(watcher, '#presence', pageId);
  await waitText(page, '#log', `watcher joined ${room}`);

  // The Node peer publishes a numbered line every 20 ms, each once the relay
  // acknowledged the one before (routed: to the page's connection or, while
  // it is away, to its detached session).
  const sent = [];
  node.sending = true;
  const chatter = (async () => {
    for (let i = 1; node.sending; i++) {
      const text = `line ${i}`;
      await node.c.publish(room, { text });
      sent.push(text);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const chatShown = () => page.evaluate(() => [...document.querySelectorAll('#log li.publish:not(.mine) .text')].map((el) => el.textContent));
  const sentAtLeast = (n, what) => waitFor(() => sent.length >= n, WAIT, what);

  await page.waitForFunction(() => document.querySelectorAll('#log li.publish').length >= 5, null, { timeout: WAIT });

  // The network fails: both TCP connections of the page's WebSocket die and
  // new connections hang until it is back.
  proxy.down();
  assert.equal(proxy.cutWebSockets(), 1, 'the page had one WebSocket through the proxy');
  const atCut = sent.length;
  await waitText(page, '#status', 'reconnecting');
  const resumeRequest = /^GET \/ws\?.*\bresume=[^&\s]+&received=\d+/;
  await waitFor(() => proxy.requests.some((l) => resumeRequest.test(l)), WAIT, 'the page asking to resume, held by the proxy');
  await sentAtLeast(atCut + 10, 'ten lines sent while the page is away');
  assert.equal(await page.evaluate(() => window.relay.state), 'reconnecting', 'the page was away while they were sent');
  proxy.up();

  await waitText(page, '#log', 'session resumed; nothing missed');
  await waitText(page, '#status', 'connected');
  const afterResume = sent.length;
  await sentAtLeast(afterResume + 5, 'five lines after the resume');
  node.sending = false;
  await chatter;
  const last = sent[sent.length - 1];
  await page.waitForFunction((l) => [...document.querySelectorAll('#log li.publish .text')].some((el) => el.textContent === l), last, { timeout: WAIT });

  assert.ok(sent.length >= atCut + 15, `${sent.length} lines sent`);
  assert.deepEqual(await chatShown(), sent, 'every line shown once, in order');
  assert.deepEqual(await page.evaluate(() => [window.relay.peer, window.relay.welcome.resumed]), [pageId, true]);
  assert.equal(await page.locator('#peer-id').textContent(), pageId, 'the page shows the same peer id');
  const log = await page.locator('#log').textContent();
  assert.equal(log.split('session resumed').length - 1, 1, 'resumed once');
  assert.ok(!log.includes('new session'), 'no new session');
  assert.ok(node.c.peersIn(room).includes(pageId), 'the page stayed in the room for the other member');
  assert.deepEqual(presence, [], 'the other member saw no peer_left or peer_joined for the page');
  const watched = await watcher.locator('#log').textContent();
  assert.ok(!watched.includes(`${pageId} left`) && !watched.includes(`${pageId} joined`), `the watching page showed the page neither leave nor join: ${watched.slice(0, 200)}`);
  assert.ok(await watcher.locator('#presence').textContent().then((t) => t.includes(pageId)), 'the watching page still lists the page');

  // The page came back through the proxy, with its token and count.
  const upgrades = proxy.requests.filter((l) => l.startsWith('GET /ws'));
  assert.equal(upgrades.length, 2, `two WebSocket requests: ${upgrades.join(' | ')}`);
  assert.match(upgrades[1], resumeRequest);
  const metrics = await (await fetch(`${own.base}/metrics`)).text();
  assert.match(metrics, /^wsrelay_sessions_resumed_total 1$/m);
  assert.match(metrics, /^wsrelay_sessions_resume_failed_total 0$/m);

  assert.deepEqual(pageErrors, [], 'no script errors in the page');
  assert.deepEqual(consoleErrors, [], 'no errors in the browser console');
  assert.deepEqual(foreign, [], 'the demo loads nothing from other hosts');
});

// Auth mode key is a relay of its own (a relay has one auth mode): there the
// page's key peer meets a key peer in Node.js. Room tokens, JWTs signed by
// the "backend" (this test), open the private room; the relay requires them.
test('a key identity made in the browser signs the challenge and meets another key peer in a private room', async (t) => {
  const secret = 'the-backend-signs-room-tokens-with-this';
  const keyRelay = await startRelay(await freePort(), {
    WSRELAY_AUTH: 'key', WSRELAY_JWT_SECRET: secret, WSRELAY_JWT_REQUIRE_ROOMS: 'true',
  });
  const other = { c: null };
  t.after(async () => {
    other.c?.close();
    await keyRelay.stop();
  });

  const page = await openDemo('key-page', keyRelay.base, '?key=1');
  await page.waitForFunction(() => /^k:[A-Za-z0-9_-]{43}$/.test(document.querySelector('#key-id')?.textContent || ''), null, { timeout: WAIT });
  const pageId = await page.locator('#key-id').textContent();
  assert.ok(await page.getByLabel('Key identity').isChecked());
  // The relay only welcomes a key peer whose signature verified.
  await waitText(page, '#status', 'connected');
  await waitText(page, '#peer-id', pageId);
  const hasWebCryptoKey = await page.evaluate(() => window.relay.options.keyPair.privateKey.algorithm.name === 'Ed25519'
    && window.relay.options.keyPair.privateKey.extractable === false);
  assert.ok(hasWebCryptoKey, 'the page signs with a non-extractable WebCrypto Ed25519 key');

  // Without a room token the private room stays closed.
  await page.getByLabel('Room name').fill('vip');
  await page.getByLabel('Room name').press('Enter');
  await waitText(page, '#log', 'join vip: room not allowed for this peer');

  // A peer in Node.js with its own key pair and room token.
  const keyPair = await generateKeyPair();
  const nodeId = await keyId(keyPair.publicKey);
  other.c = new RelayClient(keyRelay.ws, { WebSocket, keyPair, ackTimeout: WAIT });
  assert.equal((await other.c.connect()).peer, nodeId);
  await other.c.join('vip', { token: roomToken(secret, nodeId, 'vip') });

  // The page enters with the token the backend issued for its k: id.
  await page.getByLabel(/^Room token/).fill(roomToken(secret, pageId, 'vip'));
  await page.getByLabel('Room name').press('Enter');
  await waitText(page, '#rooms', 'vip');
  await waitText(page, '#presence', nodeId);

  const got = new Promise((resolve) => other.c.on('publish', resolve));
  await say(page, 'hello from a key made in the browser');
  const m = await got;
  assert.deepEqual([m.room, m.from, m.data.text], ['vip', pageId, 'hello from a key made in the browser']);
  await other.c.direct(pageId, { text: 'hello back, key to key' });
  await waitText(page, '#log', `${nodeId}: hello back, key to key`);

  assert.deepEqual(pageErrors, [], 'no script errors in the pages');
  assert.deepEqual(foreign, [], 'the demo loads nothing from other hosts');
});

test('with WSRELAY_COMPRESSION=true Chromium negotiates permessage-deflate and messages arrive intact', async () => {
  const zrelay = await startRelay(await freePort(), { WSRELAY_COMPRESSION: 'true' });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (err) => pageErrors.push(`compression page: ${err.message}`));
    await page.goto(`${zrelay.base}/`);
    const r = await page.evaluate(async () => {
      const { RelayClient, OP_DIRECT } = await import('/wsrelay.js');
      const a = new RelayClient('/ws', { peer: 'za', reconnect: false });
      const b = new RelayClient('/ws', { peer: 'zb', reconnect: false });
      await a.connect();
      await b.connect();
      await a.join('zip');
      await b.join('zip');
      // An SDP offer of about 6 KB, and a small chat line.
      const sdp = 'v=0\r\n' + 'a=candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host generation 0\r\n'.repeat(90);
      const published = new Promise((resolve) => {
        const got = [];
        b.on('message', (m) => {
          if (m.type === 'publish') got.push(m.data);
          if (got.length === 2) resolve(got);
        });
      });
      await a.publish('zip', { kind: 'offer', sdp });
      await a.publish('zip', { kind: 'chat', text: 'hi' });
      const got = await published;
      // A binary frame of 5000 bytes, b to a.
      const payload = new Uint8Array(5000).map((_, i) => i % 7);
      const binary = new Promise((resolve) => a.on('binary', (f) => resolve(Array.from(f.payload))));
      b.sendBinary({ op: OP_DIRECT, to: 'za', payload });
      const bin = await binary;
      const out = {
        compressed: [a.compressed, b.compressed],
        sdpIntact: got[0].kind === 'offer' && got[0].sdp === sdp,
        chatIntact: got[1].kind === 'chat' && got[1].text === 'hi',
        binaryIntact: bin.length === payload.length && bin.every((x, i) => x === payload[i]),
        sdpBytes: sdp.length,
      };
      a.close();
      b.close();
      return out;
    });
    assert.deepEqual(r.compressed, [true, true], 'both connections negotiated permessage-deflate');
    assert.ok(r.sdpIntact, 'the 6 KB offer arrived intact');
    assert.ok(r.chatIntact, 'the small message arrived intact');
    assert.ok(r.binaryIntact, 'the binary frame arrived intact');
    // The relay sent the offer compressed, and Chromium sent it compressed:
    // the relay read fewer bytes than the offer alone.
    const metrics = await (await fetch(`${zrelay.base}/metrics`)).text();
    const saved = Number(/^wsrelay_compression_saved_bytes_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(saved > r.sdpBytes / 2, `wsrelay_compression_saved_bytes_total ${saved}, want most of the ${r.sdpBytes}-byte offer`);
    const received = Number(/^wsrelay_bytes_received_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(received < r.sdpBytes, `the relay read ${received} bytes in all, less than the ${r.sdpBytes}-byte offer: Chromium compressed it`);
    await context.close();
    assert.deepEqual(pageErrors, [], 'no script errors in the page');
  } finally {
    await zrelay.stop();
  }
});
