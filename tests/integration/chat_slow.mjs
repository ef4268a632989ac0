// A slow consumer: one client stops reading while others flood the room.
// The others keep getting every comment promptly, the daemon's memory
// stays bounded, and the slow client loses batches (counted) or is closed
// past queue_hard_bytes.
import { readFileSync } from 'node:fs';
import { run, Client, assert, eq, sleep } from './chat_lib.mjs';

const as = (ip) => ({ headers: { 'X-Forwarded-For': ip } });
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const metric = (text, name) => {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'gm'))) sum += Number(m[1]);
  return sum;
};

// Under ASan (scripts/test.sh's second pass) freed memory waits in ASan's
// quarantine (up to 256 MiB) and counts as RSS: the daemon started here
// runs without it, so that the one bound below means the same in both passes.
const asan = process.env.ASAN_OPTIONS || '';
if (!asan.includes('quarantine_size_mb')) process.env.ASAN_OPTIONS = `${asan ? `${asan}:` : ''}quarantine_size_mb=0`;

await run('chat_slow', {
  chat: () => [
    'user_rate = 1000', 'user_burst = 1000', 'addr_rate = 100000', 'addr_burst = 100000',
    'max_comment_length = 2000', 'max_frame_bytes = 16384', 'viewer_events_per_sec = 0',
    'queue_soft_bytes = 262144', 'queue_hard_bytes = 1048576', 'history = 10',
  ].join('\n'),
}, async (d) => {
  const slow = await Client.connect(d.url(), as('10.2.0.1'));
  slow.ws._socket.pause(); // never reads again
  const fast = await Client.connect(d.url(), as('10.2.0.2'));
  const senders = [];
  for (let i = 0; i < 4; i++) {
    const s = await Client.connect(d.url(), as(`10.2.1.${i}`));
    await s.hello(`sender${i}`);
    senders.push(s);
  }
  await sleep(200);
  const rss0 = rssKb(d.proc.pid);
  const text = '弹'.repeat(600); // ~1.9 KB per comment
  const perSender = 1000;        // 4 x 1000 x 1.9 KB = ~7.6 MB pushed at the slow client
  let acked = 0;
  let seen = 0;
  fast.ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.type === 'batch') seen += m.events.filter((e) => e.type === 'comment').length;
  });
  const t0 = Date.now();
  await Promise.all(senders.map(async (s, k) => {
    for (let i = 0; i < perSender; i += 10) {
      const batch = [];
      for (let j = i; j < i + 10; j++) batch.push(s.request({ type: 'comment', text: `${k}:${j}:${text}` }, 10000));
      for (const r of await Promise.all(batch)) if (r.type === 'ack') acked++;
      s.inbox = [];
    }
  }));
  eq(acked, senders.length * perSender, 'every comment acked');
  for (let i = 0; i < 100 && seen < acked; i++) await sleep(50);
  eq(seen, acked, 'the fast viewer saw every comment');
  const took = Date.now() - t0;
  // a probe after the flood still arrives at once
  const p0 = Date.now();
  const probe = await senders[0].request({ type: 'comment', text: 'probe' });
  await fast.event((e) => e.id === probe.id);
  const probeMs = Date.now() - p0;
  assert(probeMs < 1000, `probe latency ${probeMs} ms`);
  const rss1 = rssKb(d.proc.pid);
  const metrics = await (await fetch(`${d.base}/metrics`)).text();
  const dropped = metric(metrics, 'galarelay_chat_dropped_batches_total');
  const closed = metric(metrics, 'galarelay_chat_slow_members_closed_total');
  console.log(`flood ${acked} comments in ${took} ms, probe ${probeMs} ms, rss ${rss0} -> ${rss1} kB, dropped batches ${dropped}, closed ${closed}`);
  assert(dropped > 0 || closed > 0, 'the slow client lost batches or was closed');
  assert(closed >= 1, 'the slow client was closed past the hard bound');
  // 64 MiB in both passes (ASan's quarantine is off, above)
  assert(rss1 - rss0 < 64 * 1024, `daemon grew by ${rss1 - rss0} kB`);
  assert(metric(metrics, 'galarelay_chat_queue_bytes') < 6 * 1048576, 'queued bytes bounded');
  slow.ws._socket.destroy();
  for (const s of [fast, ...senders]) await s.close();
});
