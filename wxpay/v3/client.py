"""Pay APIv3 for a merchant: the one V3 class that does I/O, through :mod:`wxpay.transport`.

Everything it decides is decided elsewhere, without I/O: requests are built
and their bodies serialised once by :mod:`wxpay.v3.requests`, replies are
verified and typed by :mod:`wxpay.v3.replies`, platform certificates are
kept by :class:`~wxpay.v3.keeper.PlatformCertificateKeeper`. This class
strings them together around one ``transport.send`` per attempt, with
explicit timeouts, the retry policy (only for calls safe to repeat) and
the observer that feeds call statistics.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from datetime import date
from typing import Any, Callable, Mapping, TypeVar

from ..bill import Bill, FundFlowBill, parse_bill, parse_fund_flow_bill
from ..endpoints import Endpoints
from ..errors import ConfigError, VerificationError, WxPayError
from ..retry import RetryPolicy, Sleep
from ..transport import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    HttpRequest,
    HttpResponse,
    Observer,
    as_transport,
    host_of,
    observed_call,
)
from .aead import ApiV3Cipher
from .bills import BillDownload
from .certificates import read_certificates_reply
from .endpoints import V3Endpoints
from .keeper import PlatformCertificateKeeper
from .keys import Certificate
from .models import AppPrepay, H5Prepay, JsapiPrepay, NativePrepay, Refund, Transaction
from .notify import NotifyEvent, NotifyReader
from .replies import (
    header,
    read_bill_download,
    read_bill_file,
    read_close,
    read_prepay,
    read_refund,
    read_refund_query,
    read_transaction,
)
from .requests import (
    V3Request,
    build_bill_file,
    build_certificates,
    build_close,
    build_fund_flow_bill,
    build_order,
    build_query_by_out_trade_no,
    build_query_by_transaction_id,
    build_refund,
    build_refund_query,
    build_trade_bill,
    request_headers,
)
from .signing import MerchantSigner
from .verification import WINDOW_SECONDS, CombinedVerifier, PublicKeyVerifier, Validator, Verifier

__all__ = ["WxPayV3Client"]

log = logging.getLogger("wxpay.v3.client")

T = TypeVar("T")

BILL_REQUEST_TIMEOUT = 60.0


class WxPayV3Client:
    """Async APIv3 client for one merchant.

    Trust in WeChat comes from ``public_key`` (a ``PublicKeyVerifier``: the
    WeChat Pay public key and its ``PUB_KEY_ID_…``), from ``certificates``
    (a ``PlatformCertificateKeeper``: platform certificates, downloaded and
    refreshed here), or from both during WeChat's gray switch. Every request
    names the key we verify with in ``Wechatpay-Serial`` (the public key
    first), so WeChat signs its reply with that key.

    ``transport`` is anything with ``async send(HttpRequest) -> HttpResponse``
    or a bare async function (default: :class:`~wxpay.transport.TornadoTransport`).
    Queries, close, refund queries and bills retry by themselves; orders and
    refunds only with ``retry=True`` (the same out_trade_no / out_refund_no
    makes a repeat harmless). ``observer`` receives a ``CallRecord`` per attempt.
    """

    def __init__(
        self,
        signer: MerchantSigner,
        cipher: ApiV3Cipher,
        *,
        public_key: PublicKeyVerifier | None = None,
        certificates: PlatformCertificateKeeper | None = None,
        appid: str | None = None,
        transport: Any = None,
        endpoints: Endpoints | V3Endpoints | None = None,
        retry: RetryPolicy | None = None,
        observer: Observer | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        window: int = WINDOW_SECONDS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if not isinstance(signer, MerchantSigner):
            raise ConfigError("WxPayV3Client needs a wxpay.v3.MerchantSigner (the merchant key and its serial)")
        if not isinstance(cipher, ApiV3Cipher):
            raise ConfigError("WxPayV3Client needs a wxpay.v3.ApiV3Cipher (the APIv3 key)")
        if public_key is None and certificates is None:
            raise ConfigError(
                "Configure how to verify WeChat: the WeChat Pay public key and its PUB_KEY_ID_… "
                "(merchants since late 2024), platform certificates (older merchants), or both during the switch",
                code="no_verifier",
            )
        if public_key is not None and not isinstance(public_key, PublicKeyVerifier):
            raise ConfigError("public_key must be a wxpay.v3.PublicKeyVerifier")
        if certificates is not None and not isinstance(certificates, PlatformCertificateKeeper):
            raise ConfigError("certificates must be a wxpay.v3.PlatformCertificateKeeper")
        self.signer = signer
        self.cipher = cipher
        self.mchid = signer.mchid
        self.appid = appid
        self.public_key = public_key
        self.certificates = certificates
        parts: list[Verifier] = [v for v in (public_key, certificates) if v is not None]
        self.verifier: Verifier = parts[0] if len(parts) == 1 else CombinedVerifier(*parts)
        self.clock = clock
        self.validator = Validator(self.verifier, clock=clock, window=window)
        self.transport = as_transport(transport)
        if isinstance(endpoints, Endpoints):
            endpoints = V3Endpoints.from_endpoints(endpoints)
        self.endpoints = endpoints or V3Endpoints()
        self.retry_policy = retry or RetryPolicy()
        self.observer = observer
        self._sleep = sleep
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._refresh_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._refresh_error: WxPayError | None = None  # the last download's failure, until one succeeds

    def __repr__(self) -> str:
        return f"WxPayV3Client(mchid={self.mchid!r}, verifier={self.verifier!r}, base={self.endpoints.base!r})"

    # --- the one path to WeChat ----------------------------------------------------------

    def wechatpay_serial(self) -> str | None:
        """The key we ask WeChat to sign replies with: the public key ID, else the newest trusted certificate."""
        return self.verifier.preferred_serial or None

    def _http_request(self, request: V3Request, timeout: float) -> HttpRequest:
        wire_path = self.endpoints.path(request.path)
        headers = request_headers(self.signer, request.method, wire_path, request.body,
                                  wechatpay_serial=self.wechatpay_serial())
        return HttpRequest(
            method=request.method,
            url=self.endpoints.url(wire_path),
            headers=headers,
            body=request.body if request.method != "GET" else None,
            connect_timeout=self.connect_timeout,
            request_timeout=timeout,
            any_status=True,
        )

    async def _call(
        self,
        request: V3Request,
        read: Callable[[HttpResponse], T],
        *,
        retry: bool | None = None,
        timeout: float | None = None,
        learn: bool = True,
    ) -> T:
        """Send ``request`` (re-signed per attempt), read the reply; retry only if safe.

        ``learn``: on a reply signed under an unknown serial, download the
        platform certificates once (bounded) and read the same reply again.
        """
        if learn:
            await self._refresh_if_due()
        enabled = request.safe if retry is None else retry

        async def attempt() -> T:
            response = await self.transport.send(self._http_request(request, timeout or self.request_timeout))
            return await self._read(response, read, learn=learn)

        return await observed_call(
            request.endpoint, host_of(self.endpoints.url(self.endpoints.path(request.path))), attempt,
            observer=self.observer, logger=log, policy=self.retry_policy, retry=enabled, sleep=self._sleep,
        )

    async def _read(self, response: HttpResponse, read: Callable[[HttpResponse], T], *, learn: bool) -> T:
        try:
            return read(response)
        except VerificationError as exc:
            if not learn or exc.code != "unknown_serial":
                raise
            serial = header(response.headers, "Wechatpay-Serial") or ""
            if not await self.learn_serial(serial):
                raise
            return read(response)

    # --- orders ------------------------------------------------------------------------------

    def _order(self, kind: str, appid: str | None, fields: Mapping[str, Any]) -> V3Request:
        appid = appid or self.appid
        if appid is None:
            raise ConfigError("No appid: give appid= to the call or to WxPayV3Client")
        return build_order(kind, appid=appid, mchid=self.mchid, **fields)

    async def create_jsapi_order(self, *, description: str, out_trade_no: str, notify_url: str, total: int,
                                 openid: str, appid: str | None = None, retry: bool = False,
                                 **more: Any) -> JsapiPrepay:
        """JSAPI: Official Account pages, and Mini Programs (pass the Mini Program's appid)."""
        request = self._order("jsapi", appid, dict(description=description, out_trade_no=out_trade_no,
                                                   notify_url=notify_url, total=total, openid=openid, **more))
        return await self._call(request, lambda r: read_prepay("jsapi", r.status, r.headers, r.body, self.validator),
                                retry=retry)

    async def create_app_order(self, *, description: str, out_trade_no: str, notify_url: str, total: int,
                               appid: str | None = None, retry: bool = False, **more: Any) -> AppPrepay:
        request = self._order("app", appid, dict(description=description, out_trade_no=out_trade_no,
                                                 notify_url=notify_url, total=total, **more))
        return await self._call(request, lambda r: read_prepay("app", r.status, r.headers, r.body, self.validator),
                                retry=retry)

    async def create_native_order(self, *, description: str, out_trade_no: str, notify_url: str, total: int,
                                  appid: str | None = None, retry: bool = False, **more: Any) -> NativePrepay:
        request = self._order("native", appid, dict(description=description, out_trade_no=out_trade_no,
                                                    notify_url=notify_url, total=total, **more))
        return await self._call(request, lambda r: read_prepay("native", r.status, r.headers, r.body, self.validator),
                                retry=retry)

    async def create_h5_order(self, *, description: str, out_trade_no: str, notify_url: str, total: int,
                              payer_client_ip: str, appid: str | None = None, retry: bool = False,
                              **more: Any) -> H5Prepay:
        request = self._order("h5", appid, dict(description=description, out_trade_no=out_trade_no,
                                                notify_url=notify_url, total=total,
                                                payer_client_ip=payer_client_ip, **more))
        return await self._call(request, lambda r: read_prepay("h5", r.status, r.headers, r.body, self.validator),
                                retry=retry)

    async def query_by_out_trade_no(self, out_trade_no: str) -> Transaction:
        request = build_query_by_out_trade_no(self.mchid, out_trade_no)
        return await self._call(request, lambda r: read_transaction(
            r.status, r.headers, r.body, self.validator, mchid=self.mchid, out_trade_no=out_trade_no))

    async def query_by_transaction_id(self, transaction_id: str) -> Transaction:
        request = build_query_by_transaction_id(self.mchid, transaction_id)
        return await self._call(request, lambda r: read_transaction(
            r.status, r.headers, r.body, self.validator, mchid=self.mchid, transaction_id=transaction_id))

    async def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order (204). Query first if it may have been paid meanwhile."""
        request = build_close(self.mchid, out_trade_no)
        await self._call(request, lambda r: read_close(r.status, r.headers, r.body, self.validator))

    # --- refunds ---------------------------------------------------------------------------------

    async def refund(self, *, out_refund_no: str, refund: int, total: int, out_trade_no: str | None = None,
                     transaction_id: str | None = None, retry: bool = False, **more: Any) -> Refund:
        """Ask for a refund. Success means accepted; the outcome comes by notify or :meth:`query_refund`."""
        request = build_refund(out_refund_no=out_refund_no, refund=refund, total=total, out_trade_no=out_trade_no,
                               transaction_id=transaction_id, **more)
        return await self._call(request, lambda r: read_refund(
            r.status, r.headers, r.body, self.validator, out_refund_no=out_refund_no), retry=retry)

    async def query_refund(self, out_refund_no: str) -> Refund:
        """One refund by our number; 404 → ``RefundNotExistError``."""
        request = build_refund_query(out_refund_no)
        return await self._call(request, lambda r: read_refund_query(
            r.status, r.headers, r.body, self.validator, out_refund_no=out_refund_no))

    # --- bills ------------------------------------------------------------------------------------

    def _bill_timeout(self) -> float:
        return max(BILL_REQUEST_TIMEOUT, self.request_timeout)

    async def trade_bill_download(self, bill_date: date, bill_type: str = "ALL", *, gzip: bool = False) -> BillDownload:
        """Bill step 1 for the trade bill: where to download it and its SHA1."""
        return await self._call(build_trade_bill(bill_date, bill_type, gzip=gzip),
                                lambda r: read_bill_download(r.status, r.headers, r.body, self.validator))

    async def fund_flow_bill_download(self, bill_date: date, account_type: str = "BASIC", *,
                                      gzip: bool = False) -> BillDownload:
        return await self._call(build_fund_flow_bill(bill_date, account_type, gzip=gzip),
                                lambda r: read_bill_download(r.status, r.headers, r.body, self.validator))

    async def download_bill_file(self, download: BillDownload) -> bytes:
        """Bill step 2: the file (unsigned), returned as plain bytes once its SHA1 matches step 1.

        A ``download_url`` that is not on the configured WeChat host is
        refused before any request (it would receive our Authorization).
        """
        request = build_bill_file(self.endpoints.api_path_of(download.download_url))
        return await self._call(request, lambda r: read_bill_file(r.status, r.headers, r.body, download),
                                timeout=self._bill_timeout())

    async def trade_bill(self, bill_date: date, bill_type: str = "ALL", *, gzip: bool = False) -> Bill:
        """Both steps, then the rows typed (the same format as V2's statement)."""
        return parse_bill(await self.download_bill_file(await self.trade_bill_download(bill_date, bill_type, gzip=gzip)))

    async def fund_flow_bill(self, bill_date: date, account_type: str = "BASIC", *, gzip: bool = False) -> FundFlowBill:
        download = await self.fund_flow_bill_download(bill_date, account_type, gzip=gzip)
        return parse_fund_flow_bill(await self.download_bill_file(download))

    # --- notifies -----------------------------------------------------------------------------------

    def notify_reader(self) -> NotifyReader:
        """A reader for this merchant's notifies with the same trust as replies (gray switch included)."""
        return NotifyReader(self.validator, self.cipher, self.mchid)

    async def read_notify(self, headers: Mapping[str, str], body: bytes) -> NotifyEvent:
        """Verify, decrypt and type one notify; a platform serial not yet known is learnt once (bounded)."""
        reader = self.notify_reader()
        try:
            return reader.read(headers, body)
        except VerificationError as exc:
            if exc.code != "unknown_serial" or not await self.learn_serial(header(headers, "Wechatpay-Serial") or ""):
                raise
        return reader.read(headers, body)

    # --- platform certificates ------------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        """One certificate download at a time, per event loop (a lock belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._refresh_lock is None or self._lock_loop is not loop:
            self._refresh_lock, self._lock_loop = asyncio.Lock(), loop
        return self._refresh_lock

    async def download_certificates(self) -> tuple[Certificate, ...]:
        """``GET /v3/certificates``, decrypted and verified with what is already trusted.

        Verification uses the public key and the platform certificates valid
        now; with neither (the first download), the certificates the reply
        carries. A public-key merchant gets ``PlatformCertificatesUnavailableError``.
        Does not change what is trusted: :meth:`refresh_certificates` does.
        """
        trusted: list[Verifier] = []
        if self.public_key is not None:
            trusted.append(self.public_key)
        if self.certificates is not None:
            current = self.certificates.trusted_verifier(self.clock())
            if current is not None:
                trusted.append(current)
        verifier = None if not trusted else trusted[0] if len(trusted) == 1 else CombinedVerifier(*trusted)
        if verifier is None and self.certificates is not None and self.certificates.certificates:
            log.warning("every trusted WeChat platform certificate has expired: trusting the next download "
                        "by the certificates it carries, as on a first load")
        return await self._call(
            build_certificates(),
            lambda r: read_certificates_reply(r.status, r.headers, r.body, self.cipher, verifier=verifier,
                                              clock=self.clock),
            learn=False,
        )

    async def refresh_certificates(self) -> list[str]:
        """Download now (at most one at a time) and trust what verifies; returns the new serials.

        Errors are raised (a public-key merchant's ``PlatformCertificatesUnavailableError``
        among them); the previous certificates stay trusted.
        """
        keeper = self._keeper()
        async with self._lock():
            return await self._refresh(keeper)

    async def _refresh(self, keeper: PlatformCertificateKeeper) -> list[str]:
        keeper.begin(self.clock())
        try:
            certificates = await self.download_certificates()
        except WxPayError as exc:
            self._refresh_error = exc
            raise
        self._refresh_error = None
        added = keeper.accept(certificates, self.clock())
        if added:
            log.info("WeChat platform certificates now trusted: %s", ", ".join(added))
        soon = keeper.expires_soon(self.clock())
        if soon is not None:
            log.warning("the newest WeChat platform certificate expires %s and WeChat offers no newer one: "
                        "switch to the WeChat Pay public key (merchant platform, API security)", soon.isoformat())
        return added

    def _keeper(self) -> PlatformCertificateKeeper:
        if self.certificates is None:
            raise ConfigError("This client verifies with the WeChat Pay public key; it keeps no platform certificates",
                              code="no_platform_certificates")
        return self.certificates

    async def _refresh_if_due(self) -> None:
        keeper = self.certificates
        if keeper is None:
            return
        lock = self._lock()
        # A first load in flight: wait for it rather than ask WeChat with no key named.
        waiting = lock.locked() and not keeper.valid_certificates(self.clock())
        if not keeper.due(self.clock()) and not waiting:
            return self._check_can_verify(keeper)
        async with lock:
            if not keeper.due(self.clock()):
                return self._check_can_verify(keeper)  # another caller refreshed (or failed) while we waited
            try:
                await self._refresh(keeper)
            except WxPayError as exc:
                if self.public_key is None and not keeper.valid_certificates(self.clock()):
                    raise  # nothing to verify replies with: the caller must see why
                log.warning("WeChat platform certificate refresh failed (%s: %s); still trusting %s",
                            exc.code, exc.message, [c.serial_no for c in keeper.valid_certificates(self.clock())]
                            or "the WeChat Pay public key")

    def _check_can_verify(self, keeper: PlatformCertificateKeeper) -> None:
        """Refuse to call WeChat when nothing could verify its reply (no public key, no valid
        certificate, the last download failed and the next is not allowed yet): an order sent
        now would exist at WeChat with an answer we must refuse. The download's own error is
        raised again (a public-key merchant's ``PlatformCertificatesUnavailableError``)."""
        if self.public_key is not None or keeper.valid_certificates(self.clock()):
            return
        failure = self._refresh_error
        if failure is not None:
            raise copy.copy(failure).with_traceback(None)
        raise ConfigError("No WeChat platform certificate is trusted yet and none may be downloaded before "
                          f"{keeper.min_interval:.0f} s after the last attempt", code="no_platform_certificates")

    async def learn_serial(self, serial: str) -> bool:
        """Whether ``serial`` is trusted after at most one bounded download (unknown serials in replies and notifies)."""
        keeper = self.certificates
        if keeper is None or not isinstance(serial, str) or not serial:
            return False
        if keeper.knows(serial):
            return True
        async with self._lock():
            if keeper.knows(serial):
                return True
            if not keeper.should_fetch_for(serial, self.clock()):
                return False
            try:
                await self._refresh(keeper)
            except WxPayError as exc:
                log.warning("WeChat platform certificate download for serial %s failed (%s: %s)",
                            serial[:64], exc.code, exc.message)
                return False
            return keeper.knows(serial)
