"""The merchant API over real HTTP: create, idempotency, read, list, errors."""
from __future__ import annotations

import pytest

from .browser import as_json


async def create(merchant, body, key=None):
    headers = dict(merchant.token_headers)
    if key:
        headers["Idempotency-Key"] = key
    return await merchant.post("/api/checkouts", json_body=body, headers=headers)


async def test_create_read_and_list(merchant, base_url):
    r = await create(merchant, {"amount_fen": 1999, "description": "T-shirt", "merchant_reference": "ord-1", "attach": "x"})
    assert r.code == 201
    c = as_json(r)
    assert c["status"] == "open" and c["amount_fen"] == 1999
    assert c["pay_url"] == f"{base_url}/pay/{c['id']}"
    got = as_json(await merchant.get(f"/api/checkouts/{c['id']}", headers=merchant.token_headers))
    assert got["id"] == c["id"] and got["orders"] == []
    listed = as_json(await merchant.get("/api/checkouts?merchant_reference=ord-1", headers=merchant.token_headers))
    assert [i["id"] for i in listed["items"]] == [c["id"]]
    assert as_json(await merchant.get("/api/checkouts?status=paid", headers=merchant.token_headers))["items"] == []


async def test_idempotency_key_returns_the_first_checkout(merchant):
    body = {"amount_fen": 500, "description": "Tea"}
    first = await create(merchant, body, key="retry-123")
    second = await create(merchant, body, key="retry-123")
    assert (first.code, second.code) == (201, 200)
    assert as_json(first)["id"] == as_json(second)["id"]
    other = await create(merchant, {"amount_fen": 501, "description": "Tea"}, key="retry-123")
    assert other.code == 409 and as_json(other)["code"] == "idempotency_key_reused"
    listed = as_json(await merchant.get("/api/checkouts?limit=100", headers=merchant.token_headers))
    assert len(listed["items"]) == 1


@pytest.mark.parametrize(
    "body, code",
    [
        ({"amount_fen": 0, "description": "x"}, "invalid_amount"),
        ({"amount_fen": -5, "description": "x"}, "invalid_amount"),
        ({"amount_fen": 1.5, "description": "x"}, "invalid_amount"),
        ({"amount_fen": "100", "description": "x"}, "invalid_amount"),
        ({"amount_fen": True, "description": "x"}, "invalid_amount"),
        ({"amount_fen": 10**12, "description": "x"}, "invalid_amount"),
        ({"amount_fen": 100}, "invalid_description"),
        ({"amount_fen": 100, "description": "x" * 200}, "invalid_description"),
        ({"amount_fen": 100, "description": "x", "return_url": "javascript:alert(1)"}, "invalid_return_url"),
        ({"amount_fen": 100, "description": "x", "return_url": "https://a.example/\r\nSet-Cookie: x=1"}, "invalid_return_url"),
        ({"amount_fen": 100, "description": "x", "expires_in_minutes": 1}, "invalid_expiry"),
        ({"amount_fen": 100, "description": "x", "merchant_reference": {"$gt": ""}}, "invalid_reference"),
        ({"amount_fen": 100, "description": "x", "amount": 1}, "unknown_field"),
        ([1, 2], "invalid_body"),
    ],
)
async def test_bad_input_is_refused_with_a_code(merchant, body, code):
    r = await create(merchant, body)
    assert r.code == 400
    assert as_json(r)["code"] == code
    listed = as_json(await merchant.get("/api/checkouts", headers=merchant.token_headers))
    assert listed["items"] == []


async def test_invalid_json_and_auth(merchant):
    r = await merchant.post("/api/checkouts", body="{nope", headers=merchant.token_headers)
    assert r.code == 400 and as_json(r)["code"] == "invalid_json"
    r = await merchant.post("/api/checkouts", json_body={"amount_fen": 1, "description": "x"})
    assert r.code == 401 and as_json(r)["code"] == "unauthorized"
    r = await merchant.get("/api/checkouts", headers={"Authorization": "Bearer wrong"})
    assert r.code == 401
    r = await merchant.get("/api/checkouts/co_000000000000000000000000", headers=merchant.token_headers)
    assert r.code == 404 and as_json(r)["code"] == "checkout_not_found"


async def test_healthz(merchant):
    r = await merchant.get("/healthz")
    assert r.code == 200
    assert as_json(r)["ok"] is True and as_json(r)["store"] == "sqlite"
