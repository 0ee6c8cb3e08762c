"""Merchant webhooks: a real receiver on loopback that fails before it
succeeds, a restart in the middle of the backlog, failed deliveries the admin
resends, and the documented signature check (the README snippet itself).
The payment and refund events, and a cancel's, under both API versions (the
same events whatever WeChat said it in); the outbox mechanics once."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from service import webhook_signature
from service.webhook_signature import WebhookVerificationError, sign_webhook, verify_webhook
from store.open import INDEXES, open_store

from .browser import Browser, as_json
from .conftest import API_TOKEN, BOTH_VERSIONS, start_server
from .payments import Receiver, paid_checkout, refund, wait_for, wait_refund, webhook_overrides

README = Path(__file__).resolve().parents[2] / "README.md"


def assert_conforms(running, schema: str, instance) -> None:
    """``instance`` is what the OpenAPI document (/api/openapi.json) says ``schema`` is, date-times included."""
    import jsonschema_rs

    from handlers.openapi import build_document

    components = build_document(running.settings)["components"]
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": components}, validate_formats=True)
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(instance)]
    assert errors == [], errors


def api(base: str) -> Browser:
    b = Browser(base)
    b.token_headers = {"Authorization": f"Bearer {API_TOKEN}"}  # type: ignore[attr-defined]
    return b


async def outbox_states(running) -> list[str]:
    return [d["state"] for d in await running.services.store.find("outbox", {}, limit=0)]


@BOTH_VERSIONS
async def test_delivered_once_after_failures_signed_and_for_refunds_too(tmp_path, api_version):
    receiver = Receiver(fail_first=2)
    running = await start_server(tmp_path, **webhook_overrides(receiver, **{"wechat.api_version": api_version}))
    try:
        merchant = api(f"http://127.0.0.1:{running.port}")
        checkout = await paid_checkout(merchant, merchant.base, 900)

        async def delivered() -> bool:
            return receiver.successes() == {f"ev_{checkout['id'][3:]}_paid": 1}

        await wait_for(delivered)
        paid_id = f"ev_{checkout['id'][3:]}_paid"
        attempts = [s for s in receiver.seen if s["event_id"] == paid_id]
        assert [a["status"] for a in attempts] == [500, 500, 200] and all(a["verified"] for a in attempts)
        event = json.loads(attempts[-1]["body"])
        assert event["id"] == paid_id and event["type"] == "checkout.paid" == attempts[-1]["type"]
        assert event["data"]["id"] == checkout["id"] and event["data"]["status"] == "paid"
        assert event["data"]["amount_fen"] == 900 and "created_at" in event
        # Every attempt carried the same body (one event), signed afresh.
        assert len({a["body"] for a in attempts}) == 1

        await refund(merchant, checkout["id"], {"amount_fen": 400, "out_refund_no": "wh-r1"})
        await wait_refund(merchant, checkout["id"], "wh-r1", "succeeded")
        await refund(merchant, checkout["id"], {"amount_fen": 500, "out_refund_no": "wh-r2"})
        await wait_refund(merchant, checkout["id"], "wh-r2", "succeeded")

        async def three() -> bool:  # received, and recorded as delivered
            return len(receiver.successes()) == 3 and await outbox_states(running) == ["delivered"] * 3

        await wait_for(three)
        bodies = [json.loads(s["body"]) for s in receiver.seen if s["status"] == 200]
        assert [b["type"] for b in bodies] == ["checkout.paid", "checkout.partially_refunded", "checkout.refunded"]
        for body in bodies:  # the webhooks the OpenAPI document describes are the ones sent
            assert_conforms(running, "WebhookPayload", body)
        assert [b["data"]["refund"]["out_refund_no"] for b in bodies[1:]] == ["wh-r1", "wh-r2"]
        assert set(receiver.successes().values()) == {1}
        assert await outbox_states(running) == ["delivered"] * 3
        # Every marker was cleared once its events were written.
        assert await running.services.store.count("checkouts", {"outbox_due_at": {"$ne": None}}) == 0
        status = as_json(await merchant.get("/status.json", headers={"Authorization": "Basic YWRtaW46c2FuZGJveC1hZG1pbg=="}))
        assert status["webhooks"] == {"enabled": True, "pending": 0, "failed": 0, "oldest_pending_at": None,
                                      "attempts": {"delivered": 3, "will_retry": 2, "gave_up": 0}}  # the 2 refused
        assert status["refunds"]["by_state"]["succeeded"] == 2
    finally:
        await running.stop(grace=2)
        receiver.stop()


async def test_backlog_survives_a_restart_and_each_event_succeeds_once(tmp_path):
    receiver = Receiver()
    receiver.fail_all = True  # nothing succeeds while the first process runs, however slow the machine
    first = await start_server(tmp_path, **webhook_overrides(receiver, **{
        "webhooks.retry_base_s": 0.2, "webhooks.max_attempts": 15}))
    ids = []
    try:
        merchant = api(f"http://127.0.0.1:{first.port}")
        for amount in (101, 102, 103):
            checkout = await paid_checkout(merchant, merchant.base, amount)
            ids.append(f"ev_{checkout['id'][3:]}_paid")

        async def each_tried() -> bool:
            return {s["event_id"] for s in receiver.seen} == set(ids)

        await wait_for(each_tried)
    finally:
        await first.stop(grace=2)
    assert receiver.successes() == {}
    between = open_store(None, sqlite_path=tmp_path / "wxpay.sqlite3")
    await between.open(INDEXES)
    assert [d["state"] for d in await between.find("outbox", {}, limit=0)] == ["pending"] * 3
    await between.close()
    # The receiver recovers after one more failure; a new process on the same
    # SQLite file (and a fresh simulator) finishes the backlog.
    receiver.fail_first = len(receiver.seen) + 1
    receiver.fail_all = False
    second = await start_server(tmp_path, **webhook_overrides(receiver))
    try:

        async def all_delivered() -> bool:
            return sorted(receiver.successes()) == sorted(ids) and await outbox_states(second) == ["delivered"] * 3

        await wait_for(all_delivered, tries=1000)
        assert set(receiver.successes().values()) == {1}  # each event id exactly once as a success
        assert await outbox_states(second) == ["delivered"] * 3
        assert {s["event_id"] for s in receiver.seen} == set(ids)
    finally:
        await second.stop(grace=2)
        receiver.stop()


async def test_failed_deliveries_are_listed_and_can_be_resent(tmp_path):
    receiver = Receiver()
    receiver.fail_all = True
    running = await start_server(tmp_path, **webhook_overrides(receiver, **{"webhooks.max_attempts": 2}))
    try:
        merchant = api(f"http://127.0.0.1:{running.port}")
        checkout = await paid_checkout(merchant, merchant.base, 250)
        event_id = f"ev_{checkout['id'][3:]}_paid"

        async def failed() -> bool:
            return await outbox_states(running) == ["failed"]

        await wait_for(failed)
        listed = as_json(await merchant.get("/api/webhooks?state=failed", headers=merchant.token_headers))
        assert [e["id"] for e in listed["items"]] == [event_id]
        assert_conforms(running, "WebhookEventList", listed)
        item = listed["items"][0]
        assert item["attempts"] == 2 and item["last_error"] == "HTTP 500" and len(item["history"]) == 2
        assert listed["backlog"]["failed"] == 1
        r = await merchant.get("/api/webhooks?state=nonsense", headers=merchant.token_headers)
        assert r.code == 400
        r = await merchant.post("/api/webhooks/ev_nope/resend", headers=merchant.token_headers)
        assert r.code == 404
        r = await merchant.get("/api/webhooks")
        assert r.code == 401

        receiver.fail_all = False
        r = await merchant.post(f"/api/webhooks/{event_id}/resend", headers=merchant.token_headers)
        assert r.code == 200 and as_json(r)["state"] == "pending"

        async def delivered() -> bool:
            return receiver.successes() == {event_id: 1} and await outbox_states(running) == ["delivered"]

        await wait_for(delivered)
        assert await outbox_states(running) == ["delivered"]
        assert as_json(await merchant.get("/api/webhooks?state=failed", headers=merchant.token_headers))["items"] == []
    finally:
        await running.stop(grace=2)
        receiver.stop()


@BOTH_VERSIONS
async def test_a_cancelled_checkout_sends_closed(tmp_path, api_version):
    receiver = Receiver()
    running = await start_server(tmp_path, **webhook_overrides(receiver, **{"wechat.api_version": api_version}))
    try:
        merchant = api(f"http://127.0.0.1:{running.port}")
        r = await merchant.post("/api/checkouts", json_body={"amount_fen": 10, "description": "x"}, headers=merchant.token_headers)
        cid = as_json(r)["id"]
        r = await merchant.post(f"/api/checkouts/{cid}/cancel", headers=merchant.token_headers)
        assert r.code == 200 and as_json(r)["status"] == "closed"

        async def closed() -> bool:
            return receiver.successes() == {f"ev_{cid[3:]}_closed": 1}

        await wait_for(closed)
        assert json.loads(receiver.seen[-1]["body"])["type"] == "checkout.closed"
    finally:
        await running.stop(grace=2)
        receiver.stop()


async def test_a_marker_left_by_a_crash_is_swept_into_the_outbox(tmp_path):
    """A process died after the status move (marker set) but before writing the event:
    the move alone, as the lifecycle writes it, and nothing after it."""
    receiver = Receiver()
    running = await start_server(tmp_path, **webhook_overrides(receiver))
    try:
        services = running.services
        checkout, _ = await services.checkouts.create({"amount_fen": 77, "description": "tea"})
        await services.lifecycle.move_checkout(checkout.id, "closed", closed_at=services.now())
        doc = await services.store.get("checkouts", checkout.id)
        assert doc["outbox_due_at"] is not None and await outbox_states(running) == []
        assert await services.webhooks.sweep() == 1
        assert await services.webhooks.sweep() == 0  # idempotent: derived ids, marker cleared

        async def delivered() -> bool:
            return receiver.successes() == {f"ev_{checkout.id[3:]}_closed": 1}

        await wait_for(delivered)
    finally:
        await running.stop(grace=2)
        receiver.stop()


async def test_a_payment_is_announced_at_once_not_left_to_the_sweep(tmp_path):
    """Settling a payment writes its event and wakes the sender: the merchant hears within the
    test's bounded wait although the next poll (and so the next sweep) is an hour away."""
    receiver = Receiver()
    running = await start_server(tmp_path, **webhook_overrides(receiver, **{"webhooks.poll_interval_s": 3600}))
    try:
        merchant = api(f"http://127.0.0.1:{running.port}")
        checkout = await paid_checkout(merchant, merchant.base, 300)

        async def delivered() -> bool:
            return receiver.successes() == {f"ev_{checkout['id'][3:]}_paid": 1}

        await wait_for(delivered)
        assert await running.services.store.count("checkouts", {"outbox_due_at": {"$ne": None}}) == 0
    finally:
        await running.stop(grace=2)
        receiver.stop()


