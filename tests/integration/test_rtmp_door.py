"""The door stays open for the broadcaster: no number of players, idle or
half-open RTMP connections, from one address or many, keeps a publisher with
a valid key out. Idle connections (handshake and connect, then nothing) from
one address and from many, a full audience of players, the deadline to
publish or play, the per-address cap, players of an offline channel, and the
memory ceiling, each against the real daemon."""
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon  # noqa: E402
from test_rtmp_lib import Client, amf_num, amf_obj, amf_str, chunk, flv_tags, wait_for  # noqa: E402

TMP = tempfile.mkdtemp(prefix="galarelay-door-")
CLIP = os.path.join(TMP, "clip.flv")
CONNECT = chunk(3, 20, 0, 0, amf_str("connect") + amf_num(1) + amf_obj({"app": "live", "tcUrl": "rtmp://x/live"}))


def setUpModule():
    if not shutil.which("ffmpeg"):
        raise RuntimeError("ffmpeg is required (scripts/bootstrap.sh installs it)")
    # 1100 idle clients and the daemon's side of them: more than the usual 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2400, "RLIMIT_NOFILE too low for 1100 clients"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "64k", "-f", "flv", CLIP], check=True, timeout=60)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def idle(port, src="127.0.0.1"):
    """Handshake and connect, then nothing: what a flood holds open. None
    when the daemon closed it before the handshake was done."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"\x03" + bytes(1536))
        got = b""
        while len(got) < 1 + 2 * 1536:
            d = s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            got += d
        s.sendall(got[1:1537] + CONNECT)
        return s
    except OSError:
        s.close()
        return None


def closed_by_daemon(s, timeout=5):
    """True once the daemon has closed s (EOF or reset)."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def channel(d, name="gala"):
    _, _, body = d.get("/api/v1/channels")
    return next((c for c in json.loads(body)["channels"] if c["name"] == name), None)


def ffmpeg_publish(d, key):
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                             "-i", CLIP, "-c", "copy", "-f", "flv", f"{d.rtmp_url}/{key}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def publish_tags(d, key, n=40):
    """A scripted publisher that sends n tags of the clip and stays open."""
    c = Client(d.rtmp_port)
    status = c.publish(key)
    assert status == "NetStream.Publish.Start", status
    for t, ts, body in list(flv_tags(CLIP))[:n]:
        c.send_tag(t, ts, body)
    return c


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


class DaemonCase(unittest.TestCase):
    SECTIONS = ""
    SERVER = ""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(sections=cls.SECTIONS, server_extra=cls.SERVER).start()

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.d.stop()
        assert code == 0, cls.d.log()

    def reason(self, name, reason):
        return self.d.metric(name, f'reason="{reason}"')


def close_all(socks):
    for s in socks:
        if s:
            s.close()


class IdleFlood(DaemonCase):
    # Long deadlines: the door must hold without the idle ones timing out.
    SECTIONS = "[rtmp]\nhandshake_timeout = 30\nidle_timeout = 60\n\n[channel gala]\nkey = door-key\n"

    def assert_encoder_live_within_3s(self, held):
        """ffmpeg publishes the key while `held` idle connections stay open."""
        t0 = time.time()
        p = ffmpeg_publish(self.d, "door-key")
        try:
            live = wait_for(lambda: channel(self.d)["live"], 3)
            took = time.time() - t0
            self.assertTrue(live, f"the encoder was kept out by {held}\n" + self.d.log())
            self.assertLess(took, 3.5)
        finally:
            stop(p)


class IdleFloodOneAddress(IdleFlood):
    def test_1100_idle_clients_then_ffmpeg_is_live_within_3s(self):
        socks = [idle(self.d.rtmp_port) for _ in range(1100)]
        self.addCleanup(close_all, socks)
        self.assert_encoder_live_within_3s("1100 idle connections from its own address")
        self.assertLessEqual(self.d.metric("galarelay_rtmp_unauthenticated"), 16)
        self.assertGreaterEqual(self.reason("galarelay_rtmp_evicted_total", "per_address"), 1100 - 16)
        self.assertIn("reached max_unauthenticated_per_address", self.d.log())


class IdleFloodManyAddresses(IdleFlood):
    SECTIONS = IdleFlood.SECTIONS.replace("[rtmp]\n", "[rtmp]\nmax_connections = 200\n")

    def test_full_table_from_many_addresses_then_ffmpeg_is_live(self):
        # 30 addresses of 127.0.1.0/24, 10 idle connections each (under the
        # per-address cap): 300 for a table of 200
        socks = [idle(self.d.rtmp_port, f"127.0.1.{1 + i % 30}") for i in range(300)]
        self.addCleanup(close_all, socks)
        self.assertEqual(self.d.metric("galarelay_rtmp_connections"), 200)
        self.assert_encoder_live_within_3s("a full table of idle connections from 30 addresses")
        # the encoder's connection took one idle one's place, then left
        self.assertEqual(self.d.metric("galarelay_rtmp_unauthenticated"), 199)
        self.assertGreaterEqual(self.reason("galarelay_rtmp_evicted_total", "max_connections"), 100)


