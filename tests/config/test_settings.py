"""Settings: loading precedence, typo and type errors, live-mode refusals, redaction."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from config import (
    DEFAULT_CONFIG_PATH,
    SANDBOX_ADMIN_PASSWORD,
    SANDBOX_MERCHANT_TOKEN,
    Product,
    Settings,
    SettingsError,
    explain,
    iter_keys,
    load_settings,
    redacted,
    validate_live,
)

from .livecfg import (
    ADMIN_PASSWORD,
    API_KEY,
    APP_SECRET,
    COOKIE_SECRET,
    MERCHANT_TOKEN,
    MINI_SECRET,
    MONGO_PASSWORD,
    PUBLIC,
    WEBHOOK_SECRET,
)

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "configuration.md"



def write(tmp_path: Path, text: str, name: str = "wxpay.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str = "", env: dict | None = None, overrides: dict | None = None) -> Settings:
    return load_settings(write(tmp_path, text), env=env or {}, overrides=overrides)


def problems_of(exc_info: pytest.ExceptionInfo[SettingsError]) -> list[str]:
    return exc_info.value.problems


# --- defaults and the example file ---------------------------------------------


def test_no_configuration_means_sandbox_on_sqlite(tmp_path):
    s = load(tmp_path)
    assert s.mode == "sandbox" and s.is_sandbox and not s.is_live
    assert s.store.backend == "sqlite"
    assert s.store.mongodb_uri is None
    assert s.store.sqlite_path == "data/wxpay.sqlite3"
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8000)
    assert s.server.xsrf_cookies is True and s.server.debug is False
    assert s.server.trusted_proxies == ()
    # Credentials and base URLs stay empty: the entry point fills them from the simulator.
    assert not s.wechat.has_credentials
    assert (s.wechat.appid, s.wechat.api_key, s.wechat.pay_base) == (None, None, None)
    assert s.merchant_api.tokens == (SANDBOX_MERCHANT_TOKEN,)
    assert s.admin.password == SANDBOX_ADMIN_PASSWORD
    assert s.shop.catalogue and all(p.amount_fen > 0 for p in s.shop.catalogue)
    assert validate_live(s, PUBLIC) == []
    assert s.check(PUBLIC) is s


def test_sandbox_generates_a_fresh_cookie_secret_per_process(tmp_path):
    a, b = load(tmp_path), load(tmp_path)
    assert len(a.server.cookie_secret) >= 32
    assert a.server.cookie_secret != b.server.cookie_secret
    assert a.sources["server.cookie_secret"].startswith("generated")


def test_live_mode_gets_no_sandbox_defaults_and_real_base_urls(tmp_path):
    s = load(tmp_path, 'mode = "live"')
    assert s.server.cookie_secret is None
    assert s.merchant_api.tokens == ()
    assert s.admin.password is None
    assert s.wechat.pay_base == "https://api.mch.weixin.qq.com"
    assert s.wechat.open_base == "https://open.weixin.qq.com"
    assert s.wechat.api_base == "https://api.weixin.qq.com"


def test_without_a_path_the_packaged_example_is_loaded_and_equals_the_defaults(tmp_path):
    packaged = load_settings(env={})
    assert packaged.config_file == str(DEFAULT_CONFIG_PATH)
    assert redacted(packaged) | {"config_file": None} == redacted(load(tmp_path)) | {"config_file": None}


def test_example_file_loads_cleanly_when_named_explicitly():
    s = load_settings(DEFAULT_CONFIG_PATH, env={})
    assert s.mode == "sandbox"
    assert s.shop.product("sticker") == Product("sticker", "Sticker", 1, s.shop.product("sticker").description)


def test_example_file_documents_every_key_and_its_env_var():
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    sections = re.split(r"^\[+([a-z_.]+)\]+\s*$", text, flags=re.M)
    by_section: dict[str | None, str] = {None: sections[0]}
    for name, body in zip(sections[1::2], sections[2::2]):
        by_section[name] = by_section.get(name, "") + body
    for key in iter_keys():
        if key.dotted == "shop.catalogue":
            assert "[[shop.catalogue]]" in text
            continue
        body = by_section[key.section]
        assert re.search(rf"^#? ?{key.name} = ", body, flags=re.M), f"{key.dotted} not shown"
        assert key.env_var in text, f"{key.env_var} not documented"


def test_reference_doc_lists_every_key_env_var_and_default():
    doc = DOCS.read_text(encoding="utf-8")
    for key in iter_keys():
        assert f"`{key.dotted}`" in doc, key.dotted
        if key.env_var:
            assert f"`{key.env_var}`" in doc, key.env_var
    for name in ("MONGODB_URI", "WXPAY_CONFIG", SANDBOX_MERCHANT_TOKEN, SANDBOX_ADMIN_PASSWORD):
        assert name in doc


def test_reference_doc_has_one_row_per_key_with_its_real_default():
    """docs/configuration.md's tables against iter_keys(): every key a row of
    its own (no more, no fewer), its environment variable, and the default
    the loader really uses."""
    rows: dict[str, list[str]] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z_][a-z0-9_]*(\.[a-z0-9_]+)?`", cells[0]):
            key = cells[0].strip("`")
            assert key not in rows, f"{key} has two rows"
            rows[key] = cells
    keys = {key.dotted: key for key in iter_keys()}
    assert set(rows) == set(keys), (set(rows) ^ set(keys))
    for dotted, (_, env, _type, default, _meaning) in rows.items():
        key = keys[dotted]
        if key.env_var:
            assert env.startswith(f"`{key.env_var}`"), (dotted, env)
        else:
            assert env == "file only", (dotted, env)
        value = key.default
        if value is None or value == ():
            assert default.startswith(("not set", "none")), (dotted, default)
        elif isinstance(value, bool):
            assert default == f"`{str(value).lower()}`", (dotted, default)
        elif isinstance(value, (int, float)):
            number = re.fullmatch(r"`([0-9.]+)`", default)
            assert number and float(number.group(1)) == value, (dotted, default, value)
        elif isinstance(value, str):
            assert default == f'`"{value}"`', (dotted, default, value)


# --- the file, the environment, overrides ----------------------------------------


FULL_FILE = """
mode = "sandbox"
[server]
port = 9000
public_url = "http://shop.test:9000/"
trusted_proxies = ["10.0.0.0/8", "::1"]
debug = true
[store]
mongodb_uri = "mongodb://db.test:27017"
mongodb_database = "payments"
[wechat]
appid = "wx1234567890abcdef"
sign_type = "HMAC-SHA256"
oauth_scope = "snsapi_userinfo"
use_jssdk = true
[shop]
name = "Tea house"
[[shop.catalogue]]
sku = "oolong"
name = "Oolong"
amount_fen = 2500
[checkout]
default_expiry_minutes = 10
[reconciler]
interval_s = 5
[simulator]
notify_time_scale = 0.01
"""


def test_file_values_are_used(tmp_path):
    s = load(tmp_path, FULL_FILE)
    assert s.server.port == 9000
    assert s.server.public_url == "http://shop.test:9000"  # trailing slash dropped
    assert s.server.trusted_proxies == ("10.0.0.0/8", "::1")
    assert s.server.debug is True
    assert s.store.backend == "mongodb"
    assert s.store.mongodb_database == "payments"
    assert s.wechat.appid == "wx1234567890abcdef"
    assert s.wechat.sign_type == "HMAC-SHA256"
    assert s.wechat.oauth_scope == "snsapi_userinfo"
    assert s.wechat.use_jssdk is True
    assert s.shop.name == "Tea house"
    assert s.shop.catalogue == (Product("oolong", "Oolong", 2500, ""),)
    assert s.checkout.default_expiry_minutes == 10
    assert s.reconciler.interval_s == 5.0 and isinstance(s.reconciler.interval_s, float)
    assert s.simulator.notify_time_scale == 0.01
    assert s.sources["server.port"].startswith("file ")


def test_precedence_file_then_env_then_overrides(tmp_path):
    text = "[server]\nport = 9000\n"
    env = {"WXPAY_SERVER_PORT": "9100"}
    assert load(tmp_path, text).server.port == 9000
    s = load(tmp_path, text, env=env)
    assert s.server.port == 9100 and s.sources["server.port"] == "env WXPAY_SERVER_PORT"
    s = load(tmp_path, text, env=env, overrides={"server": {"port": 9200}})
    assert s.server.port == 9200 and s.sources["server.port"] == "override"
    assert load(tmp_path, text, env=env, overrides={"server.port": 9300}).server.port == 9300


def test_config_file_from_environment(tmp_path):
    path = write(tmp_path, "[server]\nport = 9400\n", "other.toml")
    s = load_settings(env={"WXPAY_CONFIG": str(path)})
    assert s.server.port == 9400 and s.config_file == str(path)


@pytest.mark.parametrize("where", ["path", "env"])
def test_missing_config_file_is_an_error(tmp_path, where):
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError) as exc:
        if where == "path":
            load_settings(missing, env={})
        else:
            load_settings(env={"WXPAY_CONFIG": str(missing)})
    assert exc.value.code == "config_file_missing"
    assert str(missing) in exc.value.message


def test_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, "[server\nport = 1")
    assert exc.value.code == "config_file_invalid"
    assert "wxpay.toml" in exc.value.message


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("1", True), ("YES", True), (" on ", True),
     ("false", False), ("0", False), ("No", False), ("off", False)],
)
def test_env_booleans(tmp_path, raw, expected):
    assert load(tmp_path, env={"WXPAY_SERVER_DEBUG": raw}).server.debug is expected


def test_env_coercion_of_numbers_lists_choices_and_empty(tmp_path):
    s = load(
        tmp_path,
        "[wechat]\ncert_path = \"/x.pem\"\n",
        env={
            "WXPAY_SERVER_MAX_BODY_BYTES": "131072",
            "WXPAY_RECONCILER_QUERY_AFTER_S": "2.5",
            "WXPAY_SERVER_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16,,",
            "WXPAY_MERCHANT_API_TOKENS": "tok-a,tok-b",
            "WXPAY_WECHAT_SIGN_TYPE": "HMAC-SHA256",
            "WXPAY_WECHAT_CERT_PATH": "",
            "WXPAY_WECHAT_API_KEY": API_KEY,
        },
    )
    assert s.server.max_body_bytes == 131072
    assert s.reconciler.query_after_s == 2.5
    assert s.server.trusted_proxies == ("10.0.0.1", "192.168.0.0/16")
    assert s.merchant_api.tokens == ("tok-a", "tok-b")
    assert s.wechat.sign_type == "HMAC-SHA256"
    assert s.wechat.cert_path is None  # empty means "not set", even over the file
    assert s.wechat.api_key == API_KEY


def test_env_coercion_errors_name_every_variable(tmp_path):
    env = {
        "WXPAY_SERVER_PORT": "eighty",
        "WXPAY_SERVER_DEBUG": "maybe",
        "WXPAY_RECONCILER_INTERVAL_S": "soon",
        "WXPAY_WECHAT_SIGN_TYPE": "SHA1",
        "WXPAY_MODE": "production",
    }
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, env=env)
    assert exc.value.code == "invalid_settings"
    found = problems_of(exc)
    assert len(found) == len(env)
    for var in env:
        assert sum(line.startswith(var + ":") for line in found) == 1, var


def test_mongodb_uri_alias_and_its_precedence(tmp_path):
    s = load(tmp_path, env={"MONGODB_URI": "mongodb://alias.test"})
    assert s.store.mongodb_uri == "mongodb://alias.test" and s.store.backend == "mongodb"
    assert s.sources["store.mongodb_uri"] == "env MONGODB_URI"
    s = load(tmp_path, env={"MONGODB_URI": "mongodb://alias.test",
                            "WXPAY_STORE_MONGODB_URI": "mongodb://main.test"})
    assert s.store.mongodb_uri == "mongodb://main.test"


def test_log_level_its_older_variable_and_their_precedence(tmp_path):
    assert load(tmp_path).server.log_level == "INFO"
    s = load(tmp_path, env={"WXPAY_LOG_LEVEL": "DEBUG"})
    assert s.server.log_level == "DEBUG" and s.sources["server.log_level"] == "env WXPAY_LOG_LEVEL"
    s = load(tmp_path, '[server]\nlog_level = "WARNING"\n', env={"WXPAY_SERVER_LOG_LEVEL": "ERROR", "WXPAY_LOG_LEVEL": "DEBUG"})
    assert s.server.log_level == "ERROR"
    assert load(tmp_path, '[server]\nlog_level = "WARNING"\n').server.log_level == "WARNING"
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, env={"WXPAY_LOG_LEVEL": "verbose"})
    assert problems_of(exc) == ["WXPAY_LOG_LEVEL: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'"]
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, '[server]\nlog_level = "debug"\n')
    assert "server.log_level" in problems_of(exc)[0]


def test_a_store_url_must_be_mongodb(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, env={"MONGODB_URI": "postgres://db.test/wxpay"})
    assert problems_of(exc) == ["store.mongodb_uri must start with mongodb:// or mongodb+srv:// (leave it unset for SQLite)"]
    assert "postgres" not in str(exc.value)
    assert load(tmp_path, env={"MONGODB_URI": "MongoDB+SRV://cluster.test/"}).store.backend == "mongodb"


def test_unrelated_environment_is_ignored(tmp_path):
    s = load(tmp_path, env={"WXPAY_SOMETHING_ELSE": "1", "PORT": "1", "HOME": "/root"})
    assert s.server.port == 8000


# --- the shop's name: on every pay page and at the head of what WeChat shows -----------


@pytest.mark.parametrize("name, needle", [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("Tea\nHouse", "one line of plain text"),
    ("Tea\u202eHouse", "one line of plain text"),
    ("茶" * 22, "at most 64 UTF-8 bytes"),
    ("x" * 65, "at most 64 UTF-8 bytes"),
])
def test_a_shop_name_shoppers_cannot_read_is_refused_in_any_mode(tmp_path, name, needle):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, overrides={"shop.name": name})
    assert any("shop.name" in p and needle in p for p in problems_of(exc)), problems_of(exc)


def test_a_shop_name_up_to_64_bytes_is_taken(tmp_path):
    assert load(tmp_path, overrides={"shop.name": "茶" * 21}).shop.name == "茶" * 21
    assert load(tmp_path, env={"WXPAY_SHOP_NAME": "Lu's Tea House"}).shop.name == "Lu's Tea House"


# --- typos and wrong types ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[server]\nprot = 1\n", "'server.prot'"),
        ("[wechat]\napi_kye = \"x\"\n", "'wechat.api_kye'"),
        ("[srever]\nport = 1\n", "[srever]"),
        ("moed = \"live\"\n", "'moed'"),
        ("[[shop.catalogue]]\nsku = \"a\"\nname = \"A\"\namount_fen = 1\nprice = 2\n",
         "'shop.catalogue[0].price'"),
    ],
)
def test_unknown_key_in_file_names_key_and_file(tmp_path, text, needle):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, text)
    [line] = problems_of(exc)
    assert needle in line and "unknown s" in line
    assert str(tmp_path / "wxpay.toml") in line


def test_unknown_key_suggests_the_right_one(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, "[wechat]\napi_kye = \"x\"\n")
    assert "did you mean 'wechat.api_key'" in exc.value.message
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, "[srever]\nport = 1\n")
    assert "did you mean [server]" in exc.value.message


def test_misspelt_environment_variable_is_an_error(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, env={"WXPAY_WECHAT_APIKEY": "x"})
    [line] = problems_of(exc)
    assert line.startswith("WXPAY_WECHAT_APIKEY: unknown setting")
    assert "WXPAY_WECHAT_API_KEY" in line


def test_catalogue_cannot_come_from_the_environment(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, env={"WXPAY_SHOP_CATALOGUE": "x"})
    assert "WXPAY_SHOP_CATALOGUE" in exc.value.message


def test_unknown_override_is_an_error(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, overrides={"server.prot": 1})
    assert "'server.prot'" in exc.value.message and "overrides" in exc.value.message


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[server]\nport = \"8000\"\n", "'server.port'"),
        ("[server]\nport = true\n", "'server.port'"),
        ("[server]\ndebug = \"yes\"\n", "'server.debug'"),
        ("[server]\ntrusted_proxies = \"10.0.0.0/8\"\n", "'server.trusted_proxies'"),
        ("[server]\ntrusted_proxies = [10]\n", "'server.trusted_proxies'"),
        ("[reconciler]\ninterval_s = \"5\"\n", "'reconciler.interval_s'"),
        ("mode = \"production\"\n", "'mode'"),
        ("[wechat]\nsign_type = \"SHA256\"\n", "'wechat.sign_type'"),
        ("[wechat]\noauth_scope = \"snsapi_login\"\n", "'wechat.oauth_scope'"),
        ("[wechat]\nappid = 12\n", "'wechat.appid'"),
        ("[admin]\nusername = \"\"\n", "'admin.username'"),
        ("server = 1\n", "'server'"),
        ("[[shop.catalogue]]\nsku = \"a\"\nname = \"A\"\namount_fen = 1.5\n",
         "'shop.catalogue[0].amount_fen'"),
        ("[[shop.catalogue]]\nsku = \"a\"\nname = \"A\"\n", "missing amount_fen"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, text, needle):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, text)
    [line] = problems_of(exc)
    assert needle in line


def test_mistyped_secret_is_not_echoed(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, "[wechat]\napi_key = 31415926535897932384\n")
    assert "'wechat.api_key'" in exc.value.message
    assert "31415926535897932384" not in exc.value.message


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nmax_body_bytes = 10\n", "server.max_body_bytes"),
        ("[server]\nmax_body_bytes = 200000000\n", "server.max_body_bytes"),  # held in memory whole
        ("[server]\nwrite_timeout_s = 0\n", "server.write_timeout_s"),
        ("[oauth]\nsign_ins_per_ip = -1\n", "oauth.sign_ins_per_ip"),
        ("[oauth]\nsign_ins_per_ip_window_s = 0\n", "oauth.sign_ins_per_ip_window_s"),
        ("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "'10.0.0.0/33'"),
        ("[server]\npublic_url = \"pay.example.com\"\n", "server.public_url"),
        ("[wechat]\npay_base = \"ftp://x\"\n", "wechat.pay_base"),
        ("[webhooks]\nurl = \"not a url\"\n", "webhooks.url"),
        ("[checkout]\ndefault_expiry_minutes = 2\n", "checkout"),
        ("[checkout]\nmin_expiry_minutes = 0\n", "checkout.min_expiry_minutes"),
        ("[reconciler]\ninterval_s = 0\n", "reconciler.interval_s"),
        ("[reconciler]\nclose_grace_s = -1\n", "reconciler.close_grace_s"),
        ("[tokens]\nrefresh_ahead_s = 7200\n", "tokens.refresh_ahead_s"),
        ("[simulator]\nnotify_time_scale = 0\n", "simulator.notify_time_scale"),
        ("[[shop.catalogue]]\nsku = \"a\"\nname = \"A\"\namount_fen = 0\n", "amount_fen"),
        ("[[shop.catalogue]]\nsku = \"a\"\nname = \"A\"\namount_fen = 1\n"
         "[[shop.catalogue]]\nsku = \"a\"\nname = \"B\"\namount_fen = 2\n", "'a' appears twice"),
    ],
)
def test_out_of_range_values_are_refused(tmp_path, text, needle):
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, text)
    [line] = problems_of(exc)
    assert needle in line


def test_all_problems_are_reported_at_once(tmp_path):
    text = "[server]\nprot = 1\nport = \"x\"\n[wechat]\nsign_type = \"SHA1\"\n"
    with pytest.raises(SettingsError) as exc:
        load(tmp_path, text, env={"WXPAY_SERVER_DEBUG": "perhaps"})
    assert len(problems_of(exc)) == 4
    assert exc.value.message.count("\n- ") == 4


def test_settings_are_frozen(tmp_path):
    s = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.server.port = 1  # type: ignore[misc]


# --- live mode ---------------------------------------------------------------------


def test_complete_live_config_passes(live_file):
    s = load_settings(live_file, env={})
    assert s.is_live and s.wechat.has_credentials
    assert validate_live(s, PUBLIC) == []
    assert s.check(PUBLIC) is s


def test_empty_live_config_lists_each_missing_item(tmp_path):
    s = load(tmp_path, env={"WXPAY_MODE": "live"})
    with pytest.raises(SettingsError) as exc:
        s.check(PUBLIC)
    assert exc.value.code == "unsafe_live_settings"
    lines = problems_of(exc)
    for name in ("wechat.appid", "wechat.app_secret", "wechat.mch_id", "wechat.api_key",
                 "server.cookie_secret", "server.public_url", "admin.password",
                 "merchant_api.tokens", "wechat.cert_path", "shop.name"):
        assert sum(line.startswith(name) for line in lines) == 1, name
    assert len(lines) == 10


LIVE_PROBLEMS = [
    ({"wechat.appid": ""}, "wechat.appid (WXPAY_WECHAT_APPID) is not set"),
    ({"wechat.appid": "gh_123"}, "does not look like an AppID"),
    ({"wechat.app_secret": ""}, "wechat.app_secret (WXPAY_WECHAT_APP_SECRET) is not set"),
    ({"wechat.mch_id": ""}, "wechat.mch_id (WXPAY_WECHAT_MCH_ID) is not set"),
    ({"wechat.mch_id": "12ab"}, "digits only"),
    ({"wechat.api_key": ""}, "wechat.api_key (WXPAY_WECHAT_API_KEY) is not set"),
    ({"wechat.api_key": API_KEY[:31]}, "exactly 32"),
    ({"wechat.api_key": API_KEY[:31] + "-"}, "exactly 32"),
    ({"wechat.mini_program_secret": ""}, "must be set together"),
    ({"wechat.app_appid": "app"}, "wechat.app_appid"),
    ({"server.cookie_secret": ""}, "server.cookie_secret (WXPAY_SERVER_COOKIE_SECRET) is not set"),
    ({"server.cookie_secret": "change-me-change-me-change-me-change-me"}, "placeholder"),
    ({"server.cookie_secret": "short-but-random-Zx9"}, "shorter than 32"),
    ({"server.cookie_secret": "ab" * 20}, "too few distinct"),
    ({"server.xsrf_cookies": False}, "server.xsrf_cookies"),
    ({"server.debug": True}, "server.debug"),
    ({"server.trusted_proxies": ["0.0.0.0/0"]}, "forge X-Forwarded-For"),
    ({"server.public_url": ""}, "server.public_url (WXPAY_SERVER_PUBLIC_URL) is not set"),
    ({"server.public_url": "http://pay.tea-merchant.cn"}, "must start with https://"),
    ({"server.public_url": "https://localhost:8443"}, "localhost"),
    ({"server.public_url": "https://192.168.1.20"}, "private or loopback"),
    ({"admin.password": ""}, "admin.password (WXPAY_ADMIN_PASSWORD) is not set"),
    ({"admin.password": SANDBOX_ADMIN_PASSWORD}, "sandbox password"),
    ({"admin.password": "Short-pw1"}, "shorter than 12"),
    ({"merchant_api.tokens": []}, "merchant_api.tokens (WXPAY_MERCHANT_API_TOKENS) is empty"),
    ({"merchant_api.tokens": [SANDBOX_MERCHANT_TOKEN]}, "sandbox token"),
    ({"merchant_api.tokens": [MERCHANT_TOKEN, "tiny-token"]}, "merchant_api.tokens #2 is shorter"),
    ({"wechat.cert_path": "", "wechat.key_path": ""}, "refunds need the merchant API certificate"),
    ({"wechat.key_path": ""}, "wechat.key_path (WXPAY_WECHAT_KEY_PATH) is not set"),
    ({"wechat.cert_path": "/nonexistent/apiclient_cert.pem"}, "file not found"),
    ({"wechat.key_path": "/"}, "is not a regular file"),  # a directory: root can read chmod 000 files
    ({"wechat.cert_path": __file__}, "is not a PEM file"),
    ({"wechat.pay_base": "http://127.0.0.1:9000"}, "wechat.pay_base (WXPAY_WECHAT_PAY_BASE) must be https"),
    ({"wechat.open_base": "http://open.test"}, "wechat.open_base"),
    ({"wechat.api_base": "http://api.test"}, "wechat.api_base"),
    ({"wechat.notify_url": "http://pay.tea-merchant.cn/notify"}, "wechat.notify_url"),
    ({"wechat.notify_url": "https://pay.tea-merchant.cn/notify?shop=1"}, "query string"),
    ({"webhooks.url": "http://shop.tea-merchant.cn/hooks"}, "webhooks.url"),
    ({"webhooks.secret": ""}, "webhooks.secret (WXPAY_WEBHOOKS_SECRET) is not set"),
    ({"webhooks.secret": "short-hook-secret"}, "webhooks.secret (WXPAY_WEBHOOKS_SECRET) is shorter"),
    ({"simulator.notify_time_scale": 0.01}, "only apply in sandbox mode"),
]


@pytest.mark.parametrize("change, needle", LIVE_PROBLEMS, ids=[n for _, n in LIVE_PROBLEMS])
def test_each_live_problem_gets_its_own_line(live_file, change, needle):
    s = load_settings(live_file, env={}, overrides=change)
    lines = validate_live(s, PUBLIC)
    assert len(lines) == 1, lines
    assert needle in lines[0]
    with pytest.raises(SettingsError) as exc:
        s.check(PUBLIC)
    assert exc.value.problems == lines


def test_live_problems_do_not_echo_secrets(live_file):
    s = load_settings(live_file, env={}, overrides={
        "wechat.api_key": "x" * 31, "admin.password": "tiny", "server.cookie_secret": "c0okie",
    })
    message = "\n".join(validate_live(s, PUBLIC))
    for secret in ("x" * 31, "tiny", "c0okie"):
        assert secret not in message


def test_live_problems_reported_together(live_file):
    s = load_settings(live_file, env={}, overrides={"wechat.api_key": "", "server.debug": True,
                                                     "admin.password": ""})
    assert len(validate_live(s, PUBLIC)) == 3


def test_sandbox_skips_live_checks(tmp_path):
    s = load(tmp_path, "[server]\ndebug = true\npublic_url = \"http://127.0.0.1:8000\"\n")
    assert validate_live(s) == []
    s.check()  # sandbox: nothing to refuse, with or without the list


# --- redaction -------------------------------------------------------------------------


SECRETS = (API_KEY, APP_SECRET, COOKIE_SECRET, ADMIN_PASSWORD, MERCHANT_TOKEN,
           WEBHOOK_SECRET, MINI_SECRET, MONGO_PASSWORD)


def test_redaction_hides_every_secret(live_file):
    s = load_settings(live_file, env={})
    view = redacted(s)
    texts = {"redacted": str(view), "repr": repr(s), "str": str(s),
             "explain": "\n".join(explain(s)), "sections": repr(s.wechat) + repr(s.store)}
    for label, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, (label, secret)
    assert view["wechat"]["api_key"] == "***"
    assert view["merchant_api"]["tokens"] == ["***"]
    assert view["store"]["mongodb_uri"] == (
        "mongodb://wxpay:***@db1.example.com:27017,db2.example.com/?replicaSet=rs0")
    # What is not secret stays visible: that is the point of a status view.
    assert view["wechat"]["appid"] == "wx1234567890abcdef"
    assert view["server"]["public_url"] == "https://pay.tea-merchant.cn"


def test_redaction_of_generated_sandbox_secret(tmp_path):
    s = load(tmp_path)
    assert s.server.cookie_secret not in repr(s)
    assert s.server.cookie_secret not in str(redacted(s))
    assert redacted(s)["admin"]["password"] == "***"


def test_redaction_leaves_unset_secrets_visible_as_unset(tmp_path):
    view = redacted(load(tmp_path))
    assert view["wechat"]["api_key"] is None
    assert view["webhooks"]["secret"] is None


def test_uri_without_password_is_kept(tmp_path):
    s = load(tmp_path, env={"MONGODB_URI": "mongodb://db.test:27017/wxpay"})
    assert redacted(s)["store"]["mongodb_uri"] == "mongodb://db.test:27017/wxpay"


def test_explain_names_the_source_of_each_value(tmp_path):
    s = load(tmp_path, "[server]\nport = 9000\n", env={"WXPAY_SERVER_HOST": "0.0.0.0"})
    lines = {line.split(" = ")[0]: line for line in explain(s)}
    assert len(lines) == len(iter_keys())
    assert "(file " in lines["server.port"]
    assert "(env WXPAY_SERVER_HOST)" in lines["server.host"]
    assert "(default)" in lines["store.sqlite_path"]
