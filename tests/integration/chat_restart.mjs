// What survives a restart (state_dir/chat.sqlite3): the history newcomers
// get, deleted comments staying deleted, the room state (slow mode, pinned
// comment), the held queue, live banned words and bans of token users.
import { startDaemon, Client, eq, sleep, jwt, as, MOD_TOKEN, SECRET } from './chat_lib.mjs';

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
  eq((await m('ban', { user: 'troll-1' })).type, 'ack', 'ban');
  await m('hold', { on: true });
  eq((await a.request({ type: 'comment', text: 'review me' })).code, 'held', 'held');
  await m('hold', { on: false });
  eq((await m('slow', { seconds: 7 })).type, 'ack', 'slow');
  for (const c of [mod, a, t]) await c.close();

  eq((await d.stop({ keep: true })).code, 0, 'clean stop');
  d = await startDaemon({ ...opts, dir: d.dir });

  const n = new Client(d.url());
  const w = await n.next((x) => x.type === 'welcome');
  eq(w.history.map((h) => h.text), ['one', 'three'], 'history after restart');
  eq([w.state.slow, w.state.hold, w.state.pinned && w.state.pinned.id], [7, false, ids[2]], 'state after restart');
  const mod2 = await Client.connect(d.url());
  const wm = await mod2.hello('mod', MOD_TOKEN);
  eq(wm.held.map((h) => h.text), ['review me'], 'held queue after restart');
  await sleep(300);
  await n.hello('newcomer');
  eq((await n.request({ type: 'comment', text: 'a forbiddenword' })).code, 'forbidden', 'live words after restart');
  const t2 = await Client.connect(d.url(), as('10.3.0.67'));
  await t2.hello(undefined, jwt({ sub: 'troll-1', exp }));
  eq((await t2.request({ type: 'comment', text: 'hi again' })).code, 'banned', 'ban after restart');
  for (const c of [n, mod2, t2]) await c.close();
} catch (e) {
  failed = e;
}
const r = await d.stop();
if (failed || r.code !== 0) {
  console.error(`FAIL chat_restart: ${failed ? failed.stack : JSON.stringify(r)}`);
  process.exit(1);
}
console.log('PASS chat_restart');
