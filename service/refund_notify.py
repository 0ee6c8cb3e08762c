"""WeChat's refund notify: decrypt, match, apply once.

The refund notify carries no signature: the only proof it comes from WeChat
is that ``req_info`` decrypts under our API key (AES-256-ECB, key = md5 of
the APIv2 key). The outer appid must be one of ours and mch_id ours; the
decrypted refund must match a stored refund by out_refund_no, appid,
mch_id, out_trade_no and amount. A repeat is answered SUCCESS and changes
nothing; anything we could not finish is answered FAIL so WeChat retries.
Nothing before the decryption touches the store. A decrypted notify is
audited with its raw body (still encrypted) and verdict; one that does not
decrypt only by verdict, size and digest (``NotifyEndpoint``).
"""
from __future__ import annotations

import logging
from typing import Iterable

from wxpay import notify as wxnotify
from wxpay.errors import DecryptError, IdentityMismatchError, ProtocolError, WxPayError

from .audit import Audit
from .keyed_locks import KeyedLocks
from .models import REFUND_STATUS_MAP
from .notify_endpoint import NotifyEndpoint, NotifyOutcome, Seen
from .notify_limiter import NotifyLimiter
from .refunds import RefundService

log = logging.getLogger("wxpay_server.refund_notify")


class RefundNotifyService(NotifyEndpoint):
    kind = "refund_notify"
    id_field = "out_refund_no"

    def __init__(
        self,
        refunds: RefundService,
        audit: Audit,
        *,
        api_key: str,
        mch_id: str,
        appids: Iterable[str],
        max_bytes: int = 64 * 1024,
        limiter: NotifyLimiter | None = None,
    ) -> None:
        super().__init__(audit, max_bytes=max_bytes, limiter=limiter)
        self.refunds = refunds
        self._key = api_key
        self.mch_id = mch_id
        self.appids = frozenset(a for a in appids if a)
        self._locks = KeyedLocks()

    async def _handle(self, body: bytes, seen: Seen) -> NotifyOutcome:
        outer = self.read(body)
        if isinstance(outer, NotifyOutcome):
            return outer
        appid = outer.get("appid") or ""
        if appid not in self.appids:
            return NotifyOutcome.make(False, 400, "identity_mismatch", "appid or mch_id mismatch")
        try:
            notify = wxnotify.decrypt_refund_notify(
                body, key=self._key, appid=appid, mch_id=self.mch_id, max_bytes=self.max_bytes
            )
        except IdentityMismatchError:
            return NotifyOutcome.make(False, 400, "identity_mismatch", "appid or mch_id mismatch")
        except DecryptError:
            return NotifyOutcome.make(False, 400, "undecryptable", "req_info does not decrypt")
        except ProtocolError as exc:
            return NotifyOutcome.make(False, 400, exc.code, "malformed notify")
        except WxPayError as exc:  # return_code FAIL (unencrypted, so unproven): nothing to apply
            return NotifyOutcome.make(True, 200, f"ignored_{exc.code}", "OK")
        seen.verified = True  # req_info decrypted under our key: WeChat sent it
        no = seen.key = notify.out_refund_no
        refund = await self.refunds.get(no)
        if refund is None:
            return NotifyOutcome.make(False, 404, "unknown_refund", "unknown refund")
        if (refund.appid, refund.mch_id, refund.out_trade_no) != (notify.appid, notify.mch_id, notify.out_trade_no):
            return NotifyOutcome.make(False, 400, "identity_mismatch", "refund belongs to another order")
        if notify.refund_fee != refund.amount_fen:
            return NotifyOutcome.make(False, 400, "amount_mismatch", "refund amount mismatch")
        state = REFUND_STATUS_MAP.get(notify.refund_status)
        if state is None:
            return NotifyOutcome.make(False, 400, "unknown_refund_status", "unknown refund_status")
        async with self._locks.hold(no):
            current = await self.refunds.get(no)
            assert current is not None
            if current.state == state:
                await self.refunds.apply(current)  # finish what a crash may have left
                return NotifyOutcome.make(True, 200, "duplicate", "OK")
            moved = await self.refunds.settle(
                current, state, refund_id=notify.refund_id, succeeded_at=notify.success_time,
                wechat_status=notify.refund_status,
            )
        if moved is None:
            return NotifyOutcome.make(False, 409, f"refund_is_{current.state}", "refund state conflict")
        return NotifyOutcome.make(True, 200, state, "OK")
