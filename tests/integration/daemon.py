"""Start and stop the real galarelay daemon for integration tests.

Every test gets its own daemon on free loopback ports, its own state folder
and config file in a temporary directory, and its log kept for the failure
message. Standard library only, so the tests run on a bare Debian with
python3.
"""
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("GALARELAY_BIN", "galarelay")
SOURCE_DIR = os.environ.get("GALARELAY_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_DIR = os.environ.get("GALARELAY_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def requires(*tools):
    """Decorator for a TestCase class or one test method: the test fails
    (never skips) naming each missing tool. A tool is a command on the PATH
    or an absolute path."""
    def check():
        missing = [t for t in tools if not (shutil.which(t) or os.path.exists(t))]
        if missing:
            raise AssertionError(f"missing prerequisite(s): {', '.join(missing)} "
                                 f"(scripts/bootstrap.sh installs them)")

    def wrap(obj):
        if isinstance(obj, type):
            set_up = obj.setUp

            def setUp(self):
                check()
                set_up(self)
            obj.setUp = setUp
            return obj

        @functools.wraps(obj)
        def test(*args, **kwargs):
            check()
            return obj(*args, **kwargs)
        return test
    return wrap


def free_port():
    """A port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, method="GET", timeout=10, headers=None):
    """(status, headers dict with lower-case names, body bytes); never raises on HTTP errors."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


class Daemon:
    """One galarelay process. `sections` is extra INI text appended to the
    generated [server] section (channels, chat, …)."""

    def __init__(self, sections="", server_extra="", tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="galarelay-test-")
        self.http_port = free_port()
        self.rtmp_port = free_port()
        self.state_dir = os.path.join(self.tmp, "state")
        self.conf = os.path.join(self.tmp, "galarelay.conf")
        self.log_path = os.path.join(self.tmp, "daemon.log")
        self.sections = sections
        self.server_extra = server_extra
        self.proc = None
        self.killed = False
        self.write_config()

    def write_config(self, sections=None):
        if sections is not None:
            self.sections = sections
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write("[server]\n")
            f.write(f"http_listen = 127.0.0.1:{self.http_port}\n")
            f.write(f"rtmp_listen = 127.0.0.1:{self.rtmp_port}\n")
            f.write(f"state_dir = {self.state_dir}\n")
            f.write(self.server_extra)
            f.write("\n")
            f.write(self.sections)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def rtmp_url(self):
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live"

    def start(self, wait=True, timeout=15):
        self.killed = False
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "-c", self.conf], stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}\n{self.log()}")
            try:
                status, _, body = http(self.url + "/healthz", timeout=1)
                if status == 200 and body.strip() == b"ok":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon not healthy after {timeout}s\n{self.log()}")

    def get(self, path, **kw):
        return http(self.url + path, **kw)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig, wait; returns (exit code, seconds it took). A daemon
        stopped with SIGTERM or SIGINT exits 0, so any other status fails
        here, for every test: a sanitizer report at shutdown (a leak, a
        use-after-free in a _close path) makes it non-zero, as does a crash
        before the stop. A daemon killed with kill9() is exempt."""
        if self.proc is None or self.proc.poll() is not None:
            code = self.proc.returncode if self.proc else None
            if code not in (None, 0) and not self.killed:
                raise AssertionError(f"daemon exited on its own with {code} before the stop\n{self.log()}")
            return code, 0.0
        t0 = time.time()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            raise AssertionError(f"daemon did not exit within {timeout}s\n{self.log()}")
        finally:
            self.logf.close()
        if code != 0 and sig in (signal.SIGTERM, signal.SIGINT):
            raise AssertionError(f"daemon exited with {code} after {signal.Signals(sig).name} (want 0; "
                                 f"a sanitizer report is in its log)\n{self.log()}")
        return code, time.time() - t0

    def kill9(self):
        self.killed = True
        self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-8000:]
        except OSError:
            return ""

    def wait_slate_ready(self, timeout=60):
        """Each channel encodes its slate in a thread at start: tens of MiB
        of encoder memory for a moment (seconds of it under ASan). A test
        that bounds the daemon's memory takes its baseline after that."""
        deadline = time.time() + timeout
        while "slate: ready" not in self.log() and "slate on channel" in self.log():
            assert time.time() < deadline, "slate never ready\n" + self.log()
            time.sleep(0.1)

    def settled_rss_kib(self, timeout=60):
        """The daemon's idle RSS as the baseline of a memory bound: once the
        slate is ready and RSS has held still for a second."""
        deadline = time.time() + timeout
        self.wait_slate_ready(timeout)
        samples = []
        while True:
            samples = (samples + [rss_kib(self.proc.pid)])[-5:]
            if len(samples) == 5 and max(samples) - min(samples) <= 256:
                return samples[-1]
            assert time.time() < deadline, f"RSS never settled: {samples}"
            time.sleep(0.25)

    def metric(self, name, labels=None):
        """The value of one Prometheus sample (labels: exact label text, e.g. 'kind="http"')."""
        _, _, body = self.get("/metrics")
        want = name + ("{" + labels + "}" if labels else "")
        for line in body.decode().splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, *exc):
        # A clean exit from the block stops the daemon as an operator
        # would (and checks its exit status); a failure inside it is the
        # one to report, so then the daemon is only killed.
        if exc_type is None:
            self.stop()
        elif self.proc and self.proc.poll() is None:
            self.kill9()
