"""Settings: one frozen tree, loaded from a TOML file, the environment and the CLI.

Precedence, lowest first: built-in defaults, the TOML file, ``WXPAY_<SECTION>_<KEY>``
environment variables, explicit overrides (command-line flags). Every problem is
collected and reported together, one line each, so a merchant fixes a file in one
pass instead of one restart per typo. Unknown keys are errors: a misspelt
``api_kye`` must not silently leave the real key unset.

This module knows nothing of the app (standard library only). The entry point
fills what only the app knows: sandbox credentials from the simulator and the
simulator's base URLs.
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import secrets
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal, Mapping
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .validate import PublicCredentials

Mode = Literal["sandbox", "live"]
SignType = Literal["MD5", "HMAC-SHA256"]
ApiVersion = Literal["v2", "v3"]
OAuthScope = Literal["snsapi_base", "snsapi_userinfo"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

ENV_PREFIX = "WXPAY_"
CONFIG_ENV = "WXPAY_CONFIG"
MONGODB_URI_ALIAS = "MONGODB_URI"
# Other names an environment variable may have (the documented one wins when both are set).
ENV_ALIASES = {"store.mongodb_uri": MONGODB_URI_ALIAS, "server.log_level": "WXPAY_LOG_LEVEL"}
DEFAULT_CONFIG_PATH = Path(__file__).with_name("wxpay-server.toml")

# Documented sandbox-only defaults; validate_live refuses them in live mode.
SANDBOX_MERCHANT_TOKEN = "sandbox-merchant-token"
MAX_BODY_BYTES_LIMIT = 1 << 20
SANDBOX_ADMIN_PASSWORD = "sandbox-admin"

LIVE_PAY_BASE = "https://api.mch.weixin.qq.com"
LIVE_OPEN_BASE = "https://open.weixin.qq.com"
LIVE_API_BASE = "https://api.weixin.qq.com"

REDACTED = "***"


class SettingsError(Exception):
    """Settings that cannot be used; ``problems`` holds one actionable line each."""

    def __init__(self, code: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = list(problems) if problems is not None else [message]

    @classmethod
    def from_problems(cls, code: str, title: str, problems: list[str]) -> "SettingsError":
        return cls(code, title + "\n" + "\n".join(f"- {p}" for p in problems), problems)


# --- the tree ----------------------------------------------------------------


class _Section:
    """Shared repr that never prints a secret (Settings end up in tracebacks)."""

    _secrets: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            parts.append(f"{f.name}={_redact_value(self, f.name, getattr(self, f.name))!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    cookie_secret: str | None = None
    xsrf_cookies: bool = True
    debug: bool = False
    max_body_bytes: int = 65536
    # Slow and greedy clients (edge/http_server.py, edge/connection_cap.py).
    header_timeout_s: float = 20.0
    idle_timeout_s: float = 75.0
    body_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    max_connections: int = 1000
    max_connections_per_ip: int = 200
    log_level: LogLevel = "INFO"

    _secrets: ClassVar[frozenset[str]] = frozenset({"cookie_secret"})


@dataclass(frozen=True, repr=False)
class StoreSettings(_Section):
    mongodb_uri: str | None = None
    mongodb_database: str = "wxpay"
    sqlite_path: str = "data/wxpay.sqlite3"

    _secrets: ClassVar[frozenset[str]] = frozenset({"mongodb_uri"})

    @property
    def backend(self) -> Literal["mongodb", "sqlite"]:
        """MongoDB when a URI is configured, else the embedded SQLite file."""
        return "mongodb" if self.mongodb_uri else "sqlite"


@dataclass(frozen=True, repr=False)
class WechatSettings(_Section):
    appid: str | None = None
    app_secret: str | None = None
    mch_id: str | None = None
    api_key: str | None = None
    sign_type: SignType = "MD5"
    cert_path: str | None = None
    key_path: str | None = None
    # APIv3 (wechat.api_version = "v3"): key_path signs every request; the
    # certificate's serial is read from cert_path or given here.
    api_version: ApiVersion = "v2"
    apiv3_key: str | None = None
    merchant_serial_no: str | None = None
    wechatpay_public_key_id: str | None = None
    wechatpay_public_key_path: str | None = None
    platform_certificates: bool = False
    mini_program_appid: str | None = None
    mini_program_secret: str | None = None
    app_appid: str | None = None
    oauth_scope: OAuthScope = "snsapi_base"
    use_jssdk: bool = False
    notify_url: str | None = None
    refund_notify_url: str | None = None
    pay_base: str | None = None
    open_base: str | None = None
    api_base: str | None = None

    _secrets: ClassVar[frozenset[str]] = frozenset(
        {"app_secret", "api_key", "mini_program_secret", "apiv3_key"}
    )

    @property
    def has_credentials(self) -> bool:
        """True when every credential a payment needs is configured."""
        key = self.apiv3_key if self.api_version == "v3" else self.api_key
        return all((self.appid, self.app_secret, self.mch_id, key))

    @property
    def v3_configured(self) -> bool:
        """Whether APIv3 is in use or prepared (its key is set): its credentials are then checked."""
        return self.api_version == "v3" or self.apiv3_key is not None

    @property
    def v2_configured(self) -> bool:
        """Whether APIv2 is in use, or its key is kept to accept APIv2 notifies after a move to APIv3."""
        return self.api_version == "v2" or self.api_key is not None


@dataclass(frozen=True, repr=False)
class MerchantApiSettings(_Section):
    tokens: tuple[str, ...] = ()

    _secrets: ClassVar[frozenset[str]] = frozenset({"tokens"})


@dataclass(frozen=True, repr=False)
class AdminSettings(_Section):
    username: str = "admin"
    password: str | None = None

    _secrets: ClassVar[frozenset[str]] = frozenset({"password"})


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    amount_fen: int
    description: str = ""


DEMO_CATALOGUE: tuple[Product, ...] = (
    Product("sticker", "Sticker", 1, "A one-fen sticker: the smallest possible payment."),
    Product("green-tea", "Green tea, 250 g", 3800, "Loose-leaf green tea."),
    Product("mug", "Enamel mug", 4900, "A mug to drink the tea from."),
)


# The shop's name is shown on the pay page and sent to WeChat at the head of
# every order's description (127 bytes in all): one line, at most this long.
SHOP_NAME_MAX_BYTES = 64
_UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\u2028\u2029]")


@dataclass(frozen=True, repr=False)
class ShopSettings(_Section):
    name: str = "Demo shop"
    catalogue: tuple[Product, ...] = DEMO_CATALOGUE

    def product(self, sku: str) -> Product | None:
        return next((p for p in self.catalogue if p.sku == sku), None)


@dataclass(frozen=True, repr=False)
class CheckoutSettings(_Section):
    default_expiry_minutes: int = 30
    min_expiry_minutes: int = 5
    max_expiry_minutes: int = 1440
    max_orders: int = 10
    orders_per_ip: int = 60
    orders_per_ip_window_s: int = 600


@dataclass(frozen=True, repr=False)
class OAuthSettings(_Section):
    sign_ins_per_ip: int = 60
    sign_ins_per_ip_window_s: int = 600


@dataclass(frozen=True, repr=False)
class ReconcilerSettings(_Section):
    enabled: bool = True
    interval_s: float = 15.0
    query_after_s: float = 60.0
    close_grace_s: float = 60.0


@dataclass(frozen=True, repr=False)
class TokenSettings(_Section):
    refresh_ahead_s: int = 600


@dataclass(frozen=True, repr=False)
class WebhookSettings(_Section):
    url: str | None = None
    secret: str | None = None
    poll_interval_s: float = 1.0
    retry_base_s: float = 10.0
    max_attempts: int = 15
    timeout_s: float = 10.0

    _secrets: ClassVar[frozenset[str]] = frozenset({"secret"})


@dataclass(frozen=True, repr=False)
class AuditSettings(_Section):
    retention_days: int = 90


@dataclass(frozen=True, repr=False)
class NotifySettings(_Section):
    refused_per_minute: int = 30
    refused_per_minute_total: int = 300
    confirm_timeout_s: float = 3.0


@dataclass(frozen=True, repr=False)
class SimulatorSettings(_Section):
    notify_time_scale: float = 1.0


@dataclass(frozen=True)
class Settings:
    """Everything the process is configured with. Build it with :func:`load_settings`."""

    mode: Mode = "sandbox"
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    wechat: WechatSettings = WechatSettings()
    merchant_api: MerchantApiSettings = MerchantApiSettings()
    admin: AdminSettings = AdminSettings()
    shop: ShopSettings = ShopSettings()
    checkout: CheckoutSettings = CheckoutSettings()
    oauth: OAuthSettings = OAuthSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    tokens: TokenSettings = TokenSettings()
    webhooks: WebhookSettings = WebhookSettings()
    audit: AuditSettings = AuditSettings()
    notify: NotifySettings = NotifySettings()
    simulator: SimulatorSettings = SimulatorSettings()
    config_file: str | None = None
    # Where each explicitly set key came from ("file ...", "env WXPAY_...", ...).
    sources: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}), repr=False, compare=False
    )

    @property
    def is_live(self) -> bool:
        return self.mode == "live"

    @property
    def is_sandbox(self) -> bool:
        return self.mode == "sandbox"

    def check(self, public: "PublicCredentials | None" = None, extra: "Iterable[str]" = ()) -> "Settings":
        """Raise SettingsError listing every problem if live mode is not safe.

        ``public`` comes from the entry point (the simulator's demo
        merchant); live mode refuses to start without it. ``extra``: more
        lines the entry point found (what this package cannot read itself,
        such as the APIv3 keys: ``wiring/gateways.py``)."""
        from .validate import validate_live

        problems = validate_live(self, public, extra)
        if problems:
            raise SettingsError.from_problems(
                "unsafe_live_settings",
                f"refusing to start in live mode: {len(problems)} problem(s)",
                problems,
            )
        return self


_SETTINGS_HINTS = typing.get_type_hints(Settings)
SECTIONS: dict[str, type] = {
    f.name: _SETTINGS_HINTS[f.name]
    for f in dataclasses.fields(Settings)
    if f.name not in ("mode", "config_file", "sources")
}


# --- keys: one description per setting, shared by loader, docs and tests ----


@dataclass(frozen=True)
class Key:
    section: str | None  # None for the top-level ``mode``
    name: str
    type: Any
    default: Any

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def secret(self) -> bool:
        return self.section is not None and self.name in SECTIONS[self.section]._secrets

    @property
    def env_var(self) -> str | None:
        if self.type == tuple[Product, ...]:
            return None  # a list of tables has no sensible single-string form
        return (ENV_PREFIX + self.dotted.replace(".", "_")).upper()


def iter_keys() -> list[Key]:
    """Every setting the file and the environment accept, in documentation order."""
    keys = [Key(None, "mode", Mode, "sandbox")]
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            keys.append(Key(section, f.name, hints[f.name], f.default))
    return keys


_PRODUCT_HINTS = typing.get_type_hints(Product)
_PRODUCT_REQUIRED = ("sku", "name", "amount_fen")


# --- loading ------------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load defaults, then the TOML file, then the environment, then ``overrides``.

    ``path`` None means ``$WXPAY_CONFIG`` if set, else the packaged example file
    (which holds exactly the built-in defaults). ``overrides`` takes the same
    shape as the file (``{"server": {"port": 9000}}``) or dotted keys
    (``{"server.port": 9000}``). Raises SettingsError naming every problem.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}  # dotted key -> typed value
    sources: dict[str, str] = {}
    keys = {k.dotted: k for k in iter_keys()}

    config_file = _pick_file(path, env)
    if config_file is not None:
        data = _read_toml(config_file)
        origin = f"file {config_file}"
        for dotted, value in _flatten(data, problems, f"in {config_file}"):
            _accept(keys, dotted, value, origin, values, sources, problems, f"in {config_file}")

    for dotted, env_var, raw in _env_items(keys, env, problems):
        key = keys[dotted]
        try:
            value = _coerce_env(key.type, raw)
        except ValueError as exc:
            problems.append(f"{env_var}: {exc}")
            continue
        values[dotted] = value
        sources[dotted] = f"env {env_var}"

    for dotted, value in _flatten(dict(overrides or {}), problems, "in overrides"):
        _accept(keys, dotted, value, "override", values, sources, problems, "in overrides")

    if problems:
        raise _load_error(problems)
    settings = _build(values, sources, config_file, problems)
    if problems:
        raise _load_error(problems)
    return settings


def _load_error(problems: list[str]) -> SettingsError:
    return SettingsError.from_problems(
        "invalid_settings", f"invalid settings: {len(problems)} problem(s)", problems
    )


def _pick_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        chosen = Path(path)
        origin = "--config"
    elif env.get(CONFIG_ENV):
        chosen = Path(env[CONFIG_ENV])
        origin = CONFIG_ENV
    else:
        return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None
    if not chosen.is_file():
        raise SettingsError(
            "config_file_missing", f"config file {chosen} (from {origin}) does not exist or is not a file"
        )
    return chosen


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SettingsError("config_file_unreadable", f"cannot read config file {path}: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("config_file_invalid", f"config file {path} is not valid TOML: {exc}")


def _flatten(data: Mapping[str, Any], problems: list[str], where: str):
    """Yield (dotted key, value) pairs from a file-shaped or dotted mapping."""
    for top, value in data.items():
        if "." in top:
            yield top, value
        elif top in SECTIONS:
            if not isinstance(value, Mapping):
                problems.append(f"'{top}' {where} must be a table ([{top}]), got {_kind(value)}")
                continue
            for name, inner in value.items():
                yield f"{top}.{name}", inner
        else:
            yield top, value


def _accept(
    keys: Mapping[str, Key],
    dotted: str,
    value: Any,
    origin: str,
    values: dict[str, Any],
    sources: dict[str, str],
    problems: list[str],
    where: str,
) -> None:
    key = keys.get(dotted)
    if key is None and "." not in dotted and isinstance(value, Mapping):
        close = difflib.get_close_matches(dotted, list(SECTIONS), n=1, cutoff=0.6)
        hint = f" (did you mean [{close[0]}]?)" if close else ""
        problems.append(f"unknown section [{dotted}] {where}{hint}")
        return
    if key is None:
        problems.append(f"unknown setting '{dotted}' {where}{_suggest(dotted, keys)}")
        return
    try:
        typed = _check_type(key.type, value, dotted, where, secret=key.secret)
    except ValueError as exc:
        problems.append(str(exc))
        return
    values[dotted] = typed
    sources[dotted] = origin


def _suggest(dotted: str, keys: Mapping[str, Key]) -> str:
    close = difflib.get_close_matches(dotted, list(keys), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", tuple: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if tp == tuple[str, ...]:
        return "an array of strings"
    if tp == tuple[Product, ...]:
        return "an array of tables ([[shop.catalogue]])"
    base = _strip_optional(tp)
    return {bool: "a boolean (true/false)", int: "an integer", float: "a number",
            str: "a string"}[base]


def _strip_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if type(None) in args:
        return next(a for a in args if a is not type(None))
    return tp


def _check_type(tp: Any, value: Any, dotted: str, where: str, *, secret: bool = False) -> Any:
    """Strict typing for values that arrive typed (TOML, overrides)."""
    shown = "" if secret else f" {value!r}"  # a mistyped secret is still a secret
    bad = ValueError(f"'{dotted}' {where} must be {_describe(tp)}, got {_kind(value)}{shown}")
    if tp == tuple[Product, ...]:
        return _check_catalogue(value, dotted, where)
    if tp == tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise bad
        return tuple(value)
    if typing.get_origin(tp) is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    optional = type(None) in typing.get_args(tp)
    base = _strip_optional(tp)
    if optional and (value is None or value == ""):
        return None
    if base is bool:
        if not isinstance(value, bool):
            raise bad
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif base is str:
        if not isinstance(value, str):
            raise bad
        if value == "":
            raise ValueError(f"'{dotted}' {where} must not be empty")
    return value


def _check_catalogue(value: Any, dotted: str, where: str) -> tuple[Product, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"'{dotted}' {where} must be an array of tables ([[shop.catalogue]])")
    lines: list[str] = []
    products: list[Product] = []
    for i, item in enumerate(value):
        label = f"{dotted}[{i}]"
        if isinstance(item, Product):
            products.append(item)
            continue
        if not isinstance(item, Mapping):
            lines.append(f"'{label}' {where} must be a table, got {_kind(item)}")
            continue
        fields: dict[str, Any] = {}
        for name, v in item.items():
            if name not in _PRODUCT_HINTS:
                lines.append(f"unknown setting '{label}.{name}' {where}")
                continue
            try:
                fields[name] = _check_type(_PRODUCT_HINTS[name], v, f"{label}.{name}", where)
            except ValueError as exc:
                lines.append(str(exc))
        missing = [n for n in _PRODUCT_REQUIRED if n not in item]
        if missing:
            lines.append(f"'{label}' {where} is missing {', '.join(missing)}")
        elif len(fields) == len(item):
            products.append(Product(**fields))
    if lines:
        raise ValueError("\n".join(lines))
    return tuple(products)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce_env(tp: Any, raw: str) -> Any:
    """Turn an environment string into the key's type (messages omit the value)."""
    if typing.get_origin(tp) is Literal:
        if raw not in typing.get_args(tp):
            raise ValueError(f"must be {_describe(tp)}")
        return raw
    if tp == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    optional = type(None) in typing.get_args(tp)
    base = _strip_optional(tp)
    if optional and raw.strip() == "":
        return None
    if base is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("must be a boolean (true/false, 1/0, yes/no, on/off)")
    if base is int:
        try:
            return int(raw.strip(), 10)
        except ValueError:
            raise ValueError("must be an integer") from None
    if base is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if raw == "":
        raise ValueError("must not be empty")
    return raw


