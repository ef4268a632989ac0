"""Drill: the memory ceiling. Over server.memory_limit_mb the daemon refuses
newcomers (HTTP 503 with Retry-After, websocket handshakes refused) while
/healthz and /metrics keep answering; raising the ceiling by SIGHUP lets
newcomers in again."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon  # noqa: E402


def wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


class MemoryCeiling(unittest.TestCase):
    def test_newcomers_refused_over_the_ceiling(self):
        # 1 MiB is below any real RSS: the daemon is over from its first reading.
        d = Daemon(server_extra="memory_limit_mb = 1\n").start()
        try:
            self.assertEqual(d.metric("galarelay_memory_over_limit"), 1)
            self.assertGreater(d.metric("galarelay_memory_rss_bytes"), 1 << 20)
            status, headers, _ = d.get("/api/v1/channels")
            self.assertEqual(status, 503)
            self.assertIn("retry-after", headers)
            self.assertIn("over the memory ceiling", d.log())

            d.server_extra = ""  # the same file without the ceiling
            d.write_config()
            d.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: d.metric("galarelay_memory_over_limit") == 0),
                            "still over the ceiling after the reload")
            status, _, _ = d.get("/api/v1/channels")
            self.assertEqual(status, 200)
            self.assertIn("back under the memory ceiling", d.log())
        finally:
            code, _ = d.stop()
        self.assertEqual(code, 0, d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
