// Every moderator action, seen from a viewer's and a moderator's socket:
// delete, timeout, ban, unban, slow, hold + approve / reject, words_add /
// words_remove (and the list in a moderator's welcome), clear, pin.
// Then moderators per channel: a [channel NAME] moderator token moderates
// that channel and is a plain viewer elsewhere, a [chat] one moderates
// every channel, both reload on SIGHUP; the log line of each action and
// the archive's mod_log name who (the token's short id or a JWT's sub),
// never the token.
// Clients get distinct addresses through X-Forwarded-For from the trusted
// proxy (127.0.0.1).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, Client, assert, eq, sleep, jwt, MOD_TOKEN, SECRET } from './chat_lib.mjs';

const as = (ip) => ({ headers: { 'X-Forwarded-For': ip } });

await run('chat_moderation', {
  files: { 'words.txt': '# from the config\nxyzzyfile\n' },
  chat: (dir) => `user_burst = 50\nuser_rate = 50\nbanned_words_file = ${join(dir, 'words.txt')}`,
}, async (d) => {
  const mod = await Client.connect(d.url(), as('10.0.0.1'));
  await mod.hello('mod', MOD_TOKEN);
  const viewer = await Client.connect(d.url(), as('10.0.0.2'));
  await viewer.hello('viewer');
  const troll = await Client.connect(d.url(), as('10.0.0.3'));
  const tw = await troll.hello('troll');
  const m = (action, args = {}) => mod.request({ type: 'mod', action, ...args });

  // delete: gone for viewers within a tick or two
  const c1 = await troll.request({ type: 'comment', text: 'first' });
  await viewer.event((e) => e.type === 'comment' && e.id === c1.id);
  const t0 = Date.now();
  eq((await m('delete', { id: c1.id })).type, 'ack', 'delete acked');
  await viewer.event((e) => e.type === 'delete' && e.id === c1.id);
  assert(Date.now() - t0 < 500, 'delete reaches viewers quickly');

  // timeout: the user's comments disappear, posting is refused with retry_after_ms
  const c2 = await troll.request({ type: 'comment', text: 'second' });
  await viewer.event((e) => e.type === 'comment' && e.id === c2.id);
  eq((await m('timeout', { user: tw.user.id, seconds: 2 })).type, 'ack', 'timeout acked');
  await viewer.event((e) => e.type === 'delete' && e.id === c2.id);
  await mod.event((e) => e.type === 'timeout' && e.user === tw.user.id);
  let r = await troll.request({ type: 'comment', text: 'let me talk' });
  eq(r.code, 'timed_out', 'timed out');
  assert(r.retry_after_ms > 0 && r.retry_after_ms <= 2000, 'retry_after_ms of a timeout');
  // the timeout reaches the address too: a fresh identity from it is refused
  const sock = await Client.connect(d.url(), as('10.0.0.3'));
  await sock.hello('sockpuppet');
  eq((await sock.request({ type: 'comment', text: 'hi' })).code, 'timed_out', 'address timed out');
  await sleep(2100);
  eq((await troll.request({ type: 'comment', text: 'back' })).type, 'ack', 'after the timeout');

  // ban / unban
  eq((await m('ban', { user: tw.user.id })).type, 'ack', 'ban acked');
  eq((await troll.request({ type: 'comment', text: 'x' })).code, 'banned', 'banned');
  eq((await sock.request({ type: 'comment', text: 'x' })).code, 'banned', 'address banned');
  r = await viewer.request({ type: 'comment', text: 'unaffected' });
  eq(r.type, 'ack', `others unaffected ${JSON.stringify(r)}`);
  eq((await m('unban', { user: tw.user.id })).type, 'ack', 'unban acked');
  eq((await troll.request({ type: 'comment', text: 'sorry' })).type, 'ack', 'unbanned');

  // slow mode
  eq((await m('slow', { seconds: 5 })).type, 'ack', 'slow acked');
  let st = await viewer.event((e) => e.type === 'state' && e.slow === 5);
  eq(st.hold, false, 'state carries hold');
  const slowpoke = await Client.connect(d.url(), as('10.0.0.4'));
  await slowpoke.hello('slowpoke');
  eq((await slowpoke.request({ type: 'comment', text: 's1' })).type, 'ack', 'first in slow mode');
  r = await slowpoke.request({ type: 'comment', text: 's2' });
  eq(r.code, 'slow_mode', 'slow_mode');
  assert(r.retry_after_ms > 4000 && r.retry_after_ms <= 5000, 'slow retry_after_ms');
  eq((await mod.request({ type: 'comment', text: 'mods are exempt' })).type, 'ack', 'mod in slow mode');
  eq((await mod.request({ type: 'comment', text: 'still exempt' })).type, 'ack', 'mod again');
  await m('slow', { seconds: 0 });
  await viewer.event((e) => e.type === 'state' && e.slow === 0);

  // hold: held for review, approve and reject
  await m('hold', { on: true });
  await viewer.event((e) => e.type === 'state' && e.hold === true);
  r = await troll.request({ type: 'comment', text: 'please approve' });
  eq(r.code, 'held', 'held');
  const held = await mod.event((e) => e.type === 'held');
  eq(held.comment.text, 'please approve', 'moderator sees the held comment');
  await viewer.noEvent((e) => e.type === 'held' || e.text === 'please approve');
  const late = await Client.connect(d.url(), as('10.0.0.9'));
  const modLate = new Client(d.url(), as('10.0.0.8'));
  await modLate.opened;
  await modLate.next((x) => x.type === 'welcome');
  const wl = await modLate.hello('mod2', MOD_TOKEN);
  eq(wl.held.map((h) => h.id), [held.comment.id], 'held queue in a moderator welcome');
  // published while the comment waited: the approved one must sort after it
  const meanwhile = await mod.request({ type: 'comment', text: 'while you wait' });
  eq(meanwhile.type, 'ack', 'a moderator posts while a comment is held');
  const approved = await m('approve', { id: held.comment.id });
  eq(approved.type, 'ack', 'approve acked');
  const shown = await viewer.event((e) => e.type === 'comment' && e.text === 'please approve');
  eq(approved.id, shown.id, 'the approve ack carries the published id');
  assert(shown.id > meanwhile.id && shown.id !== held.comment.id,
    `ids sort in publish order: approved ${shown.id} after ${meanwhile.id} (held as ${held.comment.id})`);
  eq(shown.ts, held.comment.ts, 'ts stays the moment it was written');
  await mod.event((e) => e.type === 'resolved' && e.id === held.comment.id && e.action === 'approve' &&
    e.comment_id === shown.id);
  r = await troll.request({ type: 'comment', text: 'reject me' });
  eq(r.code, 'held', 'held again');
  const held2 = await mod.event((e) => e.type === 'held' && e.comment.text === 'reject me');
  eq((await m('reject', { id: held2.comment.id })).type, 'ack', 'reject acked');
  await mod.event((e) => e.type === 'resolved' && e.id === held2.comment.id && e.action === 'reject');
  await viewer.noEvent((e) => e.text === 'reject me');
  eq((await m('approve', { id: held2.comment.id })).code, 'bad_request', 'approve a resolved comment');
  await m('hold', { on: false });
  await viewer.event((e) => e.type === 'state' && e.hold === false);

  // banned words, live
  eq((await m('words_add', { words: ['spoiler'] })).type, 'ack', 'words_add acked');
  await sleep(300); // compiled on the thread pool
  eq((await viewer.request({ type: 'comment', text: 'big SPOILER here' })).code, 'forbidden', 'banned word');
  // the list to edit: a moderator's welcome has the file's and the added
  // words; a viewer's (on connect and after hello) has none
  const modWords = new Client(d.url(), as('10.0.0.13'));
  await modWords.opened;
  eq((await modWords.next((x) => x.type === 'welcome')).banned_words, undefined, 'no words before the token');
  const ww = await modWords.hello('mod3', MOD_TOKEN);
  eq([...ww.banned_words].sort(), ['spoiler', 'xyzzyfile'], 'banned words in a moderator welcome');
  eq(ww.banned_words_total, 2, 'banned_words_total');
  const viewerWords = new Client(d.url(), as('10.0.0.14'));
  await viewerWords.opened;
  const vw0 = await viewerWords.next((x) => x.type === 'welcome');
  const vw1 = await viewerWords.hello('curious');
  for (const vw of [vw0, vw1]) {
    eq(vw.banned_words, undefined, 'no banned words for a viewer');
    eq(vw.banned_words_total, undefined, 'no banned words count for a viewer');
  }
  eq((await m('words_remove', { words: ['spoiler'] })).type, 'ack', 'words_remove acked');
  await sleep(300);
  eq((await viewer.request({ type: 'comment', text: 'big spoiler here' })).type, 'ack', 'word removed');
  await modWords.event((e) => e.type === 'words' && JSON.stringify(e.remove) === '["spoiler"]');
  const modWords2 = new Client(d.url(), as('10.0.0.15'));
  await modWords2.opened;
  await modWords2.next((x) => x.type === 'welcome');
  eq((await modWords2.hello('mod4', MOD_TOKEN)).banned_words, ['xyzzyfile'], 'a removed word leaves the list');

  // pin
  const p = await viewer.request({ type: 'comment', text: 'pin me' });
  await mod.event((e) => e.id === p.id);
  eq((await m('pin', { id: p.id })).type, 'ack', 'pin acked');
  st = await viewer.event((e) => e.type === 'state' && e.pinned && e.pinned.id === p.id);
  eq(st.pinned.text, 'pin me', 'pinned comment in state');
  const w = await Client.connect(d.url(), as('10.0.0.10'));
  w.inbox = [];
  const w2 = new Client(d.url(), as('10.0.0.11'));
  const welcome = await w2.next((x) => x.type === 'welcome');
  eq(welcome.state.pinned.id, p.id, 'pinned in welcome');
  eq((await m('pin', { id: 'nonexistent' })).code, 'bad_request', 'pin unknown id');
  await m('pin', { id: null });
  await viewer.event((e) => e.type === 'state' && e.pinned === null);

  // clear
  eq((await m('clear')).type, 'ack', 'clear acked');
  await viewer.event((e) => e.type === 'clear');
  const after = new Client(d.url(), as('10.0.0.12'));
  eq((await after.next((x) => x.type === 'welcome')).history, [], 'history cleared');

  for (const c of [slowpoke, mod, viewer, troll, sock, late, modLate, w, w2, after, modWords, viewerWords, modWords2])
    await c.close();
});

