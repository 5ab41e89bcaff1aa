#!/usr/bin/env python3
"""`make bench` (fourth part): our logical backup and restore beside the tool an
SRE would pick for fast recovery, pgBackRest (Debian's package), on the same
large seed, the same durable server, in one run.

pgBackRest: a local repository, WAL archived by `archive-push` from the source,
a full backup (process-max = CPU count, zstd like ours), then a restore into a
new data directory, the server started on it (WAL replayed from the archive to
the end, then promoted) and the same parity counts as ours: count(*) of every
table, equal to the source's.

Ours, logical: `backup` into a file store, `restore` (download + verify,
pg_restore -j, ANALYZE, parity) into a database on a running server.

Ours, physical: the WAL archiver (`wal --heartbeat 1s`, its defaults otherwise)
running against the source from before either backup, `base-backup
--fast-checkpoint` right after pgBackRest's backup, then the same fixed write
load (pgbench, 1 500 transactions at 50/s into a table of its own) archived
by both, so both restores replay the same WAL (the bytes from each backup's
start are printed). Three rounds, alternating, the median of each side:
pgBackRest's restore to the end of its archive against `pitr --target latest`
into a scratch instance (download + verify, pg_verifybackup, replay and
promotion, amcheck, the same parity counts). Then, apart from the comparison,
the RPO under a writer committing continuously: two more `pitr` drills of the
latest point while pgbench keeps writing.

Printed as a table, written as JSON (BENCH_JSON, default
target/bench/pgbackrest.json). Environment: BENCH_SCALE (default large), BIN.
"""
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import engine_bench as eb

JSON_OUT = os.environ.get("BENCH_JSON", os.path.join(eb.ROOT, "target/bench/pgbackrest.json"))
DURABLE = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
STANZA = "bench"


def as_postgres(cmd, **kw):
    """PostgreSQL and pgBackRest refuse to run as root; the harness's servers run as `postgres`."""
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return eb.run(cmd, **kw)


def sql(url, query):
    return eb.run(["psql", "-At", url, "-c", query], capture_output=True, text=True).stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def directory_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def counts(url, tables):
    return {t: int(sql(url, f"SELECT count(*) FROM {t}")) for t in tables}


def pgbackrest_config(work, data, server_dir, port):
    config = os.path.join(work, "pgbackrest.conf")
    processes = os.cpu_count() or 2
    with open(config, "w") as f:
        f.write(f"""[global]
repo1-path={work}/repo
repo1-retention-full=1
log-path={work}/log
lock-path={work}/lock
spool-path={work}/spool
process-max={processes}
compress-type=zst
log-level-console=warn
start-fast=y

[{STANZA}]
pg1-path={data}
pg1-port={port}
pg1-socket-path={server_dir}
pg1-user=postgres
""")
    return config


def children_cpu():
    """User + system seconds of the children waited for so far (with their own waited children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stop_restored(bindir, data):
    if os.path.exists(os.path.join(data, "postmaster.pid")):
        as_postgres([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], stdout=subprocess.DEVNULL)


def pgbackrest_restore(brc, bindir, work, data, source, tables, expected):
    """pgBackRest's restore into a new, empty data directory, the server started
    on it and promoted, then the parity counts: its phases' seconds."""
    stop_restored(bindir, data)
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data, mode=0o700)
    if os.getuid() == 0:
        subprocess.run(["chown", "postgres", data], check=True)
    port = free_port()
    t0, cpu0 = time.monotonic(), children_cpu()
    as_postgres([*brc, f"--pg1-path={data}", "restore"])
    files, files_cpu = time.monotonic() - t0, children_cpu() - cpu0
    # archive_mode off: the restored server must not archive into the source's
    # repository; max_connections as on the source (recovery requires it).
    log = os.path.join(work, "restored.log")
    started = subprocess.run(["runuser", "-u", "postgres", "--"] * (os.getuid() == 0) + [
        f"{bindir}/pg_ctl", "-D", data, "-l", log, "-w", "-t", "600", "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={work} -c archive_mode=off "
        f"-c max_connections=300 {DURABLE}", "start"], stdout=subprocess.DEVNULL)
    if started.returncode != 0:
        sys.exit(f"the server restored by pgBackRest did not start:\n{open(log).read()}")
    restored = source.rsplit("@", 1)[0] + f"@127.0.0.1:{port}/bench_big"
    while sql(restored, "SELECT pg_is_in_recovery()") != "f":
        time.sleep(0.05)
    queryable = time.monotonic() - t0
    got = counts(restored, tables)
    total = time.monotonic() - t0
    if got != expected:
        sys.exit(f"pgBackRest's restore differs from the source: {got} != {expected}")
    stop_restored(bindir, data)
    return dict(restore_files=files, restore_files_cpu=files_cpu, restore_to_queryable=queryable,
                restore_and_parity=total)


