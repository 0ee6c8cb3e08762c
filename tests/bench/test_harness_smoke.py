"""The bench harness runs end to end and writes every section (behaviour, not speed).

Real processes on loopback: a bare Tornado app, a standalone simulator,
server processes and the peer (Flask under gunicorn, bench/peer/), driven by
wrk when installed, else by the Python load generator. No figure is
asserted: only that the report is produced, that each scenario got answers,
that none of them was an error and that each answer made its upstream call.
The fast test runs every scenario tiny (``--smoke``, seconds) so the harness
cannot rot between benchmark runs; the slow one runs ``--quick`` with scaling.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


JOURNEYS = ("sqlite", "v3", "peer/v2-sync", "peer/v2-gthread", "peer/v3-sync", "peer/v3-gthread", "floor/v2",
            "floor/v3")


def _journey(figures: dict, key: str) -> dict:
    out = figures
    for part in key.split("/"):
        out = out[part]
    return out


def test_smoke_run_covers_every_scenario_without_errors(tmp_path):
    out, raw = tmp_path / "BENCH.md", tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(out), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(raw.read_text())
    orders = figures["config"]["orders"]
    sims = ("relay_sim", "relay_sim_v3")  # measured again at the end only outside --smoke
    for key in ("hello", "relay", "hello_again", "relay_again", *sims):
        assert figures[key]["requests"] > 0 and figures[key]["bad"] == figures[key]["socket_errors"] == 0, key
    for key in sims:  # each answer made its query at the simulator
        assert figures[key]["extra"]["upstream_calls"] >= figures[key]["requests"], key
    for key in JOURNEYS:
        journey = _journey(figures, key)
        for scenario in ("prepay", "notify"):
            result = journey[scenario]
            assert result["bad"] == 0 and result["socket_errors"] == 0, (key, scenario, result["sample"])
            # the whole pool answered (a cap of --pool-seconds, never reached), each with its own WeChat call
            assert result["requests"] == orders, (key, scenario)
            assert result["extra"]["upstream_calls"] == orders, (key, scenario)
            # /proc's CPU times tick every 10 ms: a dozen fast requests may add up to no tick at all
            assert result["extra"]["server_cpu_ms"] >= 0, (key, scenario)
            # where the wall time went: shares of it on a CPU and queued for one, for the server and the simulator
            for who in ("server", "sim"):
                assert result["extra"][f"{who}_on_cpu"] > 0 and result["extra"][f"{who}_cpu_wait"] >= 0, (key, who)
        assert journey["notify_paid_in_store"] == orders, key
    for scenario in ("duplicate", "status"):
        result = figures["sqlite"][scenario]
        assert result["requests"] > 0 and result["bad"] == result["socket_errors"] == 0, scenario
    names = {row["name"] for row in figures["library"]}
    assert {"notify parse+verify", "v3 notify verify+decrypt"} <= names
    assert all(row["ours"] > 0 and row["theirs"] > 0 for row in figures["library"])
    for version in ("v2", "v3"):
        mem = figures["memory"][version]
        assert mem["api_version"] == version and mem["failures"] == {}, mem
        assert mem["paid_in_store"] == mem["payments"] + mem["warmup"]
    text = out.read_text()
    for line in ("V2 first-time notify rate / relay rate", "V3 prepay rate / relay rate",
                 "V2 server CPU per notify / relay's", "server CPU per notify, V3 / V2",
                 "status poll rate / bare hello rate", "V2 first-time notify: ours / peer",
                 "V3 prepay: ours / peer", "library: notify parse+verify", "library: v3 notify verify+decrypt",
                 "V2 RSS growth", "V3 RSS growth", "| errors over every HTTP row (ours, the peer's, the floor's, the relays') | 0 |",
                 "| answers without their upstream call at the simulator | 0 rows |",
                 "server on a CPU / waiting for one", "Context, not goals", "| V2 first-time notify | ",
                 "| V3 prepay | ", "relay to the simulator V2: ", "relay to the simulator V3: ", "floor V3: first-time notify",
                 "- CPU placement: not pinned"):
        assert line in text, line


@pytest.mark.slow
def test_quick_run_writes_every_section_without_errors(tmp_path):
    out, raw = tmp_path / "BENCH.md", tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--duration", "1", "--orders", "60",
         "--memory-payments", "100", "--out", str(out), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for heading in ("## Machine and versions", "## Results", "## Library", "## Memory", "## Stores", "## Scaling"):
        assert heading in text
    assert "MONGODB_URI" in text
    figures = json.loads(raw.read_text())
    for key in ("prepay", "notify", "duplicate", "status"):
        result = figures["sqlite"][key]
        assert result["requests"] > 0, key
        assert result["bad"] == 0 and result["socket_errors"] == 0, (key, result["sample"])
    # every first-time notify that was answered moved its order to paid, exactly once
    assert figures["sqlite"]["notify_paid_in_store"] == figures["sqlite"]["notify"]["requests"]
    assert figures["memory"]["failures"] == {} and figures["memory"]["in_memory_tables"] == {
        "prepay_locks": 0, "notify_locks": 0}


# ---- the floor (bench/floor.py) really does each check it is credited with ------------------------


def _http(port: int, method: str, path: str, body: bytes | str = b"", headers: dict | None = None) -> tuple:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _wait(port: int, path: str, proc: subprocess.Popen) -> None:
    import time

    for _ in range(300):
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            _http(port, "GET", path)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("never answered")


@pytest.fixture(scope="module")
def floors(tmp_path_factory):
    """A standalone simulator and the floor on each API version (real processes on loopback),
    with orders in each floor's SQLite file prepaid through the floor itself."""
    import sqlite3

    sys.path.insert(0, str(ROOT / "bench"))
    import run as harness

    tmp = tmp_path_factory.mktemp("floor")
    procs = []

    def spawn(args: list[str], env: dict | None = None) -> subprocess.Popen:
        procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**harness.os.environ, **(env or {})},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return procs[-1]

    try:
        sim_port = harness.free_port()
        _wait(sim_port, "/_sim/", spawn(["-m", "wxpay.simulator", "--port", str(sim_port)]))
        _http(sim_port, "POST", "/_sim/faults", json.dumps({"endpoint": "notify", "kind": "drop", "count": None}),
              {"Content-Type": "application/json"})  # the floor gets only the notifies the tests send
        openid = harness.asyncio.run(harness.wechat_side.openid_at_simulator(sim_port, "floor-test"))
        out = {"sim": sim_port, "openid": openid}
        for version in ("v2", "v3"):
            port = harness.free_port()
            config, db = harness.hand_config(tmp, f"floor-{version}", sim_port, version, port)
            _wait(port, "/healthz", spawn([str(ROOT / "bench" / "floor.py"), str(port)], {"FLOOR_CONFIG": str(config)}))
            ids = [f"floortest{version}{i}" for i in range(6)]
            with sqlite3.connect(db) as conn:
                conn.executemany("INSERT INTO orders (id, amount_fen, description) VALUES (?, 100, 'tea')",
                                 [(i,) for i in ids])
            conn.close()
            headers = {"Cookie": harness.floor_session_cookie(openid), "Content-Type": "application/json"}
            payloads = {}
            for oid in ids:
                status, body = _http(port, "POST", f"/pay/{oid}/prepay", "{}", headers)
                assert status == 200, body
                payloads[oid] = json.loads(body)
            out[version] = {"port": port, "db": db, "ids": ids, "payloads": payloads}
        yield out
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=15)


