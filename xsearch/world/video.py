"""Short videos stitched from the world's scenes, with the ground truth of where each scene is.

A video strings together 3 to 5 scenes of ``SCENE_S`` = 4 s each. A scene is one group: its picture held still
for the whole scene (``FPS`` = 2 frames a second, 128x128) and its 2 s sound played twice, so every audio
window the indexer cuts inside a scene (2 s windows, 1 s hop) hears only that scene. The files are H.264
(libx264; MPEG-4 part 2 when the FFmpeg inside PyAV lacks libx264) with AAC sound at 16 kHz mono, written with
PyAV single-threaded so the bytes depend only on the seed (and the FFmpeg build).

Which groups a video shows: the groups are shuffled (by ``[seed, _VIDEO_STREAM]``) and dealt out in that order,
reshuffled when used up, never twice in one video; so while ``videos x 4 < n`` every group appears at most once.
Video ``i`` is ``video/v00000i.mp4``; its record (``videos.jsonl``) lists its scenes with their time span
``[start, end)`` in seconds, group, split, captions, attributes and the group's own image and sound files.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from xsearch.world.groups import Group
from xsearch.world.sound import SAMPLE_RATE, render_audio

SCENE_S = 4.0
FPS = 2
VIDEO_SIZE = 128  # the world's pictures are 128x128: no scaling
SCENES_PER_VIDEO = (3, 5)  # inclusive
SOUND_REPEATS = 2  # the 2 s group sound, twice: 4 s, one scene
VIDEOS_NAME = "videos.jsonl"
VIDEO_DIR = "video"
_VIDEO_STREAM = 0x71DE0  # tags the video plan's random stream apart from any group index
_CODECS = ("libx264", "mpeg4")


@dataclass(frozen=True)
class VideoPlan:
    """One video to write: its id, file (relative to the world) and the groups of its scenes, in order."""

    id: str
    index: int
    file: str
    scenes: tuple[Group, ...]


def video_id(index: int) -> str:
    """The id of video ``index``: ``v000007``."""
    return f"v{index:06d}"


def plan_videos(groups: list[Group], n_videos: int, seed: int) -> list[VideoPlan]:
    """Which groups each of ``n_videos`` videos shows (see the module docstring); depends only on the inputs."""
    if n_videos <= 0:
        return []
    if not groups:
        raise ValueError("videos need at least one group to show")
    rng = np.random.default_rng([seed, _VIDEO_STREAM])
    pool: list[int] = []
    plans = []
    for i in range(n_videos):
        want = min(int(rng.integers(SCENES_PER_VIDEO[0], SCENES_PER_VIDEO[1] + 1)), len(groups))
        chosen: list[int] = []
        while len(chosen) < want:
            if not pool:
                pool = [int(g) for g in rng.permutation(len(groups))]
            pick = next((g for g in pool if g not in chosen), None)
            if pick is None:  # the pool's rest is already in this video: deal from a fresh shuffle
                pool = []
                continue
            pool.remove(pick)
            chosen.append(pick)
        vid = video_id(i)
        plans.append(VideoPlan(vid, i, f"{VIDEO_DIR}/{vid}.mp4", tuple(groups[g] for g in chosen)))
    return plans


def available_codec() -> str:
    """libx264 when the FFmpeg inside PyAV has it, else mpeg4."""
    import av

    return next((c for c in _CODECS if c in av.codecs_available), "mpeg4")


def scene_sound(group: Group) -> np.ndarray:
    """A scene's sound: the group's 2 s sound ``SOUND_REPEATS`` times (float32, 16 kHz, ``SCENE_S`` long)."""
    return np.tile(render_audio(group), SOUND_REPEATS)


def write_video(path: str | Path, pictures: list, sounds: list[np.ndarray] | None, *, scene_s: float = SCENE_S,
                fps: int = FPS, codec: str | None = None) -> float:
    """Write scenes (a PIL picture each, held ``scene_s`` seconds; and its sound, or None for a silent video) as
    an mp4; returns its length in seconds. Used for the world's videos and by the tests."""
    import av

    codec = codec or available_codec()
    frames_per_scene = round(scene_s * fps)
    with av.open(str(path), "w", format="mp4") as container:
        v = container.add_stream(codec, rate=fps)
        width, height = pictures[0].size
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.thread_count = 1
        v.codec_context.thread_type = "NONE"
        if codec == "libx264":
            v.options = {"crf": "18", "preset": "medium", "threads": "1"}
        else:
            v.bit_rate = 400_000
        a = None
        if sounds is not None:
            a = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            a.bit_rate = 32_000
            a.codec_context.thread_count = 1
        pts = 0
        for picture in pictures:
            rgb = np.asarray(picture.convert("RGB"))
            for _ in range(frames_per_scene):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = pts, Fraction(1, fps)
                pts += 1
                container.mux(v.encode(frame))
        container.mux(v.encode(None))
        if a is not None:
            wave = np.concatenate(sounds).astype(np.float32)
            step = 1024
            for start in range(0, len(wave), step):
                chunk = wave[start:start + step][None, :]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
                container.mux(a.encode(frame))
            container.mux(a.encode(None))
    return len(pictures) * frames_per_scene / fps


def write_planned_video(root: Path, plan: VideoPlan, captions_per_group: int, codec: str | None = None) -> dict:
    """Render and write one planned video under ``root``; returns its ``videos.jsonl`` record."""
    from xsearch.world.image import render_image
    from xsearch.world.text import captions

    duration = write_video(root / plan.file, [render_image(g) for g in plan.scenes],
                           [scene_sound(g) for g in plan.scenes], codec=codec)
    scenes = []
    for k, g in enumerate(plan.scenes):
        scenes.append({
            "start": k * SCENE_S,
            "end": (k + 1) * SCENE_S,
            "group": g.id,
            "split": g.split,
            "text": captions(g, captions_per_group),
            "attributes": g.attributes,
            "image": f"image/{g.id}.png",
            "audio": f"audio/{g.id}.wav",
        })
    return {"id": plan.id, "video": plan.file, "duration": duration, "scenes": scenes}


def video_settings(codec: str) -> dict:
    """How the videos were made, for ``world.json``."""
    return {"scene_s": SCENE_S, "fps": FPS, "size": VIDEO_SIZE, "scenes_per_video": list(SCENES_PER_VIDEO),
            "sound": f"the group's {SCENE_S / SOUND_REPEATS:g} s sound x{SOUND_REPEATS}", "video_codec": codec,
            "audio_codec": "aac", "sample_rate": SAMPLE_RATE, "ground_truth": VIDEOS_NAME}
