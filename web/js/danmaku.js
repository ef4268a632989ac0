// danmaku.js: comments that fly across the picture.
//
// The overlay is split into lanes. A comment takes the first lane whose
// previous comment has fully come in from the right edge; all move at the
// same speed, so none catches up with another. The density limit bounds how
// many fly at once: past it, or with no lane free, a comment is not flown
// (it is still in the list). Text is set with textContent.

const LANE_PX = 30;
const GAP_PX = 24;
const CROSS_S = 7; // seconds for a short comment to cross the screen

export const DENSITY = { low: 8, mid: 20, high: 48 };

export class Danmaku {
  constructor(layer) {
    this.layer = layer;
    this.enabled = true;
    this.max = DENSITY.mid;
    this.lanesFreeAt = [];
    this.flying = new Set();
    this.dropped = 0;
  }

  setEnabled(on) {
    this.enabled = on;
    this.layer.hidden = !on;
    if (!on) this.clear();
  }

  setDensity(max) {
    this.max = max;
  }

  add(comment, { own = false } = {}) {
    if (!this.enabled || !comment.text) return false;
    const width = this.layer.clientWidth;
    const height = this.layer.clientHeight;
    if (width === 0 || height === 0) return false;
    if (this.flying.size >= this.max) {
      this.dropped++;
      return false;
    }
    const lanes = Math.max(1, Math.floor((height * 0.8) / LANE_PX));
    const now = performance.now();
    let lane = -1;
    for (let i = 0; i < lanes; i++) {
      if ((this.lanesFreeAt[i] || 0) <= now) {
        lane = i;
        break;
      }
    }
    if (lane < 0) {
      this.dropped++;
      return false;
    }
    const item = document.createElement('span');
    item.className = own ? 'dm dm-own' : 'dm';
    item.textContent = comment.text;
    item.dataset.id = comment.id || '';
    item.style.top = `${lane * LANE_PX + 4}px`;
    this.layer.append(item);
    const w = item.offsetWidth;
    const speed = (width + 200) / CROSS_S; // px per second
    const duration = ((width + w) / speed) * 1000;
    this.lanesFreeAt[lane] = now + ((w + GAP_PX) / speed) * 1000;
    this.flying.add(item);
    const anim = item.animate(
      [{ transform: `translateX(${width}px)` }, { transform: `translateX(${-w}px)` }],
      { duration, easing: 'linear' },
    );
    anim.onfinish = () => this.drop(item);
    return true;
  }

  drop(item) {
    this.flying.delete(item);
    item.remove();
  }

  remove(id) {
    for (const item of [...this.flying]) if (item.dataset.id === id) this.drop(item);
  }

  clear() {
    for (const item of [...this.flying]) this.drop(item);
    this.lanesFreeAt = [];
  }
}
