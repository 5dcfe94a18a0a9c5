"""Hostile use of the CLI found in round 3 (issue #26 items 12, 13, 14, 16): invisible-only queries, folders given
where a file belongs, training that would train nothing, `serve` on a regular file. Each is one ``error: ...``
line with the documented exit code, never a traceback."""

from __future__ import annotations

import sys

import pytest

from tests.helpers.cli import one_line_error

# -- item 16: a query of invisible characters is the empty query, by Unicode properties ------------------------------

@pytest.mark.parametrize("text", ["\u3164", "\u2800\u2800", "\u115f\u1160", "\uffa0 \u200b", "\ufe0f\u180e",
                                  "\u3164\u2800 \u00a0"])
def test_a_query_of_invisible_characters_is_the_empty_query_error(cli, indexed, text):
    empty = one_line_error(cli("search", "", "-c", indexed), 2)
    assert one_line_error(cli("search", text, "-c", indexed), 2) == empty


def test_invisible_is_decided_by_unicode_properties_not_a_list():
    from xsearch.media.text import invisible, normalize_query

    fillers = [chr(c) for c in range(sys.maxunicode + 1) if invisible(chr(c))]
    assert len(fillers) > 900  # every unassigned, format, separator and default-ignorable code point
    assert normalize_query("red \u3164 car\u2800") == "red car\u2800"  # only words made of nothing but them go
    for visible in "aé字😀\u2422-":
        assert not invisible(visible)


# -- item 13: training that would train nothing ----------------------------------------------------------------------

def _train(cli, world, out, *extra):
    return cli("train", "--manifest", world / "manifest.jsonl", "-o", out, "--epochs", "1", "--batch-size", "32",
               "--threads", "2", *extra)


def test_training_with_every_tower_frozen_and_no_init_is_refused(cli, world, tmp_path):
    out = tmp_path / "ckpt"
    r = _train(cli, world, out, "--freeze", "image", "--freeze", "audio", "--freeze", "text")
    one_line_error(r, 2, "--init-from", "frozen")
    assert not (out / "model.safetensors").exists()


# -- item 14: a folder where a file belongs is named as a folder -----------------------------------------------------

def test_a_manifest_that_is_a_folder_is_named_so(cli, world, tmp_path):
    r = cli("train", "-m", world, "-o", tmp_path / "ckpt", "--epochs", "1")
    line = one_line_error(r, 1, "is a folder")
    assert "not found" not in line


def test_a_labels_file_that_is_a_folder_is_named_so(cli, indexed, tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    line = one_line_error(cli("tag", "-c", indexed, "--labels", folder), 2, "is a folder")
    assert "not found" not in line
    one_line_error(cli("tag", "-c", indexed, "--labels", tmp_path / "nope.txt"), 2, "not found")


# -- item 12: `serve -c` a regular file ------------------------------------------------------------------------------

def test_serve_on_a_regular_file_says_so_and_does_not_start(cli, tmp_path, monkeypatch):
    pytest.importorskip("uvicorn")
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: started.append(True))
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    r = cli("serve", "-c", f, "--port", "59318")
    one_line_error(r, 1, "is a file, not a folder", "-c")
    assert "no collection there yet" not in r.err and not started
    assert f.read_text() == "mine"
