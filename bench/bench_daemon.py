"""bench_daemon: what the Python benchmarks that start the daemon share
(bench/hls_latency.py, bench/ladder_bench.py). Imported, not run."""
import argparse
import os
import shutil

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arguments(doc):
    """An argument parser with what every such benchmark takes: --build,
    --bin (the daemon, default BUILD/galarelay) and --keep."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("GALARELAY_BUILD_DIR", os.path.join(SRC, "build")))
    ap.add_argument("--bin", default=os.environ.get("GALARELAY_BIN"), help="default: BUILD/galarelay")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (config, logs, outputs)")
    return ap


def finish(daemon, tmp, keep, say):
    """Stop the daemon (a complaint of its test harness is shown, not
    raised: the figures are already out) and remove the temp folder, or
    keep it and say where."""
    try:
        daemon.stop()
    except AssertionError as e:
        say(str(e)[:2000])
    except Exception:  # noqa: BLE001 - already stopped, or never started
        pass
    if keep:
        say(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
