"""`xsearch demo`, `info`, `models`, `eval` and `--help` as a user runs them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_subprocess


def test_demo_indexes_searches_and_evaluates(cli, tmp_path):
    r = cli("demo", "--dir", tmp_path / "demo", "--n", "150", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    titles = [s["title"] for s in out["searches"]]
    assert titles == ["text → image", "image → audio", "audio → image"]
    for s in out["searches"]:
        assert len(s["results"]) == 5
        assert any(h["match"] for h in s["results"][:3]), f"{s['title']}: the matching item is not in the top 3"
    assert len(out["eval"]["directions"]) == 6
    for name, d in out["eval"]["directions"].items():
        assert d["metrics"]["R@1"] > 5 * d["chance"]["R@1"], name


def test_demo_prints_tables_for_a_person(cli, tmp_path):
    r = cli("demo", "--dir", tmp_path / "demo", "--n", "60")
    assert r.code == 0
    for needle in ("text → image", "image → audio", "audio → image", "its caption", "R@1 (chance)", "Try your own",
                   "xsearch serve -c", "http://127.0.0.1:8000/"):  # ends by telling how to open the page
        assert needle in r.out
    from tests.e2e.test_cli_handoff import check_handoff

    check_handoff(r.out, tmp_path / "demo")


def test_info_reports_environment_collection_and_model(cli, indexed):
    r = cli("info", "-c", indexed, "--model", "builtin", "--json")
    assert r.code == 0
    info = json.loads(r.out)
    assert {"torch", "faiss-cpu", "open-clip-torch", "transformers"} <= set(info["versions"])
    assert info["device"] in ("cpu", "cuda") and isinstance(info["faiss_gpus"], int)
    assert info["collection"]["modalities"]["image"]["files"] == 90
    assert info["model"]["dim"] == 256 and info["model"]["trained"] is True
    assert info["model"]["model_id"] == info["collection"]["model_id"]
    r = cli("info", "-c", indexed)
    assert "faiss GPU" in r.out and "image: 90 files" in r.out.replace(" :", ":")


def test_info_without_a_collection_and_with_a_bad_model(cli, tmp_path):
    r = cli("info", "-c", tmp_path / "none")
    assert r.code == 0 and "not created yet" in r.out
    r = cli("info", "--model", "nosuchkind:x")
    assert r.code == 1 and "unknown model spec" in r.err


def test_models_lists_specs(cli):
    r = cli("models", "--json")
    specs = [m["spec"] for m in json.loads(r.out)]
    assert "builtin" in specs and "auto" in specs
    assert "openclip:ViT-B-32:laion2b_s34b_b79k" in specs
    assert any(s.startswith("clap:") for s in specs)


def test_eval_reports_every_direction_with_chance(cli, world, tmp_path):
    r = cli("eval", "--manifest", world / "manifest.jsonl", "--json", "--plot", tmp_path / "r.png")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    assert rep["relevance"] == "attributes" and rep["split"] == "test"
    assert len(rep["directions"]) == 6
    for d in rep["directions"].values():
        assert {"R@1", "R@5", "R@10", "mAP", "median_rank"} <= set(d["metrics"])
        assert 0 < d["chance"]["R@1"] < d["metrics"]["R@1"]
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_eval_cca_baseline_and_direction_choice(cli, tiny_world):
    r = cli("eval", "--manifest", tiny_world, "--aligner", "cca", "--directions", "text:image,image:text", "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    assert rep["aligner"] == "cca" and set(rep["directions"]) == {"text→image", "image→text"}
    r = cli("eval", "--manifest", tiny_world, "--directions", "text:video")
    assert r.code == 2 and "bad direction" in r.err


@pytest.mark.parametrize("command", ["index", "search", "similar", "duplicates", "remove", "info", "models", "train",
                                     "eval", "demo", "world"])
def test_help_explains_every_command(cli, command):
    r = cli(command, "--help")
    assert r.code == 0 and "Usage" in r.out and len(r.out) > 300


def test_help_does_not_load_torch_or_faiss():
    import subprocess
    import sys

    code = ("import sys, xsearch.cli.main as m; m.main(['--help']);"
            "print('torch' in sys.modules, 'faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().endswith("False False")


def test_version_of_a_real_process(tmp_path):
    r = run_subprocess("info", "-c", tmp_path / "none", "--json")
    assert r.code == 0 and json.loads(r.out)["collection"] is None


def test_an_errors_own_hint_follows_its_message():
    """The CLI prints a hint the raising layer gave (it need not know that layer); its own advice for a code wins."""
    from xsearch.cli.errors import cli_message
    from xsearch.core.errors import XsearchError

    error = XsearchError("the store broke", code="store.broken", hint="restart the store")
    assert cli_message(error) == "the store broke; restart the store."
    assert error.to_dict()["hint"] == "restart the store" and "hint" not in XsearchError("x").to_dict()
    error = XsearchError("no collection at c", code="collection.missing", hint="something else", collection="c")
    assert cli_message(error) == "no collection at c; create it with `xsearch index <folder> -c c`."


def test_search_has_a_file_option_per_modality_recognised_by_content():
    """`xsearch search` keeps one explicit option per query-file modality (typer builds options from the function's
    parameters, and hand-written ones read better in --help): this ties them to the modality registry, so a new
    modality with a content sniffer is not forgotten."""
    import typer.main

    from xsearch.cli.main import app
    from xsearch.media import modalities

    search = typer.main.get_command(app).commands["search"]
    options = {o for p in search.params for o in p.opts}
    assert {f"--{m.name}" for m in modalities.registered() if m.sniff is not None} <= options
