"""What WeChat "saw", as JSON, plus the run-time switches (faults, refund outcomes).

* ``GET /_sim/orders[?mch_id=]`` and ``GET /_sim/orders/{out_trade_no}`` (with
  its refunds and notify deliveries)
* ``GET /_sim/refunds``; ``POST /_sim/refunds/{out_refund_no}/settle``
  ``{"status": "SUCCESS" | "REFUNDCLOSE" | "CHANGE"}`` for refunds left PROCESSING
* ``GET /_sim/notifies[?kind=pay|refund&key=]`` — every delivery and attempt
* ``GET /_sim/faults``; ``POST /_sim/faults`` with one fault or a list
  (``{"endpoint", "kind", "count"?: int|null, "seconds"?, "n"?}``);
  ``DELETE /_sim/faults[?endpoint=&kind=]``
* ``GET /_sim/v3/merchants``; ``POST /_sim/v3/merchants/{mch_id}``
  ``{"key_mode": "public_key" | "platform_cert" | "gray", "gray_share"?: 0..1, "gray_seed"?: int}``
  — the V3 key mode of each merchant (serials, never keys), switchable at run time
* ``GET /_sim/calls`` — calls per WeChat endpoint since start (``{"calls": {"pay/orderquery": 3, …}}``;
  V3 endpoints by path template), counted before faults apply
* ``GET /_sim/`` — an index of the above

Merchant keys and app secrets never appear here.
"""
from __future__ import annotations

import json
from typing import Any

import tornado.web

from .apihandler import SimHandler
from .pay_state import _to_json


