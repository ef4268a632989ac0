// The comment websocket checks Origin ([server] allowed_origins): a page of
// another site is refused with HTTP 403 before the upgrade; the relay's own
// pages (Origin = the Host asked for), listed origins and clients that send
// no Origin (not a browser) are let in; "*" lets any origin in, explicitly.
import WebSocket from 'ws';
import { run, Client, assert, eq } from './chat_lib.mjs';

// The HTTP status of a handshake: 101 when upgraded, else the answer's.
function handshake(url, origin) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); req.destroy(); });
    ws.on('error', (e) => reject(new Error(`handshake with origin ${origin}: ${e.message}`)));
  });
}

const refusedMetric = async (d) => {
  const text = await (await fetch(`${d.base}/metrics`)).text();
  return Number(/^galarelay_websocket_origin_refused_total (\d+)$/m.exec(text)[1]);
};

await run('chat_origin (default: same origin)', {
  server: 'trusted_proxy = 127.0.0.1\nallowed_origins = https://site.example, http://other.example:8080',
}, async (d) => {
  const self = `http://127.0.0.1:${d.http}`;
  eq(await handshake(d.url(), 'http://evil.example'), 403, 'a foreign origin');
  eq(await handshake(d.url(), `http://localhost:${d.http}`), 403, 'another host name for the same server');
  eq(await handshake(d.url(), `http://127.0.0.1:${d.http + 1}`), 403, 'another port');
  eq(await handshake(d.url(), 'null'), 403, 'an opaque origin');
  eq(await handshake(d.url(), self), 101, 'the same origin');
  eq(await handshake(d.url(), self.toUpperCase()), 101, 'the same origin, any case');
  eq(await handshake(d.url(), null), 101, 'no Origin (not a browser)');
  eq(await handshake(d.url(), 'https://site.example'), 101, 'a listed origin');
  eq(await handshake(d.url(), 'http://other.example:8080'), 101, 'a listed origin with a port');
  eq(await handshake(d.url(), 'http://site.example'), 403, 'a listed host under another scheme');
  eq(await refusedMetric(d), 5, 'galarelay_websocket_origin_refused_total');
  assert(/websocket refused: origin not allowed origin=http:\/\/evil\.example/.test(d.log()), 'the refusal is logged');
  // an accepted one is a working chat connection
  const c = await Client.connect(d.url(), { origin: self });
  await c.hello('同源');
  const r = await c.request({ type: 'comment', text: 'hi' });
  eq(r.type, 'ack', 'comment from a same-origin client');
  await c.close();
});

await run('chat_origin (allowed_origins = *)', {
  server: 'trusted_proxy = 127.0.0.1\nallowed_origins = *',
}, async (d) => {
  eq(await handshake(d.url(), 'http://evil.example'), 101, 'any origin, explicitly allowed');
  eq(await handshake(d.url(), null), 101, 'no Origin');
  eq(await refusedMetric(d), 0, 'nothing refused');
});
