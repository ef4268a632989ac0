"""RTMP clients that misbehave on purpose: one that floods requests and
never reads its answers, one refused while its receive buffer is full.
Neither may grow the daemon without bound nor hold a connection slot."""
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, rss_kib  # noqa: E402
from test_rtmp_lib import Client, chunk, measure_rss_without_asan_quarantine, wait_for  # noqa: E402

measure_rss_without_asan_quarantine()

PING = chunk(2, 4, 0, 0, struct.pack(">HI", 6, 1))  # User Control: PingRequest


def flood(sock, seconds):
    """Send pings without reading until the server closes us or time is up.
    Returns True if the server closed the connection."""
    sock.setblocking(False)
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            sock.send(PING * 200)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return True
    return False


class Abuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(sections="[rtmp]\nidle_timeout = 60\nhandshake_timeout = 2\n"
                                "player_queue_bytes = 65536\nmax_connections = 4\n"
                                "[channel gala]\nkey = k1\n").start()

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.d.stop()
        assert code == 0, cls.d.log()

    def test_ping_flood_without_reading_is_closed(self):
        before = self.d.settled_rss_kib()
        c = Client(self.d.rtmp_port, rcvbuf=4096)
        c.connect()
        closed = flood(c.s, 10)
        grown = rss_kib(self.d.proc.pid) - before
        self.assertTrue(closed, "the daemon kept a client that never reads")
        self.assertLess(grown, 8 * 1024, f"RSS grew {grown} KiB")
        self.assertIn("does not read", self.d.log())

    def test_unknown_application_is_refused(self):
        # rtmp://HOST/lvie/KEY: a typo in the encoder's server URL is refused
        # with a reason in the log, not published by accident
        c = Client(self.d.rtmp_port)
        self.assertEqual(c.publish("k1", app="lvie"), "NetStream.Publish.BadName")
        c.close()
        self.assertIn('unknown application app="lvie"', self.d.log())
        c = Client(self.d.rtmp_port)
        self.assertEqual(c.publish("k1", app="live/"), "NetStream.Publish.Start")  # a trailing slash is fine
        c.close()
        self.assertTrue(wait_for(lambda: self.d.metric("galarelay_rtmp_connections") == 0, 8))

    def test_refused_while_not_reading_frees_its_slot(self):
        # Fill our receive buffer, then get refused: the daemon must not wait
        # forever to flush the refusal, or max_connections (4) slots run out.
        for round_ in range(6):
            c = Client(self.d.rtmp_port, rcvbuf=4096)
            c.connect()
            flood(c.s, 0.3)
            c.s.setblocking(True)
            c.s.settimeout(2)
            try:
                c.publish("wrong-key")
            except Exception:
                pass
            self.assertTrue(wait_for(lambda: self.d.metric("galarelay_rtmp_connections") == 0, 8),
                            f"round {round_}: the refused connection still holds its slot")
            c.s.close()
        Client(self.d.rtmp_port).connect()  # and a well-behaved client is served


if __name__ == "__main__":
    unittest.main(verbosity=2)
