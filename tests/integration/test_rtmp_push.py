"""Restream: a channel with push = rtmp://… forwards its active feed.

Two daemons: A pushes its channel to B. A player on B receives the same
packets (timestamps and bytes) as the source, from a keyframe on. With B
down, A keeps ingesting and serving its own players while the push retries
with backoff; once B is up the push connects by itself, and none of A's
log lines shows the target's stream key or its ?query (the URL is logged
as rtmp://HOST:PORT/APP/***). Also pushes to nginx-rtmp (a different
server implementation) when it is installed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, free_port, requires  # noqa: E402
from test_rtmp_lib import wait_for  # noqa: E402

TMP = tempfile.mkdtemp(prefix="galarelay-push-")
CLIP = os.path.join(TMP, "clip.flv")
NGINX_RTMP = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def setUpModule():
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "5",
                    "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "15", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "64k", "-f", "flv", CLIP], check=True, timeout=60)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def packets(src, timeout=40):
    r = subprocess.run(["ffprobe", "-v", "error", "-show_packets", "-show_data_hash", "MD5",
                        "-show_entries", "packet=codec_type,pts,dts,size,flags,data_hash", "-of", "json", src],
                       capture_output=True, text=True, timeout=timeout)
    out = {}
    for p in json.loads(r.stdout or "{}").get("packets", []):
        out.setdefault(p["codec_type"], []).append(
            (p.get("pts"), p.get("dts"), p["size"], p["flags"][0], p["data_hash"]))
    return out


def full_log(d):
    with open(d.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def live(d, name):
    _, _, body = d.get("/api/v1/channels")
    return any(c["name"] == name and c["live"] for c in json.loads(body)["channels"])


def source_config(target_url):
    return f"""
[rtmp]
push_retry_max = 1

[channel gala]
key = ka
push = {target_url}
"""


class Push(unittest.TestCase):
    def assert_suffix(self, got, want, kind):
        """got is want from some keyframe on (the push joins at a keyframe)."""
        self.assertTrue(got, f"no {kind} packets")
        self.assertIn(got[0], want)
        k = want.index(got[0])
        self.assertLess(k, len(want) // 2, f"{kind}: joined too late")
        self.assertEqual(got, want[k:k + len(got)])
        self.assertGreater(len(got), (len(want) - k) * 0.95)

    def test_push_to_second_relay_same_packets(self):
        b = Daemon(sections="[channel mirror]\nkey = kb\n").start()
        a = Daemon(sections=source_config(f"{b.rtmp_url}/kb")).start()
        try:
            got = {}
            t = threading.Thread(target=lambda: got.update(packets(f"{b.rtmp_url}/mirror")))
            t.start()
            self.assertTrue(wait_for(lambda: "play channel=mirror" in b.log(), 10))
            p = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", CLIP, "-c", "copy",
                                "-f", "flv", f"{a.rtmp_url}/ka"], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            t.join(40)
            want = packets(CLIP)
            self.assert_suffix(got.get("video"), want["video"], "video")
            self.assertEqual(got["video"][0][3], "K")
            self.assertIn("push publishing", a.log())
        finally:
            self.assertEqual(a.stop()[0], 0, a.log())
            self.assertEqual(b.stop()[0], 0, b.log())

    def test_target_down_ingest_unaffected_then_reconnects(self):
        b = Daemon(sections="[channel mirror]\nkey = mirror-sEcReT-key\n")  # ports chosen, not started
        a = Daemon(sections=source_config(f"{b.rtmp_url}/mirror-sEcReT-key?auth=tOkEn-42")).start()
        pub = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                                "-i", CLIP, "-c", "copy", "-f", "flv", f"{a.rtmp_url}/ka"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.assertTrue(wait_for(lambda: live(a, "gala"), 10), a.log())
            self.assertTrue(wait_for(lambda: "push failed" in a.log(), 5), a.log())
            # A's own players are served while the push fails
            r = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%+#30", "-select_streams", "v",
                                "-show_entries", "packet=pts", "-of", "csv", f"{a.rtmp_url}/gala"],
                               capture_output=True, text=True, timeout=20)
            self.assertGreaterEqual(r.stdout.count("packet"), 30, r.stderr)
            b.start()
            # backoff is capped at push_retry_max = 1 s
            self.assertTrue(wait_for(lambda: live(b, "mirror"), 6), a.log() + b.log())
            self.assertTrue(live(a, "gala"))
            # the key is the target's password: never in A's log
            self.assertTrue(wait_for(lambda: "push publishing" in full_log(a), 5), a.log())
            log = full_log(a)
            for line in ("push target", "push failed", "push publishing"):
                self.assertIn(f"{line} channel=gala url={b.rtmp_url}/***", log)
            self.assertNotIn("sEcReT", log)
            self.assertNotIn("tOkEn", log)
        finally:
            pub.kill()
            pub.wait()
            self.assertEqual(a.stop()[0], 0, a.log())
            if b.proc:
                self.assertEqual(b.stop()[0], 0, b.log())

    @requires("nginx", NGINX_RTMP)
    def test_push_to_nginx_rtmp(self):
        port = free_port()
        conf = os.path.join(TMP, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module {NGINX_RTMP};
daemon off; master_process off; worker_processes 1;
error_log {TMP}/nginx-error.log; pid {TMP}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}
""")
        ng = subprocess.Popen(["nginx", "-c", conf, "-p", TMP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a = Daemon(sections=source_config(f"rtmp://127.0.0.1:{port}/live/onward")).start()
        pub = None
        try:
            pub = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                                    "-i", CLIP, "-c", "copy", "-f", "flv", f"{a.rtmp_url}/ka"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.assertTrue(wait_for(lambda: "push publishing" in a.log(), 10), a.log())
            time.sleep(1)
            r = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%+#30", "-select_streams", "v",
                                "-show_entries", "packet=pts,flags", "-of", "csv",
                                f"rtmp://127.0.0.1:{port}/live/onward"],
                               capture_output=True, text=True, timeout=20)
            self.assertGreaterEqual(r.stdout.count("packet"), 30, r.stderr + a.log())
        finally:
            if pub:
                pub.kill()
                pub.wait()
            ng.terminate()
            ng.wait(10)
            self.assertEqual(a.stop()[0], 0, a.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
