"""``make mutation``: mutate the state moves, the payment confirmation, the notify
services and wxpay's signing, verification and notify code; run the tests
that reach each mutant; score each group (docs/MUTATION.md).

    python -m tests.mutation.run [--group NAME …] [--jobs N] [--reuse-coverage]
                                 [--mutant ID …] [--write-docs]

Steps: (1) every mutant of every target (tests/mutation/mutants.py);
(2) one pytest run of the groups' tests under coverage, recording which
test runs which line and how long it takes (tests/mutation/cover.py);
(3) each mutant not judged equivalent (tests/mutation/equivalent.py) runs,
in a copy of the tree per worker (tests/mutation/worker.py), the tests
that ran its lines (a module-level mutant: every test that ran the
module), fastest first, stopping at the first failure; (4) results in
build/mutation/ (results.json, survivors.txt) and a score per group.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from queue import Queue

from .config import EXCLUDED_TESTS, GROUPS, PINNED, Group
from .equivalent import EQUIVALENT
from .mutants import Mutant, iter_valid, mutants_of

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "mutation"
DOC = ROOT / "docs" / "MUTATION.md"
PROBE_TEST = "tests/service/test_lifecycle.py::test_a_state_changes_only_as_a_move_s_target"
MIN_TESTS = 10
PROGRESS = OUT / "progress.jsonl"  # one line per mutant run, so an interrupted run can --resume


def all_mutants(groups: list[Group]) -> list[tuple[Group, Mutant]]:
    found = []
    for g in groups:
        for target in g.targets:
            data = (ROOT / target.path).read_bytes()
            found += [(g, m) for m in iter_valid(mutants_of(target.path, data, target.only), data)]
    return found


def measure_coverage(groups: list[Group], reuse: bool) -> dict:
    path = OUT / "coverage.json"
    if reuse and path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    files = sorted({t.path for g in groups for t in g.targets})
    tests = sorted({t for g in groups for t in g.tests})
    ignore = [f"--ignore={p}" for p in EXCLUDED_TESTS]
    started = time.monotonic()
    print(f"coverage pass: {len(tests)} test paths over {len(files)} modules …", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.mutation.cover", str(path), *files, "--", "-q", "-p", "no:cacheprovider",
         *ignore, *tests],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    (OUT / "coverage.log").write_text(proc.stdout, encoding="utf-8")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["seconds"] = round(time.monotonic() - started, 1)
    path.write_text(json.dumps(data), encoding="utf-8")
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"coverage pass: {summary} ({data['seconds']} s)", flush=True)
    if data["failed"]:
        print(f"  failing before any mutation (not used to judge mutants): {data['failed']}", flush=True)
    return data


def tests_for(mutant: Mutant, cover: dict, budget: float) -> tuple[list[str], bool]:
    """The tests that ran the mutant's lines, fastest first, within ``budget`` seconds of measured
    time (at least MIN_TESTS of them); a module-level mutant gets the module's."""
    by_line = cover["lines"].get(mutant.path, {})
    durations = cover["durations"]
    failed = set(cover["failed"])
    last = mutant.line + mutant.original.count("\n")
    chosen: set[str] = set()
    if mutant.runtime:
        for line in range(mutant.line, last + 1):
            chosen.update(by_line.get(str(line), ()))
    if not chosen:  # module-level (import time), or a line no test context saw
        for tests in by_line.values():
            chosen.update(tests)
    ordered = sorted((t for t in chosen if t not in failed), key=lambda t: (durations.get(t, 99.0), t))
    picked, spent = [], 0.0
    for t in ordered:
        if len(picked) >= MIN_TESTS and spent + durations.get(t, 5.0) > budget:
            break
        picked.append(t)
        spent += durations.get(t, 5.0)
    return picked, len(picked) < len(ordered)


def make_shadow(n: int | str) -> Path:
    shadow = OUT / f"shadow-{n}"
    if shadow.exists():
        shutil.rmtree(shadow)
    ignore = shutil.ignore_patterns(".venv", ".git", "build", "dist", "__pycache__", "*.egg-info", ".hypothesis",
                                    ".pytest_cache", "data", "*.sqlite3*")
    shutil.copytree(ROOT, shadow, ignore=ignore, symlinks=True)
    return shadow


