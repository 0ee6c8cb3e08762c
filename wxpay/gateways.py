"""The gateways a server holds: the configured version's, and the other's for what it still sends.

A merchant who moves from APIv2 to APIv3 (or back) keeps the orders placed
before the move, and WeChat keeps notifying each order in the form of the
API it was placed with: for a while both kinds arrive on the same notify
URL. :class:`Gateways` holds the **primary** gateway (the configured
version: new orders, queries, closes, refunds and bills, which WeChat
serves for every order whichever API placed it) and, when its credentials
are configured, the other version's gateway, used only to prove and read
that version's notifies. Each notify goes to the gateway of its shape
(:func:`~wxpay.gateway.notify_version`), and its answer is written in that
version's form even when no gateway of that version is configured.
"""
from __future__ import annotations

from typing import Iterator, Mapping

from .errors import ConfigError
from .gateway import NotifyVerdict, PayGateway, STATUS, WireReply, notify_version
from .v2_gateway import wire_reply as v2_wire_reply
from .v3_gateway import wire_reply as v3_wire_reply

__all__ = ["API_VERSIONS", "Gateways"]

API_VERSIONS = ("v2", "v3")
_WIRE = {"v2": v2_wire_reply, "v3": v3_wire_reply}


class Gateways:
    """The primary gateway and, optionally, the other version's (notifies only)."""

    def __init__(self, primary: PayGateway, *others: PayGateway) -> None:
        by_version: dict[str, PayGateway] = {primary.api_version: primary}
        for gateway in others:
            if gateway.api_version in by_version:
                raise ConfigError(f"Two gateways for API {gateway.api_version}")
            if gateway.mch_id != primary.mch_id:
                raise ConfigError("Both API versions' gateways must be for the same merchant (mch_id)")
            by_version[gateway.api_version] = gateway
        self.primary = primary
        self._by_version = by_version

    def __repr__(self) -> str:
        return f"Gateways(primary={self.primary!r}, versions={self.versions!r})"

    @property
    def api_version(self) -> str:
        return self.primary.api_version

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version whose notifies can be proven here, the primary first."""
        return tuple(self._by_version)

    def __iter__(self) -> Iterator[PayGateway]:
        return iter(self._by_version.values())

    def get(self, version: str) -> PayGateway | None:
        return self._by_version.get(version)

    def for_notify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, PayGateway | None]:
        """The notify's version by its shape, and that version's gateway (``None``: not configured)."""
        version = notify_version(headers, body)
        return version, self._by_version.get(version)

    def reply(self, version: str, verdict: NotifyVerdict) -> WireReply:
        """The answer to a notify of ``version``, in that version's form."""
        gateway = self._by_version.get(version)
        if gateway is not None:
            return gateway.notify_reply(verdict)
        return _WIRE[version](verdict, STATUS[verdict.outcome])
