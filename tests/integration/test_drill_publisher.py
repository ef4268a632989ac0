"""Show-night drill: the broadcaster's encoder dies or hangs.

- SIGKILL the publishing ffmpeg mid-stream: the channel goes offline
  (/api/v1/channels live=false) well within [rtmp] idle_timeout, and a new
  publisher with the same key is accepted at once.
- An encoder whose TCP connection stays open but silent (SIGSTOP) must not
  lock its own reconnect out: a newcomer with the same key is the publisher
  within ~3 s (docs/protocol.md: a live publisher that sent no media for 2 s is
  replaced); while the first one still sends, a second one is refused.
  A silent publisher nobody replaces is dropped after idle_timeout.
- HLS across a publisher reconnect: EXT-X-DISCONTINUITY, and media sequence
  numbers continue above the ones served before, in every rendition.
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drill_common import (CHANNEL, Daemon, channel_live, channel_sections, last_msn,  # noqa: E402
                          media_playlist, publisher, renditions, require, stop_proc, try_media_playlist,
                          wait_master, wait_until)

IDLE_TIMEOUT = 4


def make_daemon():
    return Daemon(sections=f"[rtmp]\nidle_timeout = {IDLE_TIMEOUT}\n\n" + channel_sections())


class PublisherDrill(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("ffmpeg", "ffprobe")

    def setUp(self):
        self.d = make_daemon()
        self.d.start()
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            stop_proc(p, signal.SIGKILL)
        code, _ = self.d.stop()
        self.assertEqual(code, 0, self.d.log())

    def pub(self):
        p = publisher(self.d.rtmp_url)
        self.procs.append(p)
        return p

    def live(self):
        return channel_live(self.d.url).get("live") is True

    def offline(self):
        return channel_live(self.d.url).get("live") is False

    def wait_live(self, timeout=10):
        wait_until("channel live", self.live, timeout, log=self.d.log)

    def test_killed_publisher_frees_the_key(self):
        p1 = self.pub()
        self.wait_live()
        time.sleep(1.5)
        p1.send_signal(signal.SIGKILL)
        p1.wait()
        t0 = time.monotonic()
        wait_until("live=false after SIGKILL of the publisher", self.offline, IDLE_TIMEOUT + 1, log=self.d.log)
        took = time.monotonic() - t0
        self.assertLess(took, IDLE_TIMEOUT + 1)

        # the same key publishes again at once
        t0 = time.monotonic()
        p2 = self.pub()
        self.wait_live(timeout=3)
        self.assertLess(time.monotonic() - t0, 3.0)
        time.sleep(1)
        self.assertIsNone(p2.poll(), p2.stderr.read().decode() if p2.poll() is not None else "")

        # a silent publisher that nobody replaces is dropped after idle_timeout
        p2.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        wait_until(f"live=false within idle_timeout={IDLE_TIMEOUT}s of a silent publisher", self.offline,
                   IDLE_TIMEOUT + 2, log=self.d.log)
        self.assertGreater(time.monotonic() - t0, 1.5, "a publisher silent for <2 s was dropped")

    def test_silent_publisher_is_replaced(self):
        p1 = self.pub()
        self.wait_live()
        time.sleep(1.5)
        # while p1 sends media, a second publisher with the same key is refused
        intruder = publisher(self.d.rtmp_url)
        self.procs.append(intruder)
        try:
            intruder.wait(8)
        except subprocess.TimeoutExpired:
            self.fail("a second publisher with a live key was not refused within 8 s\n" + self.d.log())
        self.assertNotEqual(intruder.returncode, 0)
        self.assertIsNone(p1.poll(), "the live publisher was dropped by the intruder")
        self.assertTrue(self.live())

        # p1 hangs: its TCP connection stays open but nothing comes. The
        # encoder reconnects the way OBS does: it retries until accepted.
        p1.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        attempts = []
        p2 = None
        while time.monotonic() - t0 < 6 and p2 is None:
            p = self.pub()
            attempts.append(p)
            try:
                p.wait(1.2)  # a refused publisher exits at once
                time.sleep(0.3)
            except subprocess.TimeoutExpired:
                p2 = p
        took = time.monotonic() - t0
        if p2 is None:
            self.fail("the reconnecting encoder was locked out by its own dead connection: "
                      f"{len(attempts)} attempts refused in {took:.1f}s: "
                      f"{attempts[-1].stderr.read().decode()[-300:]}\n{self.d.log()}")
        # accepted once p1 had been silent for publisher_takeover (2 s): a
        # try that is still running after 1.2 s was accepted
        self.assertLess(took, 2 + 1.2 + 1.5, f"takeover took {took:.1f}s ({len(attempts)} attempts)")
        # p2 is the publisher: drop p1 for good, the channel stays live
        p1.send_signal(signal.SIGKILL)
        p1.wait()
        time.sleep(1.5)
        self.assertTrue(self.live(), "channel went offline when the replaced publisher died\n" + self.d.log())
        self.assertIsNone(p2.poll(), p2.stderr.read().decode() if p2.poll() is not None else "")

    def test_hls_discontinuity_after_reconnect(self):
        p1 = self.pub()
        master = wait_master(self.d.url, log=self.d.log)
        rends = renditions(master)
        self.assertGreaterEqual(len(rends), 2, master)
        time.sleep(3)
        before = {name: media_playlist(self.d.url, rel) for name, rel in rends}
        p1.send_signal(signal.SIGKILL)
        p1.wait()
        time.sleep(0.5)
        self.pub()
        self.wait_live(timeout=5)

        def new_segments_everywhere():
            now = {name: try_media_playlist(self.d.url, rel) for name, rel in rends}
            if None in now.values():
                return None
            ok = all(any(s.discontinuity and s.msn > last_msn(before[n]) for s in pl.segments) and
                     pl.segments[-1].msn > last_msn(before[n]) + 1 for n, pl in now.items())
            return now if ok else None
        after = wait_until("a discontinuity and new segments in every rendition", new_segments_everywhere,
                           15, interval=0.5, log=self.d.log)
        for name, pl in after.items():
            b = before[name]
            self.assertGreaterEqual(pl.media_sequence, b.media_sequence, name)
            self.assertGreaterEqual(pl.disc_sequence, b.disc_sequence, name)
            disc = [s for s in pl.segments if s.discontinuity]
            self.assertTrue(disc, f"{name}: no EXT-X-DISCONTINUITY\n{pl.text}")
            # MSNs continue: the first segment after the discontinuity is above
            # every segment served before it
            self.assertGreater(disc[-1].msn, last_msn(b), f"{name}\n{b.text}\n{pl.text}")
            msns = [s.msn for s in pl.segments]
            self.assertEqual(msns, sorted(set(msns)), name)
            self.assertIn("#EXT-X-DISCONTINUITY", pl.text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
