#!/usr/bin/env python3
"""`make bench`: the recovery engine against script-style baselines, measured in
one run on the same data and machine.

Targets (issue 3):
  backup wall time        <= 0.6 x `pg_dump -Fc > /dev/null`
  stored bytes            <= 1.0 x that dump's size
  backup peak RSS         <= 64 MiB, flat in database size (checked on two sizes)
  restore + parity        <= 0.45 x psql restore of a plain dump + ANALYZE + sequential count(*)
                          (ours: download + verify + pg_restore -j + settings + ANALYZE + parity;
                          the largest tables copied through -j sessions, issue 34)
  time to usable          <= 0.55 x psql restore of a plain dump + ANALYZE
                          (ours: download + verify + pg_restore -j + settings + ANALYZE)
  parity (counts)         <= 10 % of restore time
  blob check, ~200 000    peak RSS <= 64 MiB, time <= 10 % of the large seed's restore
    blob rows and objects   (the large seed's, in Garage; the drill's blob step, from its verdict)
  restore on PG 15 and 18 <= 1.1 x pg_restore -j of a seekable archive of the same data
                          (our pipe-written archive, indexed; recreate + pg_restore phase)

Environment: BENCH_SCALE (default large), BENCH_SMALL_SCALE (default medium),
BIN (default target/release/artifortress-operator).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/artifortress-operator"))
HARNESS = os.path.join(ROOT, "hack/test-env.sh")
SCALE = os.environ.get("BENCH_SCALE", "large")
SMALL_SCALE = os.environ.get("BENCH_SMALL_SCALE", "medium")
ENV = dict(os.environ, ARTIFORTRESS_LOG_FORMAT="text")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, env=ENV, **kw)


def cpu_ticks():
    """(busy, total) clock ticks of all CPUs so far, from /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def cores_busy(before):
    """How many cores were busy on average since `before` (a cpu_ticks())."""
    busy, total = (a - b for a, b in zip(cpu_ticks(), before))
    return (os.cpu_count() or 1) * busy / max(total, 1)


def timed(cmd, **kw):
    start = time.monotonic()
    out = run(cmd, **kw)
    return time.monotonic() - start, out


def timed_with_peak_rss(cmd, phase=None):
    """Wall time and peak RSS (VmHWM) of the process itself, children excluded.
    With `phase` (two patterns of its log lines), the peak is the one between
    them: the process's peak is reset (/proc/PID/clear_refs) at the first, so
    what an earlier step left resident still counts, but not its own peak."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, err, in_phase = [0], [], [phase is None]

    def hwm():
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                return next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")), 0)
        except OSError:
            return 0

    def poll():
        while proc.poll() is None:
            if in_phase[0]:
                peak[0] = max(peak[0], hwm())
            time.sleep(0.02)

    def read_log():
        for line in proc.stderr:
            err.append(line)
            if phase and re.search(phase[0], line):
                with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                    f.write("5")
                in_phase[0] = True
            elif phase and in_phase[0] and re.search(phase[1], line):
                peak[0] = max(peak[0], hwm())
                in_phase[0] = False

    threads = [threading.Thread(target=poll), threading.Thread(target=read_log)]
    for t in threads:
        t.start()
    out = proc.stdout.read()
    proc.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd[1]} failed ({proc.returncode}):\n{''.join(err)}")
    return elapsed, peak[0], out


def progress_of(cmd):
    """Runs a backup and returns the longest stretch its log went without a
    line while dumping (from its `[  12.3s]` stamps) and whether the progress
    lines carry a rate and an ETA."""
    err = run(cmd, capture_output=True, text=True).stderr
    stamps = [float(m.group(1)) for m in re.finditer(r"^backup: \[\s*([\d.]+)s\]", err, re.M)]
    meters = [l for l in err.splitlines() if "] dumping and uploading:" in l]
    with_eta = bool(meters) and all("/s" in l and "ETA" in l for l in meters)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return max(gaps, default=0.0), with_eta


def libpq_env(url):
    m = re.match(r"postgres://([^:]+):([^@]+)@([^:]+):(\d+)/(.+)", url)
    user, password, host, port, db = m.groups()
    return dict(ENV, PGUSER=user, PGPASSWORD=password, PGHOST=host, PGPORT=port, PGDATABASE=db)


def pg_bindir():
    out = subprocess.run(["bash", "-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1"], capture_output=True, text=True)
    return out.stdout.strip()


def settle(*servers):
    """Flush dirty data before a timed phase, so no phase pays for the previous one's writes."""
    for server in servers:
        run(["psql", "-q", server, "-c", "CHECKPOINT"])
    subprocess.run(["sync"], check=True)


