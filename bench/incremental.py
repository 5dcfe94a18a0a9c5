"""Incremental re-index benchmark: a second ``Engine.index_folder`` over an unchanged folder vs the first.

The first run embeds every file; the second only walks the folder and compares size + mtime with the catalog,
so it should cost a small fraction of the first. Both runs use one Engine with the model already loaded (model
loading is not indexing). A second run through the real CLI in a fresh process (interpreter start, imports,
model load included) is timed too, for what a user waits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.data import ensure_world
from bench.measure import ratio
from bench.report import table


@dataclass
class IncrementalBenchConfig:
    world_groups: int = 700  # 3 files per group (image, sound, caption file)
    workers: int = 2
    cli_second_run: bool = True


def _report_fields(report) -> dict:
    return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "removed": report.removed, "skipped": len(report.skipped), "vectors_added": dict(report.vectors_added)}


def run(cfg: IncrementalBenchConfig, workdir: Path, device: str = "cpu", log=print) -> dict:
    from xsearch.engine import Engine

    world = ensure_world(workdir, cfg.world_groups)
    collection = Path(workdir) / f"collection-incremental-{cfg.world_groups}"
    shutil.rmtree(collection, ignore_errors=True)
    engine = Engine(collection, model="builtin", device=device)
    engine.encoder("builtin")  # load the model before timing

    log(f"incremental: first index of {world.name}")
    t0 = time.perf_counter()
    first = engine.index_folder(world, workers=cfg.workers)
    first_s = time.perf_counter() - t0
    log("incremental: second index (unchanged)")
    t0 = time.perf_counter()
    second = engine.index_folder(world, workers=cfg.workers)
    second_s = time.perf_counter() - t0
    files = first.added
    out = {
        "config": asdict(cfg), "files": files,
        "first": {"seconds": first_s, "files_per_s": files / first_s, **_report_fields(first)},
        "second": {"seconds": second_s, **_report_fields(second)},
        "second_over_first": ratio(second_s, first_s),
    }
    if cfg.cli_second_run:
        log("incremental: second index through the CLI (fresh process)")
        cmd = [sys.executable, "-m", "xsearch.cli.main", "index", str(world), "--collection", str(collection),
               "--workers", str(cfg.workers), "--json"] + (["--device", device] if device != "cpu" else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, check=False)
        cli_s = time.perf_counter() - t0
        cli = {"seconds": cli_s, "exit_code": proc.returncode, "over_first": ratio(cli_s, first_s)}
        if proc.returncode == 0:
            report = json.loads(proc.stdout)
            cli.update({"unchanged": report["unchanged"], "added": report["added"], "updated": report["updated"]})
        else:
            cli["error"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        out["cli_second"] = cli
    return out


def to_markdown(result: dict) -> str:
    first, second = result["first"], result["second"]
    rows = [["first (embeds everything)", first["seconds"], first["added"], first["unchanged"], "1"],
            ["second, unchanged (same process)", second["seconds"], second["added"] + second["updated"],
             second["unchanged"], result["second_over_first"]]]
    cli = result.get("cli_second")
    if cli:
        rows.append(["second, unchanged (CLI, fresh process)", cli["seconds"],
                     cli.get("added", 0) + cli.get("updated", 0) if "error" not in cli else "error",
                     cli.get("unchanged", "-"), cli["over_first"]])
    head = (f"{result['files']} files ({result['config']['world_groups']}-group world), builtin model; first run "
            f"{first['files_per_s']:.1f} files/s end to end.")
    return head + "\n\n" + table(["run", "seconds", "embedded", "unchanged", "fraction of first"], rows)
