"""V3 notifies: N1-N4 through NotifyReader, then one test per way a notify can be refused."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from wxpay.errors import DecryptError, IdentityMismatchError, MessageTooLargeError, ProtocolError, VerificationError, WxPayError
from wxpay.v3 import ApiV3Cipher, Validator, wechatpay_headers
from wxpay.v3.notify import NotifyReader, PaymentEvent, RefundEvent, notify_reply

from .vectors import APIV3_KEY, MCHID, NOW, PUB_KEY_ID, by_id, combined_verifier, load, wechat_key

NOTIFIES = by_id(load("response-verification.json")["notifies"])
AEAD = by_id(load("notify-aes-gcm.json")["vectors"])
UTC = timezone.utc

TRANSACTION = json.loads(AEAD["A1_transaction"]["plaintext"])
REFUND = json.loads(AEAD["A2_refund"]["plaintext"])


def reader(mchid: str = MCHID, **kw) -> NotifyReader:
    return NotifyReader(Validator(combined_verifier(), clock=lambda: NOW), ApiV3Cipher(APIV3_KEY), mchid, **kw)


def make_notify(event_type: str, resource: dict | bytes, *, original_type: str | None = None,
                key: str = APIV3_KEY, envelope: dict | None = None) -> tuple[dict, bytes]:
    """A notify signed and encrypted the way WeChat does it (WeChat's side, with the test keys)."""
    plain = resource if isinstance(resource, bytes) else json.dumps(resource, ensure_ascii=False).encode()
    kind = original_type or ("transaction" if event_type.startswith("TRANSACTION") else "refund")
    body_obj = {
        "id": "EV-TEST", "create_time": "2026-01-01T12:00:00+08:00", "resource_type": "encrypt-resource",
        "event_type": event_type, "summary": "test",
        "resource": ApiV3Cipher(key).encrypt_resource(plain, associated_data=kind, original_type=kind),
    }
    body_obj.update(envelope or {})
    body = json.dumps(body_obj, ensure_ascii=False).encode()
    return wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=NOW, nonce="N" * 32), body


def test_n1_payment_becomes_a_typed_event():
    v = NOTIFIES["N1_transaction_success"]
    event = reader().read(v["headers"], v["body"].encode())
    assert isinstance(event, PaymentEvent)
    assert (event.id, event.event_type, event.summary, event.serial) == (
        "EV-2026010112000000000000000001", "TRANSACTION.SUCCESS", "支付成功", PUB_KEY_ID)
    assert event.create_time == datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
    t = event.transaction
    assert (t.appid, t.mchid, t.out_trade_no, t.transaction_id) == (
        "wx0000000000test1", MCHID, "T20260101000003", "4200000000202601011234567890")
    assert (t.trade_state, t.trade_type, t.trade_state_desc, t.bank_type) == ("SUCCESS", "JSAPI", "支付成功", "OTHERS")
    assert (t.amount.total, t.amount.payer_total, t.amount.currency, t.amount.payer_currency) == (100, 100, "CNY", "CNY")
    assert t.openid == "oTEST0000000000000000000001"
    assert t.attach == "自定义数据 ✓"
    assert t.success_time == datetime(2026, 1, 1, 3, 59, 30, tzinfo=UTC) and t.success_time.tzinfo is UTC
    assert t.paid and t.promotions == ()
    assert t.raw == TRANSACTION


def test_n2_refund_becomes_a_typed_event():
    v = NOTIFIES["N2_refund_success"]
    event = reader().read(v["headers"], v["body"].encode())
    assert isinstance(event, RefundEvent)
    assert (event.event_type, event.summary) == ("REFUND.SUCCESS", "退款成功")
    r = event.refund
    assert (r.mchid, r.out_trade_no, r.transaction_id, r.out_refund_no, r.refund_id, r.refund_status) == (
        MCHID, "T20260101000003", "4200000000202601011234567890", "R20260101000001",
        "50000000000000000000000000001", "SUCCESS")
    assert (r.amount.total, r.amount.refund, r.amount.payer_total, r.amount.payer_refund) == (100, 40, 100, 40)
    assert r.success_time == datetime(2026, 1, 1, 4, 30, tzinfo=UTC)
    assert r.user_received_account == "支付用户零钱"


