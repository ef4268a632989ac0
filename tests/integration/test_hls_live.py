"""LL-HLS from the real daemon, black-box: ffmpeg publishes over RTMP, the
playlists are checked over time by hls_check (RFC 8216bis rules, INDEPENDENT
flags true to the media, keyframes aligned across renditions), blocking
reload answers within a part duration, and media sequence numbers keep
growing across a publisher reconnect (with a discontinuity) and a daemon
restart."""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, http, requires  # noqa: E402
from hls_check import HlsChecker, MediaPlaylist  # noqa: E402

KEY = "hls-test-key"
CHANNEL = "gala"


def publisher(rtmp_url, seconds=60, size="854x480", gop=60):
    """ffmpeg sending a test pattern and a tone, keyframes every gop frames
    (60: every 2 s), in real time."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
           "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-t", str(seconds),
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
           "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-b:v", "800k",
           "-c:a", "aac", "-b:a", "96k", "-ar", "48000",
           "-f", "flv", f"{rtmp_url}/{KEY}"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_master(d, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _, body = d.get(f"/hls/{CHANNEL}/master.m3u8", timeout=10)
        if status == 200:
            return body.decode()
        time.sleep(0.2)
    raise AssertionError(f"no master playlist after {timeout}s\n{d.log()}")


def media_playlist(d, rendition):
    status, _, body = d.get(f"/hls/{CHANNEL}/{rendition}/index.m3u8")
    assert status == 200, status
    return MediaPlaylist(body.decode(), "")


def first_rendition(master):
    for line in master.splitlines():
        if line and not line.startswith("#"):
            return line.split("/")[0]
    raise AssertionError("no variant in master")


@requires("ffmpeg", "ffprobe")
class LiveHls(unittest.TestCase):
    def daemon(self, tmp=None):
        return Daemon(sections=f"[channel {CHANNEL}]\nkey = {KEY}\n", tmp=tmp)

    def test_playlists_media_and_blocking(self):
        d = self.daemon()
        d.start()
        pub = publisher(d.rtmp_url, seconds=45)
        try:
            self.assertEqual(d.get(f"/hls/nope/master.m3u8")[0], 404)
            master = wait_master(d)
            self.assertIn("#EXT-X-MEDIA:TYPE=AUDIO", master)
            time.sleep(4)  # a few segments in the window
            c = HlsChecker(f"{d.url}/hls/{CHANNEL}/master.m3u8")
            problems = c.run(seconds=10)
            for name, url, _ in c.renditions:
                c.check_blocking_reload(f"{name}/index.m3u8", count=5)
            # every rendition's window decodes end to end, at the ladder's
            # sizes for an 854x480 source (the default ladder: 720p and up
            # are left out, the source is passed through)
            sizes = c.check_whole_window()
            self.assertEqual(problems, [], d.log())
            self.assertEqual(sizes, {"source": (854, 480), "360p": (640, 360)}, sizes)
            self.assertGreaterEqual(len(c.renditions), 2)
            # the hinted part is answered when it completes
            pl = media_playlist(d, first_rendition(master))
            t0 = time.monotonic()
            status, headers, body = d.get(f"/hls/{CHANNEL}/{first_rendition(master)}/{pl.hint['URI']}")
            self.assertEqual(status, 200)
            self.assertLess(time.monotonic() - t0, pl.part_target + 0.5)
            self.assertIn("immutable", headers.get("cache-control", ""))
        finally:
            stop(pub)
            d.stop()

    def test_sequence_grows_across_reconnect_and_restart(self):
        d = self.daemon()
        d.start()
        pub = publisher(d.rtmp_url, seconds=30)
        try:
            rendition = first_rendition(wait_master(d))
            time.sleep(5)
            before = media_playlist(d, rendition)
            last_before = before.segments[-1].msn
            stop(pub)
            time.sleep(1)
            # the encoder comes back with a 1 s GOP, on a clock the channel
            # continues (its keyframes off the 2 s grid): every rendition's
            # segments still start together, the rungs following the
            # source's cuts
            pub = publisher(d.rtmp_url, seconds=30, gop=30)
            wait_master(d)
            time.sleep(5)
            c = HlsChecker(f"{d.url}/hls/{CHANNEL}/master.m3u8")
            problems = c.run(seconds=4)
            self.assertEqual(problems, [], d.log())
            after = media_playlist(d, rendition)
            self.assertGreaterEqual(after.media_sequence, before.media_sequence)
            self.assertGreater(after.segments[-1].msn, last_before)
            self.assertTrue(any(s.discontinuity for s in after.segments) or
                            after.disc_sequence > before.disc_sequence, after.text)
            last_before = after.segments[-1].msn
            disc_before = after.disc_sequence
        finally:
            stop(pub)
            d.stop()
        d2 = self.daemon(tmp=d.tmp)  # same state_dir
        d2.start()
        pub = publisher(d2.rtmp_url, seconds=20)
        try:
            rendition = first_rendition(wait_master(d2))
            time.sleep(1)
            pl = media_playlist(d2, rendition)
            self.assertGreater(pl.media_sequence, last_before, pl.text)
            self.assertGreater(pl.disc_sequence, disc_before, pl.text)
        finally:
            stop(pub)
            d2.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
