"""Show-night drill: the operator reloads the config (SIGHUP) mid-show.

docs/protocol.md: SIGHUP reloads the reloadable parts of the config (channels and their
keys, chat limits, …) "without dropping publishers or viewers". While an
ffmpeg encoder publishes in real time, a viewer polls the LL-HLS media
playlist every 200 ms (recording each new part, as test_drill_failover.py
does) and a chat viewer (node + the npm `ws` client, as the chat tests use)
is connected:

- The config is rewritten (a second channel added, the channel's title and
  a chat limit changed) and SIGHUP sent: the reload is logged as applied;
  the publisher stays connected (same connection, feed not restarted, HLS
  timeline not restarted, ffmpeg still running); parts keep arriving at
  least every second across the reload; the new channel is in
  /api/v1/channels and takes a publisher; the new chat limit applies to the
  connected chat viewer, who stays connected.
- A broken config and SIGHUP: the reload is refused and logged (file:line),
  the running config is kept (both channels, the new chat limit), and again
  nothing is dropped.

Kept cheap for two shared cores: 320x180 at 20 fps, ultrafast, one small
rung (the source is passed through above it)."""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drill_common import (CHANNEL, Daemon, channel_live, feed_on_air, http, renditions,  # noqa: E402
                          require, stop_proc, try_media_playlist, wait_until)
from test_drill_failover import POLL, PartWatcher, encoder  # noqa: E402
from test_rtmp_lib import Client  # noqa: E402

KEY = "reload-key"
NEW_CHANNEL = "encore"
NEW_KEY = "encore-key"
MAX_PART_GAP = 1.0 + POLL + 0.1  # "a part at least every second", as a 200 ms poll can see it
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONG = "x" * 30  # a comment the first chat limit takes and the second refuses

RUNG = "[rung 144p]\nheight = 144\nvideo_bitrate = 150\npreset = ultrafast\n"


def sections(title, max_comment_length, extra_channel=""):
    return (f"[chat]\nmax_comment_length = {max_comment_length}\nuser_burst = 20\n\n"
            f"[channel {CHANNEL}]\nkey = {KEY}\ntitle = {title}\n\n{extra_channel}{RUNG}")


BEFORE = sections("Before the reload", 200)
AFTER = sections("After the reload", 20, f"[channel {NEW_CHANNEL}]\nkey = {NEW_KEY}\ntitle = Encore\n\n")
# A typo in a key: the whole file is refused. Were it applied, the channel
# "encore" would be gone and the chat limit back to 200.
BROKEN = sections("Broken", 200).replace("user_burst = 20\n", "user_burst = 20\nmax_coment_length = 5\n")

# The chat viewer: lines on stdin are sent as text frames; each frame
# received is printed as one line; the close (code) too.
CHAT_CLIENT = r"""
import WebSocket from 'ws';
import { createInterface } from 'node:readline';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const ws = new WebSocket(process.argv[1]);
ws.on('open', () => {
  out({ type: '_open' });
  createInterface({ input: process.stdin }).on('line', (l) => ws.send(l)).on('close', () => ws.close());
});
ws.on('message', (d) => out(JSON.parse(d.toString())));
ws.on('error', (e) => out({ type: '_error', message: String(e) }));
ws.on('close', (code, reason) => { out({ type: '_close', code, reason: reason.toString() }); process.exit(0); });
"""


class ChatViewer:
    """A websocket chat viewer in a node child process."""

    def __init__(self, url):
        self.proc = subprocess.Popen(
            ["sh", os.path.join(TESTS_DIR, "integration", "chat_run.sh"), "--input-type=module", "-e",
             CHAT_CLIENT, url], cwd=TESTS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1)
        self.messages = []
        self.inbox = queue.Queue()
        self.seq = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                m = {"type": "_garbage", "line": line}
            self.messages.append(m)
            self.inbox.put(m)

    def next(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"chat viewer: timed out; got {self.messages[-10:]}\n"
                                     f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}")
            try:
                m = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if m.get("type") == "_close":
                raise AssertionError(f"chat viewer disconnected: {m}")
            if pred(m):
                return m

    def request(self, obj):
        self.seq += 1
        nonce = f"n{self.seq}"
        self.proc.stdin.write(json.dumps({**obj, "nonce": nonce}) + "\n")
        self.proc.stdin.flush()
        return self.next(lambda m: m.get("nonce") == nonce and m.get("type") in ("ack", "error"))

    def closed(self):
        return [m for m in self.messages if m.get("type") in ("_close", "_error")]

    def close(self):
        stop_proc(self.proc, signal.SIGTERM)


