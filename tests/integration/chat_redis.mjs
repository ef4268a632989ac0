// Two relay nodes sharing one conversation through one redis-server that
// this test starts: comments posted on either node reach viewers on both,
// in the same order; moderation on one node (delete, ban, words, pin, hold,
// approve) applies on the other. Then Redis is killed (SIGKILL) and started
// again on the same port: while it is down a node still acks and shows its
// own comments and says Redis is gone (galarelay_redis_connected 0); once it
// is back, both nodes reconnect within their backoff and share comments in
// one order again. Last, node 2 alone restarts on its state_dir: what it got
// from node 1 through Redis was archived there too (history, deletes, the
// ban, banned words, pin, held queue).
// Trust: this Redis wants a password (--requirepass), which the nodes send
// from their url on both connections; events forged straight into Redis
// (a ban and a comment without an HMAC, and a comment signed with a
// guessed secret) change nothing on either node and are counted; a node
// with a wrong password says so in its log and stays off Redis.
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { createHmac } from 'node:crypto';
import { startDaemon, freePort, Client, assert, eq, sleep, jwt, as, MOD_TOKEN, SECRET } from './chat_lib.mjs';

if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
  console.error('FAIL chat_redis: redis-server is missing (scripts/bootstrap.sh installs it)');
  process.exit(1);
}

const port = await freePort();
const PASS = 'test-redis-pw';

async function startRedis() {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--requirepass', PASS], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  for (let i = 0; ; i++) {
    const up = await new Promise((r) => {
      const s = connect(port, '127.0.0.1', () => { s.end(); r(true); });
      s.on('error', () => r(false));
    });
    if (up) break;
    if (i > 100) throw new Error('redis did not start');
    await sleep(50);
  }
  return { proc, exited };
}

async function metric(node, name) {
  const text = await (await fetch(`${node.base}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

async function waitFor(what, cond, ms) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timeout after ${ms} ms: ${what}`);
    await sleep(50);
  }
}

const connected = (node) => metric(node, 'galarelay_redis_connected');
const rejected = (node) => metric(node, 'galarelay_chat_bus_rejected_total\\{reason="hmac"\\}');

// PUBLISH into the room's Redis channel as anyone who can reach Redis
// could; returns how many subscribers (nodes) heard it.
function forge(msg) {
  const r = spawnSync('redis-cli', ['-p', String(port), '-a', PASS, '--no-auth-warning',
    'PUBLISH', 'galarelay:gala', msg], { encoding: 'utf8' });
  eq(r.status, 0, `redis-cli: ${r.stderr}`);
  return Number(r.stdout.trim());
}

// Comment ids seen by a viewer, in arrival order.
function collect(c) {
  const seen = [];
  c.ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'batch') for (const e of m.events) if (e.type === 'comment') seen.push(e.id);
  });
  return seen;
}

// Posts on `from` until a viewer on the other node sees one of them: the
// reconnected node's SUBSCRIBE is confirmed a moment after the metric says
// connected, and what it publishes before that stays local.
async function probe(from, seenOther, label) {
  for (let k = 0; k < 30; k++) {
    const r = await from.request({ type: 'comment', text: `${label} probe ${k}` });
    eq(r.type, 'ack', `${label} probe acked`);
    for (let i = 0; i < 4; i++) {
      if (seenOther.includes(r.id)) return;
      await sleep(50);
    }
  }
  throw new Error(`${label}: no comment crossed nodes after the Redis restart`);
}

