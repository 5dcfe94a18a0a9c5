"""Hostile input at the command line: terminal escapes and Rich markup in file names and contents, numbers that
overflow or are not numbers, click's usage errors, NaN training settings, and the one `--json` layout.

Every error is one ``error: ...`` line on stderr with a documented exit code (2: usage, 1: other), never a
traceback; human output shows user data as plain, visible text; ``--json`` output is exact and strict JSON.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY, run_subprocess

ESC_NAME = "\x1b]0;pwned\x07.png"  # an OSC sequence: retitles a terminal
CLEAR_NAME = "clear\x1b[2J.png"  # a CSI sequence: clears the screen
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what must never reach a terminal raw


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def _one_line_error(r, code: int, *needles: str) -> str:
    """Assert ``r`` failed with ``code`` and exactly one ``error: ...`` line on stderr; returns that line."""
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = _error_lines(r.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _flat(help_text: str) -> str:
    """Help text without Rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", help_text).split())


@pytest.fixture(scope="module")
def hostile(world, tmp_path_factory):
    """A folder of files with hostile names and contents, indexed with the builtin model: (folder, collection)."""
    from xsearch.engine import Engine

    root = tmp_path_factory.mktemp("hostile") / "files"
    root.mkdir()
    images = sorted((world / "image").glob("*.png"))
    (root / "x[").mkdir()
    names = [ESC_NAME, CLEAR_NAME, "photo [draft].png", "x[/]y.png", ":smile: [bold]b.png", "rtl\u202egnp.png"]
    for src, name in zip(images, names):
        shutil.copy(src, root / name)
    shutil.copy(images[0], root / "copy\x1b[31m.png")  # a near-duplicate of ESC_NAME
    (root / "note.txt").write_text("a red circle \x1b]0;pwned\x07 and \x1b[2J here [/] :smile: [bold]x\n")
    (root / "bad\x1b[2J.png").write_bytes(b"\x1b[31m not an image")  # skipped, with its name in the report
    col = tmp_path_factory.mktemp("hostile-col") / "c"
    report = Engine(col, model="builtin").index_folder(root, workers=0)
    assert report.added == 8 and len(report.skipped) == 1
    return root, col


@pytest.fixture
def wide(monkeypatch, hostile):
    """Short relative paths and a wide console, so table cells are not folded."""
    from xsearch.cli import output

    monkeypatch.chdir(hostile[0])
    monkeypatch.setattr(output.console, "_width", 250)


def _assert_clean(text: str) -> None:
    assert not CONTROL.search(text), repr(text)
    assert "\u202e" not in text and "😄" not in text


# -- item 7 / 21: terminal injection and Rich markup in human output --------------------------------------------


def test_results_table_shows_names_escaped_and_markup_literally(cli, hostile, wide):
    root, col = hostile
    r = cli("search", "red circle", "-c", col, "--to", "image", "-k", "7")
    assert r.code == 0, r.err
    _assert_clean(r.out + r.err)
    for shown in ("\\x1b]0;pwned\\x07.png", "clear\\x1b[2J.png", "photo [draft].png", "x[/]y.png",
                  ":smile: [bold]b.png", "rtl\\u202egnp.png", "copy\\x1b[31m.png"):
        assert shown in r.out, shown


def test_text_snippets_are_escaped(cli, hostile, wide):
    r = cli("search", "red circle", "-c", hostile[1], "--to", "text")
    assert r.code == 0, r.err
    _assert_clean(r.out + r.err)
    assert "\\x1b]0;pwned\\x07 and \\x1b[2J here [/] :smile: [bold]x" in r.out


def test_query_text_title_and_error_paths_are_escaped(cli, hostile, wide):
    r = cli("search", "\x1b]0;pwned\x07 [/]", "-c", hostile[1], "-k", "1")
    assert r.code == 0, r.err
    _assert_clean(r.out)
    assert '"\\x1b]0;pwned\\x07 [/]" → image' in r.out
    r = cli("search", "--image", "missing\x1b[2J.png", "-c", hostile[1])
    _one_line_error(r, 2, "missing\\x1b[2J.png")
    _assert_clean(r.err)


