"""APIv3 bills, step 1 (where to download) and the check of what was downloaded.

Step 1 (``GET /v3/bill/tradebill?…``, signed and verified like any call)
answers ``{hash_type, hash_value, download_url}``. Step 2 fetches the
download URL's path and query, signed like any GET, but the file comes back
with no ``Wechatpay-*`` headers: its proof is the SHA1 from step 1, of the
*un-gzipped* bytes (:func:`check_bill`). The plain file is the same text
format as V2's statement: :func:`wxpay.bill.parse_bill` types it.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..bill import MAX_BILL_BYTES, gunzip
from ..errors import ProtocolError
from .models import parse_json_object

__all__ = ["BillDownload", "check_bill", "parse_bill_download"]

_GZIP_MAGIC = b"\x1f\x8b"
_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class BillDownload:
    """Step 1's answer. Fetch ``path_with_query`` from the configured WeChat host, never
    from whatever host ``download_url`` names (it would receive our Authorization)."""

    hash_type: str
    hash_value: str
    download_url: str

    @property
    def path_with_query(self) -> str:
        parts = urlsplit(self.download_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


def parse_bill_download(body: bytes) -> BillDownload:
    """Step 1's (already verified) reply body → :class:`BillDownload`.

    ``ProtocolError`` codes: ``malformed_json``, ``missing_field``,
    ``unsupported_hash`` (anything but SHA1), ``bad_field``.
    """
    obj = parse_json_object(body, "The bill reply")
    values = {}
    for name in ("hash_type", "hash_value", "download_url"):
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"The bill reply lacks the required field {name}", code="missing_field")
        values[name] = value
    if values["hash_type"].upper() != "SHA1":
        raise ProtocolError(f"The bill reply's hash_type is {values['hash_type'][:20]!r}; only SHA1 is known",
                            code="unsupported_hash")
    if not _SHA1_HEX.fullmatch(values["hash_value"]):
        raise ProtocolError("The bill reply's hash_value is not 40 hex digits", code="bad_field")
    parts = urlsplit(values["download_url"])
    if parts.scheme not in ("https", "http") or not parts.netloc or not parts.path.startswith("/"):
        raise ProtocolError("The bill reply's download_url is not an absolute URL", code="bad_field")
    return BillDownload(**values)


def check_bill(data: bytes, download: BillDownload, *, max_bytes: int = MAX_BILL_BYTES) -> bytes:
    """The plain bill bytes once their SHA1 matches step 1's; gzip is undone first (size-capped).

    A mismatch is ``ProtocolError`` ``bill_hash_mismatch``: download again
    (from step 1; the URL is short-lived).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be the downloaded bytes")
    plain = gunzip(bytes(data), max_bytes) if bytes(data[:2]) == _GZIP_MAGIC else bytes(data)
    digest = hashlib.sha1(plain).hexdigest()
    if not hmac.compare_digest(digest, download.hash_value.lower()):
        raise ProtocolError(
            "The downloaded bill's SHA1 differs from the one WeChat announced: the file is incomplete or "
            "altered; request the bill again",
            code="bill_hash_mismatch",
        )
    return plain
