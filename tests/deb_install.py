#!/usr/bin/env python3
"""deb_install: the .deb as an operator meets it, on a fresh Debian 12 root.

ctest runs this (label install, registered in the top-level CMakeLists.txt
beside install_layout) as root. It

1. builds two packages from the build tree with cpack: the project's version
   and the same build as VERSION+upgradetest (for the upgrade), and runs
   lintian on the first (no error, no warning);
2. unpacks a fresh Debian 12 minbase root (debootstrap, cached: see below),
   points its apt at this machine's Debian mirror, mounts /proc and /dev
   into it and blocks service starts with a policy-rc.d (no systemd runs in
   a chroot; the postinst must still succeed);
3. `apt-get install ./galarelay_VERSION_amd64.deb` as a fresh root would
   (Recommends included), checks the installed config with --check, starts
   the installed daemon the way galarelay.service does (working directory
   /var/lib/galarelay) with a copy of the installed config whose two
   listeners are moved to free ports, and checks /healthz, /watch/gala,
   the player, and that a 3 s ffmpeg test-pattern publish to
   rtmp://127.0.0.1:PORT/live/demo-key makes the channel live in
   /api/v1/channels with an HLS playlist; then stops it (SIGTERM, exit 0);
4. edits /etc/galarelay/galarelay.conf and upgrades to the +upgradetest
   package with --force-confold: the edit is kept, the daemon starts again;
5. `apt-get remove`: the binary is gone, the conffile and the state stay;
   `apt-get purge`: the conffile, the state (/var/lib/galarelay) and the
   unit's enable symlink are gone.

The root filesystem comes from `debootstrap --variant=minbase bookworm`
against the mirror this machine's apt uses (read from /etc/apt/sources.list*
at run time), made once and kept as a tarball in the cache directory,
/var/cache/galarelay-test (or $GALARELAY_DEB_TEST_CACHE), together with
apt's downloaded packages and indexes so that later runs fetch little.
Each run unpacks the tarball afresh. To drop the cache (a new point
release, a changed mirror): rm -rf /var/cache/galarelay-test

Every mount is made inside a private mount namespace (the script re-runs
itself under `unshare --mount`): whatever way the test ends, the mounts go
with the namespace and never leak onto the host; they are also unmounted
explicitly before the root is deleted.

Without root it skips (exit 77) with a loud message, except under CI=true,
where it fails: it never skips in CI. A missing tool or an unreachable
mirror is a failure.
"""
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77
SUITE = "bookworm"
CACHE = os.environ.get("GALARELAY_DEB_TEST_CACHE", "/var/cache/galarelay-test")
UPGRADE_SUFFIX = "+upgradetest"
CONF = "/etc/galarelay/galarelay.conf"
STATE = "/var/lib/galarelay"
UNIT_LINK = "/etc/systemd/system/multi-user.target.wants/galarelay.service"
NS_MARK = "GALARELAY_DEB_TEST_NS"

t0 = time.monotonic()


