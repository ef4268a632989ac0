// What survives a restart (state_dir/chat.sqlite3): the history newcomers
// get, deleted comments staying deleted (also those a ban or a timeout
// took away), the room state (slow mode, pinned comment), the held queue
// (also across a clear, and approved after one), live banned words and
// bans of token users. Then a crash: comments acked before a kill -9 are
// all in the history after the restart, and in the archive.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, Client, eq, assert, sleep, jwt, as, MOD_TOKEN, SECRET } from './chat_lib.mjs';

const opts = { chat: () => `auth_secret = ${SECRET}\nuser_burst = 50` };
let d = await startDaemon(opts);
let failed = null;
try {
  const mod = await Client.connect(d.url());
  await mod.hello('mod', MOD_TOKEN);
  const a = await Client.connect(d.url());
  await a.hello('alice');
  const ids = [];
  for (const text of ['one', 'two', 'three']) ids.push((await a.request({ type: 'comment', text })).id);
  const m = (action, args = {}) => mod.request({ type: 'mod', action, ...args });
  eq((await m('delete', { id: ids[1] })).type, 'ack', 'delete');
  eq((await m('pin', { id: ids[2] })).type, 'ack', 'pin');
  eq((await m('words_add', { words: ['forbiddenword'] })).type, 'ack', 'words_add');
  const exp = Math.floor(Date.now() / 1000) + 600;
  const t = await Client.connect(d.url(), as('10.3.0.66'));
  await t.hello(undefined, jwt({ sub: 'troll-1', exp }));
  eq((await t.request({ type: 'comment', text: 'troll says hi' })).type, 'ack', 'troll comment');
  const p = await Client.connect(d.url(), as('10.3.0.70'));
  await p.hello(undefined, jwt({ sub: 'pest-1', exp }));
  eq((await p.request({ type: 'comment', text: 'pest says hi' })).type, 'ack', 'pest comment');
  eq((await m('ban', { user: 'troll-1' })).type, 'ack', 'ban');
  eq((await m('timeout', { user: 'pest-1', seconds: 600 })).type, 'ack', 'timeout');
  await m('hold', { on: true });
  eq((await a.request({ type: 'comment', text: 'review me' })).code, 'held', 'held');
  eq((await a.request({ type: 'comment', text: 'review me too' })).code, 'held', 'held 2');
  await m('hold', { on: false });
  eq((await m('slow', { seconds: 7 })).type, 'ack', 'slow');
  for (const c of [mod, a, t, p]) await c.close();

  eq((await d.stop({ keep: true })).code, 0, 'clean stop');
  d = await startDaemon({ ...opts, dir: d.dir });

  const n = new Client(d.url());
  const w = await n.next((x) => x.type === 'welcome');
  // not the banned or timed-out users' comments: the room deleted them
  eq(w.history.map((h) => h.text), ['one', 'three'], 'history after restart');
  eq([w.state.slow, w.state.hold, w.state.pinned && w.state.pinned.id], [7, false, ids[2]], 'state after restart');
  const mod2 = await Client.connect(d.url());
  const wm = await mod2.hello('mod', MOD_TOKEN);
  eq(wm.held.map((h) => h.text), ['review me', 'review me too'], 'held queue after restart');
  await sleep(300);
  await n.hello('newcomer');
  eq((await n.request({ type: 'comment', text: 'a forbiddenword' })).code, 'forbidden', 'live words after restart');
  const t2 = await Client.connect(d.url(), as('10.3.0.67'));
  await t2.hello(undefined, jwt({ sub: 'troll-1', exp }));
  eq((await t2.request({ type: 'comment', text: 'hi again' })).code, 'banned', 'ban after restart');
  const p2 = await Client.connect(d.url(), as('10.3.0.71'));
  await p2.hello(undefined, jwt({ sub: 'pest-1', exp }));
  eq((await p2.request({ type: 'comment', text: 'hi again' })).code, 'timed_out', 'timeout after restart');

  // clear leaves the held queue alone; one approved afterwards is acked,
  // so it must come back visible after a restart, the other still held
  eq((await mod2.request({ type: 'mod', action: 'clear' })).type, 'ack', 'clear');
  eq((await mod2.request({ type: 'mod', action: 'approve', id: wm.held[0].id })).type, 'ack',
     'approve after clear');
  for (const c of [n, mod2, t2, p2]) await c.close();

  eq((await d.stop({ keep: true })).code, 0, 'clean stop 2');
  d = await startDaemon({ ...opts, dir: d.dir });
  const n2 = new Client(d.url());
  const w2 = await n2.next((x) => x.type === 'welcome');
  eq(w2.history.map((h) => h.text), ['review me'], 'history after clear, approve, restart');
  const mod3 = await Client.connect(d.url());
  eq((await mod3.hello('mod', MOD_TOKEN)).held.map((h) => h.text), ['review me too'],
     'held queue after clear and restart');
  for (const c of [n2, mod3]) await c.close();
} catch (e) {
  failed = e;
}
const r = await d.stop();
if (failed || r.code !== 0) {
  console.error(`FAIL chat_restart: ${failed ? failed.stack : JSON.stringify(r)}`);
  process.exit(1);
}
console.log('PASS chat_restart');

