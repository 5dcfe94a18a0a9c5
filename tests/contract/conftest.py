"""The store fixture every contract test runs against: one parameter per store implementation.

``milvus-server`` is a real Milvus standalone server (the session fixture ``milvus_server``, tests/conftest.py),
each test in a collection of its own. A new store joins by adding its name to STORES and a branch in ``store_uri``.
"""

from __future__ import annotations

import uuid

import pytest

#: milvus-server is slow (collection creation and loading take seconds on a server): CI runs it with -m slow
STORES = ["local", "milvus-lite", pytest.param("milvus-server", marks=pytest.mark.slow)]


@pytest.fixture(params=STORES)
def store_uri(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "collection")
    if request.param == "milvus-lite":
        pytest.importorskip("pymilvus")
        pytest.importorskip("milvus_lite")
        return f"milvus-lite:{tmp_path / 'x.db'}"
    if request.param == "milvus-server":
        address = request.getfixturevalue("milvus_server")
        return f"milvus://{address}/t{uuid.uuid4().hex[:12]}"
    raise AssertionError(f"no fixture for store {request.param}")
