"""Video files with PyAV (FFmpeg inside its wheel): pictures sampled over time and the sound track, as windows.

A video becomes two tracks of overlapping windows on one time grid (the audio window length, hop as for audio):

- ``video``: frames sampled at ``video_fps`` (1 per second by default); each window's frames are one segment
  (``data`` = list of RGB PIL images), pooled into one vector in the image space by the encoder;
- ``soundtrack``: the audio stream as mono float32 at the encoder's sample rate, cut like an audio file.

Both tracks belong to the one video file. Rotation metadata is applied to frames; variable frame rates are
handled by sampling on frame timestamps; a file longer than ``max_video_s`` is cut there (``truncated``); a
stream that breaks off mid-file keeps what was decoded (``damaged`` says where).
"""

from __future__ import annotations

import numpy as np

from xsearch.core.errors import MediaError
from xsearch.media._io import one_line
from xsearch.media.types import DecodeOptions, MediaFile, Segment

PICTURE, SOUND = "video", "soundtrack"


def _open(path):
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, ValueError, IndexError) as e:
        reason = getattr(e, "strerror", None) or one_line(e)  # FFmpeg's own text repeats the path
        raise MediaError(f"not a readable video container ({reason})", code="media.bad_video") from None


def _duration(container) -> float:
    import av

    if container.duration:
        return float(container.duration / av.time_base)
    spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(spans, default=0.0)


def _stream_s(stream) -> float:
    """A stream's own length in seconds as its header gives it (0 when it does not say)."""
    return float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0


def probe(path, stop_after_s: float | None = None) -> dict:
    """What a video container holds, without decoding a frame: ``{duration, has_picture, has_audio}``.

    The duration is the header's; a header without one (a streamed WebM / MKV) is measured from packet
    timestamps (demuxing only), stopping once past ``stop_after_s`` when given (0.0 when nothing says).
    MediaError ``media.bad_video`` when the file is not a readable container or has neither picture nor sound."""
    import av

    with _open(path) as container:
        videos, audios = list(container.streams.video), list(container.streams.audio)
        if not videos and not audios:
            raise MediaError("the container has neither a picture nor a sound stream", code="media.bad_video")
        duration = _duration(container)
        if not duration:
            try:
                for packet in container.demux(*(videos[:1] + audios[:1])):
                    if packet.pts is None or not packet.time_base:
                        continue
                    duration = max(duration, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                    if stop_after_s is not None and duration > stop_after_s:
                        break
            except (av.FFmpegError, ValueError):
                pass  # a stream that breaks off: what was read so far
    return {"duration": duration, "has_picture": bool(videos), "has_audio": bool(audios)}


def _frames(path, opts: DecodeOptions, limit_s: float,
            seen: dict | None = None) -> tuple[list[tuple[float, object]], str | None]:
    """(timestamp, RGB image) sampled every 1/video_fps seconds, and why decoding stopped early (or None).
    ``seen`` (optional) receives ``last`` (the last decoded frame's time) and ``rotation`` (degrees applied)."""
    import av

    from xsearch.media.image import shrink_to_short_side

    step = 1.0 / opts.video_fps
    out: list[tuple[float, object]] = []
    next_t, index, why = 0.0, 0, None
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 25)
        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else index / rate
                index += 1
                if t > limit_s:
                    break
                if seen is not None:
                    seen["last"] = float(t)
                if t + 1e-6 < next_t:
                    continue
                image = frame.to_image()
                rotation = getattr(frame, "rotation", 0) or 0
                if seen is not None and rotation:
                    seen.setdefault("rotation", rotation)
                if rotation:
                    image = image.rotate(rotation, expand=True)  # the display matrix's counter-clockwise angle
                out.append((float(t), shrink_to_short_side(image.convert("RGB"), opts.image_short_side)))
                next_t = (int(t / step) + 1) * step
        except (av.FFmpegError, ValueError) as e:
            last = out[-1][0] if out else 0.0
            why = f"the picture breaks off after {last:.1f} s ({one_line(e)})"
    return out, why


