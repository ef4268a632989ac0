"""The daemon's foundation, black-box: CLI, HTTP endpoints, static files,
signals (SIGTERM exit, SIGHUP reload), the demo-secret refusal."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import BIN, Daemon, free_port  # noqa: E402


def run(*args, **kw):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=20, **kw)


class Cli(unittest.TestCase):
    def test_version_and_help(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^galarelay \d+\.\d+\.\d+")
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check", r.stdout)
        r = run("--bogus")
        self.assertEqual(r.returncode, 2)

    def test_check_ok(self):
        d = Daemon()
        r = run("--check", "-c", d.conf)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_names_file_and_line(self):
        d = Daemon(sections="[channel a]\nkey = k1\nbogus = 1\n")
        r = run("--check", "-c", d.conf)
        self.assertEqual(r.returncode, 2)
        # [server] has 4 lines + blank; [channel a] is line 6, bogus line 8
        self.assertIn(f"{d.conf}:8: unknown key \"bogus\"", r.stderr)

    def test_shipped_config_checks(self):
        src = os.environ.get("GALARELAY_SOURCE_DIR")
        r = run("--check", "-c", os.path.join(src, "config", "galarelay.conf"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_demo_secrets_refused_beyond_loopback(self):
        d = Daemon()
        with open(d.conf, "w") as f:
            f.write(f"[server]\nhttp_listen = 0.0.0.0:{free_port()}\nstate_dir = {d.state_dir}\n")
        r = run("-c", d.conf)
        self.assertEqual(r.returncode, 2)
        self.assertIn("demo stream key", r.stderr)
        self.assertIn("demo moderator token", r.stderr)

    def test_port_in_use_fails_clearly(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            d = Daemon()
            with open(d.conf, "w") as f:
                f.write(f"[server]\nhttp_listen = 127.0.0.1:{port}\nrtmp_listen = 127.0.0.1:{free_port()}\n"
                        f"state_dir = {d.state_dir}\n")
            r = run("-c", d.conf)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("cannot listen", r.stderr)


class Http(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # trusted_proxy: the HLS viewer count tells viewers apart by X-Forwarded-For
        cls.d = Daemon(sections="[channel gala]\nkey = k-gala\ntitle = 春晚\n[channel news]\nkey = k-news\n",
                       server_extra="trusted_proxy = 127.0.0.1\n")
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        code, took = cls.d.stop()
        assert code == 0, cls.d.log()

    def test_healthz(self):
        status, headers, body = self.d.get("/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_metrics(self):
        status, headers, body = self.d.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        text = body.decode()
        for name in ("galarelay_build_info{", "galarelay_uptime_seconds ", "galarelay_config_reloads_total{",
                     "galarelay_open_connections{kind=\"http\"}", "galarelay_open_connections{kind=\"websocket\"} ",
                     "galarelay_open_connections{kind=\"rtmp\"} ", "galarelay_hls_viewers{channel=\"news\"} ",
                     "galarelay_hls_viewers_saturated{channel=\"gala\"} 0"):
            self.assertIn(name, text)
        # every sample line parses as NAME{labels} VALUE
        for line in text.splitlines():
            if line and not line.startswith("#"):
                float(line.rsplit(" ", 1)[1])

    def test_channels_api(self):
        status, headers, body = self.d.get("/api/v1/channels")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        chans = json.loads(body)["channels"]
        self.assertEqual([c["name"] for c in chans], ["gala", "news"])
        self.assertEqual(chans[0]["title"], "春晚")
        self.assertIn("live", chans[0])
        self.assertNotIn("key", json.dumps(chans))  # secrets never leave
        self.assertNotIn("k-gala", json.dumps(chans))

    def test_hls_viewers(self):
        # two viewers behind the trusted proxy (the last X-Forwarded-For
        # entry is the one it saw), one of them twice; the slate makes the
        # playlist exist, and a fetch counts whatever it is answered
        for xff in ("203.0.113.7", "198.51.100.1, 203.0.113.8", "10.0.0.1,203.0.113.7"):
            status, _, _ = self.d.get("/hls/gala/master.m3u8", headers={"X-Forwarded-For": xff})
            self.assertIn(status, (200, 404, 503))
        self.assertEqual(self.d.get("/hls/nope/master.m3u8")[0], 404)  # no such channel: not counted
        chans = {c["name"]: c for c in json.loads(self.d.get("/api/v1/channels")[2])["channels"]}
        self.assertEqual((chans["gala"]["viewers"], chans["news"]["viewers"]), (2, 0))
        self.assertEqual(self.d.metric("galarelay_hls_viewers", 'channel="gala"'), 2)
        self.assertEqual(self.d.metric("galarelay_hls_viewers", 'channel="news"'), 0)
        self.assertEqual(self.d.metric("galarelay_hls_viewers_saturated", 'channel="gala"'), 0)

    def test_index_and_pages(self):
        for path in ("/", "/watch/gala", "/moderate/gala"):
            status, headers, body = self.d.get(path)
            self.assertEqual(status, 200, path)
            self.assertTrue(headers["content-type"].startswith("text/html"), path)
            self.assertIn(b"<html", body.lower(), path)

    def test_not_found_and_no_listing(self):
        for path in ("/nope", "/css/", "/watch/", "/watch/a/b", "/%2e%2e/etc/passwd"):
            status, _, _ = self.d.get(path)
            self.assertEqual(status, 404, path)

    def test_path_traversal_on_raw_socket(self):
        for raw in (b"/../../../../etc/passwd", b"/..%2f..%2fetc/passwd", b"/./index.html", b"//etc/passwd"):
            with socket.create_connection(("127.0.0.1", self.d.http_port), timeout=5) as s:
                s.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                resp = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    resp += chunk
            self.assertNotIn(b"root:", resp, raw)
            self.assertFalse(resp.startswith(b"HTTP/1.1 200") and b"passwd" in raw, raw)

    def test_head(self):
        status, headers, body = self.d.get("/healthz", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")

    def test_keepalive_many_requests(self):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.d.http_port, timeout=5)
        for _ in range(50):
            c.request("GET", "/healthz")
            r = c.getresponse()
            self.assertEqual(r.read(), b"ok\n")
        c.close()


class Systemd(unittest.TestCase):
    """Type=notify: READY=1 once the listeners are bound, the watchdog petted
    from the loop, STOPPING=1 on the way out (a fake NOTIFY_SOCKET)."""

    def test_notify_ready_watchdog_stopping(self):
        import tempfile
        sock_path = os.path.join(tempfile.mkdtemp(prefix="galarelay-notify-"), "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(10)
        d = Daemon()
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="400000")
        d.logf = open(d.log_path, "ab")
        d.proc = subprocess.Popen([BIN, "-c", d.conf], stdout=d.logf, stderr=subprocess.STDOUT, env=env)
        try:
            messages = []
            deadline = time.time() + 10
            while time.time() < deadline and sum("WATCHDOG=1" in m for m in messages) < 2:
                messages.append(sock.recv(4096).decode())
            self.assertIn("READY=1", messages[0])
            # READY means the HTTP listener is bound: the first request succeeds
            self.assertEqual(d.get("/healthz")[0], 200)
            self.assertGreaterEqual(sum("WATCHDOG=1" in m for m in messages), 2, messages)
            code, _ = d.stop()
            self.assertEqual(code, 0, d.log())
            rest = []
            sock.settimeout(1)
            try:
                while True:
                    rest.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
            self.assertTrue(any("STOPPING=1" in m for m in rest), rest)
        finally:
            sock.close()
            if d.proc.poll() is None:
                d.proc.kill()


class Signals(unittest.TestCase):
    def test_sigterm_exits_zero_quickly(self):
        d = Daemon().start()
        # a connection left open must not hold the stop
        s = socket.create_connection(("127.0.0.1", d.http_port))
        code, took = d.stop(signal.SIGTERM)
        s.close()
        self.assertEqual(code, 0, d.log())
        self.assertLess(took, 5.0)
        self.assertIn("stopped exit=0", d.log())

    def test_sigint_exits_zero(self):
        d = Daemon().start()
        code, took = d.stop(signal.SIGINT)
        self.assertEqual(code, 0, d.log())

    def test_sighup_reload_good_and_bad(self):
        d = Daemon(sections="[channel a]\nkey = k-a\n").start()
        try:
            d.write_config("[channel a]\nkey = k-a\n[channel b]\nkey = k-b\n")
            d.send_signal(signal.SIGHUP)
            for _ in range(100):
                if d.metric("galarelay_config_reloads_total", 'result="ok"') == 1:
                    break
                time.sleep(0.05)
            self.assertEqual(d.metric("galarelay_config_reloads_total", 'result="ok"'), 1)
            names = [c["name"] for c in json.loads(d.get("/api/v1/channels")[2])["channels"]]
            self.assertEqual(names, ["a", "b"])
            # a broken file is refused whole: the running config stays
            d.write_config("[channel a]\nkey = k-a\n[channel b]\nkey = k-b\nnonsense\n")
            d.send_signal(signal.SIGHUP)
            for _ in range(100):
                if d.metric("galarelay_config_reloads_total", 'result="failed"') == 1:
                    break
                time.sleep(0.05)
            self.assertEqual(d.metric("galarelay_config_reloads_total", 'result="failed"'), 1)
            names = [c["name"] for c in json.loads(d.get("/api/v1/channels")[2])["channels"]]
            self.assertEqual(names, ["a", "b"])
            self.assertIn("reload failed", d.log())
        finally:
            code, _ = d.stop()
        self.assertEqual(code, 0, d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
