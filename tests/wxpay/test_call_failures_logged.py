"""A failed WeChat call is logged once at INFO (endpoint, host, cause,
latency, attempts), each attempt at DEBUG, and reported to the observer
with its cause: V2, V3 and the Official Account clients alike, over real
sockets on 127.0.0.1 and both of Tornado's clients."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

from wxpay import causes
from wxpay import errors as e
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.merchant import Merchant
from wxpay.oauth import OAuthClient
from wxpay.retry import RetryPolicy
from wxpay.transport import CallRecord, TornadoTransport

from . import wire_faults as wf
from .replies import API_KEY, APPID, MCH_ID, load

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=False)
SECRET = "AppSecretNeverLogged000000000001"
CODE = "OAuthCodeNeverLogged01"


@pytest.fixture(params=["curl", "simple"])
def transport(request):
    t = TornadoTransport(client=request.param)
    yield t
    t.close()


def v2(transport, base: str, records: list[CallRecord]) -> WxPayClient:
    merchant = Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID)
    return WxPayClient(merchant, transport=transport, endpoints=Endpoints.single(base), retry=FAST,
                       observer=records.append, connect_timeout=2, request_timeout=3)


def lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("wxpay")]


async def test_v2_query_refused_three_attempts_one_info_line(transport, caplog):
    caplog.set_level(logging.DEBUG)
    port = wf.closed_port()
    records: list[CallRecord] = []
    with pytest.raises(e.TransportError):
        await v2(transport, f"http://127.0.0.1:{port}/_wechat", records).order_query(out_trade_no="1415757673")
    assert [(r.endpoint, r.ok, r.cause, r.host) for r in records] == [("orderquery", False, "refused", f"127.0.0.1:{port}")] * 3
    assert all(r.detail and "refused" in r.detail.lower() for r in records)
    [info] = lines(caplog, logging.INFO)
    assert info.startswith("wechat orderquery failed: cause=refused ")
    assert f"host=127.0.0.1:{port}" in info and "attempts=3" in info and "latency=" in info
    debug = [line for line in lines(caplog, logging.DEBUG) if "attempt failed" in line]
    assert len(debug) == 3 and all("cause=refused" in line for line in debug)


async def test_v2_a_502_then_an_answer_is_one_info_line_saying_so(transport, caplog):
    caplog.set_level(logging.INFO)
    served = []

    async def flaky(reader, writer):
        served.append(1)
        if len(served) == 1:
            await wf.bad_gateway(reader, writer)
            return
        await reader.readuntil(b"\r\n\r\n")
        body = load("orderquery_paid.xml")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    records: list[CallRecord] = []
    async with wf.serve(flaky) as port:
        result = await v2(transport, f"http://127.0.0.1:{port}/_wechat", records).order_query(out_trade_no="1415757673")
    assert result.paid
    assert [(r.ok, r.cause) for r in records] == [(False, "http_502"), (True, None)]
    [info] = lines(caplog, logging.INFO)
    assert info.startswith("wechat orderquery ok after 2 attempts: ") and "cause=http_502" in info


async def test_v2_refund_over_tls_without_a_usable_certificate_is_not_retried(transport, caplog, tmp_path):
    caplog.set_level(logging.INFO)
    context, cert = wf.tls_context(tmp_path, require_client_cert=True)
    junk = tmp_path / "apiclient_key.pem"
    junk.write_text("-----BEGIN NOTHING-----\n")
    merchant = Merchant(MCH_ID, API_KEY, APPID, "MD5", str(junk), str(junk))
    trusting = TornadoTransport(client=transport.client, ca_certs=str(cert))
    records: list[CallRecord] = []
    try:
        with wf.tls_server(context) as port:
            client = WxPayClient(merchant, transport=trusting, endpoints=Endpoints.single(f"https://127.0.0.1:{port}"),
                                 retry=FAST, observer=records.append)
            with pytest.raises(e.TransportError):
                await client.refund(out_refund_no="R100001", out_trade_no="T100001", total_fee=100, refund_fee=100, retry=True)
    finally:
        trusting.close()
    assert [(r.endpoint, r.cause) for r in records] == [("refund", "tls_client_certificate")]
    [info] = lines(caplog, logging.INFO)
    assert "wechat refund failed: cause=tls_client_certificate" in info and "attempts=1" in info


async def test_v3_query_answered_502_is_http_502(transport, caplog):
    from tests.simulator.v3_ours import Calls, our_client

    caplog.set_level(logging.INFO)
    calls = Calls()
    async with wf.serve(wf.bad_gateway) as port:
        client = our_client(f"http://127.0.0.1:{port}", time.time, calls=calls, transport=transport)
        with pytest.raises(e.TransportError) as info:
            await client.query_by_out_trade_no("T100001")
    assert info.value.cause == "http_502"
    endpoint = calls.records[0].endpoint
    assert [(r.endpoint, r.cause, r.host) for r in calls.records] == [(endpoint, "http_502", f"127.0.0.1:{port}")] * 3
    [line] = lines(caplog, logging.INFO)
    assert line.startswith(f"wechat {endpoint} failed: cause=http_502 host=127.0.0.1:{port} ") and "attempts=3" in line


async def test_v3_query_refused_is_refused(transport, caplog):
    from tests.simulator.v3_ours import Calls, our_client

    caplog.set_level(logging.INFO)
    calls = Calls()
    client = our_client(f"http://127.0.0.1:{wf.closed_port()}", time.time, calls=calls, transport=transport)
    with pytest.raises(e.TransportError):
        await client.query_by_out_trade_no("T100001")
    assert {r.cause for r in calls.records} == {causes.REFUSED}
    [line] = lines(caplog, logging.INFO)
    assert "failed: cause=refused" in line


async def test_oauth_timeout_logs_no_secret_and_no_code(transport, caplog):
    caplog.set_level(logging.DEBUG)
    records: list[CallRecord] = []
    async with wf.serve(wf.silent) as port:
        client = OAuthClient(APPID, SECRET, transport=transport, endpoints=Endpoints.single(f"http://127.0.0.1:{port}"),
                             observer=records.append, request_timeout=0.3)
        with pytest.raises(e.WxTimeoutError) as info:
            await client.exchange_code(CODE)
    assert info.value.cause == causes.READ_TIMEOUT
    assert [(r.endpoint, r.cause) for r in records] == [("sns/oauth2/access_token", "read_timeout")]
    [line] = lines(caplog, logging.INFO)
    assert line.startswith("wechat sns/oauth2/access_token failed: cause=read_timeout ")
    everything = "\n".join(r.getMessage() for r in caplog.records) + repr(records)
    assert SECRET not in everything and CODE not in everything


async def test_a_cancelled_call_logs_nothing_at_info(transport, caplog):
    caplog.set_level(logging.INFO)
    async with wf.serve(wf.silent) as port:
        call = asyncio.ensure_future(v2(transport, f"http://127.0.0.1:{port}", []).order_query(out_trade_no="1415757673"))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert lines(caplog, logging.INFO) == []
