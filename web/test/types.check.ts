// Compile-time check of wsrelay.d.ts (npx tsc -p test): typical use must
// type-check, and the mistakes below must not (each @ts-expect-error fails
// the build if its line compiles).
import {
  RelayClient, RelayError, encodeFrame, decodeFrame, OP_PUBLISH, type Frame, type PresenceEvent, type Welcome,
  type WebSocketLike, generateKeyPair, keyId, signChallenge, CLOSE_AUTH_FAILED,
} from '../wsrelay.js';

// What Node.js code passes: the ws package's class (declared here so the
// check needs no @types package).
declare const NodeWebSocket: new (url: string) => WebSocketLike;

async function demo(): Promise<void> {
  const inBrowser = new RelayClient(new URL('/ws', 'http://localhost:8080'), { token: 'jwt' });
  inBrowser.close();
  const relay = new RelayClient('ws://localhost:8080/ws', { WebSocket: NodeWebSocket, peer: 'alice', minBackoff: 250 });
  const off = relay.on('presence', (p: PresenceEvent) => console.log(p.room, p.peers.length, p.joined ?? p.left));
  relay.on('publish', (m) => console.log(m.room.toUpperCase(), m.from, m.data));
  relay.on('overflow', (o) => console.log(o.dropped + 1));
  relay.on('binary', (f: Frame) => console.log(f.payload.byteLength, f.from));
  relay.on('close', (c) => console.log(c.code, c.reconnect));
  relay.on('error', (e: RelayError) => console.log(e.code));
  const w: Welcome = await relay.connect();
  console.log(w.heartbeat_ms, relay.peer, relay.state);
  const peers: string[] = await relay.join('lobby');
  await relay.join('vip', { token: 'eyJh.eyJz.c2ln', timeout: 500 });
  await relay.publish('lobby', { text: 'hi', n: [1, null, true] }, { timeout: 500 });
  await relay.direct(peers[0], 'x', { ack: false });
  await relay.broadcast(null);
  relay.sendBinary({ op: OP_PUBLISH, to: 'lobby', ctype: 1, payload: new Uint8Array(3) });
  const t: number = await relay.ping();
  const f = decodeFrame(encodeFrame({ op: OP_PUBLISH, to: 'lobby', payload: 'x' }));
  console.log(t, f.op === OP_PUBLISH);
  off();
  relay.close();

  const keyPair = await generateKeyPair();
  const id: string = await keyId(keyPair.publicKey);
  const keyed = new RelayClient('wss://relay.example/ws', { keyPair, device: 'tab' });
  keyed.on('close', (c) => console.log(c.code === CLOSE_AUTH_FAILED, id));
  const answer: string = await signChallenge(keyPair.privateKey, 'nonce');
  console.log(answer.length);
  // @ts-expect-error keyPair is a CryptoKeyPair, not a raw private key
  new RelayClient('wss://relay.example/ws', { keyPair: new Uint8Array(32) });

  // @ts-expect-error unknown event
  relay.on('presense', () => {});
  // @ts-expect-error publish needs a room
  await relay.publish({ text: 'hi' });
  // @ts-expect-error data must be JSON, not a function
  await relay.direct('bob', () => 1);
  // @ts-expect-error op must be 1, 2 or 3
  encodeFrame({ op: 4 });
  // @ts-expect-error overflow events carry dropped, not count
  relay.on('overflow', (o) => o.count);
}
void demo;
