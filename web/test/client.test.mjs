// Unit tests of wsrelay.js against a scripted fake WebSocket: framing,
// backoff, acks, presence, reconnect and liveness, without a relay.
import { test, describe, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  RelayClient, RelayError, encodeFrame, decodeFrame, backoffDelay, isValidPeerId, isValidRoom,
  OP_DIRECT, OP_PUBLISH, OP_BROADCAST,
} from '../wsrelay.js';

// FakeSocket plays the relay's side of one connection.
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = new URL(url);
    this.sent = [];
    this.closed = null;
    this.binaryType = 'blob';
    FakeSocket.all.push(this);
  }
  send(data) {
    if (this.closed) throw new Error('send on closed socket');
    this.sent.push(typeof data === 'string' ? JSON.parse(data) : data);
  }
  close(code, reason) {
    this.closed = { code, reason };
  }
  // relay side
  deliver(msg) {
    this.onmessage?.({ data: typeof msg === 'string' || msg instanceof ArrayBuffer ? msg : JSON.stringify(msg) });
  }
  welcome(peer, extra = {}) {
    this.deliver({ type: 'welcome', peer, server: 'wsrelay/test', heartbeat_ms: 25000, timeout_ms: 60000, max_message_bytes: 65536, queue_size: 256, ...extra });
  }
  drop(code, reason = '') {
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }
  last() {
    return this.sent[this.sent.length - 1];
  }
}

const latest = () => FakeSocket.all[FakeSocket.all.length - 1];

function client(opts = {}) {
  const c = new RelayClient('ws://relay.test/ws', { WebSocket: FakeSocket, minBackoff: 10, maxBackoff: 40, ackTimeout: 200, ...opts });
  return c;
}

async function connected(opts, peer = 'alice') {
  const c = client(opts);
  const p = c.connect();
  latest().welcome(peer);
  await p;
  return c;
}

beforeEach(() => {
  FakeSocket.all = [];
});

describe('binary frames', () => {
  test('encode then decode keeps every field', () => {
    const payload = new Uint8Array([0, 1, 2, 250, 255]);
    for (const [op, to] of [[OP_DIRECT, 'bob'], [OP_PUBLISH, 'rooms/lobby'], [OP_BROADCAST, '']]) {
      const bytes = encodeFrame({ op, to, ctype: 7, flags: 0x81, payload });
      assert.deepEqual([...bytes.subarray(0, 6)], [1, op, 7, 0x81, 0, to.length]);
      const f = decodeFrame(bytes);
      assert.equal(f.op, op);
      assert.equal(f.to, to);
      assert.equal(f.from, '');
      assert.equal(f.ctype, 7);
      assert.equal(f.flags, 0x81);
      assert.deepEqual([...f.payload], [...payload]);
    }
  });

  test('decodes a server frame with from and room', () => {
    const bytes = new Uint8Array([1, 2, 1, 0, 5, ...Buffer.from('alice'), 5, ...Buffer.from('lobby'), 104, 105]);
    const f = decodeFrame(bytes.buffer);
    assert.equal(f.from, 'alice');
    assert.equal(f.to, 'lobby');
    assert.equal(new TextDecoder().decode(f.payload), 'hi');
  });

  test('string payloads are UTF-8', () => {
    const f = decodeFrame(encodeFrame({ op: OP_BROADCAST, payload: 'héllo' }));
    assert.equal(new TextDecoder().decode(f.payload), 'héllo');
  });

  test('malformed headers are refused', () => {
    const cases = {
      short: [1, 1, 0, 0],
      version: [2, 1, 0, 0, 0, 0],
      op: [1, 9, 0, 0, 0, 0],
      'from past the end': [1, 1, 0, 0, 9, 0],
      'to past the end': [1, 1, 0, 0, 0, 4, 97],
    };
    for (const [name, bytes] of Object.entries(cases)) {
      assert.throws(() => decodeFrame(new Uint8Array(bytes)), RangeError, name);
    }
  });

  test('invalid outgoing frames are refused before sending', () => {
    assert.throws(() => encodeFrame({ op: 4, to: '' }), RangeError);
    assert.throws(() => encodeFrame({ op: OP_DIRECT, to: 'bad id' }), TypeError);
    assert.throws(() => encodeFrame({ op: OP_PUBLISH, to: '' }), TypeError);
    assert.throws(() => encodeFrame({ op: OP_BROADCAST, to: 'x' }), TypeError);
    assert.throws(() => encodeFrame({ op: OP_BROADCAST, ctype: 256 }), RangeError);
  });

  test('peer id and room rules', () => {
    assert.ok(isValidPeerId('tg:42:phone'));
    assert.ok(!isValidPeerId('a/b'));
    assert.ok(!isValidPeerId('x'.repeat(65)));
    assert.ok(isValidRoom('doc/42'));
    assert.ok(!isValidRoom(''));
  });
});

