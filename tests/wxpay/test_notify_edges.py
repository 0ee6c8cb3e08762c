"""V2 notifies at their edges: the size limit, fields the typed notify must keep,
and errors that name the field at fault.

Pure functions: unit tests, no I/O. Each case pins a survivor of the
mutation run (docs/MUTATION.md).
"""
from __future__ import annotations

import pytest

from wxpay.errors import MessageTooLargeError, ProtocolError
from wxpay.notify import MAX_NOTIFY_BYTES, decrypt_refund_notify, read_notify
from wxpay.refund_crypto import encrypt_req_info
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
