// live_pages.mjs: the pages against the real daemon, with a real publisher
// (ffmpeg) started and stopped from here. run.sh starts the daemon and
// passes where it listens:
//
//   GALARELAY_URL=http://127.0.0.1:PORT RTMP_PUBLISH_URL=rtmp://…/live/KEY \
//   CHANNEL=gala MOD_TOKEN=… BROWSER_OUT=dir node tests/browser/live_pages.mjs
//
// One story, in order, because each step needs the state the last one left:
// offline slate -> broadcast starts -> video plays -> quality switch ->
// comments between pages (in step with the picture, as danmaku, HTML shown
// as text) -> moderator delete -> hold and approve -> screenshots ->
// broadcast stops -> offline slate.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { launch, newPage, outDir, waitFor, sleep } from './lib.mjs';

const BASE = process.env.GALARELAY_URL;
const PUBLISH = process.env.RTMP_PUBLISH_URL;
const CHANNEL = process.env.CHANNEL || 'gala';
const MOD_TOKEN = process.env.MOD_TOKEN;
const XSS = '<img src=x onerror=alert(1)>';
const OUT = outDir();

let browser;
let publisher = null;
const problems = [];
let viewer; // narrow screen, the one whose sync is checked
let sender; // laptop screen, posts comments
const viewerFrames = []; // the viewer page's websocket frames: {sent, payload (string or Buffer)}
let mod;

