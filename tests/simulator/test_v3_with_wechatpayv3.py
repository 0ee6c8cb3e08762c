"""An independent APIv3 client against the simulator: wechatpayv3 2.x (sync, in a thread).

wechatpayv3 hard-codes ``https://api.mch.weixin.qq.com`` as ``Core._gate_way``
and has no option for it, so the adapter (``wechatpayv3_client``, the same
one docs/simulator.md shows) swaps that one attribute after construction.
Without a public key its constructor downloads ``/v3/certificates`` from the
hard-coded host; the adapter avoids that the way the library supports: the
platform certificate (public material from ``credentials --json``) is put in
``cert_dir`` first. Everything else is wechatpayv3's own code: it signs every
request, verifies every 2xx reply (raising on a bad signature), downloads the
bill and verifies and decrypts notifies with ``callback``.

wechatpayv3 signs with the real clock; here its clock follows the simulator's
fake clock (so the test can move to the next day for the bill), as a machine
whose clock agrees with WeChat's.
"""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import types
from pathlib import Path

import pytest
import wechatpayv3.utils
from wechatpayv3 import WeChatPay, WeChatPayType

from wxpay.simulator import demo
from wxpay.timeutil import CHINA_TZ

from .pay_server import running_sim
from .v3_server import APP, MCH, MP, OA, PLATFORM, PUB_ID, receiver  # noqa: F401


def wechatpayv3_client(base_url: str, *, mode: str, cert_dir: Path | None = None,
                       pay_type: WeChatPayType = WeChatPayType.NATIVE, notify_url: str | None = None) -> WeChatPay:
    """wechatpayv3 pointed at the simulator: only the host is swapped."""
    kw = {}
    if mode == "public_key":
        kw = {"public_key": demo.v3_pem("wechatpay_pub_key.pem"), "public_key_id": PUB_ID}
    else:  # seed cert_dir so the constructor does not call the real host
        assert cert_dir is not None
        cert_dir.mkdir(parents=True, exist_ok=True)
        (cert_dir / f"{PLATFORM}.pem").write_text(demo.v3_pem("platform_cert.pem"))
        kw = {"cert_dir": str(cert_dir)}
    client = WeChatPay(wechatpay_type=pay_type, mchid=MCH, private_key=demo.v3_pem("apiclient_key.pem"),
                       cert_serial_no=demo.MERCHANT_SERIAL_NO, appid=OA, apiv3_key=demo.APIV3_KEY,
                       notify_url=notify_url, timeout=(5, 10), **kw)
    client._core._gate_way = base_url  # the adapter: wechatpayv3 has no setting for the host
    return client


def run(fn, *args, **kw):
    return asyncio.to_thread(fn, *args, **kw)


@pytest.fixture
def follow_sim_clock(monkeypatch):
    """wechatpayv3 stamps Authorization with ``time.time()`` of its utils module."""
    def use(sim):
        monkeypatch.setattr(wechatpayv3.utils, "time", types.SimpleNamespace(time=lambda: sim.clock.now().timestamp()))
    return use


def callback_decider(wp: WeChatPay, receiver):
    """The merchant's notify endpoint: wechatpayv3 verifies and decrypts; 204 if it could, else 500."""
    def decide(headers, body):
        result = wp.callback(headers, body)
        receiver.decided.append(result)
        return 204 if result else 500
    return decide


