"""Show-night drill: the backup encoder (backup_key) covers for the primary.

Two ffmpeg encoders publish the same show, one on the channel's key, one on
its backup_key; a viewer's media playlist is polled every 200 ms throughout
and the arrival time of every new part recorded.

- SIGKILL the primary: the backup is on air at once (/api/v1/channels
  feed=backup), the playlist keeps gaining a part at least every second
  (the backup's timeline begins at its held keyframe: no slate), and
  it shows EXT-X-DISCONTINUITY with media sequence numbers continuing.
- A new primary publishes: it takes over again at its second keyframe,
  once its keyframe interval is known (prefer_primary = yes, the default).
- No switch shows the slate: each time the other feed was ready, so the
  transcoder begins its timeline at once (the channel passes the feed's
  keyframe interval and bitrate) and the slate's grace is not over.
- SIGSTOP the primary (its connection open, nothing sent): the backup takes
  over within failover_after (2 s) + 1 s.
- The hung primary is killed and a new one publishes: it takes over again.
- /metrics counts each switch by reason.
- An RTMP player (ffprobe) watching across the first switch sees video
  timestamps that keep going forward (the channel's output clock), though
  the two encoders' clocks are seconds apart.

Kept cheap for two shared cores: 320x180 at 20 fps, ultrafast, one small
rung (the source is passed through above it)."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drill_common import (CHANNEL, Daemon, channel_live, feed_on_air, http, last_msn,  # noqa: E402
                          media_playlist, renditions, require, stop_proc, try_media_playlist, wait_until)

KEY = "drill-primary-key"
BACKUP_KEY = "drill-backup-key"
FAILOVER_AFTER = 2.0  # the default; written out so the test says what it checks
POLL = 0.2
MAX_PART_GAP = 1.0 + POLL + 0.1  # "a part at least every second", as a 200 ms poll can see it

SECTIONS = (f"[channel {CHANNEL}]\nkey = {KEY}\nbackup_key = {BACKUP_KEY}\n"
            f"failover_after = {FAILOVER_AFTER}\nprefer_primary = yes\n\n"
            "[rung 144p]\nheight = 144\nvideo_bitrate = 150\npreset = ultrafast\n")


def encoder(rtmp_url, key, freq):
    """ffmpeg sending a 320x180 test pattern and a tone in real time, a
    keyframe every second."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=20",
           "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000",
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "20",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "48k",
           "-f", "flv", f"{rtmp_url}/{key}"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


class PartWatcher(threading.Thread):
    """Polls one media playlist every POLL seconds; `arrivals` holds the
    monotonic time of each poll that saw a newer last part than before."""

    def __init__(self, base, rel):
        super().__init__(daemon=True)
        self.base, self.rel = base, rel
        self.arrivals = []
        self.errors = []
        self.stop_flag = threading.Event()
        self.last = None

    def run(self):
        while not self.stop_flag.is_set():
            try:
                pl = try_media_playlist(self.base, self.rel)
            except OSError as e:
                self.errors.append(repr(e))
                pl = None
            if pl and pl.segments:
                seg = pl.segments[-1]
                now = (seg.msn, len(seg.parts))
                if self.last is None or now > self.last:
                    self.arrivals.append(time.monotonic())
                    self.last = now
            self.stop_flag.wait(POLL)

    def max_gap(self, start, end):
        """The longest time without a new part within [start, end]."""
        times = [start] + [t for t in self.arrivals if start < t < end] + [end]
        return max(b - a for a, b in zip(times, times[1:]))


def metric(base, name, **labels):
    status, _, body = http(f"{base}/metrics", timeout=5)
    if status != 200:
        raise AssertionError(f"/metrics: HTTP {status}")
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "} "
    for line in body.decode().splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    raise AssertionError(f"{want!r} not in /metrics")


