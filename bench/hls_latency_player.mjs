// hls_latency_player.mjs: the live-edge latency a viewer sees with hls.js in
// low-latency mode, driven by bench/hls_latency.py.
//
//   node bench/hls_latency_player.mjs WATCH_URL SECONDS OUT_JSON [LEVEL]
//
// Opens the watch page in headless Chromium (Debian's, through
// playwright-core from tests/node_modules, as the browser tests do), waits
// until the video plays and hls.js has had WARMUP seconds to settle on its
// target latency, then once a second for SECONDS reads, through the page's
// own debug handle (window.galarelay.player, web/js/watch.js):
//   wall_latency   Date.now() - hls.playingDate: the program date of the
//                  frame on screen is the wall-clock arrival of that frame
//                  on the daemon's RTMP socket (same machine, same clock)
//   hls_latency    hls.latency (hls.js's distance to the live edge)
//   target_latency hls.targetLatency
// and writes them as JSON to OUT_JSON. LEVEL pins hls.js to one level
// (default: automatic).

import { writeFileSync } from 'node:fs';
import { launch, newPage, waitFor, sleep } from '../tests/browser/lib.mjs';

const [url, secondsArg, out, levelArg] = process.argv.slice(2);
if (!url || !secondsArg || !out) {
  console.error('usage: node bench/hls_latency_player.mjs WATCH_URL SECONDS OUT_JSON [LEVEL]');
  process.exit(2);
}
const seconds = Number(secondsArg);
const WARMUP = Number(process.env.WARMUP || 8);
const problems = [];

const browser = await launch();
try {
  const page = await newPage(browser, { problems });
  let waiting = 0;
  await page.exposeFunction('__latbenchWaiting', () => { waiting += 1; });
  await page.goto(url);
  await waitFor('hls.js attached', () => page.evaluate(() => !!window.galarelay?.player?.hls), { timeout: 30000 });
  if (levelArg !== undefined) {
    await page.evaluate((l) => { window.galarelay.player.setLevel(l); }, Number(levelArg));
  }
  await waitFor('the video playing', () =>
    page.evaluate(() => {
      const v = document.getElementById('video');
      return !v.paused && v.currentTime > 1 && window.galarelay.player.programDate() !== null;
    }), { timeout: 40000, interval: 200 });
  await sleep(WARMUP * 1000);
  await page.evaluate(() => {
    document.getElementById('video').addEventListener('waiting', () => window.__latbenchWaiting());
  });

  const samples = [];
  for (let i = 0; i < seconds; i++) {
    samples.push(await page.evaluate(() => {
      const p = window.galarelay.player;
      const hls = p.hls;
      const v = document.getElementById('video');
      const now = Date.now();
      const pd = p.programDate();
      const lvl = hls ? hls.currentLevel : -1;
      const b = v.buffered;
      const fin = (x) => (Number.isFinite(x) ? x : null);
      return {
        now,
        wall_latency: pd === null ? null : (now - pd) / 1000,
        hls_latency: fin(hls?.latency),
        target_latency: fin(hls?.targetLatency),
        level: lvl,
        height: hls && lvl >= 0 && hls.levels[lvl] ? hls.levels[lvl].height : null,
        rate: v.playbackRate,
        buffer_ahead: b.length ? b.end(b.length - 1) - v.currentTime : 0,
        current_time: v.currentTime,
      };
    }));
    await sleep(1000);
  }
  const extra = await page.evaluate(() => {
    const v = document.getElementById('video');
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
    return { hls_version: window.Hls?.version, dropped: q.droppedVideoFrames, decoded: q.totalVideoFrames };
  });
  writeFileSync(out, JSON.stringify({ warmup_s: WARMUP, samples, waiting_events: waiting, problems, ...extra }, null, 1));
} finally {
  await browser.close();
}
