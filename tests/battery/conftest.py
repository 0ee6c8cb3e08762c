"""Every battery test runs with the whole logging tree captured at DEBUG
(Tornado's access log included) into ``logwatch``, for the secrets check."""
from __future__ import annotations

import logging
from typing import Iterator

import pytest

from . import logwatch


@pytest.fixture(autouse=True)
def capture_logs() -> Iterator[None]:
    root = logging.getLogger()
    handler = logwatch.Collector(level=logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
