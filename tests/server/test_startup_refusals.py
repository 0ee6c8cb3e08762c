"""`python server.py` (and `server.py bills`) as real processes, refusing to
start over a busy port, an SQLite file it cannot have, or a MongoDB it
cannot reach or whose URI does not parse: exit 2 and exactly one line on
stderr that names the setting and what to do, never a traceback, never a
password. And when it does start: the store's location in the banner and
in /healthz.

Each runs in its own empty folder with no WXPAY_* variable, so the
defaults (data/wxpay.sqlite3 under the working directory) are the ones a
merchant meets. The MongoDB cases need no MongoDB: a closed port on
127.0.0.1 with serverSelectionTimeoutMS=500 in the URI bounds the wait.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.wxpay import wire_faults as wf

from .processes import ROOT, free_port, stop, wait_http

PASSWORD = "S3cretPassw0rdNeverShown"


def run(args: list[str], cwd: Path, **env: str) -> tuple[int, str, str]:
    import subprocess

    base = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "server.py"), *args], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def one_line(code: int, out: str, err: str) -> str:
    """The refusal's only line (and nothing else anywhere)."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert out == "", out
    return lines[0]


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this user cannot create files in: as root, permissions do not
    stop us, but /proc takes no files from anyone."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# -- the listener ----------------------------------------------------------------


def test_a_busy_port(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        line = one_line(*run(["--port", str(port)], tmp_path))
    finally:
        holder.close()
    assert line == (f"wxpay-server: cannot start: port {port} on 127.0.0.1 is already in use (server.port, "
                    "WXPAY_SERVER_PORT or --port): stop the other process or choose another port")


def test_an_address_that_is_not_this_machines(tmp_path):
    line = one_line(*run(["--port", "0", "--host", "192.0.2.1"], tmp_path))
    assert "192.0.2.1 is not an address of this machine (server.host" in line


# -- SQLite ------------------------------------------------------------------------


def sqlite_refusal(tmp_path: Path, path: Path) -> str:
    line = one_line(*run(["--port", "0"], tmp_path, WXPAY_STORE_SQLITE_PATH=str(path)))
    assert line.startswith("wxpay-server: cannot start: the store (store.sqlite_path (WXPAY_STORE_SQLITE_PATH)): ")
    return line


def test_sqlite_in_a_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "plain-file").write_text("x")
    line = sqlite_refusal(tmp_path, tmp_path / "plain-file" / "data" / "wxpay.sqlite3")
    assert f"cannot create the folder {tmp_path}/plain-file/data" in line and f"{tmp_path}/plain-file is a file" in line


def test_sqlite_in_a_folder_this_user_cannot_write(tmp_path):
    folder = unwritable_folder(tmp_path)
    line = sqlite_refusal(tmp_path, folder / "wxpay.sqlite3")
    assert f"cannot open or create {folder}/wxpay.sqlite3: can this user write to {folder}?" in line


def test_sqlite_path_that_is_a_folder(tmp_path):
    (tmp_path / "data").mkdir()
    line = sqlite_refusal(tmp_path, tmp_path / "data")
    assert f"{tmp_path}/data is a folder; name a file in it" in line


