"""The API key and every string-to-sign stay out of logs and error messages.

Everything is driven through the real code paths (signing, payloads,
notifies, and the client over an injected transport) with the root logger
at DEBUG; every formatted record and every raised error is then searched.
"""
from __future__ import annotations

import logging
from datetime import date

import pytest

from wxpay import signing
from wxpay.client import WxPayClient
from wxpay.errors import WxPayError
from wxpay.merchant import Merchant
from wxpay.notify import decrypt_refund_notify, read_notify, verify_payment_notify
from wxpay.payloads import app_payload, jsapi_payloads, mini_program_payload, wx_config
from wxpay.refund_crypto import encrypt_req_info
from wxpay.signing import HMAC_SHA256, MD5, sign, verify
from wxpay.transport import HttpRequest, HttpResponse
from wxpay.xmlcodec import build_xml, parse_xml

KEY = "SecretKeyNeverLogged0123456789ab"
APPID = "wx5a1d000000000001"
MCH_ID = "1900000109"
TICKET = "jsapiTicketNeverLoggedEither0000"


class Secrets:
    """Collects every string-to-sign the test produces, to search for later."""

    def __init__(self) -> None:
        self.values: set[str] = {KEY, TICKET}

    def add_signed(self, params: dict, key: str = KEY) -> None:
        string_a = signing._canonical(params)
        self.values.add(f"{string_a}&key={key}")
        if "&" in string_a:  # a single pair like "a=1" is just a field, not a signing string
            self.values.add(string_a)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))  # includes exc_info / stack text
        self.names.append(record.name)


@pytest.fixture
def capture():
    root = logging.getLogger()
    handler = Capture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # Make sure no wxpay logger was muted by another test or module.
    for name in ("wxpay", "wxpay.notify", "wxpay.client", "wxpay.transport"):
        logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger(name).disabled = False
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _notify_fields(**over: str) -> dict[str, str]:
    fields = {
        "return_code": "SUCCESS", "result_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID,
        "nonce_str": "abcdef0123456789", "openid": "oUser", "trade_type": "JSAPI", "bank_type": "CMC",
        "total_fee": "100", "cash_fee": "100", "transaction_id": "4200000001", "out_trade_no": "order00001",
        "time_end": "20240101120000",
    }
    fields.update(over)
    return fields


def _reply(secrets: Secrets, fields: dict[str, str], sign_type: str = MD5, *, bad_sign: bool = False) -> HttpResponse:
    fields = dict(fields)
    secrets.add_signed(fields)
    fields["sign"] = ("0" * 32) if bad_sign else sign(fields, KEY, sign_type)
    return HttpResponse(200, {"Content-Type": "text/xml"}, build_xml(fields))


