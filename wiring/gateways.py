"""The merchant's WeChat Pay gateways, from the settings: the configured version's and the other's.

``wechat.api_version`` picks the primary gateway (new orders, queries,
closes, refunds, bills). The other version's gateway is built too when its
key is configured (``api_key`` for APIv2, ``apiv3_key`` for APIv3), only to
prove and read that version's notifies: WeChat notifies every order in the
form of the API it was placed with, so after a move both kinds arrive.

APIv3's key material lives in files; this module reads them and asks
``wxpay``'s own checker (:func:`wxpay.v3_settings.check_v3_settings`, the one
owner of those rules) what is wrong, naming each problem by its setting.
``config/`` may not import ``wxpay``: :func:`checked` hands the lines to
its live-mode check, and :func:`gateways` refuses to build with the fatal
ones in any mode.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from config import Settings, SettingsError, validate_live
from config.v3_rules import v3_setting_problems
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.errors import ConfigError
from wxpay.gateway import PayGateway
from wxpay.gateways import Gateways
from wxpay.merchant import Merchant
from wxpay.transport import Observer, Transport
from wxpay.v2_gateway import V2Gateway
from wxpay.v3.keys import load_certificate
from wxpay.v3_gateway import V3Gateway
from wxpay.v3_settings import V3Settings, check_v3_settings, fatal_v3_problems

from . import sandbox

log = logging.getLogger("wxpay_server.gateways")

MAX_KEY_FILE_BYTES = 1 << 20

# wxpay's names for the items -> the settings a merchant edits.
_SETTING = {
    "mchid": "wechat.mch_id",
    "appids": "wechat.appid",
    "pay_base": "wechat.pay_base",
    "merchant_serial_no": "wechat.merchant_serial_no",
    "merchant_private_key": "wechat.key_path",
    "merchant_certificate": "wechat.cert_path",
    "apiv3_key": "wechat.apiv3_key",
    "public_key_id": "wechat.wechatpay_public_key_id",
    "public_key_pem": "wechat.wechatpay_public_key_path",
    "key_mode": "wechat.wechatpay_public_key_id / wechat.platform_certificates",
}


@dataclass
class V3Read:
    """The APIv3 settings as read from the files, or why they could not be."""

    settings: V3Settings | None
    problems: list[str] = field(default_factory=list)  # files missing or unreadable, items not set


def _read_text(dotted: str, path: str, problems: list[str]) -> str | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(f"{dotted} {path}: cannot be read ({exc.strerror or exc})")
        return None
    if len(data) > MAX_KEY_FILE_BYTES:
        problems.append(f"{dotted} {path}: is larger than 1 MiB, not a key or certificate file")
        return None
    return data.decode("ascii", "replace")


def read_v3_settings(settings: Settings, pay_base: str | None = None) -> V3Read:
    """``V3Settings`` from ``[wechat]`` and the files it names (PEM texts read here)."""
    w = settings.wechat
    problems: list[str] = [f"{setting}: {message}" for setting, message in v3_setting_problems(w)]
    private_pem = _read_text("wechat.key_path", w.key_path, problems) if w.key_path else None
    cert_pem = _read_text("wechat.cert_path", w.cert_path, problems) if w.cert_path else None
    serial = w.merchant_serial_no
    if serial is None and cert_pem is not None:
        try:
            serial = load_certificate(cert_pem).serial_no
        except ConfigError as exc:
            problems.append(f"wechat.cert_path {w.cert_path}: {exc.message} (APIv3 reads the serial from it)")
    public_pem = None
    if w.wechatpay_public_key_path:
        public_pem = _read_text("wechat.wechatpay_public_key_path", w.wechatpay_public_key_path, problems)
    if problems or private_pem is None or serial is None or not w.apiv3_key:
        return V3Read(None, problems)
    appids = tuple(a for a in (w.appid, w.mini_program_appid, w.app_appid) if a)
    v3 = V3Settings(
        mchid=w.mch_id or "",
        appids=appids,
        merchant_private_key_pem=private_pem,
        merchant_serial_no=serial,
        apiv3_key=w.apiv3_key,
        public_key_id=w.wechatpay_public_key_id,
        public_key_pem=public_pem,
        platform_certificates=w.platform_certificates,
        merchant_certificate_pem=cert_pem if cert_pem is not None and "CERTIFICATE" in cert_pem else None,
        pay_base=pay_base or w.pay_base or Endpoints.pay_base,
    )
    return V3Read(v3, [])


def _named(line: str) -> str:
    """``item: message`` from wxpay's checker, with the setting a merchant edits in front."""
    item, sep, message = line.partition(": ")
    base = item.split("[", 1)[0]
    return f"{_SETTING.get(base, 'wechat.' + item)}: {message}" if sep else line


