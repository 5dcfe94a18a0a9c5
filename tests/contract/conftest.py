"""The store fixture every contract test runs against: one parameter per store implementation.

A new store (Milvus, ...) joins by adding its name to STORES and a branch in ``store_uri``.
"""

from __future__ import annotations

import pytest

STORES = ["local"]


@pytest.fixture(params=STORES)
def store_uri(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "collection")
    raise AssertionError(f"no fixture for store {request.param}")
