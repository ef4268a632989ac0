// util.js: what every page shares. The channel name from the URL, building
// elements (text is always set as text, never parsed as HTML), the channel
// list from /api/v1/channels, and the words the pages say: Chinese first,
// English second.

export function channelFromPath(prefix) {
  const path = location.pathname;
  if (!path.startsWith(prefix)) return '';
  const first = path.slice(prefix.length).split('/')[0] || '';
  try {
    return decodeURIComponent(first);
  } catch {
    return '';
  }
}

// el('li', {class: 'x', dataset: {id: '1'}, onclick: fn}, 'text', child, ...)
// Strings become text nodes; there is no way to pass HTML through here.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// "中文 · English" as one string, for buttons, titles and notices.
export function bi(zh, en) {
  return en ? `${zh} · ${en}` : zh;
}

// The channel list. Tolerant: a missing field gets a default, extra fields
// are ignored, a failed request gives null (the caller says "unreachable").
export async function fetchChannels() {
  try {
    const res = await fetch('/api/v1/channels', { cache: 'no-store' });
    if (!res.ok) return null;
    const body = await res.json();
    const list = Array.isArray(body) ? body : Array.isArray(body?.channels) ? body.channels : [];
    return list
      .filter((c) => c && typeof c.name === 'string')
      .map((c) => ({
        name: c.name,
        title: typeof c.title === 'string' && c.title ? c.title : c.name,
        live: c.live === true,
        hasLive: typeof c.live === 'boolean',
        viewers: Number.isFinite(c.viewers) ? c.viewers : null,
        chatMembers: Number.isFinite(c.chat_members) ? c.chat_members : null,
      }));
  } catch {
    return null;
  }
}

// Refusals from the chat server (docs/protocol.md: error codes), in words.
const REFUSALS = {
  rate_limited: ['发得太快了，请稍等', 'You are sending too fast'],
  slow_mode: ['慢速模式中，请稍后再发', 'Slow mode is on'],
  too_long: ['评论太长了', 'Comment is too long'],
  empty: ['评论不能为空', 'Comment is empty'],
  banned: ['你已被禁止发言', 'You are banned from this chat'],
  timed_out: ['你被暂时禁言了', 'You are timed out'],
  bad_request: ['请求无效', 'Bad request'],
  forbidden: ['没有权限', 'Not allowed'],
  held: ['已提交审核，通过后会显示', 'Held for review; shown once approved'],
  offline: ['聊天未连接，正在重连', 'Chat is not connected; reconnecting'],
  timeout: ['服务器没有回应', 'No answer from the server'],
  disconnected: ['连接断开了', 'Connection lost'],
};

export function refusalText(err) {
  const words = REFUSALS[err?.code];
  let text = words ? bi(words[0], words[1]) : bi('发送失败', err?.code || 'refused');
  if (err?.message && err.message !== err.code && ['forbidden', 'bad_request'].includes(err.code)) {
    text += `（${err.message}）`;
  }
  const ms = Number(err?.retry_after_ms);
  if (ms > 0) {
    const s = Math.ceil(ms / 1000);
    text += `（${s} 秒后可再发 · retry in ${s} s）`;
  }
  return text;
}

export function clockTime(ms) {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString('zh-CN', { hour12: false });
}

// The room state keys are read tolerantly: the server may name them a
// little differently or leave some out.
export function roomState(state) {
  const s = state || {};
  let slow = s.slow_mode ?? s.slow ?? s.slow_seconds ?? 0;
  if (typeof slow === 'boolean') slow = slow ? 1 : 0;
  slow = Number(slow) || 0;
  const hold = Boolean(s.hold ?? s.hold_mode ?? false);
  let pinned = s.pinned ?? null;
  if (pinned && typeof pinned === 'object' && !pinned.id && !pinned.text) pinned = null;
  let words = s.banned_words ?? s.words ?? null;
  if (!Array.isArray(words)) words = null;
  return { slow, hold, pinned, words };
}

export function isModerator(user) {
  return ['moderator', 'admin', 'owner'].includes(user?.role);
}

export function store(key, value) {
  try {
    if (value === undefined) return localStorage.getItem(key);
    localStorage.setItem(key, value);
  } catch {
    /* private mode: nothing kept */
  }
  return value;
}
