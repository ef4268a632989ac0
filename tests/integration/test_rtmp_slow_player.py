"""A player that reads nothing while the channel runs at 8 Mbit/s does not
grow the daemon's memory past its bound (rtmp.player_queue_bytes): it is
skipped to later keyframes instead. Meanwhile the publisher keeps its pace
and another player keeps receiving.

Why this is honest in ~15 s: the stalled player's socket has a 4 KiB
receive buffer, so the kernel absorbs little; without the bound the
daemon would hold ~1 MB more per second of stall (12+ MB here), against an
allowed growth of 6 MiB (1 MiB queue + the cached GOP + allocator noise).
"""
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, rss_kib  # noqa: E402
from test_rtmp_lib import Client, measure_rss_without_asan_quarantine, wait_for  # noqa: E402

measure_rss_without_asan_quarantine()

QUEUE = 1 << 20
CHANNELS = f"""
[transcoder]
source_passthrough = false

[rtmp]
idle_timeout = 60
player_queue_bytes = {QUEUE}

[channel gala]
key = k1
"""

# A real AVC sequence header (x264, 160x120); the frames after it are
# random bytes: the relay forwards media without decoding it. The picture
# is below every rung and passthrough is off, so the transcoder has no work
# and its memory stays out of the measurement: this test is about RTMP.
AVC_SEQ = bytes.fromhex("17000000000142c00bffe100186742c00bda0a11f970110000030001000003003c0f142aa001000468ce0fc8")
FRAME_BYTES = 8_000_000 // 8 // 30


class Publisher(threading.Thread):
    """Synthetic 30 fps H.264 feed at 8 Mbit/s, keyframe every second."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.c = Client(port)
        assert self.c.publish("k1") == "NetStream.Publish.Start"
        self.c.set_chunk_size(65536)
        self.stop = False
        self.frames = 0
        self.t0 = None

    def run(self):
        self.c.send_tag(9, 0, AVC_SEQ)
        self.t0 = time.time()
        payload = os.urandom(FRAME_BYTES)
        while not self.stop:
            i = self.frames
            key = i % 30 == 0
            body = bytes([0x17 if key else 0x27, 1, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload
            self.c.send_tag(9, i * 33, body)
            self.frames += 1
            delay = self.t0 + self.frames / 30 - time.time()
            if delay > 0:
                time.sleep(delay)


class SlowPlayer(unittest.TestCase):
    def test_stalled_player_memory_bounded(self):
        with Daemon(sections=CHANNELS) as d:
            pub = Publisher(d.rtmp_port)
            pub.start()
            try:
                self.assertTrue(wait_for(lambda: d.metric("galarelay_channel_live", 'channel="gala"') == 1, 5))
                slow = Client(d.rtmp_port, rcvbuf=4096)
                slow.play("gala")
                # read until the first media message, then never again
                while slow.read_message()[0] != 9:
                    pass
                d.wait_slate_ready()
                time.sleep(2)
                base = rss_kib(d.proc.pid)
                t_stall = time.time()
                # another player is served normally during the stall
                r = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%+#60", "-select_streams", "v",
                                    "-show_entries", "packet=pts", "-of", "csv", f"{d.rtmp_url}/gala"],
                                   capture_output=True, text=True, timeout=30)
                self.assertGreaterEqual(r.stdout.count("packet"), 60, r.stderr)
                time.sleep(max(0.0, 12 - (time.time() - t_stall)))
                grown = rss_kib(d.proc.pid) - base
                self.assertLess(grown, 6 * 1024, f"RSS grew {grown} KiB while a player stalled")
                self.assertGreater(d.metric("galarelay_rtmp_player_skips_total"), 0)
                # the publisher kept its real-time pace
                elapsed = time.time() - pub.t0
                self.assertGreater(pub.frames, elapsed * 30 * 0.9)
                # and the stalled player is still connected (skipped, not dropped)
                self.assertEqual(d.metric("galarelay_rtmp_players"), 1)
                slow.close()
            finally:
                pub.stop = True
                pub.join(5)
                pub.c.close()
            code, _ = d.stop()
            self.assertEqual(code, 0, d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
