"""docs/BENCHMARKS.md from one run's figures (bench/run.py); never typed by hand."""
from __future__ import annotations

from typing import Any

from loadgen import Result


def _base(r: dict[str, Any]) -> float:
    """The faster of the bare hello's two measures (start and end of the run),
    so a slow spell of the shared machine cannot flatter a ratio."""
    again = r.get("hello_again")
    return max(r["hello"].rate, again.rate if again else 0.0)


def _rate(v: Result | None) -> str:
    return f"{v.rate:,.0f}/s" if v else "—"


def _lat(v: Result | None) -> str:
    return f"{v.p50_ms:.1f} / {v.p99_ms:.1f} ms" if v else "—"


def _ratio(v: Result | None, base: float) -> str:
    return f"{v.rate / base:.2f}x" if v and base else "—"


def _cpu(v: Result | None) -> str:
    if not v or "server_cpu_ms" not in v.extra:
        return "—"
    sim = v.extra.get("sim_cpu_ms")
    return f"{v.extra['server_cpu_ms']:.2f} ms" + (f" (+ {sim:.2f} ms)" if sim is not None else "")


def _sched(v: Result | None) -> str:
    if not v or "server_on_cpu" not in v.extra:
        return ""
    return f"{100 * v.extra['server_on_cpu']:.0f}% / {100 * v.extra['server_cpu_wait']:.0f}%"


def _errors(v: Result | None) -> str:
    if not v:
        return "—"
    return "0" if not v.errors() else f"**{v.errors()}** ({v.sample or 'socket errors'})"


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Figures saved with ``--json`` back into ``Result`` objects (``--render``)."""
    fields = set(Result.__dataclass_fields__)

    def walk(v: Any) -> Any:
        if isinstance(v, dict) and "p99_ms" in v:
            return Result(**{k: x for k, x in v.items() if k in fields})
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(data)


# Issue 16's goals, each a ratio within one run (docs/BENCHMARKS.md, "Goals").
GOALS = {
    "rate_to_relay": 0.6,      # first-time notify and prepay, V2 and V3: rate / relay rate, at least
    "cpu_to_relay": 2.5,       # server CPU per first-time notify / the relay's per request, at most
    "v3_cpu_to_v2": 1.3,       # server CPU per V3 notify / per V2 notify, at most
    "status_to_hello": 0.8,    # status poll rate / bare hello rate, at least
    "to_peer": 3.0,            # our notify and prepay rates / the peer's (its faster worker class), at least
    "memory_mb": 20.0,         # RSS growth over the memory run, under
}
LIBRARY_GOALS = {"notify parse+verify": 2.0, "v3 notify verify+decrypt": 1.5}  # others: no slower (1.0)


def _relay(r: dict[str, Any], key: str = "relay") -> tuple[float, float]:
    """The relay's rate (the faster of its two measures) and server CPU per request
    (the smaller): both choices make a ratio against it harder to meet, never easier.
    ``key="relay_sim"``: the relay whose upstream is the simulator's orderquery."""
    runs = [v for v in (r.get(key), r.get(key + "_again")) if v]
    if not runs:
        return 0.0, 0.0
    cpus = [v.extra["server_cpu_ms"] for v in runs if "server_cpu_ms" in v.extra]
    return max(v.rate for v in runs), min(cpus) if cpus else 0.0


def _upstream(v: Result | None) -> str:
    if not v or "upstream_calls" not in v.extra:
        return ""
    return f"{v.extra['upstream_calls']:,} / {v.requests:,}"


def _journeys(r: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, journey figures): ours on each API version, then the peer's rows."""
    out = []
    if r.get("sqlite"):
        out.append(("ours V2", "ours", r["sqlite"]))
    if r.get("v3"):
        out.append(("ours V3", "ours", r["v3"]))
    for key, j in (r.get("peer") or {}).items():
        worker = j["worker"] + (f", {j['threads']} threads" if j["worker"] == "gthread" else "")
        out.append((f"peer {j['version'].upper()} ({worker})", "peer", j))
    for version, j in (r.get("floor") or {}).items():
        out.append((f"floor {version.upper()}", "floor", j))
    return out