def _checked_v3(v3: V3Settings) -> tuple[list[str], list[str]]:
    """(fatal, warnings) of settings read from the files, named by setting."""
    every = check_v3_settings(v3)
    fatal = fatal_v3_problems(v3)
    return [_named(line) for line in fatal], [_named(line) for line in every if line not in fatal]


def v3_problems(settings: Settings, pay_base: str | None = None) -> tuple[list[str], list[str]]:
    """(fatal, warnings) of the APIv3 settings, one line each, named by setting.
    Nothing when APIv3 is neither used nor prepared."""
    if not settings.wechat.v3_configured:
        return [], []
    read = read_v3_settings(settings, pay_base)
    if read.settings is None:
        return read.problems, []
    return _checked_v3(read.settings)


def live_problems(settings: Settings) -> list[str]:
    """The fatal APIv3 lines for the live check, minus what ``config`` reports
    itself (an item not set, a file missing or not PEM)."""
    if not settings.is_live or not settings.wechat.v3_configured:
        return []
    read = read_v3_settings(settings)
    if read.settings is None:
        return []  # config/validate.py names each missing item and unreadable file
    return _checked_v3(read.settings)[0]


def _subject(line: str) -> str:
    """The setting a problem line is about: its first word (``wechat.apiv3_key``)."""
    return line.split(" ", 1)[0].rstrip(":")


def checked(settings: Settings) -> Settings:
    """``settings.check()`` with what only the app knows: the demo merchant's
    public credentials and the APIv3 key material's problems (a setting
    ``config`` already names is not named twice)."""
    public = sandbox.public_credentials()
    named = {_subject(line) for line in validate_live(settings, public)}
    extra = [line for line in live_problems(settings) if _subject(line) not in named]
    return settings.check(public, extra=extra)


def _v2(settings: Settings, endpoints: Endpoints, transport: Transport | None, observer: Observer | None,
        *, primary: bool) -> V2Gateway:
    w = settings.wechat
    # Only the primary gateway refunds (over the client certificate); a notify-only one needs the key alone.
    cert_path, key_path = (w.cert_path, w.key_path) if primary else (None, None)
    merchant = Merchant(w.mch_id or "", w.api_key or "", w.appid or "", w.sign_type, cert_path, key_path)
    client = WxPayClient(merchant, transport=transport, endpoints=endpoints, observer=observer)
    return V2Gateway(client, appids=(w.mini_program_appid, w.app_appid), max_notify_bytes=settings.server.max_body_bytes)


def _v3(settings: Settings, endpoints: Endpoints, transport: Transport | None, observer: Observer | None) -> V3Gateway:
    read = read_v3_settings(settings, endpoints.pay_base)
    fatal, warnings = _checked_v3(read.settings) if read.settings is not None else (read.problems, [])
    if fatal or read.settings is None:
        raise SettingsError.from_problems("bad_v3_settings", f"the APIv3 settings are not usable: {len(fatal)} "
                                          "problem(s)", fatal)
    for line in warnings:
        log.warning("APIv3 settings: %s", line)
    return V3Gateway(read.settings, transport=transport, observer=observer,
                     max_notify_bytes=settings.server.max_body_bytes)


def gateways(
    settings: Settings, *, endpoints: Endpoints, transport: Transport | None = None, observer: Observer | None = None,
) -> Gateways:
    """The configured version's gateway, and the other's when its key is set.
    ``SettingsError`` (every line) when a configured version's keys are unusable."""
    w = settings.wechat
    try:
        if w.api_version == "v3":
            primary: PayGateway = _v3(settings, endpoints, transport, observer)
            others = [_v2(settings, endpoints, transport, observer, primary=False)] if w.api_key else []
        else:
            primary = _v2(settings, endpoints, transport, observer, primary=True)
            others = [_v3(settings, endpoints, transport, observer)] if w.apiv3_key else []
    except ConfigError as exc:
        raise SettingsError("bad_wechat_settings", f"the WeChat Pay settings are not usable: {exc.message}") from exc
    return Gateways(primary, *others)

