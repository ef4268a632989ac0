#!/usr/bin/env python3
"""hls_latency: glass-to-playlist latency of the LL-HLS output.

    bench/hls_latency.py [--build DIR] [--seconds 60] [--player-seconds 30]
                         [--no-player] [--player-level N] [--keep]

Black-box, one machine, one clock. It starts the daemon on free loopback
ports with a temporary config (default part 0.333 s, segment 2 s; ladder
`[rung 360p] height=360 video_bitrate=800 preset=veryfast` and
`[rung 240p] height=240 video_bitrate=400 preset=veryfast`, the source
passed through above them) and a publisher in real time: ffmpeg (-re)
encodes 1280x720 30 fps testsrc2 with the wall clock and frame number
drawn in, + a sine tone, x264 veryfast zerolatency -g 60, into FLV on a
pipe, and this script sends the FLV tags over RTMP itself, logging the
wall time at which it handed each keyframe to the socket. That log is the
reference clock, outside the daemon.

1. Playlist latency. One follower per media playlist of the master
   (source, each rung, audio where it has its own), all at once, each
   doing blocking reloads (`?_HLS_msn=M&_HLS_part=P` for the next part).
   For every part a reload lists for the first time:

     t_seen   wall clock when the playlist listing it had arrived
     t_frame  the segment's EXT-X-PROGRAM-DATE-TIME (wall-clock arrival of
              the segment's first frame on the RTMP socket) + the durations
              of the parts before it in that segment = arrival of the
              part's first frame

   first-frame latency = t_seen - t_frame (the part's oldest frame);
   last-frame latency  = that - the part's DURATION (the end of the part's
   time span; the last frame itself arrived one frame interval earlier, so
   this figure is conservative by up to 1/fps).
   Goal: p50 <= PART-TARGET + 0.2 s. A reload that lists more than
   one new part means the follower fell behind: those parts count, with an
   upper-bound latency, and are reported as "late".

2. The reference clock. Every EXT-X-PROGRAM-DATE-TIME in each media
   playlist is compared with the publisher's send time of the keyframe
   that starts the segment: offset = PDT - sent, reported per rendition
   (p50, min, max); more than --pdt-tolerance (50 ms) away fails the run,
   since every latency here is measured from PDT.

3. Player latency (needs node, tests/node_modules/playwright-core and
   /usr/bin/chromium; skipped with a note when missing): headless Chromium
   on /watch/gala, where the page's hls.js runs in low-latency mode
   (web/js/player.js). Once playing, every second for --player-seconds:
   Date.now() - hls.playingDate (the program date of the frame on screen;
   with PDT checked in 2, glass-to-glass: publisher sent to display),
   hls.latency and hls.targetLatency
   (bench/hls_latency_player.mjs).

Prints the figures; exits 0 when the run completed (goals are reported,
not enforced), 1 when it could not run or PDT is off the publisher's clock. Not part of ctest.
"""
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import daemon as daemon_mod  # noqa: E402
import drill_common as dc  # noqa: E402
from bench_daemon import arguments, finish  # noqa: E402
from hls_check import MediaPlaylist  # noqa: E402
from test_rtmp_lib import Client  # noqa: E402

CHANNEL = dc.CHANNEL
KEY = "latency-bench-key"
LADDER = ("[rung 360p]\nheight = 360\nvideo_bitrate = 800\npreset = veryfast\n\n"
          "[rung 240p]\nheight = 240\nvideo_bitrate = 400\npreset = veryfast\n")


def say(msg):
    print(f"hls_latency: {msg}", file=sys.stderr, flush=True)


