"""The platform certificates a legacy merchant trusts, and when to download them again.

Merchants onboarded before the WeChat Pay public key verify WeChat with
platform certificates, which WeChat rotates (several valid at once during
a rotation). :class:`PlatformCertificateKeeper` is sans-I/O: it holds the
trusted certificates, answers as a :class:`~wxpay.v3.verification.Verifier`
(so a ``Validator`` or a gray-switch ``CombinedVerifier`` sees each update
at once), and *decides* when a download is due; someone else fetches.

The seams, so a server can keep the state in its store and refresh under a
lease in several processes:

- **fetch** is the client's (``WxPayV3Client.refresh_certificates``), which
  verifies each download with :meth:`trusted_verifier` (the first download,
  or one after every trusted certificate expired, with what it carries);
- **storage** is the caller's: :meth:`to_dict` / :meth:`from_dict` are plain
  JSON (public certificates and two times, no secret).

Downloads are bounded: at most one per ``min_interval`` seconds whatever
asks (a due refresh, a flood of unknown serials), recorded by :meth:`begin`
before the fetch so a failing WeChat is not hammered either.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError, VerificationError
from .keys import Certificate, load_certificate
from .verification import PlatformCertificateVerifier

__all__ = ["PlatformCertificateKeeper"]

DAY = 86400.0


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class PlatformCertificateKeeper:
    """Trusted platform certificates by serial, with the refresh schedule.

    - ``margin``: refresh when the newest trusted certificate expires within
      this many seconds (default 7 days), so its successor is known first;
    - ``refresh_every``: refresh this often anyway (default 12 h), to learn
      a rotation WeChat started early;
    - ``min_interval``: never download more often than this (default 60 s).
    """

    def __init__(
        self,
        certificates: Iterable[Certificate] = (),
        *,
        margin: float = 7 * DAY,
        refresh_every: float = DAY / 2,
        min_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("margin", margin), ("refresh_every", refresh_every), ("min_interval", min_interval)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"PlatformCertificateKeeper {name} must be a number of seconds >= 0")
        self.margin = float(margin)
        self.refresh_every = float(refresh_every)
        self.min_interval = float(min_interval)
        self.clock = clock
        self._by_serial: dict[str, Certificate] = {}
        self._verifier: PlatformCertificateVerifier | None = None
        self.fetched_at: float | None = None  # last successful download
        self.attempted_at: float | None = None  # last download started
        self._add(certificates)

    def __repr__(self) -> str:
        return f"PlatformCertificateKeeper({sorted(self._by_serial)!r})"

    # --- what is trusted -------------------------------------------------------------

    def _add(self, certificates: Iterable[Certificate]) -> list[str]:
        added = []
        for cert in certificates:
            if not isinstance(cert, Certificate):
                raise TypeError("certificates must be wxpay.v3.keys.Certificate objects (load_certificate)")
            serial = cert.serial_no.upper()
            if serial not in self._by_serial:
                added.append(serial)
            self._by_serial[serial] = cert
        self._verifier = PlatformCertificateVerifier(self._by_serial.values()) if self._by_serial else None
        return added

    @property
    def certificates(self) -> tuple[Certificate, ...]:
        return tuple(self._by_serial.values())

    def valid_certificates(self, now: float | None = None) -> tuple[Certificate, ...]:
        when = _at(self.clock() if now is None else now)
        return tuple(c for c in self._by_serial.values() if c.valid_at(when))

    def trusted_verifier(self, now: float | None = None) -> PlatformCertificateVerifier | None:
        """The certificates valid now, to check a download with; ``None`` when none is (a first load)."""
        valid = self.valid_certificates(now)
        return PlatformCertificateVerifier(valid) if valid else None

    def accept(self, certificates: Iterable[Certificate], now: float | None = None) -> list[str]:
        """Trust a verified download: keep every certificate still valid, add the new ones.

        Returns the serials that were not trusted before. Expired ones are dropped.
        """
        now = self.clock() if now is None else now
        added = self._add(certificates)
        when = _at(now)
        expired = [s for s, c in self._by_serial.items() if c.not_after < when]
        for serial in expired:
            del self._by_serial[serial]
        self._verifier = PlatformCertificateVerifier(self._by_serial.values()) if self._by_serial else None
        self.fetched_at = now
        return [s for s in added if s not in expired]

    # --- when to download ---------------------------------------------------------------

    def begin(self, now: float | None = None) -> None:
        """Record that a download starts now (whatever its outcome)."""
        self.attempted_at = self.clock() if now is None else now

    def _may_fetch(self, now: float) -> bool:
        return self.attempted_at is None or now - self.attempted_at >= self.min_interval

    def due(self, now: float | None = None) -> bool:
        """Whether a download should happen before the next call."""
        now = self.clock() if now is None else now
        if not self._may_fetch(now):
            return False
        valid = self.valid_certificates(now)
        if not valid or self.fetched_at is None:
            return True
        newest = max(c.not_after for c in valid).timestamp()
        return newest - now <= self.margin or now - self.fetched_at >= self.refresh_every

    def should_fetch_for(self, serial: str, now: float | None = None) -> bool:
        """Whether a reply or notify naming ``serial`` justifies a download (unknown, and not too soon)."""
        now = self.clock() if now is None else now
        return not self.knows(serial) and self._may_fetch(now)

    def expires_soon(self, now: float | None = None) -> datetime | None:
        """The newest trusted certificate's expiry when it is within the margin (for a warning), else ``None``."""
        now = self.clock() if now is None else now
        valid = self.valid_certificates(now)
        if not valid:
            return None
        newest = max(c.not_after for c in valid)
        return newest if newest.timestamp() - now <= self.margin else None

    # --- as a Verifier ----------------------------------------------------------------------

    @property
    def preferred_serial(self) -> str:
        """The newest trusted certificate's serial; ``""`` while none is trusted (name no key to WeChat)."""
        return self._verifier.preferred_serial if self._verifier is not None else ""

    def knows(self, serial: str) -> bool:
        return self._verifier is not None and self._verifier.knows(serial)

    def verify(self, serial: str, message: bytes, signature: bytes, *, signed_at: int) -> None:
        if self._verifier is None:
            raise VerificationError(
                f"Wechatpay-Serial {str(serial)[:64]!r}: no platform certificate is trusted yet",
                code="unknown_serial")
        self._verifier.verify(serial, message, signature, signed_at=signed_at)

    # --- storage --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for a store: the certificates' PEM (public) and the two times."""
        return {
            "version": 1,
            "certificates": [c.pem for c in sorted(self._by_serial.values(), key=lambda c: c.serial_no)],
            "fetched_at": self.fetched_at,
            "attempted_at": self.attempted_at,
        }

    def load_dict(self, state: Mapping[str, Any]) -> None:
        """Take a stored state (another process may have refreshed): its certificates join ours."""
        if not isinstance(state, Mapping) or state.get("version") != 1:
            raise ConfigError("Stored platform certificate state is not version 1", code="bad_certificate_state")
        pems = state.get("certificates")
        if not isinstance(pems, list) or not all(isinstance(p, str) for p in pems):
            raise ConfigError("Stored platform certificate state has no certificate list", code="bad_certificate_state")
        self._add(load_certificate(p) for p in pems)
        for name in ("fetched_at", "attempted_at"):
            value = state.get(name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise ConfigError(f"Stored platform certificate state: {name} is not a time", code="bad_certificate_state")
            mine = getattr(self, name)
            if value is not None and (mine is None or value > mine):
                setattr(self, name, float(value))

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], **kw: Any) -> "PlatformCertificateKeeper":
        keeper = cls(**kw)
        keeper.load_dict(state)
        return keeper
