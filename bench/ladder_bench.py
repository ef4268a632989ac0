#!/usr/bin/env python3
"""ladder_bench: the daemon's ABR ladder against the ffmpeg CLI doing the same
ladder, same file, same x264 settings, same run, both in real time.

    bench/ladder_bench.sh [BUILD_DIR] [SECONDS]     (this script, via the .sh)
    bench/ladder_bench.py [--build DIR] [--seconds 60] [--idle 5] [--keep]

1. A 1080p30 test source is encoded once beforehand to an FLV file (cached
   under $TMPDIR by length): testsrc2 (moving pattern, counter) + a 440 Hz
   sine, x264 veryfast at 6 Mbit/s (maxrate 6M, bufsize 12M), a keyframe
   every 2 s exactly (-g 60, no scene cut), AAC 128k.
2. galarelay: the daemon on free loopback ports with the default ladder
   (720p 2800k, 480p 1400k, 360p 800k, x264 veryfast/high; the source and
   its audio passed through), the HLS window long enough to hold the whole
   run. Its idle CPU rate is read for --idle seconds, then ffmpeg publishes
   the file over RTMP with -re (-c copy). Its CPU = utime+stime of the
   daemon's PID (/proc/PID/stat) from the publish's start until the last
   segment is listed, less the idle rate over that window. Afterwards every
   segment of each rendition is downloaded from /hls/… and concatenated
   with its init section (the run of segments between discontinuities that
   holds the feed: not the slate).
3. The ffmpeg CLI, twice, each reading the same file with -re and writing
   the same ladder to MP4 files (source video and audio copied, as the
   daemon passes them through), with the x264 settings the daemon uses
   (transcoder/pipeline_rung.c: preset, profile, bitrate, maxrate = 1.5 x,
   bufsize = 2 x maxrate, no B-frames, keyint 4 segments + 1, keyint_min 1,
   an IDR where the source has a keyframe, scenecut=0, rc-lookahead=0,
   sync-lookahead=0, mbtree=0, and the same thread count and threading:
   nproc / 3 rungs, 1..8, sliced when more than one), scaled with bicubic
   like the daemon's swscale:
     - "cli-cascade": each rung scaled from the one above (720p from the
       source, 480p from 720p, 360p from 480p), as the daemon's ladder does;
     - "cli-direct": every rung scaled from the source.
   Its CPU = the rusage of the ffmpeg process (wait4), all of it.
4. SSIM (ffmpeg's ssim filter) of every rung against the source, the source
   scaled down (bicubic) to the rung's size, frames paired by index,
   for the daemon's rungs (from its HLS output) and each CLI variant's (from
   its files): a cheaper ladder cannot hide a worse picture. The x264
   option strings that each encoder wrote into its stream are printed side
   by side (from the SEI), so that a settings mismatch shows.

Prints CPU-s per media-s for the daemon and each CLI variant, the ratios,
and SSIM per rung. Exit 0 when the run completed, 1 when it could not run.
Not part of ctest.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import daemon as daemon_mod  # noqa: E402
import drill_common as dc  # noqa: E402
from bench_daemon import arguments, finish  # noqa: E402
from hls_check import MediaPlaylist, parse_master  # noqa: E402

CHANNEL = dc.CHANNEL
KEY = "ladder-bench-key"
SEGMENT_S = 2.0  # the daemon's default [hls] segment_duration
FPS = 30
# The daemon's default ladder (config/config.c: default_rung): name, height,
# width (transcoder/ladder.c: ladder_scaled_width of 1920x1080), kbit/s.
RUNGS = [("720p", 720, 1280, 2800), ("480p", 480, 854, 1400), ("360p", 360, 640, 800)]
PRESET, PROFILE = "veryfast", "high"


def say(msg):
    print(f"ladder_bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, **kw)


def make_source(seconds):
    cache = os.path.join(tempfile.gettempdir(), f"galarelay-ladder-src-1080p30-{seconds}s.flv")
    if os.path.exists(cache):
        return cache
    say(f"encoding the {seconds} s 1080p30 source once ({cache})")
    part = cache + ".part.flv"
    r = run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate={FPS}",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
             "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-maxrate", "6M", "-bufsize", "12M",
             "-g", str(int(FPS * 2)), "-keyint_min", str(int(FPS * 2)), "-sc_threshold", "0",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", part])
    if r.returncode != 0:
        raise SystemExit("ladder_bench: could not encode the source")
    os.rename(part, cache)
    return cache


def x264_threads():
    """What pl_rung_open_encoder picks with [transcoder] threads = 0 and
    latency_frames = 0: (threads, sliced, rc-lookahead)."""
    threads = max(1, min(8, (os.cpu_count() or 1) // len(RUNGS)))
    sliced = threads > 1 and threads - 1 > 0
    return threads, sliced, 0


def x264_args(kbps):
    threads, sliced, lookahead = x264_threads()
    maxrate = kbps * 3 // 2
    params = f"scenecut=0:bframes=0:rc-lookahead={lookahead}:sync-lookahead=0:sliced-threads={int(sliced)}"
    if lookahead == 0:
        params += ":mbtree=0"
    return ["-c:v", "libx264", "-preset", PRESET, "-profile:v", PROFILE,
            "-b:v", f"{kbps}k", "-maxrate", f"{maxrate}k", "-bufsize", f"{maxrate * 2}k",
            "-bf", "0", "-g", str(int(FPS * SEGMENT_S * 4) + 1), "-keyint_min", "1",
            "-forced-idr", "1", "-force_key_frames", "source",
            "-threads", str(threads), "-thread_type", "slice" if sliced else "frame",
            "-x264-params", params]


def cli_command(src, out, cascade):
    if cascade:
        graph = ("[0:v]scale=1280:720:flags=bicubic,split=2[v720][t720];"
                 "[t720]scale=854:480:flags=bicubic,split=2[v480][t480];"
                 "[t480]scale=640:360:flags=bicubic[v360]")
    else:
        graph = ("[0:v]split=3[s0][s1][s2];[s0]scale=1280:720:flags=bicubic[v720];"
                 "[s1]scale=854:480:flags=bicubic[v480];[s2]scale=640:360:flags=bicubic[v360]")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-re", "-i", src,
           "-filter_complex", graph]
    for name, _h, _w, kbps in RUNGS:
        # passthrough: each frame out once with its own timestamp, as the
        # daemon does (no duplicates for a constant output rate)
        cmd += ["-map", f"[v{name[:-1]}]"] + x264_args(kbps) + ["-fps_mode", "passthrough", "-an",
                                                                os.path.join(out, f"{name}.mp4")]
    cmd += ["-map", "0:v", "-c:v", "copy", "-an", os.path.join(out, "source.mp4")]
    cmd += ["-map", "0:a", "-c:a", "copy", "-vn", os.path.join(out, "audio.mp4")]
    return cmd


def run_cli(src, out, cascade):
    os.makedirs(out, exist_ok=True)
    cmd = cli_command(src, out, cascade)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"ladder_bench: ffmpeg CLI exited {p.returncode}")
    return ru.ru_utime + ru.ru_stime, wall, cmd


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(url):
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read()


def feed_timeline(d):
    """The timeline the transcoder began for the feed (the slate's begin with
    "slate on"), from the daemon's log: its segments map init-N.mp4."""
    found = re.findall(rf"transcoder: timeline begun channel={CHANNEL} timeline=(\d+)", d.log())
    return int(found[-1]) if found else None


