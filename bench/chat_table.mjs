// chat_table: the side-by-side table of bench/chat_bench.sh, from the JSON
// reports chat_load wrote (one per server, same load, same run): every
// figure per server, then each server's ratios against node-batched (the
// peer that batches as galarelay does), then the goals.
//
//   node bench/chat_table.mjs REPORT.json...   (label = the file's "label")
//   node bench/chat_table.mjs --summary REPORT.json...   (several sizes: one
//        markdown row per size and server, the table of docs/benchmarks.md)
//   node bench/chat_table.mjs --merge-metrics REPORT.json METRICS.txt
//        (galarelay's /metrics after the run: the fan-out's counters go
//        into its report)
import fs from 'fs';

// The fan-out's counters, summed over rooms, from Prometheus text.
function mergeMetrics(reportFile, metricsFile) {
  const sum = (name) => fs.readFileSync(metricsFile, 'utf8').split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const r = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
  r.fanout_sends = sum('galarelay_chat_fanout_sends_total');
  r.fanout_blocked = sum('galarelay_chat_fanout_blocked_total');
  r.fanout_copied_bytes = sum('galarelay_chat_fanout_copied_bytes_total');
  r.fanout_slices = sum('galarelay_chat_fanout_slices_total');
  r.member_ticks = sum('galarelay_chat_member_ticks_total');
  r.delivered_events_server = sum('galarelay_chat_delivered_events_total');
  fs.writeFileSync(reportFile, `${JSON.stringify(r)}\n`);
}
const sendsPerMemberTick = (r) => (r.member_ticks ? (r.fanout_sends / r.member_ticks).toFixed(2) : '-');
const copiedPerEvent = (r) => (r.delivered_events_server ? (r.fanout_copied_bytes / r.delivered_events_server).toFixed(3) : '-');
const ackP99 = (r) => (r.ack_p99_ms === undefined || r.ack_p99_ms < 0 ? '-' : r.ack_p99_ms.toFixed(0));

// One markdown row per report, sorted by size, then in the order given.
function summary(files) {
  const runs = files.map((f, i) => ({ i, r: JSON.parse(fs.readFileSync(f, 'utf8')) }));
  runs.sort((a, b) => a.r.viewers_wanted - b.r.viewers_wanted || a.i - b.i);
  console.log('| viewers | server | delivered | acked / posted | p50 / p99 ms | ack p99 ms | events per server CPU-s | KiB per idle viewer | sends per member-tick | bytes copied per event |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const { r } of runs) {
    console.log(`| ${r.viewers_wanted} | ${r.label} | ${(100 * r.delivered_ratio).toFixed(1)} % | ${r.acks} / ${r.sent} | `
      + `${r.lat_p50_ms.toFixed(0)} / ${r.lat_p99_ms.toFixed(0)} | ${ackP99(r)} | ${(r.events_per_cpu_s / 1e6).toFixed(2)} M | `
      + `${r.rss_per_idle_viewer_kb.toFixed(1)} | ${sendsPerMemberTick(r)} | ${copiedPerEvent(r)} |`);
  }
}

if (process.argv[2] === '--merge-metrics') {
  mergeMetrics(process.argv[3], process.argv[4]);
  process.exit(0);
}
if (process.argv[2] === '--summary') {
  summary(process.argv.slice(3));
  process.exit(0);
}

const NAMES = {
  galarelay: 'galarelay',
  'galarelay-deflate': 'galarelay, every viewer asking for compressed batches (deflate-raw)',
  'node-batched': 'Node ws, batched (one frame per 50 ms tick)',
  go: 'Go gorilla/websocket, batched (hub + 2 goroutines per client, 50 ms tick)',
  node: 'Node ws, unbatched (one frame per comment)',
};
const runs = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
const usPerEvent = (r) => (r.events > 0 ? (1e6 * r.server_cpu_s) / r.events : Infinity);
const rows = [
  ['viewers connected', (r) => `${r.viewers}/${r.viewers_wanted}`],
  ['posters, comments/s', (r) => `${r.posters}, ${r.rate}`],
  ['storm + drain s', (r) => `${r.duration_s.toFixed(1)} + ${r.drain_s.toFixed(1)}`],
  ['comments sent / acked', (r) => `${r.sent} / ${r.acks}`],
  ['error replies (rate_limited)', (r) => `${r.error_replies} (${r.rate_limited})`],
  ['events delivered', (r) => `${r.events}`],
  ['delivered ratio (of sent x viewers)', (r) => `${(100 * r.delivered_ratio).toFixed(1)} %`],
  ['events/s delivered', (r) => r.events_per_s.toFixed(0)],
  ['frames received', (r) => `${r.frames}`],
  ['comment text', (r) => r.text || 'ascii'],
  ['batches compressed', (r) => (r.compress ? 'yes' : 'no')],
  ['wire bytes per delivered event', (r) => (r.wire_bytes_per_event ?? 0).toFixed(1)],
  ['latency p50 ms', (r) => r.lat_p50_ms.toFixed(1)],
  ['latency p90 ms', (r) => r.lat_p90_ms.toFixed(1)],
  ['latency p99 ms', (r) => r.lat_p99_ms.toFixed(1)],
  ['latency max ms', (r) => r.lat_max_ms.toFixed(1)],
  ['ack latency p50 ms', (r) => (r.ack_p50_ms === undefined ? '-' : r.ack_p50_ms.toFixed(1))],
  ['ack latency p99 ms', (r) => (r.ack_p99_ms === undefined ? '-' : r.ack_p99_ms.toFixed(1))],
  ['sends per member-tick (galarelay)', sendsPerMemberTick],
  ['bytes copied per event (galarelay)', copiedPerEvent],
  ['server CPU s (storm+drain)', (r) => r.server_cpu_s.toFixed(2)],
  ['server CPU s (connect+idle)', (r) => r.server_cpu_idle_s.toFixed(2)],
  ['server CPU us per delivered event', (r) => usPerEvent(r).toFixed(3)],
  ['events per CPU-second', (r) => r.events_per_cpu_s.toFixed(0)],
  ['RSS before connections MiB', (r) => (r.server_rss_base_kb / 1024).toFixed(1)],
  ['RSS all viewers idle MiB', (r) => (r.server_rss_idle_kb / 1024).toFixed(1)],
  ['RSS storm peak MiB', (r) => (r.server_rss_storm_peak_kb / 1024).toFixed(1)],
  ['RSS per idle viewer KiB', (r) => r.rss_per_idle_viewer_kb.toFixed(2)],
  ['connect time s', (r) => r.connect_s.toFixed(1)],
  ['errors conn/hs/closed/proto', (r) => `${r.connect_errors}/${r.handshake_errors}/${r.closed_by_server}/${r.protocol_errors}`],
  ['load client CPU s (storm)', (r) => r.client_cpu_s.toFixed(2)],
];

