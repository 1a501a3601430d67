// A TCP proxy on 127.0.0.1 for the tests: it forwards every connection to
// the relay and can play the network failing under a client: cutting its
// WebSocket without a close frame, or letting it die silently, and holding
// new connections until the network comes back.
import { createServer, connect } from 'node:net';

/**
 * startProxy listens on 127.0.0.1:0 and forwards each connection, byte for
 * byte, to 127.0.0.1:targetPort. It resolves with:
 *
 *   base, ws      the proxy's http:// and ws:// addresses
 *   requests      the request line of every connection, in accept order
 *   cutWebSockets() resets both sockets of every open WebSocket connection
 *                 (one whose request line is GET /ws...): the browser and
 *                 the relay each see the TCP connection die, no close frame;
 *                 returns how many it cut
 *   freezeWebSockets() makes every open WebSocket connection a black hole,
 *                 neither closed nor carrying a byte either way, as a link
 *                 that died silently; returns how many it froze
 *   down(), up()  while down, new connections are accepted and their bytes
 *                 buffered, but nothing reaches the relay; up() connects them
 *   close()       resets everything and stops listening
 */
export function startProxy(targetPort) {
  const pairs = new Set(); // { client, upstream, ws, seen, frozen }
  const waiting = []; // start functions of the connections held while down
  let isDown = false;
  const proxy = {
    requests: [],
    cutWebSockets() {
      let n = 0;
      for (const p of pairs) {
        if (!p.ws) continue;
        p.client.resetAndDestroy();
        p.upstream?.resetAndDestroy();
        pairs.delete(p);
        n++;
      }
      return n;
    },
    freezeWebSockets() {
      let n = 0;
      for (const p of pairs) {
        if (!p.ws || p.frozen) continue;
        p.frozen = true;
        p.upstream?.unpipe(p.client);
        p.upstream?.pause();
        n++;
      }
      return n;
    },
    down() {
      isDown = true;
    },
    up() {
      isDown = false;
      for (const start of waiting.splice(0)) start();
    },
    close() {
      for (const p of pairs) {
        p.client.resetAndDestroy();
        p.upstream?.resetAndDestroy();
      }
      pairs.clear();
      waiting.length = 0;
      return new Promise((resolve) => server.close(resolve));
    },
  };

  const server = createServer((client) => {
    const p = { client, upstream: null, ws: false, seen: false, frozen: false };
    pairs.add(p);
    const early = []; // bytes from the client before the relay is connected
    let connected = false;
    client.on('data', (chunk) => {
      if (!p.seen) {
        p.seen = true;
        const line = chunk.toString('latin1').split('\r\n', 1)[0];
        proxy.requests.push(line);
        p.ws = /^GET \/ws[?\s]/.test(line);
      }
      if (p.frozen) return; // lost on the way
      if (connected) p.upstream.write(chunk);
      else early.push(chunk);
    });
    // An orderly end passes on as one; an error resets the other side too.
    // Nothing passes on from a frozen connection: the relay's side stays
    // open until the relay gives up on it, or close().
    const fail = () => {
      client.destroy();
      if (p.frozen) return;
      pairs.delete(p);
      p.upstream?.destroy();
    };
    client.on('error', fail);
    client.on('end', () => p.frozen || p.upstream?.end());
    client.on('close', () => {
      if (p.frozen) return;
      pairs.delete(p);
      p.upstream?.end();
    });
    const start = () => {
      if (client.destroyed) return;
      const upstream = connect(targetPort, '127.0.0.1');
      p.upstream = upstream;
      upstream.on('error', fail);
      upstream.on('close', () => p.frozen || client.end());
      upstream.on('connect', () => {
        connected = true;
        for (const chunk of early.splice(0)) upstream.write(chunk);
        if (!p.frozen) upstream.pipe(client);
      });
    };
    if (isDown) waiting.push(start);
    else start();
  });

  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve(Object.assign(proxy, { port, base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws` }));
    });
  });
}
