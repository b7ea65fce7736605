"""Fixtures for the API client tests: the loopback fake server (see tests/servers)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.servers.helpers import fake_server, server  # noqa: E402,F401  (pytest fixtures)
