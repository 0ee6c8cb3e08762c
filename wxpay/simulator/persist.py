"""--state FILE: the simulator's memory survives a restart.

The whole state is one JSON document, snapshotted on the event loop (so it
is consistent) and written in a worker thread (so the loop never waits on
the disk) to a temporary file that then replaces the old one atomically.
Writes follow changes after a short debounce, run periodically as a safety
net, and once more at shutdown.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.2
PERIOD_SECONDS = 5.0


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class StateFile:
    def __init__(self, path: Path, sim: Any) -> None:
        self.path = path
        self.sim = sim
        self.dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._periodic: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None

    def load(self) -> bool:
        if not self.path.exists():
            return False
        data = json.loads(self.path.read_text(encoding="utf-8"))
        self.sim.load_json(data)
        return True

    def mark_dirty(self) -> None:
        self.dirty = True
        if self._periodic is None or self._timer is not None:
            return  # not started (tests, start-up) or a write is already scheduled
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(DEBOUNCE_SECONDS, lambda: asyncio.ensure_future(self.save()))

    def start(self) -> None:
        self._lock = asyncio.Lock()
        self._periodic = asyncio.ensure_future(self._every())

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(PERIOD_SECONDS)
            if self.dirty:
                await self.save()

    async def save(self) -> None:
        self._timer = None
        lock = self._lock or asyncio.Lock()
        async with lock:
            self.dirty = False
            text = json.dumps(self.sim.to_json(), ensure_ascii=False, sort_keys=True)
            try:
                await asyncio.get_running_loop().run_in_executor(None, write_atomically, self.path, text)
            except OSError as exc:
                self.dirty = True
                log.error("simulator state not saved to %s: %s", self.path, exc)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._periodic is not None:
            self._periodic.cancel()
            try:
                await self._periodic
            except asyncio.CancelledError:
                pass
            self._periodic = None
        await self.save()
