// Integration tests: wsrelay.js in Node.js with the ws package against the
// real relay binary (bin/wsrelay, built by make build) on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import { RelayClient, OP_PUBLISH, OP_DIRECT, generateKeyPair, keyId } from '../wsrelay.js';
import { freePort, startRelay, waitFor, roomToken } from './relay.mjs';
import { startProxy } from './proxy.mjs';

let relay;
const clients = [];

before(async () => {
  relay = await startRelay(await freePort(), { WSRELAY_RATE_MSGS: '0' });
});

after(async () => {
  for (const c of clients) c.close();
  await relay?.stop();
});

function open(peer, opts = {}) {
  const c = new RelayClient(relay.ws, { WebSocket, peer, minBackoff: 50, maxBackoff: 200, ackTimeout: 3000, ...opts });
  clients.push(c);
  return c;
}

function next(c, type, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within 5 s`)), 5000);
    const off = c.on(type, (ev) => {
      if (!pred(ev)) return;
      clearTimeout(timer);
      off();
      resolve(ev);
    });
  });
}

test('peers meet in a room, see each other and exchange room, direct and binary messages', async () => {
  const alice = open('alice-1');
  const bob = open('bob-1');
  const w = await alice.connect();
  assert.equal(w.peer, 'alice-1');
  assert.match(w.server, /^wsrelay\//);
  await bob.connect();

  assert.deepEqual(await alice.join('lobby-1'), []);
  const sawBob = next(alice, 'presence', (e) => e.joined === 'bob-1');
  assert.deepEqual(await bob.join('lobby-1'), ['alice-1']);
  await sawBob;
  assert.deepEqual(alice.peersIn('lobby-1'), ['bob-1']);

  const gotPublish = next(bob, 'publish');
  await alice.publish('lobby-1', { text: 'hi bob' }); // resolves on the relay's ack
  const m = await gotPublish;
  assert.deepEqual([m.room, m.from, m.data], ['lobby-1', 'alice-1', { text: 'hi bob' }]);

  const gotDirect = next(alice, 'direct');
  await bob.direct('alice-1', { sdp: 'v=0', kind: 'offer' });
  const d = await gotDirect;
  assert.deepEqual([d.from, d.data], ['bob-1', { sdp: 'v=0', kind: 'offer' }]);

  const gotBinary = next(bob, 'binary');
  alice.sendBinary({ op: OP_PUBLISH, to: 'lobby-1', ctype: 1, flags: 4, payload: new Uint8Array([9, 8, 7]) });
  const f = await gotBinary;
  assert.deepEqual([f.op, f.from, f.to, f.ctype, f.flags, [...f.payload]], [OP_PUBLISH, 'alice-1', 'lobby-1', 1, 4, [9, 8, 7]]);

  const gotBinaryDirect = next(alice, 'binary');
  bob.sendBinary({ op: OP_DIRECT, to: 'alice-1', payload: 'hello' });
  const g = await gotBinaryDirect;
  assert.deepEqual([g.op, g.from, g.to, Buffer.from(g.payload).toString()], [OP_DIRECT, 'bob-1', '', 'hello']);

  const left = next(alice, 'presence', (e) => e.left === 'bob-1');
  await bob.leave('lobby-1');
  await left;
  assert.deepEqual(alice.peersIn('lobby-1'), []);
});

test('relay errors reject the request that caused them', async () => {
  const carol = open('carol-1');
  await carol.connect();
  await assert.rejects(carol.direct('nobody-here', 1), { name: 'RelayError', code: 'peer_not_found' });
  await assert.rejects(carol.publish('not-joined', 1), { code: 'not_member' });
  await assert.rejects(carol.broadcast(1), { code: 'forbidden' });
  assert.equal(await carol.ping() > 0, true);
  assert.equal(carol.state, 'open', 'errors leave the connection open');
});

test('close() while the socket is still connecting ends the client quietly', async () => {
  // Before the fix, ws emitted an unhandled 'error' event here and the
  // process died: "WebSocket was closed before the connection was established".
  for (let i = 0; i < 20; i++) {
    const c = open(`early-${i}`);
    const opened = c.connect();
    assert.equal(c.state, 'connecting');
    c.close();
    await assert.rejects(opened, { name: 'RelayError', code: 'closed' });
    assert.equal(c.state, 'closed');
  }
  await new Promise((r) => setTimeout(r, 200)); // the sockets' own error and close events
  const check = open('early-check');
  await check.connect(); // the relay is unharmed
});

test('sends refused by the rate limiter fail at once with rate_limited', async () => {
  const limited = await startRelay(await freePort(), { WSRELAY_RATE_MSGS: '1', WSRELAY_RATE_BURST: '3' });
  try {
    const c = new RelayClient(limited.ws, { WebSocket, peer: 'hasty-1', ackTimeout: 10000, reconnect: false });
    clients.push(c);
    await c.connect();
    await c.join('hasty-room'); // the first of the burst of 3
    const started = Date.now();
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => c.publish('hasty-room', n)));
    const elapsed = Date.now() - started;
    assert.deepEqual(results.slice(0, 2).map((r) => r.status), ['fulfilled', 'fulfilled']);
    for (const r of results.slice(2)) {
      assert.equal(r.status, 'rejected');
      assert.equal(r.reason.code, 'rate_limited');
    }
    assert.ok(elapsed < 2000, `refused sends failed after ${elapsed} ms, not at once`);
    c.close();
  } finally {
    await limited.stop();
  }
});

test('a second connection with the same id replaces the first, which does not come back', async () => {
  const first = open('dup-1');
  await first.connect();
  const closed = next(first, 'close');
  const second = open('dup-1');
  await second.connect();
  const ev = await closed;
  assert.deepEqual([ev.code, ev.reconnect], [4001, false]);
  await new Promise((r) => setTimeout(r, 300)); // longer than the backoff
  assert.equal(first.state, 'closed');
  assert.equal(second.state, 'open', 'the newer connection was not taken back');
});

test('the deploy files only name metrics the relay exports', async () => {
  const text = await (await fetch(`${relay.base}/metrics`)).text();
  const exported = new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)[0]));
  // Exported only by clustered relays, or with the server API on.
  const clusterOnly = new Set(['wsrelay_cluster_connected', 'wsrelay_api_requests_total']);
  for (const file of ['prometheus-rules.yml', 'grafana-dashboard.json']) {
    const body = await readFile(new URL(`../../deploy/${file}`, import.meta.url), 'utf8');
    const used = new Set(body.match(/\b(?:wsrelay|process|go)_[a-z_]+/g));
    assert.ok(used.size >= 4, `${file} names metrics`);
    for (const name of used) {
      if (clusterOnly.has(name)) continue;
      assert.ok(exported.has(name), `${file} uses ${name}, which /metrics does not export`);
    }
  }
});

test('a client survives a relay restart: it reconnects with its id and joins its rooms again', async () => {
  const port = relay.port;
  const dave = open(undefined); // random id from the relay, kept across reconnects
  const erin = open('erin-1');
  const w = await dave.connect();
  await erin.connect();
  await dave.join('restart-room');
  await erin.join('restart-room');

  const closed = next(dave, 'close');
  await relay.stop();
  const ev = await closed;
  assert.deepEqual([ev.code, ev.reconnect], [1001, true], 'shutdown closes with 1001 and the client retries');

  relay = await startRelay(port, { WSRELAY_RATE_MSGS: '0' });
  await waitFor(() => dave.state === 'open' && erin.state === 'open', 10000, 'both clients reconnected');
  assert.equal(dave.peer, w.peer, 'same peer id after the restart');
  await waitFor(() => dave.peersIn('restart-room').includes('erin-1'), 5000, 'dave sees erin again');
  const got = next(dave, 'publish');
  await erin.publish('restart-room', 'after restart');
  assert.equal((await got).data, 'after restart');
});

test('a client whose connection is cut resumes its session: every message exactly once, no peer_left', async () => {
  const alice = open('alice-resume');
  const bob = open('bob-resume');
  const w = await alice.connect();
  assert.equal(typeof w.resume, 'string', 'the relay offers resume');
  assert.equal(w.resumed, false);
  await bob.connect();
  await alice.join('resume-room');
  await bob.join('resume-room');
  await waitFor(() => alice.peersIn('resume-room').includes('bob-resume'), 5000, 'alice sees bob');

  const got = [];
  alice.on('publish', (m) => got.push(m.data));
  let bobSawLeft = false;
  bob.on('peer_left', () => (bobSawLeft = true));
  for (let i = 1; i <= 3; i++) await bob.publish('resume-room', i);
  await waitFor(() => got.length === 3, 5000, 'the first three');

  const resumed = next(alice, 'resumed');
  alice._ws._socket.destroy(); // the network drops the TCP connection, no close frame
  for (let i = 4; i <= 10; i++) await bob.publish('resume-room', i); // acked: routed to alice's session
  const ev = await resumed;
  assert.deepEqual([ev.resumed, ev.missed, ev.rooms], [true, 0, ['resume-room']]);
  await waitFor(() => got.length >= 10, 5000, 'every message');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'in order, exactly once');
  assert.equal(alice.peer, 'alice-resume');
  assert.equal(bobSawLeft, false, 'no peer_left while alice was away');
  await alice.ping(); // carries received: the relay lets go of the replay
});

test('a client whose link dies silently notices by its ping and resumes the session', async (t) => {
  const proxy = await startProxy(relay.port);
  t.after(() => proxy.close());
  // carol's connection goes through the proxy; dan is connected directly.
  const carol = new RelayClient(proxy.ws, {
    WebSocket, peer: 'carol-silent', minBackoff: 50, maxBackoff: 200, ackTimeout: 3000, pingInterval: 200, pongTimeout: 300,
  });
  clients.push(carol);
  const dan = open('dan-silent');
  await carol.connect();
  await dan.connect();
  await carol.join('silent-room');
  await dan.join('silent-room');
  await waitFor(() => dan.peersIn('silent-room').includes('carol-silent'), 5000, 'dan sees carol');

  const got = [];
  carol.on('publish', (m) => got.push(m.data));
  const presence = [];
  dan.on('peer_left', (m) => presence.push(`left ${m.peer}`));
  dan.on('peer_joined', (m) => presence.push(`joined ${m.peer}`));
  const closes = [];
  carol.on('close', (c) => closes.push(c.code));
  for (let i = 1; i <= 3; i++) await dan.publish('silent-room', i);
  await waitFor(() => got.length === 3, 5000, 'the first three');

  // Not a byte either way, and no FIN: only carol's missing pong tells.
  const resumed = next(carol, 'resumed');
  assert.equal(proxy.freezeWebSockets(), 1);
  for (let i = 4; i <= 10; i++) await dan.publish('silent-room', i); // routed to carol's session
  const ev = await resumed;
  assert.deepEqual(closes, [4000], 'carol gave up on the silent socket herself');
  assert.deepEqual([ev.resumed, ev.missed, ev.rooms], [true, 0, ['silent-room']]);
  await waitFor(() => got.length >= 10, 5000, 'every message');
  for (let i = 11; i <= 12; i++) await dan.publish('silent-room', i);
  await waitFor(() => got.length >= 12, 5000, 'the live ones too');
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'in order, exactly once');
  assert.deepEqual(presence, [], 'dan saw carol neither leave nor come back');
  const upgrades = proxy.requests.filter((l) => l.startsWith('GET /ws'));
  assert.equal(upgrades.length, 2);
  assert.match(upgrades[1], /[?&]resume=[^&\s]+&received=\d+/);
});

test('key peers prove their keys, and room tokens from a backend open a private room', async (t) => {
  const secret = 'a-backend-secret-of-at-least-32-bytes!';
  const keyRelay = await startRelay(await freePort(), {
    WSRELAY_AUTH: 'key', WSRELAY_JWT_SECRET: secret, WSRELAY_JWT_REQUIRE_ROOMS: 'true',
  });
  t.after(() => keyRelay.stop());
  const keyed = async (device) => {
    const keyPair = await generateKeyPair();
    const c = new RelayClient(keyRelay.ws, { WebSocket, keyPair, device, minBackoff: 50, maxBackoff: 200, ackTimeout: 3000 });
    clients.push(c);
    const w = await c.connect();
    const base = await keyId(keyPair.publicKey);
    assert.equal(w.peer, device ? `${base}:${device}` : base);
    return { c, base };
  };
  const a = await keyed();
  const b = await keyed('phone');

  await assert.rejects(a.c.join('vip'), (e) => e.code === 'forbidden', 'no token under REQUIRE_ROOMS');
  await assert.rejects(a.c.join('vip', { token: roomToken(secret, a.base, 'other') }), (e) => e.code === 'forbidden');
  await assert.rejects(a.c.join('vip', { token: roomToken(secret, a.base, 'vip', -60) }), (e) => e.code === 'forbidden', 'expired');
  assert.deepEqual(await a.c.join('vip', { token: roomToken(secret, a.base, 'vip') }), []);
  // The room token names the base id: the device suffix is not part of it.
  assert.deepEqual(await b.c.join('vip', { token: roomToken(secret, b.base, 'vip') }), [a.base]);

  const got = next(a.c, 'publish');
  await b.c.publish('vip', { text: 'signed in by key' });
  const m = await got;
  assert.deepEqual([m.from, m.data], [`${b.base}:phone`, { text: 'signed in by key' }]);

  // A key that cannot be a key is refused at the upgrade.
  const status = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${keyRelay.ws}?key=AAAA`);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
    ws.on('open', () => reject(new Error('upgraded with a malformed key')));
    ws.on('error', () => {});
  });
  assert.equal(status, 400);
});
