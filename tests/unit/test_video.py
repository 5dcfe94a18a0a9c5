"""Video as a modality: generated videos with ground truth, finding the moment from the CLI, hostile video files,
overlapping audio windows, and the video evaluation (text/image/audio → video)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from xsearch.world import make_world, render_audio, render_image, sample_groups, world_info  # noqa: E402
from xsearch.world.video import scene_sound, write_video  # noqa: E402

N_GROUPS, SEED, N_VIDEOS = 16, 3, 3


# -- fixtures (module scope: generated and indexed once) ------------------------------------------------------


@pytest.fixture(scope="module")
def vworld(tmp_path_factory) -> Path:
    """A 16-group world with 3 videos of 3-5 scenes."""
    return make_world(tmp_path_factory.mktemp("vworld") / "w", N_GROUPS, SEED, videos=N_VIDEOS, workers=1).parent


@pytest.fixture(scope="module")
def records(vworld) -> list[dict]:
    return [json.loads(line) for line in (vworld / "videos.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def collection(vworld, tmp_path_factory) -> Path:
    """The whole world (images, sounds, captions and videos) indexed with the builtin model."""
    from xsearch.engine import Engine

    col = tmp_path_factory.mktemp("vcol") / "c"
    with Engine(col, model="builtin") as engine:
        report = engine.index_folder(vworld, workers=0)
    assert not report.skipped and report.added == 3 * N_GROUPS + N_VIDEOS
    return col


@pytest.fixture(scope="module")
def clip(tmp_path_factory, records, vworld) -> tuple[Path, dict, dict]:
    """A 4 s query clip of one scene (its picture and sound), outside the collection: (path, video record, scene)."""
    record = records[1]
    scene = record["scenes"][1]
    group = next(g for g in sample_groups(N_GROUPS, SEED) if g.id == scene["group"])
    path = tmp_path_factory.mktemp("clip") / "q.mp4"
    write_video(path, [render_image(group)], [scene_sound(group)])
    return path, record, scene


def _hits(r, target: str = "video") -> list[dict]:
    assert r.code == 0, r.err
    return json.loads(r.out)["results"][target]


def _in_scene(hit: dict, scene: dict) -> bool:
    """The hit's moment [offset, end] overlaps the scene's span."""
    return hit["offset"] < scene["end"] and hit["end"] > scene["start"]


# -- the generated videos ---------------------------------------------------------------------------------------


def test_world_videos_and_their_ground_truth(vworld, records, tmp_path):
    info = world_info(vworld)
    assert info["videos"] == N_VIDEOS and info["video"]["scene_s"] == 4.0 and info["video"]["fps"] == 2
    assert sorted(os.listdir(vworld / "video")) == [f"v{i:06d}.mp4" for i in range(N_VIDEOS)]
    groups = {g.id: g for g in sample_groups(N_GROUPS, SEED)}
    for record in records:
        scenes = record["scenes"]
        assert 3 <= len(scenes) <= 5 and len({s["group"] for s in scenes}) == len(scenes)
        assert [(s["start"], s["end"]) for s in scenes] == [(4.0 * k, 4.0 * k + 4) for k in range(len(scenes))]
        assert record["duration"] == scenes[-1]["end"]
        for s in scenes:
            g = groups[s["group"]]
            assert s["attributes"] == g.attributes and s["split"] == g.split and len(s["text"]) == 5
            assert (vworld / s["image"]).is_file() and (vworld / s["audio"]).is_file()
        with av.open(str(vworld / record["video"])) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            assert (v.codec_context.width, v.codec_context.height) == (128, 128)
            assert a.codec_context.name == "aac" and a.codec_context.sample_rate == 16000
            assert abs(c.duration / av.time_base - record["duration"]) < 0.1

    # the paired-data loader never sees the videos; --videos 0 leaves the rest of the world byte-identical
    from xsearch.pairs import load_manifest

    manifest = load_manifest(vworld / "manifest.jsonl")
    assert len(manifest.records) == N_GROUPS and not manifest.problems
    plain = make_world(tmp_path / "plain", N_GROUPS, SEED, workers=1).parent
    with_videos, without = _digest(vworld), _digest(plain)
    assert set(with_videos) - set(without) == {"videos.jsonl", *(f"video/v{i:06d}.mp4" for i in range(N_VIDEOS))}
    assert {k: v for k, v in with_videos.items() if k in without and k != "world.json"} == \
        {k: v for k, v in without.items() if k != "world.json"}
    assert {k: v for k, v in info.items() if k not in ("videos", "video")} == world_info(plain)

    # the same seed writes the same video bytes
    again = make_world(tmp_path / "again", N_GROUPS, SEED, videos=N_VIDEOS, workers=1).parent
    assert _digest(again) == with_videos


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- finding the moment from the CLI ----------------------------------------------------------------------------


def test_a_caption_finds_the_right_video_at_the_right_second(cli, collection, records):
    for record in records:
        scene = record["scenes"][-1]
        hits = _hits(cli("search", scene["text"][0], "--to", "video", "-c", collection, "--json"))
        top = hits[0]
        assert Path(top["path"]).name == Path(record["video"]).name
        assert scene["start"] <= top["offset"] < scene["end"] and _in_scene(top, scene)
        assert top["end"] - top["offset"] == pytest.approx(2.0)
        assert top["matched"] in ("picture", "sound")
    r = cli("search", records[0]["scenes"][0]["text"][0], "--to", "video", "-c", collection)
    assert r.code == 0 and ("(picture)" in r.out or "(sound)" in r.out)


def test_an_image_and_a_sound_find_their_scene(cli, collection, records, vworld):
    record = records[2]
    for scene in record["scenes"]:
        for flag, file in (("--image", scene["image"]), ("--audio", scene["audio"])):
            top = _hits(cli("search", flag, vworld / file, "--to", "video", "-k", "1", "-c", collection, "--json"))[0]
            assert Path(top["path"]).name == Path(record["video"]).name and _in_scene(top, scene), (flag, scene)


def test_a_video_clip_as_the_query(cli, collection, clip):
    path, record, scene = clip
    top = _hits(cli("search", "--video", path, "--to", "video", "-k", "1", "-c", collection, "--json"))[0]
    assert Path(top["path"]).name == Path(record["video"]).name and _in_scene(top, scene)
    images = _hits(cli("search", "--video", path, "--to", "image", "-k", "1", "-c", collection, "--json"), "image")
    assert Path(images[0]["path"]).stem == scene["group"]  # the clip's picture and sound point at its group


def test_similar_on_a_video(cli, collection, clip, vworld, records):
    path, record, scene = clip
    top = _hits(cli("similar", path, "--to", "video", "-k", "1", "-c", collection, "--json"))[0]
    assert Path(top["path"]).name == Path(record["video"]).name and _in_scene(top, scene)
    indexed = vworld / records[0]["video"]
    hits = _hits(cli("similar", indexed, "-c", collection, "--json"))
    assert len(hits) == N_VIDEOS - 1 and str(indexed) not in {h["path"] for h in hits}  # never itself


def test_to_all_includes_video(cli, collection, records):
    scene = records[0]["scenes"][0]
    r = cli("search", scene["text"][0], "--to", "all", "-k", "1", "-c", collection, "--json")
    assert r.code == 0, r.err
    results = json.loads(r.out)["results"]
    assert set(results) == {"image", "audio", "text", "video"}
    assert Path(results["image"][0]["path"]).stem == scene["group"]
    assert Path(results["video"][0]["path"]).name == Path(records[0]["video"]).name


def test_the_api_returns_the_moment_and_serves_the_video(collection, records):
    """What the page plays: the moment (offset, end, picture or sound) and the file as video/mp4 with Range."""
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    from fastapi.testclient import TestClient

    from xsearch.server import create_app

    record = records[0]
    scene = record["scenes"][-1]
    with TestClient(create_app({"v": str(collection)}, warm=False), base_url="http://127.0.0.1") as client:
        r = client.get("/api/collections/v/search", params={"q": scene["text"][0], "to": "video", "limit": 3})
        assert r.status_code == 200, r.text
        top = r.json()["results"]["video"][0]
        assert top["modality"] == "video" and top["name"] == Path(record["video"]).name
        assert _in_scene(top, scene) and top["end"] - top["offset"] == pytest.approx(2.0)
        assert top["matched"] in ("picture", "sound") and top["duration"] == pytest.approx(record["duration"], 0.01)
        whole = Path(top["path"]).read_bytes()
        part = client.get(top["media_url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == whole[:100]
        assert part.headers["content-type"] == "video/mp4"  # a picture window's item and a sound window's alike
        for h in r.json()["results"]["video"]:
            assert client.get(h["media_url"], headers={"Range": "bytes=0-9"}).headers["content-type"] == "video/mp4"
        like = client.get("/api/collections/v/search", params={"like": top["item_id"], "to": "video"})
        assert like.status_code == 200 and top["path"] not in {h["path"] for h in like.json()["results"]["video"]}


def _api(collection: Path, **kwargs):
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    from fastapi.testclient import TestClient

    from xsearch.server import create_app

    app = create_app({"v": str(collection)}, warm=False, **kwargs)
    return app, TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


def _api_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


def test_a_video_clip_uploaded_as_the_query(collection, clip):
    """POST /api/uploads takes an mp4 by its content (not its name): a query of modality video whose picture and
    sound, fused, find the scene's image, its sound and the video at that moment; POST search takes one too."""
    path, record, scene = clip
    data = path.read_bytes()
    app, client = _api(collection)
    with client:
        up = client.post("/api/uploads", files={"file": ("holiday.png", data, "image/png")})  # the name lies
        assert up.status_code == 200, up.text
        body = up.json()
        assert (body["modality"], body["content_type"], body["name"]) == ("video", "video/mp4", "holiday.png")
        assert body["duration"] == pytest.approx(4.0, abs=0.2) and body["size"] == len(data)
        assert app.state.xs.uploads.get(body["id"]).path.name == f"{body['id']}.mp4"  # stored under its real kind
        kept = client.get(body["url"], headers={"Range": "bytes=0-11"})  # the page's chip plays it
        assert kept.status_code == 206 and kept.content == data[:12] and kept.headers["content-type"] == "video/mp4"
        tops = {}
        for to in ("image", "audio", "video"):
            r = client.get("/api/collections/v/search", params={"upload": body["id"], "to": to, "limit": 3})
            assert r.status_code == 200, r.text
            res = r.json()
            assert res["queries"] == [{"kind": "upload", "modality": "video", "upload": body["id"],
                                       "value": "holiday.png", "item_id": None, "weight": 1.0}]
            tops[to] = res["results"][to][0]
        assert Path(tops["image"]["path"]).name == Path(scene["image"]).name
        assert Path(tops["audio"]["path"]).name == Path(scene["audio"]).name
        assert Path(tops["video"]["path"]).name == Path(record["video"]).name and _in_scene(tops["video"], scene)

        # posted with the search itself, beside a caption of another scene and weights that favour the clip
        other = record["scenes"][0]
        r = client.post("/api/collections/v/search", params={"q": other["text"][0], "to": "video", "weights": "0.2,1"},
                        files={"file": ("q.mp4", data, "video/mp4")})
        assert r.status_code == 200, r.text
        res = r.json()
        assert [(q["kind"], q["modality"], q["weight"]) for q in res["queries"]] == [("text", "text", 0.2),
                                                                                     ("upload", "video", 1.0)]
        top = res["results"]["video"][0]
        assert Path(top["path"]).name == Path(record["video"]).name and _in_scene(top, scene)


