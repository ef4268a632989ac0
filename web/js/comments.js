// comments.js: the live comment list, kept in step with the picture.
//
// Each comment carries `ts`, the server time it was posted. A comment from
// someone else waits in a queue until the player's program-date-time has
// reached its ts, so a viewer who is behind live does not read about a
// moment before seeing it. Without a program date (not playing, Safari
// before the first PDT) comments show at once; none waits longer than
// MAX_HOLD_MS whatever the clocks say. The sender's own comment shows at
// once (an echo, confirmed by the ack's id).

const MAX_HOLD_MS = 20000;
const MAX_QUEUE = 500;

export class CommentFeed {
  constructor(list, { render, programDate = () => null, onShown = () => {}, maxItems = 200 }) {
    this.list = list;
    this.render = render;
    this.programDate = programDate;
    this.onShown = onShown;
    this.maxItems = maxItems;
    this.shown = new Map(); // id -> element
    this.queue = []; // {c, since}, in arrival order (ids sort by time)
    this.held = []; // own comments held for review: {text, el}
    this.myId = '';
    this.myName = '';
  }

  setMe(userId, name) {
    this.myId = userId || '';
    this.myName = name || '';
  }

  // A welcome: the history replaces everything; it is in the past, so it
  // shows at once and does not fly.
  reset(history) {
    this.list.replaceChildren();
    this.shown.clear();
    this.queue = [];
    this.held = [];
    for (const c of history) this.show(c, { fly: false });
    this.scrollToEnd(true);
  }

  has(id) {
    return this.shown.has(id) || this.queue.some((q) => q.c.id === id);
  }

  arrive(c) {
    if (this.has(c.id)) return;
    // An approved comment comes back with a new id: matched to its held
    // echo by text and author (viewers' comments carry the name, not the id).
    const mine = c.user.id ? c.user.id === this.myId : this.myName !== '' && c.user.name === this.myName;
    const heldIdx = mine ? this.held.findIndex((h) => h.text === c.text) : -1;
    if (heldIdx >= 0) {
      this.held[heldIdx].el.remove();
      this.held.splice(heldIdx, 1);
    }
    if (c.user.id && c.user.id === this.myId) {
      this.show(c, { fly: false, own: true }); // its echo flew already
      return;
    }
    this.queue.push({ c, since: performance.now() });
    if (this.queue.length > MAX_QUEUE) this.show(this.queue.shift().c, { fly: false });
    this.tick();
  }

  // Called often (every 100 ms or so): show what the picture has reached.
  tick() {
    if (this.queue.length === 0) return;
    const pdt = this.programDate();
    const now = performance.now();
    const keep = [];
    for (const q of this.queue) {
      const due = pdt === null || !q.c.ts || q.c.ts <= pdt || now - q.since > MAX_HOLD_MS;
      if (due) this.show(q.c, { fly: true });
      else keep.push(q);
    }
    this.queue = keep;
  }

  show(c, { fly, own = false }) {
    if (this.shown.has(c.id)) return;
    const item = this.render(c, { own });
    item.dataset.id = c.id;
    this.append(item);
    this.shown.set(c.id, item);
    if (fly) this.onShown(c, { own });
  }

  append(item) {
    const stick = this.nearEnd();
    this.list.append(item);
    while (this.list.children.length > this.maxItems) {
      const first = this.list.firstElementChild;
      if (first.dataset.id) this.shown.delete(first.dataset.id);
      first.remove();
    }
    this.scrollToEnd(stick);
  }

  nearEnd() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }

  scrollToEnd(really) {
    if (really) this.list.scrollTop = this.list.scrollHeight;
  }

  // The sender's echo: shown now, given its id by the ack.
  echo(c) {
    const item = this.render(c, { own: true });
    item.classList.add('pending');
    this.append(item);
    this.scrollToEnd(true);
    return {
      confirm: (id) => {
        item.classList.remove('pending');
        item.dataset.id = id;
        this.queue = this.queue.filter((q) => q.c.id !== id);
        const dup = this.shown.get(id);
        if (dup && dup !== item) dup.remove();
        this.shown.set(id, item);
      },
      hold: (note) => {
        item.classList.remove('pending');
        item.classList.add('held');
        item.append(note);
        this.held.push({ text: c.text, el: item });
      },
      fail: () => item.remove(),
    };
  }

  remove(id) {
    this.queue = this.queue.filter((q) => q.c.id !== id);
    const item = this.shown.get(id);
    if (item) item.remove();
    this.shown.delete(id);
  }

  clear() {
    this.list.replaceChildren();
    this.shown.clear();
    this.queue = [];
    this.held = [];
  }

  get(id) {
    return this.shown.get(id) || null;
  }
}
