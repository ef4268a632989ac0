"""Log forgery: a client that puts a newline into a name the daemon logs
must not be able to write a log line of its own.

An RTMP encoder connects to the application "live\\nerror main: forged ..."
and a player asks for the channel "nochannel\\nerror main: forged ...":
both refusals are logged with the client's string, escaped (\\n), on one
line, and no line of the daemon's stderr starts with "error main: forged"."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon  # noqa: E402
from test_rtmp_lib import Client, wait_for  # noqa: E402

FORGED = "error main: forged"


class LogForgery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(sections="[channel gala]\nkey = forgery-key\n").start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def assert_not_forged(self, escaped):
        """The refusal is in the log, escaped, and forged nothing."""
        def forged():
            return [line for line in self.d.log().splitlines() if line.startswith(FORGED)]
        wait_for(lambda: escaped in self.d.log() or forged(), timeout=10)
        self.assertEqual(forged(), [], f"a client forged a log line\n{self.d.log()}")
        self.assertIn(escaped, self.d.log(), "the refusal naming the client's string was not logged")

    def test_rtmp_app_name(self):
        c = Client(self.d.rtmp_port)
        try:
            status = c.publish("forgery-key", app=f"live\n{FORGED} app=1")
            self.assertEqual(status, "NetStream.Publish.BadName")
        finally:
            c.close()
        self.assert_not_forged(f"app=\"live\\n{FORGED} app=1\"")

    def test_rtmp_play_name(self):
        c = Client(self.d.rtmp_port)
        try:
            c.play(f"nochannel\n{FORGED} play=1\r\x1b[1A")
            c.wait_status()
        finally:
            c.close()
        self.assert_not_forged(f"name=nochannel\\n{FORGED} play=1\\r\\x1b[1A")


if __name__ == "__main__":
    unittest.main(verbosity=2)
