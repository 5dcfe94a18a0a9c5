"""Finding the moment: text→video, image→video and audio→video retrieval on a generated world's videos.

A world made with ``--videos N`` holds ``video/*.mp4`` and their ground truth, ``videos.jsonl`` (every scene's
span ``[start, end)`` in seconds, group, split, captions, attributes, and the group's own image and sound). This
evaluation goes through the real engine: the videos are indexed into a temporary collection
(``Engine.index_folder``), and every scene of the chosen split (default: test when any scene is in it) is a query
three ways — its canonical caption, its group's image file and its group's audio file — searched with
``to="video"``, one moment (the best window) per returned video.

A returned video is a **hit** when it shows the query's scene (same attributes; same group when scenes carry no
attributes) AND its moment ``[offset, end]`` overlaps that scene's span. Reported per direction:

- ``R@K`` (K videos returned; K is capped at the number of videos) with its chance level: a random ranking of
  the videos, each with a moment drawn uniformly from its windows;
- ``video R@1``: the top video is a right one, wherever its moment is (how much is lost to localisation);
- ``mIoU@1``: the mean temporal IoU between the top video's moment and the query's scene in it, over queries
  whose top video is right (0 when the moment misses the scene). A window is shorter than a scene, so the best
  possible value is window / scene (2 s / 4 s = 0.5 with the builtin model).

Research code: it imports the engine; the engine never imports it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xsearch.core.errors import UsageError, XsearchError
from xsearch.evaluation.metrics import DEFAULT_KS, log_comb, p_first_within
from xsearch.pairs import jsonl_lines

VIDEOS_NAME = "videos.jsonl"
QUERY_MODALITIES = ("text", "image", "audio")
VIDEO_DIRECTIONS = [(q, "video") for q in QUERY_MODALITIES]


@dataclass
class Scene:
    video: Path
    start: float
    end: float
    group: str
    split: str | None
    label: str  # what makes two scenes the same: attributes (sorted JSON) when known, else the group
    caption: str | None
    image: Path | None
    audio: Path | None


@dataclass
class VideoDirectionResult:
    query: str
    metrics: dict
    chance: dict
    gallery: str = "video"

    @property
    def name(self) -> str:
        return f"{self.query}→{self.gallery}"


@dataclass
class VideoEvalReport:
    model: str
    videos_file: str
    split: str | None
    n_videos: int
    n_scenes: int
    window_s: float
    hop_s: float
    results: list[VideoDirectionResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    index_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "model": self.model, "videos_file": self.videos_file, "split": self.split, "videos": self.n_videos,
            "scenes": self.n_scenes, "window_s": self.window_s, "hop_s": self.hop_s,
            "index_seconds": round(self.index_seconds, 2), "skipped": self.skipped,
            "directions": {r.name: {"metrics": r.metrics, "chance": r.chance} for r in self.results},
        }


def videos_file_for(manifest: str | os.PathLike) -> Path:
    """Where a world's video ground truth sits: ``videos.jsonl`` beside its manifest."""
    return Path(manifest).expanduser().parent / VIDEOS_NAME


def has_videos(manifest: str | os.PathLike) -> bool:
    return videos_file_for(manifest).is_file()


def load_scenes(videos_file: str | os.PathLike) -> tuple[dict[Path, float], list[Scene]]:
    """The videos listed in ``videos.jsonl`` ({absolute path: duration in s}) and all their scenes."""
    path = Path(videos_file).expanduser().absolute()
    if not path.is_file():
        raise UsageError(f"no video ground truth at {path}; make the world with `xsearch world make DIR --videos N`",
                         code="eval.no_videos", path=str(path))
    base = path.parent
    videos: dict[Path, float] = {}
    scenes: list[Scene] = []
    for n, line in jsonl_lines(path):
        try:
            raw = json.loads(line)
            video = base / raw["video"]
            items = raw["scenes"]
        except (ValueError, KeyError, TypeError) as e:
            raise XsearchError(f"{path.name}:{n}: not a video record ({e})") from None
        if not video.is_file():
            raise XsearchError(f"{path.name}:{n}: video file missing: {raw['video']}")
        ends = [float(s["end"]) for s in items if isinstance(s, dict) and "end" in s]
        videos[video] = float(raw.get("duration") or max(ends, default=0.0))
        for s in items:
            attributes = s.get("attributes")
            texts = s.get("text") or []
            texts = [texts] if isinstance(texts, str) else texts
            scenes.append(Scene(
                video=video, start=float(s["start"]), end=float(s["end"]), group=str(s.get("group", "")),
                split=s.get("split"),
                label=json.dumps(attributes, sort_keys=True) if isinstance(attributes, dict) else str(s.get("group")),
                caption=texts[0] if texts else None,
                image=base / s["image"] if s.get("image") else None,
                audio=base / s["audio"] if s.get("audio") else None,
            ))
    if not videos:
        raise XsearchError(f"{path} lists no videos")
    return videos, scenes


