// The banned-word filter from the outside: banned words (live words_add)
// caught in full-width, upper case, traditional Chinese, spaced-out and
// zero-width-joined forms; display sanitising (bidi overrides, control
// characters, stacks of combining marks); names checked too;
// chat.filter_hold sends matches to review. (The words file: chat_words_file.)
import { run, Client, assert, eq, sleep, MOD_TOKEN } from './chat_lib.mjs';

await run('chat_filter', { chat: () => 'user_burst = 100\nuser_rate = 100' }, async (d) => {
  const mod = await Client.connect(d.url());
  await mod.hello('mod', MOD_TOKEN);
  eq((await mod.request({ type: 'mod', action: 'words_add', words: ['badword', '坏蛋', '台独'] })).type, 'ack', 'words_add');
  await sleep(300); // compiled on the thread pool
  const a = await Client.connect(d.url());
  await a.hello('alice');
  const b = await Client.connect(d.url());
  await b.hello('bob');
  const refused = async (text, what) => {
    const r = await a.request({ type: 'comment', text });
    eq([r.type, r.code], ['error', 'forbidden'], `${what}: ${text}`);
  };
  await refused('this is a badword', 'plain');
  await refused('BadWord!', 'case');
  await refused('ｂａｄｗｏｒｄ', 'full-width');
  await refused('b a d w o r d', 'spaced out');
  await refused('b.a.d-w_o/r*d', 'punctuation between letters');
  await refused('bad\u200bwo\u200drd', 'zero-width joined');
  await refused('b\u0301adword', 'combining mark inside');
  await refused('你这个坏蛋', 'simplified');
  await refused('你這個壞蛋', 'traditional');
  await refused('臺獨', 'traditional (variant)');
  await refused('坏 蛋', 'spaced CJK');
  eq((await a.request({ type: 'comment', text: 'a good word' })).type, 'ack', 'innocent text');
  eq((await a.request({ type: 'comment', text: '好蛋' })).type, 'ack', 'innocent CJK');

  // names
  const n = await Client.connect(d.url());
  eq((await n.request({ type: 'hello', name: 'ＢＡＤＷＯＲＤ' })).code, 'forbidden', 'banned name');

  // display sanitising: bidi overrides and controls removed, marks bounded
  const r = await a.request({ type: 'comment', text: 'hi\u202eevil\u202c \u0007x\u0301\u0301\u0301\u0301\u0301' });
  eq(r.type, 'ack', 'sanitised comment accepted');
  const ev = await b.event((e) => e.id === r.id);
  eq(ev.text, 'hievil x\u0301\u0301', 'display form');

  for (const c of [a, b, n, mod]) await c.close();
});


// filter_hold: a match is held for review instead of refused
await run('chat_filter_hold', {
  chat: () => 'filter_hold = true',
}, async (d) => {
  const mod = await Client.connect(d.url());
  await mod.hello('mod', MOD_TOKEN);
  await mod.request({ type: 'mod', action: 'words_add', words: ['badword'] });
  await sleep(300);
  const a = await Client.connect(d.url());
  await a.hello('alice');
  eq((await a.request({ type: 'comment', text: 'ＢＡＤＷＯＲＤ' })).code, 'held', 'held');
  const h = await mod.event((e) => e.type === 'held');
  eq(h.comment.text, 'ＢＡＤＷＯＲＤ', 'moderator sees the original text');
  assert(h.comment.user.name === 'alice', 'held comment has its user');
  for (const c of [a, mod]) await c.close();
});
