"""The Tornado application and its listener, from the services and the settings.

Tests build the app with this same factory as ``server.py`` does.
"""
from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import tornado.web

from config import Settings
from edge.connection_cap import LOOPBACK, fit_to_open_files
from edge.headers import header_values, security_headers
from edge.http_server import EdgeHTTPServer, Limits
from handlers import after_payment as after_payment_routes
from handlers import api as api_routes
from handlers import console as console_routes
from handlers import health as health_routes
from handlers import mini_program as mini_program_routes
from handlers import notify as notify_routes
from handlers import openapi as openapi_routes
from handlers import pay as pay_routes
from handlers import shop as shop_routes
from handlers import status as status_routes
from edge.log_budget import LineBudget
from handlers.access_log import AccessLog, access_log
from handlers.body_limit import BodyLimit, server_max_body_size
from handlers.inflight import Inflight
from handlers.lockout import admin_lockout, merchant_api_lockout
from handlers.static_files import StaticFiles
from service.container import Services
from service.metrics import StatusMetrics

VERSION = "0.1.0"
WEB = Path(__file__).resolve().parent.parent / "web"


def without_wechat_secrets(settings: Settings) -> Settings:
    """The settings handlers read (the shop, the mode, JSSDK on or off …),
    minus WeChat's secrets, which only the gateway and the WeChat clients hold."""
    w = settings.wechat
    return replace(settings, wechat=replace(w, api_key=None, app_secret=None, mini_program_secret=None))


def make_app(services: Services | None, settings: Settings, *, extra_routes: Sequence[Any] = ()) -> tornado.web.Application:
    """The Tornado application. ``extra_routes``: the simulated WeChat's, when this process mounts it.
    ``services`` may be ``None`` for a route table that is read and never served."""
    routes: list[Any] = []
    # Tornado tries routes in order: the hot ones (WeChat's notifies, the page's
    # polls and prepays) first. No two modules' patterns overlap.
    for module in (notify_routes, pay_routes, api_routes, after_payment_routes, mini_program_routes, openapi_routes,
                   health_routes, shop_routes, status_routes, console_routes):
        routes.extend(module.routes())
    routes.extend(extra_routes)
    trusted = tuple(ipaddress.ip_network(n, strict=False) for n in settings.server.trusted_proxies)
    log_budget = LineBudget("client error (4xx)", logger=access_log)
    app = tornado.web.Application(
        routes,
        services=services,
        inflight=Inflight(),
        version=VERSION,
        admin_lockout=admin_lockout(),
        api_lockout=merchant_api_lockout(),
        metrics=StatusMetrics(),  # its own CollectorRegistry, never the global one
        app_settings=without_wechat_secrets(settings),
        template_path=str(WEB / "templates"),
        static_path=str(WEB / "static"),
        static_url_prefix="/static/",
        static_handler_class=StaticFiles,
        cookie_secret=settings.server.cookie_secret,
        xsrf_cookies=settings.server.xsrf_cookies,
        xsrf_cookie_kwargs={"httponly": False, "samesite": "Lax", "secure": settings.is_live},
        secure_cookies=settings.is_live,
        api_tokens=tuple(settings.merchant_api.tokens),
        trusted_proxies=trusted,
        debug=settings.server.debug and settings.is_sandbox,
        autoreload=False,
        compress_response=True,
        default_handler_class=shop_routes.NotFoundHandler,
        # No query values (OAuth codes, sandbox secrets) in the access log; client
        # errors within a per-source line budget (shared with the listener's lines).
        log_function=AccessLog(log_budget),
        log_budget=log_budget,
    )
    app.add_transform(security_headers(hsts=settings.is_live))  # on every response, static files included
    # Tornado puts its static-file routes (/static/, /favicon.ico, /robots.txt) in
    # front: every request tried them before ours. Last, they answer the same.
    rules = app.wildcard_router.rules
    rules.sort(key=lambda rule: rule.target is StaticFiles)  # stable: everything else keeps its order
    return app


def http_server(app: tornado.web.Application, settings: Settings) -> EdgeHTTPServer:
    """The listener: timeouts and connection caps from ``[server]``.

    Trusted proxies carry everyone's traffic, so the per-source cap leaves
    them out; so does sandbox mode for loopback, where the in-process
    simulator's calls and every local client share 127.0.0.1."""
    s = settings.server
    limits = Limits(
        header_timeout_s=s.header_timeout_s, idle_timeout_s=s.idle_timeout_s, body_timeout_s=s.body_timeout_s,
        write_timeout_s=s.write_timeout_s, max_connections=fit_to_open_files(s.max_connections),
        max_connections_per_ip=s.max_connections_per_ip,
    )
    exempt = [ipaddress.ip_network(n, strict=False) for n in s.trusted_proxies]
    if settings.is_sandbox:
        exempt += LOOPBACK
    # The documented body limit is the real one (handlers/body_limit.py answers it in JSON).
    budget = app.settings["log_budget"]  # one budget for the access log, the body limit and Tornado's own lines
    return EdgeHTTPServer(
        BodyLimit(app, s.max_body_bytes, header_values(hsts=settings.is_live), log_budget=budget), limits=limits,
        exempt=exempt, log_budget=budget, max_body_size=server_max_body_size(s.max_body_bytes), xheaders=False,
    )
