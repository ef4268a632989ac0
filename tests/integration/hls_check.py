#!/usr/bin/env python3
"""hls_check: verify a live LL-HLS stream against RFC 8216bis, over time.

Standard library only (plus the ffprobe binary for the media checks), so
other tests import it:

    from hls_check import HlsChecker
    c = HlsChecker("http://127.0.0.1:8080/hls/gala/master.m3u8")
    problems = c.run(seconds=12)          # [] when all is well
    c.check_blocking_reload("720p/index.m3u8", count=6)

or run it by hand:  hls_check.py URL [--seconds 12] [--no-media]

What it checks, reloading every media playlist about once per part:
  playlists   #EXTM3U; one TARGETDURATION; EXT-X-PART-INF; SERVER-CONTROL with
              CAN-BLOCK-RELOAD=YES and PART-HOLD-BACK >= 2 x PART-TARGET;
              EXT-X-PROGRAM-DATE-TIME on every segment; a PRELOAD-HINT
  durations   every part <= PART-TARGET, every part but the last of its
              segment (and INDEPENDENT ones) >= 85% of it; every segment's
              EXTINF rounded <= TARGETDURATION
  sequence    MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE never go back; an MSN
              keeps its URI and duration from one reload to the next; a
              segment keeps its PDT
  media       (ffprobe) INDEPENDENT=YES is true to the part (its first frame
              is a keyframe) and parts without it do not start with one;
              every segment starts with a keyframe; for an MSN present in
              every video rendition, the first frame's time is the same
  blocking    _HLS_msn/_HLS_part for the next part is answered within one
              part duration (plus slack) of the part's completion, and the
              answer lists it; far-future requests get 400
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def fetch(url, timeout=15):
    """(status, headers with lower-case names, body bytes, seconds taken)."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body, time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read(), time.monotonic() - t0


def attrs(text):
    out = {}
    for k, v in ATTR_RE.findall(text):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


class Segment:
    def __init__(self):
        self.msn = None
        self.uri = None
        self.duration = None
        self.pdt = None
        self.discontinuity = False
        self.map = None
        self.parts = []  # (duration, uri, independent)


class MediaPlaylist:
    """A parsed media playlist; `segments` includes the open one (uri None)."""

    def __init__(self, text, url):
        self.url = url
        self.text = text
        self.lines = text.splitlines()
        self.tags = {}
        self.segments = []
        self.hint = None
        self.reports = []
        self.problems = []
        self._parse()

    def _parse(self):
        if not self.lines or self.lines[0] != "#EXTM3U":
            self.problems.append("first line is not #EXTM3U")
        seq = None
        cur = Segment()
        cur_map = None
        for line in self.lines[1:]:
            if not line:
                continue
            if line.startswith("#"):
                name, _, value = line[1:].partition(":")
                if name in ("EXT-X-TARGETDURATION", "EXT-X-MEDIA-SEQUENCE", "EXT-X-DISCONTINUITY-SEQUENCE",
                            "EXT-X-PART-INF", "EXT-X-SERVER-CONTROL", "EXT-X-VERSION"):
                    if name in self.tags:
                        self.problems.append(f"{name} appears twice")
                    self.tags[name] = value
                    if name == "EXT-X-MEDIA-SEQUENCE":
                        seq = int(value)
                elif name == "EXT-X-MAP":
                    cur_map = attrs(value).get("URI")
                elif name == "EXT-X-PROGRAM-DATE-TIME":
                    cur.pdt = value
                elif name == "EXT-X-DISCONTINUITY":
                    cur.discontinuity = True
                elif name == "EXT-X-PART":
                    a = attrs(value)
                    cur.parts.append((float(a["DURATION"]), a["URI"], a.get("INDEPENDENT") == "YES"))
                elif name == "EXTINF":
                    cur.duration = float(value.split(",")[0])
                elif name == "EXT-X-PRELOAD-HINT":
                    self.hint = attrs(value)
                elif name == "EXT-X-RENDITION-REPORT":
                    self.reports.append(attrs(value))
                continue
            cur.uri = line
            cur.map = cur_map
            self.segments.append(cur)
            cur = Segment()
        if cur.parts:
            cur.map = cur_map
            self.segments.append(cur)
        if seq is None:
            seq = 0
        for i, s in enumerate(self.segments):
            s.msn = seq + i
        self.media_sequence = seq
        self.disc_sequence = int(self.tags.get("EXT-X-DISCONTINUITY-SEQUENCE", "0"))
        self.target = int(self.tags.get("EXT-X-TARGETDURATION", "0"))
        self.part_target = float(attrs(self.tags.get("EXT-X-PART-INF", "")).get("PART-TARGET", "0"))
        self.server_control = attrs(self.tags.get("EXT-X-SERVER-CONTROL", ""))

    def last_part(self):
        """(msn, part index) of the last part listed, or None."""
        for s in reversed(self.segments):
            if s.parts:
                return s.msn, len(s.parts) - 1
        return None

    def next_part(self):
        last = self.last_part()
        if last is None:
            return None
        msn, part = last
        seg = self.segments[-1]
        if seg.uri is not None:  # the last segment is complete: the next part starts a new one
            return seg.msn + 1, 0
        return msn, part + 1


