"""Hostile input the hardening issue's audit found still open: `demo --n 0..4`, `eval` on a hostile manifest and an
unwritable --plot, `duplicates --modality`/`--threshold` wording, the prune guard's way out, and API misuse that
still raised raw TypeErrors."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tests.helpers.cli import one_line_error
from xsearch.core.errors import UsageError
from xsearch.core.types import Query
from xsearch.engine import Engine

# -- demo ----------------------------------------------------------------------------------------------------------


def test_demo_refuses_no_groups_and_runs_on_a_tiny_world(cli, tmp_path):
    one_line_error(cli("demo", "--dir", tmp_path / "d0", "--n", "0"), 2, "--n")
    one_line_error(cli("demo", "--dir", tmp_path / "d0", "--n", "5", "-k", "0"), 2, "-k")
    r = cli("demo", "--dir", tmp_path / "d3", "--n", "3", "--json")  # fewer files than the default -k 5
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert all(len(s["results"]) == 3 for s in json.loads(r.out)["searches"])


# -- eval on a hostile manifest -------------------------------------------------------------------------------------


@pytest.fixture
def hostile_manifest(world, tmp_path):
    """A manifest beside copies of six test records' files, plus lines that must be reported and skipped."""
    folder = tmp_path / "m"
    records = [json.loads(line) for line in (world / "manifest.jsonl").read_text().splitlines()]
    good = [r for r in records if r["split"] == "test"][:6]
    for r in good:
        for key in ("image", "audio"):
            (folder / r[key]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(world / r[key], folder / r[key])
    secret = tmp_path / "secret.wav"
    shutil.copy(world / good[0]["audio"], secret)
    (folder / "image" / "link.png").symlink_to(world / good[1]["image"])  # leads out through a link
    bad = [dict(good[0], image=5), dict(good[1], audio=str(secret)), dict(good[2], image="../secret.wav"),
           dict(good[3], image="image/link.png")]
    lines = [json.dumps(r) for r in good + bad] + ["{not json"]
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "m.jsonl"


def test_manifest_paths_that_are_not_strings_or_leave_the_folder_are_problems(hostile_manifest):
    from xsearch.pairs import load_manifest

    m = load_manifest(hostile_manifest)
    folder = hostile_manifest.parent.resolve()
    for rec in m.records:
        for p in (rec.image, rec.audio):
            assert p is None or p.resolve().is_relative_to(folder), p
    text = "\n".join(m.problems)
    assert "image is not a file path: 5" in text
    assert text.count("outside the manifest's folder") == 3 and "not JSON" in text


def test_eval_names_skipped_manifest_lines_and_reads_nothing_outside(cli, hostile_manifest):
    r = cli("eval", "-m", hostile_manifest, "--json")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert "not a file path" in r.err and "outside the manifest's folder" in r.err and "not JSON" in r.err
    assert json.loads(r.out)["directions"]


def test_eval_plot_that_cannot_be_written_fails_before_the_run(cli, hostile_manifest, tmp_path):
    one_line_error(cli("eval", "-m", hostile_manifest, "--plot", tmp_path / "no" / "such" / "r.png"), 2,
                    "does not exist")
    one_line_error(cli("eval", "-m", hostile_manifest, "--plot", tmp_path), 2, "is a folder")


# -- duplicates and index wording ------------------------------------------------------------------------------------


def test_duplicates_errors_name_the_flags_the_user_typed(cli, indexed):
    line = one_line_error(cli("duplicates", "-c", indexed, "--modality", "smell"), 2, "--modality 'smell'")
    assert "--to" not in line
    one_line_error(cli("duplicates", "-c", indexed, "--threshold", "nan"), 2, "--threshold")


def test_refused_prune_names_the_flag_that_allows_it(cli, world, tmp_path):
    folder = tmp_path / "f"
    shutil.copytree(world / "text", folder)
    col = tmp_path / "col"
    assert cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0").code == 0
    for p in folder.iterdir():
        p.unlink()
    r = cli("index", folder, "-c", col, "--workers", "0")
    assert r.code == 0 and "--prune-all" in r.err, r.err


# -- the Python API's edge -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, code", [
    (lambda e: e.search([Query("text", "red")], to=5), "usage.bad_target"),
    (lambda e: e.search([Query("text", None)]), "query.invalid"),
    (lambda e: e.search([Query("image", 7)]), "query.invalid"),
    (lambda e: e.similar(5), "query.invalid"),
    (lambda e: e.similar(None), "query.invalid"),
    (lambda e: e.duplicates("image", math.nan), "usage.bad_threshold"),
    (lambda e: e.duplicates("all"), "usage.bad_target"),
    (lambda e: e.duplicates(["image"]), "usage.bad_target"),
])
def test_more_api_misuse_is_a_coded_usage_error(indexed, call, code):
    with Engine(indexed) as eng:
        with pytest.raises(UsageError) as e:
            call(eng)
        assert e.value.code == code, e.value


