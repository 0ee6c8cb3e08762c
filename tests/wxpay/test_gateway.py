"""The gateway contract's shared logic, version by version alike: the verdict
of each refusal, the status of each outcome, the checks before any I/O."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from wxpay import errors
from wxpay.gateway import (
    STATUS,
    BillLine,
    H5Site,
    NotifyVerdict,
    OrderRequest,
    Outcome,
    PaymentFacts,
    RefundRequest,
    check_order_request,
    check_refund_request,
    refusal_for,
)

LATER = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def order(**kw) -> OrderRequest:
    fields = dict(out_trade_no="W20260301ABCDEFGH", trade_type="NATIVE", appid="wx1", amount_fen=100,
                  description="tea", notify_url="https://example.com/notify/pay", client_ip="203.0.113.9",
                  expires_at=LATER)
    fields.update(kw)
    return OrderRequest(**fields)


@pytest.mark.parametrize("exc, code, outcome", [
    (errors.MessageTooLargeError("big"), "too_large", Outcome.TOO_LARGE),
    (errors.SignatureError("no"), "bad_signature", Outcome.INVALID),
    (errors.VerificationError("probe", code="signtest_probe"), "signtest_probe", Outcome.INVALID),
    (errors.VerificationError("old", code="stale_timestamp"), "stale_timestamp", Outcome.INVALID),
    (errors.DecryptError("no"), "undecryptable", Outcome.INVALID),
    (errors.DecryptError("no", code="bad_apiv3_key"), "bad_apiv3_key", Outcome.INVALID),
    (errors.IdentityMismatchError("theirs"), "identity_mismatch", Outcome.INVALID),
    (errors.UnsafeXMLError("doctype"), "unsafe_xml", Outcome.INVALID),
    (errors.ProtocolError("bad"), "malformed_message", Outcome.INVALID),
    (errors.ReturnFailError("FAIL"), "ignored_wechat_rejected_request", Outcome.ACCEPTED),
    (errors.OrderPaidError("paid"), "ignored_order_paid", Outcome.ACCEPTED),
])
def test_each_cause_has_its_verdict(exc, code, outcome):
    refusal = refusal_for(exc, proven=True, key="W1")
    assert (refusal.verdict.code, refusal.verdict.outcome, refusal.proven, refusal.key) == (code, outcome, True, "W1")
    assert refusal_for(exc).proven is False and refusal_for(exc).key is None


def test_each_outcome_has_one_status_and_only_accepted_is_ok():
    assert {o: STATUS[o] for o in Outcome} == {
        Outcome.ACCEPTED: 200, Outcome.INVALID: 400, Outcome.UNKNOWN: 404, Outcome.CONFLICT: 409,
        Outcome.TOO_LARGE: 413, Outcome.RATE_LIMITED: 429, Outcome.UNAVAILABLE: 503, Outcome.FAILED: 500,
    }
    assert [o for o in Outcome if NotifyVerdict("x", o).ok] == [Outcome.ACCEPTED]


@pytest.mark.parametrize("change, fragment", [
    ({"trade_type": "MICROPAY"}, "trade_type"),
    ({"amount_fen": 0}, "amount_fen"),
    ({"amount_fen": True}, "amount_fen"),
    ({"amount_fen": 1.5}, "amount_fen"),
    ({"description": " "}, "description"),
    ({"expires_at": datetime(2026, 3, 1, 9, 0)}, "timezone-aware"),
    ({"trade_type": "JSAPI"}, "openid"),
    ({"trade_type": "MWEB"}, "h5_site"),
])
def test_an_order_is_checked_before_any_io(change, fragment):
    with pytest.raises(errors.InvalidArgumentError, match=fragment):
        check_order_request(order(**change))


def test_a_complete_order_of_each_trade_type_passes():
    for kw in ({"trade_type": "JSAPI", "openid": "o1"}, {"trade_type": "NATIVE"}, {"trade_type": "APP"},
               {"trade_type": "MWEB", "h5_site": H5Site("https://shop.example", "Shop")}):
        check_order_request(order(**kw))


@pytest.mark.parametrize("total, refund", [(100, 101), (100, 0), (0, 1), (100, True)])
def test_a_refund_is_checked_before_any_io(total, refund):
    with pytest.raises(errors.InvalidArgumentError):
        check_refund_request(RefundRequest("R1", "W1", "wx1", total, refund, "https://example.com/notify/refund"))


def test_paid_means_the_money_moved():
    assert [s for s in ("SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED", "USERPAYING", "PAYERROR")
            if PaymentFacts("W1", s).paid] == ["SUCCESS", "REFUND"]


def test_bill_lines_are_payments_or_refunds():
    paid = BillLine("W1", "42", "SUCCESS", 100)
    refunded = BillLine("W1", "42", "REFUND", 100, out_refund_no="R1", refund_id="50", refund_fen=10,
                        refund_status="SUCCESS")
    revoked = BillLine("W2", "43", "REVOKED", 100)
    assert (paid.is_payment, paid.is_refund) == (True, False)
    assert (refunded.is_payment, refunded.is_refund) == (False, True)
    assert (revoked.is_payment, revoked.is_refund) == (False, False)