def moment_chance(n_videos: int, relevant_q: Sequence[float], k: int) -> float:
    """P(hit within the top ``k``) for a random ranking of ``n_videos`` with one random moment each, when the
    relevant videos' random moments overlap the scene with probabilities ``relevant_q`` (exact for one relevant
    video; their mean is used for several)."""
    r = len(relevant_q)
    if r == 0:
        return 0.0
    q = float(np.mean(relevant_q))
    k = min(k, n_videos)
    total = 0.0
    for j in range(max(1, k - (n_videos - r)), min(r, k) + 1):
        p_j = float(np.exp(log_comb(r, j) + log_comb(n_videos - r, k - j) - log_comb(n_videos, k)))
        total += p_j * (1.0 - (1.0 - q) ** j)
    return total


def window_starts(duration: float, window_s: float, hop_s: float) -> np.ndarray:
    """The start of every window the indexer cuts from a video of ``duration`` seconds."""
    last = max(duration - window_s, 0.0)
    return np.arange(0.0, last + 1e-6, hop_s)


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def score_hits(hits, relevant: dict[str, list[tuple[float, float]]]) -> tuple[int | None, int | None, float]:
    """(rank of the first hit: right video and overlapping moment; rank of the first right video; IoU of the top
    video's moment with its scene when the top video is right, else nan)."""
    first_hit = first_video = None
    top_iou = float("nan")
    for h in hits:
        spans = relevant.get(str(Path(h.path)))
        if spans is None:
            continue
        moment = (float(h.offset), float(h.end if h.end is not None else h.offset))
        if first_video is None:
            first_video = h.rank
        if h.rank == 1:
            top_iou = max(iou(moment, s) for s in spans)
        if first_hit is None and any(moment[0] < s[1] and moment[1] > s[0] for s in spans):
            first_hit = h.rank
    return first_hit, first_video, top_iou