const w = 36;
const cw = 19;
console.log('chat bench: every server under the same load in the same run');
for (const r of runs) console.log(`  ${r.label.padEnd(13)} ${NAMES[r.label] || r.label}`);
console.log('');
console.log(`${''.padEnd(w)}${runs.map((r) => r.label.padStart(cw)).join('')}`);
for (const [name, f] of rows) console.log(`${name.padEnd(w)}${runs.map((r) => f(r).padStart(cw)).join('')}`);

const base = runs.find((r) => r.label === 'node-batched');
const x = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '-');
console.log('');
if (!base) {
  console.log('ratios: node-batched did not run (SERVERS), no ratios');
} else {
  // > 1 is better than node-batched in every ratio row
  const ratios = [
    ['events per CPU-s / node-batched', (r) => r.events_per_cpu_s / base.events_per_cpu_s],
    ['node-batched RSS per idle viewer / this', (r) => base.rss_per_idle_viewer_kb / r.rss_per_idle_viewer_kb],
    ['node-batched p99 latency / this', (r) => base.lat_p99_ms / r.lat_p99_ms],
    ['delivered ratio / node-batched', (r) => r.delivered_ratio / base.delivered_ratio],
  ];
  console.log(`${'ratios against node-batched (>1: better)'.padEnd(w)}${runs.map((r) => r.label.padStart(cw)).join('')}`);
  for (const [name, f] of ratios) console.log(`${name.padEnd(w)}${runs.map((r) => x(f(r)).padStart(cw)).join('')}`);
}

const g = runs.find((r) => r.label === 'galarelay');
const gz = runs.find((r) => r.label === 'galarelay-deflate');
if (gz) {
  console.log('');
  console.log('compressed batches: none of the peers compresses (no permessage-deflate either), so the ratio is');
  console.log("galarelay's own, the same load with and without \"compress\":\"deflate-raw\" in every viewer's hello");
  if (g && g.wire_bytes_per_event > 0 && gz.wire_bytes_per_event > 0) {
    const r = g.wire_bytes_per_event / gz.wire_bytes_per_event;
    console.log(`  bytes per delivered event: ${g.wire_bytes_per_event.toFixed(1)} text, ${gz.wire_bytes_per_event.toFixed(1)} compressed: ${x(r)} fewer (${gz.text} text; the goal, >= 3x, is set for CJK text)`);
  }
}
const unbatched = runs.find((r) => r.label === 'node');
if (g) {
  const goal = (ok, text) => console.log(`goal ${ok ? 'met   ' : 'MISSED'} ${text}`);
  console.log('');
  goal(g.lat_p99_ms >= 0 && g.lat_p99_ms < 150, `p99 < 150 ms: ${g.lat_p99_ms.toFixed(1)} ms (at ${g.viewers} viewers, ${g.rate}/s; the goal is set at 10000 viewers, 200/s)`);
  goal(g.rss_per_idle_viewer_kb < 16, `RSS per idle viewer < 16 KiB: ${g.rss_per_idle_viewer_kb.toFixed(2)} KiB`);
  if (unbatched) {
    const r = g.events_per_cpu_s / unbatched.events_per_cpu_s;
    goal(r >= 5, `>= 5x the unbatched node server's events per CPU-second: ${x(r)}`);
  }
  if (base) {
    const r = g.events_per_cpu_s / base.events_per_cpu_s;
    console.log(`       events per CPU-second against the batched node server: ${x(r)} (no goal set)`);
  }
}
