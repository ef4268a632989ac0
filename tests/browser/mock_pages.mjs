// mock_pages.mjs: the pages against a stand-in for the daemon, inside the
// browser: files come from the built web root, /api/v1/channels and the
// chat websocket are answered by this script (playwright's request and
// websocket routing). It checks what the pages send (docs/protocol.md's message shapes)
// and what they show for what the server says, including a comment made of
// HTML. The real daemon is exercised by live_pages.mjs.
//
//   node tests/browser/mock_pages.mjs WEB_ROOT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { launch, newPage, outDir, waitFor, sleep } from './lib.mjs';

const WEB_ROOT = process.argv[2] || process.env.WEB_ROOT;
const BASE = 'http://galarelay.test';
const XSS = '<img src=x onerror=alert(1)>';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

let browser;
let problems = [];
let channels = { channels: [] };

before(async () => {
  assert.ok(WEB_ROOT, 'usage: mock_pages.mjs WEB_ROOT');
  browser = await launch();
});
after(async () => browser && (await browser.close()));

// Serve the web root the way the daemon maps its paths.
async function routeFiles(page) {
  await page.route(`${BASE}/**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/api/v1/channels') return route.fulfill({ json: channels });
    if (path.startsWith('/hls/')) return route.fulfill({ status: 404, body: 'not found\n' });
    let file = path.slice(1);
    if (path === '/') file = 'index.html';
    else if (/^\/watch\/[^/]+$/.test(path)) file = 'watch.html';
    else if (/^\/moderate\/[^/]+$/.test(path)) file = 'moderate.html';
    try {
      const body = await readFile(join(WEB_ROOT, file));
      return route.fulfill({ body, contentType: TYPES[extname(file)] || 'application/octet-stream' });
    } catch {
      return route.fulfill({ status: 404, body: 'not found\n' });
    }
  });
}

// A stand-in chat server for one page: records what the page sends, lets
// the test answer.
async function mockChat(page, channel) {
  const chat = { got: [], ws: null };
  await page.routeWebSocket(`ws://galarelay.test/chat/${channel}`, (ws) => {
    chat.ws = ws;
    ws.onMessage((m) => chat.got.push(JSON.parse(m)));
  });
  chat.send = (obj) => chat.ws.send(JSON.stringify(obj));
  // a compressed batch, as the daemon sends it to who asked: a binary frame
  // holding the raw DEFLATE of the JSON
  chat.sendDeflated = (obj) => chat.ws.send(deflateRawSync(JSON.stringify(obj)));
  chat.next = async (type) => {
    const msg = await waitFor(`a ${type} from the page`, () => chat.got.find((m) => m.type === type));
    chat.got.splice(chat.got.indexOf(msg), 1);
    return msg;
  };
  return chat;
}

const user = (id, name, role = 'viewer') => ({ id, name, role });
const comment = (id, text, who = user('u9', '小李')) => ({ type: 'comment', id, user: who, text, ts: Date.now() });

test('index lists channels, live first, tolerant of missing and extra fields', async () => {
  channels = {
    channels: [
      { name: 'quiet', live: false, extra: { x: 1 } },
      { name: 'gala', title: '留浙云春晚', live: true, viewers: 12, chat_members: 3, source: { codec: 'h264' } },
    ],
    more: true,
  };
  const page = await newPage(browser, { problems });
  await routeFiles(page);
  await page.goto(`${BASE}/`);
  await waitFor('two channel cards', async () => (await page.locator('.channel').count()) === 2);
  const first = page.locator('.channel').first();
  assert.equal(await first.locator('.ch-title').textContent(), '留浙云春晚');
  assert.equal(await first.locator('a').getAttribute('href'), '/watch/gala');
  assert.match(await first.textContent(), /12/);
  assert.match(await page.locator('.channel').nth(1).textContent(), /未开播/);
  await page.context().close();
});

