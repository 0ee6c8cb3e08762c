"""What differs between APIv2 and APIv3 in the end-to-end tests, in one place.

The tests run the same steps under both ``wechat.api_version`` values; what
they must spell per version lives here: the simulator's fault endpoints, a
notify built the way the simulated WeChat builds it (and then changed, or
signed by someone else), what an accepted or a refused reply looks like.

A notify is made by the running server's own simulator, from its own
records and with WeChat's (TEST-ONLY) keys, so "signed by WeChat" means what
it means for a real notify; ``forged=True`` signs with a key WeChat does not have.
"""
from __future__ import annotations

import json
import secrets
from typing import Any

from tornado.httpclient import HTTPResponse

from wxpay import signing
from wxpay.simulator import demo
from wxpay.simulator.v3 import rules
from wxpay.simulator.v3.wire import dumps
from wxpay.timeutil import rfc3339_time
from wxpay.v3.signing import wechatpay_headers
from wxpay.v3.keys import load_private_key
from wxpay.xmlcodec import build_xml

# The simulator's fault endpoints for what each version calls differently.
FAULT_ENDPOINTS = {
    "v2": {"order_jsapi": "pay/unifiedorder", "order_native": "pay/unifiedorder", "query": "pay/orderquery",
           "close": "pay/closeorder", "refund": "secapi/pay/refund", "refund_query": "pay/refundquery"},
    "v3": {"order_jsapi": "v3/pay/transactions/jsapi", "order_native": "v3/pay/transactions/native",
           "query": "v3/pay/transactions/out-trade-no/{out_trade_no}",
           "close": "v3/pay/transactions/out-trade-no/{out_trade_no}/close", "refund": "v3/refund/domestic/refunds",
           "refund_query": "v3/refund/domestic/refunds/{out_refund_no}"},
}
# WeChat's word for a refund of more than is left: APIv2 NOTENOUGH, APIv3 (the simulator) INVALID_REQUEST.
TOO_MUCH_REFUND = {"v2": "NOTENOUGH", "v3": "INVALID_REQUEST"}

# A key WeChat never had: what a forger signs APIv3 notifies with.
_FORGER_KEY = load_private_key(demo.v3_pem("apiclient_key.pem"))  # the merchant's, not WeChat's


def accepted(version: str, reply: HTTPResponse) -> bool:
    """WeChat's reading of our answer: APIv2 the XML SUCCESS, APIv3 a 2xx status."""
    if version == "v3":
        return 200 <= reply.code < 300 and not reply.body
    return reply.code == 200 and b"<return_code><![CDATA[SUCCESS]]>" in reply.body


def refused(version: str, reply: HTTPResponse, status: int | None = None) -> bool:
    """A refusal WeChat retries: APIv2 XML FAIL, APIv3 any non-2xx (with a JSON FAIL body)."""
    if status is not None and reply.code != status:
        return False
    if version == "v3":
        return reply.code >= 300 and json.loads(reply.body)["code"] == "FAIL"
    return reply.code >= 400 and b"<return_code><![CDATA[FAIL]]>" in reply.body


def v3_signed(sim: Any, body: bytes, *, forged: bool = False, skew: int = 0, serial: str | None = None,
              signed_body: bytes | None = None) -> dict[str, str]:
    """The ``Wechatpay-*`` headers of ``body``: WeChat's key (the simulator's, by its key
    mode), or a forger's; ``skew`` seconds off the clock; another ``serial`` named;
    ``signed_body``: the bytes the signature covers, when not the body sent."""
    keyring = sim.v3.keyring(demo.MCH_ID)
    key = keyring.notify_key(sim.clock.now())
    headers = wechatpay_headers(_FORGER_KEY if forged else key.private_key, key.serial,
                                body if signed_body is None else signed_body,
                                timestamp=int(sim.clock.now().timestamp()) + skew, nonce=secrets.token_hex(16))
    if serial is not None:
        headers["Wechatpay-Serial"] = serial
    return {"Content-Type": "application/json", **headers}


def v3_envelope(sim: Any, event_type: str, summary: str, original_type: str, plaintext: dict[str, Any] | bytes,
                *, tampered: bool = False) -> bytes:
    """A notify body as WeChat builds it: ``plaintext`` encrypted under the APIv3 key."""
    keyring = sim.v3.keyring(demo.MCH_ID)
    now = sim.clock.now()
    raw = plaintext if isinstance(plaintext, bytes) else dumps(plaintext)
    return sim.v3.envelope(keyring, "EV-" + secrets.token_hex(8), rfc3339_time(now), event_type, summary,
                           original_type, raw, tampered=tampered)


def transaction(running: Any, out_trade_no: str, /, **changes: Any) -> dict[str, Any]:
    """The APIv3 transaction object of a paid order, as its notify carries it."""
    order = running.simulator.pay.order(demo.MCH_ID, out_trade_no)
    return {**rules.transaction_json(order, as_paid=True), **changes}


def payment_notify(running: Any, version: str, out_trade_no: str, /, *, forged: bool = False,
                   **changes: Any) -> tuple[dict[str, str], bytes]:
    """The payment notify WeChat sends for a paid order, in ``version``'s form, with
    ``changes`` made before it is signed (V2 field names: ``total_fee``; V3: ``amount``).
    ``forged``: signed with a key that is not WeChat's (V2: not the API key)."""
    sim = running.simulator
    order = sim.pay.order(demo.MCH_ID, out_trade_no)
    if version == "v3":
        plaintext = {**rules.transaction_json(order, as_paid=True), **changes}
        body = v3_envelope(sim, "TRANSACTION.SUCCESS", "支付成功", "transaction", plaintext)
        return v3_signed(sim, body, forged=forged), body
    fields = {**sim.pay_notify_fields(order), **{k: str(v) for k, v in changes.items()}}
    fields.pop("sign", None)
    key = ("F" * 32) if forged else sim.config.merchant(demo.MCH_ID).api_key
    fields["sign"] = signing.sign(fields, key, order.sign_type)
    return {"Content-Type": "text/xml"}, build_xml(fields)


def refund_notify(running: Any, version: str, out_refund_no: str, /, *, forged: bool = False,
                  **changes: Any) -> tuple[dict[str, str], bytes]:
    """The refund notify WeChat sends for a settled refund, in ``version``'s form.
    APIv2's proof is that req_info decrypts under our key: ``forged`` encrypts it
    under another; APIv3's is WeChat's signature."""
    sim = running.simulator
    refund = sim.pay.refund_by_no(demo.MCH_ID, out_refund_no)
    if version == "v3":
        plaintext = {**rules.refund_notify_json(refund), **changes}
        event_type, summary = rules.REFUND_EVENT[plaintext["refund_status"]]
        body = v3_envelope(sim, event_type, summary, "refund", plaintext)
        return v3_signed(sim, body, forged=forged), body
    fields = sim.refund_notify_fields(refund)
    if forged:
        fields = dict(fields, req_info=fields["req_info"][:-8] + "AAAAAAA=")
    return {"Content-Type": "text/xml"}, build_xml({**fields, **changes})


async def post_notify(browser: Any, path: str, notify: tuple[dict[str, str], bytes]) -> HTTPResponse:
    headers, body = notify
    return await browser.post(path, body=body, headers=headers)