def _order(db, oid: str) -> tuple:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT state, prepay_id FROM orders WHERE id = ?", (oid,)).fetchone()
    finally:
        conn.close()


def _pay_at_sim(sim_port: int, prepay_id: str) -> str:
    status, body = _http(sim_port, "POST", "/_sim/pay", json.dumps({"prepay_id": prepay_id, "outcome": "ok"}),
                         {"Content-Type": "application/json"})
    assert status == 200, body
    return json.loads(body)["transaction_id"]


def _refund_at_sim(sim_port: int, out_trade_no: str) -> None:
    """A full refund at the simulator (V2 ``secapi/pay/refund``): the order's trade_state becomes REFUND."""
    from wxpay import signing
    from wxpay.simulator import demo
    from wxpay.xmlcodec import build_xml, parse_xml

    fields = {"appid": demo.OFFICIAL_ACCOUNT_APPID, "mch_id": demo.MCH_ID, "nonce_str": signing.make_nonce(),
              "out_trade_no": out_trade_no, "out_refund_no": "R" + out_trade_no, "total_fee": "100",
              "refund_fee": "100"}
    fields["sign"] = signing.sign(fields, demo.API_KEY)
    status, body = _http(sim_port, "POST", "/secapi/pay/refund", build_xml(fields))
    assert status == 200 and parse_xml(body).get("result_code") == "SUCCESS", body


