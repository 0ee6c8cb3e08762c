"""The merchant API as an OpenAPI 3.1 document, served at ``/api/openapi.json``.

Written by hand, once, here: every operation, parameter, body field, status
and error code. Limits and enumerations are read from the services that
enforce them (``service.checkouts.MAX_AMOUNT_FEN``, the statuses in
``service.models``, the configured expiry bounds), so a number cannot drift.
``tests/handlers/test_openapi.py`` fails when a handler accepts a field,
query argument or header, or can raise an error code, that this document
does not list, and the other way round; the schemathesis run
(``tests/server/test_fuzz_api.py``) checks every answer against it.
``docs/openapi.json`` and ``docs/api.md`` are rendered from it
(``python -m handlers.openapi_markdown``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.checkouts import (
    LIST_LIMIT_MAX,
    LIST_OFFSET_MAX,
    MAX_AMOUNT_FEN,
    RETURN_URL_MAX,
    TEXT_MAX_BYTES,
)
from service.jssdk import MAX_APIS, PAGE_URL_MAX
from service.models import CHECKOUT_STATUSES, ORDER_STATES, REFUND_STATES, TRADE_TYPES
from service.refunds import MAX_REFUNDS, REASON_MAX_CHARS
from service.webhooks import EVENT_ID_MAX, EVENT_STATES
from service.webhooks import LIST_LIMIT_MAX as WEBHOOK_LIST_MAX

from .base import BaseHandler, HTTP_ERRORS

# -- error codes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCode:
    status: int
    meaning: str


# Ours: every code a handler or service raises, with the status it always has.
ERRORS: dict[str, ErrorCode] = {
    # 400: the request
    "invalid_json": ErrorCode(400, "The body is not JSON (or uses NaN/Infinity, or nests too deep)."),
    "invalid_body": ErrorCode(400, "The body is JSON but not an object."),
    "unknown_field": ErrorCode(400, "The body has a field this operation does not take (`details.fields` names them)."),
    "invalid_encoding": ErrorCode(400, HTTP_ERRORS[400][1] + "."),
    "unknown_parameter": ErrorCode(400, "A query parameter this operation does not take (a typo must not widen a list)."),
    "repeated_parameter": ErrorCode(400, "A query parameter given more than once."),
    "malformed_request": ErrorCode(400, "The Content-Length header is not a number."),
    "invalid_amount": ErrorCode(400, "amount_fen is not an integer in range (fen: 1 yuan = 100 fen)."),
    "invalid_description": ErrorCode(400, "description is missing, longer than 127 UTF-8 bytes, or not one line of "
                                          "plain text (controls, bidi overrides, line separators, unpaired surrogates)."),
    "invalid_reference": ErrorCode(400, "merchant_reference is not 1-64 printable ASCII characters."),
    "invalid_attach": ErrorCode(400, "attach is longer than 127 UTF-8 bytes or not one line of plain text."),
    "invalid_expiry": ErrorCode(400, "expires_in_minutes is not an integer within the configured bounds."),
    "invalid_return_url": ErrorCode(400, "return_url is not an absolute http(s) URL with a host and a valid port "
                                         "(https only in live mode), or has spaces, backslashes or controls."),
    "invalid_idempotency_key": ErrorCode(400, "The Idempotency-Key header is not 1-255 visible ASCII characters."),
    "invalid_status": ErrorCode(400, "The status filter is not a checkout status."),
    "invalid_limit": ErrorCode(400, "limit is not ASCII digits within the allowed range."),
    "invalid_offset": ErrorCode(400, "offset is not ASCII digits within the allowed range."),
    "invalid_client": ErrorCode(400, "client is not `mini_program` or `app` (or openid was given for `app`)."),
    "invalid_client_ip": ErrorCode(400, "client_ip (or the caller's address) is not an IPv4/IPv6 address as text."),
    "invalid_trade_type": ErrorCode(400, "The trade type is not one WeChat offers (JSAPI, NATIVE, MWEB, APP)."),
    "openid_required": ErrorCode(400, "A Mini Program payment needs the shopper's openid ([A-Za-z0-9_-], 1-128)."),
    "openid_rejected": ErrorCode(400, "WeChat refused the openid: not a user of the Mini Program (made up, or another "
                                      "app's such as the Official Account's). Get it with `createMiniProgramSession`."),
    "invalid_login_code": ErrorCode(400, "code is not a `wx.login` code (1-128 visible ASCII characters)."),
    "invalid_include_session_key": ErrorCode(400, "include_session_key is not true or false."),
    "login_code_rejected": ErrorCode(400, "WeChat does not accept the code (unknown, older than 5 minutes, or another "
                                          "Mini Program's): call `wx.login` again."),
    "login_code_already_used": ErrorCode(400, "The code was traded already (codes are single-use): call `wx.login` "
                                              "again."),
    "app_not_configured": ErrorCode(400, "No mobile app appid is configured (`wechat.app_appid`)."),
    "mini_program_not_configured": ErrorCode(400, "No Mini Program appid is configured (`wechat.mini_program_appid`)."),
    "invalid_page_url": ErrorCode(400, "url is not the absolute http(s) URL of the page (at most 1024 ASCII characters)."),
    "invalid_js_api_list": ErrorCode(400, "jsApiList is not a comma-separated list of JSSDK API names."),
    "invalid_out_refund_no": ErrorCode(400, "out_refund_no is not 1-64 of letters, digits and `_-|*@`."),
    "invalid_reason": ErrorCode(400, "reason is longer than 80 characters or not one line of plain text."),
    "refund_exceeds_remaining": ErrorCode(400, "The refund is more than the checkout's remaining refundable amount."),
    "invalid_state": ErrorCode(400, "The state filter is not a webhook event state."),
    # 401
    "unauthorized": ErrorCode(401, "No valid merchant token (`Authorization: Bearer <token>`)."),
    # 403
    "login_blocked_by_wechat": ErrorCode(403, "WeChat blocked the shopper's login (it rates the account high-risk)."),
    # 429
    "too_many_token_attempts": ErrorCode(429, "Too many wrong tokens from your address; wait `Retry-After` seconds."),
    "too_many_requests": ErrorCode(429, "Too many new WeChat orders from this network; wait `Retry-After` seconds."),
    "too_many_logins": ErrorCode(429, "The shopper logged in more often this minute than WeChat allows (100); "
                                      "wait `Retry-After` seconds."),
    # 404
    "not_found": ErrorCode(404, "No such path (the operations are the ones in this document)."),
    "checkout_not_found": ErrorCode(404, "No checkout with this id."),
    "event_not_found": ErrorCode(404, "No webhook event with this id."),
    "order_not_found": ErrorCode(404, "A WeChat order the checkout names is missing from the store (report it)."),
    # 405
    "method_not_allowed": ErrorCode(405, "The path exists but not with this method; `Allow` lists the methods."),
    # 409: the resource's state
    "idempotency_key_reused": ErrorCode(409, "This Idempotency-Key was used for a different request."),
    "idempotency_race": ErrorCode(409, "A request with this Idempotency-Key is in progress; retry."),
    "checkout_paid": ErrorCode(409, "The checkout is paid (or was paid while this request ran)."),
    "checkout_closed": ErrorCode(409, "The checkout is closed and cannot be paid."),
    "checkout_expired": ErrorCode(409, "The checkout has expired and cannot be paid."),
    "checkout_not_paid": ErrorCode(409, "Only a paid checkout can be refunded."),
    "prepay_in_progress": ErrorCode(409, "A payment for this checkout is being prepared; retry in a moment."),
    "too_many_orders": ErrorCode(409, "The checkout has made `checkout.max_orders` WeChat orders; create a new checkout."),
    "order_state": ErrorCode(409, "The WeChat order moved to another state while this request ran; retry."),
    "out_refund_no_reused": ErrorCode(409, "This out_refund_no (or Idempotency-Key) was used for a different refund."),
    "refund_in_progress": ErrorCode(409, "A refund with this number is being created; retry."),
    "refund_busy": ErrorCode(409, "The checkout is being changed by another request; retry."),
    "too_many_refunds": ErrorCode(409, f"WeChat allows at most {MAX_REFUNDS} refunds of one payment."),
    "event_busy": ErrorCode(409, "The webhook event is being delivered right now; retry."),
    # 413
    "body_too_large": ErrorCode(413, "The body is larger than `server.max_body_bytes`."),
    # 500
    "internal_error": ErrorCode(500, "A bug: it has been logged. Nothing was changed that a retry cannot repeat."),
    # 502: WeChat (ours; WeChat's own are UPSTREAM below)
    "refund_rejected": ErrorCode(502, "WeChat refused the refund (`details.wechat_code` says why); nothing moved."),
    "token_refresh_timeout": ErrorCode(502, "Another process is refreshing the WeChat token; retry shortly."),
    # 503
    "store_unavailable": ErrorCode(503, "The order store is unavailable; retry shortly."),
}

# WeChat's answers passed through as 502 with the wxpay library's code (wxpay/errors.py).
UPSTREAM: dict[str, str] = {
    "wxpay_error": "WeChat failed in a way the library has no finer code for.",
    "wechat_unreachable": "No usable answer from WeChat (connection, TLS, HTTP 5xx); retry.",
    "wechat_timeout": "WeChat did not answer in time; retry.",
    "malformed_message": "WeChat's answer was not the XML/JSON its protocol promises; retry.",
    "unsafe_xml": "WeChat's answer carried DOCTYPE/ENTITY declarations and was refused.",
    "message_too_large": "WeChat's answer was larger than the library accepts.",
    "undecryptable": "An encrypted answer did not decrypt with the configured key.",
    "bad_signature": "WeChat's answer was not signed with the configured key; check `wechat.api_key`.",
    "identity_mismatch": "WeChat's answer named another appid or mch_id; check the configuration.",
    "wxpay_config": "The configuration cannot do this (for example no client certificate for refunds).",
    "invalid_argument": "A value breaks WeChat's field rules (caught before calling WeChat).",
    "wechat_rejected_request": "WeChat refused the request itself (return_code=FAIL: signature, format).",
    "wechat_business_error": "WeChat understood the request and said no (`message` has its err_code).",
    "wechat_busy": "WeChat asks to retry later with the same parameters.",
    "order_paid": "WeChat says the order is already paid.",
    "order_closed": "WeChat says the order is closed.",
    "order_not_exist": "WeChat has no such order.",
    "refund_not_exist": "WeChat has no such refund.",
    "out_trade_no_used": "WeChat saw this out_trade_no with other parameters.",
    "not_enough": "Insufficient balance.",
    "invalid_request": "WeChat found a parameter invalid.",
    "openid_mismatch": "WeChat refused the openid as not a user of the appid (a payment call answers it as 400 "
                       "`openid_rejected`).",
    "merchant_setup": "Only the merchant's WeChat console or configuration can fix this.",
    "user_paying": "WeChat says the shopper is still paying (APIv3 202); retry with the same parameters.",
    "rate_limited": "WeChat asks us to slow down (APIv3 429); retry later.",
    "resource_not_exist": "WeChat has no such resource (APIv3 404 RESOURCE_NOT_EXISTS).",
    "no_platform_certificates": "WeChat has no platform certificates for this merchant: configure its public key.",
    "wechat_api_error": "A WeChat JSON API answered with a non-zero errcode.",
    "token_invalid": "WeChat refused the access_token; it is refreshed on the next call.",
    "api_quota_exceeded": "The Official Account's daily API quota is used up.",
    "login_code_invalid": "WeChat refused a `wx.login` code (answered as 400 `login_code_rejected`).",
    "login_code_used": "WeChat saw the `wx.login` code traded already (answered as 400 `login_code_already_used`).",
    "login_blocked": "WeChat blocked a high-risk shopper's login (answered as 403 `login_blocked_by_wechat`).",
    "login_rate_limited": "WeChat's per-shopper login limit (answered as 429 `too_many_logins`).",
}

# Every operation can be refused with these (the body limit and framing are checked
# before any handler runs; 500 is a bug, 503 our store).
COMMON = ("malformed_request", "internal_error", "store_unavailable")
WITH_BODY = ("invalid_json", "body_too_large")
AUTHENTICATED = ("unauthorized", "too_many_token_attempts", "unknown_parameter", "repeated_parameter")

# -- schemas ---------------------------------------------------------------------------------------

ISO = {"type": "string", "format": "date-time"}
ISO_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
STR_OR_NULL = {"type": ["string", "null"]}
OPTIONAL = ["string", "null"]  # an optional text field: null is the same as leaving it out
# One line of plain text: no C0/C1 controls, bidi embeddings/overrides/isolates or line separators.
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069\\u2028\\u2029]*$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    out["required"] = list(properties) if required is None else required
    out.update(extra)
    return out


def checkout_fields() -> dict[str, Any]:
    return {
        "id": {"type": "string", "pattern": "^co_[0-9a-f]{24}$"},
        "status": {"type": "string", "enum": list(CHECKOUT_STATUSES)},
        "amount_fen": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT_FEN},
        "description": {"type": "string"},
        "merchant_reference": STR_OR_NULL,
        "attach": STR_OR_NULL,
        "return_url": STR_OR_NULL,
        "expires_at": ISO,
        "created_at": ISO,
        "paid_at": ISO_OR_NULL,
        "closed_at": ISO_OR_NULL,
        "paid_out_trade_no": STR_OR_NULL,
        "refunded_fen": {"type": "integer", "minimum": 0},
        "refundable_fen": {"type": "integer", "minimum": 0},
        "double_paid": {"type": "boolean", "const": True,
                        "description": "Present only when a second WeChat order was paid too (it is refunded)."},
    }


def schemas(settings: Any) -> dict[str, Any]:
    co = settings.checkout
    base = checkout_fields()
    required = [k for k in base if k != "double_paid"]
    order = obj({
        "out_trade_no": {"type": "string"},
        "trade_type": {"type": "string", "enum": list(TRADE_TYPES)},
        "state": {"type": "string", "enum": list(ORDER_STATES)},
        "total_fee": {"type": "integer"},
        "transaction_id": STR_OR_NULL,
        "created_at": ISO,
        "paid_at": ISO_OR_NULL,
    })
    refund = obj({
        "out_refund_no": {"type": "string"},
        "checkout_id": {"type": "string"},
        "out_trade_no": {"type": "string"},
        "amount_fen": {"type": "integer", "minimum": 1},
        "state": {"type": "string", "enum": list(REFUND_STATES)},
        "kind": {"type": "string", "enum": ["merchant", "double_payment"],
                 "description": "`double_payment`: the server refunding a second payment of the same checkout."},
        "reason": STR_OR_NULL,
        "refund_id": {**STR_OR_NULL, "description": "WeChat's refund id, once WeChat accepted the refund."},
        "failure": {**STR_OR_NULL, "description": "WeChat's code when the refund failed or needs attention."},
        "created_at": ISO,
        "succeeded_at": ISO_OR_NULL,
    })
    sign_fields = {"nonceStr": {"type": "string"}, "package": {"type": "string"},
                   "signType": {"type": "string", "enum": ["MD5", "HMAC-SHA256", "RSA"],
                                "description": "`RSA` for orders placed under APIv3 (`wechat.api_version`): "
                                               "`paySign` is SHA256withRSA by the merchant key. Pass the object on "
                                               "unchanged."},
                   "paySign": {"type": "string"}}
    return {
        "Error": obj(
            {"code": {"type": "string"}, "message": {"type": "string", "minLength": 1},
             "details": {"type": "object", "description": "More about this error, when there is more to say."}},
            required=["code", "message"],
        ),
        "Checkout": obj({**base, "pay_url": {"type": "string", "format": "uri",
                                             "description": "Open this inside WeChat (or any browser) to pay."}},
                        required=[*required, "pay_url"]),
        "CheckoutDetail": obj({**base, "pay_url": {"type": "string", "format": "uri"},
                               "orders": {"type": "array", "items": ref("Order")},
                               "refunds": {"type": "array", "items": ref("Refund")}},
                              required=[*required, "pay_url", "orders", "refunds"]),
        "CancelledCheckout": obj({**base, "orders": {"type": "array", "items": ref("Order")}},
                                 required=[*required, "orders"]),
        "CheckoutList": obj({"items": {"type": "array", "items": ref("Checkout")},
                             "limit": {"type": "integer"}, "offset": {"type": "integer"}}),
        "CreateCheckout": obj({
            "amount_fen": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT_FEN,
                           "description": "The amount in fen (1 yuan = 100 fen)."},
            "description": {"type": "string", "minLength": 1, "maxLength": TEXT_MAX_BYTES, "pattern": TEXT_PATTERN,
                            "description": f"What the shopper buys, shown by WeChat: at most {TEXT_MAX_BYTES} UTF-8 "
                                           "bytes of one line of plain text, not only spaces."},
            "merchant_reference": {"type": OPTIONAL, "pattern": "^[\\x20-\\x7e]{1,64}$",
                                   "description": "Your own reference (printable ASCII), filterable in the list."},
            "attach": {"type": OPTIONAL, "maxLength": TEXT_MAX_BYTES, "pattern": TEXT_PATTERN,
                       "description": f"Passed to WeChat and back: at most {TEXT_MAX_BYTES} UTF-8 bytes."},
            "expires_in_minutes": {"type": "integer", "minimum": co.min_expiry_minutes,
                                   "maximum": co.max_expiry_minutes, "default": co.default_expiry_minutes},
            "return_url": {"type": OPTIONAL, "format": "uri", "maxLength": RETURN_URL_MAX,
                           "description": "Where the page sends the shopper after paying (https in live mode)."},
        }, required=["amount_fen", "description"]),
        "PaymentRequest": obj({
            "client": {"type": "string", "enum": ["mini_program", "app"]},
            "openid": {"type": OPTIONAL, "pattern": "^[A-Za-z0-9_-]{1,128}$",
                       "description": "The shopper's Mini Program openid; required for (and only for) `mini_program`."},
            "client_ip": {"type": OPTIONAL, "description": "The shopper's IPv4 or IPv6 address; default: the caller's."},
        }, required=["client"]),
        "Payment": obj({
            "out_trade_no": {"type": "string"},
            "trade_type": {"type": "string", "enum": ["JSAPI", "APP"]},
            "expires_at": ISO,
            "reused": {"type": "boolean", "description": "The same still-valid prepay_id as an earlier call."},
            "request_payment": obj({"timeStamp": {"type": "string"}, **sign_fields},
                                   description="`wx.requestPayment(...)` for a Mini Program."),
            "app": obj({k: {"type": "string"} for k in
                        ("appid", "partnerid", "prepayid", "package", "noncestr", "timestamp", "sign")},
                       description="The App SDK's `PayReq`."),
        }, required=["out_trade_no", "trade_type", "expires_at", "reused"]),
        "MiniProgramLogin": obj({
            "code": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$",
                     "description": "The one-time code `wx.login()` gave the Mini Program (good for 5 minutes, once)."},
            "include_session_key": {"type": "boolean", "default": False,
                                    "description": "Also return WeChat's `session_key`, for a backend that decrypts "
                                                   "`encryptedData` (`wx.getPhoneNumber` …). A code trades only once, "
                                                   "so this is the only chance to get it; leave it out otherwise, "
                                                   "the key is a secret."},
        }, required=["code"]),
        "MiniProgramSession": obj({
            "openid": {"type": "string", "description": "The shopper's openid under the Mini Program: pass it to "
                                                        "`createPayment` with `client: mini_program`."},
            "unionid": {**STR_OR_NULL, "description": "The shopper's unionid, when the Mini Program is bound to an "
                                                      "Open platform account."},
            "session_key": {"type": "string", "description": "Only with `include_session_key`; never stored here."},
        }, required=["openid", "unionid"]),
        "WxConfig": obj({
            "debug": {"type": "boolean"}, "appId": {"type": "string"}, "timestamp": {"type": "integer"},
            "nonceStr": {"type": "string"}, "signature": {"type": "string"},
            "jsApiList": {"type": "array", "items": {"type": "string"}},
        }),
        "Order": order,
        "Refund": refund,
        "RefundList": obj({"items": {"type": "array", "items": ref("Refund")}}),
        "CreateRefund": obj({
            "amount_fen": {"type": "integer", "minimum": 1, "description": "At most the remaining refundable amount."},
            "out_refund_no": {"type": OPTIONAL, "pattern": "^[0-9A-Za-z_|*@-]{1,64}$",
                              "description": "Your refund number; a repeat returns the same refund."},
            "reason": {"type": OPTIONAL, "maxLength": REASON_MAX_CHARS, "pattern": TEXT_PATTERN,
                       "description": "Shown to the shopper by WeChat."},
        }, required=["amount_fen"]),
        "WebhookEvent": obj({
            "id": {"type": "string"},
            "type": {"type": "string", "enum": WEBHOOK_TYPES},
            "checkout_id": {"type": "string"},
            "state": {"type": "string", "enum": list(EVENT_STATES)},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": ISO,
            "next_attempt_at": ISO_OR_NULL,
            "delivered_at": ISO_OR_NULL,
            "last_status": {"type": ["integer", "null"], "description": "The HTTP status your endpoint answered."},
            "last_error": STR_OR_NULL,
            "history": {"type": "array", "maxItems": 10, "items": obj({
                "at": ISO, "attempt": {"type": "integer"}, "status": {"type": ["integer", "null"]},
                "error": STR_OR_NULL, "ms": {"type": "number"}})},
        }),
        "WebhookEventList": obj({
            "items": {"type": "array", "items": ref("WebhookEvent")},
            "backlog": obj({"enabled": {"type": "boolean"}, "pending": {"type": "integer"},
                            "failed": {"type": "integer"}, "oldest_pending_at": ISO_OR_NULL}),
        }),
        "WebhookPayload": obj({
            "id": {"type": "string", "description": "The event id (also `Wxpay-Event-Id`): de-duplicate by it."},
            "type": {"type": "string", "enum": WEBHOOK_TYPES},
            "created_at": ISO,
            "data": obj({**base, "refund": ref("Refund")}, required=required,
                        description="The checkout as it was when the event was written; `refund` for refund events."),
        }),
        "Health": obj({"ok": {"type": "boolean"}, "store": {"type": "string", "enum": ["sqlite", "mongo"]},
                       "store_location": {"type": "string", "description": (
                           "The SQLite file's absolute path, or `mongodb://hosts/database` (never credentials "
                           "or URI options). Only for requests from this machine (loopback, also through a "
                           "trusted proxy on it) and in sandbox mode.")},
                       "store_rtt_ms": {"type": "number"}, "code": {"type": "string"},
                       "message": {"type": "string"}, "error": {"type": "string"}},
                      required=["ok", "store"]),
    }


WEBHOOK_TYPES = ["checkout.paid", "checkout.closed", "checkout.partially_refunded", "checkout.refunded"]

# -- operations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "query" | "path" | "header"
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    ok: dict[int, tuple[str, str]]  # status -> (description, schema name)
    errors: tuple[str, ...]
    params: tuple[Param, ...] = ()
    body: str | None = None  # schema name
    description: str = ""
    public: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def all_errors(self) -> tuple[str, ...]:
        codes = list(COMMON)
        if not self.public:
            codes += AUTHENTICATED
        if self.body:
            codes += WITH_BODY
        if any(p.where in ("query", "path") for p in self.params):
            codes.append("invalid_encoding")
        codes += self.errors
        return tuple(dict.fromkeys(codes))


CHECKOUT_ID = Param("checkout_id", "path", {"type": "string"}, "The checkout's id (`co_` and 24 hex digits).", True)
IDEMPOTENCY = Param(
    "Idempotency-Key", "header", {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    "Makes a retry safe: the same key with the same body returns the first result (200) instead of a second "
    "one; with another body it is 409 `idempotency_key_reused`.",
)
UPSTREAM_ERRORS = tuple(UPSTREAM)


def operations() -> list[Operation]:
    return [
        Operation(
            "post", "/api/checkouts", "createCheckout", "Create a checkout", "checkouts",
            ok={201: ("Created.", "Checkout"), 200: ("A retry with the same Idempotency-Key: the first checkout.", "Checkout")},
            params=(IDEMPOTENCY,), body="CreateCheckout",
            errors=("invalid_body", "unknown_field", "invalid_amount", "invalid_description", "invalid_reference",
                    "invalid_attach", "invalid_expiry", "invalid_return_url", "invalid_idempotency_key",
                    "idempotency_key_reused", "idempotency_race"),
            description="The amount always comes from here, never from the shopper's browser. Unknown fields are "
                        "refused, not ignored.",
        ),
        Operation(
            "get", "/api/checkouts", "listCheckouts", "List checkouts, newest first", "checkouts",
            ok={200: ("A page of checkouts.", "CheckoutList")},
            params=(
                Param("status", "query", {"type": "string", "enum": list(CHECKOUT_STATUSES)}, "Only this status."),
                Param("merchant_reference", "query", {"type": "string", "pattern": "^[\\x20-\\x7e]{1,64}$"},
                      "Only checkouts with this reference."),
                Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX, "default": 20},
                      "Page size (ASCII digits)."),
                Param("offset", "query", {"type": "integer", "minimum": 0, "maximum": LIST_OFFSET_MAX, "default": 0},
                      "How many to skip (ASCII digits)."),
            ),
            errors=("invalid_status", "invalid_reference", "invalid_limit", "invalid_offset"),
        ),
        Operation(
            "get", "/api/checkouts/{checkout_id}", "getCheckout", "One checkout with its WeChat orders and refunds",
            "checkouts", ok={200: ("The checkout.", "CheckoutDetail")}, params=(CHECKOUT_ID,),
            errors=("checkout_not_found",),
        ),
        Operation(
            "post", "/api/checkouts/{checkout_id}/payment", "createPayment",
            "A client payload for a Mini Program or App backend", "checkouts",
            ok={200: ("`request_payment` (Mini Program) or `app` (App SDK).", "Payment")},
            params=(CHECKOUT_ID,), body="PaymentRequest",
            errors=("invalid_body", "unknown_field", "invalid_client", "invalid_client_ip", "openid_required",
                    "openid_rejected", "invalid_trade_type",
                    "app_not_configured", "mini_program_not_configured", "checkout_not_found", "checkout_paid",
                    "checkout_closed", "checkout_expired", "prepay_in_progress", "too_many_orders", "too_many_requests",
                    "order_state", "order_not_found",
                    "token_refresh_timeout", *UPSTREAM_ERRORS),
            description="Calls WeChat's unifiedorder (or reuses a still valid prepay_id for the same shopper).",
        ),
        Operation(
            "post", "/api/mini-program/sessions", "createMiniProgramSession",
            "Trade a Mini Program's wx.login code for the shopper's openid", "mini_program",
            ok={200: ("The shopper's openid (`session_key` only when asked).", "MiniProgramSession")},
            body="MiniProgramLogin",
            errors=("invalid_body", "unknown_field", "invalid_login_code", "invalid_include_session_key",
                    "mini_program_not_configured", "login_code_rejected", "login_code_already_used",
                    "login_blocked_by_wechat", "too_many_logins", *UPSTREAM_ERRORS),
            description="Calls WeChat's `sns/jscode2session` with the Mini Program's AppSecret, which stays on this "
                        "server. The openid is what `createPayment` needs for `client: mini_program`. Nothing is "
                        "stored; each code trades once.",
        ),
        Operation(
            "post", "/api/checkouts/{checkout_id}/cancel", "cancelCheckout", "Close an unpaid checkout", "checkouts",
            ok={200: ("The closed checkout and its orders.", "CancelledCheckout")}, params=(CHECKOUT_ID,),
            errors=("checkout_not_found", "checkout_paid", "order_not_found"),
            description="Its WeChat orders are closed, respecting WeChat's 5-minute rule (one WeChat cannot reach "
                        "now is closed later by the reconciler). A payment that wins the race is confirmed, never "
                        "lost (409 `checkout_paid`). Cancelling a closed checkout answers it again.",
        ),
        Operation(
            "post", "/api/checkouts/{checkout_id}/refunds", "createRefund", "Refund a paid checkout", "refunds",
            ok={201: ("The refund, pending until WeChat confirms.", "Refund"),
                200: ("A repeat (same out_refund_no or Idempotency-Key): the same refund.", "Refund")},
            params=(CHECKOUT_ID, IDEMPOTENCY), body="CreateRefund",
            errors=("invalid_body", "unknown_field", "invalid_amount", "invalid_out_refund_no", "invalid_reason",
                    "invalid_idempotency_key", "checkout_not_found", "checkout_not_paid", "refund_exceeds_remaining",
                    "too_many_refunds", "out_refund_no_reused", "refund_in_progress", "refund_busy",
                    "refund_rejected", "order_not_found"),
            description=f"Fully or in parts, at most {MAX_REFUNDS} times. The final state arrives by WeChat's "
                        "refund notify (or refundquery when it never comes).",
        ),
        Operation(
            "get", "/api/checkouts/{checkout_id}/refunds", "listRefunds", "A checkout's refunds", "refunds",
            ok={200: ("Oldest first.", "RefundList")}, params=(CHECKOUT_ID,), errors=("checkout_not_found",),
        ),
        Operation(
            "get", "/api/wx-config", "getWxConfig", "A signed wx.config for one of your own pages (JSSDK)", "jssdk",
            ok={200: ("Pass it to `wx.config(...)` on that page.", "WxConfig")},
            params=(
                Param("url", "query", {"type": "string", "format": "uri", "maxLength": PAGE_URL_MAX},
                      "The page's URL without its `#` part.", True),
                Param("jsApiList", "query", {"type": "string", "default": "chooseWXPay"},
                      f"Comma-separated JSSDK API names (at most {MAX_APIS})."),
            ),
            errors=("invalid_page_url", "invalid_js_api_list", "token_refresh_timeout", *UPSTREAM_ERRORS),
        ),
        Operation(
            "get", "/api/webhooks", "listWebhookEvents", "The webhook outbox, newest first", "webhooks",
            ok={200: ("Events and the delivery backlog.", "WebhookEventList")},
            params=(
                Param("state", "query", {"type": "string", "enum": list(EVENT_STATES)}, "Only events in this state."),
                Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": WEBHOOK_LIST_MAX, "default": 50},
                      "Page size (ASCII digits)."),
            ),
            errors=("invalid_state", "invalid_limit"),
        ),
        Operation(
            "post", "/api/webhooks/{event_id}/resend", "resendWebhookEvent", "Queue one event again now", "webhooks",
            ok={200: ("The event, pending, with a fresh attempt budget.", "WebhookEvent")},
            params=(Param("event_id", "path", {"type": "string", "maxLength": EVENT_ID_MAX}, "The event's id.", True),),
            errors=("event_not_found", "event_busy"),
        ),
        Operation(
            "get", "/api/openapi.json", "getOpenApi", "This document", "meta",
            ok={200: ("OpenAPI 3.1.", "OpenApi")}, errors=(), public=True,
        ),
        Operation(
            "get", "/healthz", "health", "Is the store reachable, and how fast; which store it is", "meta",
            ok={200: ("Healthy.", "Health")}, errors=(), public=True,
            extra={"503": {"description": "The store is unreachable (`code`: `store_unavailable`).",
                           "content": {"application/json": {"schema": ref("Health")}}}},
        ),
    ]


# -- the document ------------------------------------------------------------------------------------


def _error_response(codes: list[str]) -> dict[str, Any]:
    lines = "\n".join(f"- `{c}`: {meaning(c)}" for c in codes)
    return {
        "description": lines,
        "content": {"application/json": {"schema": {
            "allOf": [ref("Error")],
            "properties": {"code": {"type": "string", "enum": codes}},
        }}},
    }


def status_of(code: str) -> int:
    return ERRORS[code].status if code in ERRORS else 502


def meaning(code: str) -> str:
    return ERRORS[code].meaning if code in ERRORS else UPSTREAM[code]


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    if op.public:
        out["security"] = []
    if op.params:
        out["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required, "description": p.description, "schema": p.schema}
            for p in op.params
        ]
    if op.body:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(op.body)}}}
    responses: dict[str, Any] = {}
    for status, (description, schema) in sorted(op.ok.items()):
        content = {"application/json": {"schema": ref(schema) if schema != "OpenApi" else {"type": "object"}}}
        responses[str(status)] = {"description": description, "content": content}
    by_status: dict[int, list[str]] = {}
    for code in op.all_errors():
        by_status.setdefault(status_of(code), []).append(code)
    for status in sorted(by_status):
        responses[str(status)] = _error_response(by_status[status])
    responses.update(op.extra)
    out["responses"] = dict(sorted(responses.items()))
    return out


def _webhook(kind: str) -> dict[str, Any]:
    headers = [
        ("Wxpay-Event-Id", "The event id (the body's `id`)."),
        ("Wxpay-Event-Type", "The event type (the body's `type`)."),
        ("Wxpay-Signature", "`t=<unix seconds>,v1=<hex>`: HMAC-SHA256 over `f\"{t}.{raw body}\"` with `webhooks.secret`."),
    ]
    return {"post": {
        "operationId": f"webhook_{kind.replace('.', '_')}",
        "summary": f"`{kind}` to `webhooks.url`",
        "description": "At least once: de-duplicate by `id`. Verify the signature on the raw body and refuse "
                       "timestamps older than 5 minutes. Answer any 2xx once stored; anything else is retried.",
        "parameters": [{"name": n, "in": "header", "required": True, "description": d, "schema": {"type": "string"}}
                       for n, d in headers],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "allOf": [ref("WebhookPayload")], "properties": {"type": {"const": kind}}}}}},
        "responses": {"2XX": {"description": "Stored; delivery is done."},
                      "default": {"description": "Not stored: delivered again later (backoff, up to "
                                                 "`webhooks.max_attempts`)."}},
    }}


def build_document(settings: Any, *, version: str = "0.1.0", server_url: str | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for a server with ``settings``."""
    paths: dict[str, Any] = {}
    for op in operations():
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    errors_table = [{"code": c, "status": e.status, "meaning": e.meaning} for c, e in ERRORS.items()]
    errors_table += [{"code": c, "status": 502, "meaning": m, "from": "wechat"} for c, m in UPSTREAM.items()]
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "wxpay-server merchant API",
            "version": version,
            "description": "Create checkouts, read them back, refund and cancel them; hear back by webhooks. "
                           "Amounts are integer fen. Every error is JSON `{code, message}` (sometimes `details`) "
                           "with a status that says who must act: 400 your input, 401 the token, 403 WeChat refused the "
                           "shopper, 404 not found, 409 the checkout's state, 413 the body's size, 429 too many "
                           "attempts, 502 WeChat, 503 our store (retry).",
        },
        "servers": [{"url": server_url or "/"}],
        "security": [{"merchantToken": []}],
        "tags": [{"name": t} for t in ("checkouts", "mini_program", "refunds", "jssdk", "webhooks", "meta")],
        "paths": paths,
        "webhooks": {kind: _webhook(kind) for kind in WEBHOOK_TYPES},
        "components": {
            "securitySchemes": {"merchantToken": {
                "type": "http", "scheme": "bearer",
                "description": "One of `merchant_api.tokens`: `Authorization: Bearer <token>`."}},
            "schemas": schemas(settings),
        },
        "x-error-codes": errors_table,
    }
    return doc


class OpenApiHandler(BaseHandler):
    """The document, public: it describes the API, it grants nothing."""

    def get(self) -> None:
        doc = self.settings.get("openapi_document")
        if doc is None:
            doc = build_document(self.app_settings, version=self.settings.get("version", "0.1.0"),
                                 server_url=self.services.public_base)
            self.settings["openapi_document"] = doc
        self.write_json(doc)


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/api/openapi\.json", OpenApiHandler, {})]