test('watch: offline slate, comments as text, echo, refusals, delete, held', async () => {
  channels = { channels: [{ name: 'gala', title: '留浙云春晚', live: false }] };
  const page = await newPage(browser, { width: 390, height: 844, problems });
  await routeFiles(page);
  const chat = await mockChat(page, 'gala');
  await page.addInitScript(() => localStorage.setItem('galarelay.name', '小张'));
  await page.goto(`${BASE}/watch/gala`);

  await waitFor('the offline slate', () => page.locator('#slate').isVisible());
  assert.match(await page.locator('#slate').textContent(), /还没有开播/);

  const hello = await chat.next('hello');
  assert.equal(hello.name, '小张');
  assert.equal(hello.compress, 'deflate-raw', 'the page asks for compressed batches');
  chat.send({
    type: 'welcome',
    user: user('u1', '小张'),
    state: { slow: 0, hold: false, pinned: null },
    history: [comment('1', XSS), comment('2', '新年快乐')],
  });
  await waitFor('history', async () => (await page.locator('#comments .comment').count()) === 2);
  assert.equal(await page.locator('#comments .comment .text').first().textContent(), XSS);
  assert.equal(await page.locator('#comments img').count(), 0, 'comment HTML must not become elements');

  // Another viewer's comment: no player, so it shows at once, and flies.
  chat.send({ type: 'batch', events: [comment('3', `弹幕 ${XSS}`)] });
  await waitFor('comment 3 in the list', () => page.locator('#comments .comment[data-id="3"]').count());
  await waitFor('comment 3 as danmaku', () => page.locator('#danmaku .dm').count());
  assert.equal(await page.locator('#danmaku img').count(), 0);

  // A compressed batch (binary), then a text one: both shown, in order.
  chat.sendDeflated({ type: 'batch', events: [comment('z1', '压缩的一批', { name: '小王' })] });
  chat.send({ type: 'batch', events: [comment('z2', '然后是文本', { name: '小王' })] });
  await waitFor('both batches shown', async () => (await page.locator('#comments .comment[data-id^="z"]').count()) === 2);
  assert.deepEqual(await page.locator('#comments .comment[data-id^="z"]').evaluateAll((els) => els.map((e) => e.dataset.id)), ['z1', 'z2']);

  // Own comment: echo at once, ack gives it its id.
  await page.fill('#text', '我来了');
  await page.click('#send-btn');
  const sent = await chat.next('comment');
  assert.equal(sent.text, '我来了');
  assert.ok(sent.nonce, 'comment carries a nonce');
  assert.equal(await page.locator('#comments .comment.own.pending').count(), 1);
  chat.send({ type: 'ack', nonce: sent.nonce, id: '4' });
  await waitFor('echo confirmed', () => page.locator('#comments .comment.own[data-id="4"]').count());
  chat.send({ type: 'batch', events: [comment('4', '我来了', { name: '小张' })] }); // viewers' lean form
  await sleep(200);
  assert.equal(await page.locator('#comments .comment[data-id="4"]').count(), 1, 'no duplicate of own comment');

  // Refusals in words.
  await page.fill('#text', '再来一条');
  await page.click('#send-btn');
  const again = await chat.next('comment');
  chat.send({ type: 'error', nonce: again.nonce, code: 'rate_limited', message: 'slow down', retry_after_ms: 2000 });
  await waitFor('rate-limit notice', async () => /发得太快.*2 秒/.test(await page.locator('#notice').textContent()));
  assert.equal(await page.inputValue('#text'), '再来一条', 'refused text is given back');

  await page.click('#send-btn');
  const long = await chat.next('comment');
  chat.send({ type: 'error', nonce: long.nonce, code: 'too_long', message: 'too long' });
  await waitFor('too-long notice', async () => /太长/.test(await page.locator('#notice').textContent()));

  await page.click('#send-btn');
  const held = await chat.next('comment');
  chat.send({ type: 'error', nonce: held.nonce, code: 'held', message: 'held' });
  await waitFor('held notice', async () => /审核/.test(await page.locator('#notice').textContent()));
  assert.equal(await page.locator('#comments .comment.held').count(), 1);
  chat.send({ type: 'batch', events: [comment('5', '再来一条', { name: '小张' })] }); // new id, no user id
  await waitFor('approved comment replaces the held echo', async () =>
    (await page.locator('#comments .comment.held').count()) === 0 &&
    (await page.locator('#comments .comment[data-id="5"]').count()) === 1);

  // Room state and pin.
  chat.send({ type: 'batch', events: [{ type: 'state', slow: 10, hold: true, pinned: { id: '2', text: '新年快乐', user: user('u9', '小李') } }] });
  await waitFor('slow mode shown', async () => /慢速模式/.test(await page.locator('#room').textContent()));
  await waitFor('pinned shown', () => page.locator('#pinned').isVisible());
  chat.send({ type: 'batch', events: ['春晚开始了！', '主持人好', '这个节目太精彩了！'].map((t, i) => comment(`s${i}`, t)) });
  await sleep(400);
  await page.screenshot({ path: join(outDir(), 'mock-watch-phone.png') });

  // Delete and clear.
  chat.send({ type: 'batch', events: [{ type: 'delete', id: '3' }] });
  await waitFor('comment 3 gone', async () => (await page.locator('#comments .comment[data-id="3"]').count()) === 0, { timeout: 1000 });
  chat.send({ type: 'batch', events: [{ type: 'clear' }] });
  await waitFor('list cleared', async () => (await page.locator('#comments .comment').count()) === 0, { timeout: 1000 });

  // Density limit: at most 8 fly at once on "low".
  await page.selectOption('#dm-density', 'low');
  chat.send({ type: 'batch', events: Array.from({ length: 30 }, (_, i) => comment(`d${i}`, `弹幕${i}`)) });
  await waitFor('the burst in the list', () => page.locator('#comments .comment[data-id="d29"]').count());
  const flyingNow = await page.locator('#danmaku .dm').count();
  assert.ok(flyingNow >= 1 && flyingNow <= 8, `${flyingNow} flying on low density`);

  // Danmaku off: nothing flies.
  await page.uncheck('#dm-on');
  chat.send({ type: 'batch', events: [comment('6', 'no fly')] });
  await waitFor('comment 6', () => page.locator('#comments .comment[data-id="6"]').count());
  assert.equal(await page.locator('#danmaku .dm').count(), 0);
  await page.context().close();
});