# --- the signature ------------------------------------------------------------------------


def readme_snippet() -> dict:
    """Execute the verification code block of the README's Webhooks section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


SECRET = "whsec-test-0123456789"
BODY = b'{"id":"ev_1","type":"checkout.paid","data":{"amount_fen":100}}'
NOW = 1_800_000_000


@pytest.fixture(params=["module", "readme"])
def verify(request):
    if request.param == "module":
        return verify_webhook, WebhookVerificationError
    ns = readme_snippet()
    return ns["verify_webhook"], ns["WebhookVerificationError"]


def test_the_documented_snippet_is_the_module_code():
    source = Path(webhook_signature.__file__).read_text(encoding="utf-8")
    module_part = source.split("# --- the documented snippet", 1)[1].split("\n", 1)[1].split("# --- end", 1)[0]
    text = README.read_text(encoding="utf-8")
    section = text.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    readme_code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    assert module_part.strip() in readme_code


def test_a_genuine_signature_verifies(verify):
    check, _ = verify
    header = sign_webhook(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert check(SECRET, header, BODY, now=NOW + 299) == NOW


@pytest.mark.parametrize(
    "case",
    ["tampered_body", "tampered_signature", "other_secret", "old_timestamp", "future_timestamp",
     "timestamp_swapped", "malformed", "empty", "non_ascii", "timestamp_unicode_digits", "timestamp_with_space"],
)
def test_the_documented_snippet_rejects(verify, case):
    check, error = verify
    header = sign_webhook(SECRET, BODY, NOW)
    body, secret, now = BODY, SECRET, NOW
    if case == "tampered_body":
        body = BODY.replace(b"100", b"999")
    elif case == "tampered_signature":
        last = header[-1]
        header = header[:-1] + ("0" if last != "0" else "1")
    elif case == "other_secret":
        secret = "another-secret"
    elif case == "old_timestamp":
        now = NOW + 301  # a replay after the tolerance window
    elif case == "future_timestamp":
        now = NOW - 301
    elif case == "timestamp_swapped":
        header = header.replace(f"t={NOW}", f"t={NOW + 10}")  # fresh-looking, but not what was signed
        now = NOW + 10
    elif case == "malformed":
        header = "v1=abc"
    elif case == "empty":
        header = ""
    elif case == "non_ascii":
        header = f"t={NOW},v1=é"
    elif case == "timestamp_unicode_digits":  # the same number in Arabic-Indic digits: int() takes it
        header = header.replace(f"t={NOW}", "t=" + str(NOW).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    elif case == "timestamp_with_space":
        header = header.replace(f"t={NOW}", f"t= {NOW}")
    with pytest.raises(error):
        check(secret, header, body, now=now)
