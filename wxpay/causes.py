"""Why a WeChat call failed: one stable code per cause, for logs, /status and /metrics.

The transport names the cause of a failure on the wire from what Tornado's
two HTTP clients report: libcurl's error number, its message and the
socket's ``errno`` (curl client); the socket, DNS and ``ssl`` exceptions and
Tornado's own timeout and stream errors (simple client). Everything that
fails above the wire carries its cause on its error class
(:mod:`wxpay.errors`). A code never changes meaning; new ones may appear.

Pure functions only: no I/O, no logging.
"""
from __future__ import annotations

import errno as _errno
import socket
import ssl
from typing import Mapping

# -- the codes -----------------------------------------------------------------

REFUSED = "refused"
DNS = "dns"
UNREACHABLE = "unreachable"
CONNECT_TIMEOUT = "connect_timeout"
READ_TIMEOUT = "read_timeout"
QUEUE_TIMEOUT = "queue_timeout"
TIMEOUT = "timeout"
RESET = "reset"
CLOSED = "closed"
TLS = "tls"
TLS_CERTIFICATE = "tls_certificate"
TLS_CLIENT_CERTIFICATE = "tls_client_certificate"
NETWORK = "network"
TOO_LARGE = "too_large"
MALFORMED_REPLY = "malformed_reply"
BAD_SIGNATURE = "bad_signature"
UNDECRYPTABLE = "undecryptable"
IDENTITY_MISMATCH = "identity_mismatch"
WECHAT_ERROR = "wechat_error"
CONFIG = "config"
INVALID_ARGUMENT = "invalid_argument"
INTERNAL = "internal"
HTTP_PREFIX = "http_"  # http_502: WeChat (or a proxy in the way) answered that status

#: Every code, with what it means and what to do: the operator's side of the table.
CAUSES: Mapping[str, str] = {
    REFUSED: "nothing accepts connections at WeChat's address: a firewall, or a wrong *_base URL",
    DNS: "WeChat's host name does not resolve: check the machine's DNS (resolv.conf)",
    UNREACHABLE: "no route to WeChat's network: check the machine's network and egress rules",
    CONNECT_TIMEOUT: "no connection within the connect timeout: packets dropped by a firewall, or a slow network",
    READ_TIMEOUT: "connected, but the answer did not come within the request timeout",
    QUEUE_TIMEOUT: "every connection slot to WeChat stayed busy: too many calls at once",
    TIMEOUT: "no answer in time",
    RESET: "the connection was reset (a proxy or firewall in the way, or WeChat restarting)",
    CLOSED: "the connection was closed before a whole answer arrived",
    TLS: "the TLS handshake failed (protocol or cipher)",
    TLS_CERTIFICATE: "WeChat's certificate did not verify: a proxy intercepting TLS, or an outdated CA bundle",
    TLS_CLIENT_CERTIFICATE: "the merchant certificate (wechat.cert_path / key_path) is missing, unreadable or refused",
    NETWORK: "another network error",
    TOO_LARGE: "the answer was larger than the transport accepts",
    MALFORMED_REPLY: "the answer is not what WeChat's protocol promises (a proxy's page?)",
    BAD_SIGNATURE: "the answer's signature did not verify: check the API key or WeChat's public key",
    UNDECRYPTABLE: "the answer did not decrypt with our key: check the APIv3 key",
    IDENTITY_MISMATCH: "the answer names another appid or mch_id than ours",
    WECHAT_ERROR: "WeChat answered and said no: see its error code",
    CONFIG: "the configuration cannot make this call",
    INVALID_ARGUMENT: "the call's arguments break WeChat's field rules",
    INTERNAL: "a bug on our side: see the log",
    HTTP_PREFIX + "N": "WeChat (or a proxy in the way) answered HTTP status N",
}


def http_status(status: int) -> str:
    return f"{HTTP_PREFIX}{int(status)}"


def hint(cause: str | None) -> str:
    """What an operator does about ``cause`` (one short sentence)."""
    if not cause:
        return ""
    if cause.startswith(HTTP_PREFIX) and cause[len(HTTP_PREFIX):].isdigit():
        status = int(cause[len(HTTP_PREFIX):])
        if status >= 500:
            return f"WeChat (or a proxy in the way) answered HTTP {status}: usually passing"
        return f"HTTP {status}: a wrong *_base URL, or a proxy in the way"
    return CAUSES.get(cause, "")