def our_restore(store, target, tables, expected):
    """Our restore (download + verify, pg_restore -j, ANALYZE, parity): its phases' seconds."""
    total, out = eb.timed([eb.BIN, "restore", "--store", f"file://{store}", "--backup", "big", "--target", target],
                          capture_output=True, text=True)
    timing = re.search(r"download\+verify ([\d.]+) s, recreate\+pg_restore ([\d.]+) s, settings\+analyze ([\d.]+) s, "
                       r"parity ([\d.]+) s", out.stdout)
    download, pg_restore, analyze, parity = map(float, timing.groups())
    if counts(target, tables) != expected:
        sys.exit("our restore differs from the source")
    return dict(download_verify=download, pg_restore=pg_restore, analyze=analyze, parity=parity,
                restore_to_queryable=download + pg_restore + analyze, restore_and_parity=total)


def physical_restore(store, work, bindir, tables, expected):
    """Our point-in-time restore of the latest point: its phases, RPO and parity."""
    instance = os.path.join(work, "instance")
    port = free_port()
    t0, cpu0 = time.monotonic(), children_cpu()
    out = eb.run([eb.BIN, "pitr", "--store", f"file://{store}", "--dir", instance, "--port", str(port), "--keep"],
                 capture_output=True, text=True).stdout
    checked, process_cpu = time.monotonic() - t0, children_cpu() - cpu0
    timing = re.search(r"download\+verify ([\d.]+) s, pg_verifybackup ([\d.]+) s, replay\+promote ([\d.]+) s, "
                       r"amcheck ([\d.]+) s \((\d+) indexes\)", out)
    download, verify, replay, amcheck, indexes = (float(g) for g in timing.groups())
    rpo = float(re.search(r"^rpo\s+([\d.]+) s", out, re.M).group(1))
    got = counts(f"postgresql:///bench_big?host={instance}&port={port}&user=postgres", tables)
    total = time.monotonic() - t0
    as_postgres([f"{bindir}/pg_ctl", "-D", os.path.join(instance, "data"), "-m", "immediate", "-w", "stop"],
                stdout=subprocess.DEVNULL)
    shutil.rmtree(instance)
    if got != expected:
        sys.exit(f"our physical restore differs from the source: {got} != {expected}")
    return dict(download_verify=download, pg_verifybackup=verify, replay_promote=replay, amcheck=amcheck,
                indexes_checked=int(indexes), restore_to_queryable=download + verify + replay,
                restore_and_checks=checked, restore_and_parity=total, rpo_seconds=rpo, process_cpu=process_cpu)