test('backoff doubles up to the cap, with jitter in the upper half', () => {
  const lo = () => 0;
  const hi = () => 0.999999;
  assert.deepEqual([0, 1, 2, 3, 10].map((a) => backoffDelay(a, 100, 1000, lo)), [50, 100, 200, 400, 500]);
  assert.deepEqual([0, 1, 2, 3, 10].map((a) => backoffDelay(a, 100, 1000, hi)), [100, 200, 400, 800, 1000]);
  const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(3, 100, 1000)));
  assert.ok(seen.size > 10, 'jitter spreads the delays');
});

test('connect resolves with the welcome and asks for the configured peer id', async () => {
  const c = client({ peer: 'alice', token: 'T', params: { app: 'x' } });
  const p = c.connect();
  const ws = latest();
  assert.equal(ws.url.searchParams.get('peer'), 'alice');
  assert.equal(ws.url.searchParams.get('token'), 'T');
  assert.equal(ws.url.searchParams.get('app'), 'x');
  assert.equal(ws.binaryType, 'arraybuffer');
  ws.welcome('alice');
  const w = await p;
  assert.equal(w.peer, 'alice');
  assert.equal(c.peer, 'alice');
  assert.equal(c.state, 'open');
  c.close();
});

test('a malformed URL fails connect at once', () => {
  const c = new RelayClient('not a url', { WebSocket: FakeSocket });
  assert.throws(() => c.connect(), TypeError);
  assert.equal(FakeSocket.all.length, 0);
  assert.equal(c.state, 'idle');
});

test('http URLs become ws URLs', () => {
  client({}).connect();
  assert.equal(latest().url.protocol, 'ws:');
  new RelayClient('https://relay.test/ws', { WebSocket: FakeSocket }).connect();
  assert.equal(latest().url.protocol, 'wss:');
});

test('join resolves with the members and presence follows joins and leaves', async () => {
  const c = await connected();
  const events = [];
  c.on('presence', (e) => events.push(e));
  const p = c.join('lobby');
  const req = latest().last();
  assert.equal(req.type, 'join');
  assert.equal(req.room, 'lobby');
  latest().deliver({ type: 'joined', room: 'lobby', peers: ['bob'] });
  assert.deepEqual(await p, ['bob']);
  latest().deliver({ type: 'peer_joined', room: 'lobby', peer: 'carol' });
  latest().deliver({ type: 'peer_left', room: 'lobby', peer: 'bob' });
  assert.deepEqual(c.peersIn('lobby'), ['carol']);
  assert.deepEqual(events.map((e) => [e.peers.join(','), e.joined, e.left]), [
    ['bob', undefined, undefined],
    ['bob,carol', 'carol', undefined],
    ['carol', undefined, 'bob'],
  ]);
  const l = c.leave('lobby');
  latest().deliver({ type: 'left', room: 'lobby' });
  await l;
  assert.deepEqual(c.rooms(), []);
  assert.deepEqual(c.peersIn('lobby'), []);
  c.close();
});

