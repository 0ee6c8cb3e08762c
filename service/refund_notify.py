"""WeChat's refund notify: prove, match, apply once.

The gateway proves and decrypts it (APIv2: the notify is unsigned, so the
proof is that ``req_info`` decrypts under our key, after its outer appid
and mch_id are found to be ours; APIv3: WeChat's signature, then
decryption) with no store lookup. The refund it names must then match a
stored refund by out_refund_no, appid (when the notify names one),
out_trade_no and amount. A repeat is accepted and changes nothing;
anything we could not finish is refused so WeChat retries. A proven
notify is audited with its raw body and verdict; one that is not, only by
verdict, size and digest (``NotifyEndpoint``).
"""
from __future__ import annotations

import logging
from typing import Mapping

from wxpay.gateway import NotifyVerdict, Outcome, PayGateway, Refusal
from wxpay.gateways import Gateways

from .audit import Audit
from .keyed_locks import KeyedLocks
from .models import REFUND_STATUS_MAP
from .notify_endpoint import NotifyEndpoint, Seen, accepted, refused, version_not_configured
from .notify_limiter import NotifyLimiter
from .notify_stats import NotifyStats
from .refunds import RefundService

log = logging.getLogger("wxpay_server.refund_notify")


class RefundNotifyService(NotifyEndpoint):
    kind = "refund_notify"
    id_field = "out_refund_no"

    def __init__(
        self,
        refunds: RefundService,
        gateways: Gateways | PayGateway,
        audit: Audit,
        *,
        max_bytes: int = 64 * 1024,
        limiter: NotifyLimiter | None = None,
        stats: NotifyStats | None = None,
    ) -> None:
        super().__init__(audit, max_bytes=max_bytes, limiter=limiter, stats=stats)
        self.refunds = refunds
        # One gateway is a set of one: only its version's notifies are read.
        self.gateways = gateways if isinstance(gateways, Gateways) else Gateways(gateways)
        self._locks = KeyedLocks()

    async def _handle(self, headers: Mapping[str, str], body: bytes, seen: Seen) -> NotifyVerdict:
        seen.api_version, gateway = self.gateways.for_notify(headers, body)
        if gateway is None:
            return version_not_configured(seen.api_version)
        notice = await gateway.read_refund_notify(headers, body)
        if isinstance(notice, Refusal):
            seen.key, seen.verified = notice.key, notice.proven
            return notice.verdict
        seen.verified = True  # WeChat sent it
        seen.record = notice.record
        no = seen.key = notice.out_refund_no
        refund = await self.refunds.get(no)
        if refund is None:
            return refused("unknown_refund", Outcome.UNKNOWN, "unknown refund")
        if notice.appid is not None and notice.appid != refund.appid:
            return refused("identity_mismatch", Outcome.INVALID, "refund belongs to another order")
        if (refund.mch_id, refund.out_trade_no) != (notice.mch_id, notice.out_trade_no):
            return refused("identity_mismatch", Outcome.INVALID, "refund belongs to another order")
        if notice.refund_fen != refund.amount_fen:
            return refused("amount_mismatch", Outcome.INVALID, "refund amount mismatch")
        state = REFUND_STATUS_MAP.get(notice.status)
        if state is None:
            return refused("unknown_refund_status", Outcome.INVALID, "unknown refund_status")
        async with self._locks.hold(no):
            current = await self.refunds.get(no)
            assert current is not None
            if current.state == state:
                await self.refunds.apply(current)  # finish what a crash may have left
                return accepted("duplicate")
            moved = await self.refunds.settle(
                current, state, refund_id=notice.refund_id, succeeded_at=notice.succeeded_at,
                wechat_status=notice.status,
            )
        if moved is None:
            return refused(f"refund_is_{current.state}", Outcome.CONFLICT, "refund state conflict")
        return accepted(state)