class FailoverDrill(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("ffmpeg")

    def setUp(self):
        self.d = Daemon(sections=SECTIONS)
        self.d.start()
        self.procs = []
        self.watcher = None

    def tearDown(self):
        if self.watcher:
            self.watcher.stop_flag.set()
            self.watcher.join(5)
        for p in self.procs:
            stop_proc(p, signal.SIGKILL)
        code, _ = self.d.stop()
        self.assertEqual(code, 0, self.d.log())

    def enc(self, key, freq=440):
        p = encoder(self.d.rtmp_url, key, freq)
        self.procs.append(p)
        return p

    def feed(self):
        ch = channel_live(self.d.url)
        return ch.get("feed") if ch.get("live") else None

    def wait_feed(self, which, timeout, what):
        t0 = time.monotonic()
        wait_until(f"feed={which} ({what})", lambda: self.feed() == which, timeout, interval=0.05,
                   log=self.d.log)
        return time.monotonic() - t0

    def slates(self):
        with open(self.d.log_path, encoding="utf-8", errors="replace") as f:
            return len(re.findall(r"slate on channel=", f.read()))

    def failovers(self, reason):
        return metric(self.d.url, "galarelay_channel_failovers_total", channel=CHANNEL, reason=reason)

    def test_backup_covers_for_the_primary(self):
        primary = self.enc(KEY, 440)
        wait_until("the primary on air", lambda: feed_on_air(self.d.url) and self.feed() == "primary", 15,
                   log=self.d.log)
        self.enc(BACKUP_KEY, 880)
        wait_until("the backup connected", lambda: channel_live(self.d.url).get("backup_connected"), 10,
                   log=self.d.log)
        status, _, body = http(f"{self.d.url}/hls/{CHANNEL}/master.m3u8")
        self.assertEqual(status, 200, body)
        rends = dict(renditions(body.decode()))
        rel = rends.get("144p") or next(iter(rends.values()))
        wait_until("the primary's parts in the playlist",
                   lambda: (try_media_playlist(self.d.url, rel) or None) and
                   len(try_media_playlist(self.d.url, rel).segments) >= 2, 15, log=self.d.log)
        self.watcher = PartWatcher(self.d.url, rel)
        self.watcher.start()
        time.sleep(2)  # the backup has sent a keyframe or two: it is ready
        before = {name: media_playlist(self.d.url, r) for name, r in rends.items()}
        slates_before = self.slates()

        # an RTMP player across the switch
        probe = subprocess.Popen(["timeout", "15", "ffprobe", "-v", "error", "-select_streams", "v",
                                  "-show_entries", "packet=dts", "-of", "csv=p=0", "-read_intervals", "%+6",
                                  f"{self.d.rtmp_url}/{CHANNEL}"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(probe)
        time.sleep(2)

        # 1. the primary dies
        t_kill = time.monotonic()
        primary.send_signal(signal.SIGKILL)
        primary.wait()
        took = self.wait_feed("backup", 2, "after SIGKILL of the primary")
        self.assertEqual(self.failovers("disconnect"), 1)
        self.assertTrue(channel_live(self.d.url).get("live"))

        def discontinuity_everywhere():
            now = {n: try_media_playlist(self.d.url, r) for n, r in rends.items()}
            if None in now.values():
                return None
            ok = all(any(s.discontinuity and s.msn > last_msn(before[n]) for s in pl.segments) and
                     pl.segments[-1].msn > last_msn(before[n]) + 1 for n, pl in now.items())
            return now if ok else None
        after = wait_until("a discontinuity and new segments in every rendition", discontinuity_everywhere,
                           10, interval=0.3, log=self.d.log)
        for name, pl in after.items():
            b = before[name]
            self.assertGreaterEqual(pl.media_sequence, b.media_sequence, name)
            msns = [s.msn for s in pl.segments]
            self.assertEqual(msns, sorted(set(msns)), name)
            disc = [s for s in pl.segments if s.discontinuity]
            self.assertGreater(disc[-1].msn, last_msn(b), f"{name}\n{b.text}\n{pl.text}")
        time.sleep(max(0.0, t_kill + 5 - time.monotonic()))
        gap = self.watcher.max_gap(t_kill - 1, time.monotonic())
        print(f"kill: feed=backup after {took:.2f}s, longest wait for a part {gap:.2f}s", file=sys.stderr)
        self.assertLessEqual(gap, MAX_PART_GAP, f"arrivals {self.watcher.arrivals}\n{self.d.log()}")
        out, err = probe.communicate(timeout=20)
        dts = [int(x) for x in out.split() if x.strip().isdigit()]
        self.assertGreater(len(dts), 80, f"the RTMP player got too little: {err}")
        steps = [b - a for a, b in zip(dts, dts[1:])]
        print(f"kill: RTMP player {len(dts)} video packets, dts {dts[0]}..{dts[-1]}, "
              f"steps {min(steps)}..{max(steps)} ms", file=sys.stderr)
        self.assertGreater(min(steps), 0, f"video timestamps went back for an RTMP player: {dts}")
        self.assertLess(max(steps), 1000, f"video timestamps jumped for an RTMP player: {dts}")

        # 2. a primary is back: it takes over again (prefer_primary)
        t_back = time.monotonic()
        primary = self.enc(KEY, 440)
        took = self.wait_feed("primary", 6, "a returning primary (prefer_primary = yes)")
        self.assertEqual(self.failovers("primary_returned"), 1)
        time.sleep(max(0.0, t_back + took + 3 - time.monotonic()))
        gap = self.watcher.max_gap(t_back, time.monotonic())
        print(f"return: feed=primary after {took:.2f}s, longest wait for a part {gap:.2f}s", file=sys.stderr)
        self.assertLessEqual(gap, MAX_PART_GAP, f"arrivals {self.watcher.arrivals}\n{self.d.log()}")

        # 3. the primary hangs: its connection open, no media
        t_stop = time.monotonic()
        primary.send_signal(signal.SIGSTOP)
        took = self.wait_feed("backup", FAILOVER_AFTER + 1, "a silent primary")
        self.assertGreater(took, FAILOVER_AFTER - 0.5, "switched before failover_after")
        self.assertEqual(self.failovers("silence"), 1)
        t_switch = time.monotonic()
        time.sleep(3)
        gap = self.watcher.max_gap(t_stop, t_switch)
        gap_after = self.watcher.max_gap(t_switch, time.monotonic())
        print(f"silence: feed=backup after {took:.2f}s, longest wait for a part {gap:.2f}s before the "
              f"switch, {gap_after:.2f}s after", file=sys.stderr)
        # no parts come while the hung primary is still on air (failover_after); after the switch
        # they come at least every second again
        self.assertLessEqual(gap, FAILOVER_AFTER + 1 + POLL, self.d.log())
        self.assertLessEqual(gap_after, MAX_PART_GAP, f"arrivals {self.watcher.arrivals}\n{self.d.log()}")

        # 4. the hung encoder is killed and restarted: it takes over again
        primary.send_signal(signal.SIGKILL)
        primary.wait()
        time.sleep(0.3)
        self.assertEqual(self.feed(), "backup")
        self.enc(KEY, 440)
        self.wait_feed("primary", 6, "a restarted primary")
        self.assertEqual(self.failovers("primary_returned"), 2)
        self.assertEqual(self.failovers("disconnect"), 1)
        self.assertEqual(self.failovers("silence"), 1)
        self.assertEqual(metric(self.d.url, "galarelay_channel_backup_active", channel=CHANNEL), 0)
        with open(self.d.log_path, encoding="utf-8", errors="replace") as f:
            switches = re.findall(r"feed switch channel=gala .*", f.read())
        self.assertEqual(len(switches), 4, "\n".join(switches))
        self.assertFalse(self.watcher.errors, self.watcher.errors)
        self.assertEqual(self.slates(), slates_before, "the slate came on during a switch to a ready feed\n"
                         + self.d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
