"""Payment and refund notifies: a realistic body end to end, and one test per rejection."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from Crypto.Cipher import AES

from wxpay.errors import (
    BusinessError,
    DecryptError,
    IdentityMismatchError,
    MessageTooLargeError,
    ProtocolError,
    ReturnFailError,
    SignatureError,
    UnsafeXMLError,
)
from wxpay.notify import (
    Coupon,
    PaymentNotify,
    RefundNotify,
    decrypt_refund_notify,
    notify_reply,
    read_notify,
    verify_payment_notify,
)
from wxpay.refund_crypto import decrypt_req_info, encrypt_req_info
from wxpay.signing import HMAC_SHA256, MD5, sign
from wxpay.xmlcodec import build_xml, parse_xml

KEY = "DemoApiKeyForSandbox000000000001"
APPID = "wx5a1d000000000001"
MCH_ID = "1900000109"

T5 = json.loads(
    (Path(__file__).resolve().parent / "vectors" / "refund-notify-T5.json").read_text()
)

# Values as WeChat sends them; the body below writes strings in CDATA and
# numbers bare, with the two coupons' elements in scrambled order.
FIELDS = {
    "appid": APPID,
    "attach": "order note",
    "bank_type": "CMC",
    "cash_fee": "90",
    "coupon_count": "2",
    "coupon_fee": "10",
    "coupon_fee_0": "6",
    "coupon_fee_1": "4",
    "coupon_id_0": "10000",
    "coupon_id_1": "10001",
    "coupon_type_0": "CASH",
    "coupon_type_1": "NO_CASH",
    "fee_type": "CNY",
    "is_subscribe": "Y",
    "mch_id": MCH_ID,
    "nonce_str": "5d2b6c2a8db53831f7eda20af46e531c",
    "openid": "oUpF8uMEb4qRXf22hE3X68TekukE",
    "out_trade_no": "1409811653",
    "result_code": "SUCCESS",
    "return_code": "SUCCESS",
    "settlement_total_fee": "96",
    "time_end": "20140903131540",
    "total_fee": "100",
    "trade_type": "JSAPI",
    "transaction_id": "1004400740201409030005092168",
}
BARE = {"cash_fee", "coupon_count", "coupon_fee", "coupon_fee_0", "coupon_fee_1",
        "coupon_id_0", "coupon_id_1", "settlement_total_fee", "total_fee"}
ORDER = ["return_code", "appid", "coupon_fee_1", "mch_id", "coupon_id_1", "nonce_str", "openid",
         "coupon_type_0", "result_code", "coupon_count", "coupon_type_1", "bank_type",
         "coupon_fee_0", "total_fee", "settlement_total_fee", "coupon_id_0", "coupon_fee",
         "fee_type", "cash_fee", "transaction_id", "out_trade_no", "attach", "time_end",
         "trade_type", "is_subscribe"]


def notify_body(fields: dict[str, str], key: str = KEY, sign_type: str = MD5, *, sign_value: str | None = None) -> bytes:
    """Render a notify the way WeChat does (pretty-printed, CDATA strings, bare ints)."""
    sig = sign(fields, key, sign_type) if sign_value is None else sign_value
    names = [n for n in ORDER if n in fields] + [n for n in fields if n not in ORDER]
    lines = ["<xml>"]
    for name in names:
        value = fields[name]
        lines.append(f"  <{name}>{value}</{name}>" if name in BARE else f"  <{name}><![CDATA[{value}]]></{name}>")
    if sig:
        lines.append(f"  <sign><![CDATA[{sig}]]></sign>")
    lines.append("</xml>")
    return "\n".join(lines).encode()


def check(body: bytes, sign_type: str = MD5, *, appid: str = APPID, mch_id: str = MCH_ID) -> PaymentNotify:
    return verify_payment_notify(read_notify(body), key=KEY, sign_type=sign_type, appid=appid, mch_id=mch_id)


@pytest.mark.parametrize("sign_type", [MD5, HMAC_SHA256])
def test_realistic_notify_verifies_and_is_typed(sign_type):
    body = notify_body(FIELDS, sign_type=sign_type)
    assert b"<total_fee>100</total_fee>" in body and b"<![CDATA[CASH]]>" in body
    n = check(body, sign_type)
    assert n.sign_type == sign_type
    assert (n.appid, n.mch_id, n.out_trade_no, n.transaction_id) == (
        APPID, MCH_ID, "1409811653", "1004400740201409030005092168")
    assert (n.total_fee, n.cash_fee, n.settlement_total_fee, n.coupon_fee, n.coupon_count) == (100, 90, 96, 10, 2)
    assert all(isinstance(x, int) for x in (n.total_fee, n.cash_fee, n.coupon_fee))
    assert n.coupons == [Coupon("CASH", "10000", 6), Coupon("NO_CASH", "10001", 4)]
    assert n.time_end == datetime(2014, 9, 3, 5, 15, 40, tzinfo=timezone.utc)
    assert n.time_end.utcoffset().total_seconds() == 0
    assert (n.openid, n.trade_type, n.bank_type, n.fee_type, n.is_subscribe, n.attach) == (
        "oUpF8uMEb4qRXf22hE3X68TekukE", "JSAPI", "CMC", "CNY", "Y", "order note")
    assert n.raw["sign"] and n.raw["coupon_id_1"] == "10001"


def test_minimal_notify_without_coupons():
    fields = {k: v for k, v in FIELDS.items() if not k.startswith("coupon") and k not in ("settlement_total_fee", "attach")}
    n = check(notify_body(fields))
    assert n.coupons == [] and n.coupon_fee is None and n.settlement_total_fee is None and n.attach is None


def test_hmac_order_notify_without_sign_type_verifies_with_orders_type():
    body = notify_body(FIELDS, sign_type=HMAC_SHA256)
    assert b"sign_type" not in body
    assert check(body, HMAC_SHA256).sign_type == HMAC_SHA256


def test_notify_declaring_its_sign_type_verifies():
    body = notify_body({**FIELDS, "sign_type": HMAC_SHA256}, sign_type=HMAC_SHA256)
    assert check(body, HMAC_SHA256).sign_type == HMAC_SHA256


def test_read_notify_trusts_nothing_but_finds_the_order():
    body = notify_body(FIELDS, sign_value="0" * 32)
    assert read_notify(body)["out_trade_no"] == "1409811653"


# --- rejections ------------------------------------------------------------------


def test_reject_missing_sign():
    with pytest.raises(SignatureError, match="no signature"):
        check(notify_body(FIELDS, sign_value=""))


def test_reject_wrong_sign():
    with pytest.raises(SignatureError, match="does not verify"):
        check(notify_body(FIELDS, key="AnotherKey0000000000000000000000"))


def test_reject_md5_notify_for_hmac_order():
    with pytest.raises(SignatureError):
        check(notify_body(FIELDS, sign_type=MD5), HMAC_SHA256)


def test_reject_hmac_notify_for_md5_order():
    with pytest.raises(SignatureError):
        check(notify_body(FIELDS, sign_type=HMAC_SHA256), MD5)


def test_reject_declared_md5_for_hmac_order():
    body = notify_body({**FIELDS, "sign_type": MD5}, sign_type=MD5)
    with pytest.raises(SignatureError, match="order uses HMAC-SHA256"):
        check(body, HMAC_SHA256)


def test_reject_tampered_total_fee():
    body = notify_body(FIELDS).replace(b"<total_fee>100</total_fee>", b"<total_fee>1</total_fee>")
    with pytest.raises(SignatureError, match="does not verify"):
        check(body)


def test_reject_other_appid():
    body = notify_body({**FIELDS, "appid": "wx5a1d000000000999"})
    with pytest.raises(IdentityMismatchError, match="appid"):
        check(body)


def test_reject_other_mch_id():
    body = notify_body({**FIELDS, "mch_id": "1900000999"})
    with pytest.raises(IdentityMismatchError, match="mch_id"):
        check(body)


def test_reject_doctype():
    body = b'<?xml version="1.0"?>\n<!DOCTYPE xml>' + notify_body(FIELDS)
    with pytest.raises(UnsafeXMLError):
        read_notify(body)


def test_reject_entity_xxe():
    body = notify_body(FIELDS).replace(
        b"<xml>", b'<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<xml><leak>&xxe;</leak>', 1
    )
    with pytest.raises(UnsafeXMLError):
        read_notify(body)


def test_reject_oversize():
    body = notify_body({**FIELDS, "attach": "x" * 40_000})
    with pytest.raises(MessageTooLargeError):
        read_notify(body)
    with pytest.raises(MessageTooLargeError):
        read_notify(notify_body(FIELDS), max_bytes=100)


def test_reject_wrong_root():
    body = notify_body(FIELDS).replace(b"<xml>", b"<root>").replace(b"</xml>", b"</root>")
    with pytest.raises(ProtocolError, match="root"):
        read_notify(body)


def test_reject_invalid_utf8():
    body = notify_body(FIELDS).replace(b"order note", b"order \xff note")
    with pytest.raises(ProtocolError, match="UTF-8"):
        read_notify(body)


def test_reject_return_code_fail():
    fields = {"return_code": "FAIL", "return_msg": "SYSTEMERROR", "appid": APPID, "mch_id": MCH_ID, "nonce_str": "n"}
    with pytest.raises(ReturnFailError, match="return_code=FAIL"):
        check(notify_body(fields))


def test_reject_unsigned_return_code_fail_as_signature_error():
    with pytest.raises(SignatureError):
        check(b"<xml><return_code><![CDATA[FAIL]]></return_code></xml>")


def test_reject_result_code_fail():
    fields = {**FIELDS, "result_code": "FAIL", "err_code": "SYSTEMERROR", "err_code_des": "busy"}
    with pytest.raises(BusinessError) as info:
        check(notify_body(fields))
    assert info.value.result_code == "FAIL" and info.value.err_code == "SYSTEMERROR"


@pytest.mark.parametrize("field,value", [("total_fee", "1.00"), ("total_fee", "-1"), ("cash_fee", "ninety"),
                                          ("coupon_fee_1", "4 "), ("coupon_count", "٢")])
def test_reject_bad_integers(field, value):
    with pytest.raises(ProtocolError, match=field):
        check(notify_body({**FIELDS, field: value}))


def test_reject_bad_time_end():
    with pytest.raises(ProtocolError, match="yyyyMMddHHmmss"):
        check(notify_body({**FIELDS, "time_end": "2014-09-03 13:15:40"}))


def test_reject_missing_out_trade_no():
    fields = {k: v for k, v in FIELDS.items() if k != "out_trade_no"}
    with pytest.raises(ProtocolError, match="out_trade_no"):
        check(notify_body(fields))


def test_reject_coupon_without_id():
    fields = {k: v for k, v in FIELDS.items() if k != "coupon_id_1"}
    with pytest.raises(ProtocolError, match="coupon_id_1"):
        check(notify_body(fields))



def test_typed_notify_equals_one_built_by_its_constructor():
    """The notify and its coupons are filled without the dataclass __init__; nothing may differ."""
    from dataclasses import fields as dataclass_fields

    n = check(notify_body(FIELDS))
    assert set(vars(n)) == {f.name for f in dataclass_fields(PaymentNotify)}
    assert PaymentNotify(**vars(n)) == n and repr(PaymentNotify(**vars(n))) == repr(n)
    assert [Coupon(**vars(c)) for c in n.coupons] == n.coupons
    with pytest.raises(AttributeError):
        n.total_fee = 1  # type: ignore[misc]


def test_coupons_in_scrambled_order_and_with_gaps_sort_by_index():
    fields = {k: v for k, v in FIELDS.items() if not k.startswith("coupon_")}
    fields.update({"coupon_fee_7": "1", "coupon_id_2": "b", "coupon_id_7": "a", "coupon_fee_2": "3"})
    assert check(notify_body(fields)).coupons == [Coupon(None, "b", 3), Coupon(None, "a", 1)]


def test_one_coupon_part_written_two_ways_keeps_the_later():
    body = notify_body({**FIELDS, "coupon_fee_1": "1", "coupon_fee_01": "2"})
    assert body.index(b"coupon_fee_1>") < body.index(b"coupon_fee_01>")
    assert check(body).coupons[1] == Coupon("NO_CASH", "10001", 2)


def test_names_that_only_look_like_coupons_are_plain_fields():
    n = check(notify_body({**FIELDS, "coupon_fee_1000": "5", "coupon_idx_0": "y"}))
    assert len(n.coupons) == 2 and n.raw["coupon_fee_1000"] == "5"


# --- reply -----------------------------------------------------------------------


def test_reply_success_is_strict_xml():
    assert notify_reply(True) == (
        b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    )


def test_reply_fail_carries_reason():
    assert parse_xml(notify_reply(False, "order locked, retry")) == {
        "return_code": "FAIL", "return_msg": "order locked, retry"}
    assert parse_xml(notify_reply(False))["return_code"] == "FAIL"


# --- refund notify ---------------------------------------------------------------


def refund_body(*, appid: str = T5["appid"], mch_id: str = T5["mch_id"], req_info: str = T5["req_info"],
                return_code: str = "SUCCESS") -> bytes:
    return build_xml({"return_code": return_code, "appid": appid, "mch_id": mch_id,
                      "nonce_str": T5["nonce_str"], "req_info": req_info})


def refund(body: bytes, key: str = T5["api_key"]) -> RefundNotify:
    return decrypt_refund_notify(body, key=key, appid=T5["appid"], mch_id=T5["mch_id"])


def test_t5_refund_notify_decrypts_exactly():
    n = refund(refund_body())
    e = T5["expected"]
    assert n.raw == e
    assert (n.out_refund_no, n.out_trade_no, n.transaction_id, n.refund_id) == (
        e["out_refund_no"], e["out_trade_no"], e["transaction_id"], e["refund_id"])
    assert (n.total_fee, n.refund_fee, n.settlement_total_fee, n.settlement_refund_fee) == (1, 1, 1, 1)
    assert n.refund_status == "SUCCESS"
    assert n.refund_recv_account == "招商银行信用卡8915"
    assert (n.refund_account, n.refund_request_source) == ("REFUND_SOURCE_RECHARGE_FUNDS", "API")
    assert n.success_time == datetime(2020, 1, 4, 10, 34, 24, tzinfo=timezone.utc)
    assert (n.appid, n.mch_id) == (T5["appid"], T5["mch_id"])


def test_t5_reencrypts_byte_for_byte():
    plain = decrypt_req_info(T5["req_info"], T5["api_key"])
    assert len(plain) == 795
    assert encrypt_req_info(plain, T5["api_key"]) == T5["req_info"]


def test_refund_round_trip_with_our_key():
    inner = build_xml({"transaction_id": "4200", "out_trade_no": "o1", "refund_id": "r1", "out_refund_no": "R1",
                       "total_fee": 100, "refund_fee": 100, "refund_status": "REFUNDCLOSE"}, root="root")
    body = build_xml({"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID,
                      "req_info": encrypt_req_info(inner, KEY)})
    n = decrypt_refund_notify(body, key=KEY, appid=APPID, mch_id=MCH_ID)
    assert (n.refund_status, n.refund_fee, n.success_time) == ("REFUNDCLOSE", 100, None)


def test_refund_reject_bad_base64():
    with pytest.raises(DecryptError, match="base64"):
        refund(refund_body(req_info="not base64 at all!"))


def test_refund_reject_truncated_ciphertext():
    with pytest.raises(DecryptError, match="AES blocks"):
        refund(refund_body(req_info=T5["req_info"][:-8] + "AAAA"))


def test_refund_reject_missing_req_info():
    body = build_xml({"return_code": "SUCCESS", "appid": T5["appid"], "mch_id": T5["mch_id"]})
    with pytest.raises(DecryptError, match="no req_info"):
        refund(body)


def test_refund_reject_wrong_key():
    with pytest.raises(DecryptError, match="API key"):
        refund(refund_body(), key="AnotherKey0000000000000000000000")


def _raw_encrypt(block: bytes, api_key: str) -> str:
    """ECB-encrypt exactly ``block`` (no padding added), to forge bad padding."""
    key = hashlib.md5(api_key.encode()).hexdigest().encode()
    return base64.b64encode(AES.new(key, AES.MODE_ECB).encrypt(block)).decode()


@pytest.mark.parametrize("tail", [b"\x00", b"\x11", b"\xff"])
def test_refund_reject_bad_padding_byte(tail):
    req = _raw_encrypt(b"<root></root>\x00\x00" + tail, T5["api_key"])
    with pytest.raises(DecryptError, match="padding"):
        refund(refund_body(req_info=req))


def test_refund_reject_padding_inconsistent_bytes():
    # A last byte of 0x03 preceded by other bytes is not PKCS7.
    req = _raw_encrypt(b"<root></root>\x01\x02\x03", T5["api_key"])
    with pytest.raises(DecryptError, match="padding"):
        refund(refund_body(req_info=req))


def test_refund_reject_wrong_inner_root():
    req = encrypt_req_info(b"<xml><out_refund_no>1</out_refund_no></xml>", T5["api_key"])
    with pytest.raises(DecryptError, match="<root>"):
        refund(refund_body(req_info=req))


def test_refund_reject_inner_not_xml():
    req = encrypt_req_info(b"\x00\x01 not xml", T5["api_key"])
    with pytest.raises(DecryptError):
        refund(refund_body(req_info=req))


def test_refund_reject_other_appid():
    with pytest.raises(IdentityMismatchError, match="appid"):
        refund(refund_body(appid="wx0000000000000000"))


def test_refund_reject_other_mch_id():
    with pytest.raises(IdentityMismatchError, match="mch_id"):
        refund(refund_body(mch_id="99999999"))


def test_refund_reject_return_code_fail():
    with pytest.raises(ReturnFailError):
        refund(refund_body(return_code="FAIL"))


def test_refund_reject_unsafe_outer_xml():
    body = b'<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + refund_body()
    with pytest.raises(UnsafeXMLError):
        refund(body)
