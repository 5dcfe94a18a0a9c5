"""Video indexing throughput: seconds of video indexed per second of wall time, and where the time goes.

    python -m bench.video [--videos 24] [--workers 2] [--device cpu] [--workdir DIR] [--out results.json]

A generated world with ``--videos`` mp4s (``xsearch world make --videos``: 3-5 scenes of 4 s each, 128x128 at
2 fps, AAC sound) is indexed the way ``xsearch index`` does it: ``Engine.index_folder`` with the local executor
(``--workers`` decode processes, the model in this process, loaded before timing). Three runs:

- **index**: the end-to-end run (a fresh collection); the main process's time inside the encoder calls is
  measured on the way (``embed in pipeline``), the rest is waiting for decoders, catalog and FAISS writes;
- **decode only**: ``iter_decoded`` over the same files with the same options and workers, no model;
- **embed only**: the decoded windows (picture clips of 2 frames, 2 s sound windows) embedded in this process.

Reported as video seconds per wall second for each, plus windows per second. On shared 2-core machines the
absolute numbers move with the load (printed first); the split between decode and embed is the useful part.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.machine import load_average, machine_info
from bench.report import table


def ensure_video_world(workdir: Path, videos: int, seed: int = 0) -> Path:
    """A world of ``4 * videos`` groups (at least 40) with ``videos`` videos, made once under ``workdir``."""
    from xsearch.world import is_world, make_world, world_info

    out = Path(workdir) / f"video-world-{videos}-s{seed}"
    if not (is_world(out) and world_info(out).get("videos") == videos):
        make_world(out, max(40, 4 * videos), seed, videos=videos, overwrite=out.exists())
    return out


def run(videos: int = 24, workers: int = 2, device: str = "cpu", workdir: Path | None = None, repeat: int = 2,
        log=print) -> dict:
    """Each of the three runs is timed ``repeat`` times; the fastest counts (other load only ever slows a run)."""
    import xsearch.engine.executors.base
    from xsearch.engine import Engine
    from xsearch.engine.embed import decode_options, embed_segments
    from xsearch.media import discover, iter_decoded

    machine = machine_info(device)  # the load average at the start
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="xsearch-bench-video-")
        workdir = Path(tmp)
    try:
        t0 = time.perf_counter()
        world = ensure_video_world(Path(workdir), videos)
        make_s = time.perf_counter() - t0
        records = [json.loads(line) for line in (world / "videos.jsonl").read_text().splitlines() if line.strip()]
        video_s = sum(r["duration"] for r in records)
        files = [f for f in discover(world / "video") if not hasattr(f, "reason")]
        log(f"video bench: {len(files)} videos, {video_s:.0f} s of video (world made in {make_s:.1f} s)")

        collection = Path(workdir) / "collection-video"
        engine = Engine(collection, model="builtin", device=device)
        encoder = engine.encoder("builtin")  # the model is loaded (and warmed up) before timing
        opts = decode_options(encoder)
        warm = next(iter_decoded(files[:1], opts, workers=0))[0]
        for track in ("video", "soundtrack"):
            embed_segments(encoder, track, [s for s in warm if s.track == track][:4])

        embed_time = {"s": 0.0}
        original = xsearch.engine.executors.base.embed_segments

        def timed_embed(enc, track, segments, space=None):
            start = time.perf_counter()
            try:
                return original(enc, track, segments, space)
            finally:
                embed_time["s"] += time.perf_counter() - start

        index_s = embed_in_index = float("inf")
        xsearch.engine.executors.base.embed_segments = timed_embed
        try:
            for r in range(repeat):
                log(f"video bench: index (end to end) {r + 1}/{repeat}")
                engine.close()
                shutil.rmtree(collection, ignore_errors=True)
                embed_time["s"] = 0.0
                t0 = time.perf_counter()
                report = engine.index_folder(world / "video", workers=workers)
                seconds = time.perf_counter() - t0
                if seconds < index_s:
                    index_s, embed_in_index = seconds, embed_time["s"]
        finally:
            xsearch.engine.executors.base.embed_segments = original
        engine.close()
        windows = dict(report.vectors_added)

        decode_s = embed_s = float("inf")
        for r in range(repeat):
            log(f"video bench: decode only {r + 1}/{repeat}")
            t0 = time.perf_counter()
            decoded = []
            for segments, _ in iter_decoded(files, opts, files_per_batch=32, workers=workers):
                decoded.extend(segments)
            decode_s = min(decode_s, time.perf_counter() - t0)

        by_track: dict[str, list] = {}
        for s in decoded:
            by_track.setdefault(s.track or s.modality, []).append(s)
        for r in range(repeat):
            log(f"video bench: embed only {r + 1}/{repeat}")
            t0 = time.perf_counter()
            for track, segments in by_track.items():
                for start in range(0, len(segments), 64):
                    embed_segments(encoder, track, segments[start:start + 64])
            embed_s = min(embed_s, time.perf_counter() - t0)
        n_windows = sum(windows.values())
        return {
            "machine": machine, "load_average_end": load_average(),
            "config": {"videos": videos, "workers": workers, "device": device, "repeat": repeat,
                       "fps_sampled": opts.video_fps, "window_s": opts.audio_window_s, "hop_s": opts.audio_hop_s},
            "videos": len(files), "video_seconds": video_s, "windows": windows, "skipped": len(report.skipped),
            "index": {"seconds": index_s, "video_s_per_s": video_s / index_s, "windows_per_s": n_windows / index_s,
                      "embed_in_pipeline_s": embed_in_index, "other_s": index_s - embed_in_index},
            "decode_only": {"seconds": decode_s, "video_s_per_s": video_s / decode_s},
            "embed_only": {"seconds": embed_s, "video_s_per_s": video_s / embed_s,
                           "windows_per_s": len(decoded) / embed_s},
        }
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def to_markdown(result: dict) -> str:
    m, c, i = result["machine"], result["config"], result["index"]
    head = (f"{result['videos']} videos, {result['video_seconds']:.0f} s of video "
            f"({', '.join(f'{n} {t}' for t, n in result['windows'].items())} windows); workers {c['workers']}, "
            f"device {c['device']}; best of {c['repeat']}; frames sampled at {c['fps_sampled']:g} fps, "
            f"{c['window_s']:g} s windows every {c['hop_s']:g} s. CPU: {m.get('cpu')}, {m.get('cores')} cores, "
            f"load {m.get('load_average')} → {result['load_average_end']}")
    rows = [
        ["index (end to end)", i["seconds"], i["video_s_per_s"], i["windows_per_s"]],
        ["  of which embedding (main process)", i["embed_in_pipeline_s"], None, None],
        ["  of which waiting for decoders + writing", i["other_s"], None, None],
        ["decode only", result["decode_only"]["seconds"], result["decode_only"]["video_s_per_s"], None],
        ["embed only", result["embed_only"]["seconds"], result["embed_only"]["video_s_per_s"],
         result["embed_only"]["windows_per_s"]],
    ]
    return head + "\n\n" + table(["run", "seconds", "video s / s", "windows / s"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2, help="time each run this many times; the fastest counts")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated world here (reused)")
    parser.add_argument("--out", type=Path, default=None, help="write every number as JSON")
    args = parser.parse_args(argv)
    import sys

    result = run(args.videos, args.workers, args.device, args.workdir, args.repeat,
                 log=lambda s: print(s, file=sys.stderr))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(to_markdown(result))


if __name__ == "__main__":
    main()