test('a refused join rejects with the relay error and is not retried', async () => {
  const c = await connected();
  const p = c.join('full-room');
  latest().deliver({ type: 'error', code: 'room_full', message: 'room is full', id: latest().last().id });
  await assert.rejects(p, (e) => e instanceof RelayError && e.code === 'room_full');
  assert.deepEqual(c.rooms(), []);
  c.close();
});

test('a join with a room token sends it, and again on the re-join after a reconnect', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const c = client({ minBackoff: 20, maxBackoff: 20 });
  const p = c.connect();
  latest().welcome('alice');
  await p;
  const j = c.join('vip', { token: 'tok.en.sig' });
  assert.deepEqual([latest().last().type, latest().last().room, latest().last().token], ['join', 'vip', 'tok.en.sig']);
  latest().deliver({ type: 'joined', room: 'vip', peers: [] });
  await j;
  const plain = c.join('lobby');
  assert.equal('token' in latest().last(), false, 'no token field without a token');
  latest().deliver({ type: 'joined', room: 'lobby', peers: [] });
  await plain;
  const reopened = new Promise((r) => c.on('open', r));
  latest().drop(1006);
  t.mock.timers.tick(20);
  const ws = latest();
  ws.welcome('alice');
  await reopened;
  assert.deepEqual(ws.sent.map((m) => [m.type, m.room, m.token]), [['join', 'vip', 'tok.en.sig'], ['join', 'lobby', undefined]]);
  await assert.rejects(c.join('x', { token: 7 }), TypeError);
  c.close();
});

test('a join refused as forbidden rejects and is not retried', async () => {
  const c = await connected();
  const p = c.join('private', { token: 'expired' });
  latest().deliver({ type: 'error', code: 'forbidden', message: 'room token refused', id: latest().last().id });
  await assert.rejects(p, (e) => e instanceof RelayError && e.code === 'forbidden');
  assert.deepEqual(c.rooms(), []);
  c.close();
});

test('publish, direct and broadcast resolve on their ack', async () => {
  const c = await connected();
  const ws = latest();
  const sends = [
    [c.publish('lobby', { text: 'hi' }), { type: 'publish', room: 'lobby', data: { text: 'hi' } }],
    [c.direct('bob', [1, 2]), { type: 'direct', to: 'bob', data: [1, 2] }],
    [c.broadcast(null), { type: 'broadcast', data: null }],
  ];
  const ids = new Set();
  for (const [i, [, want]] of sends.entries()) {
    const { id, ...rest } = ws.sent[i];
    assert.deepEqual(rest, want);
    ids.add(id);
  }
  assert.equal(ids.size, 3, 'each request has its own id');
  for (const id of [...ids].reverse()) ws.deliver({ type: 'ack', id });
  await Promise.all(sends.map(([p]) => p));
  c.close();
});

test('an error with the request id rejects that request only', async () => {
  const c = await connected();
  const ws = latest();
  const a = c.direct('ghost', 1);
  const b = c.direct('bob', 2);
  ws.deliver({ type: 'error', code: 'peer_not_found', message: 'no such peer', id: ws.sent[0].id });
  ws.deliver({ type: 'ack', id: ws.sent[1].id });
  await assert.rejects(a, { code: 'peer_not_found', message: 'no such peer' });
  await b;
  c.close();
});

test('a rate_limited error fails the requests in flight at once, not after the ack timeout', async () => {
  const c = await connected({ ackTimeout: 60000 });
  const ws = latest();
  const accepted = c.publish('lobby', 1);
  const dropped = [c.publish('lobby', 2), c.direct('bob', 3)];
  const events = [];
  c.on('error', (e) => events.push(e.code));
  ws.deliver({ type: 'ack', id: ws.sent[0].id });
  ws.deliver({ type: 'error', code: 'rate_limited', message: 'rate limit exceeded, messages dropped' });
  await accepted;
  for (const p of dropped) await assert.rejects(p, { name: 'RelayError', code: 'rate_limited' });
  assert.deepEqual(events, ['rate_limited'], 'the error is also an event: ack: false sends and binary frames were dropped too');
  const later = c.publish('lobby', 4); // sent after the error: not affected
  ws.deliver({ type: 'ack', id: ws.last().id });
  await later;
  c.close();
});

