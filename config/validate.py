"""Live-mode safety checks: one actionable line per problem, all found at once.

Loading already rejects what is malformed in any mode (types, typos, ranges).
These checks are about what is merely unsafe or incomplete for real money:
missing credentials, sandbox defaults, plain http, unreadable certificates.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from .settings import (
    SANDBOX_ADMIN_PASSWORD,
    SANDBOX_MERCHANT_TOKEN,
    Settings,
    SimulatorSettings,
)

MIN_COOKIE_SECRET = 32
MIN_ADMIN_PASSWORD = 12
MIN_MERCHANT_TOKEN = 32
MIN_WEBHOOK_SECRET = 32

_GENERATE = "generate one with: python -c \"import secrets; print(secrets.token_urlsafe(48))\""
# Values people paste from examples; compared with punctuation and case removed.
_PLACEHOLDERS = {"changeme", "secret", "password", "default", "cookiesecret", "todo", "xxx"}
_APPID = re.compile(r"wx[0-9a-zA-Z]{16}")
_API_KEY = re.compile(r"[0-9A-Za-z]{32}")


def _name(dotted: str) -> str:
    return f"{dotted} (WXPAY_{dotted.replace('.', '_').upper()})"


def _is_placeholder(value: str) -> bool:
    squashed = re.sub(r"[^a-z0-9]", "", value.lower())
    return squashed in _PLACEHOLDERS or "changeme" in squashed


def _weak(value: str, minimum: int) -> str | None:
    """Why a secret is unfit for live use, or None."""
    if _is_placeholder(value):
        return "is a placeholder value"
    if len(value) < minimum:
        return f"is shorter than {minimum} characters"
    if len(set(value)) < 8:
        return "has too few distinct characters"
    return None


def validate_live(settings: Settings) -> list[str]:
    """Every reason live mode is unsafe, one line each; empty in sandbox mode."""
    if not settings.is_live:
        return []
    problems: list[str] = []
    _check_credentials(settings, problems)
    _check_server(settings, problems)
    _check_admin_and_api(settings, problems)
    _check_certificates(settings, problems)
    _check_urls(settings, problems)
    _check_sandbox_only(settings, problems)
    return problems


def _check_credentials(s: Settings, problems: list[str]) -> None:
    w = s.wechat
    if not w.appid:
        problems.append(f"{_name('wechat.appid')} is not set: the Official Account AppID (mp.weixin.qq.com)")
    elif not _APPID.fullmatch(w.appid):
        problems.append(f"{_name('wechat.appid')} does not look like an AppID (wx followed by 16 letters/digits)")
    if not w.app_secret:
        problems.append(f"{_name('wechat.app_secret')} is not set: the Official Account AppSecret")
    if not w.mch_id:
        problems.append(f"{_name('wechat.mch_id')} is not set: the merchant number from pay.weixin.qq.com")
    elif not w.mch_id.isdigit():
        problems.append(f"{_name('wechat.mch_id')} must be digits only")
    if not w.api_key:
        problems.append(f"{_name('wechat.api_key')} is not set: the 32-character APIv2 key from pay.weixin.qq.com")
    elif not _API_KEY.fullmatch(w.api_key):
        problems.append(f"{_name('wechat.api_key')} must be exactly 32 letters and digits (an APIv2 key)")
    if bool(w.mini_program_appid) != bool(w.mini_program_secret):
        problems.append("wechat.mini_program_appid and wechat.mini_program_secret must be set together")
    if w.mini_program_appid and not _APPID.fullmatch(w.mini_program_appid):
        problems.append(f"{_name('wechat.mini_program_appid')} does not look like an AppID")
    if w.app_appid and not _APPID.fullmatch(w.app_appid):
        problems.append(f"{_name('wechat.app_appid')} does not look like an AppID")


def _check_server(s: Settings, problems: list[str]) -> None:
    srv = s.server
    if not srv.cookie_secret:
        problems.append(f"{_name('server.cookie_secret')} is not set: {_GENERATE}")
    else:
        why = _weak(srv.cookie_secret, MIN_COOKIE_SECRET)
        if why:
            problems.append(f"{_name('server.cookie_secret')} {why}: {_GENERATE}")
    if not srv.xsrf_cookies:
        problems.append("server.xsrf_cookies must stay true in live mode (it protects the pay page's POSTs)")
    if srv.debug:
        problems.append("server.debug must be false in live mode (it shows tracebacks and reloads code)")
    for cidr in srv.trusted_proxies:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.prefixlen == 0:
            problems.append(
                f"server.trusted_proxies contains {cidr}: trusting every address lets any "
                "client forge X-Forwarded-For; list only your proxies"
            )
    if not srv.public_url:
        problems.append(
            f"{_name('server.public_url')} is not set: the https address shoppers and WeChat "
            "reach this server at, e.g. https://pay.example.com"
        )
    else:
        problems.extend(_public_https("server.public_url", srv.public_url))


def _public_https(dotted: str, url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme != "https":
        return [f"{_name(dotted)} must start with https:// in live mode (WeChat requires https)"]
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return [f"{_name(dotted)} points at localhost, which WeChat cannot reach"]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return []
    if not ip.is_global:
        return [f"{_name(dotted)} is a private or loopback address, which WeChat cannot reach"]
    return []


def _check_admin_and_api(s: Settings, problems: list[str]) -> None:
    pw = s.admin.password
    if not pw:
        problems.append(f"{_name('admin.password')} is not set: /status and the admin pages need it")
    elif pw == SANDBOX_ADMIN_PASSWORD:
        problems.append(f"{_name('admin.password')} is the documented sandbox password; choose your own")
    else:
        why = _weak(pw, MIN_ADMIN_PASSWORD)
        if why:
            problems.append(f"{_name('admin.password')} {why}")

    tokens = s.merchant_api.tokens
    if not tokens:
        problems.append(f"{_name('merchant_api.tokens')} is empty: the merchant API needs a bearer token; {_GENERATE}")
    for i, token in enumerate(tokens, start=1):
        if token == SANDBOX_MERCHANT_TOKEN:
            problems.append(f"merchant_api.tokens #{i} is the documented sandbox token; {_GENERATE}")
            continue
        why = _weak(token, MIN_MERCHANT_TOKEN)
        if why:
            problems.append(f"merchant_api.tokens #{i} {why}; {_GENERATE}")


def _check_certificates(s: Settings, problems: list[str]) -> None:
    w = s.wechat
    if not w.cert_path and not w.key_path:
        problems.append(
            "wechat.cert_path and wechat.key_path are not set: refunds need the merchant API "
            "certificate (apiclient_cert.pem and apiclient_key.pem from pay.weixin.qq.com)"
        )
        return
    for dotted, path in (("wechat.cert_path", w.cert_path), ("wechat.key_path", w.key_path)):
        if not path:
            problems.append(f"{_name(dotted)} is not set (the certificate and its key go together)")
            continue
        why = _unreadable_pem(Path(path))
        if why:
            problems.append(f"{_name(dotted)} {path}: {why}")


def _unreadable_pem(path: Path) -> str | None:
    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "is not a regular file"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if b"-----BEGIN " not in head:
        return "is not a PEM file (expected -----BEGIN ...)"
    return None


def _check_urls(s: Settings, problems: list[str]) -> None:
    w = s.wechat
    for name in ("pay_base", "open_base", "api_base"):
        url = getattr(w, name)
        if url and urlsplit(url).scheme != "https":
            problems.append(f"{_name('wechat.' + name)} must be https in live mode")
    for dotted, url in (("wechat.notify_url", w.notify_url), ("wechat.refund_notify_url", w.refund_notify_url)):
        if url:
            problems.extend(_public_https(dotted, url))
            if urlsplit(url).query:
                problems.append(f"{_name(dotted)} must not carry a query string (WeChat drops it)")
    hook = s.webhooks
    if hook.url:
        if urlsplit(hook.url).scheme != "https":
            problems.append(f"{_name('webhooks.url')} must be https in live mode")
        if not hook.secret:
            problems.append(f"{_name('webhooks.secret')} is not set: webhooks must be signed; {_GENERATE}")
        else:
            why = _weak(hook.secret, MIN_WEBHOOK_SECRET)
            if why:
                problems.append(f"{_name('webhooks.secret')} {why}; {_GENERATE}")


def _check_sandbox_only(s: Settings, problems: list[str]) -> None:
    defaults = SimulatorSettings()
    sandbox_keys = [
        f"simulator.{f.name}"
        for f in dataclasses.fields(defaults)
        if getattr(s.simulator, f.name) != getattr(defaults, f.name)
    ]
    if sandbox_keys:
        problems.append(
            f"{', '.join(sandbox_keys)} only apply in sandbox mode; remove them from the live config"
        )
