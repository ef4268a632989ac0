// watch.js: the player page, /watch/CHANNEL.
//
// Wires the pieces together: the liveness poll (offline slate <-> player),
// the player with its quality menu and behind-live readout, the chat
// connection, the comment list kept in step with the picture, the danmaku
// overlay and the comment box.

import { Player } from './player.js';
import { ChatClient, eventComment } from './chat.js';
import { CommentFeed } from './comments.js';
import { Danmaku, DENSITY } from './danmaku.js';
import { bi, channelFromPath, clockTime, el, fetchChannels, refusalText, roomState, store } from './util.js';

const $ = (id) => document.getElementById(id);
const channel = channelFromPath('/watch/');
const hlsUrl = `/hls/${encodeURIComponent(channel)}/master.m3u8`;

const video = $('video');
const slate = $('slate');
const notice = $('notice');
let live = false;
let everLive = false;
let unsupported = false; // this browser cannot play HLS: stop trying

// ---- player -----------------------------------------------------------

const player = new Player(video, {
  onLevels: fillQuality,
  onLevelSwitched: labelAuto,
  onFatal: (why) => {
    console.warn('player stopped:', why);
    unsupported = why === 'unsupported';
    stopPlayer(unsupported ? 'unsupported' : 'connecting');
  },
});

function startPlayer() {
  slate.hidden = true;
  player.load(hlsUrl);
}

function stopPlayer(reason) {
  player.destroy();
  fillQuality([]);
  showSlate(reason);
  showUnmute();
}

function showSlate(reason) {
  const words = {
    offline: ['主播还没有开播', 'Not live yet. The video starts here by itself when the broadcast begins.'],
    ended: ['直播已结束或暂时中断', 'The broadcast has stopped. The video comes back by itself when it resumes.'],
    connecting: ['正在连接直播…', 'Connecting to the broadcast…'],
    unknown: ['没有这个频道', 'There is no such channel.'],
    unsupported: ['这个浏览器无法播放', 'This browser cannot play the video.'],
  }[reason] || ['主播还没有开播', 'Not live yet.'];
  $('slate-zh').textContent = words[0];
  $('slate-en').textContent = words[1];
  slate.hidden = false;
  $('behind').textContent = '';
}

function fillQuality(levels) {
  const select = $('quality');
  const auto = el('option', { value: '-1' }, bi('自动', 'Auto'));
  const options = [...levels]
    .sort((a, b) => b.height - a.height || b.bitrate - a.bitrate)
    .map((l) => el('option', { value: String(l.index) }, levelName(l)));
  select.replaceChildren(auto, ...options);
  select.disabled = levels.length === 0;
}

function levelName(l) {
  const h = l.height ? `${l.height}p` : l.name || `#${l.index}`;
  return l.bitrate ? `${h}（${(l.bitrate / 1e6).toFixed(1)} Mbps）` : h;
}

function labelAuto(level) {
  const auto = $('quality').querySelector('option[value="-1"]');
  const l = player.levels()[level];
  if (!auto) return;
  auto.textContent = player.autoLevel && l ? `${bi('自动', 'Auto')}（${l.height}p）` : bi('自动', 'Auto');
}

$('quality').addEventListener('change', (e) => player.setLevel(Number(e.target.value)));
$('live-btn').addEventListener('click', () => player.jumpToLive());
$('unmute').addEventListener('click', () => {
  video.muted = false;
  video.play().catch(() => {});
});
video.addEventListener('volumechange', showUnmute);
video.addEventListener('playing', showUnmute);
function showUnmute() {
  $('unmute').hidden = !(video.muted && player.active);
}

setInterval(() => {
  if (!player.active) return;
  const behind = player.behindLive();
  const far = behind !== null && behind > player.targetLatency() + 1.5;
  $('behind').textContent =
    behind === null ? '' : `落后直播 ${behind.toFixed(1)} 秒 · ${behind.toFixed(1)} s behind live`;
  $('live-btn').classList.toggle('far', far);
}, 500);

// ---- liveness: the slate turns into the player by itself -----------------

async function probeMaster() {
  try {
    const res = await fetch(hlsUrl, { cache: 'no-store' });
    return res.ok && (await res.text()).startsWith('#EXTM3U');
  } catch {
    return false;
  }
}

async function checkLive() {
  const list = await fetchChannels();
  const info = list ? list.find((c) => c.name === channel) : undefined;
  if (info) {
    $('title').textContent = info.title;
    document.title = `${info.title} · galarelay`;
    const n = info.viewers ?? info.chatMembers;
    $('viewers').textContent = n === null ? '' : `${n} 人在看 · watching`;
  }
  const nowLive = info && info.hasLive ? info.live : await probeMaster();
  if (nowLive) everLive = true;
  if (unsupported) showSlate('unsupported');
  else if (nowLive && !player.active) startPlayer();
  else if (!nowLive && player.active) stopPlayer('ended');
  else if (!nowLive) showSlate(list && !info && !everLive ? 'unknown' : everLive ? 'ended' : 'offline');
  live = nowLive;
  setTimeout(checkLive, live && player.active ? 5000 : 2000);
}

// ---- comments -----------------------------------------------------------

const danmaku = new Danmaku($('danmaku'));
const feed = new CommentFeed($('comments'), {
  render: renderComment,
  programDate: () => (player.active && !video.paused ? player.programDate() : null),
  onShown: (c, { own }) => danmaku.add(c, { own }),
});
setInterval(() => feed.tick(), 100);