def test_sqlite_path_that_is_not_a_database(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("shopping list\n" * 500)
    line = sqlite_refusal(tmp_path, junk)
    assert f"{junk} is not an SQLite database" in line
    assert junk.read_text() == "shopping list\n" * 500  # untouched


# -- MongoDB -----------------------------------------------------------------------


def mongo_refusal(tmp_path: Path, uri: str, *args: str) -> str:
    line = one_line(*run([*args] or ["--port", "0"], tmp_path, WXPAY_STORE_MONGODB_URI=uri))
    assert "(store.mongodb_uri (WXPAY_STORE_MONGODB_URI or MONGODB_URI)): " in line
    assert PASSWORD not in line
    return line


def test_an_unreachable_mongodb_within_the_uris_selection_timeout(tmp_path):
    port = wf.closed_port()
    line = mongo_refusal(tmp_path, f"mongodb://wxpay:{PASSWORD}@127.0.0.1:{port}/?serverSelectionTimeoutMS=500")
    assert f"no MongoDB server answered at mongodb://127.0.0.1:{port}/wxpay within 0.5 s (serverSelectionTimeoutMS)" in line
    assert line.endswith("start MongoDB or make it reachable from here, or fix the setting")


@pytest.mark.parametrize("uri, says", [
    (f"mongodb://wxpay:{PASSWORD}@127.0.0.1:notaport/", "Port contains non-digit characters"),
    ("mongodb://127.0.0.1:27017/?serverSelectionTimeoutMS=soon", "serverselectiontimeoutms must be an integer"),
    ("mongodb://127.0.0.1:27017/?replicaset=rs0&retryWritez=true", "the URI's options: replicaset, retrywritez"),
    ("mongodb://", "Must provide at least one hostname"),
])
def test_a_mongodb_uri_that_does_not_parse(tmp_path, uri, says):
    line = mongo_refusal(tmp_path, uri)
    assert "not a usable MongoDB URI (" in line and says in line and line.endswith("; fix the setting")


def test_a_store_url_that_is_not_mongodb_is_a_settings_error(tmp_path):
    code, out, err = run(["--port", "0"], tmp_path, WXPAY_STORE_MONGODB_URI="postgres://db/wxpay")
    assert code == 2 and "Traceback" not in err
    assert "- store.mongodb_uri must start with mongodb:// or mongodb+srv://" in err


# -- the bills command, the same way ----------------------------------------------


def test_bills_refuses_the_same_way(tmp_path):
    (tmp_path / "plain-file").write_text("x")
    line = one_line(*run(["bills", "--date", "2026-01-01"], tmp_path))
    assert line == (f"wxpay-server bills: no store at {tmp_path}/data/wxpay.sqlite3 (store.sqlite_path "
                    "(WXPAY_STORE_SQLITE_PATH)): run bills in the server's folder or with the server's settings")
    assert not (tmp_path / "data").exists()  # it made no store of its own
    (tmp_path / "data").mkdir()
    line = one_line(*run(["bills", "--date", "2026-01-01"], tmp_path, WXPAY_STORE_SQLITE_PATH=str(tmp_path / "data")))
    assert line.startswith("wxpay-server bills: cannot run: the store (store.sqlite_path") and "is a folder" in line
    port = wf.closed_port()
    line = one_line(*run(["bills", "--date", "2026-01-01"], tmp_path,
                         WXPAY_STORE_MONGODB_URI=f"mongodb://wxpay:{PASSWORD}@127.0.0.1:{port}/?serverSelectionTimeoutMS=500"))
    assert f"no MongoDB server answered at mongodb://127.0.0.1:{port}/wxpay within 0.5 s" in line and PASSWORD not in line
    line = one_line(*run(["bills", "--date", "2026-01-01"], tmp_path, WXPAY_STORE_MONGODB_URI="mongodb://h:x/"))
    assert "not a usable MongoDB URI" in line


# -- started: where its store is ----------------------------------------------------


async def test_the_banner_and_healthz_say_where_the_store_is(tmp_path):
    import subprocess

    port = free_port()
    log = tmp_path / "server.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port)], cwd=tmp_path,
                                env=base, stdout=out, stderr=subprocess.STDOUT)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        reply = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/healthz")
    finally:
        stop(proc)
    where = str(tmp_path / "data" / "wxpay.sqlite3")
    assert f"sandbox mode, store: sqlite at {where}" in log.read_text()
    health = json.loads(reply.body)
    assert (health["ok"], health["store"], health["store_location"]) == (True, "sqlite", where)
    assert health["store_rtt_ms"] >= 0


async def test_healthz_keeps_the_location_from_other_machines(tmp_path):
    """Live mode behind a trusted proxy: a remote client sees the kind and the
    round trip; the operator on the machine (loopback) sees the location too."""
    from .live import start_live

    live = await start_live(tmp_path, **{"server.trusted_proxies": ("127.0.0.1",)})
    try:
        client = AsyncHTTPClient()
        url = f"http://127.0.0.1:{live.port}/healthz"
        remote = json.loads((await client.fetch(url, headers={"X-Forwarded-For": "203.0.113.9"})).body)
        local = json.loads((await client.fetch(url)).body)
    finally:
        await live.stop(grace=1)
    assert remote["store"] == "sqlite" and remote["ok"] and "store_location" not in remote
    assert local["store_location"] == live.services.store.location and local["store_rtt_ms"] >= 0


def test_one_line_helper_is_strict():
    with pytest.raises(AssertionError):
        one_line(2, "", "first\nsecond\n")
    with pytest.raises(AssertionError):
        one_line(2, "", "Traceback (most recent call last):\n")