// kill -9: N comments posted at once, the daemon killed as soon as they are
// all acked, with more just sent (they may be in flight at the kill: those
// are not promised, but any acked is checked too). Every comment acked is
// in the history after the restart and stored visible in the archive. A commit window much longer
// than the default makes the acks really wait for group commits.
const N = 50;
const crashOpts = {
  chat: () => 'history = 200\nuser_burst = 200\naddr_burst = 1000\narchive_commit_ms = 20',
};
d = await startDaemon(crashOpts);
failed = null;
try {
  const c = await Client.connect(d.url());
  await c.hello('poster');
  const replies = await Promise.all(
    Array.from({ length: N }, (_, k) => c.request({ type: 'comment', text: `burst ${k}` })));
  for (const rep of replies) eq(rep.type, 'ack', `ack ${JSON.stringify(rep)}`);
  for (let k = 0; k < 20; k++) c.send({ type: 'comment', text: `late ${k}`, nonce: `late${k}` });
  const killed = await d.kill9();
  eq(killed.sig, 'SIGKILL', 'killed');
  await c.closed;
  const late = c.inbox.filter((x) => x.type === 'ack' && String(x.nonce).startsWith('late'));
  const acked = [...replies, ...late].map((x) => x.id);
  assert(acked.every((id) => typeof id === 'string' && id), 'every ack has an id');

  // on disk, before anything opens the database again
  const db = join(d.dir, 'state', 'chat.sqlite3');
  const q = spawnSync('sqlite3', [db, "SELECT id FROM comments WHERE channel = 'gala' AND status = 0"],
                      { encoding: 'utf8' });
  assert(!q.error, `the sqlite3 CLI is missing (scripts/bootstrap.sh installs it): ${q.error}`);
  eq(q.status, 0, `sqlite3: ${q.stderr}`);
  const stored = new Set(q.stdout.split('\n').filter(Boolean));
  const unstored = acked.filter((id) => !stored.has(id));
  eq(unstored, [], 'acked comments missing from the archive after kill -9');

  d = await startDaemon({ ...crashOpts, dir: d.dir });
  const n = new Client(d.url());
  const w = await n.next((x) => x.type === 'welcome');
  const seen = new Set(w.history.map((h) => h.id));
  const missing = acked.filter((id) => !seen.has(id));
  eq(missing, [], 'acked comments missing from the history after kill -9');
  eq(w.history.slice(0, N).map((h) => h.text), replies.map((_, k) => `burst ${k}`),
     'history order after kill -9');
  console.log(`chat_restart: kill -9 after ${acked.length} acks (${late.length} late), all back`);
  await n.close();
} catch (e) {
  failed = e;
}
const r2 = await d.stop();
if (failed || r2.code !== 0) {
  console.error(`FAIL chat_restart (kill -9): ${failed ? failed.stack : JSON.stringify(r2)}`);
  process.exit(1);
}
console.log('PASS chat_restart kill -9');
