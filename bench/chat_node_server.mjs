// chat_node_server: the live comment server a team would write in an
// afternoon with Node.js and `ws`, speaking the same /chat/CHANNEL protocol
// as galarelay (hello, comment → ack, comments delivered as
// {"type":"batch","events":[…]}), so bench/chat_load.c measures both the
// same way. The honest version: one JSON.stringify per comment, then a
// send to every client of the channel; no ticks, no archive, no limits.
//
//   node bench/chat_node_server.mjs PORT
//
// Prints "listening PORT" once it accepts connections.
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 8090);
const rooms = new Map(); // channel -> Set of sockets
let nextId = 1;
let nextUser = 1;

const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 4096 });

wss.on('connection', (ws, req) => {
  const m = /^\/chat\/([a-z0-9_-]{1,31})$/.exec(req.url || '');
  if (!m) {
    ws.close(1008, 'no such channel');
    return;
  }
  const channel = m[1];
  if (!rooms.has(channel)) rooms.set(channel, new Set());
  const room = rooms.get(channel);
  room.add(ws);
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
      const id = String(nextId++);
      const out = JSON.stringify({ type: 'batch', events: [{ type: 'comment', id, user, text, ts: Date.now() }] });
      for (const c of room) if (c.readyState === 1) c.send(out);
      ws.send(JSON.stringify({ type: 'ack', nonce: msg.nonce, id }));
    } else {
      ws.send(JSON.stringify({ type: 'error', nonce: msg.nonce, code: 'bad_request', message: 'unknown type' }));
    }
  });
  ws.on('close', () => room.delete(ws));
  ws.on('error', () => room.delete(ws));
});

wss.on('listening', () => console.log(`listening ${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