function renderComment(c, { own }) {
  return el(
    'li',
    { class: own ? 'comment own' : 'comment', title: clockTime(c.ts) },
    el('span', { class: `who role-${c.user.role}` }, c.user.name || bi('游客', 'guest')),
    c.user.role !== 'viewer' ? el('span', { class: 'badge' }, bi('管理', 'mod')) : null,
    el('span', { class: 'text' }, c.text),
  );
}

let pinned = null;
function showRoom(state) {
  const s = roomState(state);
  const parts = [];
  if (s.slow > 0) parts.push(`慢速模式：每 ${s.slow} 秒一条 · Slow mode: one comment per ${s.slow} s`);
  if (s.hold) parts.push('评论需审核后显示 · Comments are reviewed before they show');
  $('room').textContent = parts.join('；');
  pinned = s.pinned;
  showPinned();
}

function showPinned() {
  const box = $('pinned');
  let c = pinned;
  if (typeof c === 'string' || typeof c === 'number') {
    const item = feed.get(String(c));
    c = item ? { text: item.querySelector('.text')?.textContent || '', user: { name: item.querySelector('.who')?.textContent || '' } } : null;
  }
  if (!c || !c.text) {
    box.hidden = true;
    return;
  }
  box.replaceChildren(
    el('span', { class: 'pin-label' }, bi('置顶', 'Pinned')),
    el('span', { class: 'who' }, c.user?.name || ''),
    el('span', { class: 'text' }, c.text),
  );
  box.hidden = false;
}

const hashToken = new URLSearchParams(location.hash.slice(1)).get('token') || '';
const chat = new ChatClient(channel, {
  name: store('galarelay.name') || '',
  token: hashToken,
  onWelcome: (msg) => {
    feed.setMe(msg.user?.id ? String(msg.user.id) : '', typeof msg.user?.name === 'string' ? msg.user.name : '');
    feed.reset((Array.isArray(msg.history) ? msg.history : []).map(eventComment).filter(Boolean));
    showRoom(msg.state);
  },
  onEvent: (ev) => {
    switch (ev.type) {
      case 'comment': {
        const c = eventComment(ev);
        if (c) feed.arrive(c);
        break;
      }
      case 'delete':
        feed.remove(String(ev.id));
        danmaku.remove(String(ev.id));
        break;
      case 'clear':
        feed.clear();
        danmaku.clear();
        break;
      case 'state':
        showRoom(ev.state || ev);
        break;
      case 'dropped':
        say(bi('网络较慢，部分评论没有收到', 'Slow connection: some comments were skipped'));
        break;
    }
  },
  onStatus: (s) => {
    $('chat-status').textContent =
      s === 'open' ? '' : s === 'connecting' ? bi('评论连接中…', 'connecting to chat…') : bi('评论已断开，正在重连', 'chat disconnected, reconnecting');
  },
  onError: (err) => say(refusalText(err), true),
});

function say(text, bad = false) {
  notice.textContent = text;
  notice.classList.toggle('bad', bad);
}

const nameInput = $('name');
nameInput.value = chat.name;
// A name change is a new hello; a comment waits for its answer.
let identifying = Promise.resolve();
nameInput.addEventListener('change', () => {
  const name = nameInput.value.trim();
  if (name === chat.name) return;
  store('galarelay.name', name);
  identifying = chat.identify(name);
  identifying.then((r) => r?.type === 'error' && say(refusalText(r), true));
});

$('send').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text) return;
  const name = nameInput.value.trim();
  if (!name && !chat.token) {
    say(bi('请先填写昵称', 'Please enter a name first'), true);
    nameInput.focus();
    return;
  }
  if (name !== chat.name) {
    store('galarelay.name', name);
    identifying = chat.identify(name);
  }
  const hello = await identifying;
  identifying = Promise.resolve();
  if (hello && hello.type === 'error') {
    say(refusalText(hello), true);
    nameInput.focus();
    return;
  }
  input.value = '';
  say('');
  const me = chat.user || { id: '', name, role: 'viewer' };
  const echo = feed.echo({ id: '', text, ts: Date.now(), user: { id: String(me.id || ''), name: me.name || name, role: me.role || 'viewer' } });
  danmaku.add({ id: '', text }, { own: true });
  const reply = await chat.comment(text);
  if (reply.type === 'ack') {
    echo.confirm(String(reply.id));
    return;
  }
  if (reply.code === 'held') {
    echo.hold(el('span', { class: 'tag' }, bi('审核中', 'in review')));
    say(refusalText(reply));
    return;
  }
  echo.fail();
  say(refusalText(reply), true);
  if (!input.value) input.value = text;
});

// ---- danmaku controls ---------------------------------------------------

const dmOn = $('dm-on');
const dmDensity = $('dm-density');
dmOn.checked = store('galarelay.danmaku') !== 'off';
dmDensity.value = store('galarelay.density') || 'mid';
danmaku.setEnabled(dmOn.checked);
danmaku.setDensity(DENSITY[dmDensity.value] || DENSITY.mid);
dmOn.addEventListener('change', () => {
  store('galarelay.danmaku', dmOn.checked ? 'on' : 'off');
  danmaku.setEnabled(dmOn.checked);
});
dmDensity.addEventListener('change', () => {
  store('galarelay.density', dmDensity.value);
  danmaku.setDensity(DENSITY[dmDensity.value] || DENSITY.mid);
});

// ---- start --------------------------------------------------------------

if (!channel) {
  showSlate('unknown');
} else {
  $('title').textContent = channel;
  fillQuality([]);
  showSlate('offline');
  checkLive();
  chat.connect();
}

// For the browser tests and for curious people in the console.
window.galarelay = { channel, player, feed, danmaku, chat, isLive: () => live };
