"""TornadoTransport against real Tornado servers on 127.0.0.1."""
from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
from pathlib import Path

import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

from wxpay import errors as e
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.merchant import Merchant
from wxpay.transport import FunctionTransport, HttpRequest, HttpResponse, TornadoTransport, as_transport

from .replies import API_KEY, APPID, MCH_ID, load


@pytest.fixture(autouse=True, params=["curl", "simple"])
def http_client(request, monkeypatch):
    """Every test here runs on both of Tornado's clients: curl (kept-alive
    connections, the default) and simple (where pycurl is missing)."""
    original = TornadoTransport.__init__

    def init(self, **kw):
        kw.setdefault("client", request.param)
        original(self, **kw)

    monkeypatch.setattr(TornadoTransport, "__init__", init)
    return request.param


class Echo(RequestHandler):
    def post(self):
        self.set_header("X-Seen-Type", self.request.headers.get("Content-Type", ""))
        self.write(self.request.body)


class Status(RequestHandler):
    def get(self, code):
        self.set_status(int(code))
        self.write("status page")


class Stall(RequestHandler):
    async def get(self):
        await self.application.settings["release"].wait()
        self.write("late")


class Big(RequestHandler):
    def get(self):
        self.write(b"x" * 5000)


class OrderQuery(RequestHandler):
    def post(self):
        self.set_header("Content-Type", "text/xml")
        self.write(load("orderquery_paid.xml"))


class Peer(RequestHandler):
    def post(self):
        self.write(str(self.request.connection.stream.socket.getpeername()[1]))


class WhoAmI(RequestHandler):
    def get(self):
        cert = self.request.get_ssl_certificate()
        subject = dict(pair[0] for pair in cert["subject"]) if cert else {}
        self.write(subject.get("commonName", "anonymous"))


async def serve(app: Application, ssl_options=None):
    sock, port = bind_unused_port()
    server = HTTPServer(app, ssl_options=ssl_options)
    server.add_sockets([sock])
    return server, port


@pytest.fixture
async def base():
    release = asyncio.Event()
    app = Application(
        [(r"/echo", Echo), (r"/status/(\d+)", Status), (r"/stall", Stall), (r"/big", Big),
         (r"/_wechat/pay/orderquery", OrderQuery), (r"/peer", Peer)],
        release=release,
    )
    server, port = await serve(app)
    yield f"http://127.0.0.1:{port}"
    release.set()
    server.stop()
    await server.close_all_connections()


def req(url: str, method: str = "GET", body: bytes | None = None, **kw) -> HttpRequest:
    return HttpRequest(method=method, url=url, headers={"Content-Type": "text/xml"}, body=body, **kw)


async def test_round_trip(base):
    response = await TornadoTransport().send(req(f"{base}/echo", "POST", b"<xml></xml>"))
    assert response.status == 200
    assert response.body == b"<xml></xml>"
    assert response.header("x-seen-type") == "text/xml"


async def test_curl_keeps_the_connection_for_the_next_call(base, http_client):
    transport = TornadoTransport()
    try:
        ports = {(await transport.send(req(f"{base}/peer", "POST", b"<xml></xml>"))).body for _ in range(5)}
    finally:
        transport.close()
    assert len(ports) == (1 if http_client == "curl" else 5)


async def test_no_query_or_body_in_the_clients_debug_log(base, caplog):
    """At DEBUG Tornado's curl client logs each URL and curl's own trace."""
    caplog.set_level(logging.DEBUG)
    transport = TornadoTransport()
    try:
        await transport.send(req(f"{base}/echo?secret=S3CRETVALUE&code=C0DEVALUE", "POST", b"<xml>B0DYVALUE</xml>"))
    finally:
        transport.close()
    # (tornado.access is the test server's own log, not the client's)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name != "tornado.access")
    for secret in ("S3CRETVALUE", "C0DEVALUE", "B0DYVALUE"):
        assert secret not in text


async def test_timeout_is_wx_timeout_error(base):
    with pytest.raises(e.WxTimeoutError) as info:
        await TornadoTransport().send(req(f"{base}/stall", request_timeout=0.2))
    assert info.value.retryable