class Worker:
    def __init__(self, n: int | str) -> None:
        self.shadow = make_shadow(n)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mutation.worker", str(self.shadow)],
            cwd=self.shadow, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        assert self.proc.stdout is not None
        json.loads(self.proc.stdout.readline())  # ready
        # The unmutated tree must pass here first, or no verdict of this worker means anything.
        probe = self.run({"id": "probe", "path": "service/lifecycle.py", "tests": [PROBE_TEST], "timeout": 120,
                          "source": (ROOT / "service/lifecycle.py").read_text(encoding="utf-8")})
        if probe["status"] != "survived":
            raise RuntimeError(f"worker {n}: the unmutated tree fails {PROBE_TEST}: {probe}")

    def run(self, job: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run_mutants(jobs: list[dict], workers: int, name: str = "", record: bool = True) -> dict[str, dict]:
    """Run ``jobs`` on ``workers`` workers, in copies of the tree named ``shadow-<name><n>`` (two runs at
    once need different names); ``record``: append each result to the progress file."""
    queue: Queue = Queue()
    for job in jobs:
        queue.put(job)
    results: dict[str, dict] = {}
    lock = threading.Lock()
    started = time.monotonic()

    def loop(n: int) -> None:
        worker = Worker(f"{name}{n}")
        try:
            while True:
                try:
                    job = queue.get_nowait()
                except Exception:
                    return
                result = worker.run(job)
                with lock:
                    results[job["id"]] = result
                    with open(PROGRESS if record else os.devnull, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"key": job.get("key"), "digest": job.get("digest"), **result}) + "\n")
                    done = len(results)
                    if done % 25 == 0 or done == len(jobs):
                        print(f"  {done}/{len(jobs)} mutants run ({time.monotonic() - started:.0f} s)", flush=True)
        finally:
            worker.close()

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def score(rows: list[dict]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for g in GROUPS:
        mine = [r for r in rows if r["group"] == g.name]
        if not mine:
            continue
        c = Counter(r["status"] for r in mine)
        if c["error"]:
            print(f"  {g.name}: {c['error']} mutants ended in a runner or pytest error (counted as survivors)")
        killed = c["killed"] + c["timeout"]
        equivalent = c["equivalent"]
        table[g.name] = {
            "killed": killed, "non_equivalent": len(mine) - equivalent, "equivalent": equivalent,
            "total": len(mine), "timeouts": c["timeout"], "survived": c["survived"] + c["no_tests"] + c["error"] + c["not_run"],
            "seconds": round(sum(r.get("seconds", 0.0) for r in mine)),
        }
    return table


def percent(s: dict[str, int]) -> float:
    return 100.0 * s["killed"] / s["non_equivalent"] if s["non_equivalent"] else 100.0


def write_docs(rows: list[dict], table: dict[str, dict[str, int]], figures: dict) -> None:
    titles = {g.name: g.title for g in GROUPS}
    lines = [
        "| group | mutants | equivalent | killed | survived | score (killed / non-equivalent) | run time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in table.items():
        lines.append(f"| {titles[name]} | {s['total']} | {s['equivalent']} | {s['killed']} | {s['survived']} "
                     f"| {percent(s):.1f}% ({s['killed']}/{s['non_equivalent']}) | {s['seconds']} s |")
    lines.append("")
    lines.append(f"Run time: the seconds spent running the group's mutants (each one's last run, summed; "
                 f"with {figures['jobs']} workers the wall time is about half). {figures['mutants']} mutants"
                 + (f"; coverage pass {figures['coverage_seconds']} s, mutants {figures['mutant_seconds']} s."
                    if "coverage_seconds" in figures else f", scored from {figures['from']}."))
    eq = ["| file | line | mutation | why it cannot change behaviour |", "|---|---:|---|---|"]
    for r in sorted((r for r in rows if r["status"] == "equivalent"), key=lambda r: (r["path"], r["line"])):
        change = f"`{_cell(r['original'])}` → `{_cell(r['replacement'])}`"
        eq.append(f"| {r['path']} | {r['line']} | {r['operator']}: {change} | {_cell(EQUIVALENT[r['key']], limit=None)} |")
    text = DOC.read_text(encoding="utf-8")
    text = _between(text, "scores", "\n".join(lines))
    text = _between(text, "equivalents", "\n".join(eq))
    DOC.write_text(text, encoding="utf-8")


def _cell(text: str, limit: int | None = 70) -> str:
    one = " ".join(text.split())
    if limit is not None and len(one) > limit:
        one = one[: limit - 1] + "…"
    return one.replace("|", "\\|").replace("`", "'")


def _between(text: str, name: str, body: str) -> str:
    start, end = f"<!-- mutation:{name} -->", f"<!-- /mutation:{name} -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{body}\n{end}{tail}"


def report(groups: list[Group], mutants: list[tuple[Group, Mutant]], write: bool) -> int:
    """Score every mutant by its last run recorded in the progress file (same mutated file, by digest):
    the runs of several groups, one after another, make one table. A mutant never run counts as a survivor."""
    last: dict[str, dict] = {}
    if PROGRESS.exists():
        for line in PROGRESS.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry.get("digest"):
                last[entry["digest"]] = entry
    sources = {t.path: (ROOT / t.path).read_bytes() for g in groups for t in g.targets}
    rows = []
    for g, m in mutants:
        row = {"group": g.name, **{k: v for k, v in asdict(m).items() if k not in ("start", "end")},
               "key": m.key, "id": m.id}
        if m.key in EQUIVALENT:
            row["status"] = "equivalent"
        else:
            entry = last.get(hashlib.sha1(m.apply(sources[m.path])).hexdigest())
            if entry is None:
                row["status"] = "not_run"
            else:
                row.update(status=entry["status"], killer=entry["killer"], seconds=entry["seconds"])
        rows.append(row)
    table = score(rows)
    figures = {"mutants": len(rows), "jobs": 2, "from": "progress.jsonl (each mutant's last run)"}
    (OUT / "report.json").write_text(json.dumps({"figures": figures, "scores": table, "mutants": rows}, indent=1),
                                     encoding="utf-8")
    left = [r for r in rows if r["status"] not in ("killed", "timeout", "equivalent")]
    with open(OUT / "report-survivors.txt", "w", encoding="utf-8") as fh:
        for r in sorted(left, key=lambda r: (r["path"], r["line"])):
            fh.write(f"{r['id']} {r['path']}:{r['line']} [{r['operator']}] in {r['scope']} ({r['status']})\n"
                     f"    - {r['original']!r}\n    + {r['replacement']!r}\n")
    for name, s in table.items():
        print(f"{name:8} {s['killed']:4}/{s['non_equivalent']:<4} killed ({percent(s):5.1f}%), "
              f"{s['equivalent']} equivalent, {s['survived']} survived or not run, {s['timeouts']} by timeout, "
              f"{s['seconds']} s of mutant runs")
    if write:
        write_docs(rows, table, figures)
        print(f"wrote the tables of {DOC}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=[g.name for g in GROUPS])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reuse-coverage", action="store_true", help="use build/mutation/coverage.json as it is")
    parser.add_argument("--mutant", action="append", help="run only these mutant ids (see survivors.txt)")
    parser.add_argument("--write-docs", action="store_true", help="update the tables in docs/MUTATION.md")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--budget", type=float, default=25.0,
                        help="seconds of measured test time per mutant (fastest tests first; default 25)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the kills recorded in build/mutation/progress.jsonl (same mutated file); run the rest")
    parser.add_argument("--tests", nargs="+", help="with --mutant: run these tests, not the covering ones (no coverage pass)")
    parser.add_argument("--record", action="store_true",
                        help="with --tests: record the results in the progress file (a kill by a named test counts)")
    parser.add_argument("--name", default="", help="name this run's copies of the tree (two runs at once)")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: score every mutant by its last run in build/mutation/progress.jsonl")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    groups = [g for g in GROUPS if not args.group or g.name in args.group]
    mutants = all_mutants(groups)
    if args.list:
        for g, m in mutants:
            print(f"{m.id} {g.name:8} {m.describe()}")
        return 0
    if args.mutant:
        mutants = [(g, m) for g, m in mutants if m.id in args.mutant]
    print(f"{len(mutants)} mutants in {len(groups)} groups", flush=True)
    if args.tests and not args.mutant:
        parser.error("--tests needs --mutant")
    if args.report:
        return report(groups, mutants, write=args.write_docs and not args.group and not args.mutant)
    t0 = time.monotonic()
    cover = ({"durations": {}, "failed": [], "lines": {}, "seconds": 0.0} if args.tests
             else measure_coverage(groups, args.reuse_coverage))
    rows: list[dict] = []
    jobs: list[dict] = []
    done: dict[str, dict] = {}
    results_before: dict[str, dict] = {}
    if args.resume and PROGRESS.exists():
        for line in PROGRESS.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            # Only kills are kept: tests are added, not taken away, so a mutant a test killed stays
            # killed while its file is unchanged; every survivor runs again with today's tests, and so
            # does every timeout (on a shared, loaded machine a slow run is not proof of a kill).
            if entry.get("digest") and entry["status"] == "killed":
                done[entry["digest"]] = entry
    elif PROGRESS.exists() and not args.mutant:
        PROGRESS.unlink()
    sources = {t.path: (ROOT / t.path).read_bytes() for g in groups for t in g.targets}
    for g, m in mutants:
        row = {"group": g.name, **{k: v for k, v in asdict(m).items() if k not in ("start", "end")},
               "key": m.key, "id": m.id}
        if m.key in EQUIVALENT:
            row["status"] = "equivalent"
        else:
            tests, capped = (list(args.tests), False) if args.tests else tests_for(m, cover, args.budget)
            row["tests"], row["capped"] = len(tests), capped
            if not tests:
                row["status"] = "no_tests"
            else:
                budget = sum(cover["durations"].get(t, 5.0) for t in tests)
                mutated = m.apply(sources[m.path])
                digest = hashlib.sha1(mutated).hexdigest()  # the whole mutated file: any change there runs it again
                if digest in done:
                    results_before[m.id] = done[digest]
                else:
                    jobs.append({"id": m.id, "key": m.key, "digest": digest, "path": m.path,
                                 "source": mutated.decode("utf-8"), "tests": tests, "timeout": round(60 + 5 * budget, 1)})
        rows.append(row)
    # Each mutant issue 14 named also runs against its own named test alone: that test must kill it.
    by_key = {r["key"]: r for r in rows}
    for key, test in PINNED.items():
        if key in by_key:
            m = next(m for _, m in mutants if m.key == key)
            jobs.append({"id": "pinned:" + m.id, "path": m.path, "source": m.apply(sources[m.path]).decode("utf-8"),
                         "tests": [test], "timeout": 120})
    t1 = time.monotonic()
    # Interleave the groups so that an interrupted run has looked at each of them.
    jobs.sort(key=lambda j: j["id"])  # ids are digests: the groups come mixed
    if args.tests:  # a check of given tests against given mutants: report and keep nothing
        results = run_mutants(jobs, max(1, args.jobs), name=f"check-{args.name}", record=args.record)
        for job in jobs:
            r = results[job["id"]]
            print(f"{job['id']} {r['status']:9} {r['seconds']:6.1f} s  killer={r['killer']}  {r['tail'][-300:]}")
        return 0
    results = run_mutants(jobs, max(1, args.jobs), name=args.name) if jobs else {}
    results.update(results_before)
    mutant_seconds = round(time.monotonic() - t1, 1)
    for row in rows:
        if row["id"] in results:
            res = results[row["id"]]
            row.update(status=res["status"], killer=res["killer"], seconds=res["seconds"], tail=res["tail"])
    table = score(rows)
    figures = {"mutants": len(rows), "coverage_seconds": cover.get("seconds", 0.0),
               "mutant_seconds": mutant_seconds, "jobs": args.jobs,
               "total_seconds": round(time.monotonic() - t0, 1)}
    (OUT / "results.json").write_text(json.dumps({"figures": figures, "scores": table, "mutants": rows}, indent=1),
                                      encoding="utf-8")
    survivors = [r for r in rows if r["status"] in ("survived", "no_tests", "error")]
    with open(OUT / "survivors.txt", "w", encoding="utf-8") as fh:
        for r in sorted(survivors, key=lambda r: (r["path"], r["line"])):
            fh.write(f"{r['id']} {r['path']}:{r['line']} [{r['operator']}] in {r['scope']} "
                     f"({r['status']}, {r.get('tests', 0)} tests)\n    - {r['original']!r}\n    + {r['replacement']!r}\n")
    stale = sorted(set(EQUIVALENT) - {r["key"] for r in rows}) if not args.group and not args.mutant else []
    print()
    for name, s in table.items():
        print(f"{name:8} {s['killed']:4}/{s['non_equivalent']:<4} killed ({percent(s):5.1f}%), "
              f"{s['equivalent']} equivalent, {s['survived']} survived, {s['timeouts']} by timeout")
    print(f"{len(rows)} mutants; coverage {figures['coverage_seconds']} s, mutants {mutant_seconds} s, "
          f"total {figures['total_seconds']} s; survivors in {OUT / 'survivors.txt'}")
    for key, test in PINNED.items():
        if key in by_key:
            pinned = results.get("pinned:" + by_key[key]["id"], {}).get("status")
            print(f"pinned {by_key[key]['id']} ({by_key[key]['path']}:{by_key[key]['line']}): "
                  f"{'killed' if pinned in ('killed', 'timeout') else 'NOT KILLED'} by {test}")
            figures.setdefault("pinned", {})[key] = {"test": test, "status": pinned}
    (OUT / "results.json").write_text(json.dumps({"figures": figures, "scores": table, "mutants": rows}, indent=1),
                                      encoding="utf-8")
    if stale:
        print(f"equivalent.py names {len(stale)} mutants that no longer exist: {stale}")
    if args.write_docs and not args.group and not args.mutant:
        write_docs(rows, table, figures)
        print(f"wrote the tables of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
