// player.js: the video. hls.js (vendored at build time, loaded as a classic
// script: window.Hls) in low-latency mode; Safari, and any browser without
// Media Source Extensions, plays the HLS URL natively.
//
// Besides playing, it answers three questions for the page: which
// renditions there are (quality menu), how far behind live the picture is,
// and the program-date-time of the frame on screen (comment sync).

export class Player {
  constructor(video, { onLevels, onLevelSwitched, onFatal } = {}) {
    this.video = video;
    this.onLevels = onLevels || (() => {});
    this.onLevelSwitched = onLevelSwitched || (() => {});
    this.onFatal = onFatal || (() => {});
    this.hls = null;
    this.native = false;
    this.mediaRecoveries = 0;
  }

  static nativePreferred(video) {
    const Hls = window.Hls;
    const canNative = video.canPlayType('application/vnd.apple.mpegurl') !== '';
    const apple = /Apple/.test(navigator.vendor || '');
    if (!Hls || !Hls.isSupported()) return canNative ? true : null;
    return apple && canNative;
  }

  load(url) {
    this.destroy();
    const native = Player.nativePreferred(this.video);
    if (native === null) {
      this.onFatal('unsupported');
      return;
    }
    this.native = native;
    if (native) {
      this.video.src = url;
      this.onLevels([]);
      this.play();
      return;
    }
    const hls = new window.Hls({
      lowLatencyMode: true,
      backBufferLength: 30,
      liveDurationInfinity: true,
      maxLiveSyncPlaybackRate: 1.5,
      manifestLoadingMaxRetry: 2,
      levelLoadingMaxRetry: 4,
      fragLoadingMaxRetry: 4,
    });
    this.hls = hls;
    const E = window.Hls.Events;
    hls.on(E.MANIFEST_PARSED, () => {
      this.onLevels(this.levels());
      this.play();
    });
    hls.on(E.LEVEL_SWITCHED, (_e, data) => this.onLevelSwitched(data.level));
    hls.on(E.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && this.mediaRecoveries++ < 3) {
        hls.recoverMediaError();
        return;
      }
      this.onFatal(data.details || data.type);
    });
    hls.loadSource(url);
    hls.attachMedia(this.video);
  }

  play() {
    const p = this.video.play();
    if (p && p.catch) {
      p.catch(() => {
        // Autoplay with sound refused: play muted, the page offers unmute.
        this.video.muted = true;
        this.video.play().catch(() => {});
      });
    }
  }

  destroy() {
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.native || this.video.getAttribute('src')) {
      this.video.removeAttribute('src');
      this.video.load();
    }
    this.native = false;
    this.mediaRecoveries = 0;
  }

  get active() {
    return this.hls !== null || this.native;
  }

  levels() {
    if (!this.hls) return [];
    return this.hls.levels.map((l, index) => ({
      index,
      height: l.height || 0,
      bitrate: l.bitrate || 0,
      name: l.name || '',
    }));
  }

  // -1 = automatic.
  setLevel(index) {
    if (this.hls) this.hls.currentLevel = index;
  }

  get autoLevel() {
    return this.hls ? this.hls.autoLevelEnabled : true;
  }

  get currentLevel() {
    return this.hls ? this.hls.currentLevel : -1;
  }

  // Program-date-time (ms since the epoch) of the frame on screen, or null.
  programDate() {
    if (this.hls) {
      const d = this.hls.playingDate;
      return d instanceof Date && !Number.isNaN(d.getTime()) ? d.getTime() : null;
    }
    if (this.native && typeof this.video.getStartDate === 'function') {
      const start = this.video.getStartDate().getTime();
      return Number.isNaN(start) ? null : start + this.video.currentTime * 1000;
    }
    return null;
  }

  // Seconds behind the live edge, or null when not known yet.
  behindLive() {
    if (this.hls) {
      const l = this.hls.latency;
      return Number.isFinite(l) && l > 0 ? l : null;
    }
    const s = this.video.seekable;
    if (this.native && s.length) return Math.max(0, s.end(s.length - 1) - this.video.currentTime);
    return null;
  }

  // The latency hls.js aims at (hold-back), to decide when "behind" is worth saying.
  targetLatency() {
    const t = this.hls?.targetLatency;
    return Number.isFinite(t) && t > 0 ? t : 3;
  }

  jumpToLive() {
    const v = this.video;
    let target = this.hls?.liveSyncPosition;
    if (!Number.isFinite(target) && v.seekable.length) target = v.seekable.end(v.seekable.length - 1) - 1;
    if (Number.isFinite(target)) v.currentTime = target;
    this.play();
  }
}