def _best_peer(r: dict[str, Any], version: str, key: str) -> tuple[Result | None, str]:
    best, label = None, ""
    for j in (r.get("peer") or {}).values():
        v = j.get(key)
        if j["version"] == version and v and (best is None or v.rate > best.rate):
            best, label = v, j["worker"]
    return best, label


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _all_results(r: dict[str, Any]) -> list[Result]:
    out = [v for v in (r.get("hello"), r.get("relay"), r.get("hello_again"), r.get("relay_again"),
                       r.get("relay_sim"), r.get("relay_sim_again"), r.get("relay_sim_v3"),
                       r.get("relay_sim_v3_again")) if v]
    for _, _, j in _journeys(r):
        out += [v for v in j.values() if isinstance(v, Result)]
    return out


def goals(r: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Each goal: (what, measured, target, met); bench/run.py prints them, the page tables them."""
    base = _base(r)
    relay_rate, relay_cpu = _relay(r)
    rows: list[tuple[str, str, str, bool]] = []
    for version, j in (("V2", r.get("sqlite")), ("V3", r.get("v3"))):
        if not j:
            continue
        for key, name in (("notify", "first-time notify"), ("prepay", "prepay")):
            v = j.get(key)
            if v and relay_rate:
                x = v.rate / relay_rate
                rows.append((f"{version} {name} rate / relay rate", f"{x:.2f}x", f">= {GOALS['rate_to_relay']}x",
                             x >= GOALS["rate_to_relay"]))
        v = j.get("notify")
        if v and relay_cpu and "server_cpu_ms" in v.extra:
            x = v.extra["server_cpu_ms"] / relay_cpu
            rows.append((f"{version} server CPU per notify / relay's", f"{x:.2f}x", f"<= {GOALS['cpu_to_relay']}x",
                         x <= GOALS["cpu_to_relay"]))
    if r.get("sqlite") and r.get("v3"):
        a, b = r["sqlite"]["notify"].extra.get("server_cpu_ms"), r["v3"]["notify"].extra.get("server_cpu_ms")
        if a and b:
            rows.append(("server CPU per notify, V3 / V2", f"{b / a:.2f}x", f"<= {GOALS['v3_cpu_to_v2']}x",
                         b / a <= GOALS["v3_cpu_to_v2"]))
    status = (r.get("sqlite") or {}).get("status")
    if status and base:
        x = status.rate / base
        rows.append(("status poll rate / bare hello rate", f"{x:.2f}x", f">= {GOALS['status_to_hello']}x",
                     x >= GOALS["status_to_hello"]))
    for version, j in (("v2", r.get("sqlite")), ("v3", r.get("v3"))):
        for key, name in (("notify", "first-time notify"), ("prepay", "prepay")):
            peer, worker = _best_peer(r, version, key)
            ours = (j or {}).get(key)
            if peer and ours and peer.rate:
                x = ours.rate / peer.rate
                rows.append((f"{version.upper()} {name}: ours / peer ({worker})", f"{x:.2f}x",
                             f">= {GOALS['to_peer']}x", x >= GOALS["to_peer"]))
    results = _all_results(r)
    errors = sum(v.errors() for v in results)
    rows.append(("errors over every HTTP row (ours, the peer's, the floor's, the relays')", f"{errors}", "0",
                 errors == 0))
    short = [v for v in results if "upstream_calls" in v.extra and v.extra["upstream_calls"] < v.requests]
    rows.append(("answers without their upstream call at the simulator", f"{len(short)} rows", "0 rows", not short))
    for row in r.get("library") or []:
        goal = LIBRARY_GOALS.get(row["name"])
        if goal:
            rows.append((f"library: {row['name']}, ours / {row.get('against', 'wechatpy')}", f"{row['ratio']:.2f}x",
                         f">= {goal}x", row["ratio"] >= goal))
    for version, mem in _memories(r.get("memory")):
        growth = (mem["curve"][-1]["rss_kb"] - mem["curve"][0]["rss_kb"]) / 1024
        rows.append((f"{version.upper()} RSS growth over {mem['payments']:,} payments", f"{growth:+.1f} MB",
                     f"< {GOALS['memory_mb']:.0f} MB", growth < GOALS["memory_mb"]))
    return rows


def _memories(mem: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    if not mem:
        return []
    if "curve" in mem:  # runs saved before the V3 memory row: one APIv2 run
        return [("v2", mem)]
    return [(k, v) for k, v in mem.items() if v]


def render(r: dict[str, Any]) -> str:
    m, cfg = r["machine"], r["config"]
    hello: Result = r["hello"]
    again: Result | None = r.get("hello_again")
    base = _base(r)
    relay_rate, relay_cpu = _relay(r)
    quick = " (**--quick run: short, indicative only**)" if cfg["quick"] else ""
    peer_stack = ", ".join(f"{k} {v}" for k, v in (m.get("peer_stack") or {}).items())
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{r.get('command', 'bench/run.py').strip()}` on {m['date']}{quick}. "
        "Do not edit by hand: rerun it.",
    ]
    if r.get("note"):
        lines += ["", f"**Note:** {r['note']}"]
    lines += [
        "",
        "## Machine and versions",
        "",
        f"- {m['cores']} cores, {m['cpu']}, {m['memory_gb']} GB memory; {m['os']}; load average at the start "
        f"{', '.join(f'{x:.2f}' for x in m.get('loadavg', ()))}"
        + (f", at the end of the HTTP rows {', '.join(f'{x:.2f}' for x in r['loadavg_end'])}"
           if r.get("loadavg_end") else ""),
        f"- Python {m['python']}, Tornado {m['tornado']}, pymongo {m['pymongo']}" + (f"; peer: {peer_stack}"
                                                                                     if peer_stack else ""),
        f"- load generator: {cfg['generator']}{' (' + m['wrk'] + ')' if cfg['generator'] == 'wrk' and m['wrk'] else ''}, "
        f"one thread, {cfg['connections']} keep-alive connections, 127.0.0.1 only; "
        f"{cfg['duration']:.0f} s per scenario at most; {cfg['orders']:,} orders per journey",
        _pinning(cfg.get("pin")),
        "",
        "Every goal is a ratio of two figures measured in the same run, because the machine is shared and "
        "absolute rates drift. The bare Tornado app (`bench/hello.py`: one process, `GET /` answers a few "
        "bytes) is the limit of this stack for a request; the *relay* (the same app, whose `/relay` makes one "
        "kept-alive call with Tornado's curl client to a second bare app) is the limit for a request that "
        "waits on one upstream call, as a first-time notify (`orderquery`) and a prepay (`unifiedorder`, or "
        "the V3 JSAPI order) do. Both are measured at the start and again at the end of the HTTP rows; the "
        "divisor is the faster rate and the smaller CPU of the two, so drift cannot flatter a ratio. The "
        "server, the simulator, the peer, the floor, the bare apps and wrk are separate processes on the machine's "
        "cores. Two more relays call the simulator itself, and a *floor* does only the mandatory work: both are "
        "context for the goals, not goals (the table after them).",
        "",
        "## Goals",
        "",
        "| Goal | measured | target | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {what} | {got} | {target} | {_verdict(ok)} |" for what, got, target, ok in goals(r)]
    lines += _context(r)
    lines += [
        "",
        "## Results",
        "",
        "| Scenario | Rate | / hello | / relay | / relay to the simulator | p50 / p99 latency | "
        "server CPU per request (+ simulator) | server on a CPU / waiting for one | upstream calls / answers | "
        "errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sim_rates = {version: _relay(r, _SIM_KEYS[version])[0] for version in _SIM_KEYS}

    def row(label: str, v: Result | None, to_relay: bool = False, version: str = "v2") -> str:
        rel = f"{v.rate / relay_rate:.2f}x" if v and to_relay and relay_rate else ""
        sim_rate = sim_rates[version]
        rel_sim = f"{v.rate / sim_rate:.2f}x" if v and to_relay and sim_rate else ""
        return (f"| {label} | {_rate(v)} | {_ratio(v, base)} | {rel} | {rel_sim} | {_lat(v)} | {_cpu(v)} | "
                f"{_sched(v)} | {_upstream(v)} | {_errors(v)} |")

    lines.append(row("bare Tornado \"hello\" (GET)", hello))
    if again:
        lines.append(row("bare hello again, at the end", again))
    if r.get("relay"):
        lines.append(row("relay: bare Tornado + one kept-alive upstream call", r["relay"], True))
    if r.get("relay_again"):
        lines.append(row("relay again, at the end", r["relay_again"], True))
    for version, what in (("v2", "a signed V2 `pay/orderquery`"), ("v3", "a signed V3 query by out_trade_no")):
        key = _SIM_KEYS[version]
        if r.get(key):
            lines.append(row(f"relay to the simulator {version.upper()}: the same, its call {what} at the simulator "
                             "(reply unchecked)", r[key], True, version))
        if r.get(key + "_again"):
            lines.append(row(f"relay to the simulator {version.upper()} again, before the simulator stops",
                             r[key + "_again"], True, version))
    for label, kind, j in _journeys(r):
        up = "orderquery" if j.get("version", "v2") == "v2" else "query by out_trade_no"
        lines.append(row(f"{label}: prepay", j.get("prepay"), True, j.get("version", "v2")))
        lines.append(row(f"{label}: first-time notify (verify, {up}, mark paid)", j.get("notify"), True,
                         j.get("version", "v2")))
        if j.get("duplicate"):
            lines.append(row(f"{label}: duplicate notify (already paid)", j["duplicate"]))
        if j.get("status"):
            lines.append(row(f"{label}: status poll `GET /pay/{{id}}/status`", j["status"]))
    lines += [
        "",
        "- CPU per request: user + system time of the server's process(es) (for gunicorn, the arbiter and its "
        "worker) from `/proc/PID/stat` over the scenario, divided by the answers; the simulator's in brackets. "
        "It is far less sensitive than rates to other work on a shared machine.",
        "- Server on a CPU / waiting for one: the seconds the server's threads ran, and the seconds they were "
        "ready to run but queued behind other processes for a core (`/proc/PID/task/*/schedstat`), each over "
        "the scenario's wall time (threads add up, so a multi-threaded process can pass 100%). What is left of "
        "100% for our one-threaded loop is time it slept: waiting on a socket, a timer, a lock or the disk. "
        "When the two add up to about 100%, the server never waited on anything of its own: its rate is set by "
        "its CPU per request and by the share of the cores the machine gave it.",
        "- Upstream calls / answers: the calls the simulator counted for that scenario's WeChat endpoint "
        "(`GET /_sim/calls`: `pay/unifiedorder` or `v3/pay/transactions/jsapi` for a prepay, `pay/orderquery` "
        "or the V3 query for a first-time notify) against the answers the generator received. Equal means each "
        "answer made its own call; a call or two more are requests still in flight when a timed run ended.",
        "- First-time notifies: one per order, each order prepaid through the server under test and paid by "
        "its shopper at the simulator beforehand (the simulator's own notify dropped with the `drop` fault); "
        "the harness sends the notify WeChat would send (`bench/wechat_side.py`: V2 signed with the API key, "
        "MD5 and no `sign_type`; V3 encrypted with the APIv3 key and signed with WeChat's test-only key). "
        "Prepays: one `POST /pay/{id}/prepay` per fresh order, as a signed-in shopper, so each is a first order "
        "at WeChat, never a reuse. Both are pools sent once: a row ends with its last answer or at the "
        "scenario's time limit, whichever comes first.",
        "- Duplicate notifies replay the same V2 bodies for the whole duration (already paid: verify, answer "
        "SUCCESS, no upstream call); the status poll is the shopper's page asking `GET /pay/{id}/status` over "
        "every checkout of the journey (a read, no upstream call), measured against the bare hello.",
    ]
    for label, kind, j in _journeys(r):
        paid = j.get("notify_paid_in_store")
        if paid is not None and j.get("notify"):
            lines.append(f"- {label}: {j['notify'].requests:,} notifies answered, {paid:,} orders moved to paid "
                         f"in its store; RSS at the end {j['server_rss_kb'][0] / 1024:.0f} MB.")
    lines += _peer_notes(r)
    lines += _before_after(r)
    lines += _where_the_time_goes(r, base)
    lines += _library(r.get("library"))
    lines += _memory(r.get("memory"))
    lines += _stores(r)
    lines += _scaling(r, base)
    lines += [
        "",
        "## How to rerun",
        "",
        "`make bench` (about 10 minutes with `--payments 10000`; it installs `requirements-bench.txt` first), "
        "`make bench-quick` (about a minute, indicative only), or `.venv/bin/python bench/run.py --help` for "
        "durations, connections, pool sizes, `--payments N` for the memory rows (the goal is stated for "
        "100,000), the peer's worker classes, skipping parts and the Python load generator. `--json FILE` "
        "saves the figures, `--render FILE` remakes this page from them, `--before FILE` adds a comparison "
        "with an earlier run.",
        "",
        f"Whole run: {r['total_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def _peer_notes(r: dict[str, Any]) -> list[str]:
    if not r.get("peer"):
        return ["", "The peer rows were skipped in this run (`--skip-peer`)."]
    return [
        "",
        "### The peer",
        "",
        "What a merchant would otherwise build by hand: `bench/peer/app.py`, Flask with wechatpy (V2) or "
        "wechatpayv3 (V3) and sqlite3, under gunicorn with **one worker process**, as our server is one "
        "process. Two rows each: the `sync` worker (gunicorn's default, one request at a time) and `gthread` "
        "(threads in that one process); the goals take the peer's faster row. It does the same checks on "
        "the same simulator: the notify's signature (V3: verify, then decrypt), the amount against its order, "
        "the order query at WeChat before believing the notify, then one durable compare-and-set to paid in a "
        "WAL SQLite file with `synchronous=NORMAL` (our store's settings). Its upstream connections are kept "
        "alive, as ours are (wechatpy's own `requests.Session`; wechatpayv3 is given one). What differs is "
        "listed in `bench/peer/README.md`: above all, ours also writes the checkout, an audit record and "
        "the settle marker per notify, and answers the page's status polls, which the peer has no equivalent of.",
    ]


# The relay-to-the-simulator rows per API version (each also measured again, key + "_again").
_SIM_KEYS = {"v2": "relay_sim", "v3": "relay_sim_v3"}


def _pinning(pin: dict[str, Any] | None) -> str:
    if not pin:
        return "- CPU placement: not pinned (every process may run on any core; `--pin` pins them)"
    return (f"- CPU placement (`--pin`): the process under test (hello, relay, our server, the peer, the floor) "
            f"on CPU {', '.join(map(str, pin['under_test']))}; the simulator, the relay's upstream, wrk and the "
            f"harness on CPU {', '.join(map(str, pin['rest']))}")


def _context(r: dict[str, Any]) -> list[str]:
    """Not goals: each prepay and first-time notify also against the relay to the simulator and
    against the floor (bench/floor.py), so a reader sees what the simulator's CPU and the protocol's
    mandatory work take out of the relay goals."""
    relay_rate, relay_cpu = _relay(r)
    sims = {version: _relay(r, key) for version, key in _SIM_KEYS.items()}
    floors = r.get("floor") or {}
    if not (any(rate for rate, _ in sims.values()) or floors):
        return []
    out = [
        "", "### Context, not goals: the simulator's share and the floor", "",
        "The goals above divide by the relay, whose upstream is a bare app; ours and the floor call the "
        "simulator, which spends more CPU per call on the same two cores. *Relay to sim* is the same relay "
        "whose one call is the query a first-time notify makes, at the simulator (V2 `pay/orderquery`, V3 query "
        "by out_trade_no; signed once by the harness, of a paid order; the reply passed on unchecked): the "
        "ceiling with our actual upstream, each row divided by the one of its API version. The *floor* "
        "(`bench/floor.py`) does only the mandatory work of a safe request (see its docstring) in a bare Tornado "
        "app, fed the same pools as the peer. Rates as ratios; CPU is server CPU per request (the simulator's in "
        "brackets).", "",
    ]
    for version, (rate, cpu) in sims.items():
        runs = [v for v in (r.get(_SIM_KEYS[version]), r.get(_SIM_KEYS[version] + "_again")) if v]
        sim_cpu = [v.extra["sim_cpu_ms"] for v in runs if "sim_cpu_ms" in v.extra]
        if rate and relay_rate and sim_cpu:
            out.append(f"- Relay to sim {version.upper()} / relay: {rate / relay_rate:.2f}x the rate; its CPU "
                       f"{cpu:.2f} ms (+ {min(sim_cpu):.2f} ms at the simulator per call) against the relay's "
                       f"{relay_cpu:.2f} ms (+ the bare upstream's).")
    out += ["", "| Row | ours / relay | ours / relay to sim | floor / relay | floor / relay to sim | ours / floor | "
            "CPU: ours | floor | ours / floor |", "|---|---|---|---|---|---|---|---|---|"]

    def ratio(x: Result | None, d: float) -> str:
        return f"{x.rate / d:.2f}x" if x and d else "—"

    for version, ours in (("v2", r.get("sqlite")), ("v3", r.get("v3"))):
        floor = floors.get(version) or {}
        sim_rate = sims[version][0]
        for key, name in (("prepay", "prepay"), ("notify", "first-time notify")):
            a, b = (ours or {}).get(key), floor.get(key)
            ca, cb = (v.extra.get("server_cpu_ms") if v else None for v in (a, b))
            out.append(f"| {version.upper()} {name} | {ratio(a, relay_rate)} | {ratio(a, sim_rate)} | "
                       f"{ratio(b, relay_rate)} | {ratio(b, sim_rate)} | {ratio(a, b.rate if b else 0)} | "
                       f"{_cpu(a)} | {_cpu(b)} | {f'{ca / cb:.2f}x' if ca and cb else '—'} |")
    return out


def _where_the_time_goes(r: dict[str, Any], base: float) -> list[str]:
    relay, hello = r.get("relay"), r["hello"]
    relay_rate, relay_cpu = _relay(r)
    if not (relay and relay_cpu and hello.extra.get("server_cpu_ms")):
        return []
    out = ["", "### What the relay goals leave for a notify", ""]
    budget = GOALS["cpu_to_relay"] * relay_cpu
    out.append(
        f"The relay answers {relay_rate:,.0f}/s = {relay_rate / base:.2f}x the bare hello, at {relay_cpu:.2f} ms "
        f"of server CPU per request (the hello: {hello.extra['server_cpu_ms']:.2f} ms). A notify within "
        f"{GOALS['cpu_to_relay']}x the relay's CPU has {budget:.2f} ms in all, i.e. {budget - relay_cpu:.2f} ms "
        f"for its parse, signature checks (the notify's and the query answer's), state checks and durable "
        f"writes beyond the HTTP in and out. On two shared cores the rates follow these costs: a row's rate "
        f"ratio is roughly the inverse of its CPU ratio once the server's core is the busy one.")
    for label, j in (("V2", r.get("sqlite")), ("V3", r.get("v3"))):
        v = (j or {}).get("notify")
        if v and "server_cpu_ms" in v.extra:
            out.append(f"- {label} first-time notify now: {v.extra['server_cpu_ms']:.2f} ms "
                       f"({v.extra['server_cpu_ms'] / relay_cpu:.1f}x the relay's).")
    for version, j in (r.get("floor") or {}).items():
        v = (j or {}).get("notify")
        if v and "server_cpu_ms" in v.extra:
            out.append(f"- the floor's {version.upper()} first-time notify (`bench/floor.py`, the mandatory work "
                       f"alone): {v.extra['server_cpu_ms']:.2f} ms ({v.extra['server_cpu_ms'] / relay_cpu:.1f}x the "
                       f"relay's).")
    return out


def _before_after(r: dict[str, Any]) -> list[str]:
    """This run against an earlier commit's (``--before``), each as ratios to
    its own run's bare hello, since absolute rates drift between runs."""
    before = r.get("before")
    if not before:
        return []
    b = from_json(before)
    bh, nh = b["hello"], r["hello"]
    bbase, nbase = _base(b), _base(r)
    bcpu, ncpu = bh.extra.get("server_cpu_ms"), nh.extra.get("server_cpu_ms")
    out = [
        "", "### Before and after this round", "",
        f"The same harness at commit {before.get('commit', '?')} (figures in `{r.get('before_file', '?')}`, "
        f"run on {b['machine']['date']}, simulator of that commit), against this run. Rates are compared as "
        f"ratios to each run's own bare hello (the faster measure of each run), CPU as multiples of each "
        f"run's hello CPU.", "",
        "| Scenario | before: ratio | now: ratio | before: server CPU / hello CPU | now | CPU cut |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("notify", "first-time notify"), ("duplicate", "duplicate notify"), ("prepay", "prepay"),
                       ("status", "status poll")):
        old, new = b["sqlite"].get(key), r["sqlite"].get(key)
        if not (old and new):
            continue
        oc = old.extra.get("server_cpu_ms", 0) / bcpu if bcpu else 0
        nc = new.extra.get("server_cpu_ms", 0) / ncpu if ncpu else 0
        cut = f"{oc / nc:.1f}x less" if oc and nc else "—"
        out.append(f"| {label} | {old.rate / bbase:.2f}x | {new.rate / nbase:.2f}x | {oc:.1f}x | {nc:.1f}x | {cut} |")
    return out


def _library(rows: list[dict[str, Any]] | None) -> list[str]:
    if not rows:
        return ["", "## Library", "", "Skipped in this run."]
    out = [
        "", "## Library: wxpay vs wechatpy (V2) and wechatpayv3 (V3) on identical inputs", "",
        "Same keys, nonces and messages on both sides; both checked to produce the same signatures (or, for a "
        "V3 request, signatures that verify over each side's body) first. Best of several repeats, the two "
        "sides interleaved, in one process. Goals: V2 notify parse+verify at least 2x wechatpy's "
        "`parse_payment_result`, V3 notify verify+decrypt at least 1.5x wechatpayv3's `callback`, every other "
        "row no slower (>= 1.00x); `bench/bench_library.py` says what extra work each side does per row.", "",
        "| Operation | wxpay | theirs | library | ours/theirs | goal |", "|---|---|---|---|---|---|",
    ]
    for row in rows:
        theirs = row.get("theirs", row.get("wechatpy"))  # runs saved before the V3 rows say "wechatpy"
        goal = LIBRARY_GOALS.get(row["name"], 1.0)
        out.append(f"| {row['name']} | {row['ours']:,.0f}/s | {theirs:,.0f}/s | {row.get('against', 'wechatpy')} "
                   f"| {row['ratio']:.2f}x | >= {goal}x {_verdict(row['ratio'] >= goal)} |")
    return out


def _memory(mem: dict[str, Any] | None) -> list[str]:
    runs = _memories(mem)
    if not runs:
        return ["", "## Memory", "", "Skipped in this run."]
    first = runs[0][1]
    out = [
        "", "## Memory", "",
        f"RSS of one process running the server's own services (`wiring.services.build`, embedded SQLite) "
        f"through N payments after a warm-up, {first['concurrency']} at a time, in-process without HTTP (HTTP "
        f"at this count would take most of the run on 2 cores), once per API version (`bench/memory.py "
        f"--api-version`). Each payment: create checkout → prepay (JSAPI, both payloads) → signed notify "
        f"handled by the notify service (verify, V3: decrypt, query the order, mark paid, settle the checkout, "
        f"audit). WeChat is a stateless stub behind the real client (signed requests; V2 signed XML replies, "
        f"V3 signed JSON replies, each verified), so no simulator state lives in the measured process. Goal: "
        f"growth under {GOALS['memory_mb']:.0f} MB over 100,000 payments.",
        "",
        "| API | payments | after warm-up | at the end | growth | goal | curve |",
        "|---|---|---|---|---|---|---|",
    ]
    for version, m in runs:
        curve = m["curve"]
        a, b = curve[0]["rss_kb"] / 1024, curve[-1]["rss_kb"] / 1024
        points = ", ".join(f"{p['payments']:,}: {p['rss_kb'] / 1024:.1f}" for p in curve)
        out.append(f"| {version.upper()} | {m['payments']:,} (+ {m['warmup']:,} warm-up) | {a:.1f} MB | {b:.1f} MB | "
                   f"**{b - a:+.1f} MB** | < {GOALS['memory_mb']:.0f} MB {_verdict(b - a < GOALS['memory_mb'])} | "
                   f"{points} |")
    out.append("")
    for version, m in runs:
        out.append(f"- {version.upper()}: per-key lock tables at the end (must be empty) {m['in_memory_tables']}; "
                   f"orders paid in the store {m['paid_in_store']:,}; failures {m['failures'] or 'none'}; "
                   f"{m['seconds']:.0f} s, {m.get('cpu_ms_per_payment', 0):.2f} ms of CPU per payment in-process"
                   + (" (the stub's RSA signatures of WeChat's side included)." if version == "v3" else "."))
    return out


def _stores(r: dict[str, Any]) -> list[str]:
    s = r["sqlite"]
    out = ["", "## Stores", "", "| Store | notifies/s | p99 | prepays/s | p99 |", "|---|---|---|---|---|",
           f"| SQLite (embedded, WAL) | {_rate(s['notify'])} | {s['notify'].p99_ms:.1f} ms | "
           f"{_rate(s['prepay'])} | {s['prepay'].p99_ms:.1f} ms |"]
    mongo = r.get("mongo")
    if mongo:
        out.append(f"| MongoDB (`MONGODB_URI`) | {_rate(mongo['notify'])} | {mongo['notify'].p99_ms:.1f} ms | "
                   f"{_rate(mongo['prepay'])} | {mongo['prepay'].p99_ms:.1f} ms |")
    else:
        out += ["", "MongoDB: **`MONGODB_URI` was not set for this run**, so there is no MongoDB figure. "
                    "Set it (`MONGODB_URI=mongodb://host/ make bench`) and the same journey runs on it "
                    "in a throwaway database."]
    return out


def _scaling(r: dict[str, Any], base: float) -> list[str]:
    one, two = r.get("scaling_1"), r.get("scaling_2")
    if not (one and two):
        return ["", "## Scaling", "", "Skipped in this run."]
    out = [
        "", "## Scaling: N processes on one SQLite file (WAL)", "",
        "The same journey against one server process, then against two processes on the same SQLite "
        "file (one wrk per process, rates added). This machine has "
        f"{r['machine']['cores']} cores shared by the servers, the simulator and the load generators, "
        "so this shows contention, not the headroom of a bigger machine.", "",
        "| | 1 process | 2 processes | 2 / 1 |", "|---|---|---|---|",
    ]
    for key, label in (("notify", "first-time notifies"), ("prepay", "prepays")):
        a, b = one[key], two[key]
        out.append(f"| {label} | {_rate(a)} (p99 {a.p99_ms:.0f} ms) | {_rate(b)} (p99 {b.p99_ms:.0f} ms) | "
                   f"{b.rate / a.rate:.2f}x |")
    out += [
        "",
        "On paper: the HTTP, signing and XML work of each request is CPU in its own process and scales "
        "with cores until the shared parts saturate. Those are (1) the simulator, here one Python process "
        "answering every orderquery and unifiedorder (real WeChat is not a bottleneck); (2) the store's "
        "write lock: SQLite in WAL allows one writer at a time across all processes, and a notify makes "
        "three or four short write transactions (order CAS, checkout settle, audit insert, plus the webhook "
        "outbox where enabled) besides its reads. "
        "Each commit costs tens of microseconds on a local disk, so one file caps out at a few thousand "
        "writes per second, i.e. several hundred notifies/s, whatever the number of processes; beyond "
        "that, processes spend their time in `BEGIN IMMEDIATE` waits. MongoDB has no such single lock: "
        "writes to different documents proceed in parallel (document-level concurrency in WiredTiger), "
        "so N processes on N cores should scale close to N times until the replica set's primary is "
        "CPU or disk bound; every cross-process guarantee (compare-and-set moves, leases) is already a "
        "single-document operation there.",
    ]
    return out
