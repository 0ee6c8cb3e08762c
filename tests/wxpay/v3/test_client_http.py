"""WxPayV3Client over real HTTP on 127.0.0.1 against a small signed WeChat (tests/wxpay/v3/wechat_server.py).

Every request the client sends is checked by that server over the raw bytes
received (a wrong body, path or key is a 401 there); every reply is signed
with the vectors' keys. Faults are scripted per path.
"""
from __future__ import annotations

import asyncio
import json
from datetime import date

import pytest

from wxpay import errors as e
from wxpay.bill import NoBillError
from wxpay.transport import CallRecord, TornadoTransport
from wxpay.v3 import MerchantSigner, PlatformCertificateKeeper, WxPayV3Client, wechatpay_headers
from wxpay.v3.aead import ApiV3Cipher

from .vectors import APIV3_KEY, MCHID, MERCHANT_SERIAL, PLATFORM_SERIAL, PUB_KEY_ID, platform_key, wechat_key
from .wechat_server import NOTIFY_URL, WeChatV3, in_days, make_platform_key

ORDER = dict(description="Green tea ✓", notify_url=NOTIFY_URL, total=100)


class Clock:
    """One clock for the client and the fake WeChat, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def place(client: WxPayV3Client, no: str = "T20260101000001"):
    return await client.create_native_order(out_trade_no=no, **ORDER)


# --- success paths --------------------------------------------------------------------------


@pytest.mark.parametrize("mode, serial", [("public_key", PUB_KEY_ID), ("platform", PLATFORM_SERIAL),
                                          ("gray", PUB_KEY_ID)])
@pytest.mark.parametrize("http_client", ["curl", "simple"])
async def test_every_call_succeeds_in_each_key_mode(mode, serial, http_client):
    async with WeChatV3(mode=mode, prefix="/_wechat") as wechat:
        records: list[CallRecord] = []
        client = wechat.client(transport=TornadoTransport(client=http_client), observer=records.append)
        jsapi = await client.create_jsapi_order(out_trade_no="T20260101000001", openid="oTEST01", **ORDER)
        mini = await client.create_jsapi_order(out_trade_no="T20260101000005", openid="oTEST02",
                                               appid="wx00000000minipg1", **ORDER)
        app = await client.create_app_order(out_trade_no="T20260101000002", **ORDER)
        native = await client.create_native_order(out_trade_no="T20260101000003", **ORDER)
        h5 = await client.create_h5_order(out_trade_no="T20260101000004", payer_client_ip="203.0.113.9", **ORDER)
        assert jsapi.prepay_id.startswith("wx") and mini.prepay_id.startswith("wx") and app.prepay_id.startswith("wx")
        assert native.code_url.startswith("weixin://") and h5.h5_url.startswith("https://")
        assert json.loads(wechat.calls("/jsapi")[1].body)["appid"] == "wx00000000minipg1"

        assert (await client.query_by_out_trade_no("T20260101000001")).trade_state == "NOTPAY"
        wechat.pay("T20260101000001")
        paid = await client.query_by_out_trade_no("T20260101000001")
        assert paid.paid and paid.amount.payer_total == 100
        assert (await client.query_by_transaction_id(paid.transaction_id)).out_trade_no == "T20260101000001"
        assert await client.close_order("T20260101000003") is None
        assert wechat.orders["T20260101000003"]["trade_state"] == "CLOSED"

        refund = await client.refund(out_refund_no="RF|2026@1", refund=40, total=100, out_trade_no="T20260101000001")
        assert refund.refund_status == "PROCESSING" and refund.amount.refund == 40
        assert (await client.query_refund("RF|2026@1")).refund_id == refund.refund_id

        bill = await client.trade_bill(date(2025, 12, 31), gzip=True)
        assert [r.out_trade_no for r in bill.rows] == ["T20251231000001"] and bill.summary.total_count == 1
        flow = await client.fund_flow_bill(date(2025, 12, 31))
        assert [r.amount_fen for r in flow.rows] == [100, 1] and flow.summary.expense_fen == 1

        calls = [r for r in wechat.requests if "/v3/certificates" not in r.uri]
        assert all(r.uri.startswith("/_wechat/v3/") for r in wechat.requests)
        # every call names the key we verify with (bill files too: harmless, uniform)
        assert {r.headers.get("Wechatpay-Serial") for r in calls} == {serial}
        assert {r.endpoint for r in records} >= {"v3/jsapi", "v3/app", "v3/native", "v3/h5", "v3/query", "v3/close",
                                                 "v3/refund", "v3/refundquery", "v3/tradebill", "v3/fundflowbill",
                                                 "v3/billdownload"}
        assert all(r.ok for r in records)
        assert len(wechat.calls("/v3/certificates")) == (0 if mode == "public_key" else 1)


async def test_a_request_signed_with_another_key_gets_sign_error():
    async with WeChatV3() as wechat:
        client = wechat.client()
        client.signer = MerchantSigner(MCHID, MERCHANT_SERIAL, platform_key())  # not the merchant's key
        with pytest.raises(e.MerchantSetupError) as exc:
            await place(client)
        assert (exc.value.http_status, exc.value.err_code) == (401, "SIGN_ERROR")
        assert "merchant private key" in exc.value.message


# --- errors ----------------------------------------------------------------------------------

STATUSES = [
    (400, "PARAM_ERROR", e.InvalidRequestError, 1),
    (401, "SIGN_ERROR", e.MerchantSetupError, 1),
    (403, "NO_AUTH", e.MerchantSetupError, 1),
    (404, "ORDER_NOT_EXIST", e.OrderNotExistError, 1),
    (429, "FREQUENCY_LIMITED", e.RateLimitedError, 1),
    (429, "RATELIMIT_EXCEEDED", e.RateLimitedError, 1),
    (500, "SYSTEM_ERROR", e.RetryableBusinessError, 3),
    (502, None, e.TransportError, 3),
    (503, "SERVICE_UNAVAILABLE", e.RetryableBusinessError, 3),
]


@pytest.mark.parametrize("status, code, cls, attempts", STATUSES, ids=[f"{s}-{c}" for s, c, _, _ in STATUSES])
async def test_every_error_status_on_a_query(status, code, cls, attempts):
    async with WeChatV3() as wechat:
        client = wechat.client()
        wechat.fault("/out-trade-no/", "error", status=status, code=code, message="微信说明", times=10)
        with pytest.raises(cls) as exc:
            await client.query_by_out_trade_no("T20260101000001")
        assert type(exc.value) is cls and exc.value.http_status == status
        if code:
            assert exc.value.err_code == code and "微信说明" in exc.value.message
        assert exc.value.request_id and exc.value.request_id.startswith("TEST-")
        assert len(wechat.calls("/out-trade-no/")) == attempts


async def test_business_errors_of_orders_and_refunds():
    async with WeChatV3() as wechat:
        client = wechat.client()
        await place(client)
        with pytest.raises(e.OutTradeNoUsedError):  # same out_trade_no, other content
            await client.create_native_order(out_trade_no="T20260101000001", **{**ORDER, "total": 101})
        with pytest.raises(e.OrderNotExistError):  # refunding an unpaid order
            await client.refund(out_refund_no="R1", refund=1, total=100, out_trade_no="T20260101000001")
        with pytest.raises(e.RefundNotExistError) as exc:
            await client.query_refund("R-never")
        assert exc.value.http_status == 404 and "R-never" in exc.value.message
        wechat.fault("/v3/bill/", "error", status=400, code="NO_STATEMENT_EXIST", message="账单文件不存在")
        with pytest.raises(NoBillError):
            await client.trade_bill(date(2025, 12, 31))


async def test_bad_arguments_cost_no_request():
    async with WeChatV3() as wechat:
        client = wechat.client()
        for call in (lambda: client.create_native_order(out_trade_no="T20260101000001", **{**ORDER, "description": "茶🍵"}),
                     lambda: client.create_jsapi_order(out_trade_no="T1", openid="o", **ORDER),
                     lambda: client.refund(out_refund_no="R1", refund=2, total=1, out_trade_no="T20260101000001"),
                     lambda: client.query_refund("R 1")):
            with pytest.raises(e.InvalidArgumentError):
                await call()
        assert wechat.requests == []


# --- replies that do not prove themselves -------------------------------------------------------


@pytest.mark.parametrize("mode, kind, kw, code", [
    ("public_key", "tamper", {}, "bad_signature"),
    ("public_key", "signtest", {}, "signtest_probe"),
    ("public_key", "stale", {"age": 301}, "stale_timestamp"),
    ("public_key", "stale", {"age": -301}, "stale_timestamp"),
    ("public_key", "unsigned", {}, "missing_header"),
    ("public_key", "serial", {"serial": "PUB_KEY_ID_0000000000000000000000000000000999"}, "unknown_serial"),
    ("gray", "serial", {"serial": PLATFORM_SERIAL}, "bad_signature"),  # signed by the public key, names the cert
])
async def test_replies_that_do_not_prove_themselves(mode, kind, kw, code):
    async with WeChatV3(mode=mode) as wechat:
        records: list[CallRecord] = []
        client = wechat.client(observer=records.append)
        await place(client)  # works
        wechat.fault("/out-trade-no/", kind, times=10, **kw)
        with pytest.raises(e.VerificationError) as exc:
            await client.query_by_out_trade_no("T20260101000001")
        assert exc.value.code == code
        assert len(wechat.calls("/out-trade-no/")) == 1  # never retried: a repeat would not make it true
        assert records[-1].endpoint == "v3/query" and not records[-1].ok and records[-1].error_code == code


@pytest.mark.parametrize("kind, code", [("tamper", "bad_signature"), ("stale", "stale_timestamp"),
                                        ("signtest", "signtest_probe")])
async def test_a_close_204_is_verified_too(kind, code):
    async with WeChatV3() as wechat:
        client = wechat.client()
        await place(client)
        wechat.fault("/close", kind)
        with pytest.raises(e.VerificationError) as exc:
            await client.close_order("T20260101000001")
        assert exc.value.code == code


# --- retries: only where safe ---------------------------------------------------------------------


async def test_only_safe_calls_retry_by_themselves():
    async with WeChatV3() as wechat:
        client = wechat.client()
        await place(client)
        wechat.pay("T20260101000001")
        safe = {
            "/out-trade-no/T20260101000001?": lambda: client.query_by_out_trade_no("T20260101000001"),
            "/close": lambda: client.close_order("T20260101000001"),
            "/refunds/R1": lambda: client.query_refund("R1"),
            "/tradebill": lambda: client.trade_bill_download(date(2025, 12, 31)),
        }
        for part, call in safe.items():
            wechat.fault(part.replace("?", r"\?"), "error", status=500, code="SYSTEM_ERROR", times=2)
            before = len(wechat.calls(part))
            try:
                await call()
            except e.RefundNotExistError:
                pass  # R1 does not exist: answered after two retried 500s
            assert len(wechat.calls(part)) - before == 3, part
        unsafe = {
            "/native": lambda retry: client.create_native_order(out_trade_no="T20260101000002", retry=retry, **ORDER),
            "/domestic/refunds": lambda retry: client.refund(out_refund_no="R2", refund=1, total=100,
                                                             out_trade_no="T20260101000001", retry=retry),
        }
        for part, call in unsafe.items():
            wechat.fault(part + "$", "error", status=500, code="SYSTEM_ERROR", times=1)
            before = len(wechat.calls(part))
            with pytest.raises(e.RetryableBusinessError):
                await call(False)
            assert len(wechat.calls(part)) - before == 1, part
            wechat.fault(part + "$", "error", status=500, code="SYSTEM_ERROR", times=1)
            await call(True)  # opted in: the same out_trade_no / out_refund_no makes a repeat harmless
            assert len(wechat.calls(part)) - before == 3, part


async def test_each_attempt_is_signed_afresh_over_the_same_body():
    async with WeChatV3() as wechat:
        client = wechat.client()
        wechat.fault("/native", "error", status=503, times=1)
        await client.create_native_order(out_trade_no="T20260101000009", retry=True, **ORDER)
        first, second = wechat.calls("/native")
        assert first.body == second.body
        assert first.headers["Authorization"] != second.headers["Authorization"]


async def test_timeouts_are_explicit_and_a_query_retries_after_one():
    async with WeChatV3() as wechat:
        client = wechat.client(request_timeout=0.3)
        wechat.fault("/out-trade-no/", "stall", seconds=1.0)
        await place(client)
        with pytest.raises(e.OrderNotExistError):  # answered by the second attempt
            await client.query_by_out_trade_no("T20260101000099")
        wechat.fault("/native", "stall", seconds=1.0)
        with pytest.raises(e.WxTimeoutError):
            await place(client, "T20260101000098")


# --- bills --------------------------------------------------------------------------------------------


async def test_the_bill_file_is_unsigned_but_sha1_checked():
    async with WeChatV3() as wechat:
        client = wechat.client()
        download = await client.trade_bill_download(date(2025, 12, 31))
        plain = await client.download_bill_file(download)
        assert plain.startswith("交易时间".encode())
        wechat.tamper_files = True
        with pytest.raises(e.ProtocolError) as exc:
            await client.trade_bill(date(2025, 12, 31), gzip=True)
        assert exc.value.code == "bill_hash_mismatch"
        assert len(wechat.calls("/billdownload/")) == 2  # a mismatch is not retried blindly


async def test_a_download_url_elsewhere_never_gets_our_authorization():
    async with WeChatV3() as wechat, WeChatV3() as stranger:
        client = wechat.client()
        download = await client.trade_bill_download(date(2025, 12, 31))
        foreign = type(download)(download.hash_type, download.hash_value,
                                 download.download_url.replace(wechat.base, stranger.base))
        with pytest.raises(e.ProtocolError) as exc:
            await client.download_bill_file(foreign)
        assert exc.value.code == "foreign_download_url"
        assert stranger.requests == [] and wechat.calls("/billdownload/") == []


# --- platform certificates -------------------------------------------------------------------------------


async def test_a_public_key_merchant_configured_with_certificates_is_told_to_use_the_public_key():
    async with WeChatV3(mode="public_key") as wechat:
        client = wechat.client(public_key=False, certificates=True)
        with pytest.raises(e.PlatformCertificatesUnavailableError) as exc:
            await place(client)
        assert "public key" in exc.value.message and exc.value.http_status == 404
        assert [r.uri for r in wechat.requests] == ["/v3/certificates"]  # no order was placed
        with pytest.raises(e.PlatformCertificatesUnavailableError):
            await client.refresh_certificates()


async def test_certificate_mode_loads_once_then_names_the_certificate():
    async with WeChatV3(mode="platform") as wechat:
        client = wechat.client()
        await asyncio.gather(*(place(client, f"T2026010100001{n}") for n in range(5)))
        assert len(wechat.calls("/v3/certificates")) == 1  # five concurrent first calls, one download
        assert wechat.calls("/v3/certificates")[0].headers.get("Wechatpay-Serial") is None  # nothing trusted yet
        assert {r.headers["Wechatpay-Serial"] for r in wechat.calls("/native")} == {PLATFORM_SERIAL}


async def test_a_refresh_must_be_signed_by_a_key_already_trusted():
    clock = Clock(1_800_000_000.0)
    async with WeChatV3(mode="platform", clock=clock) as wechat:
        client = wechat.client(keeper=PlatformCertificateKeeper(refresh_every=3600, clock=clock))
        await place(client)
        impostor = make_platform_key(0xBAD, in_days(-1, clock.now), in_days(900, clock.now), key_no=9)
        wechat.platform_keys.append(impostor)  # served in the list, and signing the reply itself
        wechat.fault("/v3/certificates", "sign_with", key=impostor.private_key, serial=impostor.serial, times=5)
        with pytest.raises(e.VerificationError) as exc:
            await client.refresh_certificates()
        assert exc.value.code == "unknown_serial"
        assert not client.certificates.knows(impostor.serial)


async def test_certificates_are_refreshed_ahead_of_expiry():
    clock = Clock(1_800_000_000.0)
    async with WeChatV3(mode="platform", clock=clock) as wechat:
        old = make_platform_key(0xA1, in_days(-300, clock.now), in_days(10, clock.now), key_no=1)
        wechat.platform_keys = [old]
        keeper = PlatformCertificateKeeper(margin=7 * 86400, refresh_every=30 * 86400, min_interval=60, clock=clock)
        client = wechat.client(keeper=keeper)
        await place(client, "T20260101000001")
        assert len(wechat.calls("/v3/certificates")) == 1
        clock.now += 2 * 86400
        await place(client, "T20260101000002")
        assert len(wechat.calls("/v3/certificates")) == 1  # 8 days left: not yet
        new = make_platform_key(0xA2, in_days(-1, clock.now), in_days(1800, clock.now), key_no=2)
        wechat.platform_keys.append(new)  # WeChat starts the rotation
        clock.now += 2 * 86400  # 6 days left: inside the margin
        await place(client, "T20260101000003")
        certs = wechat.calls("/v3/certificates")
        assert len(certs) == 2 and certs[1].headers["Wechatpay-Serial"] == old.serial  # checked with the old one
        assert keeper.knows(new.serial) and keeper.knows(old.serial)  # both trusted during the rotation
        assert wechat.calls("/native")[-1].headers["Wechatpay-Serial"] == new.serial  # replies now by the new one
        clock.now += 600
        await place(client, "T20260101000004")
        assert len(wechat.calls("/v3/certificates")) == 2  # the new one is far from expiry
        clock.now += 11 * 86400  # the old one has expired: still fine
        await place(client, "T20260101000005")
        assert len(wechat.calls("/v3/certificates")) == 2


async def test_an_unknown_serial_is_learnt_once_and_a_flood_causes_one_download():
    clock = Clock(1_800_000_000.0)
    async with WeChatV3(mode="platform", clock=clock) as wechat:
        keeper = PlatformCertificateKeeper(min_interval=60, clock=clock)
        client = wechat.client(keeper=keeper)
        await place(client)
        assert len(wechat.calls("/v3/certificates")) == 1
        clock.now += 120
        # WeChat rotates and signs with a certificate we have not downloaded yet
        new = make_platform_key(0xB2, in_days(-1, clock.now), in_days(1800, clock.now), key_no=2)
        wechat.platform_keys.append(new)
        wechat.fault("/out-trade-no/", "sign_with", key=new.private_key, serial=new.serial)
        assert (await client.query_by_out_trade_no("T20260101000001")).trade_state == "NOTPAY"
        assert len(wechat.calls("/v3/certificates")) == 2 and keeper.knows(new.serial)
        # a flood of replies under serials nobody serves: at most one download per min_interval
        clock.now += 120
        rogue = make_platform_key(0xC3, in_days(-1, clock.now), in_days(100, clock.now), key_no=3)
        wechat.fault("/out-trade-no/", "sign_with", key=rogue.private_key, serial=rogue.serial, times=40)
        results = await asyncio.gather(*(client.query_by_out_trade_no("T20260101000001") for _ in range(40)),
                                       return_exceptions=True)
        assert all(isinstance(r, e.VerificationError) and r.code == "unknown_serial" for r in results)
        assert len(wechat.calls("/v3/certificates")) == 3
        assert len(wechat.calls("/out-trade-no/")) == 41  # and no reply was retried


async def test_gray_switch_replies_and_notifies_under_either_key():
    clock = Clock(1_800_000_000.0)
    async with WeChatV3(mode="gray", clock=clock) as wechat:
        client = wechat.client()
        await place(client)  # replies signed with the public key, as asked
        platform = wechat.newest()
        wechat.fault("/out-trade-no/", "sign_with", key=platform.private_key, serial=platform.serial)
        assert (await client.query_by_out_trade_no("T20260101000001")).out_trade_no == "T20260101000001"
        cipher = ApiV3Cipher(APIV3_KEY)
        wechat.pay("T20260101000001")
        resource = cipher.encrypt_resource(json.dumps(wechat.orders["T20260101000001"]).encode(),
                                           associated_data="transaction", original_type="transaction")
        body = json.dumps({"id": "EV-1", "create_time": "2026-11-29T12:00:00+08:00", "resource_type": "encrypt-resource",
                           "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功", "resource": resource}).encode()
        for key, serial in ((wechat_key(), PUB_KEY_ID), (platform.private_key, platform.serial)):
            headers = wechatpay_headers(key, serial, body, timestamp=int(clock.now), nonce="N" * 32)
            event = await client.read_notify(headers, body)
            assert event.serial == serial and event.transaction.amount.total == 100


async def test_a_notify_under_a_new_platform_serial_is_learnt_once():
    clock = Clock(1_800_000_000.0)
    async with WeChatV3(mode="platform", clock=clock) as wechat:
        client = wechat.client(keeper=PlatformCertificateKeeper(min_interval=60, clock=clock))
        new = make_platform_key(0xD4, in_days(-1, clock.now), in_days(1800, clock.now), key_no=4)
        wechat.platform_keys.append(new)
        resource = ApiV3Cipher(APIV3_KEY).encrypt_resource(json.dumps({
            "mchid": MCHID, "out_trade_no": "T1", "out_refund_no": "R1", "refund_id": "5000", "refund_status": "CLOSED",
            "amount": {"total": 100, "refund": 10}}).encode(), associated_data="refund", original_type="refund")
        body = json.dumps({"id": "EV-2", "create_time": "2026-11-29T12:00:00+08:00", "event_type": "REFUND.CLOSED",
                           "resource": resource}).encode()
        headers = wechatpay_headers(new.private_key, new.serial, body, timestamp=int(clock.now), nonce="N" * 32)
        assert (await client.read_notify(headers, body)).refund.refund_status == "CLOSED"
        assert len(wechat.calls("/v3/certificates")) == 1
        bogus = wechatpay_headers(new.private_key, "0" * 40, body, timestamp=int(clock.now), nonce="N" * 32)
        for _ in range(20):
            with pytest.raises(e.VerificationError):
                await client.read_notify(bogus, body)
        assert len(wechat.calls("/v3/certificates")) == 1  # min_interval not reached: no download


async def test_a_failed_refresh_keeps_what_is_trusted():
    clock = Clock(1_800_000_000.0)
    async with WeChatV3(mode="platform", clock=clock) as wechat:
        keeper = PlatformCertificateKeeper(refresh_every=3600, clock=clock)
        client = wechat.client(keeper=keeper)
        await place(client)
        clock.now += 3600
        wechat.fault("/v3/certificates", "error", status=500, code="SYSTEM_ERROR", times=3)
        await place(client, "T20260101000002")  # the due refresh failed (logged); the call still goes through
        assert len(wechat.calls("/v3/certificates")) == 4 and keeper.knows(PLATFORM_SERIAL)
        await place(client, "T20260101000003")
        assert len(wechat.calls("/v3/certificates")) == 4  # not again before min_interval


def test_a_client_needs_a_way_to_verify():
    from wxpay.v3.signing import MerchantSigner as S

    from .vectors import merchant_key

    with pytest.raises(e.ConfigError) as exc:
        WxPayV3Client(S(MCHID, MERCHANT_SERIAL, merchant_key()), ApiV3Cipher(APIV3_KEY))
    assert "PUB_KEY_ID_" in exc.value.message


def test_one_client_serves_two_event_loops():
    """The download lock is per loop: a client built once and used by a second loop must still work."""
    from wxpay.transport import HttpResponse

    from .vectors import NOW, load, merchant_key

    reply = load("certificates-and-bills.json")["certificates_ok"]

    async def wechat(request):
        await asyncio.sleep(0.01)  # two refreshes overlap: the lock is contended
        return HttpResponse(200, reply["headers"], reply["body"].encode())

    client = WxPayV3Client(MerchantSigner(MCHID, MERCHANT_SERIAL, merchant_key()), ApiV3Cipher(APIV3_KEY),
                           certificates=PlatformCertificateKeeper(min_interval=0, clock=lambda: NOW),
                           transport=wechat, clock=lambda: NOW)
    async def twice() -> None:
        await asyncio.wait_for(asyncio.gather(client.refresh_certificates(), client.refresh_certificates()), 5)

    for _ in range(2):
        asyncio.run(twice())
    assert client.certificates.knows(PLATFORM_SERIAL)
