"""Session fixtures for the real systems tests talk to (all on loopback, started here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testbed.registry import Registry, start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real distribution registry on 127.0.0.1 with deletes enabled (fresh per test session)."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()
