"""Faults on demand: make the simulated WeChat misbehave the way the real one can.

A fault belongs to one endpoint name (the WeChat path without the leading
slash, e.g. ``"pay/unifiedorder"``, ``"secapi/pay/refund"``, ``"cgi-bin/token"``,
``"sns/oauth2/access_token"``; ``"notify"`` for payment notifies and
``"refund_notify"`` for refund notifies; ``"*"`` for every endpoint) and is
either one-shot (``count`` requests) or sticky (``count=None``) until cleared.

Kinds and who honours them:

=================  ===========================================================
``latency``        ``apply()`` sleeps ``seconds`` before the handler runs
``http500``        ``apply()`` answers HTTP 500 and returns True (handler stops)
``systemerror``    XML: layer-2 ``SYSTEMERROR``; JSON: ``{"errcode": -1}``
``malformed``      the reply body is cut short (not parseable; V3: the cut bytes are signed)
``bad_sign``       a signed XML reply carries a wrong ``sign``
``drop``           (notify) the attempt is lost; WeChat sees a timeout, retries
``duplicate``      (notify) the attempt is sent ``n`` times at once
``early``          (pay/unifiedorder and the V3 order paths) the order is paid
                   and its first notify delivered *before* the reply is written
``signtest``       (V3 reply or notify) a ``WECHATPAY/SIGNTEST/`` probe signature;
                   for a notify, a probe copy sent before the real attempt
``wrong_serial``   (V3 reply or notify) ``Wechatpay-Serial`` names WeChat's other key
``clock_skew``     (V3 reply or notify) ``Wechatpay-Timestamp`` off by ``seconds``
                   (-86400..86400), signed as sent
``tampered_ciphertext``  (V3 notify, /v3/certificates) an encrypted byte flipped
``frequency_limited``    (V3) 429 ``FREQUENCY_LIMITED``; nothing is changed
``not_enough``     (refunds, V2 and V3) the merchant's balance is short:
                   V3 403 ``NOT_ENOUGH``, V2 ``NOTENOUGH``; nothing is changed
=================  ===========================================================

V3 endpoints are named by their path template without the leading slash
(``v3/pay/transactions/jsapi``, ``v3/pay/transactions/out-trade-no/{out_trade_no}``,
``v3/refund/domestic/refunds``, ``v3/certificates``, ...); ``v3/*`` matches
every V3 endpoint. A request consumes only the kinds its endpoint honours.

Any Tornado handler uses it in two steps::

    if await sim.faults.apply("cgi-bin/token", self):
        return                               # a 500 was already sent
    ...
    sim.faults.write_json(self, body)        # honours systemerror/malformed

XML handlers consult ``sim.faults.marks(self)`` themselves. One request
consumes at most one shot of each matching fault.
"""
from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "latency", "http500", "systemerror", "malformed", "bad_sign", "drop", "duplicate", "early",
    "signtest", "wrong_serial", "clock_skew", "tampered_ciphertext", "frequency_limited", "not_enough",
)
# The reply-shaping kinds a V2 XML or JSON endpoint honours (V3 handlers name their own).
V2_MARKS = ("systemerror", "malformed", "bad_sign", "not_enough")
MAX_SKEW = 86400
# Active faults at once, and an endpoint name's length: every WeChat call the
# simulator answers looks through the list, and a caller of /_sim/faults (in
# sandbox mode, anyone who can reach the server) must not grow it without end.
MAX_FAULTS = 100
MAX_ENDPOINT_CHARS = 128
# Kinds decided before the handler runs; the rest are "marks" read later.
_BEFORE = ("latency", "http500")
_MARKS_ATTR = "_sim_fault_marks"


