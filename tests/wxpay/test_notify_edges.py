"""V2 notifies at their edges: the size limit, fields the typed notify must keep,
and errors that name the field at fault.

Pure functions: unit tests, no I/O. Each case pins a survivor of the
mutation run (docs/MUTATION.md).
"""
from __future__ import annotations

import pytest

from wxpay.errors import (
    DecryptError, IdentityMismatchError, MessageTooLargeError, ProtocolError, ReturnFailError, SignatureError,
)
from wxpay.notify import MAX_NOTIFY_BYTES, decrypt_refund_notify, read_notify, verify_payment_notify
from wxpay.refund_crypto import decrypt_req_info, encrypt_req_info
from wxpay.signing import MD5, resolve_sign_type, sign
from wxpay.xmlcodec import build_xml

from tests.simulator.pay_server import KEY as SIM_KEY, MCH as SIM_MCH, OA as SIM_APPID, cert_pair, simsrv  # noqa: F401
from .gateway_sim import v2_gateway_for
from .test_notify import APPID, FIELDS, KEY, MCH_ID, check, notify_body


def test_the_default_limit_is_32_kib_exactly():
    assert MAX_NOTIFY_BYTES == 32 * 1024
    padding = b"<xml><a>" + b"x" * (MAX_NOTIFY_BYTES - len(b"<xml><a></a></xml>")) + b"</a></xml>"
    assert len(padding) == MAX_NOTIFY_BYTES and read_notify(padding) == {"a": "x" * (len(padding) - 18)}
    with pytest.raises(MessageTooLargeError):
        read_notify(padding + b" ")


def test_every_optional_field_of_a_payment_notify_is_kept():
    notify = check(notify_body({**FIELDS, "device_info": "WEB", "cash_fee_type": "CNY"}))
    assert (notify.device_info, notify.cash_fee_type, notify.attach, notify.fee_type) == ("WEB", "CNY", "order note",
                                                                                          "CNY")
    assert (notify.openid, notify.trade_type, notify.bank_type, notify.is_subscribe) == (
        FIELDS["openid"], "JSAPI", "CMC", "Y")


@pytest.mark.parametrize("name", ["total_fee", "refund_fee", "settlement_total_fee", "settlement_refund_fee"])
def test_a_refund_notify_s_bad_amount_is_named(name):
    inner = {"transaction_id": "4200", "out_trade_no": "o1", "refund_id": "r1", "out_refund_no": "R1",
             "total_fee": "100", "refund_fee": "100", "refund_status": "SUCCESS", name: "12a"}
    body = build_xml({"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID,
                      "req_info": encrypt_req_info(build_xml(inner, root="root"), KEY)})
    with pytest.raises(ProtocolError, match=f"Field {name} must be"):
        decrypt_refund_notify(body, key=KEY, appid=APPID, mch_id=MCH_ID)


def test_a_notify_reporting_failure_carries_wechat_s_own_words():
    fields = {"return_code": "FAIL", "return_msg": "签名失败"}
    body = notify_body(fields)
    with pytest.raises(ReturnFailError) as err:
        verify_payment_notify(read_notify(body), key=KEY, sign_type=MD5, appid=APPID, mch_id=MCH_ID)
    assert (err.value.return_code, err.value.return_msg) == ("FAIL", "签名失败")
    assert err.value.message == "Payment notify reports return_code=FAIL; nothing to record (WeChat: 签名失败)"
    with pytest.raises(ReturnFailError) as err:
        verify_payment_notify(read_notify(notify_body({"return_code": "FAIL"})), key=KEY, sign_type=MD5,
                              appid=APPID, mch_id=MCH_ID)
    assert err.value.return_msg is None and "WeChat:" not in err.value.message


def test_a_refund_notify_s_missing_field_is_named_as_the_refund_notify_s():
    inner = {"transaction_id": "4200", "out_trade_no": "o1", "out_refund_no": "R1",
             "total_fee": "100", "refund_fee": "100", "refund_status": "SUCCESS"}
    body = build_xml({"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID,
                      "req_info": encrypt_req_info(build_xml(inner, root="root"), KEY)})
    with pytest.raises(ProtocolError, match="^Refund notify lacks the required field refund_id"):
        decrypt_refund_notify(body, key=KEY, appid=APPID, mch_id=MCH_ID)


