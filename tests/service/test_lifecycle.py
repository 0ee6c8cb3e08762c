"""The state machines, walked whole: every pair of states, allowed and refused,
as the table says and as the one writer does it on a real store (SQLite on
a file; MongoDB on the emulator, since no MongoDB server can run here).

The expected moves are written out here, independently of the tables in
service/lifecycle.py: a change to a table fails this file until someone
changes it here too, on purpose.
"""
from __future__ import annotations

import ast
import itertools
from datetime import datetime, timezone
from pathlib import Path

import pytest

from service.lifecycle import CHECKOUT, MACHINES, ORDER, REFUND, Lifecycle
from service.models import CHECKOUTS, ORDERS, OUTBOX_DUE, REFUNDS
from tests.store.conftest import BACKENDS, drop_store, make_store

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)

# (from, to) pairs that may happen; every other pair of states must be refused.
EXPECTED = {
    CHECKOUT: {
        ("open", "paid"), ("open", "closed"),
        ("paid", "partially_refunded"), ("partially_refunded", "partially_refunded"),
        ("paid", "refunded"), ("partially_refunded", "refunded"),
    },
    ORDER: {
        ("created", "prepaid"), ("prepaid", "prepaid"),
        ("created", "paid"), ("prepaid", "paid"), ("failed", "paid"), ("closed", "paid"),
        ("created", "closed"), ("prepaid", "closed"),
        ("created", "failed"), ("prepaid", "failed"),
    },
    REFUND: {
        ("pending", "succeeded"), ("needs_attention", "succeeded"),
        ("pending", "closed"), ("needs_attention", "closed"),
        ("pending", "needs_attention"),
        ("pending", "failed"),
    },
}
STATES = {
    CHECKOUT: ("open", "paid", "closed", "partially_refunded", "refunded"),
    ORDER: ("created", "prepaid", "paid", "closed", "failed"),
    REFUND: ("pending", "succeeded", "closed", "needs_attention", "failed"),
}
PAIRS = [(entity, a, b) for entity in STATES for a, b in itertools.product(STATES[entity], repeat=2)]


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    opened, handle = await make_store(request.param, tmp_path)
    try:
        yield opened
    finally:
        await drop_store(request.param, opened, handle)


def test_each_machine_knows_exactly_its_states():
    assert {name: MACHINES[name].states for name in STATES} == STATES


@pytest.mark.parametrize("entity, source, target", PAIRS, ids=[f"{e}:{a}->{b}" for e, a, b in PAIRS])
def test_the_table_allows_exactly_the_expected_moves(entity, source, target):
    assert MACHINES[entity].allows(source, target) is ((source, target) in EXPECTED[entity])


async def test_the_writer_makes_every_allowed_move_and_refuses_every_other(store):
    lifecycle = Lifecycle(store, now=lambda: T0)
    field = {CHECKOUT: "status", ORDER: "state", REFUND: "state"}
    collection = {CHECKOUT: CHECKOUTS, ORDER: ORDERS, REFUND: REFUNDS}
    outcomes = {}
    for n, (entity, source, target) in enumerate(PAIRS):
        key = f"k{n}"
        unique = {ORDER: "out_trade_no", REFUND: "out_refund_no"}.get(entity)  # the stores index them as unique
        await store.insert(collection[entity], {"_id": key, field[entity]: source, **({unique: key} if unique else {})})
        if not any(target == b for _, b in EXPECTED[entity]):
            with pytest.raises(ValueError):  # nothing ever moves there: asking is a bug, not a race
                await lifecycle.move(entity, key, target)
            moved = None
        else:
            moved = await lifecycle.move(entity, key, target, note="moved")
        after = await store.get(collection[entity], key)
        outcomes[(entity, source, target)] = (moved is not None, after[field[entity]], after.get("note"))
    assert outcomes == {
        (e, a, b): ((True, b, "moved") if (a, b) in EXPECTED[e] else (False, a, None)) for e, a, b in PAIRS
    }


