// chat_fanout: live comment fan-out of galarelay, measured from outside.
//
//   GALARELAY_BIN=build/galarelay node bench/chat_fanout.mjs [VIEWERS] [RATE] [SECONDS]
//
// VIEWERS websocket clients (default 1000) read the room while one sender
// per 10 comments/s posts RATE comments per second (default 200) for
// SECONDS (default 10). Prints the end-to-end latency (post -> seen by a
// viewer) percentiles, deliveries per second, and the daemon's CPU seconds
// and RSS. No peer is installed for comparison; the figures to compare with
// are Owncast's (3 messages / 2 s per client) and the room's tick (50 ms).
import { readFileSync } from 'node:fs';
import { startDaemon, Client, sleep, as } from '../tests/integration/chat_lib.mjs';

const viewers = Number(process.argv[2] || 1000);
const rate = Number(process.argv[3] || 200);
const seconds = Number(process.argv[4] || 10);
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 10 ms
};
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const d = await startDaemon({
  chat: () => `max_connections_per_addr = 100000\nuser_rate = 20\nuser_burst = 20\naddr_rate = 100000\naddr_burst = 100000\nviewer_events_per_sec = 0`,
});
const sent = new Map(); // text -> post time
const lat = [];
let deliveries = 0;
const clients = [];
for (let i = 0; i < viewers; i++) {
  const c = new Client(d.url(), as(`10.9.${i >> 8}.${i & 255}`));
  c.ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.type !== 'batch') return;
    const now = performance.now();
    for (const e of m.events) {
      if (e.type !== 'comment') continue;
      deliveries++;
      const t = sent.get(e.text);
      if (t !== undefined && (i % 10) === 0) lat.push(now - t); // sample 1 viewer in 10
    }
  });
  c.inbox = { push() {}, findIndex() { return -1; } }; // the bench reads only via the handler above
  clients.push(c);
}
await Promise.all(clients.map((c) => c.opened));
const senders = [];
for (let i = 0; i < Math.ceil(rate / 10); i++) {
  const s = new Client(d.url(), as(`10.8.0.${i}`));
  await s.opened;
  await s.next((m) => m.type === 'welcome');
  await s.hello(`sender${i}`);
  senders.push(s);
}
const cpu0 = cpu(d.proc.pid);
const t0 = performance.now();
let n = 0;
const timer = setInterval(() => {
  for (const s of senders) {
    const text = `c${n++}`;
    sent.set(text, performance.now());
    s.send({ type: 'comment', text });
  }
}, 1000 / 10 * 1); // each sender posts 10/s
await sleep(seconds * 1000);
clearInterval(timer);
await sleep(1000);
const elapsed = (performance.now() - t0) / 1000;
const cpu1 = cpu(d.proc.pid);
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))].toFixed(1) : 'n/a');
console.log(`galarelay chat fan-out: viewers=${viewers} comments=${n} (${(n / seconds).toFixed(0)}/s) ` +
  `deliveries=${deliveries} (${(deliveries / elapsed).toFixed(0)}/s)`);
console.log(`latency ms p50=${pct(0.5)} p90=${pct(0.9)} p99=${pct(0.99)} max=${pct(1)}`);
console.log(`daemon cpu=${(cpu1 - cpu0).toFixed(2)} s over ${elapsed.toFixed(1)} s, rss=${rss(d.proc.pid)} kB`);
for (const c of [...clients, ...senders]) c.ws.terminate();
await d.stop();