@pytest.mark.parametrize("mode", ["public_key", "platform_cert"])
async def test_wechatpayv3_completes_every_call(mode, receiver, follow_sim_clock, tmp_path):  # noqa: F811
    async with running_sim() as srv:
        follow_sim_clock(srv.sim)
        srv.sim.v3.keyring(MCH).set_mode(mode)
        wp = wechatpayv3_client(srv.base, mode=mode, cert_dir=tmp_path / "certs", notify_url=receiver.url)
        receiver.decide = callback_decider(wp, receiver)

        # Orders of each kind; wechatpayv3 raises if a 2xx reply is not WeChat's signature.
        code, native = await run(wp.pay, description="Demo shop-tea", out_trade_no=f"{mode[:3]}native1",
                                 amount={"total": 88})
        assert code == 200 and json.loads(native)["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
        openid = srv.openid("alice", OA)
        code, jsapi = await run(wp.pay, description="Demo shop-tea", out_trade_no=f"{mode[:3]}jsapi1",
                                amount={"total": 5}, payer={"openid": openid}, pay_type=WeChatPayType.JSAPI)
        assert code == 200 and json.loads(jsapi)["prepay_id"].startswith("wx")
        code, mini = await run(wp.pay, description="Demo shop-tea", out_trade_no=f"{mode[:3]}mini1", appid=MP,
                               amount={"total": 6}, payer={"openid": srv.openid("bob", MP)},
                               pay_type=WeChatPayType.MINIPROG)
        assert code == 200 and "prepay_id" in json.loads(mini)
        code, app = await run(wp.pay, description="Demo shop-tea", out_trade_no=f"{mode[:3]}app1", appid=APP,
                              amount={"total": 7}, pay_type=WeChatPayType.APP)
        assert code == 200 and "prepay_id" in json.loads(app)
        code, h5 = await run(wp.pay, description="Demo shop-tea", out_trade_no=f"{mode[:3]}h51", amount={"total": 8},
                             scene_info={"payer_client_ip": "127.0.0.1", "h5_info": {"type": "Wap"}},
                             pay_type=WeChatPayType.H5)
        assert code == 200 and "/_sim/mweb?prepay_id=" in json.loads(h5)["h5_url"]

        # The shopper pays the JSAPI order with the page payload wechatpayv3 signed (RSA paySign checked).
        prepay_id = json.loads(jsapi)["prepay_id"]
        ts, nonce = str(int(srv.clock.now().timestamp())), "NONCE0123456789"
        pay_sign = wp.sign([OA, ts, nonce, f"prepay_id={prepay_id}"])
        status, paid = await srv.post_json("/_sim/pay", {"prepay_id": prepay_id, "outcome": "ok", "payload": {
            "appId": OA, "timeStamp": ts, "nonceStr": nonce, "package": f"prepay_id={prepay_id}",
            "signType": "RSA", "paySign": pay_sign}})
        assert status == 200 and paid["ok"] and paid["result"] == {"err_msg": "get_brand_wcpay_request:ok"}
        delivery = await srv.sim.notifier.wait(paid["notify_delivery"])
        assert delivery.state == "delivered" and delivery.api == "v3"
        event = receiver.decided[-1]
        assert event["event_type"] == "TRANSACTION.SUCCESS"
        assert event["resource"]["out_trade_no"] == f"{mode[:3]}jsapi1" and event["resource"]["amount"]["total"] == 5
        transaction_id = event["resource"]["transaction_id"]

        # Queries both ways.
        code, by_no = await run(wp.query, out_trade_no=f"{mode[:3]}jsapi1")
        assert code == 200 and json.loads(by_no)["trade_state"] == "SUCCESS"
        code, by_id = await run(wp.query, transaction_id=transaction_id)
        assert code == 200 and json.loads(by_id)["out_trade_no"] == f"{mode[:3]}jsapi1"

        # Close an unpaid order: 204 (signed over the empty body).
        code, closed = await run(wp.close, out_trade_no=f"{mode[:3]}native1")
        assert code == 204
        code, after = await run(wp.query, out_trade_no=f"{mode[:3]}native1")
        assert json.loads(after)["trade_state"] == "CLOSED"

        # Refund with its notify, and the refund query.
        code, refunded = await run(wp.refund, out_refund_no=f"{mode[:3]}refund1", amount={"refund": 2, "total": 5,
                                   "currency": "CNY"}, transaction_id=transaction_id, notify_url=receiver.url)
        assert code == 200 and json.loads(refunded)["status"] == "SUCCESS"
        refund_delivery = srv.sim.notifier.list("refund", f"{mode[:3]}refund1")[0]
        await srv.sim.notifier.wait(refund_delivery["id"])
        refund_event = receiver.decided[-1]
        assert refund_event["event_type"] == "REFUND.SUCCESS"
        assert refund_event["resource"]["amount"]["refund"] == 2
        code, queried = await run(wp.query_refund, out_refund_no=f"{mode[:3]}refund1")
        assert code == 200 and json.loads(queried)["amount"]["refund"] == 2

        # Bills of that day, from 09:00 the next day: step 1 verified, step 2 unsigned, SHA1 of the plain file.
        day = srv.clock.now().astimezone(CHINA_TZ)
        srv.clock.advance(days=1)
        for fetch, args in ((wp.trade_bill, {"bill_date": f"{day:%Y-%m-%d}"}),
                            (wp.fundflow_bill, {"bill_date": f"{day:%Y-%m-%d}"})):
            code, step1 = await run(fetch, **args)
            assert code == 200, step1
            step1 = json.loads(step1)
            code, data = await run(wp.download_bill, step1["download_url"])
            assert code == 200
            plain = gzip.decompress(data)
            assert hashlib.sha1(plain).hexdigest() == step1["hash_value"]
            assert transaction_id in plain.decode()

        # Certificates: served per key mode; in certificate mode wechatpayv3's own download refreshes them.
        code, certs = await run(wp._core.request, "/v3/certificates")
        if mode == "public_key":
            assert code == 404 and json.loads(certs)["code"] == "RESOURCE_NOT_EXISTS"
        else:
            assert code == 200 and json.loads(certs)["data"][0]["serial_no"] == PLATFORM
            wp._core._certificates.clear()
            await run(wp._core._update_certificates)
            assert [f"{c.serial_number:X}" for c in wp._core._certificates] == [PLATFORM]
        assert all(d.get("state") == "delivered" for d in srv.sim.notifier.list())


async def test_wechatpayv3_rejects_a_reply_whose_signature_was_bent(follow_sim_clock):
    """The response faults reach a real client: it must refuse a probe and a wrong signature."""
    async with running_sim() as srv:
        follow_sim_clock(srv.sim)
        wp = wechatpayv3_client(srv.base, mode="public_key", notify_url="http://127.0.0.1:9/n")
        await run(wp.pay, description="Demo shop-tea", out_trade_no="bentreply1", amount={"total": 1})
        for kind in ("signtest", "bad_sign", "wrong_serial"):
            srv.sim.faults.add("v3/pay/transactions/out-trade-no/{out_trade_no}", kind)
            with pytest.raises(Exception, match="failed to verify the signature"):
                await run(wp.query, out_trade_no="bentreply1")
        code, body = await run(wp.query, out_trade_no="bentreply1")  # the faults were one-shot
        assert code == 200 and json.loads(body)["trade_state"] == "NOTPAY"


async def test_gray_switch_with_wechatpayv3_public_key_client(receiver, follow_sim_clock):  # noqa: F811
    """In gray mode some notifies are signed by the platform certificate: wechatpayv3 (public key
    configured) fetches /v3/certificates for the unknown serial and still verifies them."""
    async with running_sim() as srv:
        follow_sim_clock(srv.sim)
        srv.sim.v3.keyring(MCH).set_mode("gray", 0.5, 3)
        wp = wechatpayv3_client(srv.base, mode="public_key", notify_url=receiver.url)
        receiver.decide = callback_decider(wp, receiver)
        for n in range(6):
            await run(wp.pay, description="Demo shop-tea", out_trade_no=f"gray{n:04d}", amount={"total": 1})
            order = srv.sim.pay.order(MCH, f"gray{n:04d}")
            assert srv.sim.pay.pay(order, "ok")
            await srv.sim.notifier.wait(srv.sim.paid(order).id)
        serials = {headers["Wechatpay-Serial"] for headers, _ in receiver.received}
        assert serials == {PUB_ID, PLATFORM}  # seed 3 draws both kinds in six notifies
        assert all(receiver.decided) and len(receiver.decided) == 6
