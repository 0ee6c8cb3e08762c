"""Write docs/RELIABILITY.md from the battery's results folder.

``python -m tests.battery.report`` (``make reliability`` runs the whole
battery, the slow cases and a soak first). Every figure in the document
comes from a JSON record a test or the soak wrote (tests/battery/results.py);
nothing here is typed by hand except the list of weaknesses, and each of
those names the case that pins its fix, whose outcome is looked up.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .results import ROOT, read_all, results_dir

SECTIONS = [
    ("duplicates", "1. Duplicates and races",
     "One async client, at most 100 requests in flight, loopback only."),
    ("crashes", "2. Crashes (kill -9)",
     "A standalone simulator retrying notifies at 1000x speed; the server restarted on the same SQLite file after "
     "each kill; test pauses (service/pauses.py, sandbox only) widen the windows. `kills_inside_window` counts the "
     "windows each kill cut (read from the killed process's log)."),
    ("dependencies", "3. Dependencies failing", "Store (MongoDB emulator's down switch, a SQLite write lock) and "
     "WeChat (the simulator's fault switches)."),
    ("hostile", "4. Hostile input", "Each case asserts the status code and that checkouts, orders, refunds and the "
     "webhook outbox are unchanged (snapshots before/after)."),
    ("secrets", "5. Secrets", "Every log line of the battery (in-process at DEBUG with the access log, and the "
     "server processes' log files) and every error body received, searched for every configured secret."),
    ("soak", "6. Load (soak)", "`python -m tests.battery.soak --minutes N`: one sandbox server process (the "
     "simulated WeChat in a process of its own), mixed traffic from virtual shoppers, RSS sampled every 5 s; "
     "bounds: no error reply, no pending order after the reconciler, RSS growth after warm-up under the stated "
     "bound."),
    ("notify_costs", "7. What an unverified notify costs (and fuzzing)",
     "Real sandbox servers on loopback. Bytes are the SQLite file's growth after a WAL checkpoint, divided by the "
     "refusals; the fuzz cases post Hypothesis-generated bodies (arbitrary bytes, XML-shaped, mutations of a real "
     "signed or encrypted notify, huge and nested) and compare the business state after every one."),
]

# (weakness, fix, section, case that pins it)
WEAKNESSES = [
    ("A store failure (or crash) between the order's move to paid and the checkout's update left the checkout open "
     "forever: the repeated notify found the order paid and answered SUCCESS; the reconciler only looks at unpaid "
     "orders.",
     "The move to paid sets `settle_due_at` in the same write; `OrderBook.settle_paid` (idempotent) finishes the "
     "checkout, siblings, webhook intent and listeners, then clears it. A repeated notify finishes it before "
     "answering SUCCESS; the reconciler sweeps markers older than 5 s.",
     "dependencies", "store lost between the order's move and the checkout's"),
    ("WeChat calls used Tornado's process-wide AsyncHTTPClient (10 slots): with the slots taken (a burst of "
     "notifies each awaiting its orderquery, or any other HTTP in the process), orderqueries timed out in the "
     "queue and notifies failed.",
     "`TornadoTransport` has its own client per event loop (`max_clients=100`).",
     "dependencies", "WeChat calls with the shared HTTP client saturated"),
    ("A kill inside unifiedorder left the checkout's prepay lease (30 s, fixed) held by the dead process: every "
     "shopper retry waited 10 s and got 409 `prepay_in_progress` for half a minute.",
     "The prepay lease is 6 s, renewed every 2 s while unifiedorder runs; waiting requests take it over once it "
     "lapses.",
     "crashes", "kill -9 across 20 payments (CI variant)"),
    ("JSON nested deeply enough to exhaust the parser's recursion was a 500 `internal_error` on the merchant API "
     "(and NaN/Infinity were accepted as numbers).",
     "`BaseHandler.json_body` turns RecursionError into 400 `invalid_json` and refuses NaN/Infinity.",
     "hostile", "api-body-deeply-nested"),
    ("The access log carried full query strings: OAuth codes on `/oauth/callback`, and in sandbox the app secret "
     "on the simulated `sns/oauth2/access_token`.",
     "`handlers/access_log.py`: query values replaced by `…` in the access log.",
     "secrets", "no secret in logs or error bodies"),
    ("The start-up banner printed `merchant_api.tokens[0]` even when it was a configured secret (stdout ends up in "
     "journald/docker logs).",
     "Only the public sandbox default is shown; a configured token reads `(configured; not shown)`.",
     "secrets", "no secret in logs or error bodies"),
    ("With WeChat calls moved to Tornado's curl client (kept-alive connections), its DEBUG log carried every "
     "URL: the app secret and OAuth code in `sns/oauth2/access_token`'s query.",
     "`wxpay/transport.py`: a filter on the curl client's logger masks query strings and drops curl's traces of "
     "request bodies.",
     "secrets", "no secret in logs or error bodies"),
    ("Every body posted to `/notify/pay` and `/notify/refund` was stored in the audit trail (up to 16 KiB each, "
     "17,025 bytes of SQLite file per refused 16 KiB notify), even when refused before any signature check, and "
     "nothing was ever deleted; each refusal also wrote two WARNING lines.",
     "The proof of origin (signature; decryption for refunds) runs before any store lookup; what fails it keeps "
     "verdict, size, SHA-256 and a 64-character prefix only, within a per-source limit (`[notify]`, 429 beyond, "
     "never consulted for a verified notify); one WARNING summary a minute; `audit.retention_days` (MongoDB TTL "
     "index, SQLite pruning task).",
     "notify_costs", "bytes stored per refused 16 KiB notify"),
    ("A rate limit on the notify endpoints could have refused WeChat's own retries when its address was flooded.",
     "The limiter is consulted only after verification failed, so a notify with a valid signature always goes "
     "through the whole flow.",
     "notify_costs", "signed notify after a flood from the same source"),
]

LIMITS = [
    "After a kill -9 the webhook lease (30 s) and the reconciler lease (60 s) stay with the dead process until they "
     "expire, so webhooks and reconciler passes resume up to that long after a crash (nothing is lost; it is late).",
    "A payment made at WeChat whose every notify is lost is found by the reconciler on its query schedule "
    "(`reconciler.query_after_s`, then 1, 2, 4 … 30 min): late, never lost.",
    "In sandbox mode with the simulator mounted in the server process, the simulator's own order book (WeChat's "
    "memory: every order, its notifies and OAuth codes, about 3 KB per order) grows the process's RSS by design "
    "(a first 3-minute soak measured +12 MB over 3,713 orders); the soak's memory bound is therefore measured "
    "with the simulator in its own process, so the figure is the server's own.",
    "The MongoDB figures come from the in-process emulator (no MongoDB server can run here); set MONGODB_URI to run "
    "the store contract suite against a real one.",
    "A notify that verifies is never rate-limited, by design: a replay of a body WeChat signed (which only someone "
    "holding one can send) costs a store lookup and a digest record (about 550 bytes) each time, until the audit "
    "retention removes it.",
]


def fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return "unknown"


def render(entries: list[dict[str, Any]]) -> str:
    by_section: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_section.setdefault(e["section"], []).append(e)
    lookup = {(e["section"], e["case"]): e for e in entries}
    total = len(entries)
    failed = [e for e in entries if e["outcome"] != "pass"]
    newest = max((e["at"] for e in entries), default=0)
    out = [
        "# Reliability and security battery",
        "",
        "<!-- GENERATED by `python -m tests.battery.report` from the battery's results; do not edit by hand. -->",
        "",
        f"Generated from {total} recorded cases ({len(failed)} failing), last result "
        f"{dt.datetime.fromtimestamp(newest, dt.timezone.utc):%Y-%m-%d %H:%M UTC}, at commit `{git_head()}`, "
        f"on {platform.system()} with {platform.python_implementation()} {platform.python_version()}.",
        "",
        "How to reproduce:",
        "",
        "```sh",
        "make test                              # the battery's CI part runs with the suite (tests/battery/)",
        ".venv/bin/python -m pytest -m slow tests/battery   # + 200 payments under kill -9",
        ".venv/bin/python -m tests.battery.soak --minutes 10   # make soak",
        ".venv/bin/python -m tests.battery.report               # writes this file",
        "make reliability                       # all of the above in one go",
        "```",
        "",
        "## Weaknesses the battery found, and their fixes",
        "",
        "| # | Weakness | Fix | Pinned by | Outcome |",
        "|---|---|---|---|---|",
    ]
    for n, (weak, fix, section, case) in enumerate(WEAKNESSES, 1):
        entry = lookup.get((section, case))
        outcome = entry["outcome"] if entry else "not run"
        out.append(f"| {n} | {weak} | {fix} | {section}: {case} | {outcome} |")
    for key, title, intro in SECTIONS:
        cases = by_section.get(key, [])
        out += ["", f"## {title}", "", intro, ""]
        if not cases:
            out.append("_Not run in the results this report was generated from._")
            continue
        passed = sum(1 for c in cases if c["outcome"] == "pass")
        out.append(f"{passed} of {len(cases)} cases pass.")
        out.append("")
        if key == "hostile":
            out += ["| Case | Outcome | Status |", "|---|---|---|"]
            for c in cases:
                out.append(f"| `{c['case']}` | {c['outcome']} | {c['figures'].get('status', fmt(c['figures']))} |")
            continue
        for c in cases:
            out += [f"### {c['case']}", "", f"Outcome: **{c['outcome']}**", "", "| Figure | Value |", "|---|---|"]
            for name, value in c["figures"].items():
                if name == "rss_samples":
                    value = " ".join(f"{at:g}s:{mb:g}MB" for at, mb in value)
                out.append(f"| {name} | {fmt(value)} |")
            out.append("")
    out += ["", "## Known limits (measured, not fixed)", ""]
    out += [f"- {limit}" for limit in LIMITS]
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.battery.report", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=None, help=f"results folder (default {results_dir()})")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "RELIABILITY.md")
    args = parser.parse_args(argv)
    entries = read_all(args.results)
    if not entries:
        print("no battery results found; run the battery first", file=sys.stderr)
        return 2
    args.out.write_text(render(entries), encoding="utf-8")
    failing = sum(1 for e in entries if e["outcome"] != "pass")
    print(f"wrote {args.out} from {len(entries)} cases ({failing} failing)")
    return 0 if not failing else 1


if __name__ == "__main__":
    sys.exit(main())
