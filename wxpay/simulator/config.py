"""Who the simulated WeChat knows: apps (appid, secret, kind) and merchants.

A merchant's API key signs everything for its mch_id; it may use any appid
bound to it. Without a config file the documented demo credentials apply.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import demo

APP_KINDS = ("official_account", "mini_program", "mobile_app")


@dataclass(frozen=True)
class SimApp:
    appid: str
    secret: str
    kind: str = "official_account"

    def __post_init__(self) -> None:
        if self.kind not in APP_KINDS:
            raise ValueError(f"app {self.appid}: kind must be one of {', '.join(APP_KINDS)}")


@dataclass(frozen=True)
class SimMerchant:
    mch_id: str
    api_key: str
    appids: tuple[str, ...] = ()


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
                ),
            ),
            **kw,
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> "SimConfig":
        """Read ``[[apps]]`` and ``[[merchants]]`` tables (see the README)."""
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        apps = tuple(SimApp(a["appid"], a["secret"], a.get("kind", "official_account")) for a in data.get("apps", []))
        merchants = tuple(
            SimMerchant(m["mch_id"], m["api_key"], tuple(m.get("appids", ()))) for m in data.get("merchants", [])
        )
        if not apps or not merchants:
            raise ValueError(f"{path}: needs at least one [[apps]] and one [[merchants]] entry")
        opts = {k: data[k] for k in ("token_daily_quota", "notify_time_scale") if k in data}
        if "users" in data:
            opts["users"] = tuple(str(u) for u in data["users"])
        extra = {k: data[k] for k in ("oauth_domains", "h5_domains") if k in data}
        return cls(apps=apps, merchants=merchants, extra=extra, **opts)
