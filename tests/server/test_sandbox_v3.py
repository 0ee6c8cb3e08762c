"""The sandbox server's mounted simulator speaks APIv3 for the demo merchant,
with the TEST-ONLY credentials ``python -m wxpay.simulator credentials`` prints
(before, every V3 call to /_wechat/v3/ got 401 "商户未设置APIv3密钥")."""
from __future__ import annotations

import time

from tests.simulator.v3_server import APIV3_KEY, MERCHANT_KEY_PEM, V3Merchant, signature_ok


async def test_a_v3_client_pays_against_the_sandbox_server(running, base_url):
    merchant = V3Merchant(base_url + "/_wechat", time.time)
    reply = await merchant.order("native", "sandboxv3order1")
    assert reply.status == 200, reply.body
    assert reply.json["code_url"].startswith("weixin://")
    assert signature_ok(reply.headers, reply.body)
    query = await merchant.call("GET", "/v3/pay/transactions/out-trade-no/sandboxv3order1?mchid=1900000109")
    assert query.status == 200 and query.json["trade_state"] == "NOTPAY"


async def test_v3_refusals_on_the_sandbox_server_never_show_a_key(running, base_url):
    merchant = V3Merchant(base_url + "/_wechat", time.time)
    secrets = [APIV3_KEY, "PRIVATE KEY", MERCHANT_KEY_PEM.splitlines()[1][:40]]
    for path, body in (("/v3/pay/transactions/native", {"mchid": "1900000109"}),
                       ("/v3/pay/transactions/jsapi", {"mchid": "1900000109", "amount": {"total": -1}}),
                       ("/v3/refund/domestic/refunds", {"out_refund_no": "x" * 500}),
                       ("/v3/nothing/here", {})):
        reply = await merchant.call("POST", path, body)
        assert 400 <= reply.status < 500, (path, reply.status, reply.body)
        assert not any(s in reply.body.decode() for s in secrets), path
    forged = await merchant.call("POST", "/v3/pay/transactions/native", {}, authorization="WECHATPAY2-SHA256-RSA2048 x")
    assert forged.status == 401 and not any(s in forged.body.decode() for s in secrets)