class JsonHandler(SimHandler):
    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body, ensure_ascii=False, indent=1))

    def json_body(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            raise tornado.web.HTTPError(400, reason="body is not JSON") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.send({"error": self._reason}, status_code)


def _order_view(order) -> dict[str, Any]:
    data = _to_json(order)
    data.pop("fingerprint", None)
    return data


def _refund_view(refund) -> dict[str, Any]:
    data = _to_json(refund)
    data.pop("fingerprint", None)
    return data


class IndexHandler(JsonHandler):
    def get(self) -> None:
        self.send({
            "what": "offline WeChat Pay V2 + V3 / OAuth / token simulator",
            "views": ["_sim/orders", "_sim/orders/{out_trade_no}", "_sim/refunds", "_sim/notifies", "_sim/tokens",
                      "_sim/faults", "_sim/v3/merchants", "_sim/calls"],
            "shopper": ["_sim/pay", "_sim/scan", "_sim/mweb", "_sim/wx-login"],
            "apps": [{"appid": a.appid, "kind": a.kind} for a in self.sim.config.apps],
            "merchants": [{"mch_id": m.mch_id, "appids": list(m.appids), "apiv3": m.v3 is not None}
                          for m in self.sim.config.merchants],
        })


class OrdersHandler(JsonHandler):
    def get(self) -> None:
        mch_id = self.get_query_argument("mch_id", None)
        orders = [o for o in self.sim.pay.orders.values() if mch_id in (None, o.mch_id)]
        self.send({"orders": [_order_view(o) for o in orders]})


class OrderHandler(JsonHandler):
    def get(self, out_trade_no: str) -> None:
        mch_id = self.get_query_argument("mch_id", None)
        found = [o for (m, no), o in self.sim.pay.orders.items() if no == out_trade_no and mch_id in (None, m)]
        if not found:
            return self.send({"error": f"no order {out_trade_no}"}, 404)
        order = found[0]
        self.sim.pay.order(order.mch_id, order.out_trade_no)  # applies expiry
        refunds = [self.sim.pay.refunds[(order.mch_id, no)] for no in order.refund_nos]
        self.send({
            "order": _order_view(order),
            "refunds": [_refund_view(r) for r in refunds],
            "notifies": self.sim.notifier.list("pay", order.out_trade_no)
            + [d for r in refunds for d in self.sim.notifier.list("refund", r.out_refund_no)],
        })


class RefundsHandler(JsonHandler):
    def get(self) -> None:
        self.send({"refunds": [_refund_view(r) for r in self.sim.pay.refunds.values()]})


class SettleRefundHandler(JsonHandler):
    def post(self, out_refund_no: str) -> None:
        body = self.json_body() or {}
        found = [r for (m, no), r in self.sim.pay.refunds.items() if no == out_refund_no
                 and body.get("mch_id") in (None, m)]
        if not found:
            return self.send({"error": f"no refund {out_refund_no}"}, 404)
        try:
            delivery = self.sim.settle_refund(found[0], str(body.get("status") or "SUCCESS"))
        except ValueError as exc:
            return self.send({"error": str(exc)}, 409)
        self.send({"refund": _refund_view(found[0]), "notify_delivery": delivery.id if delivery else None})


class NotifiesHandler(JsonHandler):
    def get(self) -> None:
        kind = self.get_query_argument("kind", None)
        key = self.get_query_argument("key", None)
        self.send({"deliveries": self.sim.notifier.list(kind, key)})


class FaultsHandler(JsonHandler):
    def get(self) -> None:
        self.send({"faults": self.sim.faults.list()})

    def post(self) -> None:
        body = self.json_body()
        items = body if isinstance(body, list) else [body]
        added = []
        try:
            for item in items:
                if not isinstance(item, dict):
                    raise ValueError("each fault must be an object")
                added.append(self.sim.faults.add(
                    str(item.get("endpoint") or ""), str(item.get("kind") or ""),
                    count=item.get("count", 1), seconds=item.get("seconds", 0.0), n=item.get("n", 2),
                ).to_json())
        except (ValueError, TypeError) as exc:
            for fault in added:
                self.sim.faults.clear_id(fault["id"])
            return self.send({"error": str(exc)}, 400)
        self.send({"added": added, "faults": self.sim.faults.list()})

    def delete(self) -> None:
        removed = self.sim.faults.clear(self.get_query_argument("endpoint", None), self.get_query_argument("kind", None))
        self.send({"removed": removed, "faults": self.sim.faults.list()})


class CallsHandler(JsonHandler):
    def get(self) -> None:
        self.send({"calls": dict(sorted(self.sim.calls.items()))})


class V3MerchantsHandler(JsonHandler):
    def get(self) -> None:
        self.send({"merchants": [k.view() for k in self.sim.v3.keyrings.values()]})


class V3MerchantHandler(JsonHandler):
    def get(self, mch_id: str) -> None:
        keyring = self.sim.v3.keyring(mch_id)
        if keyring is None:
            return self.send({"error": f"no merchant {mch_id} with APIv3 credentials"}, 404)
        self.send(keyring.view())

    def post(self, mch_id: str) -> None:
        keyring = self.sim.v3.keyring(mch_id)
        if keyring is None:
            return self.send({"error": f"no merchant {mch_id} with APIv3 credentials"}, 404)
        body = self.json_body()
        if not isinstance(body, dict):
            return self.send({"error": "body must be an object with key_mode, gray_share, gray_seed"}, 400)
        unknown = set(body) - {"key_mode", "gray_share", "gray_seed"}
        seed = body.get("gray_seed")
        if unknown:
            return self.send({"error": f"unknown fields: {', '.join(sorted(unknown))}"}, 400)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            return self.send({"error": "gray_seed must be an integer or null"}, 400)
        try:
            keyring.set_mode(body.get("key_mode", keyring.key_mode), body.get("gray_share", keyring.gray_share), seed)
        except ValueError as exc:
            return self.send({"error": str(exc)}, 400)
        self.sim.changed()
        self.send(keyring.view())


def routes(sim: Any) -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    kw = {"sim": sim}
    return [
        (r"/_sim/?", IndexHandler, kw),
        (r"/_sim/orders", OrdersHandler, kw),
        (r"/_sim/orders/([^/]+)", OrderHandler, kw),
        (r"/_sim/refunds", RefundsHandler, kw),
        (r"/_sim/refunds/([^/]+)/settle", SettleRefundHandler, kw),
        (r"/_sim/notifies", NotifiesHandler, kw),
        (r"/_sim/faults", FaultsHandler, kw),
        (r"/_sim/calls", CallsHandler, kw),
        (r"/_sim/v3/merchants", V3MerchantsHandler, kw),
        (r"/_sim/v3/merchants/([^/]+)", V3MerchantHandler, kw),
    ]