test('an unanswered request times out', async () => {
  const c = await connected({ ackTimeout: 30 });
  await assert.rejects(c.publish('lobby', 1), { code: 'ack_timeout' });
  await assert.rejects(c.publish('lobby', 1, { timeout: 10 }), { code: 'ack_timeout' });
  c.close();
});

test('ack: false resolves once sent and sends no id', async () => {
  const c = await connected();
  await c.publish('lobby', 'x', { ack: false });
  assert.equal(latest().last().id, undefined);
  c.close();
});

test('a message over max_message_bytes is refused locally', async () => {
  const c = client();
  const p = c.connect();
  latest().welcome('alice', { max_message_bytes: 200 });
  await p;
  await assert.rejects(c.publish('lobby', 'é'.repeat(100)), { code: 'too_large' });
  assert.equal(latest().sent.length, 0);
  c.close();
});

test('requests while disconnected fail at once; pending ones fail on disconnect', async () => {
  const c = client({ reconnect: false });
  await assert.rejects(c.publish('lobby', 1), { code: 'not_connected' });
  assert.throws(() => c.sendBinary({ op: OP_BROADCAST }), { code: 'not_connected' });
  const p = c.connect();
  latest().welcome('alice');
  await p;
  const pending = c.direct('bob', 1);
  latest().drop(1006);
  await assert.rejects(pending, { code: 'disconnected' });
  assert.equal(c.state, 'closed');
});

test('messages, binary frames and overflow are events', async () => {
  const c = await connected();
  const got = {};
  for (const t of ['direct', 'publish', 'broadcast', 'binary', 'overflow', 'error']) c.on(t, (e) => (got[t] = e));
  const ws = latest();
  ws.deliver({ type: 'direct', from: 'bob', data: { sdp: 'x' } });
  ws.deliver({ type: 'publish', room: 'lobby', from: 'bob', data: 'hi' });
  ws.deliver({ type: 'broadcast', from: 'bob', data: 1 });
  ws.deliver({ type: 'overflow', dropped: 12 });
  ws.deliver({ type: 'error', code: 'rate_limited', message: 'slow down' });
  ws.deliver(new Uint8Array([1, 1, 3, 0, 3, 98, 111, 98, 0, 42]).buffer);
  assert.deepEqual(got.direct.data, { sdp: 'x' });
  assert.equal(got.publish.room, 'lobby');
  assert.equal(got.broadcast.from, 'bob');
  assert.deepEqual(got.overflow, { dropped: 12 });
  assert.equal(got.error.code, 'rate_limited');
  assert.equal(got.binary.from, 'bob');
  assert.equal(got.binary.ctype, 3);
  assert.deepEqual([...got.binary.payload], [42]);
  c.close();
});

test('a failing listener is reported and does not stop the others', async () => {
  const c = await connected();
  const reported = [];
  globalThis.reportError = (e) => reported.push(e);
  try {
    let second = 0;
    c.on('direct', () => {
      throw new Error('listener bug');
    });
    c.on('direct', () => second++);
    latest().deliver({ type: 'direct', from: 'bob', data: 1 });
    assert.equal(second, 1);
    assert.equal(reported[0]?.message, 'listener bug');
    assert.equal(c.state, 'open');
  } finally {
    delete globalThis.reportError;
    c.close();
  }
});

