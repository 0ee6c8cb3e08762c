"""The Simulator: one object holding everything the offline WeChat knows.

Handlers reach it through ``initialize(sim=...)``. It owns the pay state,
the OAuth and token states, the fault switchboard and the notifier, and
ties them together: a payment or a settled refund queues its notify; every
change marks the state dirty for :mod:`persist`.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from .. import signing
from ..timeutil import CHINA_TZ
from ..xmlcodec import build_xml
from .clock import Clock
from .config import SimConfig
from .crypto import build_root_xml, encrypt_req_info
from .faults import Faults
from .mini_program import MiniProgramLogins
from .notifier import Delivery, Notifier, Outgoing
from .oauth import OAuthState
from .pay_state import Order, PayState, Refund
from .persist import StateFile
from .tokens import TokenState
from .v3.side import V3Side


class Simulator:
    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: Clock | None = None,
        state_path: str | Path | None = None,
        http_client: AsyncHTTPClient | None = None,
        trust_forwarded_for: bool = False,
    ) -> None:
        self.config = config or SimConfig.demo()
        self.clock = clock or Clock()
        self.faults = Faults()
        # Calls per WeChat endpoint since start (``/_sim/calls``), so a benchmark or a test can
        # prove each request it sent made the upstream call it claims. Not persisted.
        self.calls: Counter[str] = Counter()
        for fault in self.config.faults:  # [[faults]] of the config file, active from the start
            self.faults.add(str(fault.get("endpoint") or ""), str(fault.get("kind") or ""),
                            count=fault.get("count", 1), seconds=fault.get("seconds", 0.0), n=fault.get("n", 2))
        # mweb pages: take the client IP from X-Forwarded-For only when a trusted proxy sets it.
        self.trust_forwarded_for = trust_forwarded_for
        # §2/S16a: notifies usually omit sign_type even for HMAC-SHA256 orders.
        self.notify_include_sign_type = False
        self._known_users: set[str] = set()
        self.oauth = OAuthState(self.config, self.clock)
        self.tokens = TokenState(self.config, self.clock)
        self.mini_program = MiniProgramLogins(self.config, self.clock, openid_of=self.openid_for,
                                              unionid_of=self.unionid_for)
        self.pay = self._new_pay_state()
        # APIv3: WeChat's keys per merchant, the key modes, bill files between the two steps.
        self.v3 = V3Side(self.config, self.clock, self.faults)
        self.notifier = Notifier(
            self._build_notify, clock=self.clock, faults=self.faults,
            time_scale=self.config.notify_time_scale, http_client=http_client, on_change=self.changed,
        )
        self.state_file = StateFile(Path(state_path), self) if state_path else None
        if self.state_file is not None:
            self.state_file.load()

    def _new_pay_state(self, data: dict | None = None) -> PayState:
        kw = {"openid_belongs": self.openid_belongs, "default_openid": self.default_openid}
        state = PayState.from_json(data, self.config, self.clock, **kw) if data else PayState(self.config, self.clock, **kw)
        state.changed = self.changed
        return state

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        await self.notifier.start()
        if self.state_file is not None:
            self.state_file.start()

    async def stop(self) -> None:
        await self.notifier.stop()
        if self.state_file is not None:
            await self.state_file.stop()

    def changed(self) -> None:
        if getattr(self, "state_file", None) is not None:
            self.state_file.mark_dirty()

    # --- shoppers -----------------------------------------------------------

    def openid_for(self, appid: str, user: str) -> str:
        self._known_users.add(user)
        return self.oauth.openid(appid, user)

    def unionid_for(self, user: str) -> str:
        return self.oauth.unionid(user)

    def _oauth_users(self) -> set[str]:
        users: set[str] = set()
        for table in ("_access", "_refresh", "_codes"):  # shoppers who went through OAuth
            users.update(getattr(e, "user", "") for e in getattr(self.oauth, table, {}).values())
        users.discard("")
        return users

    def _users(self) -> set[str]:
        return set(self.config.users) | self._known_users | self._oauth_users()

    def openid_belongs(self, appid: str, openid: str) -> bool:
        """§4.1: an openid is only valid under the appid it was issued for.

        Every JSAPI unifiedorder asks; the configured and known shoppers are
        tried first, and the OAuth tables (which grow with every sign-in) are
        scanned only when none of them matches.
        """
        openid_of = self.oauth.openid
        for users in (self.config.users, self._known_users):
            if any(openid_of(appid, user) == openid for user in users if user):
                return True
        return any(openid_of(appid, user) == openid for user in self._oauth_users())

    def default_openid(self, appid: str) -> str:
        return self.openid_for(appid, self.oauth.default_user())

    # --- notifies -------------------------------------------------------------

    def paid(self, order: Order, *, start: bool = True) -> Delivery:
        """Queue the payment notify of an order that just became SUCCESS (§11), in its API's form."""
        return self.notifier.enqueue("pay", order.mch_id, order.out_trade_no, order.notify_url, start=start,
                                     api=order.api)

    def refund_settled(self, refund: Refund) -> Delivery | None:
        """Queue the refund notify when the refund request named a notify_url (§12)."""
        if not refund.notify_url:
            return None
        return self.notifier.enqueue("refund", refund.mch_id, refund.out_refund_no, refund.notify_url, api=refund.api)

    def settle_refund(self, refund: Refund, status: str) -> Delivery | None:
        self.pay.settle_refund(refund, status)
        return self.refund_settled(refund)

    def pay_notify_fields(self, order: Order) -> dict[str, Any]:
        merchant = self.config.merchant(order.mch_id)
        fields: dict[str, Any] = {
            "appid": order.appid, "mch_id": order.mch_id, "nonce_str": signing.make_nonce(),
            "result_code": "SUCCESS", "return_code": "SUCCESS",
            **self.pay.paid_fields(order),
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        if self.notify_include_sign_type:
            fields["sign_type"] = order.sign_type
        fields["sign"] = signing.sign(fields, merchant.api_key, order.sign_type)
        return fields

    def refund_notify_fields(self, refund: Refund) -> dict[str, Any]:
        merchant = self.config.merchant(refund.mch_id)
        inner: dict[str, Any] = {
            "out_refund_no": refund.out_refund_no, "out_trade_no": refund.out_trade_no,
            "refund_account": refund.refund_account, "refund_fee": refund.refund_fee,
            "refund_id": refund.refund_id, "refund_recv_accout": refund.refund_recv_accout,
            "refund_request_source": refund.refund_request_source, "refund_status": refund.refund_status,
            "settlement_refund_fee": refund.refund_fee, "settlement_total_fee": refund.total_fee,
            "success_time": refund.success_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") if refund.success_at else None,
            "total_fee": refund.total_fee, "transaction_id": refund.transaction_id,
        }
        return {
            "return_code": "SUCCESS", "appid": refund.appid, "mch_id": refund.mch_id,
            "nonce_str": signing.make_nonce(),
            "req_info": encrypt_req_info(build_root_xml(inner), merchant.api_key),
        }

    def _build_notify(self, delivery: Delivery) -> bytes | Outgoing:
        if delivery.kind == "pay":
            order = self.pay.orders[(delivery.mch_id, delivery.key)]
            if delivery.api == "v3":
                return self.v3.notify(delivery, order)
            return build_xml(self.pay_notify_fields(order))
        refund = self.pay.refunds[(delivery.mch_id, delivery.key)]
        if delivery.api == "v3":
            return self.v3.notify(delivery, refund)
        return build_xml(self.refund_notify_fields(refund))

    # --- persistence ------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "pay": self.pay.to_json(),
            "notifier": self.notifier.to_json(),
            "oauth": self.oauth.to_json(),
            "tokens": self.tokens.to_json(),
            "mini_program": self.mini_program.to_json(),
            "known_users": sorted(self._known_users),
            "v3_key_modes": {m: {"key_mode": k.key_mode, "gray_share": k.gray_share, "gray_seed": k.gray_seed}
                             for m, k in self.v3.keyrings.items()},
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self._known_users = set(data.get("known_users", []))
        if "oauth" in data:
            self.oauth = OAuthState.from_json(data["oauth"], self.config, self.clock)
        if "tokens" in data:
            self.tokens = TokenState.from_json(data["tokens"], self.config, self.clock)
        self.mini_program.load_json(data.get("mini_program", {}))
        self.pay = self._new_pay_state(data.get("pay"))
        self.notifier.load_json(data.get("notifier", {}))
        for mch_id, mode in data.get("v3_key_modes", {}).items():
            keyring = self.v3.keyring(mch_id)
            if keyring is not None:
                keyring.set_mode(mode["key_mode"], mode["gray_share"], mode.get("gray_seed"))
