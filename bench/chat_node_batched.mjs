// chat_node_batched: the Node.js `ws` live comment server that batches the
// way galarelay does, the peer that bench/chat_bench.sh compares our ratios
// against. Same /chat/CHANNEL protocol as galarelay and as the unbatched
// bench/chat_node_server.mjs (hello → welcome, comment → ack, comments
// delivered as {"type":"batch","events":[…]} with galarelay's event shape:
// {type, id, user: {id, name, role}, text, ts}).
//
// What makes it the fair peer: the comments a room accepts during one
// 50 ms tick are encoded once per tick (one JSON.stringify, one Buffer) and
// that same Buffer goes to every member as one text frame, as galarelay
// sends one batch per member per tick. The poster's ack goes out when the
// comment is accepted, before the tick that delivers it (galarelay acks once
// the comment is stored, also before its tick). No archive, no moderation,
// no limits: it does less work than galarelay, never more.
//
// Queues: a room's events of the current tick (at most MAX_PENDING; a
// comment beyond that is refused with rate_limited), and each member's
// socket buffer (ws keeps what the kernel does not take; a member more than
// MAX_BUFFERED bytes behind is dropped), so that nothing grows without bound.
//
//   node bench/chat_node_batched.mjs PORT [TICK_MS]
//
// Prints "listening PORT" once it accepts connections.
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 8090);
const tickMs = Number(process.argv[3] || 50);
const MAX_BUFFERED = 4 << 20; // bytes queued per member before it is dropped
const MAX_PENDING = 10000; // events per room per tick; beyond: refused with rate_limited, no ack
const rooms = new Map(); // channel -> { members: Set of sockets, pending: events of this tick }
let nextId = 1;
let nextUser = 1;

const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 4096 });

function room(channel) {
  let r = rooms.get(channel);
  if (!r) {
    r = { members: new Set(), pending: [] };
    rooms.set(channel, r);
  }
  return r;
}

// One tick: each room's pending events become one Buffer, sent as is to
// every member (ws frames it per socket; the JSON is not encoded again).
setInterval(() => {
  for (const r of rooms.values()) {
    if (r.pending.length === 0) continue;
    const out = Buffer.from(JSON.stringify({ type: 'batch', events: r.pending }));
    r.pending = [];
    for (const c of r.members) {
      if (c.readyState !== 1) continue;
      if (c.bufferedAmount > MAX_BUFFERED) {
        c.terminate();
        continue;
      }
      c.send(out, { binary: false });
    }
  }
}, tickMs);

wss.on('connection', (ws, req) => {
  const m = /^\/chat\/([a-z0-9_-]{1,31})$/.exec(req.url || '');
  if (!m) {
    ws.close(1008, 'no such channel');
    return;
  }
  const r = room(m[1]);
  r.members.add(ws);
  const user = { id: `u${nextUser++}`, name: '', role: 'viewer' };
  const welcome = () => JSON.stringify({ type: 'welcome', user, state: { slow: 0, hold: false, pinned: null }, history: [] });
  ws.send(welcome());

  ws.on('message', (data, isBinary) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      msg = null;
    }
    if (isBinary || !msg || typeof msg !== 'object') {
      ws.send(JSON.stringify({ type: 'error', code: 'bad_request', message: 'not a JSON object' }));
      return;
    }
    if (msg.type === 'hello') {
      user.name = String(msg.name || '').slice(0, 32);
      ws.send(welcome());
    } else if (msg.type === 'comment') {
      const text = String(msg.text || '');
      if (!user.name || !text) {
        ws.send(JSON.stringify({ type: 'error', nonce: msg.nonce, code: user.name ? 'empty' : 'forbidden', message: 'no' }));
        return;
      }
      if (r.pending.length >= MAX_PENDING) {
        ws.send(JSON.stringify({ type: 'error', nonce: msg.nonce, code: 'rate_limited', message: 'busy' }));
        return;
      }
      const id = String(nextId++);
      r.pending.push({ type: 'comment', id, user: { ...user }, text, ts: Date.now() });
      ws.send(JSON.stringify({ type: 'ack', nonce: msg.nonce, id }));
    } else {
      ws.send(JSON.stringify({ type: 'error', nonce: msg.nonce, code: 'bad_request', message: 'unknown type' }));
    }
  });
  ws.on('close', () => r.members.delete(ws));
  ws.on('error', () => r.members.delete(ws));
});

wss.on('listening', () => console.log(`listening ${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