def _reprice(db, oid: str, amount_fen: int) -> None:
    """The order row's amount changed after its prepay (WeChat still holds the old one)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE orders SET amount_fen = ? WHERE id = ?", (amount_fen, oid))
    conn.close()


def _calls(sim_port: int) -> dict:
    return json.loads(_http(sim_port, "GET", "/_sim/calls")[1])["calls"]


def test_floor_v2_refuses_a_bad_signature_a_wrong_amount_and_an_order_wechat_has_not_paid(floors):
    sys.path.insert(0, str(ROOT / "bench"))
    import wechat_side

    from wxpay.simulator import demo

    f, sim = floors["v2"], floors["sim"]
    bad_sig, bad_amount, unpaid, refunded, repriced, good = f["ids"]
    payload = f["payloads"][good]  # the JSAPI payload's paySign checks with the API key
    assert payload["signType"] == "MD5" and payload["package"] == "prepay_id=" + _order(f["db"], good)[1]
    from wxpay import signing
    assert payload["paySign"] == signing.sign({k: v for k, v in payload.items() if k != "paySign"}, demo.API_KEY)

    def notify(oid: str, total: int, transaction_id: str, **kw) -> str:
        return wechat_side.v2_notify(appid=demo.OFFICIAL_ACCOUNT_APPID, mch_id=demo.MCH_ID, openid=floors["openid"],
                                     out_trade_no=oid, total_fee=total, trade_type="JSAPI",
                                     transaction_id=transaction_id, **kw)

    queries = _calls(sim).get("pay/orderquery", 0)
    tx = _pay_at_sim(sim, _order(f["db"], bad_sig)[1])
    status, body = _http(f["port"], "POST", "/notify/v2", notify(bad_sig, 100, tx, api_key="not-our-key-" + "k" * 20))
    assert status == 400 and b"bad signature" in body
    tx = _pay_at_sim(sim, _order(f["db"], bad_amount)[1])
    status, body = _http(f["port"], "POST", "/notify/v2", notify(bad_amount, 1, tx))
    assert status == 400 and b"amount mismatch" in body
    assert _calls(sim).get("pay/orderquery", 0) == queries  # refused before asking WeChat
    # well signed, right amount, but the shopper never paid: only the orderquery can tell
    status, body = _http(f["port"], "POST", "/notify/v2", notify(unpaid, 100, "4200000000000000000000000001"))
    assert status == 409 and b"not paid at WeChat" in body
    assert _calls(sim).get("pay/orderquery", 0) == queries + 1
    tx = _pay_at_sim(sim, _order(f["db"], refunded)[1])
    _refund_at_sim(sim, refunded)  # paid, then refunded before the notify came: WeChat says REFUND
    status, body = _http(f["port"], "POST", "/notify/v2", notify(refunded, 100, tx))
    assert status == 409 and b"not paid at WeChat" in body
    tx = _pay_at_sim(sim, _order(f["db"], repriced)[1])
    _reprice(f["db"], repriced, 200)  # the notify agrees with the row; only WeChat's answer (100) does not
    status, body = _http(f["port"], "POST", "/notify/v2", notify(repriced, 200, tx))
    assert status == 409 and b"not paid at WeChat" in body
    for oid in (bad_sig, bad_amount, unpaid, refunded, repriced):
        assert _order(f["db"], oid)[0] == "prepaid"
    tx = _pay_at_sim(sim, _order(f["db"], good)[1])
    wrong_tx = notify(good, 100, tx[:-1] + ("1" if tx[-1] != "1" else "2"))  # the query's transaction_id disagrees
    assert _http(f["port"], "POST", "/notify/v2", wrong_tx)[0] == 409
    status, body = _http(f["port"], "POST", "/notify/v2", notify(good, 100, tx))
    assert status == 200 and b"SUCCESS" in body and _order(f["db"], good)[0] == "paid"


def test_floor_v3_refuses_a_bad_signature_a_stale_one_a_wrong_amount_and_an_unpaid_order(floors):
    import base64

    sys.path.insert(0, str(ROOT / "bench"))
    import wechat_side
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    from wxpay.simulator import demo

    f, sim = floors["v3"], floors["sim"]
    bad_sig, bad_amount, unpaid, refunded, repriced, good = f["ids"]
    creds = wechat_side.credentials()
    payload = f["payloads"][good]  # the JSAPI paySign verifies with the merchant's public key
    merchant = serialization.load_pem_private_key(creds["merchant_private_key_pem"].encode(), None).public_key()
    merchant.verify(base64.b64decode(payload["paySign"]),
                    "".join(payload[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode(),
                    padding.PKCS1v15(), hashes.SHA256())

    def notify(oid: str, total: int, transaction_id: str) -> tuple[str, dict]:
        return wechat_side.v3_notify(appid=demo.OFFICIAL_ACCOUNT_APPID, mchid=demo.MCH_ID, openid=floors["openid"],
                                     out_trade_no=oid, total=total, trade_type="JSAPI", transaction_id=transaction_id)

    queries = _calls(sim).get("v3/pay/transactions/out-trade-no/{out_trade_no}", 0)
    tx = _pay_at_sim(sim, _order(f["db"], bad_sig)[1])
    body, headers = notify(bad_sig, 100, tx)
    status, _ = _http(f["port"], "POST", "/notify/v3", body.replace('"id":"EV-', '"id":"EW-'), headers)
    assert status == 401  # one byte of the signed body changed
    import time

    stale = str(int(time.time()) - 301)
    signature = wechat_side._wechat_key().sign(f"{stale}\n{headers['Wechatpay-Nonce']}\n{body}\n".encode(),
                                               padding.PKCS1v15(), hashes.SHA256())
    status, reply = _http(f["port"], "POST", "/notify/v3", body, {
        **headers, "Wechatpay-Timestamp": stale, "Wechatpay-Signature": base64.b64encode(signature).decode()})
    assert status == 401 and b"window" in reply  # a valid signature, 301 s old
    tx = _pay_at_sim(sim, _order(f["db"], bad_amount)[1])
    status, reply = _http(f["port"], "POST", "/notify/v3", *notify(bad_amount, 1, tx))
    assert status == 400 and b"amount mismatch" in reply
    assert _calls(sim).get("v3/pay/transactions/out-trade-no/{out_trade_no}", 0) == queries
    status, reply = _http(f["port"], "POST", "/notify/v3", *notify(unpaid, 100, "4200000000000000000000000001"))
    assert status == 409 and b"not paid at WeChat" in reply
    assert _calls(sim).get("v3/pay/transactions/out-trade-no/{out_trade_no}", 0) == queries + 1
    tx = _pay_at_sim(sim, _order(f["db"], refunded)[1])
    _refund_at_sim(sim, refunded)  # paid, then refunded before the notify came: WeChat says REFUND
    status, reply = _http(f["port"], "POST", "/notify/v3", *notify(refunded, 100, tx))
    assert status == 409 and b"not paid at WeChat" in reply
    tx = _pay_at_sim(sim, _order(f["db"], repriced)[1])
    _reprice(f["db"], repriced, 200)  # the notify agrees with the row; only WeChat's answer (100) does not
    status, reply = _http(f["port"], "POST", "/notify/v3", *notify(repriced, 200, tx))
    assert status == 409 and b"not paid at WeChat" in reply
    for oid in (bad_sig, bad_amount, unpaid, refunded, repriced):
        assert _order(f["db"], oid)[0] == "prepaid"
    tx = _pay_at_sim(sim, _order(f["db"], good)[1])
    assert _http(f["port"], "POST", "/notify/v3", *notify(good, 100, tx))[0] == 204
    assert _order(f["db"], good)[0] == "paid"
