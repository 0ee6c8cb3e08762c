"""The limit: a bare Tornado app on this machine, nothing but "hello".

Run as its own process by bench/run.py; every server figure is divided by
this one, measured by the same load generator in the same run.

``hello.py PORT UPSTREAM_PORT`` also answers ``/relay`` by first fetching
``/`` from another bare app on UPSTREAM_PORT, through the client our server
uses for WeChat (Tornado's curl client, connections kept alive). That is the
ceiling for any request that waits on one upstream call, as a first-time
notify (orderquery) and a prepay (unifiedorder) do.

``hello.py PORT UPSTREAM_PORT REQUEST_FILE`` makes that call the request the
JSON file describes (method, path, headers, body) instead: bench/run.py
points it at the simulator's V2 ``pay/orderquery`` or V3 query by
out_trade_no, signed once by the harness, the ceiling with the real upstream
(the reply is passed on unread, unchecked).
"""
from __future__ import annotations

import asyncio
import json
import sys

import tornado.web


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("hello")

    def post(self) -> None:
        self.write("hello")


class Relay(tornado.web.RequestHandler):
    async def get(self) -> None:
        await self.relay()

    async def post(self) -> None:
        await self.relay()

    async def relay(self) -> None:
        settings = self.application.settings
        call = settings["call"]
        reply = await settings["client"].fetch(settings["upstream"], method=call.get("method", "GET"),
                                               headers=call.get("headers"), body=call.get("body"), request_timeout=10)
        self.write(reply.body)


async def main(port: int, upstream: int | None, call: dict | None = None) -> None:
    call = call or {}
    settings = {}
    routes: list = [(r"/.*", Hello)]
    if upstream:
        from tornado.curl_httpclient import CurlAsyncHTTPClient

        settings = {"client": CurlAsyncHTTPClient(force_instance=True, max_clients=100),
                    "upstream": f"http://127.0.0.1:{upstream}{call.get('path', '/')}", "call": call}
        routes.insert(0, (r"/relay", Relay))
    tornado.web.Application(routes, **settings).listen(port, "127.0.0.1")
    print(f"hello listening on 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]), int(args[1]) if len(args) > 1 else None,
                     json.loads(open(args[2], encoding="utf-8").read()) if len(args) > 2 else None))