def parse_master(text):
    """[(attrs, uri)] for each variant, [attrs] for each EXT-X-MEDIA."""
    variants, media = [], []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            variants.append((attrs(line.split(":", 1)[1]), lines[i + 1].strip()))
        elif line.startswith("#EXT-X-MEDIA:"):
            media.append(attrs(line.split(":", 1)[1]))
    return variants, media


def check_playlist(pl, problems, name):
    """Rules that hold for one playlist on its own."""
    p = problems
    p.extend(f"{name}: {x}" for x in pl.problems)
    if pl.target <= 0:
        p.append(f"{name}: no EXT-X-TARGETDURATION")
    if pl.part_target <= 0:
        p.append(f"{name}: no EXT-X-PART-INF:PART-TARGET")
    if pl.server_control.get("CAN-BLOCK-RELOAD") != "YES":
        p.append(f"{name}: no CAN-BLOCK-RELOAD=YES")
    phb = float(pl.server_control.get("PART-HOLD-BACK", "0"))
    if phb < 2 * pl.part_target - 1e-6:
        p.append(f"{name}: PART-HOLD-BACK {phb} < 2 x PART-TARGET {pl.part_target}")
    if pl.hint is None or pl.hint.get("TYPE") != "PART":
        p.append(f"{name}: no EXT-X-PRELOAD-HINT:TYPE=PART")
    for i, s in enumerate(pl.segments):
        if s.pdt is None:
            p.append(f"{name}: segment {s.msn} has no EXT-X-PROGRAM-DATE-TIME")
        if s.map is None:
            p.append(f"{name}: segment {s.msn} has no EXT-X-MAP")
        if s.duration is not None and round(s.duration) > pl.target:
            p.append(f"{name}: segment {s.msn} EXTINF {s.duration} > TARGETDURATION {pl.target}")
        for j, (d, uri, ind) in enumerate(s.parts):
            if d > pl.part_target + 1e-4:
                p.append(f"{name}: part {uri} DURATION {d} > PART-TARGET {pl.part_target}")
            # the last part of a segment may be short; in the open segment the
            # last part listed may turn out to be the last one
            last_of_segment = j == len(s.parts) - 1
            if d < 0.85 * pl.part_target - 1e-4 and not ind and not last_of_segment:
                p.append(f"{name}: part {uri} DURATION {d} < 85% of PART-TARGET")
        if s.uri is not None and s.parts:
            total = sum(d for d, _, _ in s.parts)
            if abs(total - s.duration) > 0.002:
                p.append(f"{name}: segment {s.msn} EXTINF {s.duration} != sum of its parts {total:.5f}")
        if s.parts and not s.parts[0][2]:
            p.append(f"{name}: segment {s.msn} first part is not INDEPENDENT")


