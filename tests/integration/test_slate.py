"""The slate, black-box: with no publisher the channel's renditions carry a
still picture and silence (master.m3u8 answers from the start, hls_check
finds the LL-HLS rules kept, ffprobe decodes a segment); a publisher
replaces it at a discontinuity; when the publisher is killed the playlist
gains slate parts again within about 2 s, at least one a second; a new
publisher replaces the slate again, and media sequence numbers keep
growing throughout.

The slate is told from the feed by its picture size on the "source"
rendition: before any feed the slate uses the ladder of a nominal
1920x1080 source; the publisher sends 640x360."""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, http, requires  # noqa: E402
from hls_check import HlsChecker, MediaPlaylist, check_playlist  # noqa: E402

KEY = "slate-test-key"
CHANNEL = "gala"
SECTIONS = (f"[channel {CHANNEL}]\nkey = {KEY}\ntitle = 留浙云春晚\n"
            "[rung 240p]\nheight = 240\nvideo_bitrate = 300\npreset = ultrafast\n")


def publisher(rtmp_url):
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
           "-f", "flv", f"{rtmp_url}/{KEY}"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def kill(proc):
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_until(what, fn, timeout, log=lambda: ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s: {what}\n{log()}")


class Stream:
    """The channel's HLS as a viewer sees it."""

    def __init__(self, d):
        self.d = d
        self.base = f"/hls/{CHANNEL}"

    def playlist(self, rendition="source", wait=5):
        """The media playlist (404 while the rendition has nothing yet: retried)."""
        deadline = time.time() + wait
        while True:
            status, _, body = self.d.get(f"{self.base}/{rendition}/index.m3u8")
            if status == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert status == 200, (status, self.d.log())
        return MediaPlaylist(body.decode(), "")

    def get(self, rendition, uri):
        status, _, body = self.d.get(f"{self.base}/{rendition}/{uri}")
        assert status == 200, (status, uri)
        return body

    def probe_last_segment(self, rendition="source"):
        """(width, height, frames) of the last complete segment of the
        current timeline, decoded by ffprobe from its init + media."""
        pl = self.playlist(rendition)
        done = [s for s in pl.segments if s.uri is not None]
        assert done, pl.text
        seg = done[-1]
        data = self.get(rendition, seg.map) + self.get(rendition, seg.uri)
        with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as f:
            f.write(data)
            path = f.name
        try:
            r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                                "-show_entries", "stream=width,height,nb_read_frames",
                                "-of", "csv=p=0", path], capture_output=True, text=True, timeout=30)
            self_fields = r.stdout.strip().split(",")
            assert r.returncode == 0 and len(self_fields) == 3, (r.stdout, r.stderr)
            return int(self_fields[0]), int(self_fields[1]), int(self_fields[2])
        finally:
            os.unlink(path)

    def slate_active(self):
        return self.d.metric("galarelay_transcoder_slate_active", f'channel="{CHANNEL}"')

    def timeline_complete(self, after_msn=None, rendition="source"):
        """Whether the current timeline has a complete segment; with
        after_msn, the timeline must have begun (at a discontinuity) after
        that segment."""
        pl = self.playlist(rendition)
        start = None if after_msn is not None else 0
        for i, seg in enumerate(pl.segments):
            if seg.discontinuity and (after_msn is None or seg.msn > after_msn):
                start = i
        if start is None:
            return False
        return any(seg.uri is not None for seg in pl.segments[start:])


@requires("ffmpeg", "ffprobe")
class Slate(unittest.TestCase):
    def test_slate_feed_slate_feed(self):
        d = Daemon(sections=SECTIONS)
        d.start()
        pub = None
        s = Stream(d)
        try:
            # 1. no publisher ever: the slate plays
            status, _, body = d.get(f"{s.base}/master.m3u8")
            self.assertEqual(status, 200, d.log())
            self.assertIn("source/", body.decode())
            self.assertIn("#EXT-X-MEDIA:TYPE=AUDIO", body.decode())
            self.assertEqual(s.slate_active(), 1)
            wait_until("a complete slate segment", s.timeline_complete, 10, d.log)
            # playlist rules over time (media=False: the segments are probed
            # below; hls_check's media pass is slow enough at 1080p that the
            # audio parts it lists have left the part window by then)
            c = HlsChecker(f"{d.url}{s.base}/master.m3u8", media=False)
            problems = c.run(seconds=5)
            self.assertEqual(problems, [], d.log())
            w, h, frames = s.probe_last_segment()
            self.assertEqual((w, h), (1920, 1080))
            self.assertGreater(frames, 10)
            w, h, frames = s.probe_last_segment("240p")
            self.assertEqual(h, 240)
            msn = s.playlist().segments[-1].msn

            # 2. a publisher replaces it
            pub = publisher(d.rtmp_url)
            wait_until("the feed's timeline", lambda: s.slate_active() == 0, 20, d.log)
            wait_until("a complete feed segment", lambda: s.timeline_complete(msn), 10, d.log)
            pl = s.playlist()
            self.assertGreater(pl.segments[-1].msn, msn)
            msn = pl.segments[-1].msn
            self.assertEqual(s.probe_last_segment()[:2], (640, 360))

            # 3. the publisher dies: slate parts within ~2 s, one a second at least
            kill(pub)
            t_kill = time.monotonic()
            pub = None
            wait_until("the slate back", lambda: s.slate_active() == 1, 5, d.log)

            def parts_total():
                return sum(len(x.parts) for x in s.playlist().segments)

            def slate_parts():
                pl = s.playlist()
                start = max((i for i, x in enumerate(pl.segments) if x.discontinuity), default=0)
                return sum(len(x.parts) for x in pl.segments[start:]) if start else 0

            wait_until("slate parts", slate_parts, 5, d.log)
            self.assertLess(time.monotonic() - t_kill, 3.0, d.log())
            last, t_last = parts_total(), time.monotonic()
            gains = 0
            end = time.monotonic() + 4
            while time.monotonic() < end:
                n = parts_total()
                if n != last:
                    gains += 1
                    last, t_last = n, time.monotonic()
                self.assertLess(time.monotonic() - t_last, 1.0, "no new part for a second")
                time.sleep(0.05)
            self.assertGreaterEqual(gains, 8)
            wait_until("a complete slate segment", lambda: s.timeline_complete(msn), 10, d.log)
            w, h, frames = s.probe_last_segment()
            self.assertEqual((w, h), (640, 360))  # the slate keeps the feed's renditions
            self.assertLess(frames, 40)  # a still at ~12 fps, not the 30 fps feed
            pl = s.playlist()
            self.assertGreater(pl.segments[-1].msn, msn)
            msn = pl.segments[-1].msn
            st, _, body = d.get("/api/v1/channels")
            self.assertEqual(st, 200)

            # 4. publish again: real media, MSNs go on
            pub = publisher(d.rtmp_url)
            wait_until("the feed's timeline again", lambda: s.slate_active() == 0, 20, d.log)
            wait_until("a complete feed segment", lambda: s.timeline_complete(msn), 10, d.log)
            pl = s.playlist()
            self.assertGreater(pl.segments[-1].msn, msn)
            w, h, frames = s.probe_last_segment()
            self.assertEqual((w, h), (640, 360))
            self.assertGreater(frames, 40)  # 30 fps
            problems = []
            check_playlist(pl, problems, "source")
            self.assertEqual(problems, [])
        finally:
            kill(pub)
            code, _ = d.stop()
        self.assertEqual(code, 0, d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
