"""Drill: the memory ceiling. Over server.memory_limit_mb the daemon refuses
newcomers (HTTP 503 with Retry-After, chat websocket handshakes refused)
while /healthz and /metrics keep answering; raising the ceiling by SIGHUP
lets newcomers in again: HTTP and chat websockets (a 101 and the room's
welcome)."""
import base64
import json
import os
import signal
import socket
import struct
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


def chat_handshake(port, channel="gala", timeout=5):
    """Open a websocket to /chat/CHANNEL (standard library only). Returns
    (socket, status line, bytes read past the response head); the caller
    closes the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /chat/{channel} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head.split(b"\r\n", 1)[0].decode("latin-1"), rest


def read_text_frame(s, rest):
    """The payload of the first frame from the server (unmasked, as the
    server sends them)."""
    def need(n):
        nonlocal rest
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed inside a frame ({len(rest)} bytes)")
            rest += chunk
        out, rest = rest[:n], rest[n:]
        return out
    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", need(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", need(8))[0]
    if b0 & 0x0F != 1:
        raise AssertionError(f"first frame has opcode {b0 & 0x0F}, not text")
    return need(n).decode()


class MemoryCeiling(unittest.TestCase):
    def test_newcomers_refused_over_the_ceiling(self):
        # 1 MiB is below any real RSS: the daemon is over from its first reading.
        d = Daemon(sections="[channel gala]\nkey = k-gala\n", server_extra="memory_limit_mb = 1\n").start()
        try:
            self.assertEqual(d.metric("galarelay_memory_over_limit"), 1)
            self.assertGreater(d.metric("galarelay_memory_rss_bytes"), 1 << 20)
            status, headers, _ = d.get("/api/v1/channels")
            self.assertEqual(status, 503)
            self.assertIn("retry-after", headers)
            self.assertIn("over the memory ceiling", d.log())
            # a chat websocket is a newcomer too: its handshake is refused
            s, line, _ = chat_handshake(d.http_port)
            s.close()
            self.assertNotIn(" 101 ", line + " ", f"websocket accepted over the ceiling: {line!r}")
            self.assertEqual(d.metric("galarelay_open_connections", 'kind="websocket"'), 0)

            d.server_extra = ""  # the same file without the ceiling
            d.write_config()
            d.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: d.metric("galarelay_memory_over_limit") == 0),
                            "still over the ceiling after the reload")
            status, _, _ = d.get("/api/v1/channels")
            self.assertEqual(status, 200)
            self.assertIn("back under the memory ceiling", d.log())
            # and a chat websocket is accepted: 101, then the room's welcome
            s, line, rest = chat_handshake(d.http_port)
            try:
                self.assertTrue(line.startswith("HTTP/1.1 101"), f"websocket refused under the ceiling: {line!r}")
                welcome = json.loads(read_text_frame(s, rest))
                self.assertEqual(welcome.get("type"), "welcome", welcome)
            finally:
                s.close()
        finally:
            code, _ = d.stop()
        self.assertEqual(code, 0, d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
