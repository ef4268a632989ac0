// moderate.js: the moderator console, /moderate/CHANNEL.
//
// Signs in by sending the moderator token in hello; the server's welcome
// then names the role. Every comment shows at once (no sync with the
// picture: moderators act before viewers see) with delete / timeout / ban /
// pin; held comments wait in their own list for approve / reject; the
// banned words come with the welcome and follow every moderator's words
// events. Every action and its answer goes to the log.

import { ChatClient, eventComment } from './chat.js';
import { CommentFeed } from './comments.js';
import { bi, channelFromPath, clockTime, el, fetchChannels, isModerator, refusalText, roomState } from './util.js';

const $ = (id) => document.getElementById(id);
const channel = channelFromPath('/moderate/');
let chat = null;
let signedIn = false;
let rejectTimer = 0;
let words = new Set();
let wordsFromServer = false;
let wordsNotListed = 0; // the welcome's list is bounded: how many it left out
let pinned = null;

// ---- sign-in ------------------------------------------------------------

try {
  $('token').value = sessionStorage.getItem('galarelay.modtoken') || '';
} catch {
  /* no storage */
}

$('signin').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $('token').value.trim();
  const name = $('modname').value.trim() || '主持人';
  if (!token) return;
  try {
    sessionStorage.setItem('galarelay.modtoken', token);
  } catch {
    /* no storage */
  }
  $('signin-msg').textContent = bi('登录中…', 'signing in…');
  if (chat) chat.close();
  chat = new ChatClient(channel, { name, token, onWelcome, onEvent, onStatus, onError });
  chat.connect();
});

function onWelcome(msg) {
  if (!isModerator(msg.user)) {
    // The welcome sent on connect comes before the one that answers hello.
    clearTimeout(rejectTimer);
    rejectTimer = setTimeout(() => !signedIn && reject(), 1500);
    return;
  }
  clearTimeout(rejectTimer);
  signedIn = true;
  $('signin').hidden = true;
  $('console').hidden = false;
  feed.reset((Array.isArray(msg.history) ? msg.history : []).map(eventComment).filter(Boolean));
  const held = msg.held ?? msg.state?.held;
  heldList.replaceChildren();
  if (Array.isArray(held)) for (const h of held) addHeld(eventComment(h));
  updateHeldCount();
  // The list to edit: the words file's and the ones added live. Set before
  // applyState, which shows it.
  if (Array.isArray(msg.banned_words)) {
    words = new Set(msg.banned_words.map(String));
    wordsFromServer = true;
    wordsNotListed = Math.max(0, (Number(msg.banned_words_total) || 0) - words.size);
  }
  applyState(msg.state);
}

function reject() {
  chat.close();
  chat = null;
  $('signin-msg').textContent = bi('令牌未被接受', 'Token not accepted');
}

function onError(err) {
  if (!signedIn && err.code === 'forbidden') {
    clearTimeout(rejectTimer);
    reject();
    return;
  }
  $('mod-notice').textContent = refusalText(err);
}

function onStatus(s) {
  $('chat-status').textContent =
    s === 'open' ? '' : s === 'connecting' ? bi('连接中…', 'connecting…') : bi('已断开，正在重连', 'disconnected, reconnecting');
}

// ---- comments -----------------------------------------------------------

const feed = new CommentFeed($('comments'), { render: renderComment, maxItems: 500 });

function renderComment(c) {
  const user = c.user;
  return el(
    'li',
    { class: 'comment' },
    el('span', { class: 'time' }, clockTime(c.ts)),
    el('span', { class: `who role-${user.role}`, title: `user ${user.id}` }, user.name || bi('游客', 'guest')),
    el('span', { class: 'text' }, c.text),
    el(
      'span',
      { class: 'actions' },
      el('button', { type: 'button', class: 'act-delete', onclick: () => act('delete', { id: c.id }, `删除 · delete “${short(c.text)}”`) }, '删除 · Delete'),
      el('button', { type: 'button', class: 'act-timeout', onclick: () => timeoutUser(user) }, '禁言 · Timeout'),
      el('button', { type: 'button', class: 'act-ban danger', onclick: () => act('ban', { user: user.id }, `封禁 · ban ${user.name}`, user) }, '封禁 · Ban'),
      el('button', { type: 'button', class: 'act-pin', onclick: () => act('pin', { id: c.id }, `置顶 · pin “${short(c.text)}”`) }, '置顶 · Pin'),
    ),
  );
}

