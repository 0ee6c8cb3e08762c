"""python -m wxpay.simulator --port 9000 [--config FILE] [--state FILE] [--notify-time-scale X] [--access-log]
[--header-timeout S] [--idle-timeout S] [--body-timeout S] [--max-connections N]

python -m wxpay.simulator credentials [--json] [--config FILE] [--mchid ID]: what a client needs.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys

from tornado.netutil import bind_sockets

from edge import log_lines
from edge.connection_cap import LOOPBACK, fit_to_open_files
from edge.headers import security_headers
from edge.http_server import EdgeHTTPServer, Limits

from . import demo
from .app import make_app
from .config import SimConfig
from .core import Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m wxpay.simulator",
                                description="An offline WeChat Pay V2 + V3 / OAuth / token server. "
                                            "'python -m wxpay.simulator credentials --json' prints the credentials.")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--config", help="TOML file with [[apps]] and [[merchants]]; default: the demo credentials")
    p.add_argument("--state", help="JSON file that keeps orders, refunds, notifies and tokens across restarts")
    p.add_argument("--notify-time-scale", type=float, help="divide WeChat's notify retry intervals by this")
    p.add_argument("--prefix", default="", help="serve under this path prefix (e.g. /_wechat)")
    p.add_argument("--trust-forwarded-for", action="store_true", help="take the mweb client IP from X-Forwarded-For")
    p.add_argument("--access-log", action="store_true",
                   help="log every request at INFO (by default only 4xx/5xx answers are logged)")
    d = Limits()
    p.add_argument("--header-timeout", type=float, default=d.header_timeout_s,
                   help=f"seconds a new connection has to send its headers (default {d.header_timeout_s:g})")
    p.add_argument("--idle-timeout", type=float, default=d.idle_timeout_s,
                   help=f"seconds a kept-alive connection may wait for its next request (default {d.idle_timeout_s:g})")
    p.add_argument("--body-timeout", type=float, default=d.body_timeout_s,
                   help=f"seconds a request body has to arrive (default {d.body_timeout_s:g})")
    p.add_argument("--max-connections", type=int, default=d.max_connections,
                   help=f"connections open at once; one more gets a 503 (default {d.max_connections})")
    args = p.parse_args(argv)
    if min(args.header_timeout, args.idle_timeout, args.body_timeout) <= 0 or args.max_connections < 1:
        p.error("timeouts must be greater than 0 and --max-connections at least 1")
    return args


def credentials_main(argv: list[str]) -> int:
    """``credentials [--json] [--config FILE] [--mchid ID]``: one merchant's credentials (the demo's by default)."""
    from .v3.credentials import credentials, describe

    p = argparse.ArgumentParser(prog="python -m wxpay.simulator credentials",
                                description="Print a merchant's V2 and V3 credentials (TEST ONLY) for any client.")
    p.add_argument("--json", action="store_true", help="JSON with every PEM (for scripts and tests)")
    p.add_argument("--config", help="the simulator's TOML config; default: the demo merchant")
    p.add_argument("--mchid", help="which merchant of the config (default: the first)")
    args = p.parse_args(argv)
    config = SimConfig.from_toml(args.config) if args.config else SimConfig.demo()
    merchant = config.merchant(args.mchid) if args.mchid else config.merchants[0]
    if merchant is None:
        print(f"no merchant {args.mchid} in the config", file=sys.stderr)
        return 2
    creds = credentials(config, merchant)
    print(json.dumps(creds, ensure_ascii=False, indent=1) if args.json else describe(creds), flush=True)
    return 0


def banner(config: SimConfig, is_demo: bool, base: str) -> str:
    lines = [f"WeChat simulator listening on {base}"]
    if is_demo:
        lines += [
            "No --config: using the demo credentials (they work only here):",
            f"  mch_id={demo.MCH_ID}  api_key={demo.API_KEY}",
            f"  official account appid={demo.OFFICIAL_ACCOUNT_APPID} secret={demo.OFFICIAL_ACCOUNT_SECRET}",
            f"  mini program     appid={demo.MINI_PROGRAM_APPID} secret={demo.MINI_PROGRAM_SECRET}",
            f"  mobile app       appid={demo.MOBILE_APP_APPID} secret={demo.MOBILE_APP_SECRET}",
            f"  APIv3 (TEST ONLY keys): apiv3_key={demo.APIV3_KEY} merchant serial={demo.MERCHANT_SERIAL_NO}",
            f"    WeChat Pay public key {demo.PUBLIC_KEY_ID}; keys and PEMs: python -m wxpay.simulator credentials --json",
        ]
    else:
        lines.append("merchants: " + ", ".join(m.mch_id for m in config.merchants))
    lines.append(f"inspect: {base}/_sim/")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    log_lines.configure(logging.INFO)  # one record, one line, like the server's
    if not args.access_log:
        # A formatted, flushed line per WeChat call was about a tenth of the
        # simulator's CPU per request; errors (4xx/5xx) are still logged.
        logging.getLogger("tornado.access").setLevel(logging.WARNING)
    config = SimConfig.from_toml(args.config) if args.config else SimConfig.demo()
    if args.notify_time_scale is not None:
        config = dataclasses.replace(config, notify_time_scale=args.notify_time_scale)
    sim = Simulator(config, state_path=args.state, trust_forwarded_for=args.trust_forwarded_for)
    app = make_app(sim, args.prefix)
    app.add_transform(security_headers(hsts=False))
    # The server's limits; loopback (where its clients usually are) is exempt
    # from the per-source share.
    limits = Limits(
        header_timeout_s=args.header_timeout, idle_timeout_s=args.idle_timeout, body_timeout_s=args.body_timeout,
        max_connections=fit_to_open_files(args.max_connections),
        max_connections_per_ip=min(Limits().max_connections_per_ip, args.max_connections),
    )
    try:
        sockets = bind_sockets(args.port, address=args.host)
    except OSError as exc:  # a port in use, an address not of this machine: one line, as the server says it
        print(f"wxpay.simulator: cannot listen on {args.host}:{args.port} (--host, --port): "
              f"{exc.strerror or exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    server = EdgeHTTPServer(app, limits=limits, exempt=LOOPBACK)
    server.add_sockets(sockets)
    await sim.start()
    print(banner(config, not args.config, f"http://{args.host}:{args.port}{args.prefix}"), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await sim.stop()
    print("WeChat simulator stopped", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["credentials"]:
        sys.exit(credentials_main(sys.argv[2:]))
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