def test_similar_and_duplicates_escape_names(cli, hostile, wide):
    root, col = hostile
    r = cli("similar", root / ESC_NAME, "-c", col, "-k", "2")
    assert r.code == 0, r.err
    _assert_clean(r.out)
    assert "similar to " in r.out and "\\x1b]0;pwned\\x07.png → image" in r.out
    r = cli("duplicates", "-c", col, "--threshold", "0.99")
    assert r.code == 0, r.err
    _assert_clean(r.out + r.err)
    assert "\\x1b]0;pwned\\x07.png" in r.out and "copy\\x1b[31m.png" in r.out


def test_index_report_skipped_lines_are_escaped(cli, hostile, wide, tmp_path):
    r = cli("index", hostile[0], "-c", tmp_path / "c", "--model", "builtin", "--workers", "0")
    assert r.code == 0, r.err
    _assert_clean(r.out + r.err)
    assert "skipped: " in r.err and "bad\\x1b[2J.png" in r.err
    assert "8 added" in r.out and "1 skipped" in r.out


def test_json_output_stays_exact(cli, hostile):
    root, col = hostile
    r = cli("search", "red circle", "-c", col, "--to", "image", "-k", "7", "--json")
    assert r.code == 0
    paths = {Path(h["path"]).name for h in json.loads(r.out)["results"]["image"]}
    assert {ESC_NAME, CLEAR_NAME, "]y.png", "photo [draft].png"} <= paths
    r = cli("duplicates", "-c", col, "--threshold", "0.99", "--json")
    pair = json.loads(r.out)[0]
    assert {Path(pair["a"]).name, Path(pair["b"]).name} == {ESC_NAME, "copy\x1b[31m.png"}


def test_visible_escapes_c0_c1_del_and_is_idempotent():
    from xsearch.cli.output import visible

    raw = "a\x1b[2Jb\x07c\x7fd\x9be\nf\u202eg é [x] :smile:"
    shown = visible(raw)
    assert shown == "a\\x1b[2Jb\\x07c\\x7fd\\x9be\\nf\\u202eg é [x] :smile:"
    assert visible(shown) == shown


# -- item 22: one line, the documented exit code, no traceback ------------------------------------------------------


@pytest.mark.parametrize("args, needle", [
    (["--threshold", "abc"], "--threshold"),
    (["--bogus"], "--bogus"),
    (["--min-size", "1e23"], "--min-size"),
    (["--min-size", str(2**63)], "--min-size"),  # would overflow SQLite's INTEGER
    (["--max-size", "-1"], "--max-size"),
    (["--ef-search", "1e11"], "--ef-search"),
    (["-k", "ten"], "-k"),
])
def test_click_usage_errors_are_one_line(cli, indexed, args, needle):
    r = cli("search", "red", "-c", indexed, *args)
    line = _one_line_error(r, 2, needle)
    assert "╭" not in r.err and "Usage:" not in r.err
    assert line.endswith("see `xsearch search --help`.")


@pytest.mark.parametrize("flag, value", [("--min-duration", "nan"), ("--max-duration", "inf"),
                                         ("--min-duration", "-1")])
def test_bad_duration_filters_are_one_line(cli, indexed, flag, value):
    _one_line_error(cli("search", "red", "-c", indexed, flag, value), 2, f"{flag} must be a finite number")


def test_missing_argument_and_unknown_command_are_one_line(cli):
    _one_line_error(cli("index"), 2, "Missing argument")
    _one_line_error(cli("serach", "red"), 2, "serach")
    _one_line_error(cli("world", "make"), 2, "DIR")


def test_help_and_no_args_still_work(cli):
    r = cli("--help")
    assert r.code == 0 and "Usage" in r.out
    r = cli()
    assert r.code == 2 and "Usage" in r.out and "Traceback" not in r.err


