"""RTMP ingest and play against the real daemon with real clients.

ffmpeg publishes a clip and ffprobe plays it back: every packet must arrive
with the same timestamps and bytes. GStreamer's rtmp2sink publishes and
plays back. librtmp-based tools (docs/protocol.md): GStreamer's rtmpsink publishes and
the channel goes live; rtmpdump plays the channel into an FLV that ffprobe
reads. Keys: unknown refused, duplicate refused, backup accepted
beside the primary, a silent publisher taken over, a stalled publisher
dropped. Garbage and truncated handshakes leave the daemon healthy.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon  # noqa: E402
from test_rtmp_lib import Client, flv_tags, wait_for  # noqa: E402

CHANNELS = """
[rtmp]
handshake_timeout = 1
idle_timeout = 2
publisher_takeover = 1
max_connections = 12
publisher_reserve = 2

[channel gala]
key = k-primary
backup_key = k-backup
"""

TMP = tempfile.mkdtemp(prefix="galarelay-rtmp-")
CLIP = os.path.join(TMP, "clip.flv")


def setUpModule():
    require_tools()
    # 4 s, H.264 with B-frames (composition times) + AAC.
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "4",
                    "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "64k", "-f", "flv", CLIP], check=True, timeout=60)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def packets(src, timeout=30):
    """Per stream type, the list of (pts, dts, size, flags, md5) ffprobe sees."""
    r = subprocess.run(["ffprobe", "-v", "error", "-show_packets", "-show_data_hash", "MD5",
                        "-show_entries", "packet=codec_type,pts,dts,size,flags,data_hash", "-of", "json", src],
                       capture_output=True, text=True, timeout=timeout)
    out = {}
    for p in json.loads(r.stdout or "{}").get("packets", []):
        out.setdefault(p["codec_type"], []).append(
            (p.get("pts"), p.get("dts"), p["size"], p["flags"][0], p["data_hash"]))
    return out


def channel(d, name="gala"):
    _, _, body = d.get("/api/v1/channels")
    for c in json.loads(body)["channels"]:
        if c["name"] == name:
            return c
    return None


def require_tools():
    """Fail (not skip) with a clear message when a peer tool is missing."""
    missing = [b for b in ("ffmpeg", "ffprobe", "gst-launch-1.0", "gst-inspect-1.0", "rtmpdump")
               if not shutil.which(b)]
    if not missing and subprocess.run(["gst-inspect-1.0", "--exists", "rtmpsink"]).returncode != 0:
        missing.append("GStreamer rtmpsink (gstreamer1.0-plugins-bad)")
    if missing:
        raise AssertionError(f"missing prerequisite(s): {', '.join(missing)} "
                             f"(scripts/bootstrap.sh installs them)")


def ffmpeg_publish(d, key, extra=(), src=None, wait=True, timeout=30):
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", *extra, "-i", src or CLIP, "-c", "copy",
            "-f", "flv", f"{d.rtmp_url}/{key}"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if wait else subprocess.DEVNULL)
    if wait:
        p.err = p.communicate(timeout=timeout)[1]
    return p


class Ingest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(sections=CHANNELS).start()

    def tearDown(self):
        code, _ = self.d.stop()
        self.assertEqual(code, 0, self.d.log())

    def test_ffmpeg_publish_ffprobe_play_same_packets(self):
        want = packets(CLIP)
        self.assertGreater(len(want["video"]), 100)
        # The player subscribes first and waits for the feed.
        got = {}
        import threading
        t = threading.Thread(target=lambda: got.update(packets(f"{self.d.rtmp_url}/gala")))
        t.start()
        self.assertTrue(wait_for(lambda: "play channel=gala" in self.d.log(), 10), self.d.log())
        p = ffmpeg_publish(self.d, "k-primary")
        self.assertEqual(p.returncode, 0, p.err)
        t.join(30)
        self.assertEqual(got.get("video"), want["video"])
        self.assertEqual(got.get("audio"), want["audio"])
        # ffmpeg's RTMP client signs C1 and checks our S1/S2 digests: the
        # "complex" handshake, verified by a real client
        self.assertIn("play channel=gala addr=127.0.0.1", self.d.log())
        self.assertIn("handshake=digest", self.d.log())

    def test_late_player_starts_at_keyframe(self):
        p = ffmpeg_publish(self.d, "k-primary", extra=["-re", "-stream_loop", "-1"], wait=False)
        try:
            self.assertTrue(wait_for(lambda: (channel(self.d) or {}).get("live"), 10), self.d.log())
            time.sleep(1.2)
            r = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%+#20", "-show_packets",
                                "-select_streams", "v", "-show_entries", "packet=flags,pts", "-of", "csv",
                                f"{self.d.rtmp_url}/gala"], capture_output=True, text=True, timeout=20)
            lines = [l for l in r.stdout.splitlines() if l.startswith("packet")]
            self.assertTrue(lines, r.stderr)
            self.assertTrue(lines[0].endswith("K_"), lines[:3])  # first packet is a keyframe
            self.assertGreater(int(lines[0].split(",")[1]), 500)  # from the cached GOP, not from 0
            c = channel(self.d)
            self.assertEqual(c["codec"], "h264")
            self.assertEqual((c["width"], c["height"]), (320, 240))
            self.assertAlmostEqual(c["fps"], 30, delta=3)
            self.assertGreater(c["bitrate_kbps"], 10)
            self.assertAlmostEqual(c["keyframe_interval"], 1.0, delta=0.1)
            # never the publisher's address (docs/protocol.md), in any field
            self.assertNotIn("127.0.0.1", json.dumps(c))
            self.assertFalse([k for k in c if "addr" in k or k in ("ip", "address", "remote")], c)
        finally:
            p.kill()
            p.wait()

    def test_gstreamer_rtmp2sink_publishes(self):
        got = {}
        import threading
        t = threading.Thread(target=lambda: got.update(packets(f"{self.d.rtmp_url}/gala")))
        t.start()
        self.assertTrue(wait_for(lambda: "play channel=gala" in self.d.log(), 10))
        g = subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=90", "!",
                            "video/x-raw,width=320,height=240,framerate=30/1", "!",
                            "x264enc", "speed-preset=ultrafast", "key-int-max=30", "!", "h264parse", "!",
                            "flvmux", "streamable=true", "name=m", "!",
                            "rtmp2sink", f"location={self.d.rtmp_url}/k-primary",
                            "audiotestsrc", "num-buffers=130", "!", "voaacenc", "!", "aacparse", "!", "m."],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(g.returncode, 0, g.stderr + self.d.log())
        t.join(30)
        self.assertGreaterEqual(len(got.get("video", [])), 85, self.d.log())
        self.assertGreater(len(got.get("audio", [])), 50)
        self.assertEqual(got["video"][0][3], "K")

    def test_gstreamer_rtmpsink_librtmp_publishes(self):
        # rtmpsink is GStreamer's librtmp element (not rtmp2sink): librtmp
        # publishes with the plain handshake, its own connect/releaseStream/
        # FCPublish/createStream/publish sequence and a 4 KiB chunk size.
        got = {}
        import threading
        t = threading.Thread(target=lambda: got.update(packets(f"{self.d.rtmp_url}/gala")))
        t.start()
        self.assertTrue(wait_for(lambda: "play channel=gala" in self.d.log(), 10))
        # 3 s in real time (is-live): the channel is seen live while it lasts
        g = subprocess.Popen(["gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "num-buffers=90", "!",
                              "video/x-raw,width=320,height=240,framerate=30/1", "!",
                              "x264enc", "speed-preset=ultrafast", "tune=zerolatency", "key-int-max=30", "!",
                              "h264parse", "!", "flvmux", "streamable=true", "name=m", "!",
                              "rtmpsink", f"location={self.d.rtmp_url}/k-primary live=1",
                              "audiotestsrc", "is-live=true", "num-buffers=130", "!", "voaacenc", "!", "aacparse",
                              "!", "m."], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            c = wait_for(lambda: (lambda c: c if c["live"] and c.get("codec") else None)(channel(self.d)), 10)
            self.assertIsNotNone(c, "rtmpsink publish never went live\n" + self.d.log())
            self.assertEqual(c["feed"], "primary")
            self.assertEqual(c["codec"], "h264")
            self.assertEqual(c["audio_codec"], "aac")
            self.assertEqual((c["width"], c["height"]), (320, 240))
            err = g.communicate(timeout=30)[1]
        finally:
            if g.poll() is None:
                g.kill()
                g.wait()
        self.assertEqual(g.returncode, 0, err + self.d.log())
        self.assertIn("publish accepted channel=gala", self.d.log())
        t.join(30)
        self.assertGreaterEqual(len(got.get("video", [])), 85, self.d.log())
        self.assertGreater(len(got.get("audio", [])), 50)
        self.assertEqual(got["video"][0][3], "K")
        self.assertTrue(wait_for(lambda: not channel(self.d)["live"], 5), self.d.log())

    def test_rtmpdump_librtmp_plays(self):
        p = ffmpeg_publish(self.d, "k-primary", extra=["-re", "-stream_loop", "-1"], wait=False)
        out = os.path.join(TMP, "rtmpdump.flv")
        try:
            self.assertTrue(wait_for(lambda: (channel(self.d) or {}).get("live"), 10), self.d.log())
            # -v: live. Stopped with SIGINT after ~3 s: rtmpdump then closes
            # the FLV cleanly (exit 2, "incomplete", is what a live stream
            # interrupted by the user gives).
            r = subprocess.Popen(["rtmpdump", "-q", "-v", "-r", f"{self.d.rtmp_url}/gala", "-o", out],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
            try:
                self.assertTrue(wait_for(lambda: "play channel=gala" in self.d.log(), 5), self.d.log())
                time.sleep(3)
                if r.poll() is not None:
                    self.fail(f"rtmpdump exited early ({r.returncode}): {r.stderr.read()}\n{self.d.log()}")
                r.send_signal(signal.SIGINT)
                err = r.communicate(timeout=10)[1]
            finally:
                if r.poll() is None:
                    r.kill()
                    r.wait()
            self.assertIn(r.returncode, (0, 2), err)
        finally:
            p.kill()
            p.wait()
        got = packets(out)
        self.assertGreater(len(got.get("video", [])), 60, f"{got.keys()} {err}\n{self.d.log()}")
        self.assertGreater(len(got.get("audio", [])), 80, err)
        self.assertEqual(got["video"][0][3], "K")  # starts at a keyframe (the cached GOP)
        # decodable: ffprobe names the codecs and the size
        s = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height",
                            "-of", "json", out], capture_output=True, text=True, timeout=30)
        streams = {x["codec_type"]: x for x in json.loads(s.stdout).get("streams", [])}
        self.assertEqual(streams["video"]["codec_name"], "h264", s.stdout)
        self.assertEqual((streams["video"]["width"], streams["video"]["height"]), (320, 240))
        self.assertEqual(streams["audio"]["codec_name"], "aac", s.stdout)
        self.assertIn("rtmp: play channel=gala", self.d.log())

    def test_unknown_key_refused(self):
        c = Client(self.d.rtmp_port)
        self.assertEqual(c.publish("nope"), "NetStream.Publish.BadName")
        # and the connection is closed by the server: a close or a reset,
        # not the client's 10 s timeout (an OSError too, so named apart)
        with self.assertRaises(OSError) as closed:
            for _ in range(100):
                c.read_message()
        self.assertNotIsInstance(closed.exception, socket.timeout,
                                 f"the refused publisher's connection stayed open\n{self.d.log()}")
        c.close()
        p = ffmpeg_publish(self.d, "nope")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown stream key", self.d.log())
        self.assertFalse(channel(self.d)["live"])

    def test_duplicate_refused_backup_accepted(self):
        a = Client(self.d.rtmp_port)
        self.assertEqual(a.publish("k-primary"), "NetStream.Publish.Start")
        tags = list(flv_tags(CLIP))
        for t, ts, body in tags[:40]:
            a.send_tag(t, ts, body)
        self.assertTrue(wait_for(lambda: channel(self.d)["live"], 5))
        b = Client(self.d.rtmp_port)
        self.assertEqual(b.publish("k-primary"), "NetStream.Publish.BadName")
        backup = Client(self.d.rtmp_port)
        self.assertEqual(backup.publish("k-backup"), "NetStream.Publish.Start")
        for t, ts, body in tags[:40]:
            backup.send_tag(t, ts, body)
        c = wait_for(lambda: (lambda c: c if c["backup_connected"] else None)(channel(self.d)), 5)
        self.assertTrue(c["primary_connected"])
        self.assertEqual(c["feed"], "primary")
        # the primary leaves: the backup feed is what the channel shows
        a.close()
        c = wait_for(lambda: (lambda c: c if c.get("feed") == "backup" else None)(channel(self.d)), 5)
        self.assertIsNotNone(c, self.d.log())
        self.assertTrue(c["live"])
        for x in (b, backup):
            x.close()

    def test_silent_publisher_taken_over(self):
        a = Client(self.d.rtmp_port)
        self.assertEqual(a.publish("k-primary"), "NetStream.Publish.Start")
        for t, ts, body in list(flv_tags(CLIP))[:10]:
            a.send_tag(t, ts, body)
        time.sleep(1.3)  # publisher_takeover = 1: the dead connection lingers, silent
        b = Client(self.d.rtmp_port)
        self.assertEqual(b.publish("k-primary"), "NetStream.Publish.Start")
        self.assertIn("replaced by a new publisher", self.d.log())
        a.close()
        b.close()

    def test_stalled_publisher_dropped(self):
        a = Client(self.d.rtmp_port)
        self.assertEqual(a.publish("k-primary"), "NetStream.Publish.Start")
        for t, ts, body in list(flv_tags(CLIP))[:20]:
            a.send_tag(t, ts, body)
        self.assertTrue(wait_for(lambda: channel(self.d)["live"], 5))
        # idle_timeout = 2: nothing more is sent
        self.assertTrue(wait_for(lambda: not channel(self.d)["live"], 5), self.d.log())
        self.assertIn("idle timeout", self.d.log())
        a.close()

    def test_other_codec_refused_by_name(self):
        p = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine", "-t", "1",
                            "-c:a", "libmp3lame", "-f", "flv", f"{self.d.rtmp_url}/k-primary"],
                           capture_output=True, text=True, timeout=30)
        self.assertTrue(wait_for(lambda: 'codec="MP3"' in self.d.log(), 5), self.d.log())
        self.assertIn("publish refused: unsupported audio", self.d.log())
        self.assertFalse(channel(self.d)["live"])

    def test_max_connections(self):
        # A table full of connections that have not published or played
        # makes room for a newcomer: the oldest one is closed, not the newcomer.
        socks = [socket.create_connection(("127.0.0.1", self.d.rtmp_port)) for _ in range(12)]
        self.assertTrue(wait_for(lambda: self.d.metric("galarelay_rtmp_connections") == 12, 5))
        extra = socket.create_connection(("127.0.0.1", self.d.rtmp_port))
        socks[0].settimeout(5)
        self.assertEqual(socks[0].recv(10), b"")  # closed at once
        self.assertIn("evicted: max_connections reached", self.d.log())
        # an encoder gets in while the table is still full
        a = Client(self.d.rtmp_port)
        self.assertEqual(a.publish("k-primary"), "NetStream.Publish.Start")
        a.close()
        for s in socks + [extra]:
            s.close()
        # the slots free up again
        self.assertTrue(wait_for(lambda: self.d.metric("galarelay_rtmp_connections") == 0, 5))

    def test_garbage_and_truncated_handshakes(self):
        port = self.d.rtmp_port
        socks = []
        for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x03" + bytes(700), b"\x06" + os.urandom(1536),
                        os.urandom(5000), b""):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(payload)
            socks.append(s)
        # a valid handshake followed by garbage chunks
        c = Client(port)
        c.handshake()
        c.s.sendall(os.urandom(20000))
        socks.append(c.s)
        # every one of them is closed by the daemon within the handshake
        # timeout (1 s): an orderly close (recv gives b"") or a reset (the
        # daemon closed with our garbage unread) both count; still open
        # after 5 s (socket.timeout) fails
        for i, s in enumerate(socks):
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except socket.timeout:
                self.fail(f"connection {i} still open 5 s after its bad handshake\n{self.d.log()}")
            finally:
                s.close()
        status, _, body = self.d.get("/healthz")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(self.d.metric("galarelay_rtmp_handshake_failures_total"), 4)
        # and the daemon still takes a publisher
        a = Client(port)
        self.assertEqual(a.publish("k-primary"), "NetStream.Publish.Start")
        a.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
