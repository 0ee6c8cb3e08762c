"""Front-end payloads: exact keys, the derived vectors T6-T8, and argument checks."""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from wxpay.errors import InvalidArgumentError, SignatureError
from wxpay.payloads import (
    AppPayload,
    BridgePayload,
    ChooseWXPayPayload,
    MiniProgramPayload,
    WxConfig,
    app_payload,
    jsapi_payloads,
    mini_program_payload,
    mweb_redirect,
    wx_config,
)
from wxpay.signing import HMAC_SHA256, MD5, verify

VECTORS = json.loads(
    (Path(__file__).resolve().parent / "vectors" / "signatures.json").read_text()
)
KEY = VECTORS["T1_md5"]["key"]


@pytest.mark.parametrize("name", ["T6_bridge_md5_derived", "T7_bridge_hmac_derived"])
def test_jsapi_payloads_reproduce_t6_t7(name):
    v = VECTORS[name]
    p = v["params"]
    bridge, choose = jsapi_payloads(
        p["appId"],
        p["package"].removeprefix("prepay_id="),
        v["key"],
        v["sign_type"],
        timestamp=int(p["timeStamp"]),
        nonce=p["nonceStr"],
    )
    assert bridge.to_dict() == {**p, "paySign": v["expected"]}
    assert list(bridge.to_dict()) == ["appId", "timeStamp", "nonceStr", "package", "signType", "paySign"]
    assert choose.to_dict() == {
        "timestamp": p["timeStamp"],
        "nonceStr": p["nonceStr"],
        "package": p["package"],
        "signType": v["sign_type"],
        "paySign": v["expected"],
    }
    assert isinstance(bridge, BridgePayload) and isinstance(choose, ChooseWXPayPayload)


def test_jsapi_defaults_share_one_fresh_timestamp_and_nonce():
    before = int(time.time())
    bridge, choose = jsapi_payloads("wxapp", "wx201410272009395522657a690389285100", KEY, HMAC_SHA256)
    after = int(time.time())
    d = bridge.to_dict()
    assert before <= int(d["timeStamp"]) <= after and len(d["timeStamp"]) == 10
    assert len(d["nonceStr"]) == 32
    assert choose.timestamp == d["timeStamp"] and choose.nonce_str == d["nonceStr"]
    assert choose.pay_sign == d["paySign"]
    signed = {k: v for k, v in d.items() if k != "paySign"}
    assert verify({**signed, "sign": d["paySign"]}, KEY, HMAC_SHA256) == HMAC_SHA256
    again, _ = jsapi_payloads("wxapp", "wx201410272009395522657a690389285100", KEY, HMAC_SHA256)
    assert again.nonce_str != bridge.nonce_str


def test_mini_program_payload_signs_over_its_appid():
    v = VECTORS["T6_bridge_md5_derived"]
    p = v["params"]
    mp = mini_program_payload(
        p["appId"], "u802345jgfjsdfgsdg888", KEY, MD5, timestamp=p["timeStamp"], nonce=p["nonceStr"]
    )
    assert isinstance(mp, MiniProgramPayload)
    assert mp.to_dict() == {
        "timeStamp": p["timeStamp"],
        "nonceStr": p["nonceStr"],
        "package": p["package"],
        "signType": "MD5",
        "paySign": v["expected"],
    }
    other = mini_program_payload(
        "wxotherapp", "u802345jgfjsdfgsdg888", KEY, MD5, timestamp=p["timeStamp"], nonce=p["nonceStr"]
    )
    assert other.pay_sign != mp.pay_sign


def test_app_payload_reproduces_t8():
    v = VECTORS["T8_app_md5_derived"]
    p = v["params"]
    app = app_payload(
        p["appid"], p["partnerid"], p["prepayid"], KEY, MD5, timestamp=p["timestamp"], nonce=p["noncestr"]
    )
    assert isinstance(app, AppPayload)
    assert app.to_dict() == {**p, "sign": v["expected"]}


def test_app_payload_hmac_verifies():
    app = app_payload("wxmobile", "1900000109", "wx123", KEY, HMAC_SHA256).to_dict()
    assert len(app["sign"]) == 64
    assert verify(app, KEY, HMAC_SHA256) == HMAC_SHA256