test('watch: a new name is a new hello; a refused name is said in words', async () => {
  channels = { channels: [{ name: 'gala', live: false }] };
  const page = await newPage(browser, { problems });
  await routeFiles(page);
  const chat = await mockChat(page, 'gala');
  await page.goto(`${BASE}/watch/gala`);
  await waitFor('socket', () => chat.ws);
  // an anonymous reader says hello only to ask for compressed batches
  assert.deepEqual(await chat.next('hello'), { type: 'hello', compress: 'deflate-raw' });
  chat.send({ type: 'welcome', user: user('', ''), state: {}, history: [] });
  await page.fill('#text', '没有名字');
  await page.click('#send-btn');
  await waitFor('name needed', async () => /昵称/.test(await page.locator('#notice').textContent()));
  assert.equal(chat.got.filter((m) => m.type === 'comment').length, 0);

  await page.fill('#name', '坏名字');
  await page.click('#send-btn');
  const bad = await chat.next('hello');
  assert.equal(bad.name, '坏名字');
  chat.send({ type: 'error', nonce: bad.nonce, code: 'forbidden', message: 'name not allowed' });
  await waitFor('name refusal', async () => /name not allowed/.test(await page.locator('#notice').textContent()));
  assert.equal(chat.got.filter((m) => m.type === 'comment').length, 0);

  await page.fill('#name', '小王');
  await page.click('#send-btn');
  const good = await chat.next('hello');
  chat.send({ type: 'ack', nonce: good.nonce });
  chat.send({ type: 'welcome', user: user('u5', '小王'), state: {}, history: [] });
  const sent = await chat.next('comment');
  assert.equal(sent.text, '没有名字');
  await page.context().close();
});