def ffprobe_first_frames(init, media, count=1):
    """[(pts_time, is_key)] of the first `count` video/audio packets of init+media."""
    with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as f:
        f.write(init + media)
        path = f.name
    try:
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=pts_time,flags",
                            "-read_intervals", f"%+#{count}", "-of", "csv=p=0", path],
                           capture_output=True, text=True, timeout=20)
        out = []
        for line in r.stdout.splitlines():
            fields = line.strip().split(",")
            if len(fields) >= 2 and fields[0] not in ("", "N/A"):
                out.append((float(fields[0]), "K" in fields[1]))
        return out
    finally:
        os.unlink(path)


class HlsChecker:
    def __init__(self, master_url, media=True):
        self.master_url = master_url
        self.media = media
        self.problems = []
        self.playlists = {}  # name -> [MediaPlaylist] over time
        self.inits = {}
        self.renditions = []  # (name, url, is_video)

    def url(self, rel, base=None):
        return urllib.parse.urljoin(base or self.master_url, rel)

    def load_master(self):
        status, headers, body, _ = fetch(self.master_url)
        if status != 200:
            raise AssertionError(f"master playlist: HTTP {status}")
        self.check_headers("master", headers, playlist=True)
        text = body.decode()
        variants, media = parse_master(text)
        if not variants:
            self.problems.append("master: no EXT-X-STREAM-INF")
        for a, uri in variants:
            for key in ("BANDWIDTH", "CODECS"):
                if key not in a:
                    self.problems.append(f"master: variant {uri} lacks {key}")
            if "RESOLUTION" in a:
                for key in ("AVERAGE-BANDWIDTH", "FRAME-RATE"):
                    if key not in a:
                        self.problems.append(f"master: variant {uri} lacks {key}")
            if "avc1" in a.get("CODECS", "") or "hvc1" in a.get("CODECS", ""):
                self.renditions.append((uri.split("/")[0], self.url(uri), True))
            else:
                self.renditions.append((uri.split("/")[0], self.url(uri), False))
            if media and a.get("AUDIO") != media[0].get("GROUP-ID"):
                self.problems.append(f"master: variant {uri} does not use the audio group")
        for m in media:
            if m.get("TYPE") == "AUDIO" and "URI" in m:
                self.renditions.append((m["URI"].split("/")[0], self.url(m["URI"]), False))
        return text

    def check_headers(self, what, headers, playlist):
        if headers.get("access-control-allow-origin") != "*":
            self.problems.append(f"{what}: no Access-Control-Allow-Origin: *")
        cc = headers.get("cache-control", "")
        if playlist and "no-cache" not in cc:
            self.problems.append(f"{what}: playlist Cache-Control is {cc!r}")
        if not playlist and "max-age" not in cc:
            self.problems.append(f"{what}: media Cache-Control is {cc!r}")

    def load(self, name, url):
        status, headers, body, _ = fetch(url)
        if status != 200:
            self.problems.append(f"{name}: HTTP {status}")
            return None
        self.check_headers(name, headers, playlist=True)
        pl = MediaPlaylist(body.decode(), url)
        check_playlist(pl, self.problems, name)
        hist = self.playlists.setdefault(name, [])
        if hist:
            self.compare(name, hist[-1], pl)
        hist.append(pl)
        return pl

    def compare(self, name, old, new):
        p = self.problems
        if new.media_sequence < old.media_sequence:
            p.append(f"{name}: MEDIA-SEQUENCE went back {old.media_sequence} -> {new.media_sequence}")
        if new.disc_sequence < old.disc_sequence:
            p.append(f"{name}: DISCONTINUITY-SEQUENCE went back")
        if new.target != old.target:
            p.append(f"{name}: TARGETDURATION changed {old.target} -> {new.target}")
        before = {s.msn: s for s in old.segments if s.uri}
        for s in new.segments:
            o = before.get(s.msn)
            if o and s.uri and (o.uri != s.uri or abs(o.duration - s.duration) > 1e-6 or o.pdt != s.pdt):
                p.append(f"{name}: segment {s.msn} changed between reloads")

    def get_media(self, url, what):
        status, headers, body, _ = fetch(url)
        if status != 200:
            self.problems.append(f"{what}: HTTP {status}")
            return None
        self.check_headers(what, headers, playlist=False)
        return body

    def get_part(self, name, pl_url, uri):
        """A part, or None. Parts are kept only for the last few target
        durations: a part that left the playlist while we were busy (ffprobe
        of the ones before, a slow ASan build) is not a problem; one still
        listed that cannot be fetched is."""
        status, headers, body, _ = fetch(self.url(uri, pl_url))
        if status == 200:
            self.check_headers(f"{name} {uri}", headers, playlist=False)
            return body
        st, _, pl_body, _ = fetch(pl_url)
        if st == 200 and uri not in pl_body.decode(errors="replace"):
            return None
        self.problems.append(f"{name} {uri}: HTTP {status}")
        return None

    def init_for(self, name, pl_url, map_uri):
        key = (name, map_uri)
        if key not in self.inits:
            self.inits[key] = self.get_media(self.url(map_uri, pl_url), f"{name} {map_uri}") or b""
        return self.inits[key]

    def check_media(self):
        """INDEPENDENT flags, keyframe-started segments, cross-rendition alignment."""
        starts = {}  # msn -> {name: first pts}
        for name, url, is_video in self.renditions:
            hist = self.playlists.get(name)
            if not hist:
                continue
            pl = hist[-1]
            for s in pl.segments[-4:]:
                init = self.init_for(name, url, s.map)
                for d, uri, ind in s.parts[:3]:
                    body = self.get_part(name, url, uri)
                    if body is None:
                        continue
                    frames = ffprobe_first_frames(init, body)
                    if not frames:
                        self.problems.append(f"{name}: part {uri} does not parse (init+part)")
                        continue
                    if is_video and frames[0][1] != ind:
                        self.problems.append(f"{name}: part {uri} INDEPENDENT={'YES' if ind else 'NO'} "
                                             f"but its first frame is {'' if frames[0][1] else 'not '}a keyframe")
                if s.uri is None:
                    continue
                body = self.get_media(self.url(s.uri, url), f"{name} {s.uri}")
                if body is None:
                    continue
                frames = ffprobe_first_frames(init, body)
                if not frames:
                    self.problems.append(f"{name}: segment {s.uri} does not parse (init+segment)")
                    continue
                if is_video:
                    if not frames[0][1]:
                        self.problems.append(f"{name}: segment {s.uri} does not start with a keyframe")
                    starts.setdefault(s.msn, {})[name] = frames[0][0]
        videos = [n for n, _, v in self.renditions if v and n in self.playlists]
        for msn, by in starts.items():
            if len(by) == len(videos) and len(videos) > 1:
                lo, hi = min(by.values()), max(by.values())
                if hi - lo > 0.04:  # edit lists may differ by a frame
                    self.problems.append(f"segment {msn}: keyframes not aligned across renditions {by}")

    def check_whole_window(self):
        """Per rendition: init + every complete segment of the last playlist
        (one timeline: from the last discontinuity on), concatenated,
        decodes with ffmpeg -xerror and lasts as long as the EXTINFs say.
        Returns {name: (width, height)} of the video renditions."""
        sizes = {}
        for name, url, is_video in self.renditions:
            pl = self.load(name, url)  # fresh: the window slides
            if not pl:
                continue
            segs = [s for s in pl.segments if s.uri]
            for i in range(len(segs) - 1, -1, -1):
                if segs[i].discontinuity:
                    segs = segs[i:]
                    break
            if len(segs) > 3:
                segs = segs[1:]  # the oldest may leave the window while we fetch
            if len(segs) < 2:
                self.problems.append(f"{name}: fewer than 2 segments in one timeline to decode")
                continue
            data = [self.init_for(name, url, segs[0].map)]
            for s in segs:
                body = self.get_media(self.url(s.uri, url), f"{name} {s.uri}")
                if body is None:
                    break
                data.append(body)
            else:
                with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as f:
                    f.write(b"".join(data))
                    path = f.name
                try:
                    r = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-"],
                                       capture_output=True, text=True, timeout=60)
                    if r.returncode != 0 or r.stderr.strip():
                        self.problems.append(f"{name}: {len(segs)} segments do not decode cleanly: "
                                             f"{r.stderr.strip()[:300]}")
                    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                                        "format=duration,start_time:stream=width,height", "-of", "json",
                                        path],
                                       capture_output=True, text=True, timeout=30)
                    info = json.loads(r.stdout or "{}")
                    fmt = info.get("format", {})
                    # fragments keep their timeline's times (tfdt): the
                    # window starts where it starts, not at 0
                    got = float(fmt.get("duration", 0)) - float(fmt.get("start_time", 0))
                    want = sum(s.duration for s in segs)
                    if abs(got - want) > 0.1:
                        self.problems.append(f"{name}: decoded {got:.3f} s, EXTINFs say {want:.3f} s")
                    for st in info.get("streams", []):
                        if is_video and st.get("width"):
                            sizes[name] = (st["width"], st["height"])
                finally:
                    os.unlink(path)
        return sizes

    def run(self, seconds=12.0):
        self.load_master()
        deadline = time.monotonic() + seconds
        interval = 0.3
        while time.monotonic() < deadline:
            for name, url, _ in self.renditions:
                pl = self.load(name, url)
                if pl and pl.part_target:
                    interval = pl.part_target
            time.sleep(interval)
        if self.media:
            self.check_media()
        return self.problems

    def check_blocking_reload(self, rel, count=6, slack=0.25):
        """Ask for the next part `count` times in a row; each answer must
        come within one part duration (plus slack) and list that part.
        Returns the wait times."""
        url = self.url(rel)
        status, _, body, _ = fetch(url)
        if status != 200:
            raise AssertionError(f"{rel}: HTTP {status}")
        pl = MediaPlaylist(body.decode(), url)
        waits = []
        for _ in range(count):
            nxt = pl.next_part()
            if nxt is None:
                raise AssertionError(f"{rel}: no parts listed")
            msn, part = nxt
            status, _, body, took = fetch(f"{url}?_HLS_msn={msn}&_HLS_part={part}")
            if status != 200:
                self.problems.append(f"{rel}: blocking reload msn={msn} part={part}: HTTP {status}")
                break
            pl = MediaPlaylist(body.decode(), url)
            seg = [s for s in pl.segments if s.msn == msn]
            has = (seg and len(seg[0].parts) > part) or any(s.msn > msn for s in pl.segments)
            if not has:
                self.problems.append(f"{rel}: blocking reload msn={msn} part={part} answered without it")
            if took > pl.part_target + slack:
                self.problems.append(f"{rel}: blocking reload msn={msn} part={part} took {took:.3f}s "
                                     f"(part target {pl.part_target})")
            waits.append(took)
        last = pl.last_part()
        if last:
            status, _, _, took = fetch(f"{url}?_HLS_msn={last[0] + 3}")
            if status != 400 or took > 1.0:
                self.problems.append(f"{rel}: far-future _HLS_msn answered {status} after {took:.2f}s, want 400")
        return waits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="master playlist URL")
    ap.add_argument("--seconds", type=float, default=12)
    ap.add_argument("--no-media", action="store_true", help="skip the ffprobe checks")
    args = ap.parse_args()
    c = HlsChecker(args.url, media=not args.no_media)
    c.run(args.seconds)
    for name, url, _ in c.renditions:
        rel = url[len(urllib.parse.urljoin(args.url, ".")):]
        c.check_blocking_reload(rel, count=4)
    for p in c.problems:
        print("FAIL", p)
    print(f"{len(c.problems)} problem(s), {sum(len(h) for h in c.playlists.values())} playlist loads")
    return 1 if c.problems else 0


if __name__ == "__main__":
    sys.exit(main())
