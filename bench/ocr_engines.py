"""Which OCR engine: PP-OCRv4 through rapidocr-onnxruntime (what ``--ocr`` uses) vs Tesseract, on bench.ocr's photos.

    apt-get install -y tesseract-ocr tesseract-ocr-chi-sim     # Debian's Tesseract 5 with Chinese data
    python -m bench.ocr_engines [--workdir DIR]

Both read the same real photos with English and Chinese words drawn on them (``bench.ocr.make_photos``). A picture
counts as read when everything drawn on it is in what the engine returned, compared as the keyword index compares
(lower case, spaces dropped, o = 0); seconds per photo are wall time in this process, one photo at a time, after a
warm-up read. Tesseract runs as its command (``tesseract FILE stdout -l eng+chi_sim``), as a user would install it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.machine import load_average
from bench.ocr import PAIRS, make_photos


def normalise(text: str) -> str:
    return "".join(text.lower().split()).replace("o", "0")


def drawn_words(count: int) -> list[str]:
    """What make_photos drew on photo000 … in order (its PAIRS, flattened)."""
    return [words for pair in PAIRS for words, _ in pair][:count]


def rapidocr_text(path: Path) -> str:
    from PIL import Image

    from xsearch.media.ocr import read_lines

    return " ".join(line["text"] for line in read_lines(Image.open(path)))


def tesseract_text(path: Path) -> str:
    out = subprocess.run(["tesseract", str(path), "stdout", "-l", "eng+chi_sim"], capture_output=True, text=True,
                         check=True)
    return out.stdout


def measure(engine, files: list[Path], drawn: list[str]) -> dict:
    engine(files[0])  # warm-up: models loaded
    read = {"english": [0, 0], "chinese": [0, 0]}
    t0 = time.perf_counter()
    for path, words in zip(files, drawn):
        lang = "chinese" if any("\u4e00" <= ch <= "\u9fff" for ch in words) else "english"
        read[lang][1] += 1
        read[lang][0] += normalise(words) in normalise(engine(path))
    seconds = (time.perf_counter() - t0) / len(files)
    return {"english": read["english"], "chinese": read["chinese"], "s_per_photo": seconds}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    if shutil.which("tesseract") is None:
        raise SystemExit("tesseract is not installed: apt-get install -y tesseract-ocr tesseract-ocr-chi-sim")
    print(f"load average at the start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="xsearch-ocr-engines-") as tmp:
        photos = (args.workdir or Path(tmp)) / "photos"
        make_photos(photos)
        drawn = drawn_words(sum(len(pair) for pair in PAIRS))
        files = [photos / f"photo{n:03d}.jpg" for n in range(len(drawn))]
        rows = [("PP-OCRv4 (rapidocr-onnxruntime, --ocr)", measure(rapidocr_text, files, drawn)),
                ("Tesseract 5 (eng+chi_sim)", measure(tesseract_text, files, drawn))]
    print("| engine | English pictures read whole | Chinese pictures read whole | s per photo (640x427) |")
    print("|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['english'][0]}/{r['english'][1]} | {r['chinese'][0]}/{r['chinese'][1]} | "
              f"{r['s_per_photo']:.2f} |")
    print(f"load average at the end: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
