"""Live-mode safety checks: one actionable line per problem, all found at once.

Loading already rejects what is malformed in any mode (types, typos, ranges,
a ``public_url`` that is more than a bare origin). These checks are about what
is merely unsafe or incomplete for real money: missing credentials; values
anyone can read (the simulator's demo merchant, WeChat's documentation
examples, the sandbox defaults); degenerate secrets; plain http; addresses
WeChat cannot reach; a proxy list that trusts every address; placeholders a
shopper would see.

The demo merchant belongs to the simulator, which this package may not
import (``config`` knows nothing of the app). The entry point hands its
values and certificate files over as :class:`PublicCredentials`; the
certificate's fingerprints are computed here, at check time, from those
files, so a copy of the demo key elsewhere, or the same key re-encoded
(PKCS#1 or PKCS#8, re-wrapped, a new certificate over it, cert and key in
one file), is recognised as well as the file itself. Called without that
list, live mode refuses to start rather than skip the check.

Thresholds for every secret (API key, app secrets, cookie secret, admin
password, merchant API tokens, webhook secret): at least
``MIN_DISTINCT_CHARS`` (8) distinct characters, and not a shorter pattern
repeated (``"ab" * 16``, ``"abcdefgh" * 4``); plus the per-secret minimum
length below. A random 32-character key has about 25 distinct characters
(hex: about 14), so no real secret comes near the threshold.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .v3_rules import v3_setting_problems
from .settings import (
    SANDBOX_ADMIN_PASSWORD,
    SANDBOX_MERCHANT_TOKEN,
    Settings,
    ShopSettings,
    SimulatorSettings,
)

MIN_COOKIE_SECRET = 32
MIN_ADMIN_PASSWORD = 12
MIN_MERCHANT_TOKEN = 32
MIN_WEBHOOK_SECRET = 32
MIN_DISTINCT_CHARS = 8

_GENERATE = "generate one with: python -c \"import secrets; print(secrets.token_urlsafe(48))\""
# Values people paste from examples; compared with punctuation and case removed.
_PLACEHOLDERS = {"changeme", "secret", "password", "default", "cookiesecret", "todo", "xxx"}
_APPID = re.compile(r"wx[0-9a-zA-Z]{16}")
_API_KEY = re.compile(r"[0-9A-Za-z]{32}")

# WeChat Pay's own documentation examples (the V2 signing example and the
# JSAPI example): copied into many tutorials, known to everyone.
WECHAT_DOC_EXAMPLES = frozenset({
    "wxd930ea5d5a258f4f", "wx2421b1c4370ec43b", "wx2421b1a4370ec43b",
    "10000100", "192006250b4c09247ec02edce69f6a2d",
})

# Words that mark a shop name as a placeholder (whole words, any case).
_PLACEHOLDER_WORDS = re.compile(
    r"\b(demo|sandbox|example|sample|test|testing|placeholder|lorem|ipsum|changeme|todo|tbd|my shop|my store|"
    r"your shop|your store|shop name|store name|merchant name)\b"
    r"|演示|示例|测试|沙箱|样例|占位|店铺名称|商店名称|商户名称|商家名称|我的店铺|我的商店|你的店铺",
    re.IGNORECASE,
)
# A name that is only a generic word names no shop.
_GENERIC_SHOP_NAMES = {"shop", "store", "merchant", "myshop", "mystore", "onlineshop", "webshop", "商店", "店铺",
                       "商城", "商户", "商家", "网店", "小店"}
# Names that are never a shop's public address (RFC 2606, 6761, 6762, ICANN's .internal).
_RESERVED_SUFFIXES = (
    ".example", ".test", ".invalid", ".localhost", ".local", ".internal", ".lan", ".home.arpa",
    "example.com", "example.net", "example.org",
)
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_MAX_CERT_BYTES = 1 << 20


@dataclass(frozen=True)
class PublicCredentials:
    """Credentials anyone can read, handed in by the entry point: every value
    (appids, mch_id, keys, secrets) and the certificate and key files of the
    simulator's demo merchant. Live mode refuses each of them."""

    values: frozenset[str] = frozenset()
    cert_files: tuple[str, ...] = ()
    label: str = "the simulator's demo merchant"


