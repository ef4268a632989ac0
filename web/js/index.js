// index.js: the front page: every channel from /api/v1/channels, live ones
// first, each a link to its player. Refreshed every 10 s.

import { bi, el, fetchChannels } from './util.js';

const list = document.getElementById('channels');
const status = document.getElementById('status');

function card(c) {
  const href = `/watch/${encodeURIComponent(c.name)}`;
  const count = c.viewers ?? c.chatMembers;
  return el(
    'li',
    { class: c.live ? 'channel live' : 'channel' },
    el(
      'a',
      { href },
      el('span', { class: c.live ? 'badge live' : 'badge off' }, c.live ? bi('直播中', 'LIVE') : bi('未开播', 'offline')),
      el('span', { class: 'ch-title' }, c.title),
      el('span', { class: 'ch-name' }, c.name),
      c.live && count !== null ? el('span', { class: 'count' }, `${count} 人在看 · watching`) : null,
    ),
  );
}

async function refresh() {
  const channels = await fetchChannels();
  if (channels === null) {
    status.textContent = bi('暂时无法获取频道列表，稍后重试', 'Cannot load the channel list; retrying');
  } else {
    channels.sort((a, b) => Number(b.live) - Number(a.live) || (b.viewers ?? 0) - (a.viewers ?? 0));
    list.replaceChildren(...channels.map(card));
    const live = channels.filter((c) => c.live).length;
    status.textContent = live
      ? `${live} 个频道正在直播 · ${live} live`
      : bi('现在没有频道在直播', 'Nothing is live right now');
  }
  setTimeout(refresh, 10000);
}

refresh();
