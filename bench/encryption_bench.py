#!/usr/bin/env python3
"""`make bench`: what client-side encryption (age, to an X25519 recipient) costs
a backup and a restore of the large seed, against the same backup and restore
unencrypted, on the same data and machine.

Target (issue 35): encrypted backup and restore each <= 1.05 x unencrypted.

Rounds alternate plain and encrypted (ROUNDS each, default 5) so drift on the
machine hits both sides alike; the medians are compared. Restores are timed
to usable (download + decrypt + verify + pg_restore + settings + ANALYZE, from
the restore's own timings line), parity excluded (it does not read the dump).

Environment: BENCH_SCALE (default large), ROUNDS, BIN (default target/release/artifortress-operator).
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from engine_bench import BIN, ENV, HARNESS, SCALE, log, run, seeded, settle, timed

ROUNDS = int(os.environ.get("ROUNDS", "5"))


def keypair(work):
    identity = os.path.join(work, "restore-key.txt")
    run(["age-keygen", "-o", identity], capture_output=True)
    return identity, run(["age-keygen", "-y", identity], capture_output=True, text=True).stdout.strip()


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: run `cargo build --release` (make bench does)")
    state = tempfile.mkdtemp(prefix="artifortress-bench.")
    work = tempfile.mkdtemp(prefix="artifortress-bench-work.")
    backups = {"plain": [], "encrypted": []}
    usable = {"plain": [], "encrypted": []}
    sizes = {}
    try:
        source = run([HARNESS, "postgres", state], capture_output=True, text=True).stdout.strip()
        target = run([HARNESS, "postgres", state], capture_output=True, text=True).stdout.strip()
        big = seeded(source, "bench_big", SCALE)
        identity, recipient = keypair(work)
        store = f"file://{work}/store"
        sealing = {"plain": [], "encrypted": ["--encrypt-to", recipient]}
        opening = {"plain": [], "encrypted": ["--identity", identity]}
        jobs = str(os.cpu_count() or 2)
        for n in range(ROUNDS):
            for kind in ("plain", "encrypted"):
                name = f"{kind}-{n}"
                settle(source, target)
                log(f"round {n + 1}/{ROUNDS}: {kind} backup")
                seconds, _ = timed([BIN, "backup", "--source", big, "--store", store, "--name", name, *sealing[kind]],
                                   capture_output=True)
                backups[kind].append(seconds)
                dump = "dump.zst.age" if kind == "encrypted" else "dump"
                sizes[kind] = os.path.getsize(os.path.join(work, "store", name, dump))
                settle(source, target)
                log(f"round {n + 1}/{ROUNDS}: {kind} restore")
                _, out = timed([BIN, "restore", "--store", store, "--backup", name, "--target",
                                target.rsplit("/", 1)[0] + "/restored", "--jobs", jobs, *opening[kind]],
                               capture_output=True, text=True)
                m = re.search(r"download\+verify ([\d.]+) s, recreate\+pg_restore ([\d.]+) s, settings\+analyze ([\d.]+) s",
                              out.stdout)
                usable[kind].append(sum(map(float, m.groups())))
                shutil.rmtree(os.path.join(work, "store", name))
    finally:
        subprocess.run([HARNESS, "stop", state])
        shutil.rmtree(work, ignore_errors=True)

    mib = 1024 * 1024
    print(f"\nencryption overhead on the {SCALE} seed, median of {ROUNDS} alternating rounds "
          f"(stored: plain {sizes['plain'] / mib:.1f} MiB, encrypted {sizes['encrypted'] / mib:.1f} MiB)")
    print(f"{'':<28}{'plain':>10}{'encrypted':>12}{'ratio':>8}  target")
    for what, runs in (("backup", backups), ("restore to usable", usable)):
        plain, sealed = statistics.median(runs["plain"]), statistics.median(runs["encrypted"])
        print(f"{what:<28}{plain:>9.2f}s{sealed:>11.2f}s{sealed / plain:>8.3f}  <= 1.05")
        print(f"{'  every round':<28}{' '.join(f'{s:.2f}' for s in runs['plain']):>10} | "
              f"{' '.join(f'{s:.2f}' for s in runs['encrypted'])}")


if __name__ == "__main__":
    main()
