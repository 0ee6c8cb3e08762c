"""Every V3 request check, one test per rejection reason, over real HTTP (digest §2, §4, §5, §9).

Each refusal is WeChat's status and ``{code, message, detail?}`` and changes
nothing: the order book is the same afterwards.
"""
from __future__ import annotations

import json

import pytest

from wxpay.simulator import demo
from wxpay.simulator.config import SimConfig

from .pay_server import PREFIX, running_sim
from .v3_server import APP, MCH, OA, PLATFORM, PUB_ID, V3Merchant


@pytest.fixture
async def v3():
    async with running_sim() as srv:
        srv.merchant = V3Merchant(srv.base, lambda: srv.clock.now().timestamp(), prefix=PREFIX)
        yield srv


def order_body(**extra):
    body = {"appid": OA, "mchid": MCH, "description": "Demo shop-tea", "out_trade_no": "reject00001",
            "notify_url": "https://merchant.example.com/notify", "amount": {"total": 100, "currency": "CNY"}}
    body.update(extra)
    return {k: v for k, v in body.items() if v is not ...}


async def refused(srv, status: int, code: str, *args, **kw) -> dict:
    before = (len(srv.sim.pay.orders), len(srv.sim.pay.refunds))
    reply = await srv.merchant.call(*args, **kw)
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json
    assert body["code"] == code and body["message"]
    assert (len(srv.sim.pay.orders), len(srv.sim.pay.refunds)) == before  # a refusal changes nothing
    return body


# --- Authorization (401 SIGN_ERROR, told apart by the message) ---------------------------


async def test_missing_authorization(v3):
    body = await refused(v3, 401, "SIGN_ERROR", "POST", "/v3/pay/transactions/native", order_body(), authorization="")
    assert body["message"].startswith("Http头Authorization值格式错误")


async def test_malformed_authorization(v3):
    auth = v3.merchant.auth("GET", "/v3/certificates").replace(",", ", ")  # spaces after commas
    body = await refused(v3, 401, "SIGN_ERROR", "GET", "/v3/certificates", authorization=auth)
    assert body["message"].startswith("Http头Authorization值格式错误")


async def test_repeated_authorization_parameter(v3):
    auth = v3.merchant.auth("GET", "/v3/certificates") + ',mchid="1900000109"'
    await refused(v3, 401, "SIGN_ERROR", "GET", "/v3/certificates", authorization=auth)


async def test_wrong_scheme(v3):
    auth = v3.merchant.auth("GET", "/v3/certificates").replace("WECHATPAY2-SHA256-RSA2048", "WECHATPAY2-SHA256-RSA", 1)
    body = await refused(v3, 401, "SIGN_ERROR", "GET", "/v3/certificates", authorization=auth)
    assert body["message"] == "Http头Authorization认证类型不正确"


async def test_unknown_mchid(v3):
    other = V3Merchant(v3.base, lambda: v3.clock.now().timestamp(), mchid="1999999999")
    reply = await other.call("GET", "/v3/certificates")
    assert (reply.status, reply.json["code"]) == (400, "MCH_NOT_EXISTS")


async def test_wrong_merchant_serial(v3):
    other = V3Merchant(v3.base, lambda: v3.clock.now().timestamp(), serial="0" * 40)
    v3.merchant = other
    body = await refused(v3, 401, "SIGN_ERROR", "GET", "/v3/certificates")
    assert body["message"].startswith("商户证书序列号有误")