def test_a_bare_query_is_one_query(indexed):
    with Engine(indexed) as eng:
        hits = eng.search(Query("text", "a red circle"), to="image", k=2)["image"]
    assert len(hits) == 2


def test_engine_value_errors_name_the_cli_flag(cli, indexed, tmp_path):
    one_line_error(cli("index", tmp_path, "-c", tmp_path / "col", "--wait", "nan"), 2,
                    "error: --wait must be a finite number")
    one_line_error(cli("tag", "-l", "red", "-c", indexed, "--top", "0"), 2, "error: --top must be at least 1")


def test_a_collection_folder_whose_name_is_not_utf8_works(cli, world, tmp_path):
    import os

    col = tmp_path / os.fsdecode(b"col\xfe")  # a name from a non-UTF-8 file system, as Python sees it
    folder = tmp_path / "t"
    shutil.copytree(world / "text", folder)
    r = cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert (col / "catalog.sqlite").is_file()
    r = cli("search", "red", "-c", col, "--to", "text", "-k", "1", "--json")
    assert r.code == 0 and len(json.loads(r.out)["results"]["text"]) == 1, r.err


# -- issue 13 leftovers: eval on undecodable files, a lost manifest, the collection inside the folder, ... -----------


@pytest.fixture
def manifest_with_broken_files(world, tmp_path):
    """Six test records copied beside a manifest; one record's image and another's audio are not decodable."""
    folder = tmp_path / "b"
    records = [json.loads(line) for line in (world / "manifest.jsonl").read_text().splitlines()]
    good = [r for r in records if r["split"] == "test"][:6]
    for r in good:
        for key in ("image", "audio"):
            (folder / r[key]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(world / r[key], folder / r[key])
    (folder / good[1]["image"]).write_bytes(b"this is no picture")
    (folder / good[4]["audio"]).write_bytes(b"RIFF\x00\x00")
    (folder / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good))
    return folder / "m.jsonl", good[1]["image"], good[4]["audio"]


def test_eval_skips_an_undecodable_file_and_evaluates_the_rest(cli, manifest_with_broken_files):
    manifest, bad_image, bad_audio = manifest_with_broken_files
    r = cli("eval", "-m", manifest, "--relevance", "group", "--json")
    assert r.code == 0 and "Traceback" not in r.err, (r.code, r.err)
    notes = [line for line in r.err.splitlines() if line.startswith("manifest: skipped")]
    assert len(notes) == 2, r.err
    assert any(bad_image in line for line in notes) and any(bad_audio in line for line in notes), notes
    report = json.loads(r.out)
    assert report["gallery_size"] == {"image": 5, "audio": 5, "text": 6}
    d = report["directions"]
    assert d["image→text"]["metrics"]["queries"] == 5  # the broken picture is no query ...
    assert d["text→image"]["metrics"]["queries"] == 5  # ... and no gallery item: its caption has no match left
    assert d["text→image"]["metrics"]["queries_without_relevant"] == 1
    assert d["image→audio"]["metrics"]["queries"] == 4  # one record without a picture, another without a sound


def test_eval_table_shows_the_gallery_left_after_skipping(cli, manifest_with_broken_files):
    manifest, bad_image, _ = manifest_with_broken_files
    r = cli("eval", "-m", manifest, "--relevance", "group", "--directions", "text:image")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert "5 image" in r.out and "manifest: skipped" in r.err and bad_image in r.err


def test_linear_aligners_skip_an_undecodable_file_too(cli, world, tmp_path):
    copy = tmp_path / "w"
    shutil.copytree(world, copy)
    records = [json.loads(line) for line in (copy / "manifest.jsonl").read_text().splitlines()]
    train = next(r for r in records if r["split"] == "train")
    test = next(r for r in records if r["split"] == "test")
    (copy / train["image"]).write_bytes(b"no picture")
    (copy / test["audio"]).write_bytes(b"")
    r = cli("eval", "-m", copy / "manifest.jsonl", "--aligner", "cca", "--json")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    notes = [line for line in r.err.splitlines() if line.startswith("manifest: skipped")]
    assert len(notes) == 2 and train["image"] in notes[0] + notes[1] and test["audio"] in notes[0] + notes[1], notes
    n_test = sum(r["split"] == "test" for r in records)
    assert json.loads(r.out)["gallery_size"] == {"image": n_test, "audio": n_test - 1, "text": n_test}


@pytest.fixture
def lost_manifest(cli, world, tmp_path):
    """A collection of the world's captions whose manifest.json was lost (its catalog and vectors are there)."""
    folder = tmp_path / "t"
    shutil.copytree(world / "text", folder)
    col = tmp_path / "col"
    assert cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0").code == 0
    (col / "manifest.json").unlink()
    assert (col / "catalog.sqlite").is_file()
    return folder, col


