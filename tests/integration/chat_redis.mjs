// Two relay nodes sharing one conversation through Redis pub/sub: comments
// posted on either node reach viewers on both, in the same order; a
// moderator's delete on one node removes the comment on the other.
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { startDaemon, freePort, Client, assert, eq, sleep, MOD_TOKEN } from './chat_lib.mjs';

if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
  console.log('SKIP chat_redis: no redis-server');
  process.exit(0);
}
const port = await freePort();
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  { stdio: 'ignore' });
for (let i = 0; ; i++) {
  const up = await new Promise((r) => {
    const s = connect(port, '127.0.0.1', () => { s.end(); r(true); });
    s.on('error', () => r(false));
  });
  if (up) break;
  if (i > 100) throw new Error('redis did not start');
  await sleep(50);
}

const nodeOpts = { chat: () => `user_rate = 100\nuser_burst = 100\n[redis]\nurl = redis://127.0.0.1:${port}` };
const n1 = await startDaemon(nodeOpts);
const n2 = await startDaemon(nodeOpts);
let failed = null;
try {
  await sleep(500); // subscriptions confirmed
  const a = await Client.connect(n1.url());
  await a.hello('on-node-1');
  const b = await Client.connect(n2.url());
  await b.hello('on-node-2');
  const seenA = [], seenB = [];
  const collect = (c, seen) => c.ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'batch') for (const e of m.events) if (e.type === 'comment') seen.push(e.id);
  });
  collect(a, seenA);
  collect(b, seenB);
  const sent = [];
  for (let i = 0; i < 20; i++) {
    sent.push(a.request({ type: 'comment', text: `a${i}` }));
    sent.push(b.request({ type: 'comment', text: `b${i}` }));
  }
  const acks = await Promise.all(sent);
  assert(acks.every((r) => r.type === 'ack'), 'all acked');
  for (let i = 0; i < 100 && (seenA.length < 40 || seenB.length < 40); i++) await sleep(50);
  eq(seenA.length, 40, 'node 1 viewer saw every comment');
  eq(seenA, seenB, 'one order on both nodes');

  const mod = await Client.connect(n1.url());
  await mod.hello('mod', MOD_TOKEN);
  eq((await mod.request({ type: 'mod', action: 'delete', id: acks[1].id })).type, 'ack', 'delete');
  await b.event((e) => e.type === 'delete' && e.id === acks[1].id);
  for (const c of [a, b, mod]) await c.close();
} catch (e) {
  failed = e;
}
const r1 = await n1.stop();
const r2 = await n2.stop();
redis.kill('SIGTERM');
if (failed || r1.code !== 0 || r2.code !== 0) {
  console.error(`FAIL chat_redis: ${failed ? failed.stack : JSON.stringify([r1, r2])}`);
  process.exit(1);
}
console.log('PASS chat_redis');