@pytest.mark.parametrize("target", ["failed", "closed", "prepaid", "created"])
async def test_a_paid_order_never_moves_again(store, target):
    lifecycle = Lifecycle(store, now=lambda: T0)
    await store.insert(ORDERS, {"_id": "W1", "out_trade_no": "W1", "state": "paid"})
    if target == "created":
        with pytest.raises(ValueError):
            await lifecycle.move(ORDER, "W1", target)
    else:
        assert await lifecycle.move(ORDER, "W1", target) is None
    assert (await store.get(ORDERS, "W1"))["state"] == "paid"


@pytest.mark.parametrize("source", ["failed", "closed"])
async def test_wechat_s_confirmation_pays_an_order_we_had_given_up_on(store, source):
    """A payment confirmed after the reconciler marked the order failed (or closed) is recorded, not refused."""
    lifecycle = Lifecycle(store, now=lambda: T0)
    await store.insert(ORDERS, {"_id": "W2", "out_trade_no": "W2", "state": source})
    assert (await lifecycle.move(ORDER, "W2", "paid"))["state"] == "paid"


async def test_paid_and_closed_checkouts_are_final(store):
    lifecycle = Lifecycle(store, now=lambda: T0)
    await store.insert(CHECKOUTS, {"_id": "co_paid", "status": "paid"})
    await store.insert(CHECKOUTS, {"_id": "co_closed", "status": "closed"})
    assert await lifecycle.move(CHECKOUT, "co_paid", "closed") is None
    assert await lifecycle.move(CHECKOUT, "co_closed", "paid") is None
    assert [(await store.get(CHECKOUTS, k))["status"] for k in ("co_paid", "co_closed")] == ["paid", "closed"]


async def test_a_checkout_move_carries_the_webhook_intent_in_the_same_write(store):
    quiet, loud = Lifecycle(store, now=lambda: T0), Lifecycle(store, announce=True, now=lambda: T0)
    await store.insert(CHECKOUTS, {"_id": "co_a", "status": "open"})
    await store.insert(CHECKOUTS, {"_id": "co_b", "status": "open"})
    assert OUTBOX_DUE not in (await quiet.move(CHECKOUT, "co_a", "paid"))
    assert (await loud.move(CHECKOUT, "co_b", "closed"))[OUTBOX_DUE] == T0
    await store.insert(ORDERS, {"_id": "W3", "out_trade_no": "W3", "state": "created"})
    assert OUTBOX_DUE not in (await loud.move(ORDER, "W3", "prepaid"))  # orders carry no intent


async def test_a_state_changes_only_as_a_move_s_target(store):
    lifecycle = Lifecycle(store, now=lambda: T0)
    await store.insert(ORDERS, {"_id": "W4", "out_trade_no": "W4", "state": "prepaid"})
    with pytest.raises(ValueError):
        await lifecycle.move(ORDER, "W4", "closed", state="paid")
    with pytest.raises(ValueError):
        await lifecycle.move(ORDER, "W4", "closed", where={"state": "paid"})
    with pytest.raises(ValueError):
        await lifecycle.update(ORDER, "W4", where={"state": "prepaid"}, state="paid")
    assert (await lifecycle.update(ORDER, "W4", where={"state": "prepaid"}, checks=2))["checks"] == 2
    assert await lifecycle.update(ORDER, "W4", where={"state": "paid"}, checks=3) is None
    assert (await store.get(ORDERS, "W4"))["state"] == "prepaid"


def test_no_other_service_module_writes_checkouts_orders_or_refunds():
    """The lifecycle is the one writer: elsewhere in service/ these documents are inserted, read, never updated."""
    writes = {"update_if", "upsert_if", "delete_if"}
    guarded = {"CHECKOUTS", "ORDERS", "REFUNDS"}
    offenders = []
    for path in sorted((ROOT / "service").glob("*.py")):
        if path.name == "lifecycle.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in writes
                    and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in guarded):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
