"""A real Milvus server with authentication on (a second 2.3.5 standalone, on ports of its own): the token reaches
it from ``--store-token`` and ``$XSEARCH_STORE_TOKEN``; a missing or wrong token is one coded line that says so
(``store.auth``), not "cannot reach Milvus" — pymilvus reports both as "Fail connecting ... server unavailable".

Slow (a server start is ~45 s on 2 cores): CI runs it with ``-m slow`` after ``make milvus-venv``.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import run_subprocess
from tests.helpers.cli import one_line_error
from tests.helpers.servers import launch_milvus, milvus_venv

pytestmark = pytest.mark.slow

# Clear of the session server's ports and of those milvus-server shifts up from them when taken (19529-19533...).
PORT, ETCD_PORTS = 19650, (2391, 2392)
TOKEN = "root:Milvus"  # the user a fresh server with authentication on has


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    pytest.importorskip("pymilvus")
    binary = milvus_venv() / "bin" / "milvus-server"
    if not binary.exists():
        pytest.skip(f"no milvus-server in {milvus_venv()} (make milvus-venv)")
    taken = [p for p in (PORT, *ETCD_PORTS) if _taken(p)]
    if taken:
        pytest.skip(f"ports {taken} are taken")
    server, why = launch_milvus(binary, tmp_path_factory.mktemp("milvus-auth"), PORT, auth=True,
                                etcd_ports=ETCD_PORTS)
    if server is None:
        pytest.fail(why)
    try:
        yield server.address
    finally:
        server.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from xsearch.world import make_world

    root = tmp_path_factory.mktemp("auth-world") / "w"
    make_world(root, 4, seed=2)
    return root / "image"


def test_the_token_opens_it_from_the_flag_and_from_the_environment(auth_server, images, cli, monkeypatch):
    uri = f"milvus://{auth_server}/authed"
    r = cli("index", images, "-c", uri, "--model", "builtin", "--store-token", TOKEN)
    assert r.code == 0, r.err
    monkeypatch.setenv("XSEARCH_STORE_TOKEN", TOKEN)
    r = cli("search", "a red circle", "-c", uri, "-k", "2", "--json")
    assert r.code == 0, r.err
    hits = [h for hs in json.loads(r.out)["results"].values() for h in hs]
    assert len(hits) == 2 and all(h["path"].startswith(str(images)) for h in hits)


@pytest.mark.parametrize("token, said", [(None, "no token was given"), ("root:wrong", "the token given was refused")])
def test_a_missing_or_wrong_token_says_so(auth_server, images, monkeypatch, token, said):
    for name in ("XSEARCH_STORE_TOKEN", "XSEARCH_MILVUS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    args = ["search", "a red circle", "-c", f"milvus://{auth_server}/authed"]
    r = run_subprocess(*args, *(["--store-token", token] if token else []))  # a process of its own, like a user's
    one_line_error(r, 1, "answers but refused the connection", said, "--store-token")


def test_another_token_in_the_same_process_is_checked_again(auth_server, images, cli, monkeypatch):
    """A process (the server, a notebook) that searched with the right token and then is given a wrong one must not
    be let in on the first token's connection."""
    uri = f"milvus://{auth_server}/authed"
    monkeypatch.setenv("XSEARCH_STORE_TOKEN", TOKEN)
    assert cli("search", "a red circle", "-c", uri, "-k", "1").code == 0
    monkeypatch.setenv("XSEARCH_STORE_TOKEN", "root:wrong")
    one_line_error(cli("search", "a red circle", "-c", uri, "-k", "1"), 1, "the token given was refused")


def test_a_port_where_nothing_listens_is_still_unreachable():
    port = next(p for p in range(19590, 19600) if not _taken(p))
    r = run_subprocess("search", "a red circle", "-c", f"milvus://127.0.0.1:{port}/x", "--store-token", TOKEN)
    one_line_error(r, 1, "cannot reach Milvus")
