"""What ``make mutation`` mutates, grouped as docs/MUTATION.md scores it, and which tests may kill it.

Each group names its modules (optionally only some functions or
module-level names of a module: ``only``) and the test paths that exercise
them. The runner measures, once per run, which of those tests run each
line of each module (coverage per test), and runs a mutant against the
tests that run its line, fastest first, stopping at the first failure.
``tests/mutation/test_config.py`` checks that every name here still exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    path: str
    only: frozenset[str] | None = None  # function qualnames / module-level names; None: the whole module


@dataclass(frozen=True)
class Group:
    name: str
    title: str
    targets: tuple[Target, ...]
    tests: tuple[str, ...]
    notes: str = field(default="")


# Tests that exercise the service layer end to end (a real server, the simulator over HTTP, real stores).
_SERVICE_TESTS = (
    "tests/service",
    "tests/server",
    "tests/battery",
    "tests/store/test_contract.py",
)
_V2_TESTS = (
    "tests/wxpay",
    "tests/simulator",
    "tests/battery/test_notify_fuzz.py",
    "tests/battery/test_hostile.py",
    "tests/server/test_journey.py",
    "tests/server/test_refunds.py",
)
_V3_TESTS = (
    "tests/wxpay/v3",
    "tests/wxpay/test_v3_gateway.py",
    "tests/wxpay/test_gateways.py",
    "tests/wxpay/test_gateway_migration.py",
    "tests/simulator",
    "tests/server/test_sandbox_v3.py",
)

GATEWAY_NOTIFY = frozenset({
    # wxpay/gateway.py: the one mapping of a failure to its verdict, the notify shell, the statuses
    "refusal_for", "STATUS", "_INTERNAL", "_TOO_LARGE", "NotifyVerdict.ok",
    "PayGateway.read_payment_notify", "PayGateway.judge_payment_notify",
    "PayGateway.read_refund_notify", "PayGateway.notify_reply",
})
V2_GATEWAY_NOTIFY = frozenset({
    "_REFUND_STATUS", "refund_status", "_OUT_TRADE_NO",
    "V2Gateway._read_payment_notify", "V2Gateway._judge_payment_notify",
    "V2Gateway._read_refund_notify", "V2Gateway._wire_reply", "wire_reply",
})
V3_GATEWAY_NOTIFY = frozenset({
    "V3Gateway._read_event", "V3Gateway._read_payment_notify", "V3Gateway._judge_payment_notify",
    "V3Gateway._read_refund_notify", "V3Gateway._wire_reply", "wire_reply",
})

GROUPS: tuple[Group, ...] = (
    Group(
        "moves", "State moves (the tables and their one writer)",
        (Target("service/lifecycle.py"),),
        _SERVICE_TESTS,
    ),
    Group(
        "confirm", "Confirming a payment",
        (Target("service/payments.py"), Target("service/order_checks.py")),
        _SERVICE_TESTS,
    ),
    Group(
        "notify", "Notify services",
        (Target("service/payment_notify.py"), Target("service/refund_notify.py"),
         Target("service/notify_endpoint.py")),
        _SERVICE_TESTS,
    ),
    Group(
        "v2", "wxpay V2 signing and notifies",
        (Target("wxpay/signing.py"), Target("wxpay/notify.py"), Target("wxpay/refund_crypto.py")),
        _V2_TESTS,
    ),
    Group(
        "v3", "wxpay V3 signing, verification, AEAD and notifies",
        (Target("wxpay/v3/signing.py"), Target("wxpay/v3/verification.py"), Target("wxpay/v3/aead.py"),
         Target("wxpay/v3/notify.py")),
        _V3_TESTS,
    ),
    Group(
        "gateway", "Gateway notify paths (refusal_for, the notify shell, V2 and V3)",
        (Target("wxpay/gateway.py", GATEWAY_NOTIFY), Target("wxpay/v2_gateway.py", V2_GATEWAY_NOTIFY),
         Target("wxpay/v3_gateway.py", V3_GATEWAY_NOTIFY)),
        ("tests/wxpay", "tests/simulator/test_with_client.py", "tests/server", "tests/battery"),
    ),
)

# Never run by the mutation runner: they need Chromium, build a zipapp, or
# time real processes, and none of them is the only test of a mutated line.
EXCLUDED_TESTS = (
    "tests/browser",
    "tests/server/test_zipapp.py",
    "tests/server/test_multiprocess.py",
    "tests/mutation",
)


def group(name: str) -> Group:
    for g in GROUPS:
        if g.name == name:
            return g
    raise KeyError(name)


# The survivors issue 14 named, each with the test that must kill it (the run
# reports the status of each; tests/mutation/test_config.py checks both still exist).
PINNED: dict[str, str] = {
    # a paid order allowed to move to failed, closed or back to prepaid
    "service/lifecycle.py::ORDER_MACHINE[FAILED]::add::{CREATED, PREPAID} -> {CREATED, PREPAID, PAID}#0":
        "tests/service/test_lifecycle.py::test_a_paid_order_never_moves_again",
    "service/lifecycle.py::ORDER_MACHINE[CLOSED]::add::{CREATED, PREPAID} -> {CREATED, PREPAID, PAID}#0":
        "tests/service/test_lifecycle.py::test_a_paid_order_never_moves_again",
    "service/lifecycle.py::ORDER_MACHINE[PREPAID]::add::{CREATED, PREPAID} -> {CREATED, PREPAID, PAID}#0":
        "tests/service/test_lifecycle.py::test_a_paid_order_never_moves_again",
    # a confirmed payment refused forever once the reconciler had marked its order failed
    "service/lifecycle.py::ORDER_MACHINE[PAID]::drop::{CREATED, PREPAID, FAILED, CLOSED} -> {CREATED, PREPAID, CLOSED}#0":
        "tests/server/test_payment_confirmation.py::test_a_payment_confirmed_after_its_order_was_given_up_is_kept",
    # SUCCESS answered to WeChat while the store is down
    "service/payment_notify.py::PaymentNotifyService._repeat::statement::await self.payments.settle(order) -> pass#0":
        "tests/server/test_payment_confirmation.py::test_wechat_is_never_told_success_while_a_settlement_cannot_be_stored",
    # a created sibling order left open after its checkout was paid
    "service/payments.py::Payments._close_siblings::drop::(CREATED, PREPAID) -> (PREPAID,)#0":
        "tests/server/test_payment_confirmation.py::test_every_sibling_that_could_still_be_paid_is_handed_to_the_reconciler",
}