@dataclass
class Fault:
    id: int
    endpoint: str
    kind: str
    count: int | None = 1  # None: sticky until cleared
    seconds: float = 0.0  # latency
    n: int = 2  # duplicate: copies per attempt
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Faults:
    """The active faults; cheap to consult, safe to change at run time."""

    _faults: list[Fault] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def add(self, endpoint: str, kind: str, *, count: int | None = 1, seconds: float = 0.0, n: int = 2) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
        if not endpoint or not isinstance(endpoint, str) or len(endpoint) > MAX_ENDPOINT_CHARS:
            raise ValueError(f"fault needs an endpoint name (at most {MAX_ENDPOINT_CHARS} characters) such as "
                             "'pay/unifiedorder' or '*'")
        if len(self._faults) >= MAX_FAULTS:
            raise ValueError(f"at most {MAX_FAULTS} faults may be active at once; clear some first")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count must be a positive integer, or null for a sticky fault")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValueError("seconds must be a number")
        if kind == "clock_skew" and not -MAX_SKEW <= seconds <= MAX_SKEW:
            raise ValueError(f"clock_skew seconds must be between -{MAX_SKEW} and {MAX_SKEW}")
        if kind != "clock_skew" and not 0 <= seconds <= 120:
            raise ValueError("seconds must be between 0 and 120")
        if not isinstance(n, int) or not 1 <= n <= 50:
            raise ValueError("n (duplicate copies) must be between 1 and 50")
        fault = Fault(next(self._ids), endpoint.strip("/"), kind, count, float(seconds), n)
        self._faults.append(fault)
        return fault

    def clear(self, endpoint: str | None = None, kind: str | None = None) -> int:
        """Remove faults (all, or those of one endpoint and/or kind); returns how many."""
        keep = [
            f for f in self._faults
            if not ((endpoint is None or f.endpoint == endpoint.strip("/")) and (kind is None or f.kind == kind))
        ]
        removed = len(self._faults) - len(keep)
        self._faults[:] = keep
        return removed

    def clear_id(self, fault_id: int) -> bool:
        before = len(self._faults)
        self._faults[:] = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) < before

    def list(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self._faults]

    @staticmethod
    def _matches(fault: Fault, endpoint: str) -> bool:
        return fault.endpoint in (endpoint, "*") or (fault.endpoint == "v3/*" and endpoint.startswith("v3/"))

    def take(self, endpoint: str, kind: str) -> Fault | None:
        """Consume one shot of a matching fault, or None when there is none."""
        for fault in self._faults:
            if fault.kind == kind and self._matches(fault, endpoint):
                fault.fired += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def touches(self, endpoint: str) -> bool:
        """Whether any active fault is for ``endpoint`` (or ``*``); per request, so cheap."""
        return any(self._matches(fault, endpoint) for fault in self._faults)

    async def apply(self, endpoint: str, handler: Any, marks: tuple[str, ...] = V2_MARKS) -> bool:
        """Run the before-handler faults; True means the response is finished.

        Also records which reply-shaping faults this request consumed, for
        :meth:`marks` and :meth:`write_json`.
        """
        latency = self.take(endpoint, "latency")
        if latency is not None and latency.seconds > 0:
            await asyncio.sleep(latency.seconds)
        if self.take(endpoint, "http500") is not None:
            handler.set_status(500)
            handler.set_header("Content-Type", "text/html; charset=UTF-8")
            handler.finish("<html><body><h1>500 Internal Server Error</h1></body></html>")
            return True
        taken = {kind: fault for kind in marks if (fault := self.take(endpoint, kind)) is not None}
        setattr(handler, _MARKS_ATTR, taken)
        return False

    @staticmethod
    def marks(handler: Any) -> frozenset[str]:
        return frozenset(getattr(handler, _MARKS_ATTR, {}))

    @staticmethod
    def mark(handler: Any, kind: str) -> Fault | None:
        """The fault of ``kind`` this request consumed (for its ``seconds``), or None."""
        return getattr(handler, _MARKS_ATTR, {}).get(kind)

    def write_json(self, handler: Any, body: dict[str, Any]) -> None:
        """Write a JSON API reply, bent by this request's ``systemerror``/``malformed`` marks."""
        marks = self.marks(handler)
        if "systemerror" in marks:
            body = {"errcode": -1, "errmsg": "system error"}
        text = json.dumps(body, ensure_ascii=False)
        if "malformed" in marks:
            text = text[: max(1, len(text) // 2)]
        handler.set_header("Content-Type", "application/json; encoding=utf-8")
        handler.write(text)
