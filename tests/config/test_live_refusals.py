"""Live mode refuses what is public or weak: one line per refused item.

Public: every credential of the simulator's demo merchant (values, and its
certificate by path and by content), WeChat's documentation examples.
Weak: degenerate secrets. Surprising: a public_url that is more than an
origin, or one WeChat cannot use; trusted_proxies covering every address.
Seen by shoppers: a placeholder shop name.
"""
from __future__ import annotations

import base64
import random
import shutil
import textwrap

import pytest
from Crypto.PublicKey import RSA

from config import PublicCredentials, SettingsError, load_settings, validate_live
from config.validate import MIN_DISTINCT_CHARS, key_fingerprints
from wxpay.simulator import demo

from .livecfg import PUBLIC


def refusals(live_file, change: dict, public: PublicCredentials | None = PUBLIC) -> list[str]:
    return validate_live(load_settings(live_file, env={}, overrides=change), public)


def only_line(live_file, change: dict) -> str:
    lines = refusals(live_file, change)
    assert len(lines) == 1, lines
    return lines[0]


# --- a correct live configuration passes ----------------------------------------------------


def test_the_correct_live_configuration_passes(live_file):
    s = load_settings(live_file, env={})
    assert validate_live(s, PUBLIC) == []
    assert s.check(PUBLIC) is s


def test_without_the_list_of_public_credentials_live_mode_is_refused_not_checked_less(live_file):
    s = load_settings(live_file, env={})
    with pytest.raises(SettingsError) as exc:
        s.check()
    assert exc.value.problems == [line for line in exc.value.problems if line.startswith("internal:")]
    assert len(exc.value.problems) == 1


# --- the demo merchant's values, and WeChat's documentation examples -----------------------------


DEMO_VALUES = [
    ("wechat.appid", demo.OFFICIAL_ACCOUNT_APPID),
    ("wechat.appid", demo.MINI_PROGRAM_APPID),
    ("wechat.mini_program_appid", demo.MINI_PROGRAM_APPID),
    ("wechat.app_appid", demo.MOBILE_APP_APPID),
    ("wechat.mch_id", demo.MCH_ID),
    ("wechat.api_key", demo.API_KEY),
    ("wechat.app_secret", demo.OFFICIAL_ACCOUNT_SECRET),
    ("wechat.app_secret", demo.MOBILE_APP_SECRET),
    ("wechat.mini_program_secret", demo.MINI_PROGRAM_SECRET),
    ("server.cookie_secret", demo.OFFICIAL_ACCOUNT_SECRET),
    ("webhooks.secret", demo.API_KEY),
    ("merchant_api.tokens", [demo.MOBILE_APP_SECRET]),
]


@pytest.mark.parametrize("key, value", DEMO_VALUES, ids=[f"{k}={v}" for k, v in DEMO_VALUES])
def test_every_demo_credential_is_refused(live_file, key, value):
    line = only_line(live_file, {key: value})
    assert key.split(".")[1] in line and "publicly known" in line and "demo merchant" in line
    assert str(value) not in line or key.endswith(("appid", "mch_id"))  # secrets are not echoed


def test_the_demo_list_covers_every_value_the_simulator_publishes():
    published = {v for k, v in vars(demo).items() if k.isupper() and isinstance(v, str)}
    assert published == set(demo.PUBLIC_VALUES)


@pytest.mark.parametrize("key, value", [
    ("wechat.appid", "wxd930ea5d5a258f4f"),
    ("wechat.mch_id", "10000100"),
    ("wechat.api_key", "192006250b4c09247ec02edce69f6a2d"),
])
def test_wechat_documentation_examples_are_refused(live_file, key, value):
    assert "WeChat Pay's documentation" in only_line(live_file, {key: value})


# --- the demo certificate, by path and by content ----------------------------------------------------


def test_demo_certificate_by_its_own_path(live_file):
    lines = refusals(live_file, {"wechat.cert_path": str(demo.CERT_PATH), "wechat.key_path": str(demo.KEY_PATH)})
    assert len(lines) == 2
    assert all("is one of the simulator's public demo keys or certificates" in line for line in lines)


def test_demo_certificate_through_a_symlink(live_file, tmp_path):
    link = tmp_path / "my_cert.pem"
    link.symlink_to(demo.CERT_PATH)
    assert "public demo keys or certificates" in only_line(live_file, {"wechat.cert_path": str(link)})


