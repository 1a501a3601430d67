// Starts and stops a real wsrelay binary for the integration and browser
// tests: loopback only, a free port, bounded waits.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const relayBin = process.env.WSRELAY_BIN || path.resolve(here, '../../bin/wsrelay');

/** freePort asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * startRelay runs the relay on 127.0.0.1:port with WSRELAY_DEMO=true plus env
 * and resolves once /health answers. The returned object's stop() sends
 * SIGTERM and resolves when the process exited (SIGKILL after 10 s).
 */
export async function startRelay(port, env = {}) {
  if (!existsSync(relayBin)) throw new Error(`${relayBin} not found: run make build first`);
  const proc = spawn(relayBin, [], {
    env: { PATH: process.env.PATH, WSRELAY_ADDR: `127.0.0.1:${port}`, WSRELAY_DEMO: 'true', WSRELAY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`relay exited with status ${proc.exitCode} before it served`);
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('relay did not answer /health within 10 s');
    }
    await sleep(50);
  }
  return {
    port,
    base,
    ws: `ws://127.0.0.1:${port}/ws`,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** waitFor polls fn until it returns a truthy value or ms pass. */
export async function waitFor(fn, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * roomToken signs a room token (docs/protocol.md section 11) with HS256 under
 * secret, as an application's backend would: sub is the peer's base id,
 * room the room, valid for ttl seconds (negative: already expired).
 */
export function roomToken(secret, sub, room, ttl = 60) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, room, iat: now, exp: now + ttl })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