let redis = await startRedis();
const exp = Math.floor(Date.now() / 1000) + 600;
const nodeOpts = {
  chat: () => `auth_secret = ${SECRET}\nhistory = 200\nuser_rate = 100\nuser_burst = 100\n` +
              `[redis]\nurl = redis://:${PASS}@127.0.0.1:${port}\nsecret = test-bus-secret`,
};
const n1 = await startDaemon(nodeOpts);
let n2 = await startDaemon(nodeOpts);
let failed = null;
try {
  await waitFor('both nodes connected', async () => (await connected(n1)) === 1 &&
                (await connected(n2)) === 1, 5000);
  await sleep(300); // subscriptions confirmed
  const a = await Client.connect(n1.url());
  await a.hello('on-node-1');
  const b = await Client.connect(n2.url());
  const bId = (await b.hello('on-node-2')).user.id;
  const seenA = collect(a), seenB = collect(b);
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

  // Forged into Redis: a ban of b and comments, unsigned or signed with a
  // guessed secret. Both nodes hear them (2 subscribers) and drop them.
  const forgedId = 'fffffffffff0000abcdef';
  const forgedComment = { type: 'comment', id: forgedId, text: 'forged comment', ts: Date.now(),
    user: { id: 'forger', name: 'forger', role: 'moderator' } };
  eq(forge(JSON.stringify({ origin: 'abcdef', seq: 1, event: { type: 'ban', user: bId } })), 2,
     'forged ban heard by both nodes');
  eq(forge(JSON.stringify({ origin: 'abcdef', seq: 2, event: forgedComment })), 2, 'forged comment');
  const body = `{"origin":"abcdef","seq":3,"event":${JSON.stringify(forgedComment)}`;
  const mac = createHmac('sha256', 'guessed-secret').update(`gala\0${body}`).digest('hex');
  eq(forge(`${body},"mac":"${mac}"}`), 2, 'comment signed with a guessed secret');
  await waitFor('forged events counted on both nodes', async () =>
    (await rejected(n1)) === 3 && (await rejected(n2)) === 3, 3000);
  await a.noEvent((e) => e.id === forgedId || e.type === 'ban' || e.type === 'delete');
  await b.noEvent((e) => e.id === forgedId || e.type === 'ban' || e.type === 'delete');
  eq((await b.request({ type: 'comment', text: 'not banned' })).type, 'ack', 'the forged ban changed nothing');
  for (const n of [n1, n2])
    assert(/dropped events without a valid HMAC/.test(n.log()), 'the log says forged events were dropped');

  // Moderation on node 1 of comments from both nodes.
  const mod = await Client.connect(n1.url());
  await mod.hello('mod', MOD_TOKEN);
  const m = (action, args = {}) => mod.request({ type: 'mod', action, ...args });
  const deleted = [acks[0].id, acks[1].id]; // a0 (node 1's), b0 (node 2's)
  for (const id of deleted) {
    eq((await m('delete', { id })).type, 'ack', 'delete');
    await b.event((e) => e.type === 'delete' && e.id === id);
  }
  const troll = await Client.connect(n1.url(), as('10.4.0.66'));
  await troll.hello(undefined, jwt({ sub: 'troll-1', exp }));
  const trollId = (await troll.request({ type: 'comment', text: 'troll says hi' })).id;
  await b.event((e) => e.type === 'comment' && e.id === trollId);
  eq((await m('ban', { user: 'troll-1' })).type, 'ack', 'ban');
  await b.event((e) => e.type === 'delete' && e.id === trollId);
  eq((await m('words_add', { words: ['forbiddenword'] })).type, 'ack', 'words_add');
  eq((await m('pin', { id: acks[2].id })).type, 'ack', 'pin');
  await b.event((e) => e.type === 'state' && e.pinned && e.pinned.id === acks[2].id);
  eq((await m('hold', { on: true })).type, 'ack', 'hold on');
  await b.event((e) => e.type === 'state' && e.hold === true);
  eq((await a.request({ type: 'comment', text: 'review me' })).code, 'held', 'held');
  eq((await a.request({ type: 'comment', text: 'review me too' })).code, 'held', 'held 2');
  const held = (await mod.event((e) => e.type === 'held' && e.comment.text === 'review me')).comment;
  const approved = await m('approve', { id: held.id });
  eq(approved.type, 'ack', 'approve');
  eq((await m('hold', { on: false })).type, 'ack', 'hold off');
  await b.event((e) => e.type === 'comment' && e.id === approved.id);
  await b.event((e) => e.type === 'state' && e.hold === false);

  // Redis killed: each node keeps serving its own viewers and says so.
  redis.proc.kill('SIGKILL');
  await redis.exited;
  await waitFor('galarelay_redis_connected 0 on both nodes', async () =>
    (await connected(n1)) === 0 && (await connected(n2)) === 0, 5000);
  const down = await a.request({ type: 'comment', text: 'while redis is down' });
  eq(down.type, 'ack', 'acked while Redis is down');
  await a.event((e) => e.type === 'comment' && e.id === down.id);

  // Back on the same port: both reconnect within the backoff (5 s max).
  redis = await startRedis();
  await waitFor('galarelay_redis_connected 1 on both nodes', async () =>
    (await connected(n1)) === 1 && (await connected(n2)) === 1, 10000);
  await probe(a, seenB, 'node 1');
  await probe(b, seenA, 'node 2');
  const again = [];
  for (let i = 0; i < 10; i++) {
    again.push(a.request({ type: 'comment', text: `after a${i}` }));
    again.push(b.request({ type: 'comment', text: `after b${i}` }));
  }
  const againIds = (await Promise.all(again)).map((r) => {
    eq(r.type, 'ack', 'acked after the Redis restart');
    return r.id;
  });
  const only = (seen) => seen.filter((id) => againIds.includes(id));
  await waitFor('comments after the Redis restart on both nodes', () =>
    only(seenA).length === 20 && only(seenB).length === 20, 5000);
  eq(only(seenA), only(seenB), 'one order on both nodes after the Redis restart');
  for (const n of [n1, n2]) {
    assert(/redis down/.test(n.log()), 'the log says Redis was lost');
    assert((n.log().match(/redis connected/g) || []).length >= 2, 'the log says Redis is back');
    assert((await metric(n, 'galarelay_redis_reconnects_total')) >= 1, 'reconnect counted');
  }
  for (const c of [a, b, mod, troll]) await c.close();

  // Node 2 alone restarts on its state_dir: node 1's actions are there.
  eq((await n2.stop({ keep: true })).code, 0, 'node 2 clean stop');
  n2 = await startDaemon({ ...nodeOpts, dir: n2.dir });
  await waitFor('node 2 reconnected', async () => (await connected(n2)) === 1, 5000);
  const v = new Client(n2.url());
  const w = await v.next((x) => x.type === 'welcome');
  const ids = w.history.map((h) => h.id);
  const texts = w.history.map((h) => h.text);
  for (let i = 1; i < 20; i++) assert(texts.includes(`a${i}`), `node 1's a${i} in node 2's history`);
  for (let i = 0; i < 10; i++) assert(texts.includes(`after a${i}`), `after a${i} in node 2's history`);
  for (const id of deleted) assert(!ids.includes(id), `deleted ${id} stays deleted on node 2`);
  assert(!ids.includes(trollId), 'the banned user\'s comment stays deleted on node 2');
  assert(ids.includes(approved.id) && !ids.includes(held.id), 'approved comment under its new id');
  eq(w.state.pinned && w.state.pinned.id, acks[2].id, 'pin on node 2 after its restart');
  eq(w.state.hold, false, 'hold off on node 2 after its restart');
  const mod2 = await Client.connect(n2.url());
  eq((await mod2.hello('mod', MOD_TOKEN)).held.map((h) => h.text), ['review me too'],
     'held queue on node 2 after its restart');
  const t2 = await Client.connect(n2.url(), as('10.4.0.67'));
  await t2.hello(undefined, jwt({ sub: 'troll-1', exp }));
  eq((await t2.request({ type: 'comment', text: 'hi again' })).code, 'banned',
     'banned via node 1, refused on node 2 after its restart');
  await sleep(300); // the banned words automaton is rebuilt off the loop
  await v.hello('newcomer');
  eq((await v.request({ type: 'comment', text: 'a forbiddenword' })).code, 'forbidden',
     'banned word added via node 1, refused on node 2 after its restart');
  for (const c of [v, mod2, t2]) await c.close();

  // A wrong password: a clear log line, retried, never connected.
  const n3 = await startDaemon({ chat: () => `[redis]\nurl = redis://:wrong-pw@127.0.0.1:${port}\n` +
                                              'secret = test-bus-secret' });
  try {
    await waitFor('the wrong password is logged', async () => /redis refused our password/.test(n3.log()), 5000);
    eq(await connected(n3), 0, 'not connected with a wrong password');
    assert(!n3.log().includes('wrong-pw'), 'the password is never logged');
  } finally {
    await n3.stop();
  }
} catch (e) {
  failed = e;
}
const r1 = await n1.stop();
const r2 = await n2.stop();
redis.proc.kill('SIGTERM');
if (failed || r1.code !== 0 || r2.code !== 0) {
  console.error(`FAIL chat_redis: ${failed ? failed.stack : JSON.stringify([r1, r2])}`);
  process.exit(1);
}
console.log('PASS chat_redis');