def test_bad_video_uploads_are_clean_errors(collection, clip):
    from xsearch.server import Limits

    data = clip[0].read_bytes()
    assert data.index(b"moov") > len(data) // 2  # the muxer writes the index last: half a file has none
    app, client = _api(collection, limits=Limits(upload_seconds=3.0))
    with client:
        err = _api_error(client.post("/api/uploads", files={"file": ("q.mp4", data)}), 413, "upload.too_long")
        assert err["message"] == "q.mp4 lasts 4 s; uploads may last at most 3 s"
        _api_error(client.post("/api/collections/v/search", files={"file": ("q.mp4", data)}), 413, "upload.too_long")
        for name, broken in (("half.mp4", data[: len(data) // 2]), ("noise.mp4", data[:32] + bytes(range(256)) * 40),
                             ("empty.mkv", b"\x1a\x45\xdf\xa3" + b"\0" * 60)):
            err = _api_error(client.post("/api/uploads", files={"file": (name, broken)}), 422, "query.bad_file")
            assert err["message"].startswith(f"{name} is not a video clip xsearch can read: "), err
            _api_error(client.post("/api/collections/v/search", files={"file": (name, broken)}), 422,
                       "query.bad_file")
        err = _api_error(client.post("/api/uploads", files={"file": ("notes.mp4", b"%PDF-1.4\n")}), 415,
                         "upload.unsupported")
        assert err["message"] == "notes.mp4 is not an image, a sound or a video clip xsearch can read " \
                                 "(it looks like a PDF document)"
        assert not list(app.state.xs.uploads.dir.iterdir())  # nothing refused is kept


def test_video_containers_are_recognised_by_content(collection, clip, tmp_path):
    """MOV, WebM, MKV and AVI uploads get their own extension and content type whatever they are called; a
    streamed MKV whose header has no duration is measured from its packets, so the length limit still holds."""
    from xsearch.server import Limits

    def remux(fmt: str) -> bytes:
        out = tmp_path / f"clip.{fmt}"
        with av.open(str(clip[0])) as inp, av.open(str(out), "w", format=fmt) as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in inp.streams}
            for packet in inp.demux():
                if packet.dts is not None:
                    packet.stream = streams[packet.stream.index]
                    dst.mux(packet)
        return out.read_bytes()

    def encoded(fmt: str, codec: str) -> bytes:
        """3 s of pictures only, encoded anew (an AVI cannot take MP4's H.264 as it is)."""
        out = tmp_path / f"enc.{fmt}"
        with av.open(str(out), "w", format=fmt) as c:
            v = c.add_stream(codec, rate=2)
            v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
            for i in range(6):
                frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 2)
                c.mux(v.encode(frame))
            c.mux(v.encode(None))
        return out.read_bytes()

    streamed = tmp_path / "streamed.mkv"
    _write_unknown_length(streamed)
    with av.open(str(streamed)) as c:
        assert not c.duration  # nothing in the header says how long it is
    cases = [("mov", remux("mov"), ".mov", "video/quicktime", 4.0),
             ("mkv", remux("matroska"), ".mkv", "video/x-matroska", 4.0),
             ("avi", encoded("avi", "mpeg4"), ".avi", "video/x-msvideo", 3.0),
             ("webm", encoded("webm", "libvpx"), ".webm", "video/webm", 3.0),
             ("streamed", streamed.read_bytes(), ".mkv", "video/x-matroska", 5.0)]
    app, client = _api(collection, limits=Limits(upload_seconds=4.5))
    with client:
        for what, data, ext, mime, seconds in cases:
            r = client.post("/api/uploads", files={"file": ("clip.bin", data, "application/octet-stream")})
            if seconds > 4.5:
                err = _api_error(r, 413, "upload.too_long")
                assert err["params"]["seconds"] == pytest.approx(seconds, abs=0.6), what
                continue
            assert r.status_code == 200, (what, r.text)
            body = r.json()
            assert (body["modality"], body["content_type"]) == ("video", mime), what
            assert body["duration"] == pytest.approx(seconds, abs=0.3), what
            assert app.state.xs.uploads.get(body["id"]).path.suffix == ext, what
        mov = client.post("/api/uploads", files={"file": ("q.mov", cases[0][1])}).json()
        r = client.get("/api/collections/v/search", params={"upload": mov["id"], "to": "video", "limit": 1})
        assert r.status_code == 200, r.text
        top = r.json()["results"]["video"][0]
        assert Path(top["path"]).name == Path(clip[1]["video"]).name and _in_scene(top, clip[2])


