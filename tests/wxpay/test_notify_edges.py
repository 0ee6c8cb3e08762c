"""V2 notifies at their edges: the size limit, fields the typed notify must keep,
and errors that name the field at fault.

Pure functions: unit tests, no I/O. Each case pins a survivor of the
mutation run (docs/MUTATION.md).
"""
from __future__ import annotations

import pytest

from wxpay.errors import MessageTooLargeError, ProtocolError, ReturnFailError
from wxpay.notify import MAX_NOTIFY_BYTES, decrypt_refund_notify, read_notify, verify_payment_notify
from wxpay.refund_crypto import decrypt_req_info, encrypt_req_info
from wxpay.signing import MD5
from wxpay.xmlcodec import build_xml

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
    assert "(WeChat: 签名失败)" in err.value.message
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
