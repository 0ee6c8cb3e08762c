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