def evaluate_videos(engine, videos: dict[Path, float], scenes: list[Scene], video_dir: Path, *,
                    directions: Sequence[tuple[str, str]] | None = None, split: str | None = None,
                    ks: Sequence[int] = DEFAULT_KS, workers: int = 0, videos_file: str = "",
                    on_item: Callable[[], None] | None = None, log: Callable[[str], None] | None = None
                    ) -> VideoEvalReport:
    """Index ``video_dir`` with ``engine`` (a fresh collection) and score every direction (see the module)."""
    import time

    from xsearch.core.types import Query
    from xsearch.engine.embed import decode_options

    directions = list(directions or VIDEO_DIRECTIONS)
    if split is None and any(s.split == "test" for s in scenes):
        split = "test"
    queries = [s for s in scenes if split is None or s.split == split]
    if not queries:
        raise UsageError(f"{videos_file or 'the videos'}: no scene is in split {split!r}", code="eval.no_scenes")
    t0 = time.perf_counter()
    index_report = engine.index_folder(video_dir, workers=workers)
    seconds = time.perf_counter() - t0
    skipped = [f"{s['path']}: {s['reason']}" for s in index_report.skipped]
    for line in skipped:
        if log:
            log(f"skipped: {line}")
    enc = engine.encoder()
    opts = decode_options(enc)  # the windows the indexer cut (xsearch.engine.embed, the one media → vectors path)
    window, hop = float(opts.audio_window_s), float(opts.audio_hop_s)
    indexed = {str(v) for v in videos} - {s["path"] for s in index_report.skipped}
    n_videos = len(indexed)
    if not n_videos:
        raise XsearchError("none of the videos could be indexed" + (f" ({skipped[0]})" if skipped else ""))
    durations = {str(v): d for v, d in videos.items()}
    by_label: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for s in scenes:
        if str(s.video) in indexed:
            by_label.setdefault(s.label, {}).setdefault(str(s.video), []).append((s.start, s.end))
    k_max = min(max(ks), n_videos)  # R@K for K beyond the number of videos is R@(all videos)
    report = VideoEvalReport(enc.spec, videos_file, split, n_videos, len(queries), window, hop, skipped=skipped,
                             index_seconds=seconds)
    modalities = set(getattr(enc, "modalities", ()))
    for q_modality, _ in directions:
        if q_modality not in modalities:
            if log:
                log(f"{q_modality}→video left out: model {enc.spec} has no {q_modality} tower")
            continue
        firsts, first_videos, ious, chances = [], [], [], {k: [] for k in ks}
        for scene in queries:
            relevant = by_label.get(scene.label, {})
            value = {"text": scene.caption, "image": scene.image, "audio": scene.audio}[q_modality]
            if not relevant or value is None:
                continue
            hits = engine.search([Query(q_modality, str(value))], to="video", k=k_max)["video"]
            first, first_video, top_iou = score_hits(hits, relevant)
            firsts.append(first or np.inf)
            first_videos.append(first_video or np.inf)
            if not np.isnan(top_iou):
                ious.append(top_iou)
            qs = []
            for v, spans in relevant.items():
                starts = window_starts(durations[v], window, hop)
                over = [any(st < e and st + window > b for b, e in spans) for st in starts]
                qs.append(float(np.mean(over)) if over else 0.0)
            for k in ks:
                chances[k].append(moment_chance(n_videos, qs, k))
            if on_item:
                on_item()
        if not firsts:
            continue
        firsts_a, videos_a = np.asarray(firsts), np.asarray(first_videos)
        metrics = {f"R@{k}": float(np.mean(firsts_a <= k)) for k in ks}
        metrics["video_R@1"] = float(np.mean(videos_a <= 1))
        metrics["mIoU@1"] = float(np.mean(ious)) if ious else 0.0
        metrics["queries"] = len(firsts)
        chance = {f"R@{k}": float(np.mean(chances[k])) for k in ks}
        n_rel = [len(by_label.get(s.label, {})) for s in queries if by_label.get(s.label)]
        chance["video_R@1"] = float(np.mean([p_first_within(n_videos, r, 1) for r in n_rel]))
        report.results.append(VideoDirectionResult(q_modality, metrics, chance))
    if not report.results:
        raise UsageError("no video direction could be evaluated with this model", code="eval.no_directions")
    return report


def run_video_evaluation(manifest: str | os.PathLike, *, model: str = "builtin", device: str | None = None,
                         split: str | None = None, directions: Sequence[tuple[str, str]] | None = None,
                         ks: Sequence[int] | None = None, workers: int = 0,
                         on_item: Callable[[], None] | None = None,
                         log: Callable[[str], None] | None = None) -> VideoEvalReport:
    """Video retrieval metrics for the world whose ``manifest.jsonl`` is given (its ``videos.jsonl`` beside it):
    the videos are indexed with ``model`` into a temporary collection and searched as the CLI would."""
    from xsearch.engine import Engine

    videos_file = videos_file_for(manifest)
    videos, scenes = load_scenes(videos_file)
    video_dir = Path(os.path.commonpath([str(v.parent) for v in videos]))
    with tempfile.TemporaryDirectory(prefix="xsearch-video-eval-") as tmp:
        with Engine(Path(tmp) / "collection", model=model or "builtin", device=device) as engine:
            return evaluate_videos(engine, videos, scenes, video_dir, directions=directions, split=split,
                                   ks=tuple(ks or DEFAULT_KS), workers=workers, videos_file=str(videos_file),
                                   on_item=on_item, log=log)