def test_usage_error_with_json_is_a_json_error(cli, indexed):
    r = cli("search", "red", "-c", indexed, "--bogus", "--json")
    assert r.code == 2
    err = json.loads(r.out)["error"]
    assert err["code"] == "usage.cli" and "--bogus" in err["message"] and err["exit_code"] == 2


@pytest.mark.parametrize("flag, value", [("--nprobe", "0"), ("--ef-search", "0"), ("--ef-search", "-5"),
                                         ("--nprobe", str(10**12))])
def test_bad_search_params_name_the_flag(cli, indexed, flag, value):
    _one_line_error(cli("search", "red", "-c", indexed, flag, value), 2,
                    f"{flag} must be a whole number from 1 to 65536, not {value}")


def test_search_errors_with_json_print_an_error_object(cli, indexed, tmp_path):
    r = cli("search", "red", "-c", indexed, "--ef-search", "0", "--json")
    assert r.code == 2 and len(_error_lines(r.err)) == 1
    err = json.loads(r.out)["error"]
    assert err["code"] == "usage.bad_search_param" and err["params"]["name"] == "efSearch"
    assert err["message"].startswith("--ef-search must be") and err["exit_code"] == 2
    r = cli("search", "red", "-c", tmp_path / "none", "--json")
    assert r.code == 1 and json.loads(r.out)["error"]["code"] == "collection.missing"


def _top(cli, indexed, *args) -> list[str]:
    r = cli("search", "red", "-c", indexed, "--json", "-k", "90", *args)
    assert r.code == 0, r.err
    return [h["path"] for h in json.loads(r.out)["results"]["image"]]


def test_dates_outside_the_catalog_range_are_accepted(cli, indexed):
    everything = _top(cli, indexed)
    assert _top(cli, indexed, "--since", "1000-01-01") == everything
    assert _top(cli, indexed, "--until", "9999-12-31") == everything
    for args in (["--since", "9999-12-31"], ["--until", "1000-01-01"], ["--until", "1969-12-31"]):
        r = cli("search", "red", "-c", indexed, "--json", *args)
        assert r.code == 0 and json.loads(r.out)["results"]["image"] == [], r.err