def garage_store(state, bucket):
    """A Garage server with `bucket` for the benchmark, its keys put into ENV; the store URL."""
    garage = dict(line.split("=", 1) for line in run([HARNESS, "garage", state, bucket], capture_output=True, text=True).stdout.split())
    ENV.update(AWS_ACCESS_KEY_ID=garage["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY=garage["AWS_SECRET_ACCESS_KEY"])
    return f"s3://{bucket}/af?endpoint={garage['AF_TEST_S3_ENDPOINT']}&region=us-east-1&path_style=true"


def seeded(server, name, scale, tenants=1, blob_store=None):
    """A database of the upstream schema (our model), seeded like a live installation."""
    url = server.rsplit("/", 1)[0] + "/" + name
    run(["psql", "-q", server, "-c", f"CREATE DATABASE {name}"])
    run([BIN, "migrate", "--database", url], stderr=subprocess.DEVNULL)
    log(f"seeding {name} at scale {scale}, {tenants} tenant(s){', objects into ' + blob_store if blob_store else ''}")
    extra = ["--blob-store", blob_store] if blob_store else []
    run([BIN, "seed", "--database", url, "--scale", scale, "--tenants", str(tenants), *extra], stderr=subprocess.DEVNULL)
    return url


def restore_vs_seekable(major, state, work):
    """On a server of `major` with its own client tools: our restore phase
    (recreate + pg_restore -j of our pipe-written archive, which the engine
    indexes) against pg_restore -j of a seekable archive pg_dump wrote to a file."""
    server = run([HARNESS, "postgres", state, str(major)], capture_output=True, text=True).stdout.strip()
    tools = run([HARNESS, "tools", str(major)], capture_output=True, text=True).stdout.strip()
    env = dict(ENV, ARTIFORTRESS_PG_BINDIR=tools)
    db = seeded(server, f"bench_{major}", SCALE)
    store = os.path.join(work, f"store{major}")
    jobs = str(os.cpu_count() or 2)
    subprocess.run([BIN, "backup", "--source", db, "--store", f"file://{store}", "--name", "b"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seekable = os.path.join(work, f"seekable{major}.dump")
    subprocess.run([f"{tools}/pg_dump", "-Fc", "-Z0", "-f", seekable], check=True, env=libpq_env(db))
    # Two rounds, alternating, the faster of each: one restore on 2 busy cores
    # varies by 10-15 % from run to run, more than the difference measured.
    ours, base, indexed = [], [], None
    for _ in range(2):
        # Both sides start from no database (the baseline's DROP is untimed too).
        run(["psql", "-q", server, "-c", "DROP DATABASE IF EXISTS ours"])
        settle(server)
        out = subprocess.run([BIN, "restore", "--store", f"file://{store}", "--backup", "b", "--target",
                              server.rsplit("/", 1)[0] + "/ours", "--jobs", jobs],
                             check=True, env=env, capture_output=True, text=True)
        ours.append(float(re.search(r"recreate\+pg_restore ([\d.]+) s", out.stdout).group(1)))
        indexed = re.search(r"archive indexed: data offsets for (\d+) tables", out.stderr)
        run(["psql", "-q", server, "-c", "DROP DATABASE IF EXISTS seekable"])
        settle(server)
        t0 = time.monotonic()
        run(["psql", "-q", server, "-c", "CREATE DATABASE seekable"])
        subprocess.run([f"{tools}/pg_restore", f"--jobs={jobs}", "--no-owner", "--exit-on-error", "-d",
                        server.rsplit("/", 1)[0] + "/seekable", seekable], check=True, env=libpq_env(db))
        base.append(time.monotonic() - t0)
    ours, base = min(ours), min(base)
    statistics = None
    if major >= 18:
        # PostgreSQL 18 can carry planner statistics in the dump: is restoring
        # them faster than our ANALYZE after a restore without them?
        t0 = time.monotonic()
        subprocess.run([f"{tools}/vacuumdb", "-q", "--analyze-only", f"--jobs={jobs}", "-d", "seekable"], check=True,
                       env=libpq_env(db))
        analyze = time.monotonic() - t0
        with_stats = os.path.join(work, f"stats{major}.dump")
        subprocess.run([f"{tools}/pg_dump", "-Fc", "-Z0", "--statistics", "-f", with_stats], check=True, env=libpq_env(db))
        settle(server)
        t0 = time.monotonic()
        run(["psql", "-q", server, "-c", "CREATE DATABASE with_stats"])
        subprocess.run([f"{tools}/pg_restore", f"--jobs={jobs}", "--no-owner", "--exit-on-error", "-d",
                        server.rsplit("/", 1)[0] + "/with_stats", with_stats], check=True, env=libpq_env(db))
        statistics = (time.monotonic() - t0, base + analyze)
        os.remove(with_stats)
    os.remove(seekable)
    version = run(["psql", "-At", server, "-c", "SHOW server_version"], capture_output=True, text=True).stdout.strip()
    return version, ours, base, indexed.group(1) if indexed else "not indexed", statistics


def blob_check(server, s3_url, work, state):
    """A drill's blob step over the large seed's blob rows (about 205 000) and
    their objects in Garage (under a prefix of the benchmark's bucket): its
    time (from the verdict), its peak RSS, the rows, and the CPU time Garage
    spent meanwhile (the drill's store is a directory, so Garage serves only
    the blob step: its listing, and the sampled objects)."""
    blob_store = s3_url.replace("s3://bench/af?", "s3://bench/blobs?")
    db = seeded(server, "bench_blobs", SCALE, blob_store=blob_store)
    settle(server)
    verdict = os.path.join(work, "blobs-verdict.json")
    garage = open(os.path.join(state, "garage", "pid")).read().strip()
    before = cpu_seconds(garage)
    _, rss, _ = timed_with_peak_rss([BIN, "drill", "--source", db, "--store", f"file://{work}/blob-drill-store",
                                     "--target", server.rsplit("/", 1)[0] + "/blobs_scratch",
                                     "--blob-store", blob_store, "--json", verdict],
                                    phase=("checking blob rows against", r"blobs: \d+ rows"))
    server_busy = cpu_seconds(garage) - before
    import json
    blobs = json.load(open(verdict))["blobs"]
    if blobs["referenced"] != blobs["present"] or blobs["missing"]:
        sys.exit(f"blob check saw {blobs['referenced']} rows, {blobs['present']} present")
    return blobs["seconds"], rss, blobs["referenced"], server_busy


def cpu_seconds(pid, children=False):
    """User and system CPU seconds a process has used; with `children`, also
    those of its children that have ended and been waited for."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    used = fields[11:15] if children else fields[11:13]
    return sum(int(f) for f in used) / os.sysconf("SC_CLK_TCK")


def server_cpu(state, url):
    """CPU seconds the server at `url` has spent in sessions that have ended:
    its postmaster's waited-for children (backends, parallel and autovacuum
    workers); the long-lived checkpointer and WAL writer are not counted."""
    port = re.search(r":(\d+)/", url).group(1)
    for name in os.listdir(state):
        pidfile = os.path.join(state, name, "data", "postmaster.pid")
        if os.path.exists(pidfile):
            lines = open(pidfile).read().split("\n")
            if lines[3] == port:
                time.sleep(1)  # the restore's sessions end after the client does
                return cpu_seconds(lines[0], children=True)
    sys.exit(f"no postmaster.pid for port {port} under {state}")


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: run `cargo build --release` (make bench does)")
    state = tempfile.mkdtemp(prefix="artifortress-bench.")
    work = tempfile.mkdtemp(prefix="artifortress-bench-work.")
    try:
        source_server = run([HARNESS, "postgres", state], capture_output=True, text=True).stdout.strip()
        target_server = run([HARNESS, "postgres", state], capture_output=True, text=True).stdout.strip()
        bindir = pg_bindir()
        big = seeded(source_server, "bench_big", SCALE)
        small = seeded(source_server, "bench_small", SMALL_SCALE)
        size = int(run(["psql", "-At", big, "-c", "SELECT pg_database_size(current_database())"], capture_output=True, text=True).stdout)
        tables = run(["psql", "-At", big, "-c", "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1"],
                     capture_output=True, text=True).stdout.split()

        # Warm the cache the same way for everyone: one untimed dump first.
        log("warming the cache")
        subprocess.run(f"{bindir}/pg_dump -Fc -Z0 > /dev/null", shell=True, check=True, env=libpq_env(big))

        settle(source_server, target_server)
        log("baseline: pg_dump -Fc > /dev/null")
        t0 = time.monotonic()
        dump = subprocess.run(f"{bindir}/pg_dump -Fc | wc -c", shell=True, check=True, env=libpq_env(big), capture_output=True, text=True)
        base_backup = time.monotonic() - t0
        base_bytes = int(dump.stdout.strip())

        settle(source_server, target_server)
        log("ours: artifortress-operator backup")
        store = os.path.join(work, "store")
        ours_backup, rss_big, _ = timed_with_peak_rss([BIN, "backup", "--source", big, "--store", f"file://{store}", "--name", "big"])
        stored = os.path.getsize(os.path.join(store, "big", "dump"))
        _, rss_small, _ = timed_with_peak_rss([BIN, "backup", "--source", small, "--store", f"file://{store}", "--name", "small"])
        log("ours: a second backup of the large seed, its progress lines (the first one's size as the estimate)")
        progress_gap, progress_eta = progress_of([BIN, "backup", "--source", big, "--store", f"file://{store}", "--name", "big-again"])

        log("ours: backup into S3 (Garage), multipart upload")
        s3_url = garage_store(state, "bench")
        settle(source_server, target_server)
        ours_s3, rss_s3, _ = timed_with_peak_rss([BIN, "backup", "--source", big, "--store", s3_url, "--name", "big"])

        log("baseline: psql restore of a plain dump + ANALYZE + sequential count(*)")
        plain = os.path.join(work, "plain.sql")
        subprocess.run([f"{bindir}/pg_dump", "-Fp", "-f", plain], check=True, env=libpq_env(big))
        base_db = target_server.rsplit("/", 1)[0] + "/baseline"
        settle(source_server, target_server)
        server_before = server_cpu(state, target_server)
        t0, ticks = time.monotonic(), cpu_ticks()
        run(["psql", "-q", target_server, "-c", "CREATE DATABASE baseline"])
        run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", plain, base_db], stdout=subprocess.DEVNULL)
        run(["psql", "-q", base_db, "-c", "ANALYZE"])
        base_usable = time.monotonic() - t0
        base_cores = cores_busy(ticks)
        for t in tables:
            run(["psql", "-At", base_db, "-c", f"SELECT count(*) FROM {t}"], stdout=subprocess.DEVNULL)
        base_restore = time.monotonic() - t0
        # After the clock stops: server_cpu waits a second for the sessions to end.
        base_server = server_cpu(state, target_server) - server_before
        os.remove(plain)
        run(["psql", "-q", target_server, "-c", "DROP DATABASE baseline"])

        log("ours: artifortress-operator restore (download + verify + pg_restore -j + settings + ANALYZE + parity)")
        ours_db = target_server.rsplit("/", 1)[0] + "/ours"
        jobs = str(os.cpu_count() or 2)
        settle(source_server, target_server)
        server_before = server_cpu(state, target_server)
        ticks = cpu_ticks()
        ours_restore, out = timed([BIN, "restore", "--store", f"file://{store}", "--backup", "big", "--target", ours_db, "--jobs", jobs],
                                  capture_output=True, text=True)
        m = re.search(
            r"download\+verify ([\d.]+) s, recreate\+pg_restore ([\d.]+) s, settings\+analyze ([\d.]+) s, parity ([\d.]+) s",
            out.stdout,
        )
        ours_cores = cores_busy(ticks)
        ours_server = server_cpu(state, target_server) - server_before
        download, restore, analyze, parity = map(float, m.groups())
        ours_usable = download + restore + analyze
        phases = re.search(r"pg_restore schema .*", out.stdout)
        restore_phases = phases.group(0) if phases else "(no phase line)"

        blob_seconds, blob_rss, blob_rows, server_busy = blob_check(source_server, s3_url, work, state)

        seekable = []
        for major in (15, 18):
            log(f"PostgreSQL {major}: our restore phase vs pg_restore -j of a seekable archive")
            seekable.append((major, *restore_vs_seekable(major, state, work)))
    finally:
        subprocess.run([HARNESS, "stop", state])
        shutil.rmtree(work, ignore_errors=True)

    mib = 1024 * 1024
    rows = [
        ("backup wall time", f"{ours_backup:.1f} s", f"pg_dump -Fc > /dev/null: {base_backup:.1f} s", ours_backup / base_backup, "<= 0.60"),
        ("stored bytes", f"{stored / mib:.1f} MiB", f"pg_dump -Fc: {base_bytes / mib:.1f} MiB", stored / base_bytes, "<= 1.00"),
        ("backup peak RSS", f"{rss_big / mib:.1f} MiB", f"({SMALL_SCALE}: {rss_small / mib:.1f} MiB)", rss_big / mib / 64, "<= 1.00 (of 64 MiB)"),
        ("backup to S3: RSS", f"{rss_s3 / mib:.1f} MiB", f"(wall {ours_s3:.1f} s, multipart)", rss_s3 / mib / 64, "<= 1.00 (of 64 MiB)"),
        ("restore + parity", f"{ours_restore:.1f} s", f"psql plain + count(*): {base_restore:.1f} s", ours_restore / base_restore, "<= 0.45"),
        ("time to usable", f"{ours_usable:.1f} s", f"psql plain + ANALYZE: {base_usable:.1f} s", ours_usable / base_usable, "<= 0.55"),
        ("parity / restore", f"{parity:.2f} s", f"restore (pg_restore): {restore:.1f} s", parity / restore, "<= 0.10"),
    ]
    limits = [0.6, 1.0, 1.0, 1.0, 0.45, 0.55, 0.1]
    rows.append(("backup log gaps", f"{progress_gap:.1f} s", f"(rate and ETA on every line: {'yes' if progress_eta else 'NO'})",
                 progress_gap / 5 if progress_eta else float("inf"), "<= 1.00 (of 5 s)"))
    limits.append(1.0)
    restore_all = download + restore + analyze + parity
    rows.append((f"blob check ({blob_rows // 1000}k)", f"{blob_seconds:.2f} s", f"large restore {restore_all:.1f} s",
                 blob_seconds / restore_all, "<= 0.10 (of the restore)"))
    limits.append(0.1)
    rows.append(("S3 server busy", f"{server_busy:.2f} s", "Garage's CPU time during the blob check",
                 server_busy / blob_seconds, "(of the check's time)"))
    limits.append(float("inf"))
    rows.append((f"blob check RSS", f"{blob_rss / mib:.1f} MiB", "(the drill's blob step)", blob_rss / mib / 64,
                 "<= 1.00 (of 64 MiB)"))
    limits.append(1.0)
    for major, version, ours_phase, base_phase, indexed, statistics in seekable:
        rows.append((f"restore on PG {major}", f"{ours_phase:.1f} s", f"seekable pg_restore -j: {base_phase:.1f} s",
                     ours_phase / base_phase, f"<= 1.10 ({version}, {indexed} tables indexed)"))
        limits.append(1.1)
        if statistics:
            with_stats, then_analyze = statistics
            rows.append((f"PG {major} stats in dump", f"{with_stats:.1f} s", f"restore, then ANALYZE: {then_analyze:.1f} s",
                         with_stats / then_analyze, "< 1 would favour --statistics"))
            limits.append(float("inf"))
    print(f"\nEngine benchmark: {SCALE} seed, database {size / mib:.0f} MiB, {os.cpu_count()} CPUs, pg_restore -j {jobs}")
    print(f"(restore parts: download+verify {download:.1f} s, recreate+pg_restore {restore:.1f} s, "
          f"settings+ANALYZE {analyze:.1f} s, parity {parity:.2f} s)")
    print(f"({restore_phases})")
    print(f"(CPU: {ours_cores:.2f} of {os.cpu_count()} cores busy on average during our restore, "
          f"{base_cores:.2f} during the psql baseline's restore and ANALYZE)")
    cpus = os.cpu_count() or 1
    print(f"(the target server's own CPU: {ours_server:.1f} core-seconds for our restore, parity included, "
          f"{base_server:.1f} for the baseline's restore, ANALYZE and counts; on {cpus} cores the server alone needs at least "
          f"{ours_server / cpus:.1f} s for ours: {ours_server / cpus / base_usable:.2f} x the baseline's time to usable)")
    print(f"(time to usable {download + restore + analyze:.1f} s; to restored and verified "
          f"{download + restore + analyze + parity:.1f} s; whole restore command {ours_restore:.1f} s)\n")
    print(f"| {'measure':<18} | {'ours':>12} | {'baseline (same run)':<34} | {'ratio':>6} | {'target':<20} | verdict |")
    print(f"|{'-' * 20}|{'-' * 14}|{'-' * 36}|{'-' * 8}|{'-' * 22}|---------|")
    for (name, ours, base, ratio, target), limit in zip(rows, limits):
        verdict = "met" if ratio <= limit else "MISSED"
        print(f"| {name:<18} | {ours:>12} | {base:<34} | {ratio:>6.2f} | {target:<20} | {verdict:<7} |")


if __name__ == "__main__":
    main()
