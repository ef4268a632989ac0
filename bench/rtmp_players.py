#!/usr/bin/env python3
"""RTMP fan-out benchmark: one 6 Mbit/s publisher and N RTMP players on
loopback, galarelay side by side with nginx + libnginx-mod-rtmp in the same
run. Prints, per server: CPU-seconds per minute of the server process, RSS
(now and peak), and what the players received (Mbit/s each, so a server
that serves less is not mistaken for a cheaper one).

Not part of ctest. Default run: ~100 s (two servers x (5 s warm-up + 40 s
measured)). Usage:

    bench/rtmp_players.py [--players 100] [--seconds 40] [--bin build/galarelay]

The players are one Python process with non-blocking sockets (handshake,
connect, createStream, play, then read and discard), so the client side
costs little next to 100 ffmpeg processes. The source is a CBR H.264 + AAC
clip looped with ffmpeg -re -c copy. galarelay's transcoder gets no rung
for a 360p source with passthrough off, so both servers only relay.
"""
import argparse
import os
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NGINX_RTMP = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def mem_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def amf_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf_num(v):
    return b"\x00" + struct.pack(">d", v)


def command(name, txid, *args, sid=0):
    body = amf_str(name) + amf_num(txid) + b"".join(args)
    out = bytes([3]) + bytes(3) + len(body).to_bytes(3, "big") + b"\x14" + struct.pack("<I", sid)
    for i in range(0, len(body), 128):
        if i:
            out += b"\xc3"
        out += body[i:i + 128]
    return out


class Players(threading.Thread):
    """N players in one thread: handshake, connect, play, then drain."""

    def __init__(self, port, app, name, n):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.received = 0
        self.stop = False
        self.socks = []
        connect_obj = (b"\x03" + struct.pack(">H", 3) + b"app" + amf_str(app) + struct.pack(">H", 5) + b"tcUrl" +
                       amf_str(f"rtmp://127.0.0.1:{port}/{app}") + b"\x00\x00\x09")
        self.script = (command("connect", 1, connect_obj) + command("createStream", 2, b"\x05") +
                       command("play", 3, b"\x05", amf_str(name), sid=1))
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"\x03" + bytes(1536))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, {"state": 0, "buf": b""})
            self.socks.append(s)

    def run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.2):
                s, st = key.fileobj, key.data
                try:
                    d = s.recv(262144)
                except BlockingIOError:
                    continue
                except OSError:
                    d = b""
                if not d:
                    self.sel.unregister(s)
                    continue
                if st["state"] == 0:
                    st["buf"] += d
                    if len(st["buf"]) >= 3073:
                        s.setblocking(True)
                        s.sendall(st["buf"][1:1537] + self.script)
                        s.setblocking(False)
                        st["state"] = 1
                        self.received += len(st["buf"]) - 3073
                        st["buf"] = b""
                else:
                    self.received += len(d)

    def close(self):
        self.stop = True
        self.join(5)
        for s in self.socks:
            s.close()


def make_clip(path, seconds=6):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p",
                    "-b:v", "5872k", "-minrate", "5872k", "-maxrate", "5872k", "-bufsize", "2M",
                    "-x264-params", "nal-hrd=cbr:force-cfr=1",
                    "-c:a", "aac", "-b:a", "128k", "-f", "flv", path], check=True)


def measure(label, server_pid, publish_url, play_port, app, name, clip, players, seconds):
    pub = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                            "-i", clip, "-c", "copy", "-f", "flv", publish_url],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    rss_idle = mem_kib(server_pid, "VmRSS")  # publisher on, no players yet
    pl = Players(play_port, app, name, players)
    pl.start()
    time.sleep(5)  # warm-up
    cpu0, rx0, t0 = cpu_seconds(server_pid), pl.received, time.time()
    time.sleep(seconds)
    cpu1, rx1, t1 = cpu_seconds(server_pid), pl.received, time.time()
    rss, hwm = mem_kib(server_pid, "VmRSS"), mem_kib(server_pid, "VmHWM")
    pl.close()
    pub.kill()
    pub.wait()
    per_player = (rx1 - rx0) * 8 / (t1 - t0) / players / 1e6
    return {"label": label, "cpu_per_min": (cpu1 - cpu0) / (t1 - t0) * 60, "rss_mib": rss / 1024,
            "peak_mib": hwm / 1024, "players_mib": (rss - rss_idle) / 1024, "mbps_per_player": per_player}


def run_galarelay(binary, tmp, clip, players, seconds):
    rtmp, http = free_port(), free_port()
    conf = os.path.join(tmp, "galarelay.conf")
    with open(conf, "w") as f:
        f.write(f"[server]\nhttp_listen = 127.0.0.1:{http}\nrtmp_listen = 127.0.0.1:{rtmp}\n"
                f"state_dir = {tmp}/state\nlog_level = warn\n\n[transcoder]\nsource_passthrough = false\n\n"
                f"[rtmp]\nmax_connections = {players + 10}\npublisher_reserve = 8\n"
                f"max_unauthenticated_per_address = {players + 10}\n\n[channel bench]\nkey = bench-key\n")
    p = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/galarelay.log", "w"))
    try:
        wait_port(rtmp)
        return measure("galarelay", p.pid, f"rtmp://127.0.0.1:{rtmp}/live/bench-key", rtmp, "live", "bench",
                       clip, players, seconds)
    finally:
        p.terminate()
        p.wait(10)


def run_nginx(tmp, clip, players, seconds):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"load_module {NGINX_RTMP};\ndaemon off; master_process off; worker_processes 1;\n"
                f"error_log {tmp}/nginx-error.log; pid {tmp}/nginx.pid;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
                f"  application live {{ live on; }} }} }}\n")
    p = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        return measure("nginx-rtmp", p.pid, f"rtmp://127.0.0.1:{port}/live/bench", port, "live", "bench",
                       clip, players, seconds)
    finally:
        p.terminate()
        p.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--players", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--bin", default=os.environ.get("GALARELAY_BIN", os.path.join(ROOT, "build", "galarelay")))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="galarelay-bench-")
    try:
        clip = os.path.join(tmp, "clip.flv")
        make_clip(clip)
        rows = [run_galarelay(a.bin, tmp, clip, a.players, a.seconds)]
        if shutil.which("nginx") and os.path.exists(NGINX_RTMP):
            rows.append(run_nginx(tmp, clip, a.players, a.seconds))
        else:
            print("nginx-rtmp not installed: galarelay only", file=sys.stderr)
        print(f"\nRTMP fan-out: 1 publisher (6 Mbit/s), {a.players} players, {a.seconds:.0f} s measured")
        print("(RSS: whole process; +players: its growth from starting the players)")
        print(f"{'server':<12} {'CPU s/min':>10} {'RSS MiB':>9} {'peak MiB':>9} {'+players MiB':>13} "
              f"{'Mbit/s/player':>14}")
        for r in rows:
            print(f"{r['label']:<12} {r['cpu_per_min']:>10.2f} {r['rss_mib']:>9.1f} {r['peak_mib']:>9.1f} "
                  f"{r['players_mib']:>13.1f} {r['mbps_per_player']:>14.2f}")
        if len(rows) == 2 and rows[1]["cpu_per_min"] > 0:
            print(f"ratio galarelay/nginx: CPU {rows[0]['cpu_per_min'] / rows[1]['cpu_per_min']:.2f}, "
                  f"RSS {rows[0]['rss_mib'] / max(rows[1]['rss_mib'], 0.1):.2f}, "
                  f"+players {rows[0]['players_mib'] / max(rows[1]['players_mib'], 0.1):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
