"""Shared pieces of the show-night drills (tests/integration/test_drill_*.py,
test_edge_nginx.py): the small test publisher, the HLS URLs docs/protocol.md names,
waiting for things with a deadline, and failing (never skipping) when a
peer binary is missing. Standard library only."""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, http, rss_kib  # noqa: E402,F401
from hls_check import MediaPlaylist, parse_master  # noqa: E402,F401

CHANNEL = "gala"
KEY = "drill-key"

# One small rung keeps the encoders cheap on two shared cores; the source
# (640x360) is passed through above it.
SMALL_LADDER = "[rung 240p]\nheight = 240\nvideo_bitrate = 300\npreset = ultrafast\n"


def channel_sections(extra=""):
    return f"[channel {CHANNEL}]\nkey = {KEY}\n{extra}\n{SMALL_LADDER}"


def require(*binaries):
    """Fail (not skip) with a clear message when a peer is not installed."""
    missing = [b for b in binaries if not (shutil.which(b) or os.path.exists(b))]
    if missing:
        raise AssertionError(f"missing prerequisite(s): {', '.join(missing)} "
                             f"(scripts/bootstrap.sh installs them)")


def publisher(rtmp_url, key=KEY, seconds=None):
    """ffmpeg sending a 640x360 test pattern and a tone in real time,
    a keyframe every second."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    if seconds:
        cmd += ["-t", str(seconds)]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
            "-f", "flv", f"{rtmp_url}/{key}"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop_proc(proc, sig=signal.SIGINT, timeout=5):
    """Stop a child we started, by its PID; SIGKILL if it lingers."""
    if proc is None:
        return
    try:
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # in case a drill left it stopped
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    finally:
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f:
                f.close()


def wait_until(what, pred, timeout, interval=0.1, log=lambda: ""):
    """Poll pred() until it returns something true; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except OSError as e:  # connection refused while a daemon restarts, …
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n{log()}")


def master_url(base):
    return f"{base}/hls/{CHANNEL}/master.m3u8"


def feed_on_air(base):
    """True once the channel's HLS carries the publisher's feed, not the
    standby slate (the slate keeps master.m3u8 answering with no feed)."""
    import json
    status, _, body = http(f"{base}/api/v1/channels", timeout=10)
    if status != 200:
        return False
    for ch in json.loads(body).get("channels", []):
        if ch.get("name") == CHANNEL:
            return bool(ch.get("live")) and not ch.get("slate", False)
    return False


def wait_master(base, timeout=25, log=lambda: ""):
    """The multivariant playlist text once the channel serves the feed."""
    def get():
        if not feed_on_air(base):
            return None
        status, _, body = http(master_url(base), timeout=10)
        if status != 200:
            return None
        # A player joining now starts three segments from the live edge:
        # wait until those are the feed's, not the slate's before it.
        variant = next(l for l in body.decode().splitlines() if l and not l.startswith("#"))
        status, _, pl = http(f"{base}/hls/{CHANNEL}/{variant}", timeout=10)
        since = pl.decode().rsplit("#EXT-X-DISCONTINUITY\n", 1)[-1] if status == 200 else ""
        return body.decode() if since.count("#EXTINF") >= 3 else None
    return wait_until(f"GET {master_url(base)} = 200", get, timeout, interval=0.25, log=log)


def renditions(master):
    """[(name, uri relative to the channel)] of every media playlist the
    master names: each variant and each EXT-X-MEDIA with a URI."""
    variants, media = parse_master(master)
    out = [(uri.split("/")[0], uri) for _, uri in variants]
    out += [(m["URI"].split("/")[0], m["URI"]) for m in media if "URI" in m]
    return out


def media_playlist(base, rel):
    url = f"{base}/hls/{CHANNEL}/{rel}"
    status, _, body = http(url, timeout=10)
    if status != 200:
        raise AssertionError(f"GET {url}: HTTP {status} {body[:200]!r}")
    return MediaPlaylist(body.decode(), url)


def try_media_playlist(base, rel):
    """The playlist, or None while it is not served yet (404 "no segments yet")."""
    url = f"{base}/hls/{CHANNEL}/{rel}"
    status, _, body = http(url, timeout=10)
    return MediaPlaylist(body.decode(), url) if status == 200 else None


def last_msn(pl):
    """The highest media sequence number listed (the open segment included)."""
    return pl.segments[-1].msn if pl.segments else pl.media_sequence - 1


def channel_live(base):
    import json
    status, _, body = http(f"{base}/api/v1/channels", timeout=5)
    if status != 200:
        raise AssertionError(f"/api/v1/channels: HTTP {status}")
    for ch in json.loads(body)["channels"]:
        if ch["name"] == CHANNEL:
            return ch
    raise AssertionError(f"channel {CHANNEL} not in /api/v1/channels")


