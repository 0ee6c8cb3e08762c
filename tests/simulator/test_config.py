"""The simulator's TOML config: apps, merchants and the optional extras."""
from __future__ import annotations

import pytest

from wxpay.simulator.config import SimConfig


def test_from_toml_reads_apps_merchants_users_and_domains(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text(
        """
users = ["dora", "eve"]
oauth_domains = ["shop.example"]
h5_domains = {"wx0000000000000001" = ["m.shop.example"]}
notify_time_scale = 60.0

[[apps]]
appid = "wx0000000000000001"
secret = "s1"

[[merchants]]
mch_id = "1230000109"
api_key = "k"
appids = ["wx0000000000000001"]
""",
        encoding="utf-8",
    )
    config = SimConfig.from_toml(path)
    assert config.app("wx0000000000000001").kind == "official_account"
    assert config.merchant("1230000109").appids == ("wx0000000000000001",)
    assert config.users == ("dora", "eve")
    assert config.extra["oauth_domains"] == ["shop.example"]
    assert config.extra["h5_domains"] == {"wx0000000000000001": ["m.shop.example"]}
    assert config.notify_time_scale == 60.0


def test_from_toml_needs_apps_and_merchants(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("users = []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="at least one"):
        SimConfig.from_toml(path)


V3_TOML = """
v3_http_notify_hosts = ["shop.lan"]

[[apps]]
appid = "wx0000000000000001"
secret = "s1"

[[merchants]]
mch_id = "1230000109"
api_key = "k"
appids = ["wx0000000000000001"]

[merchants.v3]
apiv3_key = "0123456789abcdef0123456789abcdef"
serial_no = "4A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
merchant_public_key = "keys/apiclient_pub.pem"
key_mode = "gray"
gray_share = 0.2
gray_seed = 42

[[faults]]
endpoint = "notify"
kind = "signtest"
count = 2

[[faults]]
endpoint = "v3/*"
kind = "clock_skew"
seconds = -400
"""


def write_v3_config(tmp_path, text: str = V3_TOML):
    from wxpay.simulator import demo
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "apiclient_pub.pem").write_text(demo.v3_pem("apiclient_pub.pem"))
    path = tmp_path / "sim.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_from_toml_reads_v3_credentials_key_mode_and_faults(tmp_path):
    from wxpay.simulator import demo
    from wxpay.simulator.core import Simulator
    config = SimConfig.from_toml(write_v3_config(tmp_path))
    v3 = config.merchant("1230000109").v3
    assert (v3.apiv3_key, v3.key_mode, v3.gray_share, v3.gray_seed) == (
        "0123456789abcdef0123456789abcdef", "gray", 0.2, 42)
    assert v3.merchant_public_key_pem == demo.v3_pem("apiclient_pub.pem")
    assert v3.public_key_id == demo.PUBLIC_KEY_ID  # WeChat's side defaults to the test keys
    assert config.extra["v3_http_notify_hosts"] == ["shop.lan"]
    sim = Simulator(config)
    assert [(f["endpoint"], f["kind"], f["count"], f["seconds"]) for f in sim.faults.list()] == [
        ("notify", "signtest", 2, 0.0), ("v3/*", "clock_skew", 1, -400.0)]
    assert sim.v3.keyring("1230000109").view()["key_mode"] == "gray"


@pytest.mark.parametrize("change, message", [
    ('apiv3_key = "0123456789abcdef0123456789abcdef"', "apiv3_key = \"short\"", ),
    ('key_mode = "gray"', 'key_mode = "both"'),
    ("gray_share = 0.2", "gray_share = 1.5"),
    ("gray_seed = 42", 'gray_seed = "x"'),
    ('merchant_public_key = "keys/apiclient_pub.pem"', 'merchant_public_key = "keys/missing.pem"'),
    ('merchant_public_key = "keys/apiclient_pub.pem"', 'merchant_public_keys = "keys/apiclient_pub.pem"'),
])
def test_from_toml_refuses_bad_v3_settings(tmp_path, change, message):
    path = write_v3_config(tmp_path, V3_TOML.replace(change, message))
    with pytest.raises(ValueError, match="merchant 1230000109 v3"):
        SimConfig.from_toml(path)


def test_from_toml_refuses_a_bad_fault(tmp_path):
    from wxpay.simulator.core import Simulator
    path = write_v3_config(tmp_path, V3_TOML.replace('kind = "signtest"', 'kind = "gremlins"'))
    with pytest.raises(ValueError, match="unknown fault kind"):
        Simulator(SimConfig.from_toml(path))
