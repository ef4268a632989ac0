// Limits: the per-user token bucket (rate_limited with retry_after_ms),
// the per-address bucket shared by several users, connections per address,
// one reply per nonce, hello in a loop (rate_limited past hello_burst, no
// welcome for a refused hello), new limits applied on SIGHUP, and
// require_token.
import { readFileSync, writeFileSync } from 'node:fs';
import { run, Client, assert, eq, sleep } from './chat_lib.mjs';

const as = (ip) => ({ headers: { 'X-Forwarded-For': ip } });

await run('chat_limits', {
  chat: () => 'user_rate = 2\nuser_burst = 3\naddr_rate = 1\naddr_burst = 5\nmax_connections_per_addr = 3',
}, async (d) => {
  const a = await Client.connect(d.url(), as('10.1.0.1'));
  await a.hello('a');
  for (let i = 0; i < 3; i++)
    eq((await a.request({ type: 'comment', text: `burst ${i}` })).type, 'ack', `burst ${i}`);
  let r = await a.request({ type: 'comment', text: 'flood' });
  eq(r.code, 'rate_limited', 'user bucket empty');
  assert(r.retry_after_ms > 0 && r.retry_after_ms <= 500, `retry_after_ms ${r.retry_after_ms}`);
  await sleep(r.retry_after_ms + 20);
  eq((await a.request({ type: 'comment', text: 'after waiting' })).type, 'ack', 'refilled');

  // two users behind one address share its bucket (5, then 1/s)
  const b = await Client.connect(d.url(), as('10.1.0.2'));
  await b.hello('b');
  const c = await Client.connect(d.url(), as('10.1.0.2'));
  await c.hello('c');
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await b.request({ type: 'comment', text: `b${i}` })).type);
  for (let i = 0; i < 3; i++) got.push((await c.request({ type: 'comment', text: `c${i}` })).type);
  eq(got.filter((t) => t === 'ack').length, 5, `address bucket: ${got}`);

  // connections per address: the fourth is told and closed
  const d1 = await Client.connect(d.url(), as('10.1.0.3'));
  const d2 = await Client.connect(d.url(), as('10.1.0.3'));
  const d3 = await Client.connect(d.url(), as('10.1.0.3'));
  const d4 = new Client(d.url(), as('10.1.0.3'));
  const e = await d4.next((m) => m.type === 'error');
  eq(e.code, 'rate_limited', 'too many connections');
  eq((await d4.closed).code, 1008, 'closed with 1008');
  await d1.close();
  await sleep(100);
  const d5 = await Client.connect(d.url(), as('10.1.0.3'));

  // IPv6: the limit is per /64 (one subscriber line), not per address
  const v6 = [];
  for (let i = 1; i <= 3; i++) v6.push(await Client.connect(d.url(), as(`2001:db8:7:7::${i}`)));
  const v6more = new Client(d.url(), as('2001:db8:7:7:ffff::99'));
  eq((await v6more.next((m) => m.type === 'error')).code, 'rate_limited', 'a 4th address in the same /64');
  eq((await v6more.closed).code, 1008, 'closed with 1008 (/64)');
  const v6other = await Client.connect(d.url(), as('2001:db8:7:8::1')); // the next /64 is someone else
  await v6other.close();
  for (const c of v6) await c.close();

  // nonce: exactly one reply each
  const many = await Client.connect(d.url(), as('10.1.0.4'));
  await many.hello('many');
  for (let i = 0; i < 10; i++) many.send({ type: 'comment', text: `x${i}`, nonce: `k${i}` });
  await sleep(500);
  for (let i = 0; i < 10; i++)
    eq(many.inbox.filter((m) => m.nonce === `k${i}`).length, 1, `one reply for k${i}`);

  // hello in a loop: hello_burst (default 5) per connection, then
  // rate_limited with retry_after_ms, and no welcome for those
  const h = await Client.connect(d.url(), as('10.1.0.5'));
  const hellos = [];
  for (let i = 0; i < 8; i++) hellos.push(await h.request({ type: 'hello', name: `h${i}` }));
  eq(hellos.map((x) => (x.type === 'ack' ? 'ack' : x.code)),
     [...Array(5).fill('ack'), ...Array(3).fill('rate_limited')], 'hellos past the burst');
  assert(hellos[5].retry_after_ms > 0, `retry_after_ms on a refused hello: ${hellos[5].retry_after_ms}`);
  await sleep(200);
  eq(h.inbox.filter((m) => m.type === 'welcome').length, 5, 'a welcome per accepted hello only');
  const metrics = await (await fetch(`${d.base}/metrics`)).text();
  eq(metrics.match(/^galarelay_chat_hello_refused_total\{channel="gala"\} (\d+)$/m)?.[1], '3',
     'refused hellos counted');
  await h.close();

  // SIGHUP applies new chat limits without dropping anyone
  writeFileSync(d.confPath, readFileSync(d.confPath, 'utf8')
    .replace('max_connections_per_addr = 3',
      'max_connections_per_addr = 3\nmax_comment_length = 5\nmax_frame_bytes = 16384'));
  d.reload();
  await sleep(300);
  eq((await many.request({ type: 'comment', text: 'sixsix' })).code, 'too_long', 'new limit after SIGHUP');
  eq((await many.request({ type: 'comment', text: 'five5' })).type, 'ack', 'still connected after SIGHUP');
  // a raised max_frame_bytes reaches members who joined under the old one
  // (their reassembly buffer was sized for 4096: this frame overflowed it)
  eq((await many.request({ type: 'comment', text: 'y'.repeat(10000) })).code, 'too_long',
     'bigger frame after SIGHUP raised max_frame_bytes');
  r = await many.request({ type: 'comment', text: 'ok' });
  assert(r.type === 'ack' || r.code === 'rate_limited', `still connected after a big frame: ${JSON.stringify(r)}`);
  for (const x of [a, b, c, d2, d3, d5, many]) await x.close();
});

// require_token: a name is not enough to post
await run('chat_require_token', { chat: () => 'require_token = true\nauth_secret = s' }, async (d) => {
  const a = await Client.connect(d.url());
  await a.hello('alice');
  const r = await a.request({ type: 'comment', text: 'hi' });
  eq([r.type, r.code], ['error', 'forbidden'], 'name without token');
  await a.close();
});
