"""Our own client (wxpay.client.WxPayClient) and merchant-side notify code against the simulator."""
from __future__ import annotations

from datetime import date

import pytest

from wxpay import errors
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.merchant import Merchant
from wxpay.notify import decrypt_refund_notify, read_notify, verify_payment_notify

from .pay_server import KEY, MCH, OA, cert_pair, merchant, simsrv  # noqa: F401


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def client(simsrv, cert_pair):
    m = Merchant(MCH, KEY, OA, sign_type="HMAC-SHA256", cert_path=cert_pair[0], key_path=cert_pair[1])
    return WxPayClient(m, endpoints=Endpoints.single(simsrv.base), sleep=no_sleep)


async def test_full_journey_with_our_client(simsrv, merchant, client):
    created = await client.unified_order(
        trade_type="JSAPI", out_trade_no="client0001", total_fee=990, body="Demo-journey",
        notify_url=merchant.url, spbill_create_ip="127.0.0.1", openid=simsrv.openid("alice"), attach="ref-7",
    )
    assert created.prepay_id.startswith("wx") and created.trade_type == "JSAPI"
    assert (await client.order_query(out_trade_no="client0001")).trade_state == "NOTPAY"

    code, paid = await simsrv.post_json("/_sim/pay", {"prepay_id": created.prepay_id, "outcome": "ok"})
    await simsrv.sim.notifier.wait(paid["notify_delivery"])
    notify = verify_payment_notify(read_notify(merchant.received[0]), key=KEY, sign_type="HMAC-SHA256",
                                   appid=OA, mch_id=MCH)
    assert notify.total_fee == 990 and notify.out_trade_no == "client0001" and notify.attach == "ref-7"

    query = await client.order_query(transaction_id=notify.transaction_id)
    assert query.trade_state == "SUCCESS" and query.total_fee == 990 and query.time_end == notify.time_end

    refund = await client.refund(out_refund_no="client-r1", out_trade_no="client0001", total_fee=990,
                                 refund_fee=90, notify_url=merchant.url)
    assert refund.refund_fee == 90 and refund.refund_id
    with pytest.raises(errors.NotEnoughError):
        await client.refund(out_refund_no="client-r2", out_trade_no="client0001", total_fee=990, refund_fee=901)
    refunds = await client.refund_query(out_trade_no="client0001")
    assert [r.refund_status for r in refunds.refunds] == ["SUCCESS"] and refunds.total_refund_count == 1

    [delivery] = simsrv.sim.notifier.list("refund", "client-r1")
    await simsrv.sim.notifier.wait(delivery["id"])
    decrypted = decrypt_refund_notify(merchant.received[-1], key=KEY, appid=OA, mch_id=MCH)
    assert decrypted.refund_id == refund.refund_id and decrypted.refund_fee == 90

    simsrv.clock.advance(days=1)
    bill = await client.download_bill(date(2026, 1, 5))
    assert [row.out_trade_no for row in bill.rows] == ["client0001", "client0001"]
    assert bill.summary.total_count == 2
    with pytest.raises(errors.ReturnFailError):
        await client.download_bill(date(2026, 1, 4))


async def test_business_failures_map_to_typed_errors(simsrv, client):
    with pytest.raises(errors.OrderNotExistError):
        await client.order_query(out_trade_no="client0009")
    with pytest.raises(errors.OrderNotExistError):
        await client.close_order("client0009")
    with pytest.raises(errors.InvalidRequestError):  # PARAM_ERROR: openid of another app
        await client.unified_order(trade_type="JSAPI", out_trade_no="client0010", total_fee=1, body="x-y",
                                   notify_url="http://127.0.0.1:9/n", spbill_create_ip="127.0.0.1",
                                   openid=simsrv.openid("alice", "wx5a1d000000000002"))
    await client.unified_order(trade_type="NATIVE", out_trade_no="client0011", total_fee=1, body="x-y",
                               notify_url="http://127.0.0.1:9/n", spbill_create_ip="127.0.0.1", product_id="p")
    with pytest.raises(errors.OutTradeNoUsedError):
        await client.unified_order(trade_type="NATIVE", out_trade_no="client0011", total_fee=2, body="x-y",
                                   notify_url="http://127.0.0.1:9/n", spbill_create_ip="127.0.0.1", product_id="p")
    wrong_key = WxPayClient(Merchant(MCH, "W" * 32, OA), endpoints=Endpoints.single(simsrv.base), sleep=no_sleep)
    with pytest.raises(errors.ReturnFailError) as err:
        await wrong_key.close_order("client0011")
    assert err.value.return_msg == "签名错误"