const CH_TOKEN = 'gala-only-token';
const shortId = (token) => `token:${createHash('sha256').update(token).digest('hex').slice(0, 8)}`;

await run('chat_moderation_channels', {
  channels: ['gala', 'other'],
  channelConf: { gala: `moderator_tokens = ${CH_TOKEN}` },
  chat: () => `auth_secret = ${SECRET}`,
}, async (d) => {
  const exp = Math.floor(Date.now() / 1000) + 600;
  const gm = await Client.connect(d.url('gala'), as('10.2.0.1'));
  eq((await gm.hello('gm', CH_TOKEN)).user.role, 'moderator', 'channel token moderates its channel');
  const om = await Client.connect(d.url('other'), as('10.2.0.2'));
  eq((await om.hello('om', CH_TOKEN)).user.role, 'viewer', 'channel token is a viewer elsewhere');
  eq((await om.request({ type: 'mod', action: 'slow', seconds: 5 })).code, 'forbidden',
     'no moderator action in another channel');
  const glob = await Client.connect(d.url('other'), as('10.2.0.3'));
  eq((await glob.hello('glob', MOD_TOKEN)).user.role, 'moderator', 'global token moderates every channel');
  const jm = await Client.connect(d.url('gala'), as('10.2.0.4'));
  eq((await jm.hello(undefined, jwt({ sub: 'jwt-mod-7', role: 'moderator', exp }))).user.role,
     'moderator', 'JWT moderator');

  const v = await Client.connect(d.url('gala'), as('10.2.0.5'));
  await v.hello('viewer');
  const c = await v.request({ type: 'comment', text: 'delete me' });
  eq((await gm.request({ type: 'mod', action: 'delete', id: c.id })).type, 'ack', 'channel moderator deletes');
  await v.event((e) => e.type === 'delete' && e.id === c.id);
  eq((await jm.request({ type: 'mod', action: 'slow', seconds: 0 })).type, 'ack', 'JWT moderator acts');
  eq((await glob.request({ type: 'mod', action: 'slow', seconds: 0 })).type, 'ack', 'global moderator acts');

  // who: the token's short id or the JWT's sub; never the token itself
  const who = shortId(CH_TOKEN);
  await sleep(300); // archive commit
  assert(d.log().includes(`moderation channel=gala by=${who} action=delete target=${c.id}`),
         `log line names ${who}`);
  assert(d.log().includes('moderation channel=gala by=jwt-mod-7 action=slow'), 'log line names the JWT sub');
  assert(d.log().includes(`moderation channel=other by=${shortId(MOD_TOKEN)} action=slow`),
         'log line names the global token by its short id');
  assert(!d.log().includes(CH_TOKEN) && !d.log().includes(MOD_TOKEN), 'no token in the log');
  const q = spawnSync('sqlite3', [join(d.dir, 'state', 'chat.sqlite3'),
    'SELECT channel, moderator, action FROM mod_log ORDER BY ts, rowid'], { encoding: 'utf8' });
  eq(q.status, 0, `sqlite3: ${q.stderr}`);
  eq(q.stdout.trim().split('\n'), [`gala|${who}|delete`, 'gala|jwt-mod-7|slow',
     `other|${shortId(MOD_TOKEN)}|slow`], 'the archive names who');

  // SIGHUP: the channel's tokens are replaced
  writeFileSync(d.confPath, readFileSync(d.confPath, 'utf8')
    .replace(`moderator_tokens = ${CH_TOKEN}`, 'moderator_tokens = new-gala-token'));
  d.reload();
  await sleep(300);
  const after = await Client.connect(d.url('gala'), as('10.2.0.6'));
  eq((await after.request({ type: 'hello', name: 'x', token: CH_TOKEN })).code, 'forbidden',
     'a removed channel token is no token after SIGHUP');
  const fresh = await Client.connect(d.url('gala'), as('10.2.0.7'));
  eq((await fresh.hello('y', 'new-gala-token')).user.role, 'moderator', 'new channel token after SIGHUP');
  for (const x of [gm, om, glob, jm, v, after, fresh]) await x.close();
});
