"""A minimal RTMP client for the RTMP integration tests (a helper module,
not a test itself): plain handshake, chunk writer and reader, AMF0, the
publish and play command sequences, FLV file tags. Standard library only.

It exists for what ffmpeg cannot do on purpose: publish and then fall
silent, play and then never read, send garbage in the middle of a session.
"""
import os
import socket
import struct
import time


def amf_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf_num(v):
    return b"\x00" + struct.pack(">d", v)


def amf_null():
    return b"\x05"


def amf_obj(d):
    out = b"\x03"
    for k, v in d.items():
        kb = k.encode()
        out += struct.pack(">H", len(kb)) + kb
        out += amf_str(v) if isinstance(v, str) else amf_num(v)
    return out + b"\x00\x00\x09"


def amf_read_str(b, pos):
    """(string, next pos) for a string value at pos, or (None, pos)."""
    if pos + 3 <= len(b) and b[pos] == 2:
        n = struct.unpack(">H", b[pos + 1:pos + 3])[0]
        return b[pos + 3:pos + 3 + n].decode("utf-8", "replace"), pos + 3 + n
    return None, pos


def chunk(csid, mtype, sid, ts, payload, size=128):
    ext = ts >= 0xFFFFFF
    t = 0xFFFFFF if ext else ts
    out = bytes([csid]) + t.to_bytes(3, "big") + len(payload).to_bytes(3, "big") + bytes([mtype])
    out += struct.pack("<I", sid)
    if ext:
        out += struct.pack(">I", ts)
    for i in range(0, max(len(payload), 1), size):
        if i:
            out += bytes([0xC0 | csid]) + (struct.pack(">I", ts) if ext else b"")
        out += payload[i:i + size]
    return out


def flv_tags(path):
    """(type, timestamp, body) for every tag of an FLV file."""
    with open(path, "rb") as f:
        d = f.read()
    pos = 9 + 4
    while pos + 11 <= len(d):
        t = d[pos]
        sz = int.from_bytes(d[pos + 1:pos + 4], "big")
        ts = int.from_bytes(d[pos + 4:pos + 7], "big") | (d[pos + 7] << 24)
        yield t, ts, d[pos + 11:pos + 11 + sz]
        pos += 11 + sz + 4


class Client:
    def __init__(self, port, host="127.0.0.1", rcvbuf=None, timeout=10):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect((host, port))
        self.port = port
        self.inbuf = b""
        self.in_chunk = 128
        self.streams = {}
        self.out_chunk = 128

    def handshake(self):
        self.s.sendall(b"\x03" + bytes(1536))
        s = self.recv_exact(1 + 2 * 1536)
        assert s[0] == 3, "server answered version %d" % s[0]
        self.s.sendall(s[1:1537])

    def recv_exact(self, n):
        while len(self.inbuf) < n:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed by server")
            self.inbuf += d
        out, self.inbuf = self.inbuf[:n], self.inbuf[n:]
        return out

    def send(self, csid, mtype, sid, ts, payload):
        self.s.sendall(chunk(csid, mtype, sid, ts, payload, self.out_chunk))

    def set_chunk_size(self, n):
        self.send(2, 1, 0, 0, struct.pack(">I", n))
        self.out_chunk = n

    def command(self, name, txid, *args, sid=0):
        body = amf_str(name) + amf_num(txid) + b"".join(args)
        self.send(3, 20, sid, 0, body)

    def read_message(self):
        """(type, timestamp, payload) of the next whole message."""
        while True:
            b0 = self.recv_exact(1)[0]
            fmt, csid = b0 >> 6, b0 & 0x3F
            if csid == 0:
                csid = 64 + self.recv_exact(1)[0]
            elif csid == 1:
                x = self.recv_exact(2)
                csid = 64 + x[0] + 256 * x[1]
            st = self.streams.setdefault(csid, {"ts": 0, "delta": 0, "len": 0, "type": 0, "buf": b"", "ext": False})
            if fmt < 3:
                h = self.recv_exact([11, 7, 3][fmt])
                field = int.from_bytes(h[0:3], "big")
                st["ext"] = field == 0xFFFFFF
                if fmt <= 1:
                    st["len"] = int.from_bytes(h[3:6], "big")
                    st["type"] = h[6]
            if st["ext"]:
                field = struct.unpack(">I", self.recv_exact(4))[0]
            if fmt == 0:
                st["ts"] = field
                st["delta"] = field
            elif fmt in (1, 2):
                st["delta"] = field
                st["ts"] += field
            elif not st["buf"]:
                st["ts"] += st["delta"]
            n = min(self.in_chunk, st["len"] - len(st["buf"]))
            st["buf"] += self.recv_exact(n)
            if len(st["buf"]) == st["len"]:
                payload, st["buf"] = st["buf"], b""
                if st["type"] == 1:
                    self.in_chunk = struct.unpack(">I", payload[:4])[0]
                    continue
                return st["type"], st["ts"], payload

    def wait_status(self, timeout=10):
        """The next onStatus code (or _error), skipping other messages."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            mtype, _, p = self.read_message()
            if mtype != 20:
                continue
            name, pos = amf_read_str(p, 0)
            if name == "_error":
                return "_error"
            if name == "onStatus":
                i = p.find(b"code")
                code, _ = amf_read_str(p, i + 4)
                return code
        raise TimeoutError("no onStatus")

    def connect(self, app="live"):
        self.handshake()
        self.command("connect", 1, amf_obj({"app": app, "tcUrl": f"rtmp://127.0.0.1:{self.port}/{app}"}))
        self.command("createStream", 2, amf_null())

    def publish(self, key, app="live"):
        self.connect(app)
        self.command("publish", 3, amf_null(), amf_str(key), amf_str("live"), sid=1)
        return self.wait_status()

    def play(self, name, app="live"):
        self.connect(app)
        self.command("play", 3, amf_null(), amf_str(name), sid=1)

    def send_tag(self, t, ts, body):
        csid = {8: 4, 9: 6, 18: 5}.get(t, 5)
        if t == 18:
            body = amf_str("@setDataFrame") + body
        self.send(csid, t, 1, ts, body)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def measure_rss_without_asan_quarantine():
    """Under AddressSanitizer (scripts/test.sh's second pass) freed memory
    sits in ASan's quarantine (up to 256 MiB) and counts as RSS, so a test
    that bounds the daemon's growth would measure the quarantine, not the
    daemon. Call before starting the daemon: it turns the quarantine off so
    RSS means the same thing in both passes (a no-op without ASan)."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in opts:
        os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=0"




def wait_for(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