async def test_http_500_is_retryable_transport_error(base):
    with pytest.raises(e.TransportError) as info:
        await TornadoTransport().send(req(f"{base}/status/500"))
    assert info.value.status == 500 and info.value.retryable
    assert not isinstance(info.value, e.WxTimeoutError)


async def test_http_404_is_not_retryable(base):
    with pytest.raises(e.TransportError) as info:
        await TornadoTransport().send(req(f"{base}/status/404"))
    assert info.value.status == 404 and not info.value.retryable


async def test_connection_refused_is_transport_error():
    sock, port = bind_unused_port()
    sock.close()  # nothing listens there now
    with pytest.raises(e.TransportError) as info:
        await TornadoTransport().send(req(f"http://127.0.0.1:{port}/pay/orderquery", connect_timeout=2))
    assert not isinstance(info.value, e.WxTimeoutError)
    assert info.value.retryable


async def test_oversized_reply_is_refused(base):
    with pytest.raises(e.MessageTooLargeError):
        await TornadoTransport(max_response_bytes=1000).send(req(f"{base}/big"))
    ok = await TornadoTransport(max_response_bytes=5000).send(req(f"{base}/big"))
    assert len(ok.body) == 5000


async def test_missing_certificate_file_is_config_error(base, tmp_path):
    with pytest.raises(e.ConfigError):
        await TornadoTransport().send(req(f"{base}/echo", "POST", b"x", client_cert=str(tmp_path / "nope.pem")))


async def test_client_over_real_http_with_single_base(base):
    merchant = Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID)
    client = WxPayClient(merchant, endpoints=Endpoints.single(f"{base}/_wechat"))
    result = await client.order_query(out_trade_no="1415757673")
    assert result.paid and result.total_fee == 101


def test_request_repr_hides_query_strings():
    r = HttpRequest("GET", "https://api.weixin.qq.com/sns/oauth2/access_token?secret=S3CRET&code=C0DE")
    assert "S3CRET" not in repr(r) and "C0DE" not in repr(r)
    assert "/sns/oauth2/access_token" in repr(r)


async def test_plain_async_function_is_a_transport():
    async def handler(request):
        return HttpResponse(200, {}, b"hi")

    assert isinstance(as_transport(handler), FunctionTransport)
    assert (await as_transport(handler).send(req("http://x/"))).body == b"hi"
    with pytest.raises(e.ConfigError):
        as_transport(42)


# --- mutual TLS -----------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA, a server cert for 127.0.0.1 and a merchant client cert."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Test CA", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", MCH_ID)):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)
    return d


@pytest.fixture
async def tls_base(pki):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    context.load_verify_locations(pki / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    server, port = await serve(Application([(r"/whoami", WhoAmI)]), ssl_options=context)
    yield f"https://127.0.0.1:{port}"
    server.stop()
    await server.close_all_connections()


async def test_mutual_tls_presents_the_merchant_certificate(pki, tls_base):
    transport = TornadoTransport(ca_certs=str(pki / "ca.pem"))
    response = await transport.send(
        req(f"{tls_base}/whoami", client_cert=str(pki / "client.pem"), client_key=str(pki / "client.key"))
    )
    assert response.body.decode() == MCH_ID


async def test_mutual_tls_without_certificate_fails(pki, tls_base):
    transport = TornadoTransport(ca_certs=str(pki / "ca.pem"))
    with pytest.raises(e.TransportError):
        await transport.send(req(f"{tls_base}/whoami"))


async def test_untrusted_server_certificate_is_not_retried(pki, tls_base):
    with pytest.raises(e.TransportError) as info:
        await TornadoTransport().send(
            req(f"{tls_base}/whoami", client_cert=str(pki / "client.pem"), client_key=str(pki / "client.key"))
        )
    assert not info.value.retryable


async def test_any_status_returns_error_replies_instead_of_raising(base):
    """APIv3 errors are 4xx/5xx with a JSON body the caller must read."""
    for code in (400, 404, 429, 500, 503):
        response = await TornadoTransport().send(req(f"{base}/status/{code}", any_status=True))
        assert (response.status, response.body) == (code, b"status page")
    with pytest.raises(e.TransportError):
        await TornadoTransport().send(req(f"{base}/status/404"))