def lsn_bytes(lsn):
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def median(rounds):
    """The round with the median restore-to-queryable time."""
    return sorted(rounds, key=lambda r: r["restore_to_queryable"])[len(rounds) // 2]


def main():
    if shutil.which("pgbackrest") is None:
        eb.log("installing pgbackrest (Debian)")
        subprocess.run(["apt-get", "install", "-y", "-q", "pgbackrest"], check=True, stdout=subprocess.DEVNULL)
    if not os.access(eb.BIN, os.X_OK):
        sys.exit(f"{eb.BIN} missing: run `cargo build --release` (make bench does)")
    version = eb.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.strip()
    state = tempfile.mkdtemp(prefix="artifortress-bench.")
    work = tempfile.mkdtemp(prefix="artifortress-bench-pgbackrest.")
    os.chmod(work, 0o755)
    restored_data = os.path.join(work, "restored")
    bindir = eb.pg_bindir()
    processes = []
    try:
        source = subprocess.run([eb.HARNESS, "postgres", state], capture_output=True, text=True, check=True,
                                env=dict(eb.ENV, PG_EXTRA_OPTS=DURABLE)).stdout.strip()
        target = subprocess.run([eb.HARNESS, "postgres", state], capture_output=True, text=True, check=True,
                                env=dict(eb.ENV, PG_EXTRA_OPTS=DURABLE)).stdout.strip()
        data = sql(source, "SHOW data_directory")
        server_dir = sql(source, "SHOW unix_socket_directories")
        port = int(sql(source, "SHOW port"))
        config = pgbackrest_config(work, data, server_dir, port)
        for d in ("log", "lock", "spool"):
            os.makedirs(os.path.join(work, d))
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "postgres", work], check=True)
        # Archiving on, as a pgBackRest installation runs it (a restart: archive_mode).
        sql(source, "ALTER SYSTEM SET archive_mode = on")
        sql(source, f"ALTER SYSTEM SET archive_command = 'pgbackrest --config={config} --stanza={STANZA} archive-push %p'")
        as_postgres([f"{bindir}/pg_ctl", "-D", data, "-w", "-t", "60", "restart"], stdout=subprocess.DEVNULL)
        big = eb.seeded(source, "bench_big", eb.SCALE)
        size = int(sql(big, "SELECT pg_database_size(current_database())"))
        tables = sql(big, "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1").split()
        expected = counts(big, tables)
        brc = ["pgbackrest", f"--config={config}", f"--stanza={STANZA}"]
        as_postgres([*brc, "stanza-create"])
        # The seed's WAL is still being pushed: wait for it (the default is 60 s).
        as_postgres([*brc, "--archive-timeout=900", "check"])

        store = os.path.join(work, "store")
        # Our archiver streams from before either backup: both archives hold the WAL from their backup on.
        physical_store = os.path.join(work, "physical")
        archiver = subprocess.Popen([eb.BIN, "wal", "--source", big, "--store", f"file://{physical_store}",
                                     "--spool", os.path.join(work, "wal-spool"), "--heartbeat", "1s"],
                                    env=eb.ENV, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "wal.log"), "w"))
        processes.append(archiver)
        time.sleep(2)
        eb.log("pgBackRest: full backup; ours: backup into a file store")
        eb.settle(source)
        t0 = time.monotonic()
        as_postgres([*brc, "--type=full", "backup"])
        theirs_backup = time.monotonic() - t0
        theirs_bytes = directory_bytes(os.path.join(work, "repo"))
        eb.settle(source)
        ours_backup, _ = eb.timed([eb.BIN, "backup", "--source", big, "--store", f"file://{store}", "--name", "big"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours_bytes = directory_bytes(store)
        # Two rounds, alternating, the faster of each (one restore on 2 cores
        # varies by 10-15 % from run to run).
        theirs, ours = [], []
        for _ in range(2):
            eb.log("pgBackRest: restore into a new data directory, start, wait for promotion")
            eb.settle(source, target)
            theirs.append(pgbackrest_restore(brc, bindir, work, restored_data, big, tables, expected))
            eb.log("ours: restore into a database on a running server")
            eb.settle(source, target)
            ours.append(our_restore(store, target.rsplit("/", 1)[0] + "/ours", tables, expected))
        theirs = min(theirs, key=lambda r: r["restore_and_parity"])
        ours = min(ours, key=lambda r: r["restore_and_parity"])

        eb.log("ours, physical: a base backup, then the same write load archived by both")
        eb.settle(source)
        physical_backup, _ = eb.timed([eb.BIN, "base-backup", "--source", big, "--store", f"file://{physical_store}",
                                       "--name", "base", "--fast-checkpoint"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        base_bytes = directory_bytes(os.path.join(physical_store, "base"))
        sql(big, "CREATE TABLE bench_writer (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
        script = os.path.join(work, "writer.sql")
        with open(script, "w") as f:
            f.write("INSERT INTO bench_writer DEFAULT VALUES;\n")
        writer_cmd = [f"{bindir}/pgbench", "-n", "-f", script, "-R", "50", "-c", "1"]
        subprocess.run([*writer_cmd, "-t", "1500"], env=eb.libpq_env(big), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        end_lsn = sql(big, "SELECT pg_current_wal_lsn()")
        switched = sql(big, "SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + 120
        while sql(big, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < switched:
            if time.monotonic() > deadline:
                sys.exit(f"pgBackRest did not archive {switched} within 120 s")
            time.sleep(0.2)
        time.sleep(8)  # our archiver stores the growing segment every 5 s
        # The seed's tables and the writer's (not the archiver's heartbeat, which keeps growing).
        all_tables = sql(big, "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables "
                              "WHERE schemaname <> 'artifortress_dr' ORDER BY 1").split()
        all_expected = counts(big, all_tables)
        wal_from = {
            "pgBackRest": json.loads(as_postgres([*brc, "info", "--output=json"], capture_output=True, text=True)
                                     .stdout)[0]["backup"][-1]["lsn"]["start"],
            "ours": json.load(open(os.path.join(physical_store, "base", "base.json")))["startLsn"],
        }
        wal_to_replay = {side: lsn_bytes(end_lsn) - lsn_bytes(start) for side, start in wal_from.items()}
        eb.log("pgBackRest's restore and ours (physical), three rounds alternating, both replaying that WAL")
        theirs_physical, physical = [], []
        for _ in range(3):
            eb.settle(source, target)
            theirs_physical.append(pgbackrest_restore(brc, bindir, work, restored_data, big, all_tables, all_expected))
            eb.settle(source)
            physical.append(physical_restore(physical_store, work, bindir, all_tables, all_expected))
        theirs_physical = median(theirs_physical)
        physical = median(physical)

        eb.log("the RPO under a writer committing continuously: two drills of the latest point")
        writer = subprocess.Popen([*writer_cmd, "-T", "600"], env=eb.libpq_env(big), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        processes.append(writer)
        time.sleep(10)
        rpos = []
        for _ in range(2):
            eb.settle(source)
            rpos.append(physical_restore(physical_store, work, bindir, tables, expected)["rpo_seconds"])
        wal_bytes = directory_bytes(os.path.join(physical_store, "_wal"))
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        stop_restored(bindir, restored_data)
        subprocess.run([eb.HARNESS, "stop", state])
        shutil.rmtree(work, ignore_errors=True)

    mib = 1024 * 1024
    print(f"\nBeside pgBackRest: {eb.SCALE} seed, database {size / mib:.0f} MiB, "
          f"{os.cpu_count()} CPUs, {version}, both servers with {DURABLE}\n")
    print("| step                    | ours, logical | ours, physical | pgBackRest | logical / theirs | physical / theirs |")
    print("|-------------------------|--------------:|---------------:|-----------:|-----------------:|------------------:|")
    rows = [("backup", ours_backup, physical_backup, theirs_backup, theirs_backup),
            ("restore to queryable", ours["restore_to_queryable"], physical["restore_to_queryable"],
             theirs["restore_to_queryable"], theirs_physical["restore_to_queryable"]),
            ("restore + parity counts", ours["restore_and_parity"], physical["restore_and_parity"],
             theirs["restore_and_parity"], theirs_physical["restore_and_parity"])]
    for name, logical, phys, them, them_physical in rows:
        print(f"| {name:<23} | {logical:>11.2f} s | {phys:>12.2f} s | {them:>8.2f} s | {logical / them:>16.2f} "
              f"| {phys / them_physical:>17.2f} |")
    print(f"| {'bytes stored':<23} | {ours_bytes / mib:>9.1f} MiB | {base_bytes / mib:>10.1f} MiB | "
          f"{theirs_bytes / mib:>6.1f} MiB | {ours_bytes / theirs_bytes:>16.2f} | {base_bytes / theirs_bytes:>17.2f} |")
    print(f"\n(pgBackRest restore: files {theirs['restore_files']:.2f} s, then server start, WAL replay and promotion "
          f"{theirs['restore_to_queryable'] - theirs['restore_files']:.2f} s, its bytes include the WAL it archived. "
          f"Ours, logical: download+verify {ours['download_verify']:.2f} s, pg_restore {ours['pg_restore']:.2f} s, "
          f"ANALYZE {ours['analyze']:.2f} s, parity {ours['parity']:.2f} s; it restores into a running server of any "
          f"newer major and checks every table against the backup's own counts. Ours, physical: download+verify "
          f"{physical['download_verify']:.2f} s, pg_verifybackup {physical['pg_verifybackup']:.2f} s, replay and "
          f"promotion {physical['replay_promote']:.2f} s, then amcheck of {physical['indexes_checked']} indexes "
          f"{physical['amcheck']:.2f} s; base bytes only, the WAL stored meanwhile {wal_bytes / mib:.1f} MiB.)")
    print(f"\nThe physical comparison: after 1 500 transactions both archived; WAL to replay from each backup's "
          f"start: ours {wal_to_replay['ours'] / mib:.1f} MiB, pgBackRest {wal_to_replay['pgBackRest'] / mib:.1f} MiB; "
          f"median of 3 rounds each (pgBackRest then: files {theirs_physical['restore_files']:.2f} s, "
          f"to queryable {theirs_physical['restore_to_queryable']:.2f} s). CPU in those rounds: pgBackRest's restore "
          f"processes {theirs_physical['restore_files_cpu']:.2f} core-s for its files; our pitr process "
          f"{physical['process_cpu']:.2f} core-s in all (download, unpack and checks; the servers' CPU not counted). "
          f"The logical column compares with "
          f"pgBackRest's restore before that load (the faster of 2 rounds).")
    target = physical["restore_to_queryable"] / theirs_physical["restore_to_queryable"]
    print(f"\nTargets: physical restore-to-queryable {target:.2f}x pgBackRest's (<= 1.00: "
          f"{'met' if target <= 1.0 else 'MISSED'}); RPO under continuous writes {max(rpos):.1f} s "
          f"(both drills: {', '.join(f'{r:.1f}' for r in rpos)} s; <= 10 s: {'met' if max(rpos) <= 10 else 'MISSED'})")
    os.makedirs(os.path.dirname(JSON_OUT), exist_ok=True)
    with open(JSON_OUT, "w") as f:
        json.dump(dict(scale=eb.SCALE, cpus=os.cpu_count(), pgbackrest_version=version, database_bytes=size,
                       ours=dict(backup=ours_backup, bytes=ours_bytes, **ours),
                       physical=dict(backup=physical_backup, bytes=base_bytes, wal_bytes=wal_bytes, rpos=rpos,
                                     wal_to_replay=wal_to_replay, pgbackrest=theirs_physical, **physical),
                       pgbackrest=dict(backup=theirs_backup, bytes=theirs_bytes, **theirs)), f, indent=2)
    print(f"\n(written to {JSON_OUT})")


if __name__ == "__main__":
    main()
