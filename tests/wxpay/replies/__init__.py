"""Recorded WeChat reply bodies and the test merchant that signed them.

The XML files are what WeChat sends (CDATA strings, bare integers, a sign
over every field) for the identity below; ``make_fixtures.py`` wrote them
and can rewrite them. ``signed_reply`` builds one-off replies the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from wxpay.signing import MD5, sign

HERE = Path(__file__).parent

APPID = "wx2421b1c4370ec43b"
MINI_APPID = "wx9fa7c0d15e2b0002"
MCH_ID = "10000100"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def load(name: str) -> bytes:
    return (HERE / name).read_bytes()


def _element(name: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<{name}>{value}</{name}>"
    return f"<{name}><![CDATA[{value}]]></{name}>"


def xml_of(fields: dict[str, Any]) -> bytes:
    """Serialise the way WeChat does, without going through wxpay.xmlcodec."""
    inner = "\n   ".join(_element(k, v) for k, v in fields.items())
    return f"<xml>\n   {inner}\n</xml>".encode("utf-8")


def signed_fields(fields: dict[str, Any], *, key: str = API_KEY, sign_type: str = MD5) -> dict[str, Any]:
    out = dict(fields)
    out["sign"] = sign(out, key, sign_type)
    return out


def envelope(appid: str = APPID, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": appid,
        "mch_id": MCH_ID,
        "nonce_str": "IITRi8Iabbblz1Jc",
    }
    fields.update(extra)
    return fields


def signed_reply(fields: dict[str, Any], *, key: str = API_KEY, sign_type: str = MD5) -> bytes:
    return xml_of(signed_fields(fields, key=key, sign_type=sign_type))


def business_fail(err_code: str, err_code_des: str = "", **kw: Any) -> bytes:
    fields = envelope(**kw)
    fields.update(result_code="FAIL", err_code=err_code, err_code_des=err_code_des or err_code)
    return signed_reply(fields)


# --- a fake WeChat for the injected transport ---------------------------------

from wxpay.transport import HttpRequest, HttpResponse  # noqa: E402


class FakeWeChat:
    """Answers each send with the next scripted item (the last one repeats).

    An item is reply bytes (HTTP 200), an HttpResponse, or an exception to
    raise. Every request is kept for the test to inspect.
    """

    def __init__(self, *script: Any) -> None:
        if not script:
            raise ValueError("script at least one answer")
        self.script = list(script)
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, HttpResponse):
            return item
        return HttpResponse(200, {"Content-Type": "text/plain"}, item)

    @property
    def last(self) -> HttpRequest:
        return self.requests[-1]


class Sleeps:
    """Stands in for asyncio.sleep and remembers the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
