"""Who the simulated WeChat knows: apps (appid, secret, kind) and merchants.

A merchant's API key signs everything V2 for its mch_id; it may use any appid
bound to it. A merchant may also hold APIv3 credentials (:class:`SimV3`): the
APIv3 key, its API certificate's serial and public key, and WeChat's side of
the trust (a WeChat Pay public key and a platform certificate with their
private keys, the demo test keys unless given) with the key mode. Without a
config file the documented demo credentials apply.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import demo

APP_KINDS = ("official_account", "mini_program", "mobile_app")
# How WeChat signs a merchant's V3 replies and notifies (digest §1):
# public_key (merchants since late 2024), platform_cert (legacy), gray (moving between them).
KEY_MODES = ("public_key", "platform_cert", "gray")


@dataclass(frozen=True)
class SimApp:
    appid: str
    secret: str
    kind: str = "official_account"
    # Bound to the simulated Open platform account: jscode2session answers a unionid.
    open_platform: bool = True

    def __post_init__(self) -> None:
        if self.kind not in APP_KINDS:
            raise ValueError(f"app {self.appid}: kind must be one of {', '.join(APP_KINDS)}")
        if not isinstance(self.open_platform, bool):
            raise ValueError(f"app {self.appid}: open_platform must be true or false")


@dataclass(frozen=True)
class SimV3:
    """One merchant's APIv3 setup as WeChat holds it (PEM text; parsed by ``v3.keyring``).

    ``merchant_public_key_pem`` is the public half of the merchant's API key
    (WeChat verifies requests with it); ``serial_no`` names it. The
    ``wechatpay_*`` and ``platform_*`` fields are WeChat's own keys, the
    simulator's to sign with. ``gray_share`` is the share of notifies signed
    with the public key in ``gray`` mode, drawn from ``random.Random(gray_seed)``.
    """

    apiv3_key: str
    serial_no: str
    merchant_public_key_pem: str = field(repr=False)
    key_mode: str = "public_key"
    gray_share: float = 0.0
    gray_seed: int | None = None
    public_key_id: str = demo.PUBLIC_KEY_ID
    wechatpay_public_key_pem: str = field(default="", repr=False)
    wechatpay_private_key_pem: str = field(default="", repr=False)
    platform_certificate_pem: str = field(default="", repr=False)
    platform_private_key_pem: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if len(self.apiv3_key.encode("utf-8")) != 32:
            raise ValueError("v3.apiv3_key must be exactly 32 ASCII characters")
        if not self.serial_no or not self.merchant_public_key_pem.strip():
            raise ValueError("v3 needs serial_no and merchant_public_key (or merchant_certificate)")
        check_key_mode(self.key_mode, self.gray_share)
        if not self.public_key_id:
            raise ValueError("v3.wechatpay_public_key_id must not be empty")
        for name in ("wechatpay_public_key_pem", "wechatpay_private_key_pem",
                     "platform_certificate_pem", "platform_private_key_pem"):
            if not getattr(self, name).strip():
                raise ValueError(f"v3.{name} is empty")

    @classmethod
    def demo(cls, **kw) -> "SimV3":
        """The demo merchant's V3 credentials: the shared vectors' TEST-ONLY keys."""
        return cls(**{**_demo_v3_fields(), **kw})


def _demo_v3_fields() -> dict:
    return {
        "apiv3_key": demo.APIV3_KEY,
        "serial_no": demo.MERCHANT_SERIAL_NO,
        "merchant_public_key_pem": demo.v3_pem("apiclient_pub.pem"),
        **_demo_wechat_side(),
    }


def _demo_wechat_side() -> dict:
    return {
        "public_key_id": demo.PUBLIC_KEY_ID,
        "wechatpay_public_key_pem": demo.v3_pem("wechatpay_pub_key.pem"),
        "wechatpay_private_key_pem": demo.v3_pem("wechatpay_pub_key_PRIVATE_TEST_ONLY.pem"),
        "platform_certificate_pem": demo.v3_pem("platform_cert.pem"),
        "platform_private_key_pem": demo.v3_pem("platform_key_PRIVATE_TEST_ONLY.pem"),
    }


def check_key_mode(key_mode: object, gray_share: object) -> None:
    """Raise ValueError unless the mode is known and the share a number in [0, 1]."""
    if key_mode not in KEY_MODES:
        raise ValueError(f"key_mode must be one of {', '.join(KEY_MODES)}")
    if isinstance(gray_share, bool) or not isinstance(gray_share, (int, float)) or not 0 <= gray_share <= 1:
        raise ValueError("gray_share must be a number between 0 and 1")


@dataclass(frozen=True)
class SimMerchant:
    mch_id: str
    api_key: str
    appids: tuple[str, ...] = ()
    v3: SimV3 | None = None


@dataclass(frozen=True)
class SimConfig:
    apps: tuple[SimApp, ...]
    merchants: tuple[SimMerchant, ...]
    # access_token fetches allowed per app per (simulated) day before 45009.
    token_daily_quota: int = 2000
    # Divides WeChat's notify retry intervals (15 s ... 6 h): 60 turns 15 s into 0.25 s.
    notify_time_scale: float = 1.0
    # Openids handed out by OAuth are derived from this per-app seed.
    users: tuple[str, ...] = ("alice", "bob", "carol")
    extra: dict = field(default_factory=dict)
    # Faults active from the start ([[faults]] tables: endpoint, kind, count, seconds, n).
    faults: tuple[dict, ...] = ()

    def app(self, appid: str) -> SimApp | None:
        return next((a for a in self.apps if a.appid == appid), None)

    def merchant(self, mch_id: str) -> SimMerchant | None:
        return next((m for m in self.merchants if m.mch_id == mch_id), None)

    @classmethod
    def demo(cls, **kw) -> "SimConfig":
        return cls(
            apps=(
                SimApp(demo.OFFICIAL_ACCOUNT_APPID, demo.OFFICIAL_ACCOUNT_SECRET, "official_account"),
                SimApp(demo.MINI_PROGRAM_APPID, demo.MINI_PROGRAM_SECRET, "mini_program"),
                SimApp(demo.MOBILE_APP_APPID, demo.MOBILE_APP_SECRET, "mobile_app"),
            ),
            merchants=(
                SimMerchant(
                    demo.MCH_ID,
                    demo.API_KEY,
                    (demo.OFFICIAL_ACCOUNT_APPID, demo.MINI_PROGRAM_APPID, demo.MOBILE_APP_APPID),
                    SimV3.demo(),
                ),
            ),
            **kw,
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> "SimConfig":
        """Read ``[[apps]]``, ``[[merchants]]`` (with ``[merchants.v3]``) and ``[[faults]]`` (see docs/simulator.md)."""
        path = Path(path)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        apps = tuple(SimApp(a["appid"], a["secret"], a.get("kind", "official_account"), a.get("open_platform", True))
                     for a in data.get("apps", []))
        merchants = tuple(
            SimMerchant(m["mch_id"], m["api_key"], tuple(m.get("appids", ())),
                        _v3_from_toml(m["v3"], path.parent, m["mch_id"]) if "v3" in m else None)
            for m in data.get("merchants", [])
        )
        if not apps or not merchants:
            raise ValueError(f"{path}: needs at least one [[apps]] and one [[merchants]] entry")
        opts = {k: data[k] for k in ("token_daily_quota", "notify_time_scale") if k in data}
        if "users" in data:
            opts["users"] = tuple(str(u) for u in data["users"])
        faults = data.get("faults", [])
        if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
            raise ValueError(f"{path}: faults must be [[faults]] tables")
        extra = {k: data[k] for k in ("oauth_domains", "h5_domains", "v3_http_notify_hosts") if k in data}
        return cls(apps=apps, merchants=merchants, extra=extra, faults=tuple(faults), **opts)


_V3_KEYS = {
    "apiv3_key", "serial_no", "merchant_public_key", "merchant_certificate", "key_mode", "gray_share", "gray_seed",
    "wechatpay_public_key_id", "wechatpay_public_key", "wechatpay_private_key", "platform_certificate",
    "platform_private_key",
}


def _v3_from_toml(table: dict, base: Path, mch_id: str) -> SimV3:
    """``[merchants.v3]``: key files are paths, relative to the config file's folder."""
    where = f"merchant {mch_id} v3"
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table")
    unknown = set(table) - _V3_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")

    def pem(name: str) -> str:
        file = base / str(table[name])
        try:
            return file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: cannot read {name} file {file}: {exc}") from None

    fields: dict = {k: table[k] for k in ("apiv3_key", "serial_no", "key_mode", "gray_share", "gray_seed") if k in table}
    if "merchant_certificate" in table:
        # Imported here: the config stays cheap to import for V2-only use.
        from ..v3.keys import load_certificate

        cert = load_certificate(pem("merchant_certificate"))
        if fields.get("serial_no", cert.serial_no).upper() != cert.serial_no:
            raise ValueError(f"{where}: serial_no {fields['serial_no']} is not the certificate's ({cert.serial_no})")
        fields["serial_no"] = cert.serial_no
        from cryptography.hazmat.primitives import serialization

        fields["merchant_public_key_pem"] = cert.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    elif "merchant_public_key" in table:
        fields["merchant_public_key_pem"] = pem("merchant_public_key")
    else:
        raise ValueError(f"{where}: needs merchant_public_key or merchant_certificate (a PEM file)")
    wechat = _demo_wechat_side()  # WeChat's side defaults to the TEST-ONLY demo keys
    if "wechatpay_public_key_id" in table:
        wechat["public_key_id"] = str(table["wechatpay_public_key_id"])
    for name, target in (("wechatpay_public_key", "wechatpay_public_key_pem"),
                         ("wechatpay_private_key", "wechatpay_private_key_pem"),
                         ("platform_certificate", "platform_certificate_pem"),
                         ("platform_private_key", "platform_private_key_pem")):
        if name in table:
            wechat[target] = pem(name)
    if not isinstance(fields.get("gray_seed", 0), int) or isinstance(fields.get("gray_seed"), bool):
        raise ValueError(f"{where}: gray_seed must be an integer")
    try:
        return SimV3(**fields, **wechat)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
