"""OCR and keyword + vector (hybrid) search on real photos with words drawn on them (docs/ocr.md).

    python -m bench.ocr [--workdir DIR] [--lines 100000] [--out results/ocr-cpu-2core.md] [--keywords-only]

1. Makes a set of real photos (scikit-learn's and matplotlib's sample photos, cropped differently) with English and
   Chinese words drawn on them (Debian's WenQuanYi Micro Hei font), in near-miss pairs ("INVOICE 2031 PAID" vs
   "INVOICE 2032 DUE", "春天的花园 门票35元" vs "秋天的花园 门票53元"), plus photos without words.
2. Indexes them twice with the offline builtin model, with and without ``--ocr`` (same workers): OCR's share of
   indexing time; and reads them once more in this process: OCR photos/s.
3. Types a few of each picture's words as a query and reports top-1 for ``--mode vector``, ``keyword`` and
   ``hybrid``, and for the OCR text embedded by the model's text tower (is the dense use of OCR text worth it?).
4. Keyword query p50 over ``--lines`` synthetic OCR lines, one per file (the local store's FTS5 trigram index and
   its companion for one- and two-character Chinese), per kind of query: English words, a word and a number, OCR's
   joined words, 2- and 1-character Chinese; ``target keyword_p50_100k: X ms (goal 5 ms) met|missed`` is the
   slowest kind's p50. ``--keywords-only`` runs this part alone (about a minute).

Every number is measured in this run; the machine's load is printed first.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"

#: (words drawn, query typed) in near-miss pairs.
PAIRS = [
    (("INVOICE 2031 PAID", "invoice 2031"), ("INVOICE 2032 DUE", "invoice 2032")),
    (("GATE B12 BOARDING", "gate b12"), ("GATE B21 CLOSED", "gate b21")),
    (("ERROR 404 NOT FOUND", "error 404"), ("ERROR 500 SERVER", "error 500")),
    (("SALE 50% OFF", "sale 50%"), ("SALE 30% OFF", "sale 30%")),
    (("ROOM 318 QUIET", "room 318"), ("ROOM 381 MEETING", "room 381")),
    (("EXIT 42 NORTH", "exit north"), ("EXIT 24 SOUTH", "exit south")),
    (("Flight KL1234 Amsterdam", "amsterdam flight"), ("Flight KL4321 Rotterdam", "rotterdam flight")),
    (("春天的花园 门票35元", "春天的花园"), ("秋天的花园 门票53元", "秋天的花园")),
    (("北京站 出口", "北京站"), ("南京站 入口", "南京站")),
    (("营业时间 9点", "营业时间"), ("休息时间 6点", "休息时间")),
    (("禁止吸烟", "禁止吸烟"), ("禁止停车", "禁止停车")),
    (("第一会议室", "第一会议室"), ("第二会议室", "第二会议室")),
]
PLAIN_PHOTOS = 8


def sources():
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = [Image.fromarray(a) for a in load_sample_images().images]
    out.append(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    return out


def make_photos(root: Path, seed: int = 0) -> list[tuple[str, str]]:
    """Draw the pairs on differently cropped real photos; returns [(file name, query)]."""
    from PIL import ImageDraw, ImageFont

    rng = random.Random(seed)
    base = sources()
    root.mkdir(parents=True, exist_ok=True)
    queries, n = [], 0
    phrases = [p for pair in PAIRS for p in pair] + [(None, None)] * PLAIN_PHOTOS
    for words, query in phrases:
        src = base[n % len(base)]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.6, 0.9)), int(h * rng.uniform(0.6, 0.9))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = src.crop((x, y, x + cw, y + ch)).resize((640, 427))
        if words:
            draw = ImageDraw.Draw(img)
            font = ImageFont.truetype(FONT, rng.randint(30, 44))
            left, top, right, bottom = draw.textbbox((0, 0), words, font=font)
            tx, ty = rng.randint(10, max(10, 630 - right)), rng.randint(10, 417 - bottom)
            if rng.random() < 0.6:  # a sign or a label; otherwise letters straight on the photo, with an outline
                draw.rectangle((tx - 8, ty - 6, tx + right + 8, ty + bottom + 6), fill=(250, 250, 245))
                draw.text((tx, ty), words, font=font, fill=(20, 20, 20))
            else:
                draw.text((tx, ty), words, font=font, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
        name = f"photo{n:03d}.jpg"
        img.save(root / name, quality=90)
        if query:
            queries.append((name, query))
        n += 1
    return queries


def index_time(photos: Path, col: Path, ocr: bool, workers: int) -> float:
    from xsearch.engine import Engine

    t0 = time.perf_counter()
    report = Engine(col, model="builtin").index_folder(photos, workers=workers, ocr=ocr)
    assert not report.skipped, report.skipped
    return time.perf_counter() - t0


def ocr_rate(photos: Path) -> float:
    """Photos/s read by OCR in this process (model loaded first, not counted)."""
    from PIL import Image

    from xsearch.media.ocr import read_lines

    files = sorted(photos.glob("*.jpg"))
    read_lines(Image.open(files[0]))
    t0 = time.perf_counter()
    for f in files:
        read_lines(Image.open(f))
    return len(files) / (time.perf_counter() - t0)


def top1(col: Path, queries, mode: str) -> float:
    from xsearch.core.types import Query
    from xsearch.engine import Engine

    engine = Engine(col)
    right = 0
    for name, q in queries:
        hits = engine.search([Query("text", q)], to="image", k=1, mode=mode)["image"]
        right += bool(hits) and Path(hits[0].path).name == name
    return right / len(queries)


def dense_ocr_top1(col: Path, queries) -> float:
    """The OCR lines of each photo embedded by the collection model's text tower: top-1 of the query's text vector
    against them (what indexing OCR text as vectors would give). Reads the lines from the local catalog."""
    import numpy as np

    from xsearch.engine import Engine

    with sqlite3.connect(f"file:{col / 'catalog.sqlite'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT f.path, group_concat(l.text, ' ') FROM text_lines l JOIN files f "
                            "ON f.id = l.file_id WHERE l.track = 'ocr' GROUP BY f.id").fetchall()
    names, texts = [Path(p).name for p, _ in rows], [t for _, t in rows]
    enc = Engine(col).encoder()
    gallery = enc.embed("text", texts)
    query_vecs = enc.embed("text", [q for _, q in queries])
    best = np.argmax(query_vecs @ gallery.T, axis=1)
    return float(np.mean([names[b] == name for b, (name, _) in zip(best, queries)]))


#: The keyword-latency target of issue #28: p50 of a keyword query at 100k items, in ms.
KEYWORD_GOAL_MS = 5.0


def keyword_corpus(n_lines: int, seed: int = 0):
    """An in-memory catalog of ``n_lines`` OCR-like lines, one per file (plus each file's name, as the store keeps
    it): words drawn Zipf-like from 5,000 made-up ones run together with a number as OCR reads them (70 %), or
    Chinese; written through index/local/keywords.py as the writer does, then tidied as at the end of an index
    run. Returns (connection, query makers by kind)."""
    from xsearch.index.local import keywords

    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(5000)]
    hanzi = [chr(0x4E00 + rng.randrange(3000)) for _ in range(600)]
    chinese = ["".join(rng.choice(hanzi) for _ in range(rng.randint(2, 4))) for _ in range(2000)]
    weights = [1.0 / (r + 10) for r in range(len(vocab))]  # Zipf-like: a few frequent words, many rare ones
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT, modality TEXT)")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, file_id INTEGER, modality TEXT, offset REAL, "
                 "snippet TEXT)")
    conn.executemany("INSERT INTO files VALUES (?, ?, 'image')", [(i, f"/p/{i}.jpg") for i in range(n_lines)])
    conn.execute("BEGIN")
    keywords.ensure(conn)
    for i in range(n_lines):
        words = rng.choices(vocab, weights, k=rng.randint(1, 4)) + [str(rng.randint(0, 9999))]
        text = "".join(words) if rng.random() < 0.7 else "".join(rng.choices(chinese, k=rng.randint(1, 3)))
        keywords.replace_lines(conn, i, f"/p/{i}.jpg", [{"track": "ocr", "text": text}], ["ocr"])
    keywords.tidy(conn, 2 * n_lines)
    conn.execute("COMMIT")

    def word():
        return rng.choices(vocab, weights)[0]

    two = [w for w in chinese if len(w) == 2]
    makers = {
        "English words": lambda: f"{word().lower()} {word().lower()}",
        "a word and a number": lambda: f"{word()} {rng.randint(0, 9999)}",
        "OCR-style joined words": lambda: f"{word()}{rng.randint(0, 9999)}",
        "2-char Chinese": lambda: rng.choice(two),
        "1-char Chinese": lambda: rng.choice(hanzi),
    }
    return conn, makers


def keyword_p50(n_lines: int, seed: int = 0, queries: int = 100) -> dict[str, tuple[float, float, float]]:
    """(p50, p95, CPU p50) ms of keyword queries (k=10) per kind of query over :func:`keyword_corpus`: wall-clock
    times (the target), and the CPU time this process spent per query (what a query costs when the cores are not
    shared — on a loaded machine the wall time also counts the waits for a core)."""
    from xsearch.index.local import keywords

    conn, makers = keyword_corpus(n_lines, seed)
    out = {}
    for kind, make in makers.items():
        times, cpu = [], []
        for _ in range(queries):
            q = make()
            t0, c0 = time.perf_counter(), time.process_time()
            keywords.search(conn, q, "image", 10)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        times.sort()
        out[kind] = (statistics.median(times), times[int(0.95 * len(times))], statistics.median(cpu))
    return out


def say_keyword_target(latency: dict[str, tuple[float, float]], n_lines: int) -> str:
    """The target line: the slowest kind's p50 (every kind must meet it)."""
    kind, (p50, _, cpu) = max(latency.items(), key=lambda kv: kv[1][0])
    met = "met" if p50 <= KEYWORD_GOAL_MS and n_lines >= 100_000 else "missed"
    return (f"target keyword_p50_{n_lines // 1000}k: {p50:.2f} ms (goal {KEYWORD_GOAL_MS:g} ms) {met}"
            f"  [slowest kind: {kind}, its CPU p50 {cpu:.2f} ms; load {tuple(round(x, 2) for x in os.getloadavg())}]")


