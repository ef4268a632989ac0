// Helpers for the chat integration tests: start the real daemon on free
// loopback ports with a config written here, and a websocket client with
// an inbox that tests can wait on.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import WebSocket from 'ws';

export const MOD_TOKEN = 'test-moderator-token';
export const SECRET = 'test-secret';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// chat: extra lines for the [chat] section; files: {name: text} written in
// the temp dir (their paths are given to chat(dir)); channelConf: {channel:
// extra lines for its [channel NAME] section}.
export async function startDaemon({ chat = () => '', channels = ['gala'], channelConf = {}, files = {}, server = 'trusted_proxy = 127.0.0.1', dir: keepDir = null } = {}) {
  const bin = process.env.GALARELAY_BIN;
  if (!bin) throw new Error('GALARELAY_BIN is not set');
  const dir = keepDir || mkdtempSync(join(tmpdir(), 'galarelay-chat-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const http = await freePort();
  const rtmp = await freePort();
  const conf = [
    '[server]',
    `http_listen = 127.0.0.1:${http}`,
    `rtmp_listen = 127.0.0.1:${rtmp}`,
    `state_dir = ${join(dir, 'state')}`,
    server,
    ...channels.flatMap((c, i) => [`[channel ${c}]`, `key = key-${c}-${i}`,
                                   ...(channelConf[c] ? [channelConf[c]] : [])]),
    '[chat]',
    `moderator_tokens = ${MOD_TOKEN}`,
    chat(dir),
    '',
  ].join('\n');
  const confPath = join(dir, 'galarelay.conf');
  writeFileSync(confPath, conf);
  const proc = spawn(bin, ['-c', confPath], { stdio: ['ignore', 'inherit', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; process.stderr.write(d); });
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  const base = `http://127.0.0.1:${http}`;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (i > 100) throw new Error('daemon did not come up');
    await sleep(50);
  }
  return {
    http, dir, confPath, proc, base,
    log: () => log,
    url: (channel = 'gala') => `ws://127.0.0.1:${http}/chat/${channel}`,
    reload: () => proc.kill('SIGHUP'),
    // keep: leave the folder (state_dir) for a restart with { dir }
    async stop({ keep = false } = {}) {
      proc.kill('SIGTERM');
      const r = await exited;
      if (!keep) rmSync(dir, { recursive: true, force: true });
      return r;
    },
    // A crash: SIGKILL, no shutdown path runs (no final commit, no
    // checkpoint); the folder stays for a restart with { dir }. stop()
    // afterwards only removes the folder.
    async kill9() {
      proc.kill('SIGKILL');
      return exited;
    },
  };
}

// A websocket client whose messages pile up in an inbox.
export class Client {
  constructor(url, opts = {}) {
    this.ws = new WebSocket(url, opts);
    this.inbox = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
    this.frames = []; // every message as it came: {type, binary, bytes (on the wire), text}
    this.ws.on('message', (data, isBinary) => {
      // a binary frame is a compressed batch: raw DEFLATE of its JSON text
      const text = isBinary ? inflateRawSync(data).toString() : data.toString();
      const msg = JSON.parse(text);
      this.frames.push({ type: msg.type, binary: isBinary, bytes: data.length, text });
      this.inbox.push(msg);
      this.waiters = this.waiters.filter((w) => !w.check());
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.on('open', resolve);
      this.ws.on('error', reject);
    });
    this.seq = 0;
  }

  static async connect(url, opts) {
    const c = new Client(url, opts);
    await c.opened;
    await c.next((m) => m.type === 'welcome');
    return c;
  }

  // Wait for (and remove) the first message matching pred.
  next(pred, timeout = 3000) {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          const i = this.inbox.findIndex(pred);
          if (i < 0) return false;
          clearTimeout(w.timer);
          resolve(this.inbox.splice(i, 1)[0]);
          return true;
        },
      };
      if (w.check()) return;
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timeout waiting; inbox=${JSON.stringify(this.inbox).slice(0, 500)}`));
      }, timeout);
      this.waiters.push(w);
    });
  }

  // Every batch event matching pred, waited for.
  async event(pred, timeout = 3000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      for (const m of this.inbox) {
        if (m.type !== 'batch') continue;
        const i = m.events.findIndex(pred);
        if (i >= 0) return m.events.splice(i, 1)[0];
      }
      if (Date.now() > deadline) throw new Error(`no such event; inbox=${JSON.stringify(this.inbox).slice(0, 800)}`);
      await sleep(10);
    }
  }

  // No event matching pred arrives within ms.
  async noEvent(pred, ms = 300) {
    await sleep(ms);
    for (const m of this.inbox)
      if (m.type === 'batch' && m.events.some(pred))
        throw new Error(`unexpected event ${JSON.stringify(m.events.find(pred))}`);
  }

  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }

  // Send with a fresh nonce; resolve with the reply carrying it.
  request(obj, timeout = 3000) {
    const nonce = `n${++this.seq}`;
    this.send({ ...obj, nonce });
    return this.next((m) => m.nonce === nonce && (m.type === 'ack' || m.type === 'error'), timeout);
  }

  async hello(name, token, extra = {}) {
    const r = await this.request({ type: 'hello', name, ...(token ? { token } : {}), ...extra });
    if (r.type !== 'ack') throw new Error(`hello refused: ${JSON.stringify(r)}`);
    return this.next((m) => m.type === 'welcome');
  }

  close() { this.ws.close(); return this.closed; }
}

export function jwt(claims, secret = SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

export function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

export function eq(a, b, what) {
  if (JSON.stringify(a) !== JSON.stringify(b))
    throw new Error(`${what}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}

// Run a test body with a daemon; stop it whatever happens; exit code.
export async function run(name, opts, body) {
  const d = await startDaemon(opts);
  let failed = null;
  try {
    await body(d);
  } catch (e) {
    failed = e;
  }
  const r = await d.stop();
  if (failed) {
    console.error(`FAIL ${name}: ${failed.stack || failed}`);
    process.exit(1);
  }
  if (r.code !== 0) {
    console.error(`FAIL ${name}: daemon exit ${JSON.stringify(r)}`);
    process.exit(1);
  }
  console.log(`PASS ${name}`);
}

// Client options that make the daemon see the client at `ip` (the tests'
// config trusts X-Forwarded-For from 127.0.0.1).
export const as = (ip) => ({ headers: { 'X-Forwarded-For': ip } });
