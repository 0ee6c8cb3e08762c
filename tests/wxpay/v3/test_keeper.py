"""PlatformCertificateKeeper, sans-I/O: what it trusts, when a download is due, how often at most, its stored state."""
from __future__ import annotations

import json

import pytest

from wxpay.errors import ConfigError, VerificationError
from wxpay.v3 import CombinedVerifier, PlatformCertificateKeeper, Validator, wechatpay_headers

from .vectors import PUB_KEY_ID, public_key_verifier, wechat_key
from .wechat_server import in_days, make_platform_key

T0 = 1_800_000_000.0  # 2027-01-15
DAY = 86400.0
OLD = make_platform_key(0x1001, in_days(-400, T0), in_days(30, T0), key_no=1)   # expires in 30 days
NEW = make_platform_key(0x1002, in_days(-1, T0), in_days(1800, T0), key_no=2)
GONE = make_platform_key(0x1003, in_days(-900, T0), in_days(-1, T0), key_no=3)  # already expired


def keeper(*certs, **kw):
    kw.setdefault("clock", lambda: T0)
    return PlatformCertificateKeeper([c.certificate for c in certs], **kw)


def test_an_empty_keeper_is_due_and_knows_nothing():
    k = keeper()
    assert k.due(T0) and k.preferred_serial == "" and not k.knows(NEW.serial)
    assert k.trusted_verifier(T0) is None
    assert k.should_fetch_for(NEW.serial, T0)


def test_accept_keeps_every_valid_certificate_and_drops_expired_ones():
    k = keeper()
    assert k.accept([OLD.certificate, GONE.certificate], T0) == [OLD.serial]
    assert k.accept([OLD.certificate, NEW.certificate], T0 + 10) == [NEW.serial]
    assert {c.serial_no for c in k.certificates} == {OLD.serial, NEW.serial}
    assert k.preferred_serial == NEW.serial  # the one that expires last
    assert {c.serial_no for c in k.trusted_verifier(T0).certificates} == {OLD.serial, NEW.serial}
    # once OLD expires it is no longer trusted to check downloads, and dropped at the next accept
    later = T0 + 31 * DAY
    assert [c.serial_no for c in k.trusted_verifier(later).certificates] == [NEW.serial]
    k.accept([NEW.certificate], later)
    assert [c.serial_no for c in k.certificates] == [NEW.serial]


def test_refresh_is_due_ahead_of_expiry_by_the_margin():
    k = keeper(OLD, margin=7 * DAY, refresh_every=365 * DAY, min_interval=60)
    k.accept([OLD.certificate], T0)
    assert not k.due(T0 + 60)
    assert not k.due(T0 + 22 * DAY)            # 8 days left
    assert k.due(T0 + 23 * DAY + 1)            # inside the 7-day margin
    assert k.expires_soon(T0 + 23 * DAY + 1) == OLD.certificate.not_after
    k.accept([OLD.certificate, NEW.certificate], T0 + 23 * DAY + 1)
    assert not k.due(T0 + 23 * DAY + 120) and k.expires_soon(T0 + 23 * DAY + 120) is None


def test_refresh_is_due_every_refresh_every_anyway():
    k = keeper(NEW, margin=DAY, refresh_every=12 * 3600, min_interval=60)
    k.accept([NEW.certificate], T0)
    assert not k.due(T0 + 12 * 3600 - 1) and k.due(T0 + 12 * 3600)


def test_downloads_are_bounded_by_min_interval_whatever_asks():
    k = keeper(NEW, min_interval=60)
    k.accept([NEW.certificate], T0)
    k.begin(T0 + 100)
    unknown = [f"{n:040X}" for n in range(1000)]
    assert not any(k.should_fetch_for(s, T0 + 100 + n * 0.01) for n, s in enumerate(unknown))
    assert not k.due(T0 + 159)
    assert k.should_fetch_for(unknown[0], T0 + 160)
    assert not k.should_fetch_for(NEW.serial, T0 + 1000)  # a known serial never justifies one
    empty = keeper(min_interval=60)
    empty.begin(T0)
    assert not empty.due(T0 + 59) and empty.due(T0 + 60)  # a failing WeChat is not hammered either


def test_it_is_a_verifier_that_sees_each_update():
    k = keeper()
    validator = Validator(CombinedVerifier(public_key_verifier(), k), clock=lambda: T0)
    body = b'{"prepay_id":"wx1"}'
    by_platform = wechatpay_headers(NEW.private_key, NEW.serial, body, timestamp=int(T0), nonce="N" * 32)
    with pytest.raises(VerificationError) as exc:
        validator.validate(by_platform, body)
    assert exc.value.code == "unknown_serial"
    k.accept([NEW.certificate], T0)
    assert validator.validate(by_platform, body).serial == NEW.serial
    by_key = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=int(T0), nonce="N" * 32)
    assert validator.validate(by_key, body).serial == PUB_KEY_ID
    with pytest.raises(VerificationError) as exc:
        k.verify(OLD.serial, b"x", b"y" * 256, signed_at=int(T0))
    assert exc.value.code == "unknown_serial"


def test_state_round_trips_as_plain_json_without_secrets():
    k = keeper(OLD, NEW)
    k.begin(T0 - 5)
    k.accept([OLD.certificate, NEW.certificate], T0)
    state = json.loads(json.dumps(k.to_dict()))
    assert "PRIVATE KEY" not in json.dumps(state)
    again = PlatformCertificateKeeper.from_dict(state, clock=lambda: T0)
    assert {c.serial_no for c in again.certificates} == {OLD.serial, NEW.serial}
    assert (again.fetched_at, again.attempted_at) == (T0, T0 - 5)
    assert not again.due(T0 + 60)


def test_load_dict_merges_another_process_refresh():
    mine = keeper(OLD)
    mine.accept([OLD.certificate], T0)
    theirs = keeper(OLD, NEW)
    theirs.begin(T0 + 500)
    theirs.accept([OLD.certificate, NEW.certificate], T0 + 500)
    mine.load_dict(theirs.to_dict())
    assert mine.knows(NEW.serial) and mine.fetched_at == T0 + 500 and mine.attempted_at == T0 + 500
    mine.load_dict({**keeper(OLD).to_dict(), "fetched_at": T0 - 1})  # an older state moves no time back
    assert mine.fetched_at == T0 + 500


@pytest.mark.parametrize("state", [
    {}, {"version": 2, "certificates": []}, {"version": 1, "certificates": "PEM"},
    {"version": 1, "certificates": ["not a pem"]}, {"version": 1, "certificates": [], "fetched_at": "yesterday"},
    {"version": 1, "certificates": [], "attempted_at": True},
])
def test_bad_stored_state_is_refused(state):
    with pytest.raises(ConfigError):
        PlatformCertificateKeeper.from_dict(state)


@pytest.mark.parametrize("kw", [{"margin": -1}, {"min_interval": "60"}, {"refresh_every": True}])
def test_bad_settings_are_refused(kw):
    with pytest.raises(ConfigError):
        PlatformCertificateKeeper(**kw)