test('moderate: sign in with the token, every action sends its message', async () => {
  channels = { channels: [{ name: 'gala', title: '留浙云春晚', live: true, viewers: 7, chat_members: 2 }] };
  const page = await newPage(browser, { problems });
  await routeFiles(page);
  const chat = await mockChat(page, 'gala');
  await page.goto(`${BASE}/moderate/gala`);
  await page.fill('#token', 'demo-moderator');
  await page.click('#signin button[type=submit]');
  const hello = await chat.next('hello');
  assert.equal(hello.token, 'demo-moderator');
  chat.send({
    type: 'welcome',
    user: user('m1', '主持人', 'moderator'),
    state: { slow: 0, hold: false, pinned: null },
    history: [comment('1', XSS)],
    held: [{ type: 'comment', id: '8', user: user('u7', '甲'), text: '早就在等', ts: Date.now() }],
  });
  await waitFor('console shown', () => page.locator('#console').isVisible());
  assert.equal(await page.locator('#comments img').count(), 0);
  await waitFor('viewer count', async () => /7/.test(await page.locator('#viewers').textContent()));

  const answer = async (action) => {
    const m = await chat.next('mod');
    assert.equal(m.action, action);
    chat.send({ type: 'ack', nonce: m.nonce });
    return m;
  };
  await page.click('#comments .comment[data-id="1"] .act-delete');
  assert.equal((await answer('delete')).id, '1');
  await page.click('#comments .comment[data-id="1"] .act-timeout');
  const to = await answer('timeout');
  assert.equal(to.user, 'u9');
  assert.equal(to.seconds, 300);
  await page.click('#comments .comment[data-id="1"] .act-ban');
  assert.equal((await answer('ban')).user, 'u9');
  await page.click('#comments .comment[data-id="1"] .act-pin');
  assert.equal((await answer('pin')).id, '1');

  chat.send({ type: 'batch', events: [{ type: 'held', comment: { id: '9', user: user('u8', '路人'), text: '待审', ts: Date.now() } }] });
  await waitFor('held item', () => page.locator('#held .comment[data-id="9"]').count());
  assert.equal(await page.locator('#held .comment').count(), 2, 'held from welcome and from the event');
  await page.click('#held .comment[data-id="9"] .act-approve');
  assert.equal((await answer('approve')).id, '9');
  chat.send({ type: 'batch', events: [{ type: 'resolved', id: '9' }] });
  await waitFor('held item gone', async () => (await page.locator('#held .comment').count()) === 1);

  await page.check('#hold');
  assert.equal((await answer('hold')).on, true);
  await page.fill('#slow', '15');
  await page.click('#slow-set');
  assert.equal((await answer('slow')).seconds, 15);
  await page.fill('#words-in', '坏词, badword');
  await page.click('#words-form button');
  assert.deepEqual((await answer('words_add')).words, ['坏词', 'badword']);
  await waitFor('word chips', async () => (await page.locator('#words .chip').count()) === 2);
  await page.screenshot({ path: join(outDir(), 'mock-moderate.png') });
  await page.click('#words .chip:has-text("坏词") button');
  assert.deepEqual((await answer('words_remove')).words, ['坏词']);
  await page.click('#clear');
  await page.click('#clear');
  await answer('clear');
  await waitFor('log entries', async () => (await page.locator('#log li.ok').count()) >= 9);

  // A refused action is logged in words.
  await page.click('#comments .comment[data-id="1"] .act-delete');
  const m = await chat.next('mod');
  chat.send({ type: 'error', nonce: m.nonce, code: 'forbidden', message: 'no' });
  await waitFor('refusal logged', async () => /没有权限/.test(await page.locator('#log li.bad').first().textContent()));
  await page.context().close();
});