def test_index_into_a_regular_file_is_one_line(cli, world, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a collection")
    _one_line_error(cli("index", world, "-c", target, "--model", "builtin", "--workers", "0"), 1)
    assert target.read_text() == "not a collection"


def test_world_vocab_into_a_folder_or_nowhere(cli, tmp_path):
    _one_line_error(cli("world", "vocab", tmp_path), 2, "is a folder")
    _one_line_error(cli("world", "vocab", tmp_path / "no" / "such" / "dir" / "v.txt"), 1, "cannot write")
    assert cli("world", "vocab", tmp_path / "v.txt").code == 0


# -- items 14 / 22: training settings that cannot train ---------------------------------------------------------


def _train(cli, world, out, *extra):
    return cli("train", "--manifest", world / "manifest.jsonl", "-o", out, "--epochs", "1", "--batch-size", "32",
               "--threads", "2", *extra)


@pytest.mark.parametrize("args, needle", [
    (["--lr", "nan"], "--lr must be a finite number above 0, not nan"),
    (["--lr", "-1"], "--lr must be a finite number above 0"),
    (["--lr", "inf"], "--lr must be a finite number above 0"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number, 0 or more"),
    (["--weight-decay", "-0.5"], "--weight-decay"),
    (["--threads", "-4"], "--threads"),
    (["--threads", "0"], "--threads"),
    (["--epochs", "0"], "--epochs"),
    (["--seed", "-1"], "--seed"),
    (["--lambda", "image-text=nan"], "image-text"),
])
def test_bad_training_settings_are_refused_before_training(cli, world, tmp_path, args, needle):
    out = tmp_path / "ckpt"
    _one_line_error(_train(cli, world, out, *args), 2, needle)
    assert not out.exists()


def test_bind_refuses_bad_settings(cli, world, tmp_path):
    out = tmp_path / "head"
    r = cli("train", "--bind", "audio", "--base", "builtin", "--audio", "builtin", "--manifest",
            world / "manifest.jsonl", "-o", out, "--lr", "nan")
    _one_line_error(r, 2, "--lr")
    assert not out.exists()


def test_out_that_is_a_regular_file_is_refused(cli, world, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"keep me")
    _one_line_error(_train(cli, world, target), 2, "is not a folder")
    r = cli("train", "--bind", "audio", "--base", "builtin", "--audio", "builtin", "--manifest",
            world / "manifest.jsonl", "-o", target, "--epochs", "1")
    _one_line_error(r, 2, "is not a folder")
    assert target.read_bytes() == b"keep me"


def test_a_learning_rate_that_blows_up_saves_no_checkpoint(cli, world, tmp_path):
    out = tmp_path / "ckpt"
    r = _train(cli, world, out, "--lr", "1e30")
    assert r.code == 1 and "Traceback" not in r.err
    last = _error_lines(r.err)[-1]
    assert last.startswith("error: ") and last.endswith("try a lower --lr.")
    assert "NaN or infinite" in last or "loss became" in last
    assert [line for line in r.err.splitlines() if line.startswith("error:")] == [last]
    assert not (out / "model.safetensors").exists()


def test_train_args_validate_at_the_api_edge():
    import torch

    from xsearch.core.errors import UsageError
    from xsearch.train.bind import BindArgs
    from xsearch.train.trainer import TrainArgs, TrainingDiverged, check_finite

    for bad in ({"lr": float("nan")}, {"lr": 0.0}, {"weight_decay": float("inf")}, {"threads": -4},
                {"batch_size": 1}, {"pair_weights": {"image-text": float("nan")}}):
        with pytest.raises(UsageError) as e:
            TrainArgs(manifest="m", out_dir="o", **bad)
        assert e.value.code == "train.bad_value"
    with pytest.raises(UsageError):
        BindArgs(manifest="m", out_dir="o", temperature=0.0)
    layer = torch.nn.Linear(2, 2)
    check_finite(layer, "ok")
    with torch.no_grad():
        layer.weight[0, 0] = 1e30  # finite in float32, infinite in the float16 a checkpoint stores
    check_finite(layer, "float32")
    with pytest.raises(TrainingDiverged, match="NaN or infinite in float16"):
        check_finite(layer, "fp16", torch.float16)


def test_trained_model_spec_printed_loads(cli, world, tmp_path):
    from xsearch.encoders.registry import load_encoder, parse_spec

    r = cli("train", "--manifest", world / "manifest.jsonl", "-o", tmp_path / "ckpt", "--epochs", "1",
            "--batch-size", str(TINY["batch_size"]), "--threads", "2")
    assert r.code == 0, r.err
    spec = shlex.split(r.err.strip().splitlines()[-1].split("--model ", 1)[1])[0]
    parse_spec(spec)
    assert load_encoder(spec).embed("text", ["a red circle"]).shape == (1, 256)


def test_bind_head_spec_printed_parses_and_loads(cli, world, tmp_path):
    from xsearch.encoders.registry import load_encoder, parse_spec

    out = tmp_path / "head"
    r = cli("train", "--bind", "audio", "--base", "builtin", "--audio", "builtin", "--manifest",
            world / "manifest.jsonl", "-o", out, "--epochs", "2")
    assert r.code == 0, r.err
    spec = shlex.split(r.err.strip().splitlines()[-1].split("--model ", 1)[1])[0]
    parsed = parse_spec(spec)
    assert [p.kind for p in parsed.parts] == ["builtin", "builtin", "bind"]
    enc = load_encoder(spec)
    assert {"image", "audio", "text"} <= set(enc.modalities)
    assert enc.embed("text", ["a red circle"]).shape[0] == 1


def test_train_help_shows_the_extra_and_search_help_its_default(cli):
    help_text = _flat(cli("train", "--help").out)
    assert "(needs xsearch)" not in help_text and "tensorboard package" in help_text
    assert "default: 10, or all there are" in _flat(cli("search", "--help").out)


# -- item 15: weights and JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["mean", "rrf", "weighted"])
@pytest.mark.parametrize("weight", ["nan,1", "inf,1", "1,-inf", "1e308,1"])
def test_non_finite_weights_are_refused(cli, indexed, fusion, weight):
    _one_line_error(cli("search", "red", "blue", "-c", indexed, "--fusion", fusion, "--weight", weight), 2,
                    "--weight")


def test_print_json_writes_strict_json(capsys):
    import numpy as np

    from xsearch.cli.output import print_json

    print_json({"a": float("nan"), "b": [1.5, float("inf")], "c": np.float32("nan"), "d": np.array([1.0, -np.inf]),
                "e": np.int64(3), "f": "\x1b]0;x\x07"})

    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")

    out = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert out == {"a": None, "b": [1.5, None], "c": None, "d": [1.0, None], "e": 3, "f": "\x1b]0;x\x07"}


# -- the same, as a user's shell runs it ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def col(indexed, tmp_path_factory) -> Path:
    """A copy of the session collection that the real-process tests may try (and fail) to change."""
    col = tmp_path_factory.mktemp("real") / "col"
    shutil.copytree(indexed, col)
    return col


@pytest.mark.slow  # ~55 s: a dozen real processes, each paying the import of torch (see issue #29)
class TestRealProcess:
    """`python -m xsearch.cli.main` over awkward input: no traceback, one error line, the documented exit code,
    and the collection still answers the same afterwards."""

    def _results(self, col) -> list:
        r = run_subprocess("search", "red", "-c", col, "--to", "all", "--json")
        assert r.code == 0, r.err
        return json.loads(r.out)["results"]

    def test_awkward_input(self, col, world, tmp_path):
        before = self._results(col)
        afile = tmp_path / "a-file"
        afile.write_text("x")
        cases = [
            (["search", "red", "-c", col, "--threshold", "abc"], 2),
            (["search", "red", "-c", col, "--no-such-option"], 2),
            (["search", "red", "-c", col, "--min-size", str(2**64)], 2),
            (["search", "red", "-c", col, "--ef-search", "0"], 2),
            (["search", "red", "blue", "-c", col, "--weight", "nan,1"], 2),
            (["index", world, "-c", col, "--batch-files", "0"], 2),
            (["index", world, "-c", afile], 1),
            (["remove", tmp_path / "not-indexed", "-c", col], 2),
            (["world", "vocab", tmp_path], 2),
            (["train", "--manifest", world / "manifest.jsonl", "-o", afile, "--epochs", "1"], 2),
            (["train", "--manifest", world / "manifest.jsonl", "-o", tmp_path / "o", "--lr", "nan"], 2),
            (["similar", tmp_path / "nothing\x1b[2J.png", "-c", col], 2),
        ]
        for args, code in cases:
            r = run_subprocess(*args)
            assert r.code == code, (args, r.code, r.err)
            assert "Traceback" not in r.err, (args, r.err)
            lines = _error_lines(r.err)
            assert len(lines) == 1 and lines[0].startswith("error: "), (args, r.err)
            assert not CONTROL.search(r.err), (args, r.err)
        assert self._results(col) == before

    def test_dates_and_hostile_query_succeed(self, col):
        def refuse(constant):
            raise AssertionError(f"{constant} in JSON output")

        for since, hits in (("9999-12-31", 0), ("1000-01-01", 5)):
            r = run_subprocess("search", "red", "-c", col, "--json", "-k", "5", "--since", since)
            assert r.code == 0 and "Traceback" not in r.err, r.err
            assert len(json.loads(r.out, parse_constant=refuse)["results"]["image"]) == hits
        r = run_subprocess("search", "\x1b]0;pwned\x07 [/] :smile:", "-c", col, "-k", "2")
        assert r.code == 0 and "error" not in r.err and "Traceback" not in r.err, r.err  # notes (weak results) only
        assert not CONTROL.search(r.out + r.err) and "[/] :smile:" in r.out and "😄" not in r.out
