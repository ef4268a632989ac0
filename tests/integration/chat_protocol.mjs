// The comment protocol against the real daemon: welcome,
// hello (name, JWT accepted / expired / forged, moderator token), comments
// with acks and short ids, the viewers' lean and the moderators' full
// comments, compressed batches (hello compress: one binary frame that
// inflates to the text batch others get, everything else text), history
// for newcomers, every way a frame can be wrong (bad JSON, binary,
// unknown type, missing field: error, stays open; invalid UTF-8: 1007;
// oversize: 1009, also in fragments), and a message sent in fragments
// (continuation frames) reassembled.
import { run, Client, jwt, assert, eq, MOD_TOKEN, SECRET } from './chat_lib.mjs';

await run('chat_protocol', { chat: () => `auth_secret = ${SECRET}\nmax_frame_bytes = 1024` }, async (d) => {
  const a = new Client(d.url());
  await a.opened;
  const w = await a.next((m) => m.type === 'welcome');
  eq(w.user.role, 'viewer', 'anonymous role');
  assert(typeof w.user.id === 'string' && w.user.id.length > 0, 'anonymous id');
  eq(w.state, { slow: 0, hold: false, pinned: null }, 'initial state');
  eq(w.history, [], 'empty history');

  // posting needs a name
  let r = await a.request({ type: 'comment', text: 'hi' });
  eq([r.type, r.code], ['error', 'forbidden'], 'comment before hello');

  const w2 = await a.hello('小张');
  eq(w2.user.name, '小张', 'name in welcome');
  const b = await Client.connect(d.url());
  await b.hello('bob');

  r = await a.request({ type: 'comment', text: '新年快乐' });
  eq(r.type, 'ack', 'comment acked');
  assert(typeof r.id === 'string' && r.id.length > 0, 'ack has an id');
  assert(/^[-0-9A-Z_a-z]{13}$/.test(r.id), `short id: ${r.id}`);
  const ev = await b.event((e) => e.type === 'comment' && e.id === r.id);
  // viewers: the name only (no user id, no default role)
  eq([ev.text, ev.user], ['新年快乐', { name: '小张' }], 'comment event');
  assert(Math.abs(ev.ts - Date.now()) < 5000, 'ts is server time in ms');
  await a.event((e) => e.type === 'comment' && e.id === r.id); // the sender sees it too

  // compressed batches: asked for in a hello without a name (no second
  // welcome for it); batches come as one binary frame that inflates to the
  // very text the others get in the same tick; replies stay text
  const z = await Client.connect(d.url());
  const zr = await z.request({ type: 'hello', compress: 'deflate-raw' });
  eq(zr.type, 'ack', 'hello compress acked');
  const mz = await Client.connect(d.url());
  await mz.hello('modz', MOD_TOKEN, { compress: 'deflate-raw' });
  const cr = await a.request({ type: 'comment', text: '压缩的弹幕也要到达' });
  const zev = await z.event((e) => e.type === 'comment' && e.id === cr.id);
  eq([zev.text, zev.user], ['压缩的弹幕也要到达', { name: '小张' }], 'comment through a compressed batch');
  const mev = await mz.event((e) => e.type === 'comment' && e.id === cr.id);
  eq(mev.user, { id: w2.user.id, name: '小张', role: 'viewer' }, 'moderators get the full user');
  await b.event((e) => e.type === 'comment' && e.id === cr.id);
  const zf = z.frames.find((f) => f.text.includes(cr.id));
  const bf = b.frames.find((f) => f.text.includes(cr.id));
  eq([zf.binary, bf.binary], [true, false], 'binary for who asked, text for the others');
  eq(zf.text, bf.text, 'the compressed batch inflates to the text batch');
  assert(zf.bytes < bf.bytes, `compressed is smaller: ${zf.bytes} < ${bf.bytes}`);
  assert(z.frames.every((f) => f.binary === (f.type === 'batch')), 'only batches are binary');
  eq(z.frames.filter((f) => f.type === 'welcome').length, 1, 'no second welcome for a compress-only hello');
  eq((await z.request({ type: 'hello', compress: 'none' })).type, 'ack', 'compression off');
  const tr = await a.request({ type: 'comment', text: 'plain again' });
  await z.event((e) => e.type === 'comment' && e.id === tr.id);
  eq(z.frames.find((f) => f.text.includes(tr.id)).binary, false, 'text batches after compress none');
  for (const x of [z, mz]) await x.close();

  // ids sort in publish order
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push((await b.request({ type: 'comment', text: `m${i}` })).id);
  eq([...ids].sort(), ids, 'ids sort in order');

  // a newcomer gets the history
  const c = await Client.connect(d.url());
  await c.close();
  const c2 = new Client(d.url());
  const w3 = await c2.next((m) => m.type === 'welcome');
  eq(w3.history.map((h) => h.text), ['新年快乐', '压缩的弹幕也要到达', 'plain again', 'm0', 'm1', 'm2', 'm3'], 'history');
  eq(w3.history[0].user, { name: '小张' }, 'lean comments in a viewer\'s history');

  // limits on text
  eq((await a.request({ type: 'comment', text: '   ' })).code, 'empty', 'empty');
  eq((await a.request({ type: 'comment', text: 'x'.repeat(201) })).code, 'too_long', 'too_long');
  eq((await a.request({ type: 'comment', text: '字'.repeat(200) })).type, 'ack', '200 code points are fine');
  // bad requests keep the connection
  a.send('{not json');
  eq((await a.next((m) => m.type === 'error')).code, 'bad_request', 'bad JSON');
  a.ws.send(Buffer.from('{"type":"comment","text":"bin"}'), { binary: true });
  eq((await a.next((m) => m.type === 'error')).code, 'bad_request', 'binary frame');
  eq((await a.request({ type: 'dance' })).code, 'bad_request', 'unknown type');
  eq((await a.request({ type: 'comment' })).code, 'bad_request', 'missing field');
  eq((await a.request({ type: 'mod', action: 'clear' })).code, 'forbidden', 'mod by a viewer');
  eq((await a.request({ type: 'comment', text: 'still here' })).type, 'ack', 'open after errors');

  // JWT
  const now = Math.floor(Date.now() / 1000);
  const j = await Client.connect(d.url());
  const wj = await j.hello(undefined, jwt({ sub: 'site-42', name: '王五', exp: now + 60 }));
  eq([wj.user.id, wj.user.name, wj.user.role], ['site-42', '王五', 'viewer'], 'JWT user');
  eq((await j.request({ type: 'comment', text: 'jwt' })).type, 'ack', 'JWT user posts');
  eq((await j.request({ type: 'hello', token: jwt({ sub: 'x', exp: now - 3600 }) })).code, 'forbidden', 'expired JWT');
  eq((await j.request({ type: 'hello', token: jwt({ sub: 'x', exp: now + 60 }, 'wrong') })).code, 'forbidden', 'forged JWT');
  const jm = await Client.connect(d.url());
  eq((await jm.hello(undefined, jwt({ sub: 'boss', role: 'moderator', exp: now + 60 }))).user.role, 'moderator', 'JWT moderator');
  const m = await Client.connect(d.url());
  eq((await m.hello('mod', MOD_TOKEN)).user.role, 'moderator', 'moderator token');

  // unknown channel: the handshake is refused
  const bad = new Client(d.url('nochannel'));
  let refused = false;
  try { await bad.opened; } catch { refused = true; }
  assert(refused, 'unknown channel refused');

  // invalid UTF-8: 1007
  const u = await Client.connect(d.url());
  u.ws.send(Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]), { binary: false });
  eq((await u.closed).code, 1007, 'invalid UTF-8 closes with 1007');

  // oversize frame: 1009
  const o = await Client.connect(d.url());
  o.send(JSON.stringify({ type: 'comment', text: 'x'.repeat(2000) }));
  eq((await o.closed).code, 1009, 'oversize closes with 1009');

  // a message in three fragments is reassembled, and the next whole one
  // is read as before (the reassembly buffer lives only while it is needed)
  const f = await Client.connect(d.url());
  await f.hello('frag');
  const msg = JSON.stringify({ type: 'comment', text: 'in pieces', nonce: 'frag1' });
  f.ws.send(msg.slice(0, 10), { fin: false });
  f.ws.send(msg.slice(10, 20), { fin: false });
  f.ws.send(msg.slice(20), { fin: true });
  const fr = await f.next((m) => m.nonce === 'frag1');
  eq(fr.type, 'ack', 'a comment in fragments is acked');
  eq((await f.next((m) => m.type === 'batch' && m.events.some((e) => e.text === 'in pieces'))).type, 'batch',
     'and delivered whole');
  eq((await f.request({ type: 'comment', text: 'whole again' })).type, 'ack', 'a whole one after it');
  // fragments that pass the limit together: 1009
  const g = await Client.connect(d.url());
  g.ws.send('{"type":"comment","text":"' + 'x'.repeat(600), { fin: false });
  g.ws.send('x'.repeat(600) + '"}', { fin: true });
  eq((await g.closed).code, 1009, 'oversize in fragments closes with 1009');

  // metrics
  const text = await (await fetch(`${d.base}/metrics`)).text();
  assert(/galarelay_chat_comments_accepted_total\{channel="gala"\} \d+/.test(text), 'metrics');
  for (const x of [a, b, c2, j, jm, m, f]) await x.close();
});