test('after a lost connection it reconnects with backoff, keeps its id and joins its rooms again', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const c = client({ minBackoff: 20, maxBackoff: 20 });
  const p = c.connect();
  latest().welcome('Xr4nd0m');
  await p;
  const j = c.join('lobby');
  latest().deliver({ type: 'joined', room: 'lobby', peers: [] });
  await j;
  const closes = [];
  c.on('close', (e) => closes.push(e));
  const reopened = new Promise((r) => c.on('open', r));

  latest().drop(1001, 'server shutting down');
  assert.equal(c.state, 'reconnecting');
  assert.equal(closes[0].reconnect, true);
  assert.ok(closes[0].delay >= 10 && closes[0].delay <= 20, `delay ${closes[0].delay}`);
  t.mock.timers.tick(closes[0].delay - 1);
  assert.equal(FakeSocket.all.length, 1, 'waits before reconnecting');
  t.mock.timers.tick(1);
  assert.equal(FakeSocket.all.length, 2);
  const ws = latest();
  assert.equal(ws.url.searchParams.get('peer'), 'Xr4nd0m', 'keeps the assigned id');
  ws.welcome('Xr4nd0m');
  await reopened;
  assert.deepEqual(ws.sent.map((m) => [m.type, m.room]), [['join', 'lobby']]);
  ws.deliver({ type: 'joined', room: 'lobby', peers: ['bob'] });
  assert.deepEqual(c.peersIn('lobby'), ['bob']);
  c.close();
});

test('failed attempts back off exponentially until a welcome resets the count', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const c = client({ minBackoff: 10, maxBackoff: 1000, random: () => 0.999 });
  const delays = [];
  c.on('reconnecting', (r) => delays.push(r.delay));
  c.connect();
  for (let i = 0; i < 5; i++) {
    latest().drop(1006);
    t.mock.timers.tick(delays[i]);
  }
  assert.equal(FakeSocket.all.length, 6);
  assert.deepEqual(delays, [10, 20, 40, 80, 160]);
  latest().welcome('alice');
  assert.equal(c.attempt, 0);
  latest().drop(1006);
  assert.equal(delays[5], 10);
  c.close();
});

test('close code 4001 (replaced) does not reconnect', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const c = await connected();
  const closes = [];
  c.on('close', (e) => closes.push(e));
  latest().drop(4001, 'replaced');
  t.mock.timers.tick(60000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(c.state, 'closed');
  assert.deepEqual([closes[0].code, closes[0].reconnect], [4001, false]);
});

test('a join made while reconnecting completes on the new connection', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const c = await connected();
  latest().drop(1006);
  const j = c.join('later');
  t.mock.timers.tick(40);
  assert.equal(FakeSocket.all.length, 2);
  const ws = latest();
  ws.welcome('alice');
  assert.deepEqual(ws.sent.map((m) => m.room), ['later']);
  ws.deliver({ type: 'joined', room: 'later', peers: ['bob'] });
  assert.deepEqual(await j, ['bob']);
  c.close();
});

test('a join made while reconnecting, of a room the resumed session is still in, resolves on the resume', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const c = client({ minBackoff: 20, maxBackoff: 20, ackTimeout: 1000 });
  const p = c.connect();
  latest().welcome('alice', { resume: 'tok-1', resumed: false });
  await p;
  const first = c.join('lobby');
  latest().deliver({ type: 'joined', room: 'lobby', peers: ['bob'] });
  await first;
  latest().drop(1006);
  let result;
  c.join('lobby').then((v) => (result = { v }), (err) => (result = { err }));
  t.mock.timers.tick(20);
  const ws = latest();
  assert.equal(ws.url.searchParams.get('resume'), 'tok-1');
  ws.welcome('alice', { resume: 'tok-2', resumed: true, rooms: ['lobby'], missed: 0 });
  await Promise.resolve();
  assert.deepEqual(ws.sent, [], 'nothing to join: the session is still in lobby');
  assert.deepEqual(result, { v: ['bob'] }, 'the join resolved with the members, not after the ack timeout');
  c.close();
});