async def test_signed_with_another_key(v3, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    v3.merchant = V3Merchant(v3.base, lambda: v3.clock.now().timestamp(), key_pem=pem)
    body = await refused(v3, 401, "SIGN_ERROR", "GET", f"/v3/pay/transactions/out-trade-no/x123456?mchid={MCH}")
    info = body["detail"]["sign_information"]
    assert body["message"] == "错误的签名，验签失败" and body["detail"]["issue"] == "sign not match"
    assert info["method"] == "GET" and info["url"] == f"/v3/pay/transactions/out-trade-no/x123456?mchid={MCH}"
    assert info["truncated_sign_message"].startswith("GET\n/v3/pay/transactions/out-trade-no/x123456")
    assert info["sign_message_length"] > 0


async def test_body_reserialised_after_signing(v3):
    body = json.dumps(order_body()).encode()  # sent with spaces, signed compact
    auth = v3.merchant.auth("POST", "/v3/pay/transactions/native",
                            json.dumps(order_body(), separators=(",", ":")).encode())
    await refused(v3, 401, "SIGN_ERROR", "POST", "/v3/pay/transactions/native", raw=body, authorization=auth)


async def test_query_string_not_the_one_signed(v3):
    auth = v3.merchant.auth("GET", f"/v3/pay/transactions/out-trade-no/x123456?mchid={MCH}")
    await refused(v3, 401, "SIGN_ERROR", "GET", f"/v3/pay/transactions/out-trade-no/x123456?mchid={MCH}&a=1",
                  authorization=auth)


@pytest.mark.parametrize("offset", [-301, 301])
async def test_timestamp_outside_five_minutes(v3, offset):
    ts = int(v3.clock.now().timestamp()) + offset
    auth = v3.merchant.auth("GET", "/v3/certificates", timestamp=ts)
    body = await refused(v3, 401, "SIGN_ERROR", "GET", "/v3/certificates", authorization=auth)
    assert body["message"] == "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"


@pytest.mark.parametrize("offset", [-300, 300])
async def test_timestamp_at_five_minutes_is_accepted(v3, offset):
    ts = int(v3.clock.now().timestamp()) + offset
    reply = await v3.merchant.call("GET", "/v3/certificates", authorization=v3.merchant.auth(
        "GET", "/v3/certificates", timestamp=ts))
    assert reply.status == 404 and reply.json["code"] == "RESOURCE_NOT_EXISTS"  # past the signature checks


async def test_merchant_without_v3_credentials(v3):
    from dataclasses import replace
    config = v3.sim.config
    v2_only = replace(config.merchants[0], mch_id="1230000109", v3=None)
    async with running_sim(sim_config=replace(config, merchants=config.merchants + (v2_only,))) as srv:
        other = V3Merchant(srv.base, lambda: srv.clock.now().timestamp(), mchid="1230000109")
        reply = await other.call("GET", "/v3/certificates")
        assert (reply.status, reply.json["code"], reply.json["message"]) == (401, "SIGN_ERROR", "商户未设置APIv3密钥。")


# --- Wechatpay-Serial (400 INVALID_REQUEST for a value the merchant has no key for) -----


async def test_unknown_wechatpay_serial_header(v3):
    body = await refused(v3, 400, "INVALID_REQUEST", "GET", "/v3/certificates", serial_header="PUB_KEY_ID_0999")
    assert body["detail"]["location"] == "header"


async def test_platform_serial_header_for_a_public_key_merchant(v3):
    await refused(v3, 400, "INVALID_REQUEST", "GET", "/v3/certificates", serial_header=PLATFORM)


async def test_public_key_header_for_a_platform_certificate_merchant(v3):
    v3.sim.v3.keyring(MCH).set_mode("platform_cert")
    await refused(v3, 400, "INVALID_REQUEST", "GET", "/v3/certificates", serial_header=PUB_ID)


# --- bodies ------------------------------------------------------------------------------


async def test_json_null_refused(v3):
    body = await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", order_body(attach=None))
    assert body["detail"]["field"] == "/attach" and "null" in body["detail"]["issue"]


async def test_nested_json_null_refused_where_no_field_rule_looks(v3):
    body = await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native",
                         order_body(detail={"cost_price": 100, "invoice_id": None}))
    assert body["detail"]["field"] == "/detail/invoice_id" and "null" in body["detail"]["issue"]


async def test_four_byte_utf8_refused(v3):
    body = await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native",
                         order_body(description="Demo tea \U0001F375"))
    assert body["detail"]["field"] == "/description"


async def test_three_byte_utf8_accepted(v3):
    reply = await v3.merchant.call("POST", "/v3/pay/transactions/native", order_body(description="形象店-QQ公仔 ✓"))
    assert reply.status == 200 and reply.signed


