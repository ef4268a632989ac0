"""Show-night drill: the relay process dies (kill -9) or is restarted
(SIGTERM), and comes back with the same config and state_dir.

- After each restart, once the encoder publishes again, every rendition's
  MEDIA-SEQUENCE and segment numbers are above every one served before
  (docs/protocol.md: media sequence numbers only ever grow, also across a restart), and
  the break is signalled (EXT-X-DISCONTINUITY / DISCONTINUITY-SEQUENCE).
- A player following the live playlist from before the kill keeps going
  after the restart. Two players watch:
    * a playlist follower written here that behaves like hls.js (reload
      every part target, retry while the origin is away): it must see new
      segments after each restart, fetch them, and never see the rules of
      RFC 8216 broken across the boundary (MEDIA-SEQUENCE or
      DISCONTINUITY-SEQUENCE going back, an MSN reused for other media);
    * ffmpeg's own HLS demuxer (`ffmpeg -i …/index.m3u8 -f null -`):
      FFmpeg 5.1 ends its input when playlist reloads fail (connection
      refused, or 404 while the channel is not live yet) and its buffer
      runs out, so whether it survives a restart depends on timing (seen
      both ways); what it did is printed, and the test asserts only that
      it played up to the kill and that a fresh ffmpeg player reads the
      stream after the restarts.
- After a restart with no publisher, the slate's master.m3u8 lists the
  renditions of the last feed (names and sizes, kept in state_dir), not
  those of the nominal 1080p source it uses before any feed: a player that
  picks a rendition during that slate keeps it when the feed returns.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drill_common import (CHANNEL, Daemon, channel_live, channel_sections, http,  # noqa: E402
                          last_msn, master_url, media_playlist, parse_master, publisher, renditions,
                          require, stop_proc, try_media_playlist, wait_master, wait_until)
from hls_check import MediaPlaylist, fetch  # noqa: E402


def master_layout(master):
    """{rendition name: RESOLUTION (None for audio)} of a master playlist."""
    variants, media = parse_master(master)
    out = {uri.split("/")[0]: a.get("RESOLUTION") for a, uri in variants}
    out.update({m["URI"].split("/")[0]: None for m in media if "URI" in m})
    return out


class Follower(threading.Thread):
    """Follows one media playlist like a live player; tolerates outages."""

    def __init__(self, url, fetch_segments):
        super().__init__(daemon=True)
        self.url = url
        self.fetch_segments = fetch_segments
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()
        self.problems = []
        self.loads = 0
        self.failures = 0
        self.last = None
        self.highest = -1           # highest MSN listed so far
        self.segments_fetched = []  # (msn, time)
        self.outages = 0
        self._down = False

    def run(self):
        while not self.stop_evt.is_set():
            try:
                status, _, body, _ = fetch(self.url, timeout=3)
            except (OSError, urllib.error.URLError):
                status, body = None, b""
            if status != 200:
                with self.lock:
                    self.failures += 1
                    if not self._down:
                        self.outages += 1
                    self._down = True
                self.stop_evt.wait(0.2)
                continue
            pl = MediaPlaylist(body.decode(), self.url)
            with self.lock:
                self.loads += 1
                self.check(pl)
                self._down = False
            if self.fetch_segments:
                for s in pl.segments:
                    if s.uri and s.msn > (self.segments_fetched[-1][0] if self.segments_fetched else -1):
                        st, _, _, _ = fetch(self.url.rsplit("/", 1)[0] + "/" + s.uri, timeout=5)
                        if st == 200:
                            with self.lock:
                                self.segments_fetched.append((s.msn, time.monotonic()))
            self.stop_evt.wait(pl.part_target or 0.3)

    def check(self, pl):
        old = self.last
        p = self.problems
        if old is not None:
            if pl.media_sequence < old.media_sequence:
                p.append(f"MEDIA-SEQUENCE went back {old.media_sequence} -> {pl.media_sequence}")
            if pl.disc_sequence < old.disc_sequence:
                p.append(f"DISCONTINUITY-SEQUENCE went back {old.disc_sequence} -> {pl.disc_sequence}")
            before = {s.msn: s for s in old.segments if s.uri}
            for s in pl.segments:
                o = before.get(s.msn)
                if o and s.uri and (o.uri != s.uri or o.pdt != s.pdt or abs(o.duration - s.duration) > 1e-6):
                    p.append(f"segment {s.msn} changed: {o.uri} {o.pdt} -> {s.uri} {s.pdt}")
            if self._down and pl.segments and pl.segments[0].msn > old.segments[-1].msn:
                # first playlist after an outage: the break must be signalled
                if not (pl.disc_sequence > old.disc_sequence or any(s.discontinuity for s in pl.segments)):
                    p.append(f"no discontinuity signalled after the outage:\n{pl.text}")
        if pl.segments and pl.segments[-1].msn < self.highest and not self._down:
            p.append(f"last MSN went back {self.highest} -> {pl.segments[-1].msn}")
        if pl.segments:
            self.highest = max(self.highest, pl.segments[-1].msn)
        self.last = pl

    def snapshot(self):
        with self.lock:
            return self.highest, len(self.segments_fetched), self.outages


def ffmpeg_player(url, progress_path):
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin",
           "-max_reload", "1000", "-m3u8_hold_counters", "1000",
           "-i", url, "-f", "null", "-", "-progress", progress_path]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def progress_seconds(path):
    try:
        with open(path) as f:
            times = re.findall(r"^out_time_us=(\d+)", f.read(), re.M)
    except OSError:
        return 0.0
    return int(times[-1]) / 1e6 if times else 0.0


class RestartDrill(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("ffmpeg", "ffprobe")

    def test_kill9_and_sigterm_restart(self):
        d = Daemon(sections=channel_sections())
        procs = []
        followers = []
        player = None
        tmp = tempfile.mkdtemp(prefix="drill-restart-")
        try:
            d.start()
            procs.append(publisher(d.rtmp_url))
            master = wait_master(d.url, log=d.log)
            rends = renditions(master)
            self.assertGreaterEqual(len(rends), 2, master)
            video = rends[0][1]
            time.sleep(2)
            for i, (name, rel) in enumerate(rends):
                f = Follower(f"{d.url}/hls/{CHANNEL}/{rel}", fetch_segments=(i == 0))
                f.start()
                followers.append(f)
            prog = os.path.join(tmp, "ffmpeg-player.progress")
            player = ffmpeg_player(f"{d.url}/hls/{CHANNEL}/{video}", prog)
            procs.append(player)
            wait_until("the ffmpeg player to play 2 s", lambda: progress_seconds(prog) >= 2.0, 15, interval=0.25)

            served = {}
            for how in ("SIGKILL", "SIGTERM"):
                # the highest MSN any rendition has shown so far (playlists
                # read just before the stop, and what the followers saw)
                for name, rel in rends:
                    pl = media_playlist(d.url, rel)
                    served[name] = max(served.get(name, -1), last_msn(pl))
                fetched_before = followers[0].snapshot()[1]
                played_before = progress_seconds(prog)
                disc_before = {name: media_playlist(d.url, rel).disc_sequence for name, rel in rends}
                if how == "SIGKILL":
                    d.kill9()
                else:
                    code, took = d.stop()
                    self.assertEqual(code, 0, d.log())
                    self.assertLess(took, 5.0, "graceful stop took longer than 5 s")
                stop_proc(procs[0], signal.SIGKILL)
                for f in followers:  # everything the players ever saw counts as served
                    served[f.url.split("/")[-2]] = max(served.get(f.url.split("/")[-2], -1), f.snapshot()[0])
                t_down = time.monotonic()
                d.start()
                procs[0] = publisher(d.rtmp_url)
                wait_master(d.url, log=d.log)
                # new segments in every rendition, all numbered above the old ones
                def fresh():
                    out = {}
                    for name, rel in rends:
                        pl = try_media_playlist(d.url, rel)
                        if pl is None or not [s for s in pl.segments if s.uri]:
                            return None
                        out[name] = pl
                    return out
                now = wait_until(f"complete segments after the {how} restart", fresh, 15, interval=0.3,
                                 log=d.log)
                for name, pl in now.items():
                    self.assertGreater(pl.media_sequence, served[name],
                                       f"{how}: {name} MEDIA-SEQUENCE {pl.media_sequence} not above "
                                       f"{served[name]} served before\n{pl.text}\n{d.log()}")
                    low = min(s.msn for s in pl.segments)
                    self.assertGreater(low, served[name], f"{how}: {name} reuses MSN {low}\n{pl.text}")
                    self.assertTrue(pl.disc_sequence > disc_before[name] or
                                    any(s.discontinuity for s in pl.segments),
                                    f"{how}: {name}: no discontinuity signalled after the restart\n{pl.text}")
                # the follower started before the stop goes on past it
                wait_until(f"the follower to fetch new segments after the {how} restart",
                           lambda: followers[0].snapshot()[1] >= fetched_before + 2, 12, interval=0.3, log=d.log)
                print(f"\n{how}: back with new segments {time.monotonic() - t_down:.1f}s after the stop; "
                      f"follower outages {followers[0].snapshot()[2]}; highest MSN served before / "
                      f"MEDIA-SEQUENCE now: " + ", ".join(f"{n} {served[n]}/{pl.media_sequence}"
                                                          for n, pl in now.items()), file=sys.stderr)
                if player.poll() is None:
                    time.sleep(2)
                played_after = progress_seconds(prog)
                print(f"{how}: ffmpeg HLS player: {'running' if player.poll() is None else f'exited {player.returncode}'}"
                      f", played {played_before:.1f}s before the stop, {played_after:.1f}s now", file=sys.stderr)
                time.sleep(2)

            for f in followers:
                f.stop_evt.set()
            for f in followers:
                f.join(5)
            for f in followers:
                self.assertEqual(f.problems, [], f"{f.url}: {f.problems}")
                self.assertGreater(f.loads, 10, f.url)

            # ffmpeg, started fresh after the restarts, reads the stream
            prog2 = os.path.join(tmp, "ffmpeg-player2.progress")
            p2 = ffmpeg_player(f"{d.url}/hls/{CHANNEL}/master.m3u8", prog2)
            procs.append(p2)
            wait_until("a fresh ffmpeg player to play 2 s after the restarts",
                       lambda: progress_seconds(prog2) >= 2.0, 15, interval=0.25, log=d.log)
        finally:
            for f in followers:
                f.stop_evt.set()
            if player is not None and player.poll() is not None:
                err = player.stderr.read().decode(errors="replace")[-600:]
                print(f"ffmpeg HLS player (started before the kill) log, tail:\n{err}", file=sys.stderr)
            for p in procs:
                stop_proc(p, signal.SIGKILL)
            if d.proc and d.proc.poll() is None:
                code, _ = d.stop()
                self.assertEqual(code, 0, d.log())

    def test_slate_after_restart_keeps_feed_renditions(self):
        d = Daemon(sections=channel_sections())
        pub = None
        try:
            d.start()
            pub = publisher(d.rtmp_url)
            feed = master_layout(wait_master(d.url, log=d.log))
            # the drill's ladder on a 640x360 feed: 240p and the source passed
            # through at its own size (a nominal 1080p source would be 1920x1080)
            self.assertEqual(feed.get("source"), "640x360", feed)
            stop_proc(pub, signal.SIGKILL)
            pub = None
            # the slate between feeds must not replace the saved layout
            wait_until("the slate after the feed", lambda: channel_live(d.url).get("slate"), 10, log=d.log)
            code, _ = d.stop()
            self.assertEqual(code, 0, d.log())

            d.start()  # no publisher: the slate plays
            def slate_master():
                if not channel_live(d.url).get("slate"):
                    return None
                status, _, body = http(master_url(d.url), timeout=10)
                # a variant is listed once its init segment is in
                ok = status == 200 and len(master_layout(body.decode())) >= len(feed)
                return body.decode() if ok else None
            master = wait_until("the slate's master.m3u8 after the restart", slate_master, 15,
                                interval=0.25, log=d.log)
            self.assertEqual(master_layout(master), feed,
                             f"the slate after a restart lists other renditions than the feed had\n"
                             f"{master}\n{d.log()}")
        finally:
            stop_proc(pub, signal.SIGKILL)
            if d.proc and d.proc.poll() is None:
                code, _ = d.stop()
                self.assertEqual(code, 0, d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