def _name(dotted: str) -> str:
    return f"{dotted} (WXPAY_{dotted.replace('.', '_').upper()})"


def _is_placeholder(value: str) -> bool:
    squashed = re.sub(r"[^a-z0-9]", "", value.lower())
    return squashed in _PLACEHOLDERS or "changeme" in squashed


def _repeats_a_pattern(value: str) -> bool:
    """True for "abab…", "abcabca": a unit of at most half the length, repeated
    (the last repetition may be cut short)."""
    value = value[:1024]
    return any(value[p:] == value[:-p] for p in range(1, len(value) // 2 + 1))


def _weak(value: str, minimum: int) -> str | None:
    """Why a secret is unfit for live use, or None."""
    if _is_placeholder(value):
        return "is a placeholder value"
    if len(value) < minimum:
        return f"is shorter than {minimum} characters"
    distinct = len(set(value))
    if distinct == 1:
        return "is one character repeated"
    if distinct < MIN_DISTINCT_CHARS:
        return f"has too few distinct characters (fewer than {MIN_DISTINCT_CHARS})"
    if _repeats_a_pattern(value):
        return "repeats a short pattern"
    return None


class _Check:
    """One run of the checks: the settings, what is public, the lines found."""

    def __init__(self, settings: Settings, public: PublicCredentials | None) -> None:
        self.s = settings
        self.public = public
        self.problems: list[str] = []

    def add(self, line: str) -> None:
        self.problems.append(line)

    def known(self, value: str) -> str | None:
        """Who published ``value``, or None."""
        if self.public is not None and value in self.public.values:
            return self.public.label
        if value in WECHAT_DOC_EXAMPLES:
            return "WeChat Pay's documentation examples"
        return None

    def secret(self, label: str, value: str, minimum: int, fix: str = "") -> None:
        """One line at most for a secret: public, placeholder, short or degenerate."""
        origin = self.known(value)
        why = f"is a publicly known value (from {origin})" if origin else _weak(value, minimum)
        if why:
            self.add(f"{label} {why}{'; ' + fix if fix else ''}")


def validate_live(
    settings: Settings, public: PublicCredentials | None = None, extra: Iterable[str] = ()
) -> list[str]:
    """Every reason live mode is unsafe, one line each; empty in sandbox mode.

    ``public`` is what the entry point knows to be public (the simulator's
    demo merchant); without it live mode is refused, never checked less.
    ``extra``: lines the entry point found with what this package may not
    import (the APIv3 key material, read by ``wxpay``'s own checker)."""
    if not settings.is_live:
        return []
    check = _Check(settings, public)
    if public is None:
        check.add(
            "internal: the list of public demo credentials was not passed to the live check "
            "(Settings.check(public=...)); refusing rather than skipping it"
        )
    _check_credentials(check)
    _check_server(check)
    _check_admin_and_api(check)
    _check_certificates(check)
    _check_urls(check)
    _check_shop(check)
    _check_sandbox_only(check)
    check.problems.extend(extra)
    return check.problems


def _check_credentials(c: _Check) -> None:
    w = c.s.wechat
    for dotted in ("wechat.appid", "wechat.mini_program_appid", "wechat.app_appid", "wechat.mch_id"):
        value = getattr(w, dotted.split(".")[1])
        origin = value and c.known(value)
        if origin:
            c.add(f"{_name(dotted)} is a publicly known value (from {origin}); use your own")
    if not w.appid:
        c.add(f"{_name('wechat.appid')} is not set: the Official Account AppID (mp.weixin.qq.com)")
    elif not _APPID.fullmatch(w.appid):
        c.add(f"{_name('wechat.appid')} does not look like an AppID (wx followed by 16 letters/digits)")
    if not w.app_secret:
        c.add(f"{_name('wechat.app_secret')} is not set: the Official Account AppSecret")
    else:
        c.secret(_name("wechat.app_secret"), w.app_secret, 0, "reset it at mp.weixin.qq.com")
    if not w.mch_id:
        c.add(f"{_name('wechat.mch_id')} is not set: the merchant number from pay.weixin.qq.com")
    elif not w.mch_id.isdigit():
        c.add(f"{_name('wechat.mch_id')} must be digits only")
    for dotted in ("wechat.merchant_serial_no", "wechat.wechatpay_public_key_id"):
        value = getattr(w, dotted.split(".")[1])
        origin = value and c.known(value)
        if origin:
            c.add(f"{_name(dotted)} is a publicly known value (from {origin}); use your own")
    if not w.api_key:
        if w.api_version == "v2":
            c.add(f"{_name('wechat.api_key')} is not set: the 32-character APIv2 key from pay.weixin.qq.com")
    elif not _API_KEY.fullmatch(w.api_key):
        c.add(f"{_name('wechat.api_key')} must be exactly 32 letters and digits (an APIv2 key)")
    else:
        c.secret(_name("wechat.api_key"), w.api_key, 0, "set a random 32-character key at pay.weixin.qq.com")
    if w.v3_configured:
        _check_v3_credentials(c)
    if bool(w.mini_program_appid) != bool(w.mini_program_secret):
        c.add("wechat.mini_program_appid and wechat.mini_program_secret must be set together")
    elif w.mini_program_secret:
        c.secret(_name("wechat.mini_program_secret"), w.mini_program_secret, 0)
    if w.mini_program_appid and not _APPID.fullmatch(w.mini_program_appid):
        c.add(f"{_name('wechat.mini_program_appid')} does not look like an AppID")
    if w.app_appid and not _APPID.fullmatch(w.app_appid):
        c.add(f"{_name('wechat.app_appid')} does not look like an AppID")


def _check_v3_credentials(c: _Check) -> None:
    """What APIv3 needs that this package can check without reading keys (``wxpay``'s
    checker reads them: the entry point's ``extra`` lines)."""
    w = c.s.wechat
    for setting, message in v3_setting_problems(w):
        if setting == "wechat.key_path" and w.api_version != "v3":
            continue  # APIv2's certificate check names it (refunds need it too)
        c.add(f"{_name(setting)} {message}")
    if w.apiv3_key:
        c.secret(_name("wechat.apiv3_key"), w.apiv3_key, 0, "set a random 32-character APIv3 key at pay.weixin.qq.com")
        if w.api_key and w.apiv3_key == w.api_key:
            c.add(f"{_name('wechat.apiv3_key')} is the APIv2 key: set a separate APIv3 key at pay.weixin.qq.com")


def _check_server(c: _Check) -> None:
    srv = c.s.server
    if not srv.cookie_secret:
        c.add(f"{_name('server.cookie_secret')} is not set: {_GENERATE}")
    else:
        c.secret(_name("server.cookie_secret"), srv.cookie_secret, MIN_COOKIE_SECRET, _GENERATE)
    if not srv.xsrf_cookies:
        c.add("server.xsrf_cookies must stay true in live mode (it protects the pay page's POSTs)")
    if srv.debug:
        c.add("server.debug must be false in live mode (it shows tracebacks and reloads code)")
    covered = _covered_families(srv.trusted_proxies)
    if covered:
        c.add(
            f"server.trusted_proxies together cover every {' and every '.join(covered)} address: "
            "any client could forge X-Forwarded-For; list only your proxies"
        )
    if not srv.public_url:
        c.add(
            f"{_name('server.public_url')} is not set: the https address shoppers and WeChat "
            "reach this server at, e.g. https://pay.your-domain.cn"
        )
    else:
        c.problems.extend(_public_https("server.public_url", srv.public_url))


def _covered_families(cidrs: Iterable[str]) -> list[str]:
    """The address families the networks cover completely, together."""
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue  # reported when loading
    v4 = list(ipaddress.collapse_addresses(n for n in nets if n.version == 4))
    v6 = list(ipaddress.collapse_addresses(n for n in nets if n.version == 6))
    covered = []
    if any(n.prefixlen == 0 for n in v4):
        covered.append("IPv4")
    if any(n.prefixlen == 0 for n in v6):
        covered.append("IPv6")
    elif "IPv4" not in covered and any(_IPV4_MAPPED.subnet_of(n) for n in v6):
        covered.append("IPv4 (IPv4-mapped IPv6)")
    return covered


def _public_https(dotted: str, url: str) -> list[str]:
    """At most one line: why WeChat or a shopper's phone cannot use ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return [f"{_name(dotted)} must start with https:// in live mode (WeChat requires https)"]
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return [f"{_name(dotted)} points at localhost, which WeChat cannot reach"]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        if not ip.is_global:
            return [f"{_name(dotted)} is a private or loopback address, which WeChat cannot reach"]
        return [
            f"{_name(dotted)} is an IP address: WeChat's OAuth domain, JS interface safe domain and "
            "payment directory must be a registered domain name"
        ]
    if "." not in host:
        return [f"{_name(dotted)} host {host!r} is not a public domain name (no dot), which WeChat cannot reach"]
    if host in {s.lstrip(".") for s in _RESERVED_SUFFIXES} or host.endswith(_RESERVED_SUFFIXES):
        return [f"{_name(dotted)} uses a reserved example/test domain ({host}); use your own domain"]
    return []


def _check_admin_and_api(c: _Check) -> None:
    pw = c.s.admin.password
    if not pw:
        c.add(f"{_name('admin.password')} is not set: /status and the admin pages need it")
    elif pw == SANDBOX_ADMIN_PASSWORD:
        c.add(f"{_name('admin.password')} is the documented sandbox password; choose your own")
    else:
        c.secret(_name("admin.password"), pw, MIN_ADMIN_PASSWORD)

    tokens = c.s.merchant_api.tokens
    if not tokens:
        c.add(f"{_name('merchant_api.tokens')} is empty: the merchant API needs a bearer token; {_GENERATE}")
    for i, token in enumerate(tokens, start=1):
        if token == SANDBOX_MERCHANT_TOKEN:
            c.add(f"merchant_api.tokens #{i} is the documented sandbox token; {_GENERATE}")
            continue
        c.secret(f"merchant_api.tokens #{i}", token, MIN_MERCHANT_TOKEN, _GENERATE)


def _check_certificates(c: _Check) -> None:
    """The merchant API certificate and key (APIv2: refunds over mutual TLS;
    APIv3: the key signs every request, the certificate names its serial),
    and APIv3's WeChat Pay public key file."""
    w = c.s.wechat
    demo = _DemoCertificate(c.public.cert_files if c.public else ())
    files = []
    if w.api_version == "v3":
        files = [("wechat.key_path", w.key_path), ("wechat.cert_path", w.cert_path)]
    elif not w.cert_path and not w.key_path:
        c.add(
            "wechat.cert_path and wechat.key_path are not set: refunds need the merchant API "
            "certificate (apiclient_cert.pem and apiclient_key.pem from pay.weixin.qq.com)"
        )
    else:
        for dotted, path in (("wechat.cert_path", w.cert_path), ("wechat.key_path", w.key_path)):
            if not path:
                c.add(f"{_name(dotted)} is not set (the certificate and its key go together)")
        files = [("wechat.cert_path", w.cert_path), ("wechat.key_path", w.key_path)]
    if w.v3_configured:
        files.append(("wechat.wechatpay_public_key_path", w.wechatpay_public_key_path))
    for dotted, path in files:
        if not path:
            continue
        why = _unreadable_pem(Path(path)) or demo.problem(Path(path))
        if why:
            c.add(f"{_name(dotted)} {path}: {why}")


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


class _DemoCertificate:
    """Recognises the demo certificate by path and by the numbers of its RSA key.

    The fingerprints are SHA-256 digests of the key's big integers (modulus,
    exponents, primes) read from the DER inside the demo files. Any encoding
    of the same key, and any certificate over it, carries the modulus."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = [Path(f) for f in files]
        self.fingerprints: set[str] = set()
        for f in self.files:
            self.fingerprints |= key_fingerprints(_read_capped(f))

    def problem(self, path: Path) -> str | None:
        for demo in self.files:
            try:
                if os.path.samefile(path, demo):
                    return "is one of the simulator's public demo keys or certificates (anyone can read them); use your own"
            except OSError:
                continue
        shared = key_fingerprints(_read_capped(path)) & self.fingerprints
        if shared:
            return (
                f"holds one of the simulator's public demo keys (fingerprint sha256:{min(shared)[:16]}…), "
                "whatever its file name or encoding; use your own from pay.weixin.qq.com"
            )
        return None


def _read_capped(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(_MAX_CERT_BYTES)
    except OSError:
        return b""


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def key_fingerprints(data: bytes) -> set[str]:
    """SHA-256 (hex) of every RSA-sized integer in the PEM blocks (or raw DER) of ``data``."""
    blobs = []
    for match in _PEM_BLOCK.finditer(data):
        body = match.group(2)
        if b":" in body:  # headers: an encrypted key, whose numbers cannot be read
            continue
        try:
            blobs.append(base64.b64decode(b"".join(body.split()), validate=True))
        except (binascii.Error, ValueError):
            continue
    if not blobs and data[:1] == b"\x30":
        blobs.append(data)
    found: set[bytes] = set()
    for blob in blobs:
        _big_integers(blob, found, 0)
    return {hashlib.sha256(n).hexdigest() for n in found}


def _big_integers(der: bytes, out: set[bytes], depth: int) -> None:
    """Collect INTEGERs of 512 bits or more, descending into constructed
    values and into BIT/OCTET STRINGs (where PKCS#8 and certificates nest
    the key). Stops quietly at anything that is not well-formed DER."""
    i = 0
    while i + 2 <= len(der):
        tag, length = der[i], der[i + 1]
        i += 2
        if length & 0x80:
            size = length & 0x7F
            if not 1 <= size <= 4 or i + size > len(der):
                return
            length = int.from_bytes(der[i:i + size], "big")
            i += size
        if i + length > len(der):
            return
        body = der[i:i + length]
        i += length
        if tag == 0x02:
            number = body.lstrip(b"\x00")
            if len(number) >= 64:
                out.add(number)
        elif depth < 8 and (tag & 0x20 or tag in (0x03, 0x04)):
            _big_integers(body[1:] if tag == 0x03 else body, out, depth + 1)


def _check_urls(c: _Check) -> None:
    w = c.s.wechat
    for name in ("pay_base", "open_base", "api_base"):
        url = getattr(w, name)
        if url and urlsplit(url).scheme != "https":
            c.add(f"{_name('wechat.' + name)} must be https in live mode")
    for dotted, url in (("wechat.notify_url", w.notify_url), ("wechat.refund_notify_url", w.refund_notify_url)):
        if url:
            c.problems.extend(_public_https(dotted, url))
            if urlsplit(url).query:
                c.add(f"{_name(dotted)} must not carry a query string (WeChat drops it)")
    hook = c.s.webhooks
    if hook.url:
        if urlsplit(hook.url).scheme != "https":
            c.add(f"{_name('webhooks.url')} must be https in live mode")
        if not hook.secret:
            c.add(f"{_name('webhooks.secret')} is not set: webhooks must be signed; {_GENERATE}")
        else:
            c.secret(_name("webhooks.secret"), hook.secret, MIN_WEBHOOK_SECRET, _GENERATE)


def _check_shop(c: _Check) -> None:
    """What a shopper sees from the settings: the shop's name, on the pay page,
    the error pages and (at the head of each order's description) in WeChat.

    The demo catalogue and its descriptions are only ever served by the
    sandbox's demo shop (``/`` answers 404 in live mode), so they need no check."""
    name = c.s.shop.name
    if name == ShopSettings().name:
        c.add(
            f"{_name('shop.name')} is the sandbox's {name!r}, which shoppers see on the pay page and in WeChat; "
            "set your shop's name"
        )
    elif (_PLACEHOLDER_WORDS.search(name) or _is_placeholder(name)
          or re.sub(r"[\W_]", "", name.lower()) in _GENERIC_SHOP_NAMES):
        c.add(f"{_name('shop.name')} looks like a placeholder, which shoppers see on the pay page and in "
              "WeChat; set your shop's name")


def _check_sandbox_only(c: _Check) -> None:
    defaults = SimulatorSettings()
    sandbox_keys = [
        f"simulator.{f.name}"
        for f in dataclasses.fields(defaults)
        if getattr(c.s.simulator, f.name) != getattr(defaults, f.name)
    ]
    if sandbox_keys:
        c.add(f"{', '.join(sandbox_keys)} only apply in sandbox mode; remove them from the live config")
