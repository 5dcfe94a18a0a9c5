"""Zero-shot tags: every file of a collection scored against text labels, the best labels stored as its tags.

Each label becomes one text vector per track, by prompt ensembling (as CLIP does for zero-shot classification):
the label is put into several templates worded for the track ("a photo of a {}" for pictures, "the sound of a
{}" for audio, "a text about {}" for texts), the templates' embeddings are averaged and renormalised. A file's
score for a label is the best cosine between the label's vector and any of the file's items (its image, any of
its audio windows or text passages, any picture or sound window of a video). The ``top`` best labels scoring at
least ``min_score`` become the file's tags (``StoreWriter.set_tags``), replacing what it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.media import modalities

#: Prompt templates per track; ``{}`` is the label. A track without its own entry uses the templates of the
#: modality whose tower embeds it (a video's pictures: image's; its sound: audio's), else just the label.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "image": ("a photo of a {}", "a picture of {}", "an image of a {}", "a photo of the {}", "{}"),
    "audio": ("the sound of a {}", "{} can be heard", "a recording of a {}", "the sound of {}", "{}"),
    "text": ("a text about {}", "a passage about {}", "{}"),
}
MAX_LABEL_CHARS = 200
#: Labels one tagging run scores: each is embedded through the text tower once per template, so 20,000 labels
#: cost minutes of CPU (ImageNet's 1,000 classes fit).
MAX_LABELS = 5000


def templates_for(track: str) -> tuple[str, ...]:
    """The prompt templates for ``track`` (see TEMPLATES)."""
    if track in TEMPLATES:
        return TEMPLATES[track]
    return TEMPLATES.get(modalities.embed_as(track), ("{}",))


def check_labels(labels, max_labels: int = MAX_LABELS) -> list[str]:
    """Labels as a clean list: stripped, empty ones dropped, duplicates dropped (first kept). A string is split
    at commas ("dog, cat, rain"). No label at all → UsageError code tag.no_labels; more than ``max_labels`` →
    tag.too_many_labels."""
    if isinstance(labels, str):
        labels = labels.split(",")
    if labels is None or not isinstance(labels, (list, tuple)):
        raise UsageError(f"labels must be a list of strings, not {labels!r}", code="tag.bad_label", label=labels)
    out: list[str] = []
    for label in labels:
        if not isinstance(label, str):
            raise UsageError(f"a label must be a string, not {label!r}", code="tag.bad_label", label=label)
        label = " ".join(label.split())
        if len(label) > MAX_LABEL_CHARS:
            raise UsageError(f"label {label[:40]!r}... is longer than {MAX_LABEL_CHARS} characters",
                             code="tag.bad_label", label=label[:40])
        if label and label not in out:
            out.append(label)
    if not out:
        raise UsageError("no labels to tag with: give at least one", code="tag.no_labels")
    if len(out) > max_labels:
        raise UsageError(f"{len(out)} labels; at most {max_labels} at once", code="tag.too_many_labels",
                         count=len(out), max=max_labels)
    return out


def label_vectors(encoder, labels: Sequence[str], track: str) -> np.ndarray:
    """``[len(labels), dim]`` unit vectors in the space ``track`` is indexed in: each label's template
    embeddings averaged, renormalised."""
    from xsearch.encoders.base import l2_normalize

    templates = templates_for(track)
    prompts = [t.format(label) for label in labels for t in templates]
    vecs = encoder.embed("text", prompts, space=encoder.index_space(track))
    return l2_normalize(vecs.reshape(len(labels), len(templates), -1).mean(1))


def tag_files(writer, encoder, labels: Sequence[str], *, top: int = 3, min_score: float | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every file the encoder can read against ``labels`` and store each file's best tags through
    ``writer`` (committed by the caller). ``on_progress(done, total)`` counts items scored. Returns the report."""
    t0 = time.time()
    labels = list(labels)
    tracks = [t for t in writer.modalities if writer.counts().get(t, {}).get("items", 0) and _embeds(encoder, t)]
    total = sum(writer.counts().get(t, {}).get("items", 0) for t in tracks)
    best: dict[int, np.ndarray] = {}  # file id -> best score per label over its items and tracks
    files_per_track: dict[str, int] = {}
    done = 0
    if on_progress:
        on_progress(0, total)
    for track in tracks:
        lv = label_vectors(encoder, labels, track)
        seen: set[int] = set()
        for _, owners, vectors in writer.iter_items(track):
            if not len(owners):
                continue
            scores = np.asarray(vectors, np.float32) @ lv.T  # [items, labels]
            order = np.argsort(owners, kind="stable")
            owners, scores = np.asarray(owners)[order], scores[order]
            starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
            for fid, row in zip(owners[starts].tolist(), np.maximum.reduceat(scores, starts, axis=0)):
                best[fid] = np.maximum(best[fid], row) if fid in best else row
                seen.add(fid)
            done += len(owners)
            if on_progress:
                on_progress(done, total)
        files_per_track[track] = len(seen)
    tagged = 0
    for fid, scores in best.items():
        order = np.argsort(-scores, kind="stable")[:top]
        tags = [(labels[i], round(float(scores[i]), 6)) for i in order
                if min_score is None or scores[i] >= min_score]
        writer.set_tags(fid, tags)
        tagged += bool(tags)
    return {"labels": labels, "files": len(best), "tagged": tagged, "untagged": len(best) - tagged, "top": top,
            "min_score": min_score, "tracks": files_per_track, "templates": {t: list(templates_for(t)) for t in tracks},
            "tag_counts": writer.tag_counts(), "seconds": round(time.time() - t0, 3)}


def _embeds(encoder, track: str) -> bool:
    """Whether ``encoder`` can embed text into ``track``'s space (a track of a modality it has)."""
    try:
        encoder.index_space(track)
    except Exception:  # a track the encoder has no tower for
        return False
    return "text" in encoder.modalities
