"""Show-night drill: an HTTP connection flood.

With [server] max_http_connections = 50, a channel on air (an ffmpeg
publisher), 200 keep-alive connections are opened at once (idle first,
then each sends a request):
  - every one of them gets an answer quickly, 200 or 503 (never a hang);
    the ones within the limit are served (200) and the ones past it get
    503: a daemon that answers 503 to everyone fails;
  - a viewer that was connected before the flood keeps getting /healthz
    answered (200, fast) on its existing keep-alive connection, and keeps
    getting the channel's playlists, parts and segments (200, fMP4 media);
  - the daemon's RSS stays bounded (64 MiB of growth; the same bound
    under ASan, whose quarantine is turned off for this daemon, so that
    freed memory is not counted);
  - once the flood closes, the connection gauge on /metrics falls back and
    fresh connections are served normally again.
"""
import http.client
import os
import selectors
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drill_common import (CHANNEL, Daemon, MediaPlaylist, channel_sections, publisher, renditions,  # noqa: E402
                          require, rss_kib, stop_proc, wait_master, wait_until)
from test_rtmp_lib import measure_rss_without_asan_quarantine  # noqa: E402

measure_rss_without_asan_quarantine()

LIMIT = 50
FLOOD = 200
ANSWER_WITHIN = 5.0  # seconds: anything slower counts as a hang


def read_answers(socks, request, deadline_s):
    """Send `request` on every socket and read one HTTP answer from each.
    Returns {sock: (status or 'closed' or 'timeout', seconds)}."""
    sel = selectors.DefaultSelector()
    bufs = {}
    t0 = time.monotonic()
    out = {}
    for s in socks:
        try:
            s.sendall(request)
        except OSError:
            out[s] = ("closed", 0.0)
            continue
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    while bufs.keys() - out.keys() and time.monotonic() - t0 < deadline_s:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                out[s] = ("closed", time.monotonic() - t0)
                sel.unregister(s)
                continue
            bufs[s] += chunk
            if b"\r\n" in bufs[s] and s not in out:
                line = bufs[s].split(b"\r\n", 1)[0].split()
                out[s] = (int(line[1]) if len(line) > 1 and line[1].isdigit() else "garbage",
                          time.monotonic() - t0)
                sel.unregister(s)
    for s in socks:
        out.setdefault(s, ("timeout", deadline_s))
        if s in bufs:
            s.setblocking(True)
    sel.close()
    return out


def media_on(conn, path):
    """GET path on an open keep-alive connection: (status, body)."""
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


