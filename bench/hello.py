"""The limit: a bare Tornado app on this machine, nothing but "hello".

Run as its own process by bench/run.py; every server figure is divided by
this one, measured by the same load generator in the same run.
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


async def main(port: int) -> None:
    tornado.web.Application([(r"/.*", Hello)]).listen(port, "127.0.0.1")
    print(f"hello listening on 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
