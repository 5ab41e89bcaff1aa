#!/usr/bin/env python3
"""`make bench`, production size: backup and restore of a ~10 GB database
(`seed --scale xlarge`) through a real S3 server (Garage), against the large
(~1 GB) seed on the same machine.

Measured (issue 17): wall time of backup and restore, peak RSS of each (the
engine streams, so it must stay flat from 1 GB to 10 GB: target <= 1.25 x the
large seed's), and the staging disk a restore uses against the archive's size
(the restore downloads the archive once into its staging directory: target
<= 1.05 x the archive).

Environment: BIN (default target/release/artifortress-operator),
XLARGE_SCALE (default xlarge) and XLARGE_BASE_SCALE (default large); e.g. medium
and small for a quick check of the script.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_bench import BIN, HARNESS, garage_store, log, run, seeded, settle, timed_with_peak_rss  # noqa: E402

SCALE = os.environ.get("XLARGE_SCALE", "xlarge")
BASE_SCALE = os.environ.get("XLARGE_BASE_SCALE", "large")
MIB = 1024 * 1024


def disk_used(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def restore_with_staging_peak(cmd, staging):
    """Wall time, peak RSS and the staging directory's peak disk use of a restore."""
    peak = [0]
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], disk_used(staging))
            stop.wait(0.5)

    t = threading.Thread(target=poll)
    t.start()
    try:
        elapsed, rss, out = timed_with_peak_rss(cmd)
    finally:
        stop.set()
        t.join()
    return elapsed, rss, peak[0], out


def archive_bytes(backup_output):
    m = re.search(r"archive ([\d.]+) (B|KiB|MiB|GiB|TiB)", backup_output)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"B": 1, "KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB, "TiB": 1024 * 1024 * MIB}[unit]


def backup_and_restore(server, target, db, s3_url, work, label):
    settle(server, target)
    log(f"{label}: backup into S3")
    backup_s, backup_rss, out = timed_with_peak_rss([BIN, "backup", "--source", db, "--store", s3_url, "--name", label])
    archive = archive_bytes(out)
    staging = os.path.join(work, f"staging-{label}")
    os.makedirs(staging)
    target_db = target.rsplit("/", 1)[0] + f"/restored_{label}"
    settle(server, target)
    log(f"{label}: restore from S3 (download + verify + pg_restore -j + ANALYZE + parity)")
    restore_s, restore_rss, staged, _ = restore_with_staging_peak(
        [BIN, "restore", "--store", s3_url, "--backup", label, "--target", target_db,
         "--jobs", str(os.cpu_count() or 2), "--staging-dir", staging], staging)
    run(["psql", "-q", target, "-c", f"DROP DATABASE restored_{label}"])
    return dict(backup_s=backup_s, backup_rss=backup_rss, archive=archive, restore_s=restore_s,
                restore_rss=restore_rss, staged=staged)


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: run `cargo build --release` (make bench does)")
    state = tempfile.mkdtemp(prefix="artifortress-xlarge.")
    work = tempfile.mkdtemp(prefix="artifortress-xlarge-work.")
    try:
        source = run([HARNESS, "postgres", state], capture_output=True, text=True).stdout.strip()
        target = run([HARNESS, "postgres", state], capture_output=True, text=True).stdout.strip()
        s3_url = garage_store(state, "xlarge")
        results = {}
        for scale in (BASE_SCALE, SCALE):
            t0 = time.monotonic()
            db = seeded(source, f"bench_{scale}", scale)
            seed_s = time.monotonic() - t0
            size = int(run(["psql", "-At", db, "-c", "SELECT pg_database_size(current_database())"],
                           capture_output=True, text=True).stdout)
            results[scale] = dict(backup_and_restore(source, target, db, s3_url, work, scale), size=size, seed_s=seed_s)
            # The next seed needs the disk more than this database does.
            run(["psql", "-q", source, "-c", f"DROP DATABASE bench_{scale}"])
    finally:
        subprocess.run([HARNESS, "stop", state])
        shutil.rmtree(work, ignore_errors=True)

    big, base = results[SCALE], results[BASE_SCALE]
    rows = [
        ("database size", f"{big['size'] / MIB / 1024:.2f} GiB", f"{BASE_SCALE}: {base['size'] / MIB / 1024:.2f} GiB",
         big["size"] / base["size"], "(seeded in %.0f s)" % big["seed_s"], None),
        ("archive in S3", f"{big['archive'] / MIB:.0f} MiB", f"{BASE_SCALE}: {base['archive'] / MIB:.0f} MiB",
         big["archive"] / base["archive"], "", None),
        ("backup wall time", f"{big['backup_s']:.1f} s", f"{BASE_SCALE}: {base['backup_s']:.1f} s",
         big["backup_s"] / base["backup_s"], "(%.0f MiB/s of database)" % (big["size"] / MIB / big["backup_s"]), None),
        ("backup peak RSS", f"{big['backup_rss'] / MIB:.1f} MiB", f"{BASE_SCALE}: {base['backup_rss'] / MIB:.1f} MiB",
         big["backup_rss"] / base["backup_rss"], "<= 1.25 (flat)", 1.25),
        ("restore wall time", f"{big['restore_s']:.1f} s", f"{BASE_SCALE}: {base['restore_s']:.1f} s",
         big["restore_s"] / base["restore_s"], "", None),
        ("restore peak RSS", f"{big['restore_rss'] / MIB:.1f} MiB", f"{BASE_SCALE}: {base['restore_rss'] / MIB:.1f} MiB",
         big["restore_rss"] / base["restore_rss"], "<= 1.25 (flat)", 1.25),
        ("staging disk used", f"{big['staged'] / MIB:.0f} MiB", f"archive: {big['archive'] / MIB:.0f} MiB",
         big["staged"] / big["archive"], "<= 1.05 (of the archive)", 1.05),
    ]
    print(f"\nProduction-size benchmark: {SCALE} vs {BASE_SCALE} seed, Garage S3, {os.cpu_count()} CPUs")
    print(f"{'measure':<20} {'ours':>12}  {'baseline':<24} {'ratio':>7}  target")
    failed = False
    for name, ours, baseline, ratio, target, limit in rows:
        ok = limit is None or ratio <= limit
        failed |= not ok
        print(f"{name:<20} {ours:>12}  {baseline:<24} {ratio:>7.2f}  {target}{'' if ok else '  MISSED'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