def test_a_lost_manifest_is_named_with_the_way_out(cli, lost_manifest):
    _, col = lost_manifest
    for args in (("search", "red", "-c", col, "--to", "text"), ("info", "-c", col),
                 ("similar", "x.txt", "-c", col), ("remove", "x.txt", "-c", col)):
        line = one_line_error(cli(*args), 1, "manifest", "--rebuild")
        assert str(col / "manifest.json") in line and "no collection" not in line, line
    r = cli("search", "red", "-c", col, "--json")
    assert json.loads(r.out)["error"]["code"] == "collection.damaged"
    with pytest.raises(Exception) as e:
        Engine(col).stats()
    assert getattr(e.value, "code", None) == "collection.damaged" and "manifest" in str(e.value)


def test_index_says_it_starts_afresh_when_the_manifest_was_lost(cli, lost_manifest):
    folder, col = lost_manifest
    n = len(list(folder.iterdir()))
    r = cli("index", folder, "-c", col, "--workers", "0")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert "manifest.json" in r.err and "afresh" in r.err, r.err
    r = cli("index", folder, "-c", col, "--workers", "0", "--json")
    report = json.loads(r.out)
    assert report["unchanged"] == n and not any("manifest" in x for x in report.get("notes", [])), report
    assert cli("search", "red", "-c", col, "--to", "text", "-k", "1").code == 0


def test_a_lost_manifest_and_another_model_never_mix(cli, lost_manifest, tmp_path):
    from xsearch.encoders.builtin import BuiltinModel, save_checkpoint
    from xsearch.index.local.catalog import Catalog

    folder, col = lost_manifest
    other = save_checkpoint(BuiltinModel(), tmp_path / "other-ckpt")
    r = cli("index", folder, "-c", col, "--model", f"builtin:{other}", "--workers", "0", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["added"] == len(list(folder.iterdir())) and report["unchanged"] == 0  # all embedded again
    assert any("manifest" in x and "afresh" in x for x in report["notes"]), report
    cat = Catalog.open(col / "catalog.sqlite", readonly=True, must_exist=True)
    try:
        ids = {row[0] for row in cat._conn.execute("SELECT DISTINCT model_id FROM files")}
    finally:
        cat.close()
    assert ids == {report["model_id"]}, ids
    assert json.loads(cli("info", "-c", col, "--json").out)["collection"]["model_spec"] == f"builtin:{other}"


def test_a_collection_inside_the_indexed_folder_is_not_walked(cli, world, tmp_path):
    folder = tmp_path / "t"
    shutil.copytree(world / "text", folder)
    (folder / "notes.xyz").write_text("not media")  # still listed: it is the user's, not the collection's
    col = folder / "sub" / "col"
    for _ in range(2):  # the second run finds the collection's files on disk
        r = cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0", "--json")
        assert r.code == 0 and "Traceback" not in r.err, r.err
        report = json.loads(r.out)
        assert report["ignored"] == {".xyz": 1} and not report["skipped"], report
    r = cli("index", folder, "-c", col, "--workers", "0")
    assert "ignored 1 file " in r.err and ".sqlite" not in r.err and "manifest" not in r.err, r.err


def test_discover_skips_folders_by_identity(tmp_path):
    from xsearch.media import discover

    (tmp_path / "a" / "own").mkdir(parents=True)
    (tmp_path / "a" / "own" / "x.txt").write_text("inside")
    (tmp_path / "a" / "y.txt").write_text("outside")
    (tmp_path / "link").symlink_to(tmp_path / "a" / "own")  # the same folder reached another way
    found = [f.path.name for f in discover(tmp_path, skip_dirs=[tmp_path / "a" / "own"])]
    assert found == ["y.txt"], found


def test_a_collection_path_that_is_a_file_is_named_as_such(cli, world, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    for col in (f, f / "sub"):
        for args in (("index", world / "text", "-c", col, "--model", "builtin"), ("search", "red", "-c", col),
                     ("info", "-c", col)):
            line = one_line_error(cli(*args), 1, str(f), "is a file, not a folder")
            assert "check the disk" not in line and "create it with" not in line, line
        r = cli("index", world / "text", "-c", col, "--json")
        assert json.loads(r.out)["error"]["code"] == "collection.not_a_folder"
    assert f.read_text() == "mine"


@pytest.mark.parametrize("text", ["\x01\x02\x1b", "\t\x7f\u200b", "\x9b \u2028\ufeff", "\x00"])
def test_a_query_of_control_characters_is_the_empty_query_error(cli, indexed, text):
    empty = one_line_error(cli("search", "", "-c", indexed), 2)
    assert one_line_error(cli("search", text, "-c", indexed), 2) == empty
    assert one_line_error(cli("search", text, "-c", indexed, "--json"), 2) == empty


def test_control_characters_inside_a_query_are_spaces():
    from xsearch.media import normalize_query

    assert normalize_query("red\x1bcircle\x00\u200b") == "red circle"
    assert normalize_query("\x07\u200d") == ""
    assert normalize_query("👩\u200d💻 coder") == "👩\u200d💻 coder"  # a joiner between visible characters stays
