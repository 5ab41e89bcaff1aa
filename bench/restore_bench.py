#!/usr/bin/env python3
"""`make bench` (second part): where a restore's time goes, and which session
settings and parallel degree make it faster — measured in one run, on a target
server with production durability (fsync, synchronous_commit and
full_page_writes on; the test servers turn them off).

Prints three tables and writes them as JSON (BENCH_JSON, default
target/bench/restore.json):
  phases    ours (download+verify+index, schema, table data, indexes after the
            data, ANALYZE, parity) beside a psql restore of a plain dump split
            the same way (pg_dump --section pre-data / data / post-data), and
            the largest table's share of pg_restore
  settings  recreate+pg_restore with no session settings (as shipped), each
            setting alone, and all four; the best of two rounds each
  jobs      recreate+pg_restore at -j 1..4

Environment: BENCH_SCALE (default large), BIN (default target/release/...).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import engine_bench as eb

JSON_OUT = os.environ.get("BENCH_JSON", os.path.join(eb.ROOT, "target/bench/restore.json"))
DURABLE = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
SETTINGS = [
    ("none (the server's own)", []),
    ("maintenance_work_mem=256MB", ["--session-setting", "maintenance_work_mem=256MB"]),
    ("maintenance_work_mem=1GB", ["--session-setting", "maintenance_work_mem=1GB"]),
    ("synchronous_commit=off", ["--session-setting", "synchronous_commit=off"]),
    ("work_mem=256MB", ["--session-setting", "work_mem=256MB"]),
    ("max_parallel_maintenance_workers=4", ["--session-setting", "max_parallel_maintenance_workers=4"]),
    ("all four", ["--session-setting", "maintenance_work_mem=1GB", "--session-setting", "synchronous_commit=off",
                  "--session-setting", "work_mem=256MB", "--session-setting", "max_parallel_maintenance_workers=4"]),
]


def restore(store, target, *extra):
    """One restore of backup `big`: its timing lines, parsed."""
    out = eb.run([eb.BIN, "restore", "--store", f"file://{store}", "--backup", "big", "--target", target, *extra],
                 capture_output=True, text=True)
    t = re.search(r"download\+verify ([\d.]+) s, recreate\+pg_restore ([\d.]+) s, settings\+analyze ([\d.]+) s, "
                  r"parity ([\d.]+) s", out.stdout)
    p = re.search(r"pg_restore schema ([\d.]+) s, data ([\d.]+) s, indexes and constraints after the data ([\d.]+) s"
                  r"(?:; largest table (\S+) \(([^)]*) in the archive\) ([\d.]+) s)?", out.stdout)
    download, pg_restore, analyze, parity = map(float, t.groups())
    result = dict(download_verify_index=download, recreate_pg_restore=pg_restore, analyze=analyze, parity=parity,
                  schema=float(p.group(1)), data=float(p.group(2)), indexes_after_data=float(p.group(3)))
    if p.group(4):
        result["largest_table"] = dict(name=p.group(4), archive=p.group(5), seconds=float(p.group(6)))
    return result


def psql_by_section(source, target_server, work, tables):
    """The plain-dump baseline in the same phases: each section a psql run."""
    bindir = eb.pg_bindir()
    files = {}
    for section in ("pre-data", "data", "post-data"):
        files[section] = os.path.join(work, f"{section}.sql")
        subprocess.run([f"{bindir}/pg_dump", "-Fp", f"--section={section}", "-f", files[section]], check=True,
                       env=eb.libpq_env(source))
    db = target_server.rsplit("/", 1)[0] + "/baseline"
    eb.run(["psql", "-q", target_server, "-c", "DROP DATABASE IF EXISTS baseline"])
    eb.settle(target_server)
    phases = {}
    t0 = time.monotonic()
    eb.run(["psql", "-q", target_server, "-c", "CREATE DATABASE baseline"])
    for section, key in (("pre-data", "schema"), ("data", "data"), ("post-data", "indexes_after_data")):
        t = time.monotonic()
        eb.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", files[section], db], stdout=subprocess.DEVNULL)
        phases[key] = time.monotonic() - t
    t = time.monotonic()
    eb.run(["psql", "-q", db, "-c", "ANALYZE"])
    phases["analyze"] = time.monotonic() - t
    t = time.monotonic()
    for table in tables:
        eb.run(["psql", "-At", db, "-c", f"SELECT count(*) FROM {table}"], stdout=subprocess.DEVNULL)
    phases["parity"] = time.monotonic() - t
    phases["total"] = time.monotonic() - t0
    for f in files.values():
        os.remove(f)
    eb.run(["psql", "-q", target_server, "-c", "DROP DATABASE baseline"])
    return phases


def main():
    if not os.access(eb.BIN, os.X_OK):
        sys.exit(f"{eb.BIN} missing: run `cargo build --release` (make bench does)")
    state = tempfile.mkdtemp(prefix="artifortress-bench.")
    work = tempfile.mkdtemp(prefix="artifortress-bench-work.")
    try:
        source_server = eb.run([eb.HARNESS, "postgres", state], capture_output=True, text=True).stdout.strip()
        target_server = subprocess.run([eb.HARNESS, "postgres", state], capture_output=True, text=True, check=True,
                                       env=dict(eb.ENV, PG_EXTRA_OPTS=DURABLE)).stdout.strip()
        durable = eb.run(["psql", "-At", target_server, "-c", "SELECT current_setting('fsync') || "
                          "current_setting('synchronous_commit')"], capture_output=True, text=True).stdout.strip()
        if durable != "onon":
            sys.exit(f"the target server is not durable ({durable}): PG_EXTRA_OPTS not applied")
        big = eb.seeded(source_server, "bench_big", eb.SCALE)
        tables = eb.run(["psql", "-At", big, "-c", "SELECT format('%I.%I', schemaname, relname) "
                         "FROM pg_stat_user_tables ORDER BY 1"], capture_output=True, text=True).stdout.split()
        store = os.path.join(work, "store")
        eb.log("backup of the large seed")
        eb.run([eb.BIN, "backup", "--source", big, "--store", f"file://{store}", "--name", "big"],
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        scratch = target_server.rsplit("/", 1)[0] + "/ours"

        eb.log("session settings, each on and off, best of two rounds")
        settings = {}
        for _ in range(2):
            for name, flags in SETTINGS:
                eb.settle(target_server)
                r = restore(store, scratch, *flags)
                best = settings.get(name)
                if best is None or r["recreate_pg_restore"] < best["recreate_pg_restore"]:
                    settings[name] = r
        eb.log("parallel degree")
        jobs = {}
        for j in (1, 2, 3, 4):
            eb.settle(target_server)
            jobs[j] = restore(store, scratch, "--jobs", str(j))
        eb.log("baseline: psql of a plain dump, section by section")
        baseline = psql_by_section(big, target_server, work, tables)
    finally:
        subprocess.run([eb.HARNESS, "stop", state])
        shutil.rmtree(work, ignore_errors=True)

    ours = settings[SETTINGS[0][0]]  # as shipped: no session settings
    print(f"\nRestore benchmark: {eb.SCALE} seed, {os.cpu_count()} CPUs, target server with {DURABLE}\n")
    print("| phase                          |     ours | psql plain (by section) |")
    print("|--------------------------------|---------:|------------------------:|")
    rows = [("download + verify + index", ours["download_verify_index"], None),
            ("schema (pre-data)", ours["schema"], baseline["schema"]),
            ("table data", ours["data"], baseline["data"]),
            ("indexes, constraints after data", ours["indexes_after_data"], baseline["indexes_after_data"]),
            ("(recreate + pg_restore)", ours["recreate_pg_restore"], None),
            ("ANALYZE", ours["analyze"], baseline["analyze"]),
            ("parity", ours["parity"], baseline["parity"])]
    for name, mine, theirs in rows:
        print(f"| {name:<30} | {mine:>6.2f} s | {'' if theirs is None else f'{theirs:.2f} s':>23} |")
    total = ours["download_verify_index"] + ours["recreate_pg_restore"] + ours["analyze"] + ours["parity"]
    print(f"| {'total':<30} | {total:>6.2f} s | {baseline['total']:>21.2f} s |")
    largest = ours.get("largest_table")
    if largest:
        share = largest["seconds"] / ours["recreate_pg_restore"]
        print(f"\nLargest table: {largest['name']} ({largest['archive']} in the archive), its data "
              f"{largest['seconds']:.2f} s = {share:.0%} of recreate+pg_restore (one session copies it)")
    off = settings[SETTINGS[0][0]]["recreate_pg_restore"]
    print("\n| session settings for pg_restore       | recreate+pg_restore | vs none |")
    print("|---------------------------------------|--------------------:|--------:|")
    for name, _ in SETTINGS:
        r = settings[name]["recreate_pg_restore"]
        print(f"| {name:<37} | {r:>17.2f} s | {r / off:>7.2f} |")
    print("\n| pg_restore -j            | recreate+pg_restore | vs -j 1 |")
    print("|--------------------------|--------------------:|--------:|")
    for j, r in jobs.items():
        print(f"| {j:<24} | {r['recreate_pg_restore']:>17.2f} s | {r['recreate_pg_restore'] / jobs[1]['recreate_pg_restore']:>7.2f} |")
    os.makedirs(os.path.dirname(JSON_OUT), exist_ok=True)
    with open(JSON_OUT, "w") as f:
        json.dump(dict(scale=eb.SCALE, cpus=os.cpu_count(), target_server=DURABLE, phases=dict(ours=ours, psql=baseline),
                       settings=settings, jobs=jobs), f, indent=2)
    print(f"\n(written to {JSON_OUT})")


if __name__ == "__main__":
    main()
