"""Incremental indexing under hostile conditions: filters, vanished folders, files edited mid-run, lost manifests,
moves between folders (the indexer items of the hardening issue)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from xsearch.core.types import Query
from xsearch.engine import Engine


def _png(path: Path, colour=(200, 30, 30), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def _folder(root: Path, n: int = 6) -> Path:
    for i in range(n):
        _png(root / f"img{i}.png", colour=(40 * i, 200 - 30 * i, 90))
        (root / f"note{i}.txt").write_text(f"note number {i} about colour {i}\n")
    return root


def _index(cli, folder, col, *extra):
    r = cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0", "--json", *extra)
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_include_exclude_hidden_do_not_prune_what_they_left_out(cli, tmp_path):
    root = _folder(tmp_path / "m")
    _png(root / ".hidden" / "h.png")
    col = tmp_path / "col"
    first = _index(cli, root, col, "--hidden")
    assert first["added"] == 13
    assert _index(cli, root, col, "--include", "*.png")["removed"] == 0
    assert _index(cli, root, col, "--exclude", "*.txt")["removed"] == 0
    assert _index(cli, root, col)["removed"] == 0  # without --hidden, .hidden/h.png is out of scope, not gone
    (root / "img0.png").unlink()
    rep = _index(cli, root, col, "--include", "*.png")  # in scope and really gone: pruned
    assert rep["removed"] == 1
    counts = json.loads(cli("info", "-c", col, "--json").out)["collection"]["modalities"]
    assert counts["text"]["files"] == 6 and counts["image"]["files"] == 6


def test_emptied_folder_is_not_pruned_without_prune_all(cli, tmp_path):
    root = _folder(tmp_path / "m")
    col = tmp_path / "col"
    _index(cli, root, col)
    away = tmp_path / "away"
    shutil.move(str(root), str(away))
    root.mkdir()  # an empty mount point
    r = cli("index", root, "-c", col, "--model", "builtin", "--workers", "0")
    assert r.code == 0 and "not removing 12 of the 12 indexed files" in r.err
    rep = _index(cli, root, col)
    assert rep["removed"] == 0 and rep["prune_refused"] == 12
    assert cli("search", "red", "-c", col, "--json").code == 0
    rep = _index(cli, root, col, "--prune-all")
    assert rep["removed"] == 12


def test_pruning_a_few_files_needs_no_flag(cli, tmp_path):
    root = _folder(tmp_path / "m")
    col = tmp_path / "col"
    _index(cli, root, col)
    for i in range(3):
        (root / f"note{i}.txt").unlink()
    assert _index(cli, root, col)["removed"] == 3


def test_file_rewritten_while_embedding_is_embedded_again(tmp_path, monkeypatch):
    """Same size, new content, saved while the model ran: the catalog must not pair the new bytes with the old
    vectors (the next run re-embeds it)."""
    import xsearch.engine.executors.local as executors

    root = tmp_path / "m"
    target = root / "a.txt"
    root.mkdir()
    target.write_text("red circles everywhere\n")
    (root / "b.txt").write_text("blue squares on the left\n")
    real = executors.embed_decoded

    def embed_then_edit(encoder, segments, report_skip):
        out = real(encoder, segments, report_skip)
        if any(s.file.path == target for s in segments):
            target.write_text("GREEN stars everywhere\n")  # same length, different bytes
            st = os.stat(target)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        return out

    monkeypatch.setattr(executors, "embed_decoded", embed_then_edit)
    eng = Engine(tmp_path / "col", model="builtin")
    first = eng.index_folder(root, workers=0)
    assert first.added == 2 and any("changed while it was being indexed" in n for n in first.notes)
    monkeypatch.setattr(executors, "embed_decoded", real)
    second = eng.index_folder(root, workers=0)
    assert second.updated == 1 and second.unchanged == 1
    third = eng.index_folder(root, workers=0)
    assert third.unchanged == 2 and third.embedded == 0
    want = eng.encoder().embed("text", ["GREEN stars everywhere"])[0]
    stored = eng.store().file_vectors(eng.store().file(str(target)).id)
    assert float(stored.mean(0) @ want / np.linalg.norm(stored.mean(0))) > 0.999


def test_lost_manifest_and_another_model_never_mix_vectors(cli, tmp_path):
    from xsearch.encoders.builtin import BuiltinModel, save_checkpoint

    root = _folder(tmp_path / "m", n=3)
    col = tmp_path / "col"
    _index(cli, root, col)
    (col / "manifest.json").unlink()
    other = save_checkpoint(BuiltinModel(), tmp_path / "other-ckpt")
    r = cli("index", root, "-c", col, "--model", f"builtin:{other}", "--workers", "0", "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    assert rep["unchanged"] == 0 and rep["added"] + rep["updated"] == 6
    from xsearch.index import open_store

    with open_store(str(col)) as s:
        assert {f.model_id for f in s.files()} == {s.model_id} and s.model_spec == f"builtin:{other}"
        assert {m: c["items"] for m, c in s.counts().items()} == {"image": 3, "text": 3}  # no stale vectors left


def test_move_between_folders_keeps_vectors(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _png(a / "red.png", colour=(250, 0, 0))
    _png(a / "green.png", colour=(0, 250, 0))
    _png(b / "blue.png", colour=(0, 0, 250))
    eng = Engine(tmp_path / "col", model="builtin")
    eng.index_folder(a, workers=0)
    eng.index_folder(b, workers=0)
    before = eng.store().file_vectors(eng.store().file(str(a / "red.png")).id)
    shutil.move(str(a / "red.png"), str(b / "red.png"))
    rep_b = eng.index_folder(b, workers=0)
    assert rep_b.renamed == 1 and rep_b.added == 0 and rep_b.embedded == 0
    rep_a = eng.index_folder(a, workers=0)
    assert rep_a.removed == 0 and rep_a.unchanged == 1
    after = eng.store().file_vectors(eng.store().file(str(b / "red.png")).id)
    np.testing.assert_array_equal(before, after)


def test_long_text_cut_is_reported(tmp_path, monkeypatch):
    import dataclasses

    import xsearch.engine.indexer as indexer

    root = tmp_path / "m"
    root.mkdir()
    (root / "long.txt").write_text("word " * 5000)
    real = indexer.decode_options
    monkeypatch.setattr(indexer, "decode_options", lambda enc: dataclasses.replace(real(enc), max_text_chars=1000))
    rep = Engine(tmp_path / "col", model="builtin").index_folder(root, workers=0)
    assert rep.added == 1 and any("only the first 1,000 were indexed" in n for n in rep.notes), rep.notes


def test_engine_session_follows_a_writer_and_serves_threads(tmp_path):
    """One long-lived Engine: searches from several threads, and a commit by another Engine (writer) shows up
    in the next search without reopening."""
    import threading

    root = _folder(tmp_path / "m", n=3)
    col = tmp_path / "col"
    writer = Engine(col, model="builtin")
    writer.index_folder(root, workers=0)
    reader = Engine(col)
    assert len(reader.search([Query("text", "red")], to="image")["image"]) == 3
    errors = []

    def loop():
        try:
            for _ in range(10):
                assert reader.search([Query("text", "note")], to="text")["text"]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    _png(root / "new.png", colour=(10, 10, 10))
    writer.index_folder(root, workers=0)
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(reader.search([Query("text", "red")], to="image")["image"]) == 4
    store = reader.store()
    assert reader.store() is store  # the same session: nothing was reopened