def keywords_only(n_lines: int) -> None:
    """``--keywords-only``: the keyword latency part alone (no photos, no OCR model)."""
    print(f"load average at start: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    t0 = time.perf_counter()
    latency = keyword_p50(n_lines)
    for kind, (p50, p95, cpu) in latency.items():
        print(f"keyword query p50 / p95, {n_lines:,} lines, {kind} (k=10): {p50:.2f} / {p95:.2f} ms "
              f"(CPU p50 {cpu:.2f} ms)")
    print(say_keyword_target(latency, n_lines))
    print(f"({time.perf_counter() - t0:.0f} s with building the index)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here too")
    ap.add_argument("--keywords-only", action="store_true", help="only the keyword query latency (fast)")
    args = ap.parse_args(argv)
    if args.keywords_only:
        return keywords_only(args.lines)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="xsearch-ocr-bench-"))
    try:
        print(f"load average at start: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
        photos = work / "photos"
        shutil.rmtree(photos, ignore_errors=True)
        queries = make_photos(photos)
        n_photos = len(list(photos.glob("*.jpg")))
        for c in ("with-ocr", "without"):
            shutil.rmtree(work / c, ignore_errors=True)
        t_plain = index_time(photos, work / "without", False, args.workers)
        t_ocr = index_time(photos, work / "with-ocr", True, args.workers)
        rate = ocr_rate(photos)
        col = work / "with-ocr"
        print(f"indexed: {t_plain:.1f} s without OCR, {t_ocr:.1f} s with; OCR {rate:.2f} photos/s", flush=True)
        rows = [(m, top1(col, queries, m)) for m in ("vector", "keyword", "hybrid")]
        rows.append(("OCR text through the text tower (dense)", dense_ocr_top1(col, queries)))
        print(rows, flush=True)
        latency = keyword_p50(args.lines)
        lines = [
            f"{n_photos} photos ({len(queries)} with words, {n_photos - len(queries)} without), "
            f"{len(queries)} queries, builtin model, {args.workers} decode workers; "
            f"load average at end: {tuple(round(x, 2) for x in os.getloadavg())}",
            "",
            "| channel | top-1 |",
            "|---|---|",
            *[f"| {m} | {v:.2f} |" for m, v in rows],
            "",
            "| measure | value |",
            "|---|---|",
            f"| index without OCR | {t_plain:.1f} s |",
            f"| index with OCR | {t_ocr:.1f} s |",
            f"| OCR's share of indexing time | {max(0.0, (t_ocr - t_plain) / t_ocr):.0%} |",
            f"| OCR photos/s, one process (640×427) | {rate:.2f} |",
            *[f"| keyword query p50 / p95 (CPU p50), {args.lines:,} lines, {kind} (k=10) | {p50:.2f} / {p95:.2f} ms "
              f"({cpu:.2f} ms) |" for kind, (p50, p95, cpu) in latency.items()],
        ]
        text = "\n".join(lines) + "\n\n" + say_keyword_target(latency, args.lines)
        print(text)
        if args.out:
            args.out.write_text(f"`python -m bench.ocr`\n\n{text}\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
