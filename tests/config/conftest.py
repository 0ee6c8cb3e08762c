"""The live configuration every live-mode test starts from."""
from __future__ import annotations

import pytest

from .livecfg import write_live_config, write_pem_pair


@pytest.fixture
def pem_files(tmp_path):
    return write_pem_pair(tmp_path)


@pytest.fixture
def live_file(tmp_path, pem_files):
    return write_live_config(tmp_path, *pem_files)