// A signed-in console; welcome: extra fields of the moderator's welcome.
async function signedInConsole(welcome = {}) {
  channels = { channels: [{ name: 'gala', live: false }] };
  const page = await newPage(browser, { problems });
  await routeFiles(page);
  const chat = await mockChat(page, 'gala');
  await page.goto(`${BASE}/moderate/gala`);
  await page.fill('#token', 'demo-moderator');
  await page.click('#signin button[type=submit]');
  await chat.next('hello');
  chat.send({ type: 'welcome', user: user('m1', '主持人', 'moderator'), state: { slow: 0, hold: false, pinned: null }, history: [], held: [], ...welcome });
  await waitFor('console shown', () => page.locator('#console').isVisible());
  return { page, chat };
}

const wordChips = async (page) => (await page.locator('#words .chip span').allTextContents()).sort();

test('moderate: words events from other moderators change the list', async () => {
  const { page, chat } = await signedInConsole();
  // The protocol's shape: {"type":"words","add":[…]} or {"type":"words","remove":[…]}
  chat.send({ type: 'batch', events: [{ type: 'words', add: ['spoiler', '坏词', 'third'] }] });
  await waitFor('added words', async () => (await page.locator('#words .chip').count()) === 3);
  assert.deepEqual(await wordChips(page), ['spoiler', 'third', '坏词'].sort());
  chat.send({ type: 'batch', events: [{ type: 'words', remove: ['spoiler', 'third'] }] });
  await waitFor('removed words', async () => (await page.locator('#words .chip').count()) === 1);
  assert.deepEqual(await wordChips(page), ['坏词']);
  await page.context().close();
});

test('moderate: the welcome\'s banned words are listed and can be removed', async () => {
  const { page, chat } = await signedInConsole({ banned_words: ['剧透', 'fromfile', XSS], banned_words_total: 5 });
  await waitFor('the welcome\'s words', async () => (await page.locator('#words .chip').count()) === 3);
  assert.deepEqual(await wordChips(page), [XSS, 'fromfile', '剧透'].sort());
  assert.equal(await page.locator('#words img').count(), 0, 'a word is text, never HTML');
  assert.match(await page.locator('#words-note').textContent(), /2 more words are not listed/);
  await page.click('#words .chip:has-text("剧透") button');
  const m = await chat.next('mod');
  assert.equal(m.action, 'words_remove');
  assert.deepEqual(m.words, ['剧透']);
  chat.send({ type: 'ack', nonce: m.nonce });
  await waitFor('word gone', async () => (await page.locator('#words .chip').count()) === 2);
  // then the server's words event for it changes nothing more
  chat.send({ type: 'batch', events: [{ type: 'words', remove: ['剧透'] }] });
  await sleep(200);
  assert.deepEqual(await wordChips(page), [XSS, 'fromfile'].sort());
  await page.context().close();
});

test('moderate: a viewer-role welcome means the token was refused', async () => {
  const page = await newPage(browser, { problems });
  await routeFiles(page);
  const chat = await mockChat(page, 'gala');
  await page.goto(`${BASE}/moderate/gala`);
  await page.fill('#token', 'wrong');
  await page.click('#signin button[type=submit]');
  await chat.next('hello');
  chat.send({ type: 'welcome', user: user('v1', 'x', 'viewer'), state: {}, history: [] });
  await waitFor('refusal', async () => /未被接受/.test(await page.locator('#signin-msg').textContent()), { timeout: 4000 });
  assert.equal(await page.locator('#console').isVisible(), false);
  await page.context().close();
});

test('no page error, no dialog', () => {
  assert.deepEqual(problems, []);
});