@pytest.mark.parametrize("vid", sorted(NOTIFIES))
def test_merchant_reply_per_vector(vid):
    v = NOTIFIES[vid]
    try:
        reader().read(v["headers"], v["body"].encode())
        status, _ = notify_reply(True)
    except WxPayError as exc:
        status, body = notify_reply(False, exc.code)
        assert json.loads(body) == {"code": "FAIL", "message": exc.code}
    assert ("2xx" if 200 <= status < 300 else "non-2xx") == v["merchant_reply"]


@pytest.mark.parametrize("vid, code", [("N3_signtest_probe", "signtest_probe"), ("N4_tampered_body", "bad_signature")])
def test_probes_and_tampering_are_refused_before_decryption(vid, code):
    v = NOTIFIES[vid]
    with pytest.raises(VerificationError) as exc:
        reader().read(v["headers"], v["body"].encode())
    assert exc.value.code == code


@pytest.mark.parametrize("status", ["ABNORMAL", "CLOSED"])
def test_other_refund_outcomes(status):
    resource = {k: v for k, v in REFUND.items() if k != "success_time"} | {"refund_status": status}
    event = reader().read(*make_notify(f"REFUND.{status}", resource))
    assert isinstance(event, RefundEvent) and event.refund.refund_status == status
    assert event.refund.success_time is None


def test_promotions_are_typed():
    resource = TRANSACTION | {"amount": {"total": 100, "payer_total": 90, "currency": "CNY"}, "promotion_detail": [
        {"coupon_id": "C1", "name": "ten off", "scope": "GLOBAL", "type": "CASH", "amount": 10,
         "stock_id": "S1", "wechatpay_contribute": 0, "merchant_contribute": 10, "other_contribute": 0, "currency": "CNY"}]}
    t = reader().read(*make_notify("TRANSACTION.SUCCESS", resource)).transaction
    assert t.amount.payer_total == 90
    assert [(p.coupon_id, p.amount, p.merchant_contribute, p.scope) for p in t.promotions] == [("C1", 10, 10, "GLOBAL")]


def _refused(headers, body, error=ProtocolError) -> str:
    with pytest.raises(error) as exc:
        reader().read(headers, body)
    return exc.value.code


def test_an_unknown_event_type_is_refused_with_its_code():
    assert _refused(*make_notify("MARKETING.COUPON.USED", TRANSACTION, original_type="coupon")) == "unknown_event_type"


def test_a_tampered_unknown_event_is_a_verification_error_first():
    headers, body = make_notify("MARKETING.COUPON.USED", TRANSACTION, original_type="coupon")
    assert _refused(headers, body + b" ", VerificationError) == "bad_signature"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1,2]", b'{"id":"a","id":"b"}', b'{"x":NaN}', b"\xff\xfe{}", b'"string"', b"[" * 60000],
    ids=["garbage", "array", "duplicate-key", "nan", "not-utf8", "string", "deep"],
)
def test_a_signed_envelope_that_is_not_a_json_object_is_malformed(body):
    headers = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=NOW, nonce="N" * 32)
    assert _refused(headers, body) == "malformed_json"


@pytest.mark.parametrize("name", ["id", "event_type", "create_time", "resource"])
def test_missing_envelope_fields(name):
    headers, body = make_notify("TRANSACTION.SUCCESS", TRANSACTION)
    obj = json.loads(body)
    del obj[name]
    body = json.dumps(obj).encode()
    headers = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=NOW, nonce="N" * 32)
    assert _refused(headers, body) == "missing_field"


def test_a_create_time_without_offset_is_a_bad_field():
    assert _refused(*make_notify("TRANSACTION.SUCCESS", TRANSACTION,
                                 envelope={"create_time": "2026-01-01T12:00:00"})) == "bad_field"


def test_plaintext_that_is_not_json_is_malformed():
    assert _refused(*make_notify("TRANSACTION.SUCCESS", b"{not json")) == "malformed_json"


@pytest.mark.parametrize("name", ["appid", "mchid", "out_trade_no", "transaction_id", "trade_state", "success_time", "amount"])
def test_each_required_transaction_field(name):
    resource = {k: v for k, v in TRANSACTION.items() if k != name}
    assert _refused(*make_notify("TRANSACTION.SUCCESS", resource)) == "missing_field"


@pytest.mark.parametrize("name", ["total", "payer_total", "currency"])
def test_each_required_amount_field(name):
    amount = {k: v for k, v in TRANSACTION["amount"].items() if k != name}
    assert _refused(*make_notify("TRANSACTION.SUCCESS", TRANSACTION | {"amount": amount})) == "missing_field"