class OverloadDrill(unittest.TestCase):
    def setUp(self):
        require("ffmpeg")
        self.d = Daemon(sections=channel_sections(),
                        server_extra=f"max_http_connections = {LIMIT}\n")
        self.d.start()
        self.pub = publisher(self.d.rtmp_url)
        self.flood = []
        self.findings = []

    def check(self, ok, message):
        if not ok:
            self.findings.append(message)
            print(f"FINDING: {message}", file=sys.stderr)

    def tearDown(self):
        for s in self.flood:
            s.close()
        stop_proc(self.pub)
        code, _ = self.d.stop()
        self.assertEqual(code, 0, self.d.log())

    def healthz_on(self, conn):
        t0 = time.monotonic()
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        body = r.read()
        return r.status, body, time.monotonic() - t0

    def check_media(self, conn, rel, when):
        """The viewer on conn gets rendition rel's playlist, its newest
        complete part and segment: 200s with fMP4 media in them."""
        base = f"/hls/{CHANNEL}/{rel.rsplit('/', 1)[0]}/"
        status, body = media_on(conn, f"/hls/{CHANNEL}/{rel}")
        self.assertEqual(status, 200, f"{when}: playlist {rel}: HTTP {status} {body[:200]!r}")
        pl = MediaPlaylist(body.decode(), rel)
        done = [s for s in pl.segments if s.uri]
        parts = [p for s in pl.segments for p in s.parts]
        self.assertTrue(done and parts, f"{when}: no complete segment or part in\n{pl.text}")
        for what, uri in (("part", parts[-1][1]), ("segment", done[-1].uri)):
            status, media = media_on(conn, base + uri)
            self.assertEqual(status, 200, f"{when}: {what} {uri}: HTTP {status} {media[:200]!r}")
            self.assertIn(b"moof", media, f"{when}: {what} {uri} is not fMP4 media")
            self.assertIn(b"mdat", media, f"{when}: {what} {uri} is not fMP4 media")

    def open_conns(self):
        v = self.d.metric("galarelay_open_connections", 'kind="http"')
        return v

    def test_connection_flood(self):
        pid = self.d.proc.pid
        rel = renditions(wait_master(self.d.url, log=self.d.log))[0][1]
        # a viewer connected before the flood, keep-alive, watching
        viewer = http.client.HTTPConnection("127.0.0.1", self.d.http_port, timeout=5)
        self.addCleanup(viewer.close)
        status, body, _ = self.healthz_on(viewer)
        self.assertEqual((status, body.strip()), (200, b"ok"))
        self.check_media(viewer, rel, "before the flood")
        rss_before = rss_kib(pid)

        # 200 connections at once, idle first
        for _ in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", self.d.http_port), timeout=5)
            self.flood.append(s)
        time.sleep(0.5)

        # the existing viewer is still served, fast
        status, body, took = self.healthz_on(viewer)
        self.assertEqual(status, 200, f"existing keep-alive connection refused during the flood (idle phase): "
                                      f"HTTP {status} {body!r}")
        self.assertLess(took, 0.5)

        # each flood connection in turn asks for something and stays open
        # (keep-alive): an answer each, quickly; once the limit of open
        # connections is reached, the newcomers get 503
        req = f"GET /api/v1/channels HTTP/1.1\r\nHost: 127.0.0.1:{self.d.http_port}\r\n\r\n".encode()
        seq = []
        for s in self.flood[:FLOOD // 2]:
            seq.append(read_answers([s], req, ANSWER_WITHIN)[s])
        # and the other half all at once
        burst = list(read_answers(self.flood[FLOOD // 2:], req, ANSWER_WITHIN).values())
        by = {}
        for status, _ in seq + burst:
            by[status] = by.get(status, 0) + 1
        slowest = max(t for _, t in seq + burst)
        served_in_order = [st for st, _ in seq]
        summary = (f"answers by status {by}, slowest {slowest:.2f}s; one at a time: "
                   f"{served_in_order.count(200)} x 200 then {served_in_order.count(503)} x 503")
        print(f"\nflood of {FLOOD} with max_http_connections={LIMIT}: {summary}", file=sys.stderr)
        self.assertEqual(by.get("timeout", 0), 0, f"connections hung: {summary}\n{self.d.log()}")
        self.assertEqual(set(by) - {200, 503}, set(), f"unexpected answers: {summary}")
        # the rest of the drill runs on whatever happened here: its findings
        # are reported together at the end
        self.check(by.get(200, 0) <= LIMIT,
                   f"more keep-alive connections were served than max_http_connections: {summary}")
        self.check(by.get(503, 0) >= FLOOD - LIMIT, f"the excess did not get 503: {summary}")
        # shedding is not refusing everyone: the connections within the
        # limit (the viewer holds one slot) are served, one at a time first
        self.assertGreaterEqual(served_in_order.count(200), LIMIT // 2,
                                f"newcomers within max_http_connections were not served: {summary}")

        # the existing viewer, again, while the flood is open
        for _ in range(5):
            status, body, took = self.healthz_on(viewer)
            self.assertEqual(status, 200, f"existing keep-alive connection refused during the flood: "
                                          f"HTTP {status} {body!r}")
            self.assertLess(took, 0.5, "healthz slow during the flood")
        # and it keeps watching: playlist, part and segment, with media
        self.check_media(viewer, rel, "during the flood")
        # the operator sees it on /metrics (asked on the existing connection)
        viewer.request("GET", "/metrics")
        r = viewer.getresponse()
        text = r.read().decode()
        self.assertEqual(r.status, 200)
        gauge = [float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith('galarelay_open_connections{kind="http"} ')]
        self.check(gauge and gauge[0] >= LIMIT * 0.8,
                   f"galarelay_open_connections{{kind=\"http\"}} = {gauge} while {FLOOD + 1} connections are open")

        rss_during = rss_kib(pid)
        print(f"RSS before {rss_before} KiB, during the flood {rss_during} KiB", file=sys.stderr)
        self.assertLess(rss_during - rss_before, 64 * 1024, "RSS grew by more than 64 MiB")

        # the flood leaves; the gauge falls back and service is normal
        for s in self.flood:
            s.close()
        self.flood = []
        wait_until("galarelay_open_connections{kind=\"http\"} back to a few",
                   lambda: (self.open_conns() or 0) <= 3, 10, interval=0.2, log=self.d.log)
        fresh = [socket.create_connection(("127.0.0.1", self.d.http_port), timeout=5) for _ in range(LIMIT - 5)]
        self.flood = fresh
        answers = read_answers(fresh, req, ANSWER_WITHIN)
        statuses = [st for st, _ in answers.values()]
        self.assertEqual(statuses.count(200), len(fresh), f"after the flood: {statuses}")
        status, _, took = self.healthz_on(viewer)
        self.assertEqual(status, 200)
        self.assertLess(took, 0.5)
        viewer.close()
        rss_after = rss_kib(pid)
        print(f"RSS after {rss_after} KiB", file=sys.stderr)
        self.assertIsNone(self.d.proc.poll())
        if self.findings:
            self.fail("\n".join(self.findings))


if __name__ == "__main__":
    unittest.main(verbosity=2)
