"""deploy/wxpay-server.service and deploy/nginx-site.conf agree with the server they serve,
and docs/deploy.md shows them as they are.

The numbers come from where the server keeps them (the settings' defaults, the
listener's reserve of descriptors, the stop sequence's grace, the body
limit's own message), so a change there that the deployment files do not
follow fails here. The unit is checked by systemd-analyze (Debian's systemd),
its syntax and its exposure score.
"""
from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import server
from config.settings import ServerSettings
from edge.connection_cap import RESERVED_FDS
from handlers.body_limit import too_large_message
from wxpay.retry import RetryPolicy
from wxpay.transport import DEFAULT_REQUEST_TIMEOUT

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "wxpay-server.service"
SITE = ROOT / "deploy" / "nginx-site.conf"
DOC = ROOT / "docs" / "deploy.md"
DEFAULTS = ServerSettings()


def unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def one(key: str) -> str:
    [value] = unit()[key]
    return value


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    assert m, value
    return int(m[1]) * (60 if m[2] == "min" else 1)


def site(directive: str, block: str | None = None) -> list[str]:
    """The values of ``directive`` in the site (inside ``upstream``/``server`` ``block`` when given)."""
    text = SITE.read_text()
    if block is not None:
        text = re.search(r"\n" + re.escape(block) + r" \{(.*?)\n\}", text, re.S)[1]
    return re.findall(r"^\s*" + re.escape(directive) + r"\s+([^;#]+);", text, re.M)


def nginx_size(value: str) -> int:
    m = re.fullmatch(r"(\d+)([km]?)", value.strip())
    return int(m[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[m[2]]


def test_the_unit_runs_the_binary_as_a_dedicated_user_stopped_by_sigterm():
    assert one("ExecStart").split()[0] == "/usr/local/bin/wxpay-server" and "--config" in one("ExecStart")
    assert one("User") not in ("root", "0") and one("EnvironmentFile").startswith("/etc/wxpay-server/")
    assert one("Restart") == "on-failure" and one("KillSignal") == "SIGTERM"
    # Running.stop: in-flight requests (grace), closing connections (2 s), background passes (up to 5 s).
    grace = inspect.signature(server.Running.stop).parameters["grace"].default
    assert seconds(one("TimeoutStopSec")) > grace + 2 + 5
    assert int(one("LimitNOFILE")) >= DEFAULTS.max_connections + RESERVED_FDS
    state = "/var/lib/" + one("StateDirectory")
    assert one("WorkingDirectory") == state and state in one("ReadWritePaths").split()
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "yes"}.items():
        assert one(key) == value, key


needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing: as root, `make test` installs it (.ci/ensure-deploy-tools); "
    "by hand: apt-get install systemd",
)


@needs_systemd
def test_systemd_accepts_the_units_without_a_warning(tmp_path):
    for name in ("wxpay-server.service", "wxpay-server-backup.service", "wxpay-server-backup.timer"):
        text = (ROOT / "deploy" / name).read_text()  # the programs' paths are the one thing changed
        text = text.replace("/usr/local/bin/wxpay-server-backup", str(ROOT / "deploy" / "wxpay-server-backup"))
        (tmp_path / name).write_text(text.replace("/usr/local/bin/wxpay-server", shutil.which("true")))
    units = [str(tmp_path / n) for n in ("wxpay-server.service", "wxpay-server-backup.timer")]
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    copy = tmp_path / "wxpay-server.service"
    score = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)],
                           capture_output=True, text=True, timeout=60)
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", score.stdout)[1])
    assert exposure <= 2.0, score.stdout  # 0 = fully locked down, 10 = none; "OK" below 2.5


def test_the_nginx_site_agrees_with_the_servers_limits():
    assert [nginx_size(v) for v in site("client_max_body_size")] == [DEFAULTS.max_body_bytes]
    assert nginx_size(site("client_body_buffer_size")[0]) >= DEFAULTS.max_body_bytes  # bodies never on disk
    # nginx closes idle upstream connections before the server would (a race otherwise: a
    # request sent on a connection the server is closing fails).
    assert seconds(site("keepalive_timeout", "upstream wxpay_server")[0]) < DEFAULTS.idle_timeout_s
    assert site("server", "upstream wxpay_server") == [f"127.0.0.1:{DEFAULTS.port}"]
    assert seconds(site("proxy_read_timeout")[0]) > RetryPolicy().max_attempts * DEFAULT_REQUEST_TIMEOUT
    assert site("proxy_set_header X-Forwarded-For") == ["$remote_addr"]
    assert site("proxy_next_upstream") == ["off"]
    # nginx's 413 says what the server's says.
    [answer] = re.findall(r"return 413 '(.*)\\n';", SITE.read_text())
    assert answer == '{"code": "body_too_large", "message": "%s"}' % too_large_message(DEFAULTS.max_body_bytes)


def fenced(after: str) -> str:
    """The fenced block that follows the line ``after`` in docs/deploy.md."""
    text = DOC.read_text()
    m = re.search(re.escape(after) + r"\n+```\w*\n(.*?)```\n", text, re.S)
    assert m, f"docs/deploy.md has no code block after {after!r}"
    return m[1]


@pytest.mark.parametrize("name", ["wxpay-server.service", "nginx-site.conf", "wxpay-server-backup.service",
                                  "wxpay-server-backup.timer"])
def test_docs_show_the_files_as_they_are(name):
    assert fenced(f"<!-- deploy/{name} -->") == (ROOT / "deploy" / name).read_text()