function timeoutUser(user) {
  const seconds = Number($('timeout-s').value) || 300;
  act('timeout', { user: user.id, seconds }, `禁言 · timeout ${user.name} ${seconds} s`);
}

function short(text) {
  return text.length > 24 ? `${text.slice(0, 24)}…` : text;
}

// ---- held queue ---------------------------------------------------------

const heldList = $('held');

function addHeld(c) {
  if (!c || heldList.querySelector(`li[data-id="${CSS.escape(c.id)}"]`)) return;
  heldList.append(
    el(
      'li',
      { class: 'comment', dataset: { id: c.id } },
      el('span', { class: 'time' }, clockTime(c.ts)),
      el('span', { class: 'who' }, c.user.name || bi('游客', 'guest')),
      el('span', { class: 'text' }, c.text),
      el(
        'span',
        { class: 'actions' },
        el('button', { type: 'button', class: 'act-approve', onclick: () => act('approve', { id: c.id }, `通过 · approve “${short(c.text)}”`) }, '通过 · Approve'),
        el('button', { type: 'button', class: 'act-reject danger', onclick: () => act('reject', { id: c.id }, `拒绝 · reject “${short(c.text)}”`) }, '拒绝 · Reject'),
      ),
    ),
  );
  updateHeldCount();
}

function resolveHeld(id) {
  const item = heldList.querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (item) item.remove();
  updateHeldCount();
}

function updateHeldCount() {
  const n = heldList.children.length;
  $('held-count').textContent = String(n);
  $('held-empty').hidden = n > 0;
  heldList.hidden = n === 0;
}

// ---- events -------------------------------------------------------------

function onEvent(ev) {
  switch (ev.type) {
    case 'comment': {
      const c = eventComment(ev);
      if (c) feed.arrive(c);
      break;
    }
    case 'delete':
      feed.remove(String(ev.id));
      break;
    case 'clear':
      feed.clear();
      log(bi('评论已清屏', 'comments cleared'));
      break;
    case 'state':
      applyState(ev.state || ev);
      break;
    case 'held':
      addHeld(eventComment(ev));
      break;
    case 'resolved':
      resolveHeld(String(ev.id));
      break;
    case 'words':
      wordsEvent(ev);
      break;
    case 'ban':
    case 'timeout':
    case 'unban':
      log(`${{ ban: '封禁 · ban', timeout: '禁言 · timeout', unban: '解封 · unban' }[ev.type]} ${ev.user ?? ''}`, 'seen');
      break;
  }
}

// Any moderator (this one too) changed the list: the server's words event
// names what changed, {"type":"words","add":[…]} or {"remove":[…]}.
function wordsEvent(ev) {
  if (Array.isArray(ev.add)) for (const w of ev.add) words.add(String(w));
  if (Array.isArray(ev.remove)) for (const w of ev.remove) words.delete(String(w));
  showWords();
}

function applyState(state) {
  const s = roomState(state);
  $('hold').checked = s.hold;
  if (document.activeElement !== $('slow')) $('slow').value = String(s.slow);
  if (s.words) {
    words = new Set(s.words);
    wordsFromServer = true;
  }
  pinned = s.pinned;
  showWords();
  showPinned();
}

function showPinned() {
  const box = $('pinned');
  let text = '';
  if (pinned && typeof pinned === 'object') text = pinned.text || '';
  else if (pinned !== null && pinned !== undefined) text = feed.get(String(pinned))?.querySelector('.text')?.textContent || `#${pinned}`;
  if (!text) {
    box.hidden = true;
    return;
  }
  box.replaceChildren(
    el('span', { class: 'pin-label' }, bi('置顶', 'Pinned')),
    el('span', { class: 'text' }, text),
    el('button', { type: 'button', class: 'act-unpin', onclick: () => act('pin', { id: null }, bi('取消置顶', 'unpin')) }, '取消 · Unpin'),
  );
  box.hidden = false;
}

// ---- actions and the log ------------------------------------------------