def log(msg):
    print(f"deb_install [{time.monotonic() - t0:6.1f}s] {msg}", flush=True)


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run(cmd, what=None, timeout=900, **kw):
    """Runs cmd; on failure raises Fail with its output."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if r.returncode != 0:
        raise Fail(f"{what or ' '.join(cmd)} failed (exit {r.returncode}):\n{r.stdout[-6000:]}")
    return r.stdout


# --- preconditions ------------------------------------------------------------

def preconditions():
    ci = os.environ.get("CI", "").lower() == "true"
    if os.geteuid() != 0:
        msg = "deb_install needs root (debootstrap, chroot, mount)"
        if ci:
            print(f"deb_install: FAIL: {msg}; under CI=true it never skips", file=sys.stderr)
            sys.exit(1)
        print("\n" + "!" * 72 + f"\n!! deb_install SKIPPED: {msg}.\n"
              "!! The .deb was NOT installed on a fresh Debian 12 root. Run as root.\n" + "!" * 72,
              file=sys.stderr, flush=True)
        sys.exit(SKIP)
    missing = [t for t in ("debootstrap", "dpkg-deb", "lintian", "ffmpeg", "unshare", "chroot", "mount",
                           "umount", "tar", "gzip")
               if not shutil.which(t)]
    if missing:
        raise Fail(f"missing tools: {' '.join(missing)} (scripts/bootstrap.sh installs them)")


def enter_private_mount_namespace():
    """Re-runs this script in a mount namespace of its own (see the top)."""
    if os.environ.get(NS_MARK) == "1":
        run(["mount", "--make-rprivate", "/"], "mount --make-rprivate /")
        # A stop (ctest's timeout, ^C) still runs main's cleanup.
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
        return
    env = dict(os.environ, **{NS_MARK: "1"})

    def die_with_parent():
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    # The namespace dies with its last process; signals reach the child, and
    # a SIGTERM when this process is killed outright.
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", sys.executable, *sys.argv],
                         env=env, preexec_fn=die_with_parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: p.send_signal(s))
    sys.exit(p.wait())


# --- this machine's Debian mirror ---------------------------------------------

def apt_sources():
    """(uri, suite, components) of every enabled `deb` source of this machine."""
    out = []
    one_line = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in one_line:
        if not os.path.isfile(path):
            continue
        for line in open(path, encoding="utf-8", errors="replace"):
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                out.append((line[1], line[2], line[3:] or ["main"]))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        text = open(path, encoding="utf-8", errors="replace").read()
        for stanza in re.split(r"\n\s*\n", text):
            fields, key = {}, None
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, val = line.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = val.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    out.append((uri, suite, fields.get("components", "main").split()))
    return out


def debian_sources():
    """This machine's sources for Debian 12 (bookworm, -updates, -security)."""
    src = [s for s in apt_sources() if re.fullmatch(SUITE + r"(-updates|-security|/updates)?", s[1])]
    check(any(s[1] == SUITE for s in src),
          f"no enabled '{SUITE}' source in /etc/apt/sources.list*: cannot pick a Debian mirror")
    return src


# --- the cached minbase root ----------------------------------------------------

def cached_root_tarball():
    os.makedirs(CACHE, exist_ok=True)
    tarball = os.path.join(CACHE, f"{SUITE}-minbase-amd64.tar.gz")
    with open(os.path.join(CACHE, "lock"), "w") as lock:
        # Two runs at once (two build trees): one makes it, the other waits.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(tarball):
            log(f"fresh root from the cache {tarball}")
            return tarball
        mirror = next(s[0] for s in debian_sources() if s[1] == SUITE)
        log(f"no cached root: debootstrap --variant=minbase {SUITE} from {mirror} (once)")
        tmp = tempfile.mkdtemp(prefix="debootstrap.", dir=CACHE)
        try:
            run(["debootstrap", "--variant=minbase", SUITE, tmp, mirror], "debootstrap", timeout=1800)
            run(["tar", "-C", tmp, "-czf", tarball + ".part", "."], "tar the root")
            os.rename(tarball + ".part", tarball)
        finally:
            unmount_under(tmp)
            subprocess.run(["rm", "-rf", "--one-file-system", tmp])
        log(f"cached the root as {tarball}")
        return tarball


# --- mounts -----------------------------------------------------------------------

def mounts_under(path):
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return found


def unmount_under(path):
    for mp in sorted(mounts_under(path), key=len, reverse=True):
        if subprocess.run(["umount", mp]).returncode != 0:
            subprocess.run(["umount", "-l", mp])
    left = mounts_under(path)
    check(not left, f"still mounted: {left}")


def kill_chrooted(path):
    """Kills what still runs inside the root (an apt-get cut short), all of
    it started by this test, so that its mounts can go."""
    path = os.path.realpath(path)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/root") == path:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.5)


# --- the chroot -----------------------------------------------------------------