async def test_no_secret_in_logs_or_errors(capture):
    secrets = Secrets()
    errors: list[BaseException] = []

    def expect_error(fn, *args, **kw):
        with pytest.raises(WxPayError) as info:
            fn(*args, **kw)
        errors.append(info.value)

    # --- signing and verification, good and bad
    for sign_type in (MD5, HMAC_SHA256):
        params = {"appid": APPID, "mch_id": MCH_ID, "nonce_str": "n0nce", "body": "test"}
        secrets.add_signed(params)
        good = {**params, "sign": sign(params, KEY, sign_type)}
        verify(good, KEY, sign_type)
        expect_error(verify, {**good, "body": "tampered"}, KEY, sign_type)
        expect_error(verify, {**good, "sign": "F" * len(good["sign"])}, KEY, sign_type)
        expect_error(verify, {**good, "sign_type": "RSA"}, KEY, sign_type)
    expect_error(sign, {"a": "1"}, KEY, "SHA1")

    # --- payloads
    for sign_type in (MD5, HMAC_SHA256):
        bridge, _ = jsapi_payloads(APPID, "wx_prepay_1", KEY, sign_type)
        secrets.add_signed({k: v for k, v in bridge.to_dict().items() if k != "paySign"})
        mp = mini_program_payload(APPID, "wx_prepay_2", KEY, sign_type)
        secrets.add_signed({"appId": APPID, **{k: v for k, v in mp.to_dict().items() if k != "paySign"}})
        app = app_payload(APPID, MCH_ID, "wx_prepay_3", KEY, sign_type).to_dict()
        secrets.add_signed({k: v for k, v in app.items() if k != "sign"})
    cfg = wx_config(APPID, TICKET, "https://shop.example/pay?o=1#x")
    secrets.values.add(f"jsapi_ticket={TICKET}&noncestr={cfg.nonce_str}")

    # --- payment notifies, good and bad
    notify_bodies = []
    for sign_type in (MD5, HMAC_SHA256):
        fields = _notify_fields()
        secrets.add_signed(fields)
        body = build_xml({**fields, "sign": sign(fields, KEY, sign_type)})
        notify_bodies.append(body)
        verify_payment_notify(read_notify(body), key=KEY, sign_type=sign_type, appid=APPID, mch_id=MCH_ID)
        tampered = body.replace(b"<total_fee>100<", b"<total_fee>1<").replace(b"[100]", b"[1]")
        expect_error(lambda b=tampered, s=sign_type: verify_payment_notify(
            read_notify(b), key=KEY, sign_type=s, appid=APPID, mch_id=MCH_ID))
        expect_error(verify_payment_notify, read_notify(body), key=KEY, sign_type=sign_type,
                     appid="wxOther", mch_id=MCH_ID)
        other = _notify_fields(mch_id="999")
        secrets.add_signed(other)
        expect_error(verify_payment_notify, {**other, "sign": sign(other, KEY, sign_type)},
                     key=KEY, sign_type=sign_type, appid=APPID, mch_id=MCH_ID)
    expect_error(read_notify, b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>')
    expect_error(read_notify, b"<xml><a>1</a>")

    # --- refund notify, good and bad
    inner = build_xml({"transaction_id": "4200", "out_trade_no": "o1", "refund_id": "r1", "out_refund_no": "R1",
                       "total_fee": 100, "refund_fee": 100, "refund_status": "SUCCESS",
                       "success_time": "2024-01-01 12:00:00"}, root="root")
    req_info = encrypt_req_info(inner, KEY)
    refund_body = build_xml({"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID, "req_info": req_info})
    decrypt_refund_notify(refund_body, key=KEY, appid=APPID, mch_id=MCH_ID)
    expect_error(decrypt_refund_notify, refund_body, key=KEY[::-1], appid=APPID, mch_id=MCH_ID)
    expect_error(decrypt_refund_notify, refund_body, key=KEY, appid="wxOther", mch_id=MCH_ID)

    # --- the client over an injected transport
    seen: list[HttpRequest] = []
    script: list = []

    async def fake_wechat(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        sent = parse_xml(request.body)
        secrets.add_signed({k: v for k, v in sent.items() if k != "sign"})
        return script.pop(0)(sent)

    def ok(extra):
        return lambda sent: _reply(secrets, {"return_code": "SUCCESS", "result_code": "SUCCESS",
                                             "appid": APPID, "mch_id": MCH_ID, "nonce_str": "r1", **extra},
                                   sent.get("sign_type", MD5))

    async def no_sleep(_):
        return None

    for sign_type in (MD5, HMAC_SHA256):
        merchant = Merchant(mch_id=MCH_ID, api_key=KEY, appid=APPID, sign_type=sign_type)
        client = WxPayClient(merchant, transport=fake_wechat, sleep=no_sleep)
        script[:] = [ok({"prepay_id": "wx_prepay_9", "trade_type": "JSAPI"})]
        await client.unified_order(trade_type="JSAPI", out_trade_no="order00009", total_fee=1, body="Shop-Tea",
                                   notify_url="https://shop.example/notify", spbill_create_ip="1.2.3.4",
                                   openid="oUser")
        script[:] = [ok({"trade_state": "SUCCESS", "out_trade_no": "order00009", "total_fee": "1"})]
        await client.order_query(out_trade_no="order00009")
        # bad signature, layer-1 FAIL, layer-2 FAIL, then a 500 followed by success (retried)
        script[:] = [lambda sent: _reply(secrets, {"return_code": "SUCCESS", "result_code": "SUCCESS",
                                                   "appid": APPID, "mch_id": MCH_ID, "trade_state": "SUCCESS"},
                                         bad_sign=True)]
        with pytest.raises(WxPayError) as info:
            await client.order_query(out_trade_no="order00009")
        errors.append(info.value)
        script[:] = [lambda sent: HttpResponse(200, {}, build_xml({"return_code": "FAIL", "return_msg": "签名错误"}))]
        with pytest.raises(WxPayError) as info:
            await client.close_order("order00009")
        errors.append(info.value)
        script[:] = [ok({"result_code": "FAIL", "err_code": "ORDERPAID", "err_code_des": "paid"})]
        with pytest.raises(WxPayError) as info:
            await client.close_order("order00009")
        errors.append(info.value)
        script[:] = [lambda sent: HttpResponse(500, {}, b"oops"), ok({"trade_state": "NOTPAY"})]
        await client.order_query(out_trade_no="order00009")
        script[:] = [lambda sent: HttpResponse(200, {}, b"No Bill Exist")]
        with pytest.raises(WxPayError) as info:
            await client.download_bill(date(2024, 1, 1))
        errors.append(info.value)
    assert len(seen) >= 14 and script == []

    # --- the search
    assert len(secrets.values) > 20
    texts = list(capture.texts)
    for exc in errors:
        texts += [str(exc), repr(exc), repr(exc.to_dict()), repr(exc.args)]
    leaks = [(s, t) for t in texts for s in secrets.values if s in t]
    assert leaks == []
    for body in notify_bodies:
        assert not any(body.decode() in t for t in texts)

    # The test means something only if the code does log where it should.
    assert "wxpay.notify" in capture.names
    assert "wxpay.client" in capture.names
    assert any("payment notify rejected" in t for t in capture.texts)
    assert any("refund notify rejected" in t for t in capture.texts)
    assert len(errors) >= 25


def test_the_search_would_catch_a_leak(capture):
    """The capture machinery sees a key logged the way a careless library might."""
    logging.getLogger("wxpay.notify").debug("string to sign: %s", f"a=1&key={KEY}")
    assert any(KEY in t for t in capture.texts)