class Limits(DaemonCase):
    # 3 stream keys + a reserve of 4: at most 30 - 3 - 4 = 23 players
    SECTIONS = ("[rtmp]\nmax_connections = 30\npublisher_reserve = 4\nmax_unauthenticated_per_address = 3\n"
                "handshake_timeout = 2\nidle_timeout = 60\noffline_player_timeout = 1\n\n"
                "[channel gala]\nkey = door-key\nbackup_key = door-backup\n\n[channel quiet]\nkey = quiet-key\n")

    def test_players_cannot_fill_the_publisher_reserve(self):
        pub = publish_tags(self.d, "door-key")
        self.assertTrue(wait_for(lambda: channel(self.d)["live"], 5), self.d.log())
        players = []
        for _ in range(30):
            c = Client(self.d.rtmp_port)
            try:
                c.play("gala")
                c.wait_status()  # Play.Reset: the daemon has decided
            except OSError:
                pass
            players.append(c)
        try:
            # the backup encoder, and the quiet channel's, still get in
            for key in ("door-backup", "quiet-key"):
                b = Client(self.d.rtmp_port)
                players.append(b)
                self.assertEqual(b.publish(key), "NetStream.Publish.Start", self.d.log())
            self.assertEqual(self.d.metric("galarelay_rtmp_publishers"), 3)
            # quiet has a third key: 30 - 3 - 4 = 23 players at most
            self.assertEqual(self.d.metric("galarelay_rtmp_player_limit"), 23)
            self.assertEqual(self.d.metric("galarelay_rtmp_players"), 23)
            self.assertEqual(self.reason("galarelay_rtmp_refused_total", "player_limit"), 7)
            self.assertIn("play refused: player limit reached", self.d.log())
        finally:
            for c in players + [pub]:
                c.close()
            self.assertTrue(wait_for(lambda: self.d.metric("galarelay_rtmp_connections") == 0, 5))

    def test_idle_after_handshake_closed_at_the_deadline(self):
        before = self.reason("galarelay_rtmp_timeouts_total", "publish_or_play")
        s = idle(self.d.rtmp_port)
        t0 = time.time()
        self.assertTrue(closed_by_daemon(s, 6), "an idle connection outlived handshake_timeout")
        self.assertLess(time.time() - t0, 4)
        s.close()
        self.assertEqual(self.reason("galarelay_rtmp_timeouts_total", "publish_or_play"), before + 1)
        self.assertIn("no publish or play within handshake_timeout", self.d.log())

    def test_per_address_cap(self):
        before = self.reason("galarelay_rtmp_evicted_total", "per_address")
        mine = [idle(self.d.rtmp_port, "127.0.0.1") for _ in range(5)]
        other = [idle(self.d.rtmp_port, "127.0.0.2") for _ in range(3)]
        self.addCleanup(close_all, mine + other)
        self.assertTrue(all(mine) and all(other))
        # the two oldest of 127.0.0.1 made room; 127.0.0.2 is untouched
        self.assertTrue(closed_by_daemon(mine[0], 1) and closed_by_daemon(mine[1], 1))
        self.assertEqual(self.d.metric("galarelay_rtmp_unauthenticated"), 6)
        self.assertEqual(self.reason("galarelay_rtmp_evicted_total", "per_address"), before + 2)
        # and a publisher from the capped address gets in
        c = Client(self.d.rtmp_port)
        self.assertEqual(c.publish("quiet-key"), "NetStream.Publish.Start")
        c.close()

    def test_player_of_an_offline_channel_times_out(self):
        before = self.reason("galarelay_rtmp_timeouts_total", "offline_player")
        c = Client(self.d.rtmp_port)
        c.play("quiet")
        t0 = time.time()
        self.assertTrue(closed_by_daemon(c.s, 5), "a player waited forever for an offline channel")
        self.assertGreater(time.time() - t0, 0.8)
        c.close()
        self.assertEqual(self.reason("galarelay_rtmp_timeouts_total", "offline_player"), before + 1)
        self.assertIn("channel not live for offline_player_timeout", self.d.log())


class MemoryCeiling(DaemonCase):
    # 1 MiB: the daemon is over its ceiling from the first reading
    SERVER = "memory_limit_mb = 1\n"
    SECTIONS = "[rtmp]\npublisher_reserve = 4\nhandshake_timeout = 30\n\n[channel gala]\nkey = door-key\n"

    def test_players_refused_idle_held_to_reserve_publisher_admitted(self):
        self.assertEqual(self.d.metric("galarelay_memory_over_limit"), 1)
        c = Client(self.d.rtmp_port)
        c.play("gala")
        statuses = []
        try:
            for _ in range(4):
                statuses.append(c.wait_status(5))
        except OSError:
            pass
        c.close()
        self.assertIn("NetStream.Play.StreamNotFound", statuses)
        self.assertEqual(self.reason("galarelay_rtmp_refused_total", "memory"), 1)
        self.assertIn("play refused: over the memory ceiling", self.d.log())
        socks = [idle(self.d.rtmp_port, f"127.0.2.{i}") for i in range(1, 8)]
        self.addCleanup(close_all, socks)
        self.assertEqual(self.d.metric("galarelay_rtmp_unauthenticated"), 4)
        self.assertEqual(self.reason("galarelay_rtmp_evicted_total", "memory"), 3)
        pub = publish_tags(self.d, "door-key", 10)
        self.assertEqual(self.d.metric("galarelay_rtmp_publishers"), 1)
        pub.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
