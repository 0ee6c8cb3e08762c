"""The notify verdict counter behind wxpay_notifies_total: cheap, and bounded
whatever verdict codes come (beyond MAX_KEYS distinct rows, the rest count as "other")."""
from service.notify_stats import OTHER, NotifyStats


def test_each_verdict_is_counted_by_endpoint_result_and_proof():
    stats = NotifyStats()
    stats.observe("notify", "paid", accepted=True, verified=True)
    stats.observe("notify", "paid", accepted=True, verified=True)
    stats.observe("notify", "bad_signature", accepted=False, verified=False)
    stats.observe("refund_notify", "succeeded", accepted=True, verified=True)
    assert stats.snapshot() == [
        {"endpoint": "notify", "verdict": "bad_signature", "accepted": False, "verified": False, "count": 1},
        {"endpoint": "notify", "verdict": "paid", "accepted": True, "verified": True, "count": 2},
        {"endpoint": "refund_notify", "verdict": "succeeded", "accepted": True, "verified": True, "count": 1},
    ]


def test_rows_are_bounded():
    stats = NotifyStats(max_keys=4)
    for i in range(50):
        stats.observe("notify", f"verdict_{i}", accepted=False, verified=False)
    rows = stats.snapshot()
    assert len(rows) == 5  # four kept, then one "other" row for the rest
    assert [r["count"] for r in rows if r["verdict"] == OTHER] == [46]
    assert sum(r["count"] for r in rows) == 50