async function act(action, fields, label, user) {
  if (!chat) return null;
  const entry = log(label, 'pending');
  const reply = await chat.mod(action, fields);
  if (reply.type === 'ack') {
    entry.classList.replace('pending', 'ok');
    entry.querySelector('.result').textContent = '✓';
    if (action === 'ban' && user) {
      entry.append(
        el('button', { type: 'button', class: 'act-unban', onclick: () => act('unban', { user: user.id }, `解封 · unban ${user.name}`) }, '解封 · Unban'),
      );
    }
  } else {
    entry.classList.replace('pending', 'bad');
    entry.querySelector('.result').textContent = `✗ ${refusalText(reply)}`;
  }
  return reply;
}

function log(text, cls = 'ok') {
  const entry = el(
    'li',
    { class: cls },
    el('span', { class: 'time' }, clockTime(Date.now())),
    el('span', { class: 'what' }, text),
    el('span', { class: 'result' }, cls === 'pending' ? '…' : ''),
  );
  const list = $('log');
  list.prepend(entry);
  while (list.children.length > 200) list.lastElementChild.remove();
  return entry;
}

$('hold').addEventListener('change', (e) => {
  const on = e.target.checked;
  act('hold', { on }, on ? bi('开启先审后发', 'hold on') : bi('关闭先审后发', 'hold off'));
});

$('slow-set').addEventListener('click', () => {
  const seconds = Math.max(0, Math.floor(Number($('slow').value) || 0));
  act('slow', { seconds }, seconds ? `慢速模式 ${seconds} 秒 · slow mode ${seconds} s` : bi('关闭慢速模式', 'slow mode off'));
});

// Clearing needs a second press within 4 s (no dialog boxes).
let clearArmed = 0;
$('clear').addEventListener('click', (e) => {
  const button = e.currentTarget;
  if (Date.now() - clearArmed > 4000) {
    clearArmed = Date.now();
    button.textContent = '再按一次确认清屏 · Press again to clear';
    setTimeout(() => (button.textContent = '清屏 · Clear all comments'), 4000);
    return;
  }
  clearArmed = 0;
  button.textContent = '清屏 · Clear all comments';
  act('clear', {}, bi('清屏', 'clear'));
});

// ---- banned words -------------------------------------------------------

$('words-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const list = $('words-in')
    .value.split(/[,，、\s]+/)
    .map((w) => w.trim())
    .filter(Boolean);
  if (list.length === 0) return;
  const reply = await act('words_add', { words: list }, `添加屏蔽词 · add words: ${list.join(', ')}`);
  if (reply?.type === 'ack') {
    for (const w of list) words.add(w);
    $('words-in').value = '';
    showWords();
  }
});

async function removeWord(w) {
  const reply = await act('words_remove', { words: [w] }, `删除屏蔽词 · remove word: ${w}`);
  if (reply?.type === 'ack') {
    words.delete(w);
    showWords();
  }
}

function showWords() {
  $('words').replaceChildren(
    ...[...words].sort().map((w) =>
      el('li', { class: 'chip' }, el('span', {}, w), el('button', { type: 'button', 'aria-label': `删除 ${w} · remove`, onclick: () => removeWord(w) }, '×')),
    ),
  );
  $('words-note').textContent = !wordsFromServer
    ? bi('这里只列出本次添加的词；配置文件里的词不在此列', 'Only words added in this session are listed; words from the config are not shown')
    : wordsNotListed
      ? bi(`另有 ${wordsNotListed} 个词未列出`, `${wordsNotListed} more words are not listed`)
      : '';
}

// ---- viewer count -------------------------------------------------------

async function pollCount() {
  const list = await fetchChannels();
  const info = list?.find((c) => c.name === channel);
  if (info) {
    $('title').textContent = info.title;
    const parts = [];
    if (info.viewers !== null) parts.push(`${info.viewers} 人在看 · watching`);
    if (info.chatMembers !== null) parts.push(`${info.chatMembers} 人在聊 · in chat`);
    $('viewers').textContent = parts.join('  ');
  }
  setTimeout(pollCount, 5000);
}

if (channel) {
  $('title').textContent = channel;
  pollCount();
} else {
  $('signin-msg').textContent = bi('没有这个频道', 'No such channel');
}
showWords();
updateHeldCount();

window.galarelay = { channel, feed, get chat() { return chat; } };
