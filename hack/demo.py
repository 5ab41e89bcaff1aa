#!/usr/bin/env python3
"""`make demo`: the GA readiness demo, on a machine with nothing set up.

Starts two throwaway PostgreSQL servers, migrates and seeds the source (and
writes its blobs' objects into a local blob store), starts `serve` with
generated admin and viewer tokens, checks readiness and the admin ops summary
(and that it refuses missing and viewer tokens), runs a recovery drill against
RPO/RTO objectives that also checks every blob the restored database references,
and writes docs/reports/ga-readiness-latest.md: every check with its result and
timing, the ops summary, the drill verdict, the blob check.

DEMO_DELETE_BLOB=1 deletes one blob object before the drill, to show the failure.

Progress goes to stderr. Exit status 1 if any check failed (the report is still
written, saying which). Everything started here is stopped at the end.
"""

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("BIN", ROOT / "target/debug/artifortress-operator"))
# Overridable so tests can run the demo without touching the committed report.
OUT = Path(os.environ.get("DEMO_OUT", ROOT / "target/demo"))
REPORT = Path(os.environ.get("DEMO_REPORT", ROOT / "docs/reports/ga-readiness-latest.md"))
SCALE = os.environ.get("DEMO_SCALE", "small")
RPO, RTO = os.environ.get("DEMO_RPO", "15m"), os.environ.get("DEMO_RTO", "30m")
DELETE_BLOB = os.environ.get("DEMO_DELETE_BLOB") == "1"


def say(message):
    print(f"demo: {message}", file=sys.stderr, flush=True)


class StopDemo(Exception):
    """A check that later steps depend on failed."""


class Checks:
    """Runs named checks, timing each; a failed check is recorded, not raised,
    unless later steps depend on it (`required`)."""

    def __init__(self):
        self.rows = []

    def run(self, name, step, required=False):
        say(f"{name} ...")
        started = time.monotonic()
        try:
            detail = step() or ""
            ok = True
        except Exception as error:  # the report carries the reason
            detail, ok = str(error), False
        seconds = time.monotonic() - started
        self.rows.append((name, ok, seconds, detail))
        say(f"{name}: {'ok' if ok else 'FAILED'} in {seconds:.2f} s {('- ' + detail) if detail else ''}")
        if required and not ok:
            raise StopDemo(name)
        return ok

    @property
    def passed(self):
        return all(ok for _, ok, _, _ in self.rows)


