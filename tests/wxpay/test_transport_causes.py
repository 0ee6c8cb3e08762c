"""Why a call to WeChat failed, named by the transport from what each of
Tornado's clients reports, against real sockets on 127.0.0.1 (no network:
the unresolvable name is a ``.invalid`` one, which fails locally)."""
from __future__ import annotations

import pytest

from wxpay import causes
from wxpay import errors as e
from wxpay.transport import HttpRequest, TornadoTransport

from . import wire_faults as wf


@pytest.fixture(params=["curl", "simple"])
def transport(request):
    t = TornadoTransport(client=request.param)
    yield t
    t.close()


def get(url: str, **kw) -> HttpRequest:
    kw.setdefault("connect_timeout", 3)
    kw.setdefault("request_timeout", 5)
    return HttpRequest("POST", url, {"Content-Type": "text/xml"}, b"<xml></xml>", **kw)


async def failure(transport: TornadoTransport, request: HttpRequest) -> e.WxPayError:
    with pytest.raises(e.WxPayError) as info:
        await transport.send(request)
    return info.value


async def test_a_closed_port_is_refused(transport):
    port = wf.closed_port()
    err = await failure(transport, get(f"http://127.0.0.1:{port}/pay/orderquery"))
    assert (type(err), err.cause, err.host) == (e.TransportError, causes.REFUSED, f"127.0.0.1:{port}")
    assert err.retryable
    assert "refused" in err.message.lower()


async def test_a_name_that_does_not_resolve_is_dns(transport):
    err = await failure(transport, get("https://api.mch.wxpay-test.invalid/pay/orderquery"))
    assert (err.cause, err.host) == (causes.DNS, "api.mch.wxpay-test.invalid")
    assert isinstance(err, e.TransportError) and not isinstance(err, e.WxTimeoutError)


async def test_a_self_signed_certificate_is_tls_certificate_and_not_retried(transport, tmp_path):
    context, _cert = wf.tls_context(tmp_path)
    with wf.tls_server(context) as port:
        err = await failure(transport, get(f"https://127.0.0.1:{port}/pay/orderquery"))
    assert (err.cause, err.host) == (causes.TLS_CERTIFICATE, f"127.0.0.1:{port}")
    assert not err.retryable


async def test_a_certificate_for_another_name_is_tls_certificate(transport, tmp_path):
    context, cert = wf.tls_context(tmp_path)  # valid for wechat.test and 127.0.0.1, trusted below
    trusting = TornadoTransport(client=transport.client, ca_certs=str(cert))
    try:
        with wf.tls_server(context) as port:
            assert (await trusting.send(get(f"https://127.0.0.1:{port}/x"))).body == b"ok"
            err = await failure(trusting, get(f"https://localhost:{port}/x"))
    finally:
        trusting.close()
    assert err.cause == causes.TLS_CERTIFICATE


async def test_a_server_that_wants_a_client_certificate_is_tls_client_certificate(transport, tmp_path):
    context, cert = wf.tls_context(tmp_path, require_client_cert=True)
    trusting = TornadoTransport(client=transport.client, ca_certs=str(cert))
    try:
        with wf.tls_server(context) as port:
            err = await failure(trusting, get(f"https://127.0.0.1:{port}/secapi/pay/refund"))
    finally:
        trusting.close()
    assert err.cause == causes.TLS_CLIENT_CERTIFICATE
    assert not err.retryable


async def test_a_client_certificate_that_is_not_pem_is_tls_client_certificate(transport, tmp_path):
    context, cert = wf.tls_context(tmp_path, require_client_cert=True)
    junk = tmp_path / "apiclient_cert.pem"
    junk.write_text("not a certificate\n")
    trusting = TornadoTransport(client=transport.client, ca_certs=str(cert))
    try:
        with wf.tls_server(context) as port:
            err = await failure(trusting, get(f"https://127.0.0.1:{port}/x", client_cert=str(junk), client_key=str(junk)))
    finally:
        trusting.close()
    assert err.cause == causes.TLS_CLIENT_CERTIFICATE and not err.retryable


async def test_a_missing_client_certificate_file_is_named_before_any_connection(transport, tmp_path):
    err = await failure(transport, get(f"http://127.0.0.1:{wf.closed_port()}/x", client_cert=str(tmp_path / "nope.pem")))
    assert isinstance(err, e.ConfigError)
    assert err.cause == causes.TLS_CLIENT_CERTIFICATE and "nope.pem" in err.message


async def test_a_server_that_never_answers_is_read_timeout(transport):
    async with wf.serve(wf.silent) as port:
        err = await failure(transport, get(f"http://127.0.0.1:{port}/pay/orderquery", request_timeout=0.3))
    assert isinstance(err, e.WxTimeoutError)
    assert (err.cause, err.host) == (causes.READ_TIMEOUT, f"127.0.0.1:{port}")


async def test_a_connection_nobody_accepts_is_connect_timeout(transport):
    with wf.full_backlog() as port:
        err = await failure(transport, get(f"http://127.0.0.1:{port}/pay/orderquery", connect_timeout=0.3))
    assert isinstance(err, e.WxTimeoutError)
    assert err.cause == causes.CONNECT_TIMEOUT


async def test_http_502_is_its_status(transport):
    async with wf.serve(wf.bad_gateway) as port:
        err = await failure(transport, get(f"http://127.0.0.1:{port}/pay/orderquery"))
    assert (type(err), err.cause, err.status) == (e.TransportError, "http_502", 502)
    assert err.retryable and err.host == f"127.0.0.1:{port}"


async def test_a_reset_connection_is_reset(transport):
    async with wf.serve(wf.reset) as port:
        err = await failure(transport, get(f"http://127.0.0.1:{port}/pay/orderquery"))
    assert err.cause == causes.RESET and err.retryable


async def test_a_server_that_hangs_up_is_closed(transport):
    async with wf.serve(wf.hang_up) as port:
        err = await failure(transport, get(f"http://127.0.0.1:{port}/pay/orderquery"))
    assert err.cause == causes.CLOSED


async def test_an_answer_that_is_not_http(transport):
    """curl says so; Tornado's simple client only sees the stream close."""
    async with wf.serve(wf.not_http) as port:
        err = await failure(transport, get(f"http://127.0.0.1:{port}/pay/orderquery"))
    assert err.cause == (causes.MALFORMED_REPLY if transport.client == "curl" else causes.CLOSED)


async def test_no_query_string_in_the_message_or_the_host(transport):
    port = wf.closed_port()
    err = await failure(transport, get(f"http://127.0.0.1:{port}/sns/oauth2/access_token?secret=S3CRETVALUE&code=C0DE"))
    assert err.cause == causes.REFUSED
    for text in (err.message, err.host, str(err)):
        assert "S3CRETVALUE" not in text and "C0DE" not in text


def test_every_cause_has_a_hint():
    for cause in causes.CAUSES:
        assert causes.hint(cause), cause
    assert "502" in causes.hint("http_502") and "404" in causes.hint("http_404")
    assert causes.hint("no_such_cause") == ""