def test_req_info_may_be_given_as_bytes():
    plain = b"<root><a>1</a></root>"
    encrypted = encrypt_req_info(plain, KEY)
    assert decrypt_req_info(encrypted.encode("ascii"), KEY) == decrypt_req_info(encrypted, KEY) == plain


@pytest.mark.parametrize("spoil", [lambda t: t[:10] + "*" + t[10:], lambda t: t[:10] + "é" + t[10:]])
def test_req_info_outside_the_base64_alphabet_is_refused_as_such(spoil):
    encrypted = encrypt_req_info(b"<root><a>1</a></root>", KEY)
    with pytest.raises(DecryptError, match="not valid base64"):
        decrypt_req_info(spoil(encrypted), KEY)


def test_a_typed_notify_s_repr_leaves_out_the_raw_fields():
    notify = check(notify_body(FIELDS))
    assert "raw=" not in repr(notify) and "nonce_str" not in repr(notify)
    assert notify.raw["nonce_str"] == FIELDS["nonce_str"]


def test_amounts_of_up_to_18_digits_are_read_and_19_are_refused():
    big = "9" * 18
    assert check(notify_body({**FIELDS, "total_fee": big, "cash_fee": big})).total_fee == int(big)
    with pytest.raises(ProtocolError, match="Field total_fee must be"):
        check(notify_body({**FIELDS, "total_fee": "1" + big}))


def test_a_payment_notify_s_missing_field_is_named_as_the_payment_notify_s():
    fields = {k: v for k, v in FIELDS.items() if k != "transaction_id"}
    with pytest.raises(ProtocolError, match="^Payment notify lacks the required field transaction_id"):
        check(notify_body(fields))


def test_an_unknown_expected_sign_type_is_refused():
    with pytest.raises(SignatureError, match="Unknown expected sign_type"):
        resolve_sign_type({}, "SHA1")


async def test_an_out_trade_no_longer_than_wechat_allows_is_refused_before_its_signature(simsrv, cert_pair):  # noqa: F811
    gateway = v2_gateway_for(simsrv, cert_pair)
    fields = {**FIELDS, "out_trade_no": "W" * 33, "appid": SIM_APPID, "mch_id": SIM_MCH}
    got = await gateway.read_payment_notify({}, notify_body(fields, key=SIM_KEY))
    assert (got.verdict.code, got.proven) == ("missing_out_trade_no", False)
    fields["out_trade_no"] = "W" * 32
    proven = await gateway.read_payment_notify({}, notify_body(fields, key=SIM_KEY))
    assert proven.out_trade_no == "W" * 32


@pytest.mark.parametrize("field, other", [("appid", "wx5a1d000000000999"), ("mch_id", "1900000999")])
def test_a_payment_notify_for_another_merchant_says_which_notify_and_which_field(field, other):
    with pytest.raises(IdentityMismatchError,
                       match=f"^Payment notify names another {field} than ours; it is not for this merchant$"):
        check(notify_body({**FIELDS, field: other}))


def test_a_refund_notify_s_repr_does_not_repeat_its_raw_fields():
    """Each field once in a log line of the notify: the raw mapping, a copy of them all, is left out."""
    inner = {"transaction_id": "4200777", "out_trade_no": "o1", "refund_id": "r1", "out_refund_no": "R1",
             "total_fee": "100", "refund_fee": "100", "refund_status": "SUCCESS"}
    body = build_xml({"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID,
                      "req_info": encrypt_req_info(build_xml(inner, root="root"), KEY)})
    notify = decrypt_refund_notify(body, key=KEY, appid=APPID, mch_id=MCH_ID)
    assert notify.raw["transaction_id"] == "4200777"
    assert "raw=" not in repr(notify) and repr(notify).count("4200777") == 1


def test_req_info_without_an_api_key_is_refused_as_such():
    req_info = encrypt_req_info(b"<root><a>1</a></root>", KEY)
    with pytest.raises(DecryptError, match="^No API key configured: cannot decrypt the refund notify$"):
        decrypt_req_info(req_info, "")


def test_a_field_without_a_value_is_left_out_of_the_signature_and_the_fields_after_it_are_not():
    fields = {"appid": APPID, "attach": None, "body": "cup", "mch_id": MCH_ID}
    assert sign(fields, KEY) == sign({"appid": APPID, "body": "cup", "mch_id": MCH_ID}, KEY)
    assert sign(fields, KEY) != sign({"appid": APPID}, KEY)
