"""The store fixture every contract test runs against: one parameter per store implementation.

A new store (Milvus, ...) joins by adding its name to STORES and a branch in ``store_uri``.
"""

from __future__ import annotations

import pytest

STORES = ["local", "milvus-lite"]


@pytest.fixture(params=STORES)
def store_uri(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "collection")
    if request.param == "milvus-lite":
        pytest.importorskip("pymilvus")
        pytest.importorskip("milvus_lite")
        return f"milvus-lite:{tmp_path / 'x.db'}"
    raise AssertionError(f"no fixture for store {request.param}")