class Root:
    def __init__(self, path, logs):
        self.path = path
        self.logs = logs
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
                    "LANG": "C.UTF-8", "HOME": "/root"}

    def p(self, inside):
        return os.path.join(self.path, inside.lstrip("/"))

    def sh(self, script, what, timeout=900):
        out = run(["chroot", self.path, "/bin/sh", "-ec", script], what, timeout=timeout, env=self.env)
        with open(os.path.join(self.logs, "chroot.log"), "a") as f:
            f.write(f"\n### {what}\n$ {script}\n{out}")
        return out

    def apt(self, args, what):
        return self.sh("apt-get -y -o Dpkg::Options::=--force-confold " + args, what)

    def status(self):
        r = subprocess.run(["chroot", self.path, "dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}",
                            "galarelay"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env=self.env)
        return r.stdout.strip() if r.returncode == 0 else "not known"

    def read(self, inside):
        with open(self.p(inside), encoding="utf-8") as f:
            return f.read()


def prepare_root(root, tarball):
    os.makedirs(root.path)
    run(["tar", "-C", root.path, "-xzf", tarball], "unpack the cached root")
    # apt: the same Debian sources as this machine, nothing else.
    for f in glob.glob(root.p("/etc/apt/sources.list.d/*")):
        os.remove(f)
    with open(root.p("/etc/apt/sources.list"), "w") as f:
        for uri, suite, comps in debian_sources():
            f.write(f"deb {uri} {suite} {' '.join(comps)}\n")
    shutil.copy("/etc/resolv.conf", root.p("/etc/resolv.conf"))
    # No systemd in a chroot: invoke-rc.d / deb-systemd-invoke start nothing.
    with open(root.p("/usr/sbin/policy-rc.d"), "w") as f:
        f.write("#!/bin/sh\n# deb_install: no service starts in this chroot\nexit 101\n")
    os.chmod(root.p("/usr/sbin/policy-rc.d"), 0o755)
    run(["mount", "-t", "proc", "proc", root.p("/proc")], "mount /proc")
    # rbind: /dev/pts too, where dpkg and apt open their log's terminal.
    run(["mount", "--rbind", "/dev", root.p("/dev")], "mount /dev")
    # apt's downloads and indexes persist between runs (the cache, above).
    for inside, name in (("/var/cache/apt/archives", "apt-archives"), ("/var/lib/apt/lists", "apt-lists")):
        host = os.path.join(CACHE, name)
        os.makedirs(os.path.join(host, "partial"), exist_ok=True)
        os.makedirs(root.p(inside), exist_ok=True)
        run(["mount", "--bind", host, root.p(inside)], f"mount {inside}")
        # apt downloads as the root's _apt user (whose uid is the root's own).
        root.sh(f"chown _apt:root {inside}/partial && chmod 700 {inside}/partial", f"chown {inside}/partial")


# --- the daemon -------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return None, b""


class Daemon:
    """The installed daemon in the chroot, started as galarelay.service would
    (working directory /var/lib/galarelay), with the installed config's
    listeners moved to free ports."""

    def __init__(self, root, name):
        self.root = root
        self.http, self.rtmp = free_port(), free_port()
        while self.rtmp == self.http:
            self.rtmp = free_port()
        conf = root.read(CONF)
        conf, n1 = re.subn(r"(?m)^http_listen *=.*$", f"http_listen = 127.0.0.1:{self.http}", conf)
        conf, n2 = re.subn(r"(?m)^rtmp_listen *=.*$", f"rtmp_listen = 127.0.0.1:{self.rtmp}", conf)
        check(n1 == 1 and n2 == 1, f"{CONF} lacks an http_listen or rtmp_listen line to move")
        with open(root.p("/tmp/galarelay-test.conf"), "w") as f:
            f.write(conf)
        self.log_path = os.path.join(root.logs, f"daemon-{name}.log")
        self.log = open(self.log_path, "w")
        # exec: the chroot's pid is the daemon's, so SIGTERM reaches it.
        self.proc = subprocess.Popen(
            ["chroot", root.path, "/bin/sh", "-ec",
             f"mkdir -p {STATE} && cd {STATE} && exec /usr/bin/galarelay -c /tmp/galarelay-test.conf"],
            stdout=self.log, stderr=subprocess.STDOUT, env=root.env)
        deadline = time.monotonic() + 30
        while http_get(self.http, "/healthz", 1)[0] != 200:
            if self.proc.poll() is not None:
                raise Fail(f"the installed daemon exited ({self.proc.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise Fail(f"no 200 from /healthz in 30 s:\n{self.output()}")
            time.sleep(0.2)

    def output(self):
        self.log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-6000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Fail(f"the daemon did not stop within 20 s of SIGTERM:\n{self.output()}")
        self.log.close()
        return self.proc.returncode


def channel(port, name):
    status, body = http_get(port, "/api/v1/channels")
    if status != 200:
        return None
    return next((c for c in json.loads(body)["channels"] if c["name"] == name), None)


def serve_and_publish(d):
    status, body = http_get(d.http, "/watch/gala")
    check(status == 200 and b"/vendor/hls.min.js" in body, f"/watch/gala: {status} {body[:200]!r}")
    status, body = http_get(d.http, "/vendor/hls.min.js")
    check(status == 200 and len(body) > 10000, f"/vendor/hls.min.js: {status}, {len(body)} bytes")
    ch = channel(d.http, "gala")
    check(ch is not None and ch["live"] is False, f"before the publish: {ch}")

    url = f"rtmp://127.0.0.1:{d.rtmp}/live/demo-key"
    log(f"publishing a 3 s test pattern to {url}")
    ff = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                           "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3",
                           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
                           "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen_live = playlist = False
    while ff.poll() is None:
        ch = channel(d.http, "gala")
        seen_live = seen_live or bool(ch and ch["live"])
        if seen_live and not playlist:
            status, body = http_get(d.http, "/hls/gala/master.m3u8", 2)
            playlist = status == 200 and body.startswith(b"#EXTM3U")
        time.sleep(0.2)
    out = ff.stdout.read()
    check(ff.returncode == 0, f"ffmpeg publish failed ({ff.returncode}):\n{out}\n{d.output()}")
    check(seen_live, f"gala never went live in /api/v1/channels during the publish:\n{d.output()}")
    check(playlist, f"no /hls/gala/master.m3u8 while gala was live:\n{d.output()}")


# --- the test ---------------------------------------------------------------------

def build_packages(build_dir, cpack, work):
    """The package as built, and the same build as VERSION+upgradetest: what
    an upgrade installs."""
    def one(sub, *extra):
        out_dir = os.path.join(work, sub)
        run([cpack, "--config", os.path.join(build_dir, "CPackConfig.cmake"), "-G", "DEB", "-B", out_dir,
             *extra], f"cpack ({sub})", timeout=600)
        found = glob.glob(os.path.join(out_dir, "*.deb"))
        check(len(found) == 1, f"cpack made {found} in {out_dir}")
        return found[0]

    deb = one("pkg")
    version = dpkg_field(deb, "Version")
    return deb, one("pkg-upgrade", "-D", f"CPACK_PACKAGE_VERSION={version}{UPGRADE_SUFFIX}")


def dpkg_field(deb, field):
    return run(["dpkg-deb", "-f", deb, field]).strip()


def main():
    build_dir = os.environ.get("GALARELAY_BUILD_DIR") or sys.exit("deb_install: GALARELAY_BUILD_DIR unset")
    cpack = sys.argv[1] if len(sys.argv) > 1 else shutil.which("cpack")
    work = os.path.join(build_dir, "deb-install")
    root = Root(os.path.join(work, "root"), os.path.join(work, "logs"))
    daemon = None
    try:
        unmount_under(work)
        subprocess.run(["rm", "-rf", "--one-file-system", work], check=True)
        os.makedirs(root.logs)

        deb, deb_up = build_packages(build_dir, cpack, work)
        version = dpkg_field(deb, "Version")
        log(f"built {os.path.basename(deb)} and {os.path.basename(deb_up)}")
        lint = subprocess.run(["lintian", "--fail-on", "error,warning", deb], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        check(lint.returncode == 0, f"lintian finds errors or warnings in the .deb:\n{lint.stdout}")
        log("lintian: no errors, no warnings")

        prepare_root(root, cached_root_tarball())
        os.makedirs(root.p("/tmp/pkg"))
        for d in (deb, deb_up):
            shutil.copy(d, root.p("/tmp/pkg"))
        os.chmod(root.p("/tmp/pkg"), 0o755)
        log("root ready")

        # --- install -----------------------------------------------------------
        root.apt("update", "apt-get update")
        root.apt(f"install ./tmp/pkg/{os.path.basename(deb)}", "apt-get install ./galarelay.deb")
        check(root.status() == f"ii {version}", f"after install: dpkg says {root.status()}")
        log(f"installed galarelay {version} and its dependencies")
        check(os.path.exists(root.p("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")),
              "the CJK font (Recommends: fonts-noto-cjk) was not installed")
        check(os.path.islink(root.p(UNIT_LINK)), f"postinst did not enable the unit ({UNIT_LINK})")
        root.sh(f"galarelay --check -c {CONF}", "galarelay --check on the installed config")
        readme_links(root)

        daemon = Daemon(root, "install")
        log(f"the installed daemon serves /healthz (http {daemon.http}, rtmp {daemon.rtmp})")
        serve_and_publish(daemon)
        rc, daemon = daemon.stop(), None
        check(rc == 0, f"the daemon exited {rc} on SIGTERM")
        check(os.path.isdir(root.p(STATE + "/galarelay-state")),
              f"the daemon kept no state under {STATE}")
        log("watch page, player, publish, live channel, HLS playlist, clean stop: ok")

        # --- upgrade with an edited conffile ------------------------------------
        edited = root.read(CONF).replace(";log_level = info", "log_level = debug", 1)
        edited += "\n; edited by the operator before the upgrade\n"
        with open(root.p(CONF), "w") as f:
            f.write(edited)
        root.apt(f"install ./tmp/pkg/{os.path.basename(deb_up)}", "apt-get install (upgrade)")
        check(root.status() == f"ii {version}{UPGRADE_SUFFIX}", f"after the upgrade: dpkg says {root.status()}")
        check(root.read(CONF) == edited, "the upgrade did not keep the edited conffile")
        check(not os.path.exists(root.p(CONF + ".dpkg-new")), "the upgrade left a .dpkg-new beside the conffile")
        daemon = Daemon(root, "upgrade")
        rc, daemon = daemon.stop(), None
        check(rc == 0, f"the daemon exited {rc} on SIGTERM after the upgrade")
        log("upgrade kept the edited conffile; the daemon runs with it")

        # --- remove, purge ---------------------------------------------------------
        root.apt("remove galarelay", "apt-get remove")
        check(root.status().startswith("rc"), f"after remove: dpkg says {root.status()}")
        check(not os.path.exists(root.p("/usr/bin/galarelay")), "remove left /usr/bin/galarelay")
        check(root.read(CONF) == edited, "remove did not keep the conffile")
        check(os.path.isdir(root.p(STATE)), f"remove deleted {STATE}")
        root.apt("purge galarelay", "apt-get purge")
        check(root.status() == "not known" or root.status().startswith(("un", "pn")),
              f"after purge: dpkg says {root.status()}")
        for gone in (CONF, STATE, UNIT_LINK):
            check(not os.path.lexists(root.p(gone)), f"purge left {gone}")
        log("remove kept the conffile and the state; purge deleted both")
        log(f"PASS (galarelay {version}, {time.monotonic() - t0:.0f} s)")
        return 0
    except (Fail, subprocess.TimeoutExpired) as e:
        print(f"deb_install: FAIL: {e}", file=sys.stderr, flush=True)
        print(f"deb_install: logs in {root.logs}", file=sys.stderr)
        return 1
    finally:
        if daemon is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        kill_chrooted(root.path)
        unmount_under(work)
        subprocess.run(["rm", "-rf", "--one-file-system", root.path])


def readme_links(root):
    """The README's relative links resolve in the installed docs."""
    doc = root.p("/usr/share/doc/galarelay")
    links = re.findall(r"\]\(([^)#]+)\)", root.read("/usr/share/doc/galarelay/README.md"))
    local = [l for l in links if not re.match(r"[a-z]+:", l)]
    check(local, "the installed README has no relative links to check")
    broken = [l for l in local if not os.path.exists(os.path.join(doc, l))]
    check(not broken, f"the installed README links to what is not installed: {broken}")


if __name__ == "__main__":
    try:
        preconditions()
    except Fail as e:
        sys.exit(f"deb_install: FAIL: {e}")
    enter_private_mount_namespace()
    sys.exit(main())