def test_demo_files_copied_elsewhere(live_file, tmp_path):
    cert, key = tmp_path / "prod_cert.pem", tmp_path / "prod_key.pem"
    shutil.copy(demo.CERT_PATH, cert)
    shutil.copy(demo.KEY_PATH, key)
    lines = refusals(live_file, {"wechat.cert_path": str(cert), "wechat.key_path": str(key)})
    assert len(lines) == 2 and all("holds one of the simulator's public demo keys" in line for line in lines), lines


def _rewrapped(pem: bytes, width: int) -> bytes:
    """The same DER, base64 at another line width (as some tools write it)."""
    lines = pem.decode().strip().splitlines()
    body = base64.b64decode("".join(lines[1:-1]))
    return "\n".join([lines[0], *textwrap.wrap(base64.b64encode(body).decode(), width), lines[-1], ""]).encode()


def _reencodings() -> dict[str, bytes]:
    key = RSA.import_key(demo.KEY_PATH.read_bytes())
    return {
        "pkcs1": key.export_key(pkcs=1),
        "pkcs8": key.export_key(pkcs=8),
        "public-key-only": key.publickey().export_key(),
        "rewrapped-76": _rewrapped(demo.KEY_PATH.read_bytes(), 76),
        "cert-and-key-in-one-file": demo.CERT_PATH.read_bytes() + key.export_key(pkcs=1) + b"\n",
        "crlf": demo.CERT_PATH.read_bytes().replace(b"\n", b"\r\n"),
    }


@pytest.mark.parametrize("form", sorted(_reencodings()))
def test_the_same_key_re_encoded_is_refused(live_file, tmp_path, form):
    path = tmp_path / f"reencoded-{form}.pem"
    path.write_bytes(_reencodings()[form])
    line = only_line(live_file, {"wechat.key_path": str(path)})
    assert "holds one of the simulator's public demo keys" in line and "sha256:" in line


def test_another_key_is_not_mistaken_for_the_demo_key(live_file, tmp_path):
    other = RSA.generate(2048)
    cert, key = tmp_path / "other.pem", tmp_path / "other_key.pem"
    key.write_bytes(other.export_key(pkcs=8))
    cert.write_bytes(other.publickey().export_key())
    assert refusals(live_file, {"wechat.cert_path": str(cert), "wechat.key_path": str(key)}) == []
    assert key_fingerprints(key.read_bytes()) and not (
        key_fingerprints(key.read_bytes()) & key_fingerprints(demo.KEY_PATH.read_bytes()))


# --- degenerate secrets -------------------------------------------------------------------------------------

SECRET_KEYS = {
    "wechat.api_key": 32, "wechat.app_secret": 32, "wechat.mini_program_secret": 32,
    "server.cookie_secret": 40, "admin.password": 24, "merchant_api.tokens": 40, "webhooks.secret": 40,
}
DEGENERATE = {
    "one repeated character": (lambda n: "k" * n, "is one character repeated"),
    "too few distinct characters": (lambda n: ("Ab1Cd2E" * n)[:n], "too few distinct characters"),
    "a short pattern repeated": (lambda n: ("Ab1Cd2Ef3G" * n)[:n], "repeats a short pattern"),
}


@pytest.mark.parametrize("kind", sorted(DEGENERATE))
@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_degenerate_secrets_are_refused(live_file, key, kind):
    make, needle = DEGENERATE[kind]
    value = make(SECRET_KEYS[key])
    line = only_line(live_file, {key: [value] if key == "merchant_api.tokens" else value})
    assert needle in line and value not in line


def test_the_distinct_character_threshold(live_file):
    """Seven distinct characters are refused, eight pass (40 characters, no period)."""
    rng = random.Random(7)
    seven = "".join(rng.choice("aB3dE5g") for _ in range(40))
    eight = "".join(rng.choice("aB3dE5gH") for _ in range(40))
    assert MIN_DISTINCT_CHARS == 8 and (len(set(seven)), len(set(eight))) == (7, 8)
    assert "too few distinct characters (fewer than 8)" in only_line(live_file, {"server.cookie_secret": seven})
    assert refusals(live_file, {"server.cookie_secret": eight}) == []


# --- public_url ------------------------------------------------------------------------------------------------

# Refused in every mode when loading: the URL must be a bare origin.
MALFORMED_ORIGINS = [
    ("https://admin:hunter2@pay.tea-merchant.cn", "user name or password"),
    ("https://admin@pay.tea-merchant.cn", "user name or password"),
    ("https://pay.tea-merchant.cn?shop=1", "query string"),
    ("https://pay.tea-merchant.cn/#top", "#fragment"),
    ("https://pay.tea-merchant.cn/wxpay", "must not have a path"),
    ("https://pay.tea-merchant.cn:0", "port"),
    ("https://pay.tea-merchant.cn:70000", "port"),
    ("https://pay.tea-merchant.cn:", "port"),
]


