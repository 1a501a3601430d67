// Unit tests of key auth in wsrelay.js (auth key, docs/protocol.md): the
// client derives its k: id from a WebCrypto Ed25519 key pair, sends ?key=,
// and answers the relay's challenge with a signature that node:crypto (not
// the client's own code) verifies.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify, randomBytes } from 'node:crypto';
import { RelayClient, generateKeyPair, keyId, signChallenge, AUTH_CONTEXT, CLOSE_AUTH_FAILED } from '../wsrelay.js';

// FakeSocket plays the relay's side of one connection.
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = new URL(url);
    this.sent = [];
    this.closed = null;
    FakeSocket.all.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code, reason) {
    this.closed = { code, reason };
  }
  deliver(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  welcome(peer) {
    this.deliver({ type: 'welcome', peer, server: 'wsrelay/test', heartbeat_ms: 25000, timeout_ms: 60000, max_message_bytes: 65536, queue_size: 256 });
  }
  drop(code, reason = '') {
    this.onclose?.({ code, reason });
  }
}

beforeEach(() => {
  FakeSocket.all = [];
});

// until resolves once cond() holds, polling between event-loop turns (the
// client's WebCrypto calls resolve asynchronously), failing after 2 s.
async function until(cond, what) {
  const deadline = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

const b64 = (s) => Buffer.from(s, 'base64url');

// verifyAnswer checks the auth message with node:crypto against the key the
// client sent as ?key=.
function verifyAnswer(key, nonce, answer) {
  assert.deepEqual(Object.keys(answer).sort(), ['sig', 'type']);
  assert.equal(answer.type, 'auth');
  assert.match(answer.sig, /^[A-Za-z0-9_-]{86}$/, 'unpadded base64url of 64 bytes');
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key }, format: 'jwk' });
  return verify(null, Buffer.from(AUTH_CONTEXT + nonce), pub, b64(answer.sig));
}

test('keyId is k: and the unpadded base64url of the raw public key', async () => {
  const kp = await generateKeyPair();
  const id = await keyId(kp.publicKey);
  assert.match(id, /^k:[A-Za-z0-9_-]{43}$/);
  const raw = Buffer.from(await crypto.subtle.exportKey('raw', kp.publicKey));
  assert.deepEqual(b64(id.slice(2)), raw);
  assert.equal(kp.privateKey.extractable, false, 'the private key stays in WebCrypto');
});

test('signChallenge signs the context and the nonce as sent', async () => {
  const kp = await generateKeyPair();
  const key = (await keyId(kp.publicKey)).slice(2);
  const nonce = randomBytes(32).toString('base64url');
  const answer = JSON.parse(await signChallenge(kp.privateKey, nonce));
  assert.ok(verifyAnswer(key, nonce, answer));
  assert.ok(!verifyAnswer(key, randomBytes(32).toString('base64url'), answer), 'another nonce does not verify');
});

test('connect with a keyPair sends ?key=, answers the challenge and takes the k: id', async () => {
  const kp = await generateKeyPair();
  const id = await keyId(kp.publicKey);
  const c = new RelayClient('ws://relay.test/ws', { WebSocket: FakeSocket, keyPair: kp, device: 'tab1', minBackoff: 5, maxBackoff: 5 });
  const p = c.connect();
  await until(() => FakeSocket.all.length === 1, 'the socket');
  const ws = FakeSocket.all[0];
  assert.equal(ws.url.searchParams.get('key'), id.slice(2));
  assert.equal(ws.url.searchParams.get('device'), 'tab1');
  assert.equal(ws.url.searchParams.get('peer'), null);

  const nonce = randomBytes(32).toString('base64url');
  ws.deliver({ type: 'challenge', nonce });
  await until(() => ws.sent.length === 1, 'the auth answer');
  assert.ok(verifyAnswer(id.slice(2), nonce, ws.sent[0]), 'signature verifies with node:crypto');
  ws.welcome(`${id}:tab1`);
  assert.equal((await p).peer, `${id}:tab1`);
  assert.equal(c.peer, `${id}:tab1`);

  // A reconnect proves the key again, on a fresh nonce, and does not ask
  // for the previous id with ?peer=.
  ws.drop(1006);
  await until(() => FakeSocket.all.length === 2, 'the reconnect');
  const ws2 = FakeSocket.all[1];
  assert.equal(ws2.url.searchParams.get('key'), id.slice(2));
  assert.equal(ws2.url.searchParams.get('peer'), null);
  const nonce2 = randomBytes(32).toString('base64url');
  ws2.deliver({ type: 'challenge', nonce: nonce2 });
  await until(() => ws2.sent.length === 1, 'the second answer');
  assert.ok(verifyAnswer(id.slice(2), nonce2, ws2.sent[0]));
  c.close();
});

test('a challenge without a keyPair is an auth_failed error event and no answer', async () => {
  const c = new RelayClient('ws://relay.test/ws', { WebSocket: FakeSocket, reconnect: false });
  const errors = [];
  c.on('error', (e) => errors.push(e.code));
  const p = c.connect();
  const ws = FakeSocket.all[0];
  ws.deliver({ type: 'challenge', nonce: 'n' });
  assert.deepEqual(errors, ['auth_failed']);
  assert.equal(ws.sent.length, 0);
  ws.drop(CLOSE_AUTH_FAILED, 'authentication failed');
  await assert.rejects(p, (err) => err.code === 'closed');
});

test('an answer signed after its socket was lost is not sent on the next one', async () => {
  const kp = await generateKeyPair();
  const c = new RelayClient('ws://relay.test/ws', { WebSocket: FakeSocket, keyPair: kp, minBackoff: 1, maxBackoff: 1 });
  c.connect();
  await until(() => FakeSocket.all.length === 1, 'the socket');
  const ws = FakeSocket.all[0];
  ws.deliver({ type: 'challenge', nonce: 'n1' });
  ws.drop(1006); // before WebCrypto has signed
  await until(() => FakeSocket.all.length === 2, 'the reconnect');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(ws.sent.length, 0);
  assert.equal(FakeSocket.all[1].sent.length, 0);
  c.close();
});

test('a keyPair that is not Ed25519 fails connect with bad_key', async () => {
  const kp = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const c = new RelayClient('ws://relay.test/ws', { WebSocket: FakeSocket, keyPair: kp });
  // P-256 public keys export fine as raw, but are 65 bytes: not an Ed25519 key.
  await assert.rejects(c.connect(), (err) => err.code === 'bad_key');
  assert.equal(FakeSocket.all.length, 0);
});
