// chat.js: the websocket to /chat/CHANNEL (docs/protocol.md, "Live comments").
//
// One ChatClient per page. It says hello (name, token) first thing after
// each (re)connect, hands every `welcome` and every event of every `batch`
// to the page, and turns each message that carries a nonce into a promise
// that resolves with the server's one reply: an `ack` or an `error`.
// It reconnects by itself with a growing pause (1 s up to 10 s).
//
// Where the browser has DecompressionStream, the hello asks for compressed
// batches (`"compress":"deflate-raw"`): each batch then arrives as a binary
// frame, the raw DEFLATE of its JSON, inflated here. Inflating is
// asynchronous, so every message goes through one chain and is handled in
// the order it arrived (an ack never overtakes the batch before it).

const REPLY_TIMEOUT_MS = 10000;
const COMPRESS = typeof DecompressionStream === 'function' ? 'deflate-raw' : '';

async function inflateRaw(buffer) {
  const stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Response(stream).text();
}

export class ChatClient {
  constructor(channel, { name = '', token = '', onWelcome, onEvent, onStatus, onError } = {}) {
    this.channel = channel;
    this.name = name;
    this.token = token;
    this.onWelcome = onWelcome || (() => {});
    this.onEvent = onEvent || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onError = onError || (() => {});
    this.ws = null;
    this.pending = new Map(); // nonce -> {resolve, timer}
    this.seq = 0;
    this.backoffMs = 1000;
    this.stopped = false;
    this.user = null;
    this.waiters = []; // resolved by the next welcome
    this.rx = Promise.resolve(); // messages in arrival order (inflating is async)
  }

  // Resolves at the next welcome (or after 5 s): the connection is then
  // open and the hello, sent first, has been read by the server.
  nextWelcome() {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  get url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/chat/${encodeURIComponent(this.channel)}`;
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    this.stopped = false;
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.onStatus('connecting');
    ws.onopen = () => {
      this.backoffMs = 1000;
      this.sayHello();
      this.onStatus('open');
    };
    ws.onmessage = (e) => {
      const data = e.data;
      this.rx = this.rx
        .then(() => (typeof data === 'string' ? data : inflateRaw(data)))
        .then((text) => this.ws === ws && this.receive(text))
        .catch(() => {}); // a frame that does not inflate is dropped, like bad JSON
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending('disconnected');
      this.onStatus('closed');
      if (this.stopped) return;
      setTimeout(() => !this.stopped && this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 10000);
    };
  }

  close() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.failPending('disconnected');
  }

  // Change name or token: a new hello on the open connection, answered by
  // an ack (a welcome follows) or an error such as a name not allowed; or,
  // when not connected, a new connection that says hello first.
  identify(name, token = this.token) {
    this.name = name;
    this.token = token;
    if (this.connected) return this.request(this.helloMessage());
    const welcomed = this.nextWelcome();
    if (!this.ws) this.connect();
    return welcomed;
  }

  helloMessage() {
    const hello = { type: 'hello' };
    if (this.name) hello.name = this.name;
    if (this.token) hello.token = this.token;
    if (COMPRESS) hello.compress = COMPRESS;
    return hello;
  }

  // Also without a name: an anonymous reader asks for compressed batches
  // (such a hello costs no second welcome).
  sayHello() {
    if (!this.name && !this.token && !COMPRESS) return;
    this.ws.send(JSON.stringify(this.helloMessage()));
  }

  // Send a message that gets exactly one reply; resolves with the reply
  // (`ack` or `error`), never rejects.
  request(msg) {
    const nonce = `n${Date.now().toString(36)}${(this.seq++).toString(36)}`;
    if (!this.connected) return Promise.resolve({ type: 'error', nonce, code: 'offline' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(nonce);
        resolve({ type: 'error', nonce, code: 'timeout' });
      }, REPLY_TIMEOUT_MS);
      this.pending.set(nonce, { resolve, timer });
      this.ws.send(JSON.stringify({ ...msg, nonce }));
    });
  }

  comment(text) {
    return this.request({ type: 'comment', text });
  }

  mod(action, fields = {}) {
    return this.request({ type: 'mod', action, ...fields });
  }

  failPending(code) {
    for (const [nonce, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve({ type: 'error', nonce, code });
    }
    this.pending.clear();
  }

  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    if ((msg.type === 'ack' || msg.type === 'error') && msg.nonce && this.pending.has(msg.nonce)) {
      const p = this.pending.get(msg.nonce);
      this.pending.delete(msg.nonce);
      clearTimeout(p.timer);
      p.resolve(msg);
      return;
    }
    switch (msg.type) {
      case 'welcome':
        this.user = msg.user || null;
        this.onWelcome(msg);
        for (const wake of this.waiters.splice(0)) wake();
        break;
      case 'batch':
        for (const ev of Array.isArray(msg.events) ? msg.events : []) {
          if (ev && typeof ev === 'object') this.onEvent(ev);
        }
        break;
      case 'error':
        this.onError(msg);
        break;
      default:
        // A single event outside a batch is accepted too.
        if (typeof msg.type === 'string') this.onEvent(msg);
    }
  }
}

// Event payloads, read tolerantly: a comment may come flat or wrapped.
export function eventComment(ev) {
  const c = ev && typeof ev.comment === 'object' && ev.comment ? ev.comment : ev;
  if (!c || c.id === undefined || c.id === null) return null;
  return {
    id: String(c.id),
    text: typeof c.text === 'string' ? c.text : '',
    ts: Number(c.ts) || 0,
    user: {
      id: c.user?.id !== undefined ? String(c.user.id) : '',
      name: typeof c.user?.name === 'string' ? c.user.name : '',
      role: c.user?.role || 'viewer',
    },
  };
}