@pytest.mark.parametrize("mode", ["sandbox", "live"])
@pytest.mark.parametrize("url, needle", MALFORMED_ORIGINS, ids=[u for u, _ in MALFORMED_ORIGINS])
def test_public_url_must_be_a_bare_origin_in_every_mode(live_file, mode, url, needle):
    with pytest.raises(SettingsError) as exc:
        load_settings(live_file, env={}, overrides={"mode": mode, "server.public_url": url})
    assert exc.value.code == "invalid_settings"
    assert len(exc.value.problems) == 1 and needle in exc.value.problems[0]
    assert "hunter2" not in exc.value.message


@pytest.mark.parametrize("url", ["https://pay.tea-merchant.cn:8443", "https://pay.tea-merchant.cn/"])
def test_a_port_or_a_trailing_slash_is_fine(live_file, url):
    assert refusals(live_file, {"server.public_url": url}) == []


# Refused in live mode only (sandbox runs on http://127.0.0.1:port).
LIVE_ONLY_URLS = [
    ("http://pay.tea-merchant.cn", "must start with https://"),
    ("https://8.8.8.8", "is an IP address"),
    ("https://[2001:4860:4860::8888]", "is an IP address"),
    ("https://10.1.2.3", "private or loopback"),
    ("https://localhost", "localhost"),
    ("https://pay.localhost", "localhost"),
    ("https://payserver", "no dot"),
    ("https://pay.example.com", "reserved example/test domain"),
    ("https://example.org", "reserved example/test domain"),
    ("https://pay.shop.test", "reserved example/test domain"),
    ("https://wxpay.internal", "reserved example/test domain"),
]


@pytest.mark.parametrize("url, needle", LIVE_ONLY_URLS, ids=[u for u, _ in LIVE_ONLY_URLS])
def test_public_url_wechat_cannot_use_is_refused_live(live_file, url, needle):
    assert needle in only_line(live_file, {"server.public_url": url})
    assert validate_live(load_settings(live_file, env={}, overrides={"mode": "sandbox", "server.public_url": url})) == []


# --- trusted_proxies ---------------------------------------------------------------------------------------------

COVER_ALL = [
    (["0.0.0.0/0"], "every IPv4"),
    (["::/0"], "every IPv6"),
    (["0.0.0.0/1", "128.0.0.0/1"], "every IPv4"),
    (["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/3"], "every IPv4"),
    (["::/1", "8000::/1"], "every IPv6"),
    (["10.0.0.5", "::ffff:0:0/96"], "IPv4-mapped"),
    (["::/1"], "IPv4-mapped"),  # holds ::ffff:0:0/96: every IPv4 client of a dual-stack socket
    (["0.0.0.0/0", "::/0"], "every IPv4 and every IPv6"),
]


@pytest.mark.parametrize("cidrs, needle", COVER_ALL, ids=["+".join(c) for c, _ in COVER_ALL])
def test_trusted_proxies_covering_every_address_are_refused(live_file, cidrs, needle):
    line = only_line(live_file, {"server.trusted_proxies": cidrs})
    assert needle in line and "forge X-Forwarded-For" in line


def test_broad_but_not_universal_proxy_lists_pass(live_file):
    cidrs = ["0.0.0.0/1", "128.0.0.0/2", "10.0.0.0/8", "2000::/3", "fd00::/8"]
    assert refusals(live_file, {"server.trusted_proxies": cidrs}) == []


# --- what a shopper sees -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Demo shop", "Test shop", "My Shop", "Example Store", "示例商店", "测试", "changeme",
                                  "demo SHOP", "Shop", "STORE", "商城", "店铺名称", "Your Store", "TBD", "商户名称"])
def test_placeholder_shop_names_are_refused(live_file, name):
    line = only_line(live_file, {"shop.name": name})
    assert line.startswith("shop.name") and "shoppers see" in line and "WeChat" in line


def test_the_default_shop_name_is_refused_when_left_unset(live_file):
    text = live_file.read_text().replace('[shop]\nname = "Lu\'s Tea House"\n', "")
    live_file.write_text(text)
    assert "'Demo shop'" in only_line(live_file, {})


@pytest.mark.parametrize("name", ["Lu's Tea House", "Testa Coffee", "茶馆", "Sandboxed Games Ltd", "Shopify Tea",
                                  "老字号茶叶商城"])
def test_real_shop_names_pass(live_file, name):
    assert refusals(live_file, {"shop.name": name}) == []
