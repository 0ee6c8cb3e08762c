"""Mutants judged equivalent: no test can tell them from the code, because no behaviour changes.

Keyed by ``Mutant.key`` (file, scope, operator, the text replaced and its
replacement, occurrence: no line numbers, so edits elsewhere keep a key
valid); the value says why. ``tests/mutation/test_config.py`` checks that
every key still names a mutant the mutator makes, and docs/MUTATION.md
lists them all (``make mutation`` writes that table).
"""
from __future__ import annotations

EQUIVALENT: dict[str, str] = {
    # -- service/lifecycle.py
    # -- service/payments.py, service/payment_notify.py
    "service/payments.py::CONFLICT::string::\"order_state\" -> 'XXorder_stateXX'#0":
        "CONFLICT is unreachable: ORDER_MACHINE lets every state but paid move to paid, so the move to paid "
        "fails only when the order is paid already (ALREADY_PAID).",
    "service/payment_notify.py::PaymentNotifyService._confirm::string::\"order state conflict\" -> 'XXorder state conflictXX'#0":
        "The message of the CONFLICT outcome, which is unreachable (every state but paid may move to paid).",
    "service/payment_notify.py::PaymentNotifyService._judged::assign::None if waited else order -> None#0":
        "Only an optimisation: with None, _confirm reads the same order again from the store; the "
        "compare-and-set decides the outcome either way.",
    # -- defaults the server never uses (wiring/services.py passes every one)
    "service/payment_notify.py::CONFIRM_TIMEOUT_S::number::3.0 -> 4.0#0":
        "The default of PaymentNotifyService's confirm_timeout, which wiring/services.py always overrides with "
        "notify.confirm_timeout_s (config/settings.py holds the server's 3 s default).",
    "service/payments.py::Payments.confirm::number::0 -> 1#0":
        "The default of confirmed.get(via, 0), never used: confirmed holds NOTIFY and RECONCILER from the "
        "constructor on, and those are the only two values of via (payment_notify.py, order_checks.py).",
    "service/notify_endpoint.py::Handled.api_version::string::\"v2\" -> 'XXv2XX'#0":
        "A dataclass default never used: each of the four places that build a Handled (NotifyEndpoint.handle) "
        "passes api_version.",
    "service/notify_endpoint.py::Seen.api_version::string::\"v2\" -> 'XXv2XX'#0":
        "Overwritten before anything can fail: the first statement of both notify services' _handle sets it "
        "from Gateways.for_notify, which only looks at the first byte of the body (bytes) and cannot raise.",
    "service/payment_notify.py::PaymentNotifyService.__init__::number::64 -> 65#0":
        "A default of max_bytes that wiring/services.py always overrides; besides, the gateway refuses any body "
        "over its own limit (32 KiB V2, 64 KiB V3) first, so the audit's cut never applies.",
    "service/payment_notify.py::PaymentNotifyService.__init__::number::1024 -> 1025#0":
        "A default of max_bytes that wiring/services.py always overrides (and no notify this large gets past "
        "the gateway's own limit).",
    "service/refund_notify.py::RefundNotifyService.__init__::number::64 -> 65#0":
        "A default of max_bytes that wiring/services.py always overrides (and no notify this large gets past "
        "the gateway's own limit).",
    "service/refund_notify.py::RefundNotifyService.__init__::number::1024 -> 1025#0":
        "A default of max_bytes that wiring/services.py always overrides (and no notify this large gets past "
        "the gateway's own limit).",
    "service/notify_endpoint.py::NotifyEndpoint.__init__::number::30 -> 31#0":
        "The fallback limiter's rate; both notify services are always given the configured limiter "
        "(wiring/services.py), so the fallback is never built.",
    "service/notify_endpoint.py::NotifyEndpoint.__init__::number::300 -> 301#0":
        "The fallback limiter's total rate; the configured limiter is always given (wiring/services.py).",
    "service/notify_endpoint.py::Seen.verified::bool::False -> True#0":
        "Never read: both notify services set Seen.verified from the gateway's proof, which never raises, "
        "before anything that can fail.",
    # -- wxpay/refund_crypto.py
    "wxpay/refund_crypto.py::decrypt_req_info::drop::(binascii.Error, ValueError) -> (ValueError,)#0":
        "binascii.Error is a subclass of ValueError: the handler catches the same exceptions.",
    # -- wxpay/v2_gateway.py
    "wxpay/v2_gateway.py::_REFUND_STATUS::drop::{\"SUCCESS\": \"SUCCESS\", \"REFUNDCLOSE\": \"CLOSED\", \"PROCESSING\"…13e85b3f -> {\"REFUNDCLOSE\": \"CLOSED\", \"PROCESSING\": \"PROCESSING\", \"CHANGE\": \"ABNORMAL\"}#0":
        "An identity entry: refund_status() returns an unknown word unchanged (.get(wire, wire)), so SUCCESS "
        "maps to SUCCESS without it.",
    "wxpay/v2_gateway.py::_REFUND_STATUS::drop::{\"SUCCESS\": \"SUCCESS\", \"REFUNDCLOSE\": \"CLOSED\", \"PROCESSING\"…13e85b3f -> {\"SUCCESS\": \"SUCCESS\", \"REFUNDCLOSE\": \"CLOSED\", \"CHANGE\": \"ABNORMAL\"}#0":
        "An identity entry: refund_status() returns an unknown word unchanged, so PROCESSING maps to "
        "PROCESSING without it.",
    "wxpay/v2_gateway.py::_REFUND_STATUS::string::\"SUCCESS\" -> 'XXSUCCESSXX'#0":
        "The key of an identity entry: without a match, refund_status() returns SUCCESS unchanged.",
    "wxpay/v2_gateway.py::_REFUND_STATUS::string::\"PROCESSING\" -> 'XXPROCESSINGXX'#0":
        "The key of an identity entry: without a match, refund_status() returns PROCESSING unchanged.",
    # -- wxpay/v3_gateway.py, wxpay/v3/notify.py
    "wxpay/v3_gateway.py::wire_reply::bool::False -> True#0":
        "ensure_ascii only changes non-ASCII characters, and every verdict message is an ASCII literal "
        "of the service layer or refusal_for.",
    "wxpay/v3/notify.py::NotifyReader._read::statement::raise TypeError(\"body must be the raw bytes received\") -> pass#0":
        "A body that is not bytes-like is refused with the same TypeError by Validator.validate, the next "
        "step, before anything is parsed (only the message differs).",
    # -- batch 2
    "service/notify_endpoint.py::NotifyEndpoint.handle::number::1000 -> 1001#0":
        "Scales a measured latency by 0.1%: no test can tell that from timing noise (and tests assert no timings).",
    "service/payments.py::Payments.confirm::string::\"order_state\" -> 'XXorder_stateXX'#0":
        "The reason of the CONFLICT outcome, which is unreachable: every order state but paid may move to paid.",
    "service/payments.py::Payments.confirm::string::\"transaction_mismatch\" -> 'XXtransaction_mismatchXX'#0":
        "Only the notify names a transaction, and it answers every MISMATCH as query_mismatch without "
        "reading the reason; the reconciler never passes one.",
    "service/payments.py::Payments.settle::drop::{\"state\": PAID} -> {}#0":
        "settle() runs only on paid orders and paid is final (nothing leaves it), so the guard always holds.",
    "wxpay/notify.py::_coupon_field::number::4096 -> 4097#0":
        "The size cap of a cache of names known not to be coupon fields: the answer is the same cached or not.",
    "wxpay/notify.py::verify_notify_origin::string::\"sign_type\" -> 'XXsign_typeXX'#0":
        "verify() reads the declared sign_type from the fields again (resolve_sign_type), and a declared one "
        "must equal the expected one: with the declaration ignored here the same notifies pass and fail.",
    "wxpay/signing.py::make_nonce::number::248 -> 249#0":
        "Makes one of 62 symbols 5/249 instead of 4/248 likely: only a statistical test over millions of "
        "nonces could see it, and it would still be a matter of chance.",
    "wxpay/signing.py::page_url_for_jssdk::number::1 -> 2#0":
        "split('#', 2)[0] is split('#', 1)[0]: only the part before the first # is used.",
    "wxpay/v2_gateway.py::V2Gateway._read_refund_notify::string::\"\" -> 'XXXX'#0":
        "The stand-in for a missing appid; 'XXXX' is no appid of ours either, so it is refused the same way.",
    "wxpay/v3/verification.py::_MAX_KEYS::number::512 -> 513#0":
        "The size cap of a cache of header-name spellings: the answer is the same cached or not.",
    # -- batch 3
    "service/notify_endpoint.py::NotifyEndpoint.id_field::string::\"out_trade_no\" -> 'XXout_trade_noXX'#0":
        "The base class's default, overridden by both notify services (out_trade_no, out_refund_no).",
    "service/notify_endpoint.py::NotifyEndpoint.handle::string::\"\" -> 'XXXX'#0":
        "The default of handle()'s source argument; the one caller (handlers/notify.py) always passes the client IP.",
    "service/refund_notify.py::RefundNotifyService.__init__::arith::* -> /#0":
        "A default of max_bytes that wiring/services.py always overrides.",
    "service/payment_notify.py::PaymentNotifyService.__init__::arith::* -> /#0":
        "A default of max_bytes that wiring/services.py always overrides.",
    "service/payments.py::NOT_PAID::string::\"not_paid\" -> 'XXnot_paidXX'#0":
        "A constant only ever compared with itself (by name); this outcome's word is never recorded or answered.",
    "service/payments.py::MISMATCH::string::\"mismatch\" -> 'XXmismatchXX'#0":
        "A constant only compared with itself; a MISMATCH always carries a reason, and the reason is what is "
        "recorded (order_checks: reason or outcome).",
    "service/payments.py::Payments.confirm::return::Confirmation(CONFLICT, current, facts, reason=\"order_state\") -> None#0":
        "Unreachable: every order state but paid may move to paid, so a lost move finds the order paid.",
    "wxpay/notify.py::_coupon_field::compare::< -> <=#0":
        "The size cap of a cache of non-coupon names (4096 or 4097 entries): the answer is the same cached or not.",
    "wxpay/signing.py::make_nonce::number::8 -> 9#0":
        "Reads one more random byte per round; the nonce is made of the same uniformly drawn symbols.",
    "wxpay/signing.py::make_nonce::compare::< -> <=#0":
        "The loop runs one round more when exactly enough symbols were drawn; only the first `length` are used, "
        "drawn the same way.",
    "wxpay/v3/verification.py::_header_key::compare::< -> <=#0":
        "The size cap of a cache of header-name spellings (512 or 513): the answer is the same cached or not.",
    "wxpay/v3_gateway.py::V3Gateway._read_event::drop::(VerificationError, MessageTooLargeError) -> (VerificationError,)#0":
        "The reader has the gateway's own size limit and the gateway's shell refuses a larger body before "
        "calling it, so the reader never raises MessageTooLargeError here.",
    "wxpay/v3/notify.py::NotifyReader._read::boolean::and -> or#0":
        "The resource comes from json.loads, so it is a dict or no mapping at all: 'not dict and not Mapping' "
        "and 'not dict or not Mapping' agree on every value it can hold.",
    # -- batch 4
    "service/payment_notify.py::PaymentNotifyService._confirm::return::refused(confirmation.reason or confirmation.outcome, Outcome…33b78239 -> None#0":
        "The CONFLICT branch, which is unreachable: every order state but paid may move to paid, so a confirmation "
        "here is paid, NOT_PAID or MISMATCH (each answered above).",
    "service/payment_notify.py::PaymentNotifyService._confirm::boolean::or -> and#1":
        "In the unreachable CONFLICT branch (every order state but paid may move to paid).",
    "service/notify_endpoint.py::RATE_LIMITED::string::\"rate_limited\" -> 'XXrate_limitedXX'#0":
        "Read by nothing: a rate-limited notify is not audited, the limiter counts the verdict it replaced, "
        "and the reply carries only the status (429) and the message.",
    "service/notify_endpoint.py::NotifyEndpoint.kind::string::\"notify\" -> 'XXnotifyXX'#0":
        "The base class's default, overridden by both notify services (notify, refund_notify).",
    "service/notify_endpoint.py::NotifyEndpoint._handle::statement::raise NotImplementedError -> pass#0":
        "The base class's abstract step: both notify services override _handle, so it never runs.",
    "service/notify_endpoint.py::NotifyEndpoint.handle::number::2 -> 3#0":
        "The audit's latency rounded to 1/1000 ms instead of 1/100: a measured duration, noise either way, "
        "and nothing reads it but a person (tests assert no timings).",
    "service/notify_endpoint.py::NotifyEndpoint.__init__::assign::max_bytes -> None#0":
        "The server refuses any body over server.max_body_bytes before a handler runs (handlers/body_limit.py) "
        "and wiring gives the notify services that same limit, so body[:max_bytes] is always the whole body.",
    # -- batch 5 (wxpay V2)
    "wxpay/signing.py::make_nonce::compare::< -> <=#1":
        "Admits byte 248 (one symbol becomes 5/249 likely instead of 4/248): only a statistical test over "
        "millions of nonces could see it, and still by chance.",
    "wxpay/signing.py::make_nonce::arith::+ -> -#0":
        "Draws fewer random bytes per round (length-8, not length+8); the loop goes on until enough symbols are "
        "drawn, each from the same uniform choice.",
    "wxpay/notify.py::_coupon_field::statement::_OTHER_FIELDS.add(name) -> pass#0":
        "Only fills a cache of names known not to be coupon fields: without it each name is matched again, "
        "with the same answer.",
    "wxpay/notify.py::verify_notify_origin::string::\"\" -> 'XXXX'#0":
        "The stand-in for a missing sign: '' and 'XXXX' both have a length other than 64, so MD5 is assumed "
        "either way, and verify() refuses the notify for its missing signature either way.",
    # -- batch 6 (wxpay V3)
    "wxpay/v3/signing.py::decode_signature::drop::(binascii.Error, ValueError, TypeError) -> (ValueError, TypeError)#0":
        "binascii.Error is a subclass of ValueError: the handler catches the same exceptions.",
    "wxpay/v3/notify.py::PaymentEvent.plaintext::string::b\"\" -> b'XXXX'#0":
        "A default never used: the one builder of a PaymentEvent (NotifyReader) always passes the decrypted "
        "resource as plaintext.",
    "wxpay/v3/notify.py::RefundEvent.plaintext::string::b\"\" -> b'XXXX'#0":
        "A default never used: the one builder of a RefundEvent (NotifyReader) always passes the decrypted "
        "resource as plaintext.",
    "wxpay/v3/signing.py::decode_signature::bool::True -> False#0":
        "The re-encoding check decides alone: a text is kept only if b2a_base64 of its bytes writes it back "
        "exactly, and what b2a_base64 writes is canonical base64, which strict decoding reads to the same bytes; "
        "any text the lenient decoder reads differently (stray characters, data after padding) re-encodes to "
        "other text and is refused either way (300,000 random texts over the alphabet, '=' and junk agree).",
    "wxpay/v3/notify.py::NotifyEvent::drop::PaymentEvent, RefundEvent -> (PaymentEvent,)#0":
        "A type alias read only by annotations (never by isinstance): it changes nothing that runs.",
    "wxpay/v3/aead.py::ApiV3Cipher.decrypt::drop::(binascii.Error, ValueError) -> (ValueError,)#0":
        "binascii.Error is a subclass of ValueError: the handler catches the same exceptions.",
    "wxpay/v3/notify.py::NotifyEvent::drop::PaymentEvent, RefundEvent -> (RefundEvent,)#0":
        "A type alias read only by annotations (never by isinstance): it changes nothing that runs.",
    # -- batch h-lib3: fast paths of the V3 header reader (a miss falls back to the exact rule)
    "wxpay/v3/signing.py::decode_signature::number::0 -> 1#0":
        "With no bytes decoded, `not raw` refuses before `tail` is read: its value then does not matter.",
    "wxpay/v3/verification.py::_VISIBLE::number::0x21 -> 34#0":
        "A value holding '!' then misses the all-at-once check and goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_missing::number::4 -> 5#0":
        "_missing runs only when one of the first four fields is empty; the scan finds that one before a fifth.",
    "wxpay/v3/verification.py::_missing::statement::raise AssertionError(\"no header is missing\") -> pass#0":
        "Unreachable: _missing is called only when a required field is empty, and the loop returns for it.",
    "wxpay/v3/verification.py::read_signed_headers::assign::_PLANS[tuple(headers)] -> None#0":
        "No plan for any name list: every reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::read_signed_headers::assign::_plan(tuple(headers)) -> None#0":
        "No plan for a new name list: that reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::read_signed_headers::string::\"\" -> 'XXXX'#0":
        "The joined values only grow (still visible ASCII); one past 1 KiB goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::read_signed_headers::string::\" \" -> 'XX XX'#0":
        "The stand-in for a value that is not text still holds a space, so that reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::read_signed_headers::compare::<= -> <#0":
        "Values of exactly 1024 characters in all miss the all-at-once check; that reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::read_signed_headers::assign::_new_headers(SignedHeaders, values) -> None#0":
        "The all-at-once answer is dropped: every reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_MAX_PLANS::number::256 -> 257#0":
        "The size cap of a cache of header-name plans: the answer is the same cached or not.",
    "wxpay/v3/verification.py::_ABSENT::string::\"\" -> 'XXXX'#0":
        "The stand-in name for an absent field is guarded by the same constant (`_ABSENT not in names`), so a reply naming it is read one by one.",
    "wxpay/v3/verification.py::_plan::assign::_header_key(name) if isinstance(name, str) else None -> None#0":
        "No name maps to a field, so no plan: every reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::condition::isinstance(name, str) -> not (isinstance(name, str))#0":
        "No string name maps to a field, so no plan: every reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::compare::is not -> is#0":
        "Fields are filed under None, so a required one is never found and there is no plan: the reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::compare::in -> not in#0":
        "The loop stops at the first field, so there is no plan: the reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::compare::not in -> in#0":
        "No name list holds the empty name, so there is no plan: every reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::boolean::and -> or#0":
        "A plan for a list lacking a required field reads None there, which fails the all-at-once check: the reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::compare::in -> not in#1":
        "A list holding the required fields gets no plan: the reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::number::4 -> 5#0":
        "Only lists with a Wechatpay-Signature-Type get a plan; the others are read one by one, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::assign::tuple(by_field.get(f, _ABSENT) for f in _FIELDS) -> None#0":
        "No plan is ever made: every reply goes to the one-by-one rule, which gives the same answer (slower).",
    "wxpay/v3/verification.py::_plan::compare::< -> <=#0":
        "The size cap of a cache of header-name plans: the answer is the same cached or not.",
    "wxpay/v3/verification.py::_plan::return::plan -> None#0":
        "No plan is returned: every reply goes to the one-by-one rule, which gives the same answer (slower).",
}