async def test_body_not_json(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", raw=b"<xml></xml>")


async def test_body_not_utf8(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", raw=b'{"a":"\xff"}')


async def test_body_repeats_a_key(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native",
                  raw=b'{"mchid":"1900000109","mchid":"1900000109"}')


async def test_body_too_large(v3):
    await refused(v3, 400, "INVALID_REQUEST", "POST", "/v3/pay/transactions/native",
                  order_body(attach="x" * 70000))


async def test_header_mchid_differs_from_body_mchid(v3):
    body = await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", order_body(mchid="1230000109"))
    assert body["message"] == "http header中的mchid与post payload中的mchid不匹配"


async def test_query_mchid_differs_from_header(v3):
    await refused(v3, 400, "PARAM_ERROR", "GET", "/v3/pay/transactions/out-trade-no/x123456?mchid=1230000109")


async def test_query_without_mchid(v3):
    await refused(v3, 400, "PARAM_ERROR", "GET", "/v3/pay/transactions/out-trade-no/x123456")


# --- orders ----------------------------------------------------------------------------


async def test_appid_not_bound_to_mchid(v3):
    await refused(v3, 400, "APPID_MCHID_NOT_MATCH", "POST", "/v3/pay/transactions/native",
                  order_body(appid="wx9999999999999999"))


async def test_app_order_needs_a_mobile_app_appid(v3):
    await refused(v3, 400, "INVALID_REQUEST", "POST", "/v3/pay/transactions/app", order_body())


async def test_jsapi_openid_of_another_app(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/jsapi",
                  order_body(payer={"openid": v3.openid("alice", demo.MINI_PROGRAM_APPID)}))


async def test_jsapi_without_payer(v3):
    body = await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/jsapi", order_body())
    assert body["detail"]["field"] == "/payer"


async def test_h5_without_scene_info(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/h5", order_body())


@pytest.mark.parametrize("missing", ["appid", "description", "out_trade_no", "notify_url", "amount"])
async def test_required_field_missing(v3, missing):
    body = await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", order_body(**{missing: ...}))
    assert body["detail"]["field"] == "/" + missing


@pytest.mark.parametrize("url", [
    "http://merchant.example.com/notify",        # https only (plain http only for loopback in the sandbox)
    "https://merchant.example.com/notify?a=1",   # no query string
    "https://merchant.example.com/notify#x",
    "/relative/notify",
    "https://merchant.example.com/" + "n" * 250,  # over 255
])
async def test_notify_url_rules(v3, url):
    body = await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", order_body(notify_url=url))
    assert body["detail"]["field"] == "/notify_url"


@pytest.mark.parametrize("no", ["abc12", "a" * 33, "order|0001", "order@0001", "订单000001"])
async def test_out_trade_no_rules(v3, no):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", order_body(out_trade_no=no))


@pytest.mark.parametrize("amount", [{"total": 0}, {"total": -1}, {"total": 1.5}, {"total": "100"}, {"total": True},
                                    {"total": 100, "currency": "USD"}, {}])
async def test_amount_rules(v3, amount):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", order_body(amount=amount))


async def test_time_expire_malformed(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native",
                  order_body(time_expire="2026-01-05 12:00:00"))


async def test_time_expire_too_soon(v3):
    await refused(v3, 400, "INVALID_REQUEST", "POST", "/v3/pay/transactions/native",
                  order_body(time_expire="2026-01-05T10:00:30+08:00"))  # the clock is 10:00:00 China time


async def test_description_over_127_bytes(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/pay/transactions/native", order_body(description="茶" * 43))


async def test_out_trade_no_reused_with_other_content(v3):
    assert (await v3.merchant.call("POST", "/v3/pay/transactions/native", order_body())).status == 200
    again = await v3.merchant.call("POST", "/v3/pay/transactions/native", order_body())
    assert again.status == 200  # same content: the same order, the same code_url
    await refused(v3, 403, "OUT_TRADE_NO_USED", "POST", "/v3/pay/transactions/native",
                  order_body(amount={"total": 101}))


async def test_reorder_of_a_paid_order(v3):
    await v3.merchant.call("POST", "/v3/pay/transactions/native", order_body())
    v3.sim.pay.pay(v3.sim.pay.order(MCH, "reject00001"), "ok")
    await refused(v3, 403, "ORDERPAID", "POST", "/v3/pay/transactions/native", order_body())
    await refused(v3, 403, "ORDERPAID", "POST", "/v3/pay/transactions/out-trade-no/reject00001/close", {"mchid": MCH})


async def test_reorder_and_close_of_a_closed_order(v3):
    await v3.merchant.call("POST", "/v3/pay/transactions/native", order_body())
    closed = await v3.merchant.call("POST", "/v3/pay/transactions/out-trade-no/reject00001/close", {"mchid": MCH})
    assert closed.status == 204 and closed.body == b"" and closed.signed
    await refused(v3, 400, "ORDER_CLOSED", "POST", "/v3/pay/transactions/native", order_body())
    await refused(v3, 400, "ORDER_CLOSED", "POST", "/v3/pay/transactions/out-trade-no/reject00001/close",
                  {"mchid": MCH})


async def test_query_and_close_of_an_unknown_order(v3):
    await refused(v3, 404, "ORDER_NOT_EXIST", "GET", f"/v3/pay/transactions/out-trade-no/nosuch0001?mchid={MCH}")
    await refused(v3, 404, "ORDER_NOT_EXIST", "GET", f"/v3/pay/transactions/id/4200000000000000?mchid={MCH}")
    await refused(v3, 404, "ORDER_NOT_EXIST", "POST", "/v3/pay/transactions/out-trade-no/nosuch0001/close",
                  {"mchid": MCH})


# --- refunds ---------------------------------------------------------------------------


async def paid_order(v3, no: str = "refund00001", total: int = 100) -> None:
    await v3.merchant.call("POST", "/v3/pay/transactions/native", order_body(out_trade_no=no, amount={"total": total}))
    assert v3.sim.pay.pay(v3.sim.pay.order(MCH, no), "ok")


def refund_body(**extra):
    body = {"out_trade_no": "refund00001", "out_refund_no": "R0001", "amount": {"refund": 30, "total": 100,
                                                                                 "currency": "CNY"}}
    body.update(extra)
    return {k: v for k, v in body.items() if v is not ...}


async def test_refund_of_an_unknown_or_unpaid_order(v3):
    await refused(v3, 404, "RESOURCE_NOT_EXISTS", "POST", "/v3/refund/domestic/refunds", refund_body())
    await v3.merchant.call("POST", "/v3/pay/transactions/native", order_body(out_trade_no="refund00001"))
    await refused(v3, 404, "RESOURCE_NOT_EXISTS", "POST", "/v3/refund/domestic/refunds", refund_body())


async def test_refund_needs_an_order_id(v3):
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/refund/domestic/refunds", refund_body(out_trade_no=...))


async def test_refund_total_must_be_the_orders(v3):
    await paid_order(v3)
    await refused(v3, 400, "INVALID_REQUEST", "POST", "/v3/refund/domestic/refunds",
                  refund_body(amount={"refund": 30, "total": 99}))


async def test_refunds_never_exceed_the_total(v3):
    await paid_order(v3)
    first = await v3.merchant.call("POST", "/v3/refund/domestic/refunds", refund_body(amount={"refund": 70,
                                                                                              "total": 100}))
    assert first.status == 200 and first.signed
    await refused(v3, 400, "INVALID_REQUEST", "POST", "/v3/refund/domestic/refunds",
                  refund_body(out_refund_no="R0002", amount={"refund": 31, "total": 100}))
    ok = await v3.merchant.call("POST", "/v3/refund/domestic/refunds",
                                refund_body(out_refund_no="R0002", amount={"refund": 30, "total": 100}))
    assert ok.status == 200


async def test_out_refund_no_is_idempotent(v3):
    await paid_order(v3)
    first = await v3.merchant.call("POST", "/v3/refund/domestic/refunds", refund_body())
    again = await v3.merchant.call("POST", "/v3/refund/domestic/refunds", refund_body())
    assert first.json["refund_id"] == again.json["refund_id"] and len(v3.sim.pay.refunds) == 1
    assert v3.sim.pay.order(MCH, "refund00001").refunded_fee == 30
    await refused(v3, 400, "INVALID_REQUEST", "POST", "/v3/refund/domestic/refunds",
                  refund_body(amount={"refund": 31, "total": 100}))


async def test_at_most_fifty_refunds(v3):
    await paid_order(v3, total=100)
    for n in range(50):
        reply = await v3.merchant.call("POST", "/v3/refund/domestic/refunds",
                                       refund_body(out_refund_no=f"R{n:04d}", amount={"refund": 1, "total": 100}))
        assert reply.status == 200
    await refused(v3, 400, "INVALID_REQUEST", "POST", "/v3/refund/domestic/refunds",
                  refund_body(out_refund_no="R0050", amount={"refund": 1, "total": 100}))


async def test_refund_not_enough_by_fault(v3):
    await paid_order(v3)
    v3.sim.faults.add("v3/refund/domestic/refunds", "not_enough")
    await refused(v3, 403, "NOT_ENOUGH", "POST", "/v3/refund/domestic/refunds", refund_body())
    assert (await v3.merchant.call("POST", "/v3/refund/domestic/refunds", refund_body())).status == 200


@pytest.mark.parametrize("change", [{"out_refund_no": "R 0001"}, {"funds_account": "BASIC"},
                                    {"notify_url": "http://merchant.example.com/r"}, {"reason": "原因" * 14},
                                    {"amount": {"refund": 0, "total": 100}}])
async def test_refund_field_rules(v3, change):
    await paid_order(v3)
    await refused(v3, 400, "PARAM_ERROR", "POST", "/v3/refund/domestic/refunds", refund_body(**change))


async def test_refund_query_of_an_unknown_refund(v3):
    await refused(v3, 404, "RESOURCE_NOT_EXISTS", "GET", "/v3/refund/domestic/refunds/NOSUCH")


# --- bills ------------------------------------------------------------------------------


async def test_bill_parameter_rules(v3):
    for path in ("/v3/bill/tradebill?bill_date=20260104", "/v3/bill/tradebill?bill_date=2026-02-30",
                 "/v3/bill/tradebill?bill_date=2026-01-04&bill_type=NONE",
                 "/v3/bill/tradebill?bill_date=2026-01-04&tar_type=ZIP",
                 "/v3/bill/fundflowbill?bill_date=2026-01-04&account_type=OTHER"):
        await refused(v3, 400, "PARAM_ERROR", "GET", path)


async def test_bill_not_ready_or_empty(v3):
    await refused(v3, 400, "NO_STATEMENT_EXIST", "GET", "/v3/bill/tradebill?bill_date=2026-01-04")  # no trade
    await refused(v3, 400, "NO_STATEMENT_EXIST", "GET", "/v3/bill/tradebill?bill_date=2026-01-05")  # today
    v3.clock.advance(hours=-2)  # 08:00 China time: yesterday's bill is still being made
    await refused(v3, 400, "STATEMENT_CREATING", "GET", "/v3/bill/tradebill?bill_date=2026-01-04")


async def bill_url(v3) -> str:
    await paid_order(v3)
    v3.clock.advance(days=1)
    step1 = await v3.merchant.call("GET", "/v3/bill/tradebill?bill_date=2026-01-05")
    assert step1.status == 200 and step1.signed
    return step1.json["download_url"][len(v3.base):]


async def test_bill_download_after_the_token_expired(v3):
    path = await bill_url(v3)
    v3.clock.advance(minutes=5)
    await refused(v3, 400, "INVALID_REQUEST", "GET", path)


async def test_bill_download_by_another_merchant():
    from dataclasses import replace
    base = SimConfig.demo(notify_time_scale=100000.0)
    twin = replace(base.merchants[0], mch_id="1230000109")  # its own mchid, the demo keys
    async with running_sim(sim_config=replace(base, merchants=base.merchants + (twin,))) as srv:
        srv.merchant = V3Merchant(srv.base, lambda: srv.clock.now().timestamp(), prefix=PREFIX)
        path = await bill_url(srv)
        srv.merchant = V3Merchant(srv.base, lambda: srv.clock.now().timestamp(), mchid="1230000109")
        await refused(srv, 403, "NO_AUTH", "GET", path)


async def test_bill_download_needs_a_valid_signature(v3):
    path = await bill_url(v3)
    await refused(v3, 401, "SIGN_ERROR", "GET", path, authorization=v3.merchant.auth("GET", path + "x"))


async def test_unknown_v3_path_and_method(v3):
    await refused(v3, 404, "RESOURCE_NOT_EXISTS", "GET", "/v3/pay/transactions/unknownkind")
    reply = await v3.merchant.call("DELETE", "/v3/certificates")
    assert reply.status == 405 and reply.json["code"] == "INVALID_REQUEST"
