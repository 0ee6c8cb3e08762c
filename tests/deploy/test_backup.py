"""deploy/wxpay-server-backup: online backups of the SQLite store while a real server writes to it."""
from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.server.browser import Browser, as_json
from tests.server.conftest import start_server

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the backup needs Debian's sqlite3 shell: as root, "
                       "`make test` installs it (.ci/ensure-deploy-tools); by hand: apt-get install sqlite3"),
]

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "wxpay-server-backup"


async def backup(db: Path, folder: Path) -> Path:
    proc = await asyncio.create_subprocess_exec(str(SCRIPT), str(db), str(folder), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return Path(out.decode().strip())


def checkouts_in(copy: Path) -> list[str]:
    """The checkout ids of a backup, each with a whole document."""
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT _id, doc FROM checkouts").fetchall()
    finally:
        conn.close()
    for _, doc in rows:
        assert json.loads(doc)["amount_fen"] == 100
    return [checkout_id for checkout_id, _ in rows]


async def test_backups_taken_while_the_server_writes_are_whole_snapshots(tmp_path):
    running = await start_server(tmp_path)
    db = tmp_path / "wxpay.sqlite3"
    folder = tmp_path / "backups"
    folder.mkdir()
    merchant = Browser(f"http://127.0.0.1:{running.port}")
    created: list[str] = []
    writing = True

    async def write() -> None:
        while writing and len(created) < 3000:  # bounded
            r = await merchant.post("/api/checkouts", json_body={"amount_fen": 100, "description": "tea"},
                                    headers={"Authorization": "Bearer sandbox-merchant-token"})
            assert r.code == 201, r.body
            created.append(as_json(r)["id"])

    try:
        writer = asyncio.ensure_future(write())
        copies = []
        for _ in range(3):
            while len(created) < 20 * (len(copies) + 1):  # some writes between two backups
                await asyncio.sleep(0.01)
            copies.append(await backup(db, folder))
        writing = False
        await writer
        copies.append(await backup(db, folder))  # the server idle, not stopped
    finally:
        writing = False
        await running.stop(grace=2)

    assert len(set(copies)) == 4 and sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in copies)
    counts = []
    for copy in copies:
        ids = checkouts_in(copy)
        assert set(ids) <= set(created)
        counts.append(len(ids))
    assert counts == sorted(counts) and counts[0] >= 20  # each a later snapshot than the last
    assert counts[-1] == len(created)  # nothing committed is missing, though most of it sat in the WAL


async def test_a_backup_that_cannot_be_made_leaves_nothing_behind(tmp_path):
    (tmp_path / "backups").mkdir()
    (tmp_path / "not-a-db.sqlite3").write_bytes(b"this is not SQLite" * 100)
    proc = await asyncio.create_subprocess_exec(str(SCRIPT), str(tmp_path / "not-a-db.sqlite3"),
                                                str(tmp_path / "backups"), stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode != 0 and err
    assert list((tmp_path / "backups").iterdir()) == []