def _sound(path, opts: DecodeOptions, limit_s: float) -> tuple[np.ndarray, str | None]:
    """The audio stream as mono float32 at ``opts.sample_rate`` (at most ``limit_s``), and why it stopped early."""
    import av

    chunks: list[np.ndarray] = []
    why = None
    limit = int(limit_s * opts.sample_rate)
    got = 0
    with _open(path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=opts.sample_rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    got += chunks[-1].size
                if got >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as e:
            why = f"the sound breaks off after {got / opts.sample_rate:.1f} s ({one_line(e)})"
    wave = np.concatenate(chunks)[:limit] if chunks else np.zeros(0, np.float32)
    if not np.isfinite(wave).all():
        wave = np.nan_to_num(wave, nan=0.0, posinf=0.0, neginf=0.0)
    return wave.astype(np.float32, copy=False), why


def picture_windows(frames: list[tuple[float, object]], window_s: float, hop_s: float,
                    duration: float) -> list[tuple[float, list]]:
    """Group sampled frames into overlapping windows ``[(start_s, frames)]`` on the audio windows' time grid."""
    if not frames:
        return []
    end = max(duration, frames[-1][0] + 1e-3)
    windows, start = [], 0.0
    while start < end:
        inside = [img for t, img in frames if start - 1e-6 <= t < start + window_s - 1e-6]
        if inside:
            windows.append((round(start, 6), inside))
        if start + window_s >= end:
            break
        start += hop_s
    return windows


def decode_video(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    """The video modality's decoder: picture windows (track ``video``) and sound windows (track ``soundtrack``);
    info {duration, width, height, fps, has_audio, has_picture, truncated, damaged, note}."""
    from xsearch.media.audio import split_windows

    with _open(file.path) as container:
        videos, audios = list(container.streams.video), list(container.streams.audio)
        duration = _duration(container)
        info = {"duration": duration, "has_audio": bool(audios), "has_picture": bool(videos),
                "truncated": duration > opts.max_video_s}
        picture_s = _stream_s(videos[0]) if videos else 0.0
        sound_s = _stream_s(audios[0]) if audios else 0.0
        if videos:
            v = videos[0]
            info.update(width=v.codec_context.width or None, height=v.codec_context.height or None,
                        fps=float(v.average_rate) if v.average_rate else None)
    if not videos and not audios:
        raise MediaError("the container has neither a picture nor a sound stream", code="media.bad_video")
    limit = min(duration, opts.max_video_s)  # 0 when the header has no duration: windows end with the frames
    decoded_s = 0.0  # how far decoding got, for a file whose header gives no duration (a streamed WebM / MKV)
    window, hop = opts.audio_window_s, opts.audio_hop_s or opts.audio_window_s
    problems, notes = [], []
    segments: list[Segment] = []
    if videos:
        seen: dict = {}
        frames, why = _frames(file.path, opts, opts.max_video_s, seen)
        if abs(seen.get("rotation", 0)) == 90 and info.get("width") and info.get("height"):
            info["width"], info["height"] = info["height"], info["width"]  # the catalog keeps the shown size
        expected = min(picture_s or duration, opts.max_video_s)
        slack = 1.0 + 1.0 / (info.get("fps") or 1.0)
        if not why and frames and expected - seen.get("last", 0.0) > slack:  # the stream ended without an error
            why = f"the picture ends at {seen['last']:.1f} s though the file says {expected:.1f} s"
        if why:
            problems.append(why)
        if frames:
            decoded_s = seen.get("last", 0.0) + 1.0 / (info.get("fps") or opts.video_fps)
        for start, clip in picture_windows(frames, window, hop, limit):
            segments.append(Segment(file, clip, start, info, track=PICTURE))
    else:
        notes.append("it has no picture; only its sound is indexed")
    if audios:
        wave, why = _sound(file.path, opts, opts.max_video_s)
        expected = min(sound_s or duration, opts.max_video_s)
        if not why and wave.size and expected - wave.size / opts.sample_rate > 1.0:
            why = f"the sound ends at {wave.size / opts.sample_rate:.1f} s though the file says {expected:.1f} s"
        if why:
            problems.append(why)
        decoded_s = max(decoded_s, wave.size / opts.sample_rate)
        for start, samples in split_windows(wave, opts.sample_rate, window, hop):
            segments.append(Segment(file, samples, start, info, track=SOUND))
    else:
        notes.append("it has no sound; only its picture is indexed")
    if not duration and decoded_s:
        info["duration"] = round(decoded_s, 3)
    if problems:
        info["damaged"] = "; ".join(problems)
    if notes:
        info["note"] = "; ".join(notes)
    if not segments:
        raise MediaError(problems[0] if problems else "no frames or sound could be decoded", code="media.bad_video")
    return segments