def run(*args, **kwargs):
    """Runs a command, failing with its stderr tail."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{Path(str(args[0])).name} {args[1]} exited {done.returncode}: {tail}")
    return done.stdout


def http_get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def expect_status(url, expected, token=None):
    status, body = http_get(url, token)
    if status != expected:
        raise RuntimeError(f"HTTP {status}, expected {expected}: {body[:300]}")
    return body


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if not BIN.exists():
        raise SystemExit(f"demo: build first ({BIN} is missing): cargo build")
    OUT.mkdir(parents=True, exist_ok=True)
    state = tempfile.mkdtemp(prefix="artifortress-demo.")
    env = dict(os.environ, ARTIFORTRESS_LOG_FORMAT="text")
    server = None
    checks = Checks()
    context = {}
    try:
        def start_servers():
            harness = ROOT / "hack/test-env.sh"
            context["source_server"] = run(harness, "postgres", state).strip()
            context["target_server"] = run(harness, "postgres", state).strip()
            return "source and drill-target servers on loopback"

        checks.run("start two throwaway PostgreSQL servers", start_servers, required=True)
        source = context["source_server"].rsplit("/", 1)[0] + "/artifortress"
        target = context["target_server"].rsplit("/", 1)[0] + "/artifortress_drill"

        def migrate():
            run("psql", "-q", context["source_server"], "-c", "CREATE DATABASE artifortress")
            run(BIN, "migrate", "--database", source, env=env)
            run(BIN, "migrate", "--database", source, env=env)
            level = run("psql", "-At", source, "-c", "SELECT max(version) FROM schema_migrations").strip()
            return f"our model of upstream's schema applied up to {level}; run again: nothing to do"

        checks.run("migrate the source database", migrate, required=True)
        blobs = OUT / "blobs"
        if blobs.exists():
            shutil.rmtree(blobs)
        blobs.mkdir()

        def seed():
            run(BIN, "seed", "--database", source, "--scale", SCALE, "--blob-store", f"file://{blobs}", env=env)
            objects = sum(1 for p in blobs.rglob("*") if p.is_file())
            return f"scale {SCALE} generated, {objects} blob objects in the blob store"

        checks.run(f"seed the source (scale {SCALE})", seed, required=True)

        admin, viewer = secrets.token_hex(24), secrets.token_hex(24)
        tokens = Path(state) / "tokens"
        tokens.write_text("".join(f"sha256:{hashlib.sha256(t.encode()).hexdigest()} {role} demo-{role}\n"
                                  for t, role in [(admin, "admin"), (viewer, "viewer")]))
        store = OUT / "store"
        store.mkdir(exist_ok=True)
        blob_store = f"file://{blobs}"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server_log = open(OUT / "serve.log", "w")

        def start_serve():
            nonlocal server
            server = subprocess.Popen(
                [BIN, "serve", "--database", source, "--object-store", blob_store,
                 "--listen", f"127.0.0.1:{port}", "--installation", "demo", "--tokens-file", tokens,
                 "--audit-flush", "200ms"],
                stdout=server_log, stderr=server_log, env=env)
            for _ in range(100):
                if server.poll() is not None:
                    raise RuntimeError(f"serve exited {server.returncode}; see {OUT / 'serve.log'}")
                try:
                    if http_get(f"{base}/health/live")[0] == 200:
                        return f"listening on 127.0.0.1:{port}, admin and viewer tokens generated"
                except OSError:
                    time.sleep(0.1)
            raise RuntimeError("serve did not answer /health/live within 10 s")

        checks.run("start `serve` with a generated admin token", start_serve, required=True)

        def ready():
            report = json.loads(expect_status(f"{base}/health/ready", 200))
            return ", ".join(f"{d['name']} {d['latencyMs']:.1f} ms" for d in report["dependencies"])

        checks.run("GET /health/ready is 200", ready)

        def summary():
            body = expect_status(f"{base}/v1/admin/ops/summary", 200, admin)
            context["summary"] = json.loads(body)
            return f"SLO severity {context['summary']['slo']['severity']}"

        summary_url = f"{base}/v1/admin/ops/summary"
        checks.run("GET /v1/admin/ops/summary with the admin token is 200", summary)
        checks.run("... without a token is 401", lambda: expect_status(summary_url, 401) and "refused")
        checks.run("... with a viewer token is 403", lambda: expect_status(summary_url, 403, viewer) and "refused")

        def audited():
            # Reads are written before the answer; rejected requests in counted
            # batches (--audit-flush), so those may take a moment to appear.
            expected = ["allowed|1", "denied|1", "unauthenticated|1"]
            for _ in range(50):
                rows = run("psql", "-At", source, "-c",
                           "SELECT coalesce(details->>'outcome', 'allowed'), sum(coalesce((details->>'count')::int, 1)) "
                           "FROM audit_log WHERE action IN ('ops.summary.read', 'ops.summary.denied') "
                           "GROUP BY 1 ORDER BY 1").split()
                if rows == expected:
                    return ("every request audited in the installation's audit_log (tenant default): the read "
                            "(ops.summary.read, before the answer), the denied and the unauthenticated one (counted)")
                time.sleep(0.1)
            raise RuntimeError(f"audit rows {rows}, expected {expected}")

        checks.run("every ops-summary request is audited", audited)

        def metrics():
            body = expect_status(f"{base}/metrics", 200)
            wanted = ["artifortress_ops_pending_outbox_events", "artifortress_dependency_up"]
            missing = [m for m in wanted if m not in body]
            if missing:
                raise RuntimeError(f"missing metrics: {missing}")
            return f"{sum(1 for l in body.splitlines() if l.startswith('artifortress_'))} samples"

        checks.run("GET /metrics exports the ops signals and dependency probes", metrics)

        if DELETE_BLOB:
            def delete_blob():
                key = run("psql", "-At", source, "-c",
                          "SELECT storage_key FROM blobs b WHERE EXISTS (SELECT 1 FROM artifact_entries e "
                          "WHERE e.blob_digest = b.digest) ORDER BY storage_key LIMIT 1").strip()
                (blobs / key).unlink()
                context["deleted_blob"] = key
                return f"deleted {key} from the blob store (DEMO_DELETE_BLOB=1)"

            checks.run("delete one referenced blob object (to show the failure)", delete_blob)

        def drill():
            result = OUT / "drill-result.json"
            if result.exists():
                result.unlink()
            done = subprocess.run(
                [BIN, "drill", "--source", source, "--target", target, "--store", f"file://{store}",
                 "--blob-store", blob_store, "--blob-sample", "100",
                 "--rpo", RPO, "--rto", RTO, "--report", OUT / "drill-report.md", "--json", result],
                stderr=subprocess.PIPE, text=True, env=env)
            if result.exists():
                context["drill"] = json.loads(result.read_text())
            if done.returncode != 0:
                tail = "\n".join(done.stderr.strip().splitlines()[-3:])
                raise RuntimeError(f"drill exited {done.returncode}: {tail}")
            verdict = context["drill"]
            return f"{verdict['result']}: {verdict['rpo']['summary']}; {verdict['rto']['summary']}"

        checks.run(f"recovery drill with RPO {RPO} / RTO {RTO} objectives passes", drill)

        def history():
            # Every demo run adds its drill to the store in the output directory,
            # so the chart grows run by run; it is written beside the report.
            chart = REPORT.with_suffix(".history.svg")
            run(BIN, "drills", "chart", "--store", f"file://{store}", "--out", chart, env=env)
            context["history_chart"] = chart.name
            drills = json.loads(run(BIN, "drills", "list", "--store", f"file://{store}", "--output", "json", env=env))
            shown = min(len(drills), 20)
            return f"RTO and RPO of the store's last {shown} drill{'s' if shown != 1 else ''} charted in {chart.name}"

        checks.run("chart the drill history", history)

        def blobs_consistent():
            b = (context.get("drill") or {}).get("blobs")
            if not b:
                raise RuntimeError("the drill did not check blobs")
            summary = (f"{b['referenced']} blob rows, {b['present']} present, {b['missing']} missing, "
                       f"{b['sizeMismatches']} size mismatches, {b['corrupt']} of {b['sampled']} hashed corrupt")
            if b["missing"] or b["sizeMismatches"] or b["corrupt"]:
                first = (b.get("missingKeys") or b.get("sizeMismatchKeys") or b.get("corruptKeys") or [""])[0]
                raise RuntimeError(f"{summary}; first: {first}")
            return summary

        checks.run("every blob the restored database references is in the blob store", blobs_consistent)
    except StopDemo as stopped:
        say(f"stopping early: the later checks need '{stopped}'")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run([ROOT / "hack/test-env.sh", "stop", state], capture_output=True)

    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(render(checks, context))
    say(f"report: {REPORT} (drill report: {OUT / 'drill-report.md'})")
    say("all checks passed" if checks.passed else "SOME CHECKS FAILED")
    return 0 if checks.passed else 1


def render(checks, context):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        "# GA readiness report",
        "",
        f"Written by `make demo` on {now}: throwaway PostgreSQL servers, demo data at scale `{SCALE}`,",
        "the operator binary's `serve`, `drill` and `migrate` commands. "
        f"Overall: **{'PASS' if checks.passed else 'FAIL'}**.",
        "",
        "| check | result | time |",
        "|---|---|---|",
    ]
    for name, ok, seconds, detail in checks.rows:
        detail = detail.replace("|", "\\|").replace("\n", " ")
        took = f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"
        lines.append(f"| {name} | {'pass' if ok else '**FAIL**'}{(': ' + detail) if detail else ''} | {took} |")
    summary = context.get("summary")
    if summary:
        lines += ["", "## Ops summary", "",
                  f"Upstream's figures per tenant, schema level `{summary['schema'].get('level')}`, "
                  f"readiness `{summary['readiness']['status']}`; thresholds as upstream compares them (strictly above).",
                  "", "| figure | tenant | value | warning above | critical above | severity |", "|---|---|---|---|---|---|"]
        for s in summary["slo"]["signals"]:
            lines.append(f"| {s['signal']} | {s.get('tenant', '')} | {s['value']:g} | {s.get('warning', '–')} | "
                         f"{s.get('critical', '–')} | {s['severity']} |")
        lines += ["", f"Worst severity: **{summary['slo']['severity']}**; also "
                  f"{summary['availableOutboxEvents']} outbox events deliverable now. "
                  "(The demo data carries a backlog on purpose.)"]
    drill = context.get("drill")
    if drill:
        lines += ["", "## Drill verdict", "",
                  f"Result: **{drill['result']}**; backup `{drill['backup']['name']}`, "
                  f"snapshot {drill['backup']['snapshotTime']}.", "",
                  "| objective | measured | objective | met |", "|---|---|---|---|"]
        for key in ("rpo", "rto"):
            o = drill[key]
            lines.append(f"| {key.upper()} | {o['measuredSeconds']:.1f} s | {o['objectiveSeconds']:.0f} s | "
                         f"{'yes' if o['met'] else '**no**'} |")
        for failure in drill.get("failures") or []:
            lines.append(f"\nFailure: {failure}")
        b = drill.get("blobs")
        if b:
            # The store lives in the output directory; the report names no path of this machine.
            store = b["store"].replace(f"file://{OUT}", "file://<demo output>")
            reason = f" (failed: `{drill['reason']}`)" if drill.get("reason") else ""
            lines += ["", "## Blobs", "",
                      f"The restored database's blob rows against `{store}`{reason}:", "",
                      "| rows | present | missing | size mismatches | hashed | corrupt | objects without a row |",
                      "|---:|---:|---:|---:|---:|---:|---:|",
                      f"| {b['referenced']} | {b['present']} | {b['missing']} | {b['sizeMismatches']} | "
                      f"{b['sampled']} | {b['corrupt']} | {b['orphans']} |"]
            classes, without = b.get("rowClasses"), b.get("withoutRow")
            if classes and without:
                lines += ["", f"Rows referenced by artifact entries or manifests: {classes['referenced']}; only by a "
                          f"committed upload: {classes['committedOnly']}; by nothing (GC may delete them): "
                          f"{classes['unreferenced']}. Objects without a row: {without['inFlight']} in flight, "
                          f"{without['leftovers']} left by aborted or duplicate uploads (never a failure)."]
            for key in b.get("missingKeys") or []:
                lines.append(f"\nMissing: `{key}`")
        lines += ["", "| table | expected rows | restored rows | match |", "|---|---|---|---|"]
        for p in drill["parity"]:
            lines.append(f"| {p['table']} | {p['expected']} | {p['restored']} | {'yes' if p['match'] else '**no**'} |")
    chart = context.get("history_chart")
    if chart:
        lines += ["", "## History", "",
                  "RTO and RPO of the last drills in the demo's store (one per `make demo` run) against their "
                  "objectives; failed drills ringed in red.", "",
                  f"![RTO and RPO of the last drills]({chart})"]
    lines += ["", "The full drill report (timings of every step) is `drill-report.md` in the demo's output",
              "directory (`target/demo/` by default) after a run.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