test('close() stops reconnecting and closes the socket with 1000', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const c = await connected();
  const ws = latest();
  c.close();
  assert.deepEqual(ws.closed, { code: 1000, reason: '' });
  assert.equal(c.state, 'closed');
  t.mock.timers.tick(60000);
  assert.equal(FakeSocket.all.length, 1);
});

describe('liveness', () => {
  test('pings when idle and stays connected while the relay answers', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const c = await connected({ pingInterval: 1000, pongTimeout: 500 });
    const ws = latest();
    t.mock.timers.tick(999);
    assert.equal(ws.sent.length, 0);
    t.mock.timers.tick(1);
    assert.deepEqual(ws.sent, [{ type: 'ping' }]);
    t.mock.timers.tick(400);
    ws.deliver({ type: 'pong', time: Date.now() });
    t.mock.timers.tick(999);
    assert.equal(c.state, 'open');
    assert.equal(ws.closed, null);
    assert.equal(ws.sent.length, 1);
    t.mock.timers.tick(1);
    assert.equal(ws.sent.length, 2, 'pings again after the next idle period');
    c.close();
  });

  test('the relay heartbeat sets the default idle period', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const c = await connected(); // welcome says heartbeat_ms 25000
    t.mock.timers.tick(24999);
    assert.equal(latest().sent.length, 0);
    t.mock.timers.tick(1);
    assert.deepEqual(latest().sent, [{ type: 'ping' }]);
    c.close();
  });

  test('does not ping while frames arrive', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const c = await connected({ pingInterval: 1000, pongTimeout: 1000 });
    const ws = latest();
    for (let i = 0; i < 10; i++) {
      t.mock.timers.tick(500);
      ws.deliver({ type: 'publish', room: 'r', from: 'b', data: i });
    }
    assert.equal(ws.sent.filter((m) => m.type === 'ping').length, 0);
    c.close();
  });

  test('a missing pong means a dead link: close and reconnect', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const c = await connected({ pingInterval: 1000, pongTimeout: 500, minBackoff: 10, maxBackoff: 10 });
    const ws = latest();
    const closes = [];
    c.on('close', (e) => closes.push(e));
    t.mock.timers.tick(1000); // ping
    t.mock.timers.tick(499);
    assert.equal(closes.length, 0);
    t.mock.timers.tick(1);
    assert.equal(closes[0]?.code, 4000);
    assert.equal(closes[0].reconnect, true);
    assert.equal(ws.closed.code, 4000);
    t.mock.timers.tick(10);
    assert.equal(FakeSocket.all.length, 2, 'a new connection was opened');
    c.close();
  });

  test('a missing pong keeps the session: the reconnect resumes it', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const c = client({ pingInterval: 1000, pongTimeout: 500, minBackoff: 10, maxBackoff: 10 });
    const p = c.connect();
    latest().welcome('alice', { resume: 'tok-1', resumed: false });
    await p;
    const ws = latest();
    ws.deliver({ type: 'publish', room: 'r', from: 'bob', data: 1 });
    t.mock.timers.tick(1000); // ping
    assert.deepEqual(ws.last(), { type: 'ping', received: 1 });
    t.mock.timers.tick(500); // no pong: the client closes with 4000 itself
    assert.equal(ws.closed.code, 4000);
    t.mock.timers.tick(10);
    const again = latest();
    assert.notEqual(again, ws, 'a new connection was opened');
    assert.equal(again.url.searchParams.get('resume'), 'tok-1', 'the dead link does not end the session: the client asks to resume it');
    assert.equal(again.url.searchParams.get('received'), '1');
    c.close();
  });

  test('ping() resolves with the relay time', async () => {
    const c = await connected();
    const p = c.ping();
    assert.equal(latest().last().type, 'ping');
    latest().deliver({ type: 'pong', time: 1234 });
    assert.equal(await p, 1234);
    c.close();
  });
});