def of(exc: BaseException) -> str:
    """The cause of any exception a WeChat call raised."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, str) and cause:
        return cause
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    return INTERNAL


def is_tls(cause: str) -> bool:
    """TLS causes do not go away by retrying a second later."""
    return cause in (TLS, TLS_CERTIFICATE, TLS_CLIENT_CERTIFICATE)


# -- reading the clients' reports ------------------------------------------------

# Words in OpenSSL's and libcurl's messages, lower case with "_" as " ".
_CLIENT_CERT_WORDS = (
    "alert certificate required", "alert bad certificate", "alert unknown ca", "alert certificate unknown",
    "alert certificate expired", "alert certificate revoked", "alert unsupported certificate",
    "pem lib", "key values mismatch", "client certificate", "could not load pem", "unable to set private key",
    "unable to use client certificate", "no start line", "bad decrypt",
)
_SERVER_CERT_WORDS = (
    "certificate verify failed", "verify result", "self-signed", "self signed", "unable to get local issuer",
    "certificate has expired", "certificate is not yet valid", "hostname mismatch",
    "no alternative certificate subject name", "does not match target host", "ssl certificate problem",
)


def from_tls_text(text: str) -> str:
    """A TLS failure's cause from OpenSSL's words: our certificate, theirs, or the handshake."""
    words = text.lower().replace("_", " ")
    if any(w in words for w in _CLIENT_CERT_WORDS):
        return TLS_CLIENT_CERTIFICATE
    if any(w in words for w in _SERVER_CERT_WORDS):
        return TLS_CERTIFICATE
    return TLS


# libcurl's CURLcode numbers (curl/curl.h) that name a cause by themselves.
_CURL: Mapping[int, str] = {
    1: MALFORMED_REPLY,  # UNSUPPORTED_PROTOCOL: e.g. "Received HTTP/0.9 when not allowed"
    3: CONFIG,  # URL_MALFORMAT
    5: DNS,  # COULDNT_RESOLVE_PROXY
    6: DNS,  # COULDNT_RESOLVE_HOST
    8: MALFORMED_REPLY,  # WEIRD_SERVER_REPLY
    18: CLOSED,  # PARTIAL_FILE: closed with data outstanding
    23: INTERNAL,  # WRITE_ERROR: our own callback stopped the transfer
    27: INTERNAL,  # OUT_OF_MEMORY
    51: TLS_CERTIFICATE,  # PEER_FAILED_VERIFICATION (old number)
    52: CLOSED,  # GOT_NOTHING: "Empty reply from server"
    53: TLS, 54: TLS, 59: TLS, 64: TLS, 66: TLS, 80: TLS,  # engine, cipher, use-ssl, shutdown
    58: TLS_CLIENT_CERTIFICATE,  # SSL_CERTPROBLEM: our certificate or key
    60: TLS_CERTIFICATE,  # PEER_FAILED_VERIFICATION
    61: MALFORMED_REPLY,  # BAD_CONTENT_ENCODING
    63: TOO_LARGE,  # FILESIZE_EXCEEDED
    77: TLS_CERTIFICATE,  # SSL_CACERT_BADFILE: the CA bundle that verifies WeChat
    82: TLS_CERTIFICATE, 83: TLS_CERTIFICATE, 90: TLS_CERTIFICATE, 91: TLS_CERTIFICATE,  # CRL, issuer, pin, OCSP
    98: TLS_CLIENT_CERTIFICATE,  # SSL_CLIENTCERT: the server wanted a client certificate
}
_CURL_COULDNT_CONNECT = 7
_CURL_TIMEOUT = 28
_CURL_SSL_CONNECT = 35
_CURL_SEND = 55
_CURL_RECV = 56


def from_curl(curl_errno: int, message: str, os_errno: int | None = None) -> str:
    """libcurl's error number and message (and the socket's errno, when known)."""
    text = message.lower()
    if curl_errno in _CURL:
        return _CURL[curl_errno]
    if curl_errno == _CURL_COULDNT_CONNECT:
        by_errno = _from_errno(os_errno)
        if by_errno is not None:
            return by_errno
        if "refused" in text:
            return REFUSED
        if "unreachable" in text or "no route" in text:
            return UNREACHABLE
        return NETWORK
    if curl_errno == _CURL_TIMEOUT:
        if "resolv" in text:
            return DNS
        if "connect" in text:  # "Connection timed out after 500 milliseconds"
            return CONNECT_TIMEOUT
        return READ_TIMEOUT  # "Operation timed out after … with 0 bytes received"
    if curl_errno == _CURL_SSL_CONNECT:
        return from_tls_text(text)
    if curl_errno in (_CURL_SEND, _CURL_RECV):
        if "reset" in text or "broken pipe" in text or _from_errno(os_errno) == RESET:
            return RESET
        if "ssl" in text or "tls" in text:
            return from_tls_text(text)
        return NETWORK
    return NETWORK


_ERRNO: Mapping[int, str] = {
    _errno.ECONNREFUSED: REFUSED,
    _errno.ECONNRESET: RESET,
    _errno.EPIPE: RESET,
    _errno.ECONNABORTED: RESET,
    _errno.ETIMEDOUT: CONNECT_TIMEOUT,
    _errno.ENETUNREACH: UNREACHABLE,
    _errno.EHOSTUNREACH: UNREACHABLE,
    _errno.ENETDOWN: UNREACHABLE,
    _errno.EHOSTDOWN: UNREACHABLE,
}


def _from_errno(number: int | None) -> str | None:
    return _ERRNO.get(number) if number else None


def from_os_error(exc: OSError) -> str:
    """The simple client's socket, DNS and ``ssl`` errors."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLS_CERTIFICATE
    if isinstance(exc, ssl.SSLError):
        return from_tls_text(f"{exc.reason or ''} {exc}")
    if isinstance(exc, socket.gaierror):
        return DNS
    if isinstance(exc, (socket.timeout, TimeoutError)) and exc.errno is None:
        return TIMEOUT
    return _from_errno(exc.errno) or NETWORK


def from_tornado_message(message: str, *, timeout: bool) -> str:
    """Tornado's simple client: ``HTTPTimeoutError`` and ``HTTPStreamClosedError`` by their words."""
    text = message.lower()
    if not timeout:
        return CLOSED  # "Stream closed", "Connection closed"
    if "queue" in text:
        return QUEUE_TIMEOUT
    if "connect" in text:  # "Timeout while connecting"
        return CONNECT_TIMEOUT
    if "during request" in text:
        return READ_TIMEOUT
    return TIMEOUT
