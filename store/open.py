"""Choose and describe the app's store.

``open_store`` picks MongoDB for a ``mongodb://`` or ``mongodb+srv://`` URL and
the embedded SQLite file otherwise; the caller then awaits
``store.open(indexes(audit_retention_s=...))`` (``INDEXES`` plus the audit
trail's retention), which creates what is missing.

Field names the service layer can rely on (the indexes below are on them):

- ``checkouts``: ``idempotency_key`` (unique when present; omit it rather
  than storing null), ``merchant_reference``, ``status``, ``created_at``,
  ``expires_at``
- ``orders``: ``_id`` = ``out_trade_no`` (also stored as a unique field),
  ``checkout_id``, ``state``, ``next_check_at`` (the reconciler's due time),
  ``created_at``; ``transaction_id`` and ``openid`` (the console's search:
  absent until known, never null)
- ``audit``: ``kind``, ``at`` (its retention: ``indexes()``), ``out_trade_no``,
  ``out_refund_no``, ``checkout_id`` (a checkout's timeline in the console)
- ``oauth_codes``: ``at``; a code is claimed once and only matters for
  minutes, so claims expire after ``OAUTH_CODE_RETENTION_S``
- ``refunds``: ``out_refund_no`` (unique), ``out_trade_no``, ``state``,
  ``checkout_id``, ``next_check_at``, ``created_at``
- ``checkouts.outbox_due_at``: set while a status move's webhook events are
  not yet in the outbox (null otherwise)
- ``outbox``: ``state``, ``next_attempt_at``, ``checkout_id`` (a checkout's deliveries)
- ``oauth_codes``: ``expires_at`` (expired sign-in claims are pruned)
- ``leases`` (``store/leases.py``): keyed by ``_id``, no index
- ``quotas`` (``service/source_quota.py``): ``expires_at`` (old windows are purged)
- ``trust`` (``service/trust.py``): keyed by ``_id`` (API version and mch_id), no index
"""
from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from store.base import Index, Store, StoreMisconfigured

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
DEFAULT_DATABASE = "wxpay"
OAUTH_CODE_RETENTION_S = 24 * 3600  # WeChat's codes live 5 minutes; a day keeps the trail of repeats

INDEXES: list[Index] = [
    Index("checkouts", ("idempotency_key",), unique=True, sparse=True),
    Index("checkouts", ("merchant_reference",)),
    Index("checkouts", ("status", "created_at")),
    Index("checkouts", ("status", "expires_at")),  # the reconciler: expired open checkouts
    Index("orders", ("out_trade_no",), unique=True),
    Index("orders", ("checkout_id",)),
    Index("orders", ("state", "next_check_at")),  # the reconciler: due unconfirmed orders
    Index("orders", ("state", "settle_due_at")),  # the reconciler: paid orders whose settlement was cut short
    Index("orders", ("state", "created_at")),
    Index("orders", ("created_at",)),  # /status: latest orders and the hourly chart
    Index("orders", ("transaction_id",)),  # the console's search (absent until paid: no key for most)
    Index("orders", ("openid", "created_at")),  # the console's search: a shopper's orders, newest first
    Index("audit", ("kind", "at")),
    Index("audit", ("out_trade_no",)),
    Index("audit", ("out_refund_no",)),  # a checkout's timeline: its refunds' calls and notifies
    Index("audit", ("checkout_id",)),  # a checkout's timeline: cancels, refunds, the console's actions
    Index("refunds", ("out_refund_no",), unique=True),
    Index("refunds", ("out_trade_no",)),
    Index("refunds", ("state",)),
    Index("refunds", ("checkout_id",)),
    Index("refunds", ("state", "next_check_at")),  # the reconciler: refunds without a notify
    Index("refunds", ("created_at",)),  # bills: one China day's refunds
    Index("checkouts", ("outbox_due_at",)),  # webhooks: status moves whose events are not written yet
    Index("outbox", ("state", "next_attempt_at")),
    Index("outbox", ("checkout_id",)),  # a checkout's timeline: its webhook deliveries
    Index("oauth_codes", ("expires_at",)),  # OAuth: expired claims are pruned at each sign-in,
    Index("oauth_codes", ("at",), expire_after_s=OAUTH_CODE_RETENTION_S),  # and what none pruned after a day
    Index("quotas", ("expires_at",)),
]


def indexes(*, audit_retention_s: int) -> list[Index]:
    """Every index the app needs, the audit trail's retention included.

    Every process and command that opens the store must pass the same
    retention: on MongoDB the last one to open sets the TTL index."""
    return [*INDEXES, Index("audit", ("at",), expire_after_s=audit_retention_s)]


def is_mongo_url(url: str | None) -> bool:
    return bool(url) and url.lower().startswith(MONGO_SCHEMES)  # type: ignore[union-attr]


def mongo_database(url: str, default: str = DEFAULT_DATABASE) -> str:
    """The database named in the URL's path, e.g. ``mongodb://h/shop`` → shop."""
    try:
        path = unquote(urlsplit(url).path).lstrip("/")
    except ValueError:  # the driver says what is wrong with the URL when the store opens
        return default
    return path or default


def open_store(
    url: str | None, *, sqlite_path: str | os.PathLike[str], database: str | None = None
) -> Store:
    """A not-yet-opened store: MongoDB for a mongodb URL (``database``, else
    the URL's path, else ``wxpay``), else SQLite at ``sqlite_path``.
    Await ``store.open(INDEXES)`` before use."""
    if url and is_mongo_url(url):
        from store.mongo import MongoStore

        return MongoStore(url, database or mongo_database(url))
    if url:
        raise StoreMisconfigured("the store URL must start with mongodb:// or mongodb+srv:// (or be empty for SQLite)")
    from store.sqlite import SQLiteStore

    return SQLiteStore(sqlite_path)
