"""Sandbox mode's side of the wiring: the simulated WeChat, mounted in this process.

The only module outside ``wxpay/simulator/`` and the tests that imports the
simulator (``tests/test_layers.py`` checks it): services and handlers know
only that a simulated WeChat is mounted, and where (``Services.sandbox_bridge``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from config import PublicCredentials, Settings, WechatSettings
from wxpay.endpoints import Endpoints
from wxpay.simulator import demo

if TYPE_CHECKING:  # the simulator's modules load only when sandbox mode mounts it
    from wxpay.simulator.config import SimConfig
    from wxpay.simulator.core import Simulator

PREFIX = "/_wechat"


# The demo merchant's APIv3 files (TEST-ONLY, demo_v3/README.md): live mode refuses
# each of them, and any file holding one of their keys, by fingerprint.
V3_DEMO_FILES = (
    "apiclient_key.pem", "apiclient_pub.pem", "wechatpay_pub_key.pem", "wechatpay_pub_key_PRIVATE_TEST_ONLY.pem",
    "platform_cert.pem", "platform_key_PRIVATE_TEST_ONLY.pem",
)
V3_MERCHANT_KEY = demo.V3_DIR / "apiclient_key.pem"
V3_WECHATPAY_PUBLIC_KEY = demo.V3_DIR / "wechatpay_pub_key.pem"


def public_credentials() -> PublicCredentials:
    """What live mode must refuse: the simulator's demo merchant (its values, its
    V2 certificate and its TEST-ONLY V3 keys), which config/ may not import
    (it knows nothing of the app)."""
    files = (str(demo.CERT_PATH), str(demo.KEY_PATH), *(str(demo.V3_DIR / name) for name in V3_DEMO_FILES))
    return PublicCredentials(frozenset(demo.PUBLIC_VALUES), files)


def with_sandbox_defaults(settings: Settings, port: int) -> Settings:
    """Fill what sandbox mode may default: demo credentials and a loopback URL."""
    if not settings.is_sandbox:
        return settings
    w = settings.wechat
    wechat = replace(
        w,
        appid=w.appid or demo.OFFICIAL_ACCOUNT_APPID,
        app_secret=w.app_secret or demo.OFFICIAL_ACCOUNT_SECRET,
        mch_id=w.mch_id or demo.MCH_ID,
        api_key=w.api_key or demo.API_KEY,
        mini_program_appid=w.mini_program_appid or demo.MINI_PROGRAM_APPID,
        mini_program_secret=w.mini_program_secret or demo.MINI_PROGRAM_SECRET,
        app_appid=w.app_appid or demo.MOBILE_APP_APPID,
    )
    if wechat.api_version == "v3":
        wechat = _v3_demo(wechat)
    elif not wechat.cert_path and not wechat.key_path:
        wechat = replace(wechat, cert_path=str(demo.CERT_PATH), key_path=str(demo.KEY_PATH))
    server = settings.server
    if not server.public_url:
        server = replace(server, public_url=f"http://127.0.0.1:{port}")
    return replace(settings, wechat=wechat, server=server)


def _v3_demo(w: WechatSettings) -> WechatSettings:
    """The demo merchant's TEST-ONLY APIv3 keys, for what is not configured.

    Its API key has no certificate file: the serial is given. WeChat is
    verified with the demo public key unless platform certificates are asked
    for (then the simulator serves its platform certificate: key mode
    ``platform_cert``, or ``gray`` with the public key set as well)."""
    changes: dict[str, object] = {}
    if not w.apiv3_key:
        changes["apiv3_key"] = demo.APIV3_KEY
    if not w.cert_path and not w.key_path:
        changes["key_path"] = str(V3_MERCHANT_KEY)
        changes["merchant_serial_no"] = w.merchant_serial_no or demo.MERCHANT_SERIAL_NO
    if not w.wechatpay_public_key_id and not w.wechatpay_public_key_path and not w.platform_certificates:
        changes["wechatpay_public_key_id"] = demo.PUBLIC_KEY_ID
        changes["wechatpay_public_key_path"] = str(V3_WECHATPAY_PUBLIC_KEY)
    return replace(w, **changes)  # type: ignore[arg-type]


def simulator_key_mode(w: WechatSettings) -> str:
    """How the simulated WeChat signs for this merchant: as the settings verify it."""
    public = bool(w.wechatpay_public_key_id)
    if w.platform_certificates:
        return "gray" if public else "platform_cert"
    return "public_key"


def simulator_config(settings: Settings) -> SimConfig:
    """The simulated WeChat knows exactly the merchant this server is configured as.

    The demo merchant (sandbox's default) has its APIv3 credentials too, the
    TEST-ONLY ones ``python -m wxpay.simulator credentials`` prints, so a V3
    client can be tried against ``/_wechat/v3/`` as the README says."""
    from wxpay.simulator.config import SimApp, SimConfig, SimMerchant, SimV3

    w = settings.wechat
    apps = [SimApp(w.appid, w.app_secret, "official_account")]
    if w.mini_program_appid:
        apps.append(SimApp(w.mini_program_appid, w.mini_program_secret or demo.MINI_PROGRAM_SECRET, "mini_program"))
    if w.app_appid:
        apps.append(SimApp(w.app_appid, demo.MOBILE_APP_SECRET, "mobile_app"))
    # Its own keys, apart from the V2 API key; signing the way this server verifies.
    v3 = SimV3.demo(key_mode=simulator_key_mode(w)) if w.mch_id == demo.MCH_ID else None
    merchant = SimMerchant(w.mch_id, w.api_key, tuple(a.appid for a in apps), v3)
    return SimConfig(
        apps=tuple(apps), merchants=(merchant,), notify_time_scale=settings.simulator.notify_time_scale,
        bills_on_the_day=True,  # `wxpay-server bills --date <today>` works in sandbox without waiting a day
    )


def in_process(settings: Settings) -> bool:
    """Whether this process mounts the simulated WeChat: sandbox mode, and no WeChat URL configured."""
    w = settings.wechat
    return settings.is_sandbox and not (w.pay_base or w.api_base or w.open_base)


@dataclass
class Mounted:
    """The simulated WeChat of this process: where our WeChat clients reach it, and its routes."""

    simulator: Simulator
    endpoints: Endpoints
    routes: list[Any]  # Tornado route tuples

    async def start(self) -> None:
        await self.simulator.start()

    async def stop(self) -> None:
        await self.simulator.stop()


def mount(settings: Settings, *, port: int, public_base: str) -> Mounted:
    """The simulator for ``settings``' merchant, served by this process under ``PREFIX``.

    Server-to-server calls go to loopback; the shopper's browser (OAuth) to
    the public URL."""
    from wxpay.simulator.app import make_routes
    from wxpay.simulator.core import Simulator

    simulator = Simulator(simulator_config(settings))
    loopback = Endpoints.single(f"http://127.0.0.1:{port}{PREFIX}")
    endpoints = replace(loopback, open_base=f"{public_base}{PREFIX}")
    return Mounted(simulator, endpoints, make_routes(simulator, PREFIX))


def cli_endpoints(settings: Settings) -> Endpoints | None:
    """For a command run beside a sandbox server: that server's simulated WeChat, unless one is configured."""
    if settings.is_sandbox and not settings.wechat.pay_base:
        return Endpoints.single(settings.server.public_url.rstrip("/") + PREFIX)
    return None