def parse_pdt(text):
    """EXT-X-PROGRAM-DATE-TIME -> seconds since the epoch."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(text).timestamp()


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a list; None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


class ClockPublisher(threading.Thread):
    """The feed and the reference clock, outside the daemon. ffmpeg encodes
    in real time (-re) into FLV on a pipe, with the wall clock and the frame
    number drawn into the picture (so that a screenshot of any player shows
    its glass-to-glass latency against a clock on the wall); this thread
    publishes the FLV tags over RTMP itself (tests/integration's client) and
    logs the wall time at which each video keyframe has been handed to the
    RTMP socket (sendall returned: on loopback the daemon can read it)."""

    def __init__(self, port, key, log_path):
        super().__init__(daemon=True)
        self.port = port
        self.key = key
        self.keyframes = []  # (flv timestamp ms, wall time sent)
        self.tags = 0
        self.error = None
        self.stopping = False
        vf = f"drawtext=fontfile={FONT}:text='%{{localtime}} %{{n}}':fontsize=56:fontcolor=white:box=1:boxcolor=black:x=40:y=40"
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
               "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
               "-vf", vf if os.path.exists(FONT) else "null",
               "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
               "-flush_packets", "1", "-f", "flv", "pipe:1"]
        self.logf = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.logf)

    def run(self):
        try:
            c = Client(self.port)
            code = c.publish(self.key)
            if code != "NetStream.Publish.Start":
                raise RuntimeError(f"publish refused: {code}")
            c.set_chunk_size(65536)
            r = self.proc.stdout
            if len(r.read(13)) < 13:  # FLV header + the first PreviousTagSize
                raise RuntimeError("ffmpeg wrote no FLV header")
            while not self.stopping:
                hdr = r.read(11)
                if len(hdr) < 11:
                    break
                size = int.from_bytes(hdr[1:4], "big")
                ts = int.from_bytes(hdr[4:7], "big") | (hdr[7] << 24)
                body = r.read(size)
                r.read(4)
                if hdr[0] not in (8, 9):
                    continue  # onMetaData: the daemon learns everything from the sequence headers
                c.send_tag(hdr[0], ts, body)
                self.tags += 1
                if hdr[0] == 9 and len(body) > 1 and body[0] >> 4 == 1 and body[1] == 1:
                    self.keyframes.append((ts, time.time()))
            c.close()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            self.error = f"{type(e).__name__}: {e}"

    def stop(self):
        self.stopping = True
        dc.stop_proc(self.proc)
        self.join(5)


def check_pdt(base, rends, keyframes, tolerance):
    """EXT-X-PROGRAM-DATE-TIME of every segment in each media playlist now,
    against the publisher's own log of when it sent the keyframe that
    starts the segment (the nearest one; keyframes are 2 s apart, segments
    start on them). [(rendition, [offset s = PDT - sent])]."""
    sent = [t for _, t in keyframes]
    out = []
    for name, rel in rends:
        offsets = []
        try:
            pl = dc.media_playlist(base, rel)
        except AssertionError:
            out.append((name, offsets))
            continue
        for seg in pl.segments:
            if seg.pdt is None or not sent:
                continue
            pdt = parse_pdt(seg.pdt)
            nearest = min(sent, key=lambda t: abs(t - pdt))
            if abs(nearest - pdt) < 1.0:  # else: the slate's, or before the log began
                offsets.append(pdt - nearest)
        out.append((name, offsets))
    return out


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Follower(threading.Thread):
    """Follows one media playlist with blocking reloads for `seconds`."""

    def __init__(self, name, url, seconds):
        super().__init__(daemon=True)
        self.name_ = name
        self.url = url
        self.seconds = seconds
        self.samples = []  # (first-frame latency, part duration, late)
        self.reloads = 0
        self.errors = []
        self.part_target = None
        self.seen = set()

    def fetch(self, url):
        with urllib.request.urlopen(url, timeout=15) as r:
            body = r.read()
        return time.time(), MediaPlaylist(body.decode(), url)

    def record(self, pl, t_seen, count):
        new = []
        for s in pl.segments:
            if not s.parts or s.pdt is None:
                continue
            before = 0.0
            for j, (d, _uri, _ind) in enumerate(s.parts):
                key = (s.msn, j)
                if key not in self.seen:
                    self.seen.add(key)
                    if count:
                        new.append((t_seen - (parse_pdt(s.pdt) + before), d))
                before += d
        late = len(new) > 1
        self.samples.extend((lat, d, late) for lat, d in new)

    def run(self):
        try:
            _, pl = self.fetch(self.url)
            self.part_target = pl.part_target
            self.record(pl, 0, count=False)  # what was there before we came: not measured
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                nxt = pl.next_part()
                if nxt is None:
                    time.sleep(0.1)
                    _, pl = self.fetch(self.url)
                    continue
                msn, part = nxt
                try:
                    t_seen, pl = self.fetch(f"{self.url}?_HLS_msn={msn}&_HLS_part={part}")
                except urllib.error.HTTPError as e:
                    self.errors.append(f"msn={msn} part={part}: HTTP {e.code}")
                    time.sleep(0.2)
                    _, pl = self.fetch(self.url)
                    continue
                self.reloads += 1
                self.record(pl, t_seen, count=True)
        except Exception as e:  # noqa: BLE001 - reported, the others go on
            self.errors.append(f"{type(e).__name__}: {e}")


def fmt(v):
    return "-" if v is None else f"{v:.3f}"


def run_player(base, seconds, level, out_json):
    node = shutil.which("node")
    pw = os.path.join(SRC, "tests", "node_modules", "playwright-core")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not node or not os.path.isdir(pw) or not os.path.exists(chromium):
        say(f"player part skipped: need node, {pw} (cd tests && npm ci) and {chromium}")
        return None
    cmd = [node, os.path.join(SRC, "bench", "hls_latency_player.mjs"), f"{base}/watch/{CHANNEL}",
           str(seconds), out_json]
    if level is not None:
        cmd.append(str(level))
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=seconds + 120)
    if r.returncode != 0 or not os.path.exists(out_json):
        say(f"player run failed (exit {r.returncode})")
        return None
    with open(out_json) as f:
        return json.load(f)


def main():
    ap = arguments(__doc__)
    ap.add_argument("--seconds", type=float, default=60, help="playlist measurement (>= 60 for the issue)")
    ap.add_argument("--warmup", type=float, default=6, help="seconds after the feed is on air, before measuring")
    ap.add_argument("--player-seconds", type=float, default=30)
    ap.add_argument("--player-level", type=int, default=None, help="pin hls.js to this level (default auto)")
    ap.add_argument("--no-player", action="store_true")
    ap.add_argument("--pdt-tolerance", type=float, default=0.050,
                    help="largest |PDT - publisher's send time| accepted, seconds")
    args = ap.parse_args()

    binary = args.bin or os.path.join(args.build, "galarelay")
    web_root = os.path.join(args.build, "web-root")
    for need in ("ffmpeg", binary):
        if not (shutil.which(need) or os.path.exists(need)):
            say(f"missing {need} (build it: cmake --build BUILD --target galarelay galarelay_web)")
            return 1
    daemon_mod.BIN = binary

    tmp = tempfile.mkdtemp(prefix="galarelay-latbench-")
    server_extra = f"web_root = {web_root}\n" if os.path.isdir(web_root) else ""
    d = daemon_mod.Daemon(sections=f"[channel {CHANNEL}]\nkey = {KEY}\n\n{LADDER}",
                          server_extra=server_extra, tmp=tmp)
    pub = None
    rc = 0
    try:
        d.start()
        pub = ClockPublisher(d.rtmp_port, KEY, os.path.join(tmp, "ffmpeg.log"))
        pub.start()
        master = dc.wait_master(d.url, timeout=40, log=d.log)
        rends = dc.renditions(master)
        say(f"on air: {', '.join(n for n, _ in rends)}; warming up {args.warmup:.0f} s")
        time.sleep(args.warmup)

        followers = [Follower(n, f"{d.url}/hls/{CHANNEL}/{rel}", args.seconds) for n, rel in rends]
        say(f"following {len(followers)} playlists with blocking reloads for {args.seconds:.0f} s")
        cpu0, t0 = cpu_ticks(d.proc.pid), time.monotonic()
        for f in followers:
            f.start()
        for f in followers:
            f.join(args.seconds + 30)
        cpu1, t1 = cpu_ticks(d.proc.pid), time.monotonic()
        hz = os.sysconf("SC_CLK_TCK")
        daemon_cpu = (cpu1 - cpu0) / hz / (t1 - t0) * 100
        load = os.getloadavg()[0]
        pub_alive = pub.is_alive() and pub.error is None

        print("")
        print(f"LL-HLS playlist latency: RTMP arrival -> part listed by a blocking reload "
              f"({args.seconds:.0f} s per rendition, all followed at once)")
        print("publisher: 1280x720 30 fps testsrc2 + sine, x264 veryfast zerolatency -g 60, -re; "
              "ladder: source + 360p/800k + 240p/400k veryfast; part 0.333 s, segment 2 s")
        print(f"daemon CPU {daemon_cpu:.0f}% of one core, 1-min load {load:.2f} on {os.cpu_count()} CPUs, "
              f"publisher {'running' if pub_alive else 'EXITED'}")
        print("")
        hdr = (f"{'rendition':<10} {'parts':>5} {'late':>4} {'target':>6} | {'first-frame s: p50':>18} "
               f"{'p90':>6} {'p99':>6} {'max':>6} | {'last-frame s: p50':>17} {'p90':>6} {'p99':>6} | goal p50<=")
        print(hdr)
        print("-" * len(hdr))
        summary = []
        for f in followers:
            first = [s[0] for s in f.samples]
            last = [s[0] - s[1] for s in f.samples]
            late = sum(1 for s in f.samples if s[2])
            goal = (f.part_target or 0) + 0.2
            p50 = pct(first, 50)
            met = p50 is not None and p50 <= goal
            print(f"{f.name_:<10} {len(first):>5} {late:>4} {fmt(f.part_target):>6} | {fmt(p50):>18} "
                  f"{fmt(pct(first, 90)):>6} {fmt(pct(first, 99)):>6} {fmt(max(first) if first else None):>6} | "
                  f"{fmt(pct(last, 50)):>17} {fmt(pct(last, 90)):>6} {fmt(pct(last, 99)):>6} | "
                  f"{goal:.3f} {'met' if met else 'MISSED'}")
            for e in f.errors[:5]:
                print(f"  {f.name_}: error {e}")
            if not first:
                rc = 1
            summary.append({"rendition": f.name_, "parts": len(first), "late": late,
                            "part_target": f.part_target, "reloads": f.reloads,
                            "first_p50": p50, "first_p90": pct(first, 90), "first_p99": pct(first, 99),
                            "last_p50": pct(last, 50), "last_p90": pct(last, 90), "last_p99": pct(last, 99),
                            "goal": goal, "goal_met": met, "errors": f.errors})
        print("")
        print("first-frame = the part's oldest frame (t_seen - PDT - earlier parts); last-frame = that minus "
              "the part's DURATION; 'late' = listed together with another new part (follower behind)")
        with open(os.path.join(tmp, "playlist_latency.json"), "w") as fj:
            json.dump(summary, fj, indent=1)

        # the reference clock: PDT against the publisher's own send log
        checks = check_pdt(d.url, rends, list(pub.keyframes), args.pdt_tolerance)
        print("")
        print(f"EXT-X-PROGRAM-DATE-TIME against the publisher's clock (the wall time it sent each keyframe, "
              f"{len(pub.keyframes)} logged): offset = PDT - sent, tolerance {args.pdt_tolerance * 1000:.0f} ms")
        pdt_ok = True
        for name, offs in checks:
            worst = max(offs, key=abs) if offs else None
            ok = bool(offs) and abs(worst) <= args.pdt_tolerance
            pdt_ok = pdt_ok and ok
            print(f"  {name:<10} segments {len(offs):>3}  offset p50 {fmt(pct(offs, 50))} s  "
                  f"min {fmt(min(offs) if offs else None)} s  max {fmt(max(offs) if offs else None)} s  "
                  f"{'ok' if ok else 'FAILED'}")
        if pub.error:
            print(f"  publisher error: {pub.error}")
        if not pdt_ok:
            rc = 1
            print("  PDT is not the publisher's send time within the tolerance: the latencies above and the "
                  "player's below are measured against a clock that is off by that much")
        with open(os.path.join(tmp, "pdt_check.json"), "w") as fj:
            json.dump({"keyframes": pub.keyframes, "offsets": dict(checks)}, fj)

        if not args.no_player:
            say(f"player: headless Chromium on /watch/{CHANNEL} for {args.player_seconds:.0f} s")
            res = run_player(d.url, args.player_seconds, args.player_level, os.path.join(tmp, "player.json"))
            print("")
            if res is None:
                print("hls.js live-edge latency: not measured (see above)")
            else:
                samples = res["samples"]
                wall = [s["wall_latency"] for s in samples if s.get("wall_latency") is not None]
                hlsl = [s["hls_latency"] for s in samples if s.get("hls_latency") is not None]
                tgt = [s["target_latency"] for s in samples if s.get("target_latency") is not None]
                heights = sorted({s.get("height") for s in samples if s.get("height")})
                rates = [s["rate"] for s in samples if s.get("rate") is not None]
                stalls = res.get("waiting_events", 0)
                print(f"hls.js {res.get('hls_version', '?')} low-latency mode, headless Chromium, "
                      f"{len(samples)} samples 1 s apart after {res.get('warmup_s', 0):.0f} s of play "
                      f"(levels on screen: {', '.join(f'{h}p' for h in heights) or '?'}; "
                      f"{'pinned level ' + str(args.player_level) if args.player_level is not None else 'auto level'})")
                print(f"  glass-to-glass, Date.now() - hls.playingDate (publisher sent -> on screen; PDT "
                      f"{'checked against the publisher above' if pdt_ok else 'NOT within tolerance'}): p50 {fmt(pct(wall, 50))} s, "
                      f"p90 {fmt(pct(wall, 90))} s, min {fmt(min(wall) if wall else None)} s, "
                      f"max {fmt(max(wall) if wall else None)} s")
                print(f"  hls.latency: p50 {fmt(pct(hlsl, 50))} s (min {fmt(min(hlsl) if hlsl else None)}, "
                      f"max {fmt(max(hlsl) if hlsl else None)}); hls.targetLatency: p50 {fmt(pct(tgt, 50))} s; "
                      f"playbackRate p50 {fmt(pct(rates, 50))}; 'waiting' events {stalls}; "
                      f"dropped/decoded frames {res.get('dropped', '?')}/{res.get('decoded', '?')}")
                for p in res.get("problems", [])[:5]:
                    print(f"  page problem: {p}")
        return rc
    except AssertionError as e:
        say(str(e))
        return 1
    finally:
        if pub is not None:
            pub.stop()
        finish(d, tmp, args.keep, say)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
