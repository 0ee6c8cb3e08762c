"""The limit: a bare Tornado app on this machine, nothing but "hello".

Run as its own process by bench/run.py; every server figure is divided by
this one, measured by the same load generator in the same run.

``hello.py PORT UPSTREAM_PORT`` also answers ``/relay`` by first fetching
``/`` from another bare app on UPSTREAM_PORT, through the client our server
uses for WeChat (Tornado's curl client, connections kept alive). That is the
ceiling for any request that waits on one upstream call, as a first-time
notify (orderquery) and a prepay (unifiedorder) do.

``hello.py PORT UPSTREAM_PORT PATH BODY_FILE`` makes that call a POST of the
file's bytes to PATH instead: bench/run.py points it at the simulator's
``pay/orderquery`` with a signed body, the ceiling with the real upstream (its
reply is passed on unread, unchecked).
"""
from __future__ import annotations

import asyncio
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
        body = settings["body"]
        reply = await settings["client"].fetch(settings["upstream"], method="POST" if body else "GET", body=body,
                                               request_timeout=10)
        self.write(reply.body)


async def main(port: int, upstream: int | None, path: str = "/", body: bytes | None = None) -> None:
    settings = {}
    routes: list = [(r"/.*", Hello)]
    if upstream:
        from tornado.curl_httpclient import CurlAsyncHTTPClient

        settings = {"client": CurlAsyncHTTPClient(force_instance=True, max_clients=100),
                    "upstream": f"http://127.0.0.1:{upstream}{path}", "body": body}
        routes.insert(0, (r"/relay", Relay))
    tornado.web.Application(routes, **settings).listen(port, "127.0.0.1")
    print(f"hello listening on 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    with_body = len(args) > 3
    asyncio.run(main(int(args[0]), int(args[1]) if len(args) > 1 else None, args[2] if with_body else "/",
                     open(args[3], "rb").read() if with_body else None))
