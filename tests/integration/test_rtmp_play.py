"""RTMP play against the real daemon.

What a player is sent is exactly the channel's audio and video: ffprobe
(FFmpeg's FLV reader) playing a channel that has been live for a while
shows one h264 and one aac stream and nothing else, and ffmpeg playing
across a failover to the backup feed reports no new stream. The metadata
goes at timestamp 0 (as nginx-rtmp sends it): FFmpeg's reader takes a data
message at any other time for a subtitle stream.

A player whose output limit trips while it is being subscribed (the
channel's onMetaData alone is past twice rtmp.player_queue_bytes, so the
server closes it from inside the subscription, while the metadata and
headers are written): the channel keeps no sink for it, media that follows
does not touch the closed connection (under the ASan build a
heap-use-after-free would kill the daemon), and the daemon stops cleanly.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon  # noqa: E402
from test_rtmp_lib import Client, amf_obj, amf_str, wait_for  # noqa: E402

QUEUE = 65536
TMP = tempfile.mkdtemp(prefix="galarelay-play-")
CLIP = os.path.join(TMP, "clip.flv")


def setUpModule():
    # 4 s of test pattern and tone, H.264 + AAC, a keyframe every second
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "4",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "64k", "-f", "flv", CLIP], check=True, timeout=60)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def ffmpeg_publish(d, key):
    """ffmpeg publishing the clip in a loop, in real time."""
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                             "-i", CLIP, "-c", "copy", "-f", "flv", f"{d.rtmp_url}/{key}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(p):
    p.kill()
    p.wait()

# A real AVC sequence header (x264, 160x120) and random frames: the relay
# forwards media without decoding it, and with passthrough off the picture
# is below every rung, so the transcoder has no work.
AVC_SEQ = bytes.fromhex("17000000000142c00bffe100186742c00bda0a11f970110000030001000003003c0f142aa001000468ce0fc8")
AAC_SEQ = bytes.fromhex("af001210")


class Publisher:
    """A synthetic H.264 + AAC feed, frame by frame, from this thread."""

    def __init__(self, port, key, metadata):
        self.c = Client(port)
        assert self.c.publish(key) == "NetStream.Publish.Start"
        self.c.set_chunk_size(65536)
        self.c.send_tag(18, 0, metadata)
        self.c.send_tag(9, 0, AVC_SEQ)
        self.c.send_tag(8, 0, AAC_SEQ)
        self.frames = 0

    def send(self, n):
        for _ in range(n):
            i = self.frames
            ts = i * 33
            self.c.send_tag(9, ts, bytes([0x17 if i % 30 == 0 else 0x27, 1, 0, 0, 0]) + os.urandom(300))
            self.c.send_tag(8, ts, b"\xaf\x01" + os.urandom(50))
            self.frames += 1


def full_log(d):
    with open(d.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def metadata(pad_bytes):
    """onMetaData with pad_bytes of padding (AMF0 strings hold 64 KiB)."""
    props = {"width": 160.0, "height": 120.0, "framerate": 30.0}
    for i in range(0, pad_bytes, 60000):
        props[f"pad{i}"] = "x" * min(60000, pad_bytes - i)
    return amf_str("onMetaData") + amf_obj(props)


class Play(unittest.TestCase):
    def test_ffprobe_sees_exactly_audio_and_video(self):
        with Daemon(sections="[channel gala]\nkey = k1\n") as d:
            pub = ffmpeg_publish(d, "k1")
            try:
                self.assertTrue(wait_for(lambda: d.metric("galarelay_channel_live", 'channel="gala"') == 1, 10),
                                d.log())
                time.sleep(1.5)  # a late player: its GOP, and so its headers, are past timestamp 0
                r = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json",
                                    f"{d.rtmp_url}/gala"], capture_output=True, text=True, timeout=30)
                streams = [(s["codec_type"], s.get("codec_name")) for s in json.loads(r.stdout or "{}").get("streams", [])]
                self.assertEqual(sorted(streams), [("audio", "aac"), ("video", "h264")], r.stderr)
            finally:
                stop(pub)
            self.assertEqual(d.stop()[0], 0, d.log())

    def test_no_new_stream_across_failover(self):
        """The headers of a new timeline (here the backup taking over) come
        again, metadata included: no stream may appear with them."""
        with Daemon(sections="[channel gala]\nkey = k1\nbackup_key = k2\n") as d:
            primary = ffmpeg_publish(d, "k1")
            backup = ffmpeg_publish(d, "k2")
            try:
                self.assertTrue(wait_for(lambda: d.metric("galarelay_channel_live", 'channel="gala"') == 1, 10),
                                d.log())
                self.assertTrue(wait_for(lambda: "role=standby" in d.log(), 10), d.log())
                time.sleep(1.5)
                # only audio and video mapped: a phantom stream with no
                # packets would keep ffmpeg from ever reaching -t
                player = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "warning", "-i",
                                           f"{d.rtmp_url}/gala", "-map", "0:v", "-map", "0:a", "-c", "copy",
                                           "-t", "6", "-f", "null", "-"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(3)
                stop(primary)
                try:
                    err = player.communicate(timeout=30)[1]
                except subprocess.TimeoutExpired:
                    stop(player)
                    err = player.communicate()[1]
                    self.fail(f"the player did not finish 6 s of media\n{err}\n{d.log()}")
                self.assertIn("reason=disconnect", d.log())
                self.assertNotIn("New ", err)  # ffmpeg: "New subtitle stream 0:2 at pos:…"
                self.assertNotIn("Subtitle", err)
            finally:
                stop(primary)
                stop(backup)
            self.assertEqual(d.stop()[0], 0, d.log())

    def test_player_closed_while_subscribing(self):
        sections = f"[transcoder]\nsource_passthrough = false\n[rtmp]\nplayer_queue_bytes = {QUEUE}\n" \
                   "[channel gala]\nkey = k1\n"
        with Daemon(sections=sections) as d:
            pub = Publisher(d.rtmp_port, "k1", metadata(3 * QUEUE))
            pub.send(31)  # two keyframes: the channel is live with a GOP
            self.assertTrue(wait_for(lambda: d.metric("galarelay_channel_live", 'channel="gala"') == 1, 5),
                            d.log())
            for n in range(1, 3):
                player = Client(d.rtmp_port)
                player.play("gala")  # and never reads
                port = player.s.getsockname()[1]
                self.assertTrue(wait_for(lambda: f"close addr=127.0.0.1:{port} why=peer does not read" in full_log(d),
                                         5), d.log())
                pub.send(30)  # media after the close: it must reach no one
                time.sleep(0.3)
                self.assertIsNone(d.proc.poll(), d.log())
                self.assertEqual(d.metric("galarelay_channel_rtmp_players", 'channel="gala"'), 0, d.log())
                self.assertEqual(d.metric("galarelay_rtmp_players"), 0, d.log())
                self.assertEqual(full_log(d).count("why=peer does not read (output over limit)"), n, d.log())
                self.assertEqual(d.metric("galarelay_rtmp_output_limit_closes_total"), n)
                player.close()
            pub.c.close()
            code, _ = d.stop()
            self.assertEqual(code, 0, d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