class ReloadDrill(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("ffmpeg", "node")

    def setUp(self):
        self.d = Daemon(sections=BEFORE)
        self.d.start()
        self.procs = []
        self.watcher = None
        self.chat = None

    def tearDown(self):
        if self.watcher:
            self.watcher.stop_flag.set()
            self.watcher.join(5)
        if self.chat:
            self.chat.close()
        for p in self.procs:
            stop_proc(p, signal.SIGKILL)
        code, _ = self.d.stop()
        self.assertEqual(code, 0, self.d.log())

    def full_log(self):
        with open(self.d.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def channels(self):
        status, _, body = http(f"{self.d.url}/api/v1/channels", timeout=5)
        self.assertEqual(status, 200, body)
        return {c["name"]: c for c in json.loads(body)["channels"]}

    def metric(self, result):
        return self.d.metric("galarelay_config_reloads_total", f'result="{result}"')

    def hup(self, config, logged):
        """Write the config, SIGHUP, wait for the log line; the time sent."""
        self.d.write_config(config)
        n = self.full_log().count(logged)
        t = time.monotonic()
        self.d.send_signal(signal.SIGHUP)
        wait_until(f"{logged!r} logged after SIGHUP", lambda: self.full_log().count(logged) > n, 5,
                   interval=0.05, log=self.d.log)
        return t

    def assert_nothing_dropped(self, what, t_hup, pub, feed_before):
        """Across the reload sent at t_hup: the same publisher connection
        still feeds the channel, its HLS timeline never restarted, parts kept
        coming, the chat viewer is connected."""
        time.sleep(max(0.0, t_hup + 3 - time.monotonic()))
        self.assertIsNone(pub.poll(), f"{what}: the encoder exited: "
                          f"{pub.stderr.read().decode()[-300:] if pub.poll() is not None else ''}")
        ch = channel_live(self.d.url)
        self.assertTrue(ch.get("live"), f"{what}: channel offline\n{self.d.log()}")
        self.assertFalse(ch.get("slate"), f"{what}: the slate is on air\n{self.d.log()}")
        self.assertEqual(ch.get("feed"), feed_before["feed"], f"{what}: feed changed\n{self.d.log()}")
        self.assertGreater(ch["uptime"], feed_before["uptime"], f"{what}: the feed restarted")
        log = self.full_log()
        self.assertNotIn(f"unpublish channel={CHANNEL}", log, f"{what}\n{self.d.log()}")
        self.assertEqual(log.count(f"timeline begins channel={CHANNEL} "), self.timelines,
                         f"{what}: the HLS timeline restarted\n{self.d.log()}")
        gap = self.watcher.max_gap(t_hup - 1, time.monotonic())
        print(f"{what}: longest wait for a part {gap:.2f}s", file=sys.stderr)
        self.assertLessEqual(gap, MAX_PART_GAP, f"{what}: arrivals {self.watcher.arrivals}\n{self.d.log()}")
        self.assertFalse(self.chat.closed(), f"{what}: chat viewer: {self.chat.closed()}\n{self.d.log()}")
        self.assertFalse(self.watcher.errors, self.watcher.errors)

    def test_sighup_under_traffic(self):
        pub = encoder(self.d.rtmp_url, KEY, 440)
        self.procs.append(pub)
        wait_until("the feed on air", lambda: feed_on_air(self.d.url), 15, log=self.d.log)
        status, _, body = http(f"{self.d.url}/hls/{CHANNEL}/master.m3u8")
        self.assertEqual(status, 200, body)
        rends = dict(renditions(body.decode()))
        rel = rends.get("144p") or next(iter(rends.values()))
        wait_until("the feed's parts in the playlist",
                   lambda: len(getattr(try_media_playlist(self.d.url, rel), "segments", [])) >= 2, 15,
                   log=self.d.log)
        self.watcher = PartWatcher(self.d.url, rel)
        self.watcher.start()

        self.chat = ChatViewer(f"ws://127.0.0.1:{self.d.http_port}/chat/{CHANNEL}")
        self.chat.next(lambda m: m.get("type") == "welcome", timeout=10)
        self.assertEqual(self.chat.request({"type": "hello", "name": "reload-viewer"})["type"], "ack")
        r = self.chat.request({"type": "comment", "text": LONG})
        self.assertEqual(r["type"], "ack", r)

        self.timelines = self.full_log().count(f"timeline begins channel={CHANNEL} ")
        time.sleep(1.5)
        feed_before = channel_live(self.d.url)
        self.assertEqual(feed_before["title"], "Before the reload")

        # 1. a good config: a channel added, a title and a chat limit changed
        t_hup = self.hup(AFTER, "config reloaded")
        self.assertRegex(self.d.log(), r"config reloaded path=\S+ channels=2")
        self.assertEqual(self.metric("ok"), 1)
        chans = self.channels()
        self.assertIn(NEW_CHANNEL, chans, chans.keys())
        self.assertFalse(chans[NEW_CHANNEL]["live"])
        self.assertEqual(chans[NEW_CHANNEL]["title"], "Encore")
        self.assertEqual(chans[CHANNEL]["title"], "After the reload")
        # the new chat limit applies to the viewer already connected
        r = self.chat.request({"type": "comment", "text": LONG})
        self.assertEqual((r["type"], r.get("code")), ("error", "too_long"), r)
        r = self.chat.request({"type": "comment", "text": "still here"})
        self.assertEqual(r["type"], "ack", r)
        # the new channel takes a publisher (its key is known)
        c = Client(self.d.rtmp_port)
        try:
            self.assertEqual(c.publish(NEW_KEY), "NetStream.Publish.Start", self.d.log())
        finally:
            c.close()
        self.assert_nothing_dropped("good reload", t_hup, pub, feed_before)

        # 2. a broken config: refused, the running one kept
        feed_before = channel_live(self.d.url)
        t_bad = self.hup(BROKEN, "reload failed: kept the running config")
        log = self.d.log()
        self.assertRegex(log, re.escape(self.d.conf) + r":\d+: .*max_coment_length", log)
        self.assertEqual(self.metric("failed"), 1)
        self.assertEqual(self.metric("ok"), 1)
        chans = self.channels()
        self.assertIn(NEW_CHANNEL, chans, "the broken config was applied (a channel removed)")
        self.assertEqual(chans[CHANNEL]["title"], "After the reload")
        r = self.chat.request({"type": "comment", "text": LONG})
        self.assertEqual((r["type"], r.get("code")), ("error", "too_long"), f"the chat limit changed: {r}")
        r = self.chat.request({"type": "comment", "text": "and still here"})
        self.assertEqual(r["type"], "ack", r)
        self.assert_nothing_dropped("broken reload", t_bad, pub, feed_before)


if __name__ == "__main__":
    unittest.main(verbosity=2)