def feed_run(pl, timeline):
    """The feed's segments, not the slate's before or after it: those of
    the feed's timeline."""
    want = f"init-{timeline}.mp4"
    return [s for s in pl.segments if s.uri and s.map and s.map.split("/")[-1].split("?")[0] == want]


def download_rendition(base, rel, out_path, timeline):
    url = f"{base}/hls/{CHANNEL}/{rel}"
    pl = MediaPlaylist(get(url).decode(), url)
    segs = feed_run(pl, timeline)
    if not segs or not segs[0].map:
        return 0, 0.0
    with open(out_path, "wb") as f:
        f.write(get(urllib.parse.urljoin(url, segs[0].map)))
        for s in segs:
            f.write(get(urllib.parse.urljoin(url, s.uri)))
    return len(segs), sum(s.duration or 0 for s in segs)


def ssim(rung_file, src, w, h):
    """(SSIM All, frames compared): the source scaled down to the rung.
    Frames are paired by their index (both renumbered N in a 1/30 s time
    base): the source's FLV timestamps are whole milliseconds, an output's
    may not be, and pairing by timestamp would compare a frame with its
    neighbour."""
    stats = rung_file + ".ssim.log"
    r = run(["ffmpeg", "-hide_banner", "-nostdin", "-i", rung_file, "-i", src, "-lavfi",
             f"[1:v]scale={w}:{h}:flags=bicubic,settb=1/{FPS},setpts=N[ref];[0:v]settb=1/{FPS},setpts=N[dist];"
             f"[dist][ref]ssim=stats_file={stats}:shortest=1", "-f", "null", "-"],
            capture_output=True, text=True)
    m = re.search(r"SSIM .*All:([0-9.]+)", r.stderr)
    frames = sum(1 for _ in open(stats)) if os.path.exists(stats) else 0
    return (float(m.group(1)) if m else None), frames