@pytest.mark.parametrize("name", ["out_trade_no", "out_refund_no", "refund_id", "refund_status", "amount", "success_time", "mchid"])
def test_each_required_refund_field(name):
    resource = {k: v for k, v in REFUND.items() if k != name}
    assert _refused(*make_notify("REFUND.SUCCESS", resource)) == "missing_field"


@pytest.mark.parametrize(
    "change",
    [
        {"amount": {"total": "100", "payer_total": 100, "currency": "CNY"}},
        {"amount": {"total": 100.0, "payer_total": 100, "currency": "CNY"}},
        {"amount": {"total": True, "payer_total": 100, "currency": "CNY"}},
        {"amount": {"total": -1, "payer_total": 100, "currency": "CNY"}},
        {"amount": [100]},
        {"out_trade_no": 12345},
        {"payer": "oTEST"},
        {"success_time": "20260101115930"},
        {"promotion_detail": {"coupon_id": "C1"}},
        {"promotion_detail": [{"coupon_id": "C1", "amount": "10"}]},
    ],
    ids=["total-string", "total-float", "total-bool", "total-negative", "amount-list", "number-id",
         "payer-string", "v2-time", "promotions-object", "promotion-amount-string"],
)
def test_fields_of_the_wrong_type_are_bad_fields(change):
    assert _refused(*make_notify("TRANSACTION.SUCCESS", TRANSACTION | change)) == "bad_field"


@pytest.mark.parametrize(
    "event_type, resource, original_type",
    [
        ("TRANSACTION.SUCCESS", REFUND, "refund"),
        ("REFUND.SUCCESS", TRANSACTION, "transaction"),
        ("REFUND.CLOSED", REFUND, None),
        ("TRANSACTION.SUCCESS", TRANSACTION | {"trade_state": "CLOSED"}, None),
    ],
    ids=["refund-in-payment", "payment-in-refund", "status-disagrees", "unpaid-success"],
)
def test_an_event_that_contradicts_its_resource_is_refused(event_type, resource, original_type):
    assert _refused(*make_notify(event_type, resource, original_type=original_type)) == "event_mismatch"


def test_another_merchants_notify_is_an_identity_mismatch():
    with pytest.raises(IdentityMismatchError):
        reader().read(*make_notify("TRANSACTION.SUCCESS", TRANSACTION | {"mchid": "1900000999"}))
    with pytest.raises(IdentityMismatchError):
        reader(mchid="1900000999").read(*make_notify("REFUND.SUCCESS", REFUND))


def test_a_resource_under_another_apiv3_key_is_a_decrypt_error():
    other = "0123456789abcdef0123456789abcdef"
    with pytest.raises(DecryptError) as exc:
        reader().read(*make_notify("TRANSACTION.SUCCESS", TRANSACTION, key=other))
    assert exc.value.code == "undecryptable"


def test_an_oversized_body_is_refused_before_anything_else():
    headers, body = make_notify("TRANSACTION.SUCCESS", TRANSACTION)
    with pytest.raises(MessageTooLargeError):
        reader(max_bytes=len(body) - 1).read(headers, body)
    reader(max_bytes=len(body)).read(headers, body)


def test_notify_reply_shapes():
    assert notify_reply(True) == (204, b"")
    status, body = notify_reply(False, "签名错误")
    assert status == 500 and json.loads(body) == {"code": "FAIL", "message": "签名错误"}


@pytest.mark.parametrize("message", [None, ""])
def test_a_failure_reply_always_carries_a_message(message):
    """WeChat's failure reply requires a non-empty message: without one of ours, the word FAIL."""
    status, body = notify_reply(False, message)
    assert status == 500 and json.loads(body) == {"code": "FAIL", "message": "FAIL"}


def test_an_event_keeps_the_decrypted_resource_out_of_its_repr_and_its_equality():
    """The plaintext (the payer's openid, amounts) never reaches a log line through repr(event);
    and it is the bytes as sent, so two events that differ only in its spelling are the same event."""
    import dataclasses

    for event_type, resource in (("TRANSACTION.SUCCESS", TRANSACTION), ("REFUND.SUCCESS", REFUND)):
        headers, body = make_notify(event_type, resource)
        event = reader().read(headers, body)
        assert json.loads(event.plaintext) == resource
        assert "plaintext" not in repr(event) and repr(event.plaintext) not in repr(event)
        respelled = dataclasses.replace(event, plaintext=json.dumps(resource, indent=1).encode())
        assert respelled == event