def test_duration_filter_and_catalog_metadata(cli, collection, records):
    durations = {Path(r["video"]).name: r["duration"] for r in records}
    cut = sorted(durations.values())[0] + 0.5
    caption = records[0]["scenes"][0]["text"][0]
    short = _hits(cli("search", caption, "--to", "video", "--max-duration", cut, "-c", collection, "--json"))
    long = _hits(cli("search", caption, "--to", "video", "--min-duration", cut, "-c", collection, "--json"))
    assert {Path(h["path"]).name for h in short} == {n for n, d in durations.items() if d <= cut}
    assert {Path(h["path"]).name for h in long} == {n for n, d in durations.items() if d >= cut}
    for h in short + long:  # the catalog keeps each video's duration and resolution
        assert h["duration"] == pytest.approx(durations[Path(h["path"]).name], abs=0.1)
        assert (h["width"], h["height"]) == (128, 128)
    r = cli("info", "-c", collection, "--json")
    assert r.code == 0 and json.loads(r.out)["collection"]["modalities"]["video"]["files"] == N_VIDEOS


# -- hostile video files --------------------------------------------------------------------------------------


def _scenes(n: int, seed: int = 5):
    groups = sample_groups(n, seed)
    return [render_image(g) for g in groups], [scene_sound(g) for g in groups]