function startPublisher() {
  publisher = spawn(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
      '-f', 'lavfi', '-i', 'sine=frequency=440',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30',
      '-c:a', 'aac', '-f', 'flv', PUBLISH],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

async function stopPublisher() {
  if (!publisher || publisher.exitCode !== null) return;
  const gone = new Promise((r) => publisher.once('exit', r));
  publisher.kill('SIGTERM');
  await Promise.race([gone, sleep(3000)]);
  if (publisher.exitCode === null) publisher.kill('SIGKILL');
}

before(async () => {
  assert.ok(BASE && PUBLISH && MOD_TOKEN, 'GALARELAY_URL, RTMP_PUBLISH_URL and MOD_TOKEN are needed');
  browser = await launch();
});
after(async () => {
  await stopPublisher();
  if (browser) await browser.close();
});

const playing = (page) =>
  page.evaluate(() => {
    const v = document.getElementById('video');
    return { t: v.currentTime, paused: v.paused, ready: v.readyState };
  });

async function advances(page, what, within = 15000) {
  const start = (await playing(page)).t;
  await waitFor(what, async () => (await playing(page)).t > start + 1, { timeout: within });
}

// Records, in the page, the program-date-time at the moment each comment
// appears in the list: the sync check reads it back.
async function watchArrivals(page) {
  await page.evaluate(() => {
    window.arrivals = {};
    new MutationObserver((records) => {
      for (const r of records)
        for (const n of r.addedNodes)
          if (n.dataset) window.arrivals[n.querySelector('.text')?.textContent] = { pdt: window.galarelay.player.programDate(), at: Date.now() };
    }).observe(document.getElementById('comments'), { childList: true });
  });
}

// The steps form two stories, video and chat: once a step fails, the rest
// of its story is skipped rather than failing one after another on
// timeouts. The chat story does not need the video: without a picture the
// pages show comments at once.
const broken = { video: '', chat: '' };
function step(name, stories, fn) {
  test(name, async (t) => {
    const after = stories.map((s) => broken[s]).find(Boolean);
    if (after) return t.skip(`after "${after}" failed`);
    try {
      await fn(t);
    } catch (err) {
      for (const s of stories) broken[s] ||= name;
      throw err;
    }
  });
}
const videoOk = () => !broken.video;

const inList = (page, text) =>
  page.evaluate((t) => [...document.querySelectorAll('#comments .comment .text')].some((e) => e.textContent === t), text);
const flying = (page, text) =>
  page.evaluate((t) => [...document.querySelectorAll('#danmaku .dm')].some((e) => e.textContent === t), text);

async function post(page, text) {
  await page.fill('#text', text);
  await page.click('#send-btn');
}

step('offline slate, then the player starts by itself and plays', ['video'], async () => {
  viewer = await newPage(browser, { width: 390, height: 844, problems });
  // what the anonymous viewer's chat socket carries, both ways
  viewer.on('websocket', (ws) => {
    ws.on('framesent', (f) => viewerFrames.push({ sent: true, payload: f.payload }));
    ws.on('framereceived', (f) => viewerFrames.push({ sent: false, payload: f.payload }));
  });
  const page = await viewer.goto(`${BASE}/watch/${CHANNEL}`);
  // the pages run under their own Content-Security-Policy (newPage reports
  // whatever it blocks)
  const csp = page.headers()['content-security-policy'] || '';
  assert.match(csp, /frame-ancestors/);
  assert.equal(page.headers()['x-content-type-options'], 'nosniff');
  await waitFor('offline slate', () => viewer.locator('#slate').isVisible());
  assert.match(await viewer.locator('#slate').textContent(), /还没有开播/);
  await viewer.screenshot({ path: join(OUT, 'watch-offline.png') });

  const t0 = Date.now();
  startPublisher();
  await waitFor('the slate to go', async () => !(await viewer.locator('#slate').isVisible()), { timeout: 30000 });
  await advances(viewer, 'currentTime to advance', 30000);
  console.log(`# video playing ${((Date.now() - t0) / 1000).toFixed(1)} s after the publisher started`);
  await waitFor('a behind-live readout', async () => /落后直播/.test(await viewer.locator('#behind').textContent()));
});

step('quality menu: every rendition plus auto, and switching works', ['video'], async () => {
  const options = await viewer.locator('#quality option').evaluateAll((os) => os.map((o) => ({ v: o.value, t: o.textContent })));
  assert.equal(options[0].v, '-1');
  assert.ok(options.length >= 3, `auto + at least two renditions, got ${JSON.stringify(options)}`);
  const current = await viewer.evaluate(() => window.galarelay.player.hls.currentLevel);
  const other = options.find((o) => o.v !== '-1' && Number(o.v) !== current);
  await viewer.selectOption('#quality', other.v);
  await waitFor('the switch', () => viewer.evaluate((want) => window.galarelay.player.hls.currentLevel === want, Number(other.v)), { timeout: 10000 });
  await advances(viewer, 'playback after the switch');
  await viewer.selectOption('#quality', '-1');
  assert.equal(await viewer.evaluate(() => window.galarelay.player.hls.autoLevelEnabled), true);
});

step('behind-live readout and the jump-to-live button', ['video'], async () => {
  const behind = () => viewer.evaluate(() => window.galarelay.player.behindLive());
  await viewer.evaluate(() => document.getElementById('video').pause());
  await sleep(4000);
  await viewer.evaluate(() => document.getElementById('video').play());
  const late = await behind();
  await waitFor('the live button to say we are behind', () => viewer.locator('#live-btn.far').count(), { timeout: 3000 });
  assert.match(await viewer.locator('#behind').textContent(), /落后直播 \d+\.\d 秒/);
  await viewer.click('#live-btn');
  await waitFor('back near live', async () => (await behind()) < late - 2, { timeout: 5000 });
  console.log(`# behind live: ${late.toFixed(1)} s after a pause, ${(await behind()).toFixed(1)} s after the jump`);
  await advances(viewer, 'playback after the jump');
});

step('a comment goes from one page to the other, in step with the picture, and as danmaku', ['chat'], async () => {
  sender = await newPage(browser, { width: 1280, height: 800, problems });
  await sender.goto(`${BASE}/watch/${CHANNEL}`);
  if (videoOk()) await advances(sender, 'the sender page playing', 20000);
  mod = await newPage(browser, { width: 1280, height: 900, problems });
  await mod.goto(`${BASE}/moderate/${CHANNEL}`);
  await mod.fill('#token', MOD_TOKEN);
  await mod.click('#signin button[type=submit]');
  await waitFor('moderator console', () => mod.locator('#console').isVisible());
  await watchArrivals(viewer);

  await sender.fill('#name', '小张');
  const text = `新年快乐 ${Date.now() % 100000}`;
  const sentAt = Date.now();
  await post(sender, text);
  await waitFor('own comment at once', () => inList(sender, text), { timeout: 1000 });
  await waitFor('ack', () => sender.locator('#comments .comment.own:not(.pending)').count(), { timeout: 3000 });
  await waitFor('comment on the other page', () => inList(viewer, text), { timeout: 15000 });
  await waitFor('comment flying as danmaku', () => flying(viewer, text), { timeout: 2000, interval: 50 });
  await waitFor('comment on the moderator page', () => inList(mod, text), { timeout: 3000 });

  const id = await mod.evaluate((t) => {
    for (const c of document.querySelectorAll('#comments .comment')) if (c.querySelector('.text').textContent === t) return c.dataset.id;
    return null;
  }, text);
  assert.ok(id, "the moderator page has its id");
  // The viewer (anonymous) asked for compressed batches, and the comment
  // reached its page inside a binary frame: raw DEFLATE of the batch.
  assert.ok(viewerFrames.some((f) => f.sent && /"compress":"deflate-raw"/.test(String(f.payload))), 'the viewer page asks for compression');
  const carried = viewerFrames.filter((f) => !f.sent && Buffer.isBuffer(f.payload))
    .map((f) => JSON.parse(inflateRawSync(f.payload).toString()))
    .find((m) => m.type === 'batch' && m.events.some((e) => e.id === id && e.text === text));
  assert.ok(carried, 'the comment came in a compressed batch');
  assert.ok(!viewerFrames.some((f) => !f.sent && typeof f.payload === 'string' && f.payload.includes(id)), 'and not as text');
  const arrival = await viewer.evaluate((t) => window.arrivals[t], text);
  console.log(`# viewer showed it ${arrival.at - sentAt} ms after sending; its program date was ${arrival.pdt ? arrival.pdt - sentAt : 'n/a'} ms past the send`);
  // Sync: shown only once the picture had reached (about) the time it was posted.
  if (arrival.pdt !== null) assert.ok(arrival.pdt >= sentAt - 1000, `shown at program date ${arrival.pdt}, posted at ~${sentAt}`);
});

step('a viewer behind live reads a comment only when the picture reaches it', ['video', 'chat'], async () => {
  const video = (what) => viewer.evaluate((w) => document.getElementById('video')[w](), what);
  await video('pause');
  await sleep(4000);
  await video('play');
  await advances(viewer, 'playback after the pause');
  const behind = await viewer.evaluate(() => window.galarelay.player.behindLive());
  assert.ok(behind > 4, `viewer is ${behind} s behind live`);
  const text = `你看到了吗 ${Date.now() % 100000}`;
  const sentAt = Date.now();
  await post(sender, text);
  await waitFor('own comment at once', () => inList(sender, text), { timeout: 1000 });
  await sleep(1500);
  assert.equal(await inList(viewer, text), false, 'held back while the picture is behind');
  await waitFor('the comment once the picture caught up', () => inList(viewer, text), { timeout: 15000 });
  const arrival = await viewer.evaluate((t) => window.arrivals[t], text);
  console.log(`# ${behind.toFixed(1)} s behind live: shown ${arrival.at - sentAt} ms after sending`);
  assert.ok(arrival.pdt >= sentAt - 500, `program date ${arrival.pdt - sentAt} ms from the send`);
  assert.ok(arrival.at - sentAt > (behind - 2) * 1000, 'held back for about the delay');
  await viewer.click('#live-btn');
});

step('a comment made of HTML is shown as text', ['chat'], async () => {
  await post(sender, XSS);
  await waitFor('HTML comment on the other page', () => inList(viewer, XSS), { timeout: 15000 });
  for (const page of [viewer, sender, mod]) {
    assert.equal(await page.locator('#comments img, #danmaku img').count(), 0);
  }
});

step('a moderator delete removes the comment from viewers within a second', ['chat'], async () => {
  const text = `要删掉的 ${Date.now() % 100000}`;
  await post(sender, text);
  await waitFor('comment on the viewer page', () => inList(viewer, text), { timeout: 15000 });
  await waitFor('comment on the moderator page', () => inList(mod, text), { timeout: 3000 });
  const item = mod.locator('#comments .comment', { hasText: text });
  const t0 = Date.now();
  await item.locator('.act-delete').click();
  await waitFor('gone from the viewer page', async () => !(await inList(viewer, text)), { timeout: 1000, interval: 25 });
  console.log(`# delete reached the viewer in ${Date.now() - t0} ms`);
  await waitFor('gone from the sender page', async () => !(await inList(sender, text)), { timeout: 1000 });
});

step('hold mode: a held comment shows only after approval', ['chat'], async () => {
  await mod.check('#hold');
  await waitFor('hold acknowledged', async () => /✓/.test(await mod.locator('#log li').first().textContent()), { timeout: 3000 });
  const text = `先审后发 ${Date.now() % 100000}`;
  await post(sender, text);
  await waitFor('held notice for the sender', async () => /审核/.test(await sender.locator('#notice').textContent()), { timeout: 3000 });
  await waitFor('held on the moderator page', () => mod.locator('#held .comment', { hasText: text }).count(), { timeout: 3000 });
  await sleep(1500);
  assert.equal(await inList(viewer, text), false, 'not shown to viewers while held');
  await mod.locator('#held .comment', { hasText: text }).locator('.act-approve').click();
  await waitFor('approved comment on the viewer page', () => inList(viewer, text), { timeout: 15000 });
  await waitFor('held list empty', async () => (await mod.locator('#held .comment').count()) === 0, { timeout: 3000 });
  await mod.uncheck('#hold');
});

step('screenshots of the pages', ['chat'], async () => {
  for (const [i, t] of ['春晚开始了！', '主持人好', '这个节目太精彩了！', '来自杭州的祝福'].entries()) {
    await post(sender, t);
    await sleep(i === 3 ? 0 : 350);
  }
  await waitFor('the last one on the viewer page', () => inList(viewer, '来自杭州的祝福'), { timeout: 15000 });
  await sleep(300);
  await viewer.screenshot({ path: join(OUT, 'watch-phone.png') });
  await sender.screenshot({ path: join(OUT, 'watch-laptop.png') });
  await mod.screenshot({ path: join(OUT, 'moderate.png') });
  const index = await newPage(browser, { width: 1000, height: 500, problems });
  await index.goto(`${BASE}/`);
  await waitFor('the channel on the index', () => index.locator(videoOk() ? '.channel.live' : '.channel').count(), { timeout: 12000 });
  await index.screenshot({ path: join(OUT, 'index.png') });
  await index.context().close();
});

step('refusals from the real server are said in words', ['chat'], async () => {
  const notice = () => sender.locator('#notice').textContent();
  await post(sender, '长'.repeat(201));
  await waitFor('too long', async () => /太长/.test(await notice()), { timeout: 3000 });

  await mod.fill('#slow', '60');
  await mod.click('#slow-set');
  await waitFor('slow mode shown to viewers', async () => /慢速模式/.test(await sender.locator('#room').textContent()), { timeout: 3000 });
  // The user posted a moment ago: within 60 s, the next one is refused.
  await post(sender, '慢一点');
  await waitFor('slow mode refusal', async () => /慢速模式.*秒后可再发/.test(await notice()), { timeout: 3000 });
  assert.equal(await inList(mod, '慢一点'), false);
  await mod.fill('#slow', '0');
  await mod.click('#slow-set');
  await waitFor('slow mode off', async () => !/慢速模式/.test(await sender.locator('#room').textContent()), { timeout: 3000 });

  // A timeout removes the user's comments everywhere, and refuses new ones.
  await mod.locator('#comments .comment', { hasText: '来自杭州的祝福' }).locator('.act-timeout').click();
  await waitFor("the user's comments gone from the viewer", async () => !(await inList(viewer, '春晚开始了！')), { timeout: 3000 });
  await post(sender, '我还能说话吗');
  await waitFor('timed-out refusal', async () => /暂时禁言/.test(await notice()), { timeout: 3000 });
});

step('the offline slate comes back when the publisher stops', ['video'], async () => {
  await stopPublisher();
  await waitFor('the slate', () => viewer.locator('#slate').isVisible(), { timeout: 15000 });
  await viewer.screenshot({ path: join(OUT, 'watch-ended.png') });
});

test('no page error, no dialog, no CSP violation', () => {
  assert.deepEqual(problems, []);
});
