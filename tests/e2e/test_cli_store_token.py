"""The store credential on the command line: `--store-token` / $XSEARCH_STORE_TOKEN on every command that opens a
store, the old `--milvus-token` / $XSEARCH_MILVUS_TOKEN still accepted (and hidden from --help), and the value
reaching the Milvus client. A fake MilvusClient records the token and answers "cannot connect", so no server is
needed; the store's hint for that error ("check that Milvus runs there") is what the CLI shows."""

from __future__ import annotations

import json

import pytest

STORE_COMMANDS = ("index", "remove", "search", "similar", "duplicates", "info", "copy", "tag", "serve")
SERVER = "milvus://127.0.0.1:9/photos"


@pytest.fixture
def tokens(monkeypatch):
    """The tokens the Milvus client was created with; both variables start empty (and are restored after)."""
    pymilvus = pytest.importorskip("pymilvus")
    seen: list[str] = []

    def client(uri, token="", **kwargs):
        seen.append(token)
        raise ConnectionError(f"Fail connecting to server on {uri}, illegal connection params or server unavailable")

    monkeypatch.setattr(pymilvus, "MilvusClient", client)
    for name in ("XSEARCH_STORE_TOKEN", "XSEARCH_MILVUS_TOKEN"):
        monkeypatch.setenv(name, "")  # recorded, so a value the CLI sets is undone after the test
    return seen


@pytest.mark.parametrize("args, env, expected", [
    (["--store-token", "user:new"], {}, "user:new"),
    (["--milvus-token", "user:old"], {}, "user:old"),
    (["--milvus-token=user:old"], {}, "user:old"),
    ([], {"XSEARCH_STORE_TOKEN": "user:new"}, "user:new"),
    ([], {"XSEARCH_MILVUS_TOKEN": "user:old"}, "user:old"),
    ([], {"XSEARCH_STORE_TOKEN": "user:new", "XSEARCH_MILVUS_TOKEN": "user:old"}, "user:new"),
    (["--store-token", "user:flag"], {"XSEARCH_STORE_TOKEN": "user:env"}, "user:flag"),
    (["--milvus-token", "user:flag"], {"XSEARCH_STORE_TOKEN": "user:env"}, "user:flag"),
    ([], {}, ""),
], ids=["flag", "old-flag", "old-flag=", "env", "old-env", "env-over-old-env", "flag-over-env", "old-flag-over-env",
        "none"])
def test_the_token_reaches_the_milvus_client(cli, tokens, monkeypatch, args, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    r = cli("info", "-c", SERVER, *args, "--json")
    assert r.code == 1 and json.loads(r.out)["error"]["code"] == "store.unreachable", r.out
    assert tokens and set(tokens) == {expected}


def test_the_store_names_its_own_way_out(cli, tokens):
    """store.unreachable's advice comes from the store (its hint), not from the CLI's table of codes."""
    r = cli("search", "x", "-c", SERVER, "--store-token", "user:secret", "--json")
    error = json.loads(r.out)["error"]
    assert r.code == 1 and error["code"] == "store.unreachable"
    assert error["hint"] == "check that Milvus runs there"
    assert r.err.strip().endswith("; check that Milvus runs there.") and r.err.count("\n") == 1, r.err
    assert "user:secret" not in r.out + r.err


def test_refused_credentials_name_the_generic_option(cli, monkeypatch, tokens):
    import pymilvus

    def client(uri, token="", **kwargs):
        raise PermissionError("auth check failure, please check username and password are correct")

    monkeypatch.setattr(pymilvus, "MilvusClient", client)
    r = cli("info", "-c", SERVER, "--store-token", "user:wrong")
    assert r.code == 1
    assert r.err.strip().endswith("; pass the right token with --store-token or XSEARCH_STORE_TOKEN."), r.err


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_help_shows_the_generic_option_only(cli, command):
    r = cli(command, "--help")
    assert r.code == 0
    assert "--store-token" in r.out and "XSEARCH_STORE_TOKEN" in r.out
    assert "milvus-token" not in r.out and "XSEARCH_MILVUS_TOKEN" not in r.out


def test_a_command_without_a_store_refuses_the_option(cli):
    r = cli("models", "--store-token", "x")
    assert r.code == 2 and "No such option" in r.err