def frame_count(path):
    r = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
             "stream=nb_read_packets", "-of", "csv=p=0", path], capture_output=True, text=True)
    try:
        return int(r.stdout.strip())
    except ValueError:
        return 0


def x264_options(path):
    """The options string libx264 writes into its SEI ("options: ...")."""
    with open(path, "rb") as f:
        data = f.read(4 << 20)
    m = re.search(rb"x264 - core \d+.*? options: ([ -~]+)", data)
    return m.group(1).decode() if m else "?"


def main():
    ap = arguments(__doc__)
    ap.add_argument("--seconds", type=int, default=60, help="length of the source (media seconds)")
    ap.add_argument("--idle", type=float, default=5, help="seconds of idle CPU read before the publish")
    args = ap.parse_args()

    binary = args.bin or os.path.join(args.build, "galarelay")
    for need in ("ffmpeg", "ffprobe", binary):
        if not (shutil.which(need) or os.path.exists(need)):
            say(f"missing {need}")
            return 1
    daemon_mod.BIN = binary
    src = make_source(args.seconds)
    media_s = args.seconds
    tmp = tempfile.mkdtemp(prefix="galarelay-ladderbench-")
    window = int(args.seconds / SEGMENT_S) + 30
    d = daemon_mod.Daemon(sections=f"[hls]\nwindow_segments = {window}\n\n[channel {CHANNEL}]\nkey = {KEY}\n",
                          tmp=tmp)
    load = []
    pub = None
    try:
        # ---- the daemon
        d.start()
        time.sleep(1)
        c0, t0 = cpu_s(d.proc.pid), time.monotonic()
        time.sleep(args.idle)
        idle_rate = (cpu_s(d.proc.pid) - c0) / (time.monotonic() - t0)
        load.append(os.getloadavg()[0])
        say(f"daemon idle {idle_rate * 100:.1f}% of a core; publishing {media_s} s with -re")
        c0, t0 = cpu_s(d.proc.pid), time.monotonic()
        pub = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", src,
                                "-c", "copy", "-f", "flv", f"{d.rtmp_url}/{KEY}"],
                               stdin=subprocess.DEVNULL)
        pub.wait(timeout=media_s * 3 + 60)
        # the last GOP is still in the encoders: wait until every rendition
        # has listed media up to the end (or 10 s)
        # Between the feed's timeline and the slate's the master playlist is
        # briefly 404 (no timeline is live): ask again for a few seconds.
        for attempt in range(40):
            try:
                master = get(f"{d.url}/hls/{CHANNEL}/master.m3u8").decode()
                break
            except urllib.error.HTTPError as e:
                if e.code != 404 or attempt == 39:
                    raise
                time.sleep(0.25)
        variants, media = parse_master(master)
        rels = [uri for _, uri in variants] + [m["URI"] for m in media if "URI" in m]
        timeline = feed_timeline(d)
        if timeline is None:
            raise SystemExit("ladder_bench: the daemon began no timeline for the feed\n" + d.log()[-3000:])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = True
            for rel in rels:
                url = f"{d.url}/hls/{CHANNEL}/{rel}"
                segs = feed_run(MediaPlaylist(get(url).decode(), url), timeline)
                if sum(s.duration or 0 for s in segs) < media_s - SEGMENT_S - 0.1:
                    done = False
            if done:
                break
            time.sleep(0.25)
        t1 = time.monotonic()
        c1 = cpu_s(d.proc.pid)
        load.append(os.getloadavg()[0])
        d_window = t1 - t0
        d_cpu = (c1 - c0) - idle_rate * d_window
        say(f"daemon: {c1 - c0:.1f} CPU-s over {d_window:.1f} s, less idle {idle_rate * d_window:.2f}")
        gdir = os.path.join(tmp, "galarelay")
        os.makedirs(gdir)
        got = {}
        for rel in rels:
            name = rel.split("/")[0]
            n, dur = download_rendition(d.url, rel, os.path.join(gdir, f"{name}.mp4"), timeline)
            got[name] = (n, dur)
        _, _, body = d.get("/metrics")
        dropped = {}  # frames the daemon skipped for lag or overload: less work, a worse ladder
        for line in body.decode().splitlines():
            for m in ("galarelay_transcoder_frames_dropped_total", "galarelay_transcoder_input_dropped_total"):
                if line.startswith(m):
                    dropped[line.split(" ")[0]] = float(line.split()[-1])
        shed = sum(dropped.values())
        dc.stop_proc(pub)
        pub = None
        try:
            d.stop()  # before the CLI runs: one encoder set on the machine at a time
        except AssertionError as e:  # its log's complaints: shown, the figures stand
            say(str(e)[:2000])

        # ---- the CLI, both variants
        results = {}
        for label, cascade in (("cli-cascade", True), ("cli-direct", False)):
            say(f"{label}: ffmpeg -re, {media_s} s")
            cpu, wall, cmd = run_cli(src, os.path.join(tmp, label), cascade)
            load.append(os.getloadavg()[0])
            results[label] = (cpu, wall, cmd)

        # ---- SSIM per rung, both sides
        say("SSIM per rung (the source scaled down to the rung, bicubic)")
        sides = [("galarelay", gdir)] + [(k, os.path.join(tmp, k)) for k in results]
        table = {}
        for side, folder in sides:
            for name, h, w, _k in RUNGS:
                f = os.path.join(folder, f"{name}.mp4")
                table[(side, name)] = ssim(f, src, w, h) + (frame_count(f),) if os.path.exists(f) else (None, 0, 0)

        # ---- the report
        threads, sliced, lookahead = x264_threads()
        src_frames = frame_count(src)
        print("")
        print(f"ladder bench: {media_s} s of 1080p30 testsrc2 + sine (x264 veryfast 6 Mbit/s, 2 s GOP), "
              f"in real time (-re); {os.cpu_count()} CPUs; 1-min load during the run "
              f"{min(load):.2f}..{max(load):.2f}")
        print(f"ladder: " + ", ".join(f"{n} {w}x{h} {k}k" for n, h, w, k in RUNGS) +
              f", x264 {PRESET}/{PROFILE}, {threads} thread(s) per rung "
              f"({'sliced' if sliced else 'frame'}), rc-lookahead={lookahead}; source and audio passed through")
        print("")
        print(f"{'':<14}{'CPU-s':>8}{'wall s':>8}{'CPU-s/media-s':>15}{'galarelay/this':>16}")
        print(f"{'galarelay':<14}{d_cpu:>8.2f}{d_window:>8.1f}{d_cpu / media_s:>15.3f}{'1.00x':>16}")
        for label, (cpu, wall, _cmd) in results.items():
            print(f"{label:<14}{cpu:>8.2f}{wall:>8.1f}{cpu / media_s:>15.3f}{d_cpu / cpu:>15.2f}x")
        print("  (galarelay: utime+stime of the daemon over the publish until the last segment, less its "
              f"idle rate {idle_rate * 100:.1f}% of a core; CLI: rusage of the ffmpeg process)")
        if shed:
            print(f"  WARNING: the daemon dropped frames for lag or overload, its CPU figure is for less work: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in dropped.items() if v))
        print("")
        print(f"SSIM against the source scaled down to the rung (source: {src_frames} frames)")
        print(f"{'rung':<8}" + "".join(f"{s:>22}" for s, _ in sides))
        for name, _h, _w, _k in RUNGS:
            cells = []
            for side, _f in sides:
                v, n, frames = table[(side, name)]
                cells.append(f"{v:.4f} ({n}/{frames} fr)" if v is not None else "-")
            print(f"{name:<8}" + "".join(f"{c:>22}" for c in cells))
        print("  (n/frames: frames compared / frames in the rung's output; galarelay segments: " +
              ", ".join(f"{k} {n} ({dur:.1f} s)" for k, (n, dur) in got.items()) + ")")
        print("")
        print("x264 options as written in each stream (720p):")
        for side, folder in sides:
            f = os.path.join(folder, "720p.mp4")
            print(f"  {side:<12} {x264_options(f) if os.path.exists(f) else '-'}")
        print("")
        print("CLI command (cli-cascade):")
        print("  " + " ".join(results["cli-cascade"][2]))
        return 0
    finally:
        if pub is not None:
            dc.stop_proc(pub)
        finish(d, tmp, args.keep, say)


if __name__ == "__main__":
    sys.exit(main())