def test_wx_config_reproduces_t3_and_drops_fragment():
    v = VECTORS["T3_jssdk"]
    cfg = wx_config(
        "wxoa", v["jsapi_ticket"], v["url"] + "#/checkout", timestamp=v["timestamp"], nonce=v["noncestr"]
    )
    assert isinstance(cfg, WxConfig)
    assert cfg.to_dict() == {
        "debug": False,
        "appId": "wxoa",
        "timestamp": int(v["timestamp"]),
        "nonceStr": v["noncestr"],
        "signature": v["expected"],
        "jsApiList": ["chooseWXPay"],
    }


def test_wx_config_custom_api_list_and_debug():
    cfg = wx_config("wxoa", "ticket", "https://shop.example/pay", js_api_list=["chooseWXPay", "closeWindow"], debug=True)
    d = cfg.to_dict()
    assert d["jsApiList"] == ["chooseWXPay", "closeWindow"] and d["debug"] is True
    assert len(d["signature"]) == 40


def test_payloads_are_frozen():
    bridge, _ = jsapi_payloads("wxapp", "p1", KEY, MD5)
    with pytest.raises(AttributeError):
        bridge.pay_sign = "x"  # type: ignore[misc]


@pytest.mark.parametrize("ts", [1395712654000, "139571265", "13957126x4", True, "１３９５７１２６５４"])
def test_refuses_bad_timestamps(ts):
    with pytest.raises(InvalidArgumentError, match="timestamp"):
        jsapi_payloads("wxapp", "p1", KEY, MD5, timestamp=ts)


def test_refuses_bad_nonce():
    with pytest.raises(InvalidArgumentError, match="nonce"):
        jsapi_payloads("wxapp", "p1", KEY, MD5, nonce="x" * 33)
    with pytest.raises(InvalidArgumentError, match="nonce"):
        wx_config("wxapp", "t", "https://a.example/", nonce="")


def test_refuses_unknown_sign_type():
    with pytest.raises(InvalidArgumentError, match="sign_type"):
        jsapi_payloads("wxapp", "p1", KEY, "SHA1")
    with pytest.raises(InvalidArgumentError, match="sign_type"):
        app_payload("wxapp", "1900000109", "p1", KEY, "RSA")


def test_refuses_prefixed_or_missing_prepay_id():
    with pytest.raises(InvalidArgumentError, match="bare prepay_id"):
        jsapi_payloads("wxapp", "prepay_id=p1", KEY, MD5)
    with pytest.raises(InvalidArgumentError, match="prepay_id"):
        mini_program_payload("wxapp", "", KEY, MD5)


def test_refuses_missing_key():
    with pytest.raises(SignatureError, match="No API key"):
        jsapi_payloads("wxapp", "p1", "", MD5)


def test_mweb_redirect_appends_encoded_url():
    mweb = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx20161110&package=1037687096"
    back = "https://shop.example/return?order=A1&lang=zh#top"
    out = mweb_redirect(mweb, back)
    assert out.startswith(mweb + "&redirect_url=")
    assert "&lang" not in out.split("redirect_url=", 1)[1]
    assert parse_qs(urlsplit(out).query)["redirect_url"] == [back]


def test_mweb_redirect_without_query():
    out = mweb_redirect("http://127.0.0.1:8080/mweb/abc", "http://127.0.0.1:8000/r")
    assert out == "http://127.0.0.1:8080/mweb/abc?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fr"


@pytest.mark.parametrize(
    "redirect",
    ["javascript:alert(1)", "data:text/html,hi", "//evil.example/x", "/relative", "ftp://a.example/", "https://a.example/\r\nX: y"],
)
def test_mweb_redirect_refuses_non_http_urls(redirect):
    with pytest.raises(InvalidArgumentError, match="redirect_url"):
        mweb_redirect("https://wx.tenpay.com/x?prepay_id=1", redirect)


def test_docs_offline_example_runs(capsys):
    """docs/wxpay.md's offline example is real code: run it as written."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "wxpay.md").read_text()
    block = doc.split("## Example (offline)", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "docs/wxpay.md", "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out
    assert "order-0001 2024-01-01T04:30:00+00:00" in out and "'paySign'" in out
