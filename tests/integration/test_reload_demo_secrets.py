"""SIGHUP keeps the demo-secret guard.

The demo stream key and moderator token are public (they are in the
README): a daemon listening beyond loopback refuses them at start. A reload
must refuse them the same way. The daemon here listens on 0.0.0.0 with
secret keys; its config file is then rewritten with the demo key and the
demo moderator token, once saying 127.0.0.1 (listen addresses change only
at restart, so the file's own listen lines prove nothing) and once with no
listen lines at all (the loopback defaults), and SIGHUP is sent each time:
the reload is refused and logged, the demo key cannot publish, and the
secret key still can."""
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon  # noqa: E402
from test_rtmp_lib import Client, wait_for  # noqa: E402

SECRET = "[chat]\nmoderator_tokens = a-secret-moderator\n\n[channel gala]\nkey = a-secret-key\n"
DEMO = "[chat]\nmoderator_tokens = demo-moderator\n\n[channel gala]\nkey = demo-key\n"
REFUSED = "reload failed: kept the running config"


class PublicDaemon(Daemon):
    """Listens on every interface; `listen` (a format of the port) is what
    the config file says, which after the start is only what a reload reads."""

    listen = "0.0.0.0:{}"

    def write_config(self, sections=None):
        if sections is not None:
            self.sections = sections
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write("[server]\n")
            if self.listen:
                f.write(f"http_listen = {self.listen.format(self.http_port)}\n")
                f.write(f"rtmp_listen = {self.listen.format(self.rtmp_port)}\n")
            f.write(f"state_dir = {self.state_dir}\n\n")
            f.write(self.sections)


def publish(port, key):
    c = Client(port)
    try:
        return c.publish(key)
    finally:
        c.close()


class ReloadDemoSecrets(unittest.TestCase):
    def setUp(self):
        self.d = PublicDaemon(sections=SECRET).start()

    def tearDown(self):
        self.d.stop()

    def reload_with_demo_secrets(self, listen):
        d = self.d
        refusals = d.log().count(REFUSED)
        failed = d.metric("galarelay_config_reloads_total", 'result="failed"')
        d.listen = listen
        d.write_config(DEMO)
        d.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: d.log().count(REFUSED) > refusals or "config reloaded" in d.log(),
                                 timeout=10), f"the reload left no trace\n{d.log()}")
        log = d.log()
        self.assertNotIn("config reloaded", log, f"a reload brought the demo secrets beyond loopback\n{log}")
        self.assertIn("why=demo-secrets-beyond-loopback", log)
        self.assertIn("keeps a demo stream key while listening beyond loopback", log)
        self.assertIn("keeps the demo moderator token while listening beyond loopback", log)
        self.assertEqual(publish(d.rtmp_port, "demo-key"), "NetStream.Publish.BadName")
        self.assertEqual(publish(d.rtmp_port, "a-secret-key"), "NetStream.Publish.Start")
        self.assertEqual(d.metric("galarelay_config_reloads_total", 'result="failed"'), failed + 1)

    def test_file_says_loopback(self):
        self.reload_with_demo_secrets("127.0.0.1:{}")

    def test_file_has_no_listen_lines(self):
        self.reload_with_demo_secrets(None)


if __name__ == "__main__":
    unittest.main(verbosity=2)