def _env_items(keys: Mapping[str, Key], env: Mapping[str, str], problems: list[str]):
    """Yield (dotted, variable, raw) for every environment override present."""
    by_var = {k.env_var: k.dotted for k in keys.values() if k.env_var}
    for dotted, key in keys.items():
        if key.env_var and key.env_var in env:
            yield dotted, key.env_var, env[key.env_var]
    for alias_target, alias in ENV_ALIASES.items():
        if keys[alias_target].env_var not in env and alias in env:
            yield alias_target, alias, env[alias]
    # A misspelt WXPAY_SERVER_PROT must not be silently ignored either.
    section_prefixes = sorted((ENV_PREFIX + s.upper() + "_" for s in SECTIONS), key=len, reverse=True)
    for var in env:
        if var in by_var or not var.startswith(ENV_PREFIX):
            continue
        if any(var.startswith(p) for p in section_prefixes):
            if var == "WXPAY_SHOP_CATALOGUE":
                problems.append(f"{var}: the catalogue can only be set in the TOML file ([[shop.catalogue]])")
                continue
            close = difflib.get_close_matches(var, list(by_var), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{var}: unknown setting{hint}")


# --- building and cross-field checks -----------------------------------------


def _build(
    values: dict[str, Any], sources: dict[str, str], config_file: Path | None, problems: list[str]
) -> Settings:
    mode = values.get("mode", "sandbox")
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        prefix = section + "."
        kwargs = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
        sections[section] = cls(**kwargs)
    # URLs are joined with paths later; one spelling avoids "//notify".
    sections["server"] = _strip_slash(sections["server"], ("public_url",))
    sections["wechat"] = _strip_slash(sections["wechat"], ("pay_base", "open_base", "api_base"))

    _check_ranges(sections, problems)
    sections = _apply_mode_defaults(mode, sections, sources)
    return Settings(
        mode=mode,
        config_file=str(config_file) if config_file else None,
        sources=types.MappingProxyType(dict(sources)),
        **sections,
    )


def _strip_slash(obj: Any, names: tuple[str, ...]) -> Any:
    changes = {n: getattr(obj, n).rstrip("/") for n in names if getattr(obj, n)}
    return dataclasses.replace(obj, **changes) if changes else obj


def _check_ranges(s: Mapping[str, Any], problems: list[str]) -> None:
    server: ServerSettings = s["server"]
    if not 0 <= server.port <= 65535:
        problems.append(f"server.port must be between 0 and 65535, got {server.port}")
    if not 1024 <= server.max_body_bytes <= MAX_BODY_BYTES_LIMIT:
        # A body is held in memory whole (a 100 MB one peaked the process at 485 MB); every body this
        # server takes (checkouts, refunds, WeChat's notifies) is a few KB.
        problems.append(f"server.max_body_bytes must be between 1024 and {MAX_BODY_BYTES_LIMIT} (1 MiB)")
    for name in ("header_timeout_s", "idle_timeout_s", "body_timeout_s", "write_timeout_s"):
        if not 0 < getattr(server, name) <= 3600:
            problems.append(f"server.{name} must be greater than 0 and at most 3600 (seconds)")
    if server.max_connections < 1:
        problems.append("server.max_connections must be at least 1")
    if not 1 <= server.max_connections_per_ip <= max(server.max_connections, 1):
        problems.append("server.max_connections_per_ip must be between 1 and server.max_connections")
    for cidr in server.trusted_proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(
                f"server.trusted_proxies: '{cidr}' is not an IP address or CIDR network (e.g. 10.0.0.0/8)"
            )
    if server.public_url is not None:
        problems.extend(_origin_problems("server.public_url", server.public_url))
    uri = s["store"].mongodb_uri
    if uri is not None and not uri.lower().startswith(("mongodb://", "mongodb+srv://")):
        problems.append("store.mongodb_uri must start with mongodb:// or mongodb+srv:// (leave it unset for SQLite)")
    wechat: WechatSettings = s["wechat"]
    for name in ("notify_url", "pay_base", "open_base", "api_base"):
        url = getattr(wechat, name)
        if url is not None and not _looks_like_url(url):
            problems.append(f"wechat.{name} must be an absolute http(s) URL")
    if s["webhooks"].url is not None and not _looks_like_url(s["webhooks"].url):
        problems.append("webhooks.url must be an absolute http(s) URL")

    shop: ShopSettings = s["shop"]
    if not shop.name.strip():
        problems.append("shop.name must not be empty: shoppers see it on the pay page and in WeChat")
    elif _UNSAFE_TEXT.search(shop.name):
        problems.append("shop.name must be one line of plain text (no control, bidi or line-separator characters)")
    elif len(shop.name.encode("utf-8")) > SHOP_NAME_MAX_BYTES:
        problems.append(f"shop.name must be at most {SHOP_NAME_MAX_BYTES} UTF-8 bytes (a Chinese character is 3): "
                        "WeChat shows it before each order's description, 127 bytes in all")
    seen: set[str] = set()
    for p in shop.catalogue:
        if not p.sku.strip():
            problems.append("shop.catalogue: every product needs a non-empty sku")
        elif p.sku in seen:
            problems.append(f"shop.catalogue: sku '{p.sku}' appears twice")
        seen.add(p.sku)
        if p.amount_fen <= 0:
            problems.append(f"shop.catalogue: '{p.sku}' amount_fen must be a positive number of fen")

    co: CheckoutSettings = s["checkout"]
    if co.min_expiry_minutes < 1:
        problems.append("checkout.min_expiry_minutes must be at least 1")
    if not co.min_expiry_minutes <= co.default_expiry_minutes <= co.max_expiry_minutes:
        problems.append(
            "checkout: need min_expiry_minutes <= default_expiry_minutes <= max_expiry_minutes, got "
            f"{co.min_expiry_minutes} / {co.default_expiry_minutes} / {co.max_expiry_minutes}"
        )
    if not 1 <= co.max_orders <= 100:
        problems.append("checkout.max_orders must be between 1 and 100")
    if co.orders_per_ip < 0:
        problems.append("checkout.orders_per_ip must not be negative (0 switches the limit off)")
    if not 1 <= co.orders_per_ip_window_s <= 86400:
        problems.append("checkout.orders_per_ip_window_s must be between 1 and 86400")

    oauth: OAuthSettings = s["oauth"]
    if oauth.sign_ins_per_ip < 0:
        problems.append("oauth.sign_ins_per_ip must not be negative (0 switches the limit off)")
    if not 1 <= oauth.sign_ins_per_ip_window_s <= 86400:
        problems.append("oauth.sign_ins_per_ip_window_s must be between 1 and 86400")

    rec: ReconcilerSettings = s["reconciler"]
    for name in ("interval_s", "query_after_s"):
        if getattr(rec, name) <= 0:
            problems.append(f"reconciler.{name} must be greater than 0")
    if rec.close_grace_s < 0:
        problems.append("reconciler.close_grace_s must not be negative")

    hooks: WebhookSettings = s["webhooks"]
    for name in ("poll_interval_s", "retry_base_s", "timeout_s"):
        if getattr(hooks, name) <= 0:
            problems.append(f"webhooks.{name} must be greater than 0")
    if not 1 <= hooks.max_attempts <= 100:
        problems.append("webhooks.max_attempts must be between 1 and 100")

    ahead = s["tokens"].refresh_ahead_s
    if not 0 <= ahead < 7200:
        problems.append("tokens.refresh_ahead_s must be between 0 and 7199 (tokens live 7200 s)")

    if not 1 <= s["audit"].retention_days <= 3650:
        problems.append("audit.retention_days must be between 1 and 3650")
    notify: NotifySettings = s["notify"]
    for name in ("refused_per_minute", "refused_per_minute_total"):
        if not 1 <= getattr(notify, name) <= 1_000_000:
            problems.append(f"notify.{name} must be between 1 and 1000000")
    if not 0.5 <= notify.confirm_timeout_s <= 4.5:
        problems.append("notify.confirm_timeout_s must be between 0.5 and 4.5 (WeChat waits 5 s for an answer)")

    if s["simulator"].notify_time_scale <= 0:
        problems.append("simulator.notify_time_scale must be greater than 0")


def _origin_problems(dotted: str, url: str) -> list[str]:
    """At most one line: ``url`` must be a bare origin, scheme://host[:port].

    Every URL the server hands out (pay links, notify and OAuth callback
    URLs) is this base plus a path, and its routes and redirects are
    root-relative: a path prefix, query or fragment would end up in the
    middle of those URLs, and user:password@ would be sent to WeChat and
    shown to every shopper."""
    if not _looks_like_url(url):
        return [f"{dotted} must be an absolute http(s) URL, e.g. https://pay.your-domain.cn"]
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return [f"{dotted} must not contain a user name or password (user:password@)"]
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535 or parts.netloc.endswith(":"):
        return [f"{dotted} has an empty or out-of-range port (must be 1-65535)"]
    if parts.path not in ("", "/"):
        return [f"{dotted} must not have a path ({parts.path}): the server's routes start at /"]
    if parts.query or url.rstrip("/").endswith("?"):
        return [f"{dotted} must not have a query string"]
    if parts.fragment or "#" in url:
        return [f"{dotted} must not have a #fragment"]
    return []


def _looks_like_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _apply_mode_defaults(
    mode: str, s: dict[str, Any], sources: dict[str, str]
) -> dict[str, Any]:
    """Sandbox gets working throwaway secrets; live gets real WeChat base URLs."""
    if mode == "sandbox":
        if s["server"].cookie_secret is None:
            s["server"] = dataclasses.replace(s["server"], cookie_secret=secrets.token_urlsafe(32))
            sources["server.cookie_secret"] = "generated for this process (sandbox)"
        if not s["merchant_api"].tokens:
            s["merchant_api"] = MerchantApiSettings(tokens=(SANDBOX_MERCHANT_TOKEN,))
            sources["merchant_api.tokens"] = "sandbox default"
        if s["admin"].password is None:
            s["admin"] = dataclasses.replace(s["admin"], password=SANDBOX_ADMIN_PASSWORD)
            sources["admin.password"] = "sandbox default"
    else:
        live = {"pay_base": LIVE_PAY_BASE, "open_base": LIVE_OPEN_BASE, "api_base": LIVE_API_BASE}
        missing = {k: v for k, v in live.items() if getattr(s["wechat"], k) is None}
        if missing:
            s["wechat"] = dataclasses.replace(s["wechat"], **missing)
            for k in missing:
                sources[f"wechat.{k}"] = "live default"
    return s


# --- explaining ---------------------------------------------------------------


def _redact_uri(uri: str) -> str:
    """Hide the password inside a MongoDB URI, keep user and hosts for debugging."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return REDACTED
    cut = len(rest)
    for ch in "/?":
        i = rest.find(ch)
        if i != -1:
            cut = min(cut, i)
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        return uri
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{REDACTED}@{hosts}{tail}"


def _redact_value(section: Any, name: str, value: Any) -> Any:
    if name not in type(section)._secrets or value is None:
        return value
    if name == "mongodb_uri":
        return _redact_uri(value)
    if isinstance(value, tuple):
        return tuple(REDACTED for _ in value)
    return REDACTED


def redacted(settings: Settings) -> dict[str, Any]:
    """A JSON-safe view for logs and /status with every secret replaced by ``***``."""
    out: dict[str, Any] = {"mode": settings.mode, "config_file": settings.config_file}
    for section in SECTIONS:
        obj = getattr(settings, section)
        view: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = _redact_value(obj, f.name, getattr(obj, f.name))
            if isinstance(value, tuple):
                value = [dataclasses.asdict(v) if isinstance(v, Product) else v for v in value]
            view[f.name] = value
        out[section] = view
    return out


def explain(settings: Settings) -> list[str]:
    """One line per key: its (redacted) value and where it came from."""
    view = redacted(settings)
    lines = []
    for key in iter_keys():
        value = view[key.section][key.name] if key.section else view[key.name]
        origin = settings.sources.get(key.dotted, "default")
        lines.append(f"{key.dotted} = {value!r}  ({origin})")
    return lines
