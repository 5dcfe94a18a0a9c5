"""Run the benchmarks: ``python -m bench.run [--quick|--full] [--only encoding,index,...] --out results.json``.

Prints the machine and one markdown table per benchmark on stdout (progress on stderr) and writes everything
as JSON. --quick: small sizes, under 5 minutes on 2 cores; default: 10k + 100k vectors; --full: adds 1M.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import encoding, incremental, index, machine, scaling
from bench.encoding import EncodingBenchConfig
from bench.incremental import IncrementalBenchConfig
from bench.index import IndexBenchConfig
from bench.peers import PEERS

BENCHMARKS = ("encoding", "index", "scaling", "incremental")


@dataclass
class Preset:
    """The configuration of every benchmark for one run size."""

    name: str
    encoding: EncodingBenchConfig = field(default_factory=EncodingBenchConfig)
    index: IndexBenchConfig = field(default_factory=IndexBenchConfig)
    incremental: IncrementalBenchConfig = field(default_factory=IncrementalBenchConfig)


#: The index kinds and peers of the presets (IndexBenchConfig's own defaults stay the four plain kinds).
PRESET_KINDS = index.ALL_KINDS
PRESET_PEERS = ("hnswlib", "usearch", "usearch-f16", "usearch-i8")


def preset(name: str) -> Preset:
    """'quick', 'default' or 'full'."""
    if name == "quick":
        return Preset(
            name,
            encoding=EncodingBenchConfig(world_groups=200, rounds=2),
            index=IndexBenchConfig(sizes=(10_000, 30_000), n_queries=300, n_single=100, world_groups=200,
                                   kinds=PRESET_KINDS, peers=PRESET_PEERS, autofaiss=True,
                                   measure_loaded=True),
            incremental=IncrementalBenchConfig(world_groups=200),
        )
    real = EncodingBenchConfig(jpeg_photos=16, real_models=("openclip", "clap"))
    if name == "default":
        return Preset(name, encoding=real, index=IndexBenchConfig(kinds=PRESET_KINDS, peers=PRESET_PEERS,
                                                                  autofaiss=True, measure_loaded=True))
    if name == "full":
        return Preset(name, encoding=real, index=IndexBenchConfig(sizes=(10_000, 100_000, 1_000_000),
                                                                  kinds=PRESET_KINDS, peers=PRESET_PEERS,
                                                                  autofaiss=True, measure_loaded=True))
    raise ValueError(f"unknown preset {name!r}")


def run_all(p: Preset, only: tuple[str, ...], workdir: Path, device: str = "cpu", log=print) -> dict:
    """Run the chosen benchmarks (scaling needs index, which then runs too); returns the JSON-able results."""
    results: dict = {}
    timings: dict = {}
    wanted = set(only)
    if "scaling" in wanted:
        wanted.add("index")
    for name in BENCHMARKS:
        if name not in wanted:
            continue
        t0 = time.perf_counter()
        if name == "encoding":
            results[name] = encoding.run(p.encoding, workdir, device, log)
        elif name == "index":
            results[name] = index.run(p.index, workdir, device, log)
        elif name == "scaling":
            results[name] = scaling.fit(results["index"])
        elif name == "incremental":
            results[name] = incremental.run(p.incremental, workdir, device, log)
        timings[name] = time.perf_counter() - t0
    return {"results": results, "seconds": timings}


def to_markdown(report: dict) -> str:
    parts = [f"# xsearch benchmarks ({report['preset']})", machine.to_markdown(report["machine"]),
             (f"- load average at end: {', '.join(map(str, report['load_average_end'] or [])) or 'n/a'}; "
              f"total {report['total_s']:.0f} s")]
    renderers = {"encoding": encoding.to_markdown, "index": index.to_markdown, "scaling": scaling.to_markdown,
                 "incremental": incremental.to_markdown}
    titles = {"encoding": "Encoding pipeline vs raw model", "index": "Vector index: ours vs exact and peers",
              "scaling": "Scaling exponents", "incremental": "Incremental re-index"}
    for name in BENCHMARKS:
        if name in report["results"]:
            parts.append(f"## {titles[name]} ({report['seconds'][name]:.0f} s)")
            parts.append(renderers[name](report["results"][name]))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (10k + 30k vectors), < 5 min on 2 cores")
    size.add_argument("--full", action="store_true", help="add 1M vectors (HNSW skipped if estimated > 15 min)")
    ap.add_argument("--only", default=",".join(BENCHMARKS),
                    help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--markdown", type=Path, help="also write the markdown report here")
    ap.add_argument("--workdir", type=Path, help="keep generated data here (default: a temp dir, deleted after)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (model and FAISS GPU)")
    ap.add_argument("--peers", default=",".join(PRESET_PEERS),
                    help="comma-separated peer libraries for the index benchmark ('' for none: ours only); "
                         f"known: {','.join(PEERS)}")
    ap.add_argument("--sizes", default=None, help="override the index sizes, e.g. 100000,1000000 ('' for none)")
    ap.add_argument("--kinds", default=None,
                    help=f"override our index kinds (comma-separated; known: {','.join(index.ALL_KINDS)})")
    ap.add_argument("--no-autofaiss", action="store_true", help="do not build autofaiss's choice")
    ap.add_argument("--budget", type=float, default=None,
                    help="memory budget of the 'budget' kind and autofaiss, bytes per vector (default 256)")
    ap.add_argument("--max-build-s", type=float, default=None,
                    help="skip an HNSW build estimated (from a smaller size) to take longer (default 900)")
    ap.add_argument("--autofaiss-timeout", type=float, default=None,
                    help="give up on autofaiss (its row says so) after this many seconds (default 7200)")
    ap.add_argument("--rows-log", type=Path, default=None,
                    help="index: append every measured row here as a JSON line as soon as it is measured")
    ap.add_argument("--world-groups", type=int, default=None, help="groups of the world whose embeddings are "
                    "indexed too (0: none)")
    ap.add_argument("--real-models", default=None, help="encoding: real-size models at random weights, "
                    "comma-separated: openclip (ViT-B-32), clap (HTSAT); '' for none (default: both, not --quick)")
    ap.add_argument("--photos", type=int, default=None, help="encoding: 4000x3000 JPEGs generated for the JPEG "
                    "draft and real-size image measurements (default 16, 0 skips both)")
    args = ap.parse_args(argv)

    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = [s for s in only if s not in BENCHMARKS]
    if unknown or not only:
        ap.error(f"--only: unknown benchmark(s) {', '.join(unknown) or '(none given)'}; choose from "
                 f"{', '.join(BENCHMARKS)}")
    p = preset("quick" if args.quick else "full" if args.full else "default")
    p.index.peers = tuple(x.strip() for x in args.peers.split(",") if x.strip())
    if args.sizes is not None:  # '' = no synthetic sizes (e.g. only the world's embeddings)
        p.index.sizes = tuple(int(x) for x in args.sizes.split(",") if x.strip())
    if args.kinds:
        p.index.kinds = tuple(x.strip() for x in args.kinds.split(",") if x.strip())
        bad = [k for k in p.index.kinds if k not in index.ALL_KINDS]
        if bad:
            ap.error(f"--kinds: unknown kind(s) {', '.join(bad)}; choose from {', '.join(index.ALL_KINDS)}")
    if args.no_autofaiss:
        p.index.autofaiss = False
    if args.budget is not None:
        p.index.budget_bytes_per_vector = args.budget
    if args.max_build_s is not None:
        p.index.hnsw_max_build_s = args.max_build_s
    if args.autofaiss_timeout is not None:
        p.index.autofaiss_timeout_s = args.autofaiss_timeout
    if args.rows_log is not None:
        p.index.rows_log = str(args.rows_log)
    if args.world_groups is not None:
        p.index.world_groups = args.world_groups
    if args.real_models is not None:
        p.encoding.real_models = tuple(x.strip() for x in args.real_models.split(",") if x.strip())
    if args.photos is not None:
        p.encoding.jpeg_photos = args.photos

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="xsearch-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine.machine_info(args.device)
    t0 = time.perf_counter()
    try:
        ran = run_all(p, only, workdir, args.device, log)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {"preset": p.name, "only": list(only), "machine": info, "load_average_end": machine.load_average(),
              "total_s": time.perf_counter() - t0, **ran}
    text = to_markdown(report)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