def _faststart(src: Path, dst: Path) -> None:
    """Remux ``src`` with its index (moov) first, so a cut copy still opens."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def _write_vfr(path: Path, pictures) -> list[float]:
    """A picture-only mp4 with irregular frame times (ms time base); scene k fills [4k, 4k + 4) s."""
    rng = np.random.default_rng(2)
    times = []
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=30)
        v.width, v.height, v.pix_fmt = 128, 128, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        t = 0
        while t < 4000 * len(pictures):
            frame = av.VideoFrame.from_ndarray(np.asarray(pictures[t // 4000]), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            c.mux(v.encode(frame))
            times.append(t / 1000)
            t += int(rng.choice([40, 90, 400, 1100]))
        c.mux(v.encode(None))
    return times


def _write_unknown_length(path: Path) -> None:
    """A 5 s picture-only MKV written to a pipe-like file: its header has no duration (as a streamed recording)."""
    import io

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def seekable(self):
            return False

        def write(self, b):
            self.data += bytes(b)
            return len(b)

    pipe = Pipe()
    with av.open(pipe, "w", format="matroska") as c:
        v = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=2)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 2)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    path.write_bytes(bytes(pipe.data))


def _write_rotated(path: Path) -> None:
    """A 128x64 picture (left half white) whose display matrix turns it 90° counter-clockwise."""
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=2)
        v.width, v.height, v.pix_fmt = 128, 64, "yuv420p"
        v.set_display_rotation(90)
        picture = np.zeros((64, 128, 3), np.uint8)
        picture[:, :64] = 255
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 2)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    pictures, sounds = _scenes(3)
    write_video(folder / "ok.mp4", pictures, sounds)
    write_video(folder / "silent.mp4", pictures, None)
    with av.open(str(folder / "audio_only.mp4"), "w", format="mp4") as c:  # an mp4 with only an aac stream
        a = c.add_stream("aac", rate=16000, layout="mono")
        wave = np.concatenate(sounds).astype(np.float32)
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            c.mux(a.encode(frame))
        c.mux(a.encode(None))
    data = (folder / "ok.mp4").read_bytes()
    rng = np.random.default_rng(0)
    (folder / "random.mp4").write_bytes(rng.bytes(5000))
    (folder / "header_then_garbage.mp4").write_bytes(data[:64] + rng.bytes(5000))
    (folder / "cut_in_half.mp4").write_bytes(data[:len(data) // 2])  # its index (moov) was at the end: gone
    fast_path = tmp_path_factory.mktemp("faststart") / "fast.mp4"
    _faststart(folder / "ok.mp4", fast_path)
    fast = fast_path.read_bytes()
    (folder / "fast_cut_in_half.mp4").write_bytes(fast[:len(fast) // 2])  # index first: the start still plays
    _write_vfr(folder / "vfr.mp4", pictures)
    _write_rotated(folder / "rotated.mp4")
    _write_unknown_length(folder / "no_duration.mkv")
    frames = [p.convert("P") for p in pictures]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=500, loop=0)
    return folder


@pytest.fixture(scope="module")
def hostile_report(hostile, tmp_path_factory) -> tuple[dict, Path]:
    from xsearch.cli.main import main

    col = tmp_path_factory.mktemp("hcol") / "c"
    out = tmp_path_factory.getbasetemp() / "hostile-report.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["index", str(hostile), "-c", str(col), "--model", "builtin", "--workers", "0", "--json"])
    out.write_text(buffer.getvalue())
    assert code == 0, buffer.getvalue()
    return json.loads(buffer.getvalue()), col


def test_bad_videos_are_reported_and_the_rest_indexed(hostile_report):
    report, _ = hostile_report
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    notes = {Path(n.split(":")[0]).name: n for n in report["notes"]}
    assert set(skipped) == {"random.mp4", "header_then_garbage.mp4", "cut_in_half.mp4"}
    assert "not video" in skipped["random.mp4"]
    assert "not a readable video container" in skipped["header_then_garbage.mp4"]
    assert "not a readable video container" in skipped["cut_in_half.mp4"]
    assert "no sound; only its picture is indexed" in notes["silent.mp4"]
    assert "no picture; only its sound is indexed" in notes["audio_only.mp4"]
    assert "indexed what could be read" in notes["fast_cut_in_half.mp4"]
    assert "animated image (an image sequence); only its first frame is indexed" in notes["animated.gif"]
    assert "ok.mp4" not in notes and "vfr.mp4" not in skipped
    # 7 videos (ok, silent, audio only, fast cut, vfr, rotated, no duration) + the gif as an image
    assert report["added"] == 8 and report["vectors_added"]["image"] == 1


def test_partial_videos_keep_what_could_be_read(cli, hostile_report, hostile):
    _, col = hostile_report
    pictures, _ = _scenes(3)
    by_name = {}
    for h in _hits(cli("search", "x", "--to", "video", "-c", col, "--json")):
        by_name[Path(h["path"]).name] = h
    assert by_name["silent.mp4"]["matched"] == "picture" and by_name["audio_only.mp4"]["matched"] == "sound"
    assert "width" not in by_name["audio_only.mp4"] and by_name["audio_only.mp4"]["duration"] == pytest.approx(12, 0.1)
    assert by_name["no_duration.mkv"]["duration"] == pytest.approx(5.0)  # how far decoding got, not 0
    from xsearch.engine import Engine

    with Engine(col) as engine:  # the cut copy keeps the windows of its first half (the whole file has 11)
        store = engine.store()
        whole, cut = (store.file(str(hostile / name)) for name in ("ok.mp4", "fast_cut_in_half.mp4"))
        assert len(store.file_vectors(whole.id, "video")) == 11
        assert 3 <= len(store.file_vectors(cut.id, "video")) < 9
        assert 1 <= len(store.file_vectors(cut.id, "soundtrack")) < 9
    # the gif is an image: its first frame
    images = _hits(cli("search", "--image", hostile / "animated.gif", "--to", "image", "-c", col, "--json"), "image")
    assert Path(images[0]["path"]).name == "animated.gif" and images[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_rotation_metadata_turns_the_picture(cli, hostile_report, hostile):
    from xsearch.media.types import DecodeOptions
    from xsearch.media.video import _frames

    frames, why = _frames(hostile / "rotated.mp4", DecodeOptions(), 60)
    assert why is None and frames
    picture = np.asarray(frames[0][1])
    assert picture.shape == (128, 64, 3)  # shown upright: 64 wide, 128 tall
    assert picture[80:].mean() > 200 and picture[:48].mean() < 50  # the white left half turned to the bottom
    _, col = hostile_report
    hits = _hits(cli("search", "x", "--to", "video", "-c", col, "--path-glob", "rotated.mp4", "--json"))
    assert (hits[0]["width"], hits[0]["height"]) == (64, 128)  # the catalog keeps the shown size


def test_variable_frame_rate_is_sampled_on_timestamps(hostile):
    from xsearch.media.types import DecodeOptions
    from xsearch.media.video import _frames

    pictures, _ = _scenes(3)
    frames, why = _frames(hostile / "vfr.mp4", DecodeOptions(), 60)
    assert why is None
    times = [t for t, _ in frames]
    slots = [int(t) for t in times]  # at most one frame per second of the timeline (video_fps = 1)
    assert slots == sorted(set(slots)) and len(slots) >= 9
    assert times[-1] > 10
    references = [np.asarray(p, dtype=np.float32) for p in pictures]
    for t, image in frames:  # each sampled frame shows the scene its timestamp falls in
        diffs = [np.abs(np.asarray(image, dtype=np.float32) - r).mean() for r in references]
        assert int(np.argmin(diffs)) == int(t // 4), (t, diffs)


def test_a_very_long_video_is_cut_and_the_cut_reported(cli, tmp_path, monkeypatch):
    import xsearch.engine.indexer

    folder = tmp_path / "long"
    folder.mkdir()
    pictures, sounds = _scenes(5)
    write_video(folder / "long.mp4", pictures, sounds)  # 20 s
    original = xsearch.engine.indexer.decode_options
    monkeypatch.setattr(xsearch.engine.indexer, "decode_options",
                        lambda encoder: dataclasses.replace(original(encoder), max_video_s=5.0))
    r = cli("index", folder, "-c", tmp_path / "c", "--model", "builtin", "--workers", "0", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert any("long.mp4: 20 s long; only the first 5 s were indexed" in n for n in report["notes"])
    assert report["vectors_added"]["video"] <= 5 and report["vectors_added"]["soundtrack"] <= 5
    hits = _hits(cli("search", "x", "--to", "video", "-c", tmp_path / "c", "--json"))
    assert hits[0]["offset"] <= 5.0


# -- overlapping audio windows ----------------------------------------------------------------------------------


def test_overlapping_windows_find_a_shifted_sound(tmp_path, monkeypatch):
    """A group's sound (played twice: 4 s) 0.7 s off the window grid inside a 12 s file of other sounds: the
    best window's score against the group's 2 s sound, with windows every 2 s (disjoint) and every 1 s (half
    overlapping, what indexing does)."""
    import soundfile

    import xsearch.engine.embed
    from xsearch.encoders.registry import load_encoder
    from xsearch.engine.embed import decode_file, embed_file, media_file, segment_vectors

    encoder = load_encoder("builtin")
    groups = sample_groups(30, 4)
    best: dict[float, list[float]] = {1.0: [], 0.5: []}
    for i in range(6):
        target, others = groups[i], [g for g in groups if g is not groups[i]][3 * i:3 * i + 6]
        long = np.concatenate([render_audio(g) for g in others])
        at = int(4.7 * 16000)
        long[at:at + 64000] = np.tile(render_audio(target), 2)
        soundfile.write(tmp_path / "long.wav", long, 16000)
        soundfile.write(tmp_path / "query.wav", render_audio(target), 16000)
        for fraction in best:
            monkeypatch.setattr(xsearch.engine.embed, "AUDIO_HOP_FRACTION", fraction)
            query = embed_file(encoder, media_file(tmp_path / "query.wav", "audio"))
            segments = decode_file(media_file(tmp_path / "long.wav", "audio"), encoder)
            assert len(segments) == (6 if fraction == 1.0 else 11)
            best[fraction].append(float((segment_vectors(encoder, segments, "shared") @ query).max()))
    disjoint, overlap = np.array(best[1.0]), np.array(best[0.5])
    print(f"disjoint {disjoint.round(3)} mean {disjoint.mean():.3f}; overlap {overlap.round(3)} "
          f"mean {overlap.mean():.3f}")
    assert (overlap >= disjoint - 1e-4).all()  # the disjoint windows are among the overlapping ones
    assert overlap.mean() > 0.75 and overlap.mean() - disjoint.mean() > 0.12


# -- the video evaluation ---------------------------------------------------------------------------------------


def test_eval_video_directions(cli, vworld):
    r = cli("eval", "--manifest", vworld / "manifest.jsonl", "--directions", "text:video,image:video,audio:video",
            "--split", "train", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert set(report) == {"video"}
    video = report["video"]
    assert video["videos"] == N_VIDEOS and video["split"] == "train" and video["window_s"] == 2.0
    assert set(video["directions"]) == {"text→video", "image→video", "audio→video"}
    for name, d in video["directions"].items():
        m, c = d["metrics"], d["chance"]
        assert m["queries"] >= 3 and m["R@1"] > 2 * c["R@1"], name
        assert m["R@1"] <= m["R@5"] <= m["R@10"] and m["R@1"] <= m["video_R@1"]
        assert 0 < m["mIoU@1"] <= 0.5 + 1e-9  # a 2 s window inside a 4 s scene at best
    r = cli("eval", "--manifest", vworld / "manifest.jsonl", "--directions", "text:video", "--split", "train")
    assert r.code == 0 and "text→video" in r.out and "mIoU@1" in r.out


def test_eval_scoring_rules():
    from xsearch.core.types import Hit
    from xsearch.evaluation.video import moment_chance, score_hits, window_starts

    def hit(rank, path, offset):
        return Hit(rank, 1.0 / rank, path, "video", offset, rank, end=offset + 2.0)

    relevant = {"/v/b.mp4": [(4.0, 8.0)]}
    first, first_video, iou = score_hits([hit(1, "/v/a.mp4", 4.0), hit(2, "/v/b.mp4", 5.0)], relevant)
    assert (first, first_video) == (2, 2) and np.isnan(iou)  # no IoU: the top video is a wrong one
    first, first_video, iou = score_hits([hit(1, "/v/b.mp4", 9.0), hit(2, "/v/b.mp4", 7.0)], relevant)
    assert (first, first_video, iou) == (2, 1, 0.0)  # right video, moment outside the scene: not a hit at rank 1
    assert score_hits([hit(1, "/v/b.mp4", 3.0)], relevant)[0] == 1  # [3, 5] overlaps [4, 8)
    assert score_hits([hit(1, "/v/b.mp4", 5.0)], relevant)[2] == pytest.approx(0.5)
    assert list(window_starts(16.0, 2.0, 1.0)) == list(range(15))
    assert moment_chance(4, [1 / 3], 1) == pytest.approx(1 / 12)
    assert moment_chance(4, [1 / 3], 4) == pytest.approx(1 / 3)
