"""read_text(), split_passages() and normalize_query()."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.helpers.media import deny_open
from xsearch.core.errors import MediaError
from xsearch.media import normalize_query, read_text, split_passages

FRENCH = "Le café de la gare était fermé à midi. Les élèves ont mangé une crème brûlée près de la façade."
GERMAN = "Grüße aus Köln: schöne Straße, süße Äpfel."
RUSSIAN = "Привет, как дела? Всё хорошо, спасибо. Сегодня тёплый день, и мы идём гулять в парк."


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_utf8(tmp_path: Path):
    text, info = read_text(_write(tmp_path, "a.txt", "naïve 日本語 ✓".encode()), 1000)
    assert (text, info) == ("naïve 日本語 ✓", {"encoding": "utf-8", "truncated": False})


def test_utf8_bom_is_removed(tmp_path: Path):
    text, info = read_text(_write(tmp_path, "bom.txt", "\ufeffhello".encode("utf-8")), 1000)
    assert text == "hello" and info["encoding"] == "utf-8-sig"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(tmp_path: Path, codec):
    original = "Ünïcødé 日本 — text"
    data = original.encode(codec)
    if codec in ("utf-16-le", "utf-16-be"):  # explicit-endian codecs write no BOM; add the right one
        data = "\ufeff".encode(codec) + data
    text, info = read_text(_write(tmp_path, "wide.txt", data), 1000)
    assert text == original
    assert info["encoding"].startswith(codec[:6])


@pytest.mark.parametrize(
    "sample, codec",
    [
        (FRENCH, "latin-1"),
        (GERMAN, "latin-1"),
        ("«Déjà vu» — €5 “quoted”", "cp1252"),
        ("Smart “quotes” — and the euro € sign; that's all, folks. Nothing else.", "cp1252"),
        ("héllo", "latin-1"),
        (RUSSIAN, "cp1251"),
    ],
)
def test_legacy_single_byte_encodings(tmp_path: Path, sample, codec):
    data = sample.encode(codec)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test is meaningful only if UTF-8 fails
    text, info = read_text(_write(tmp_path, "legacy.txt", data), 1000)
    assert text == sample
    assert info["encoding"] != "utf-8"


def test_line_endings_are_normalised(tmp_path: Path):
    text, _ = read_text(_write(tmp_path, "crlf.txt", b"one\r\ntwo\rthree\n"), 1000)
    assert text == "one\ntwo\nthree\n"


def test_max_chars_cuts_without_breaking_characters(tmp_path: Path):
    path = _write(tmp_path, "long.txt", ("é" * 10 + "日本").encode() * 1000)
    text, info = read_text(path, 25)
    assert info["truncated"] is True and len(text) == 25
    assert text == (("é" * 10 + "日本") * 3)[:25]
    short, info = read_text(_write(tmp_path, "short.txt", b"tiny"), 25)
    assert short == "tiny" and info["truncated"] is False


def test_nul_bytes_are_binary(tmp_path: Path):
    with pytest.raises(MediaError, match="^binary content, not text$"):
        read_text(_write(tmp_path, "bin.txt", b"text\x00\x00more"), 1000)


def test_undecodable_bytes(tmp_path: Path):
    rng = random.Random(0)
    data = bytes(rng.randrange(1, 256) for _ in range(300))
    with pytest.raises(MediaError, match="^undecodable text"):
        read_text(_write(tmp_path, "junk.txt", data), 1000)


def test_zero_byte_and_unreadable_text(tmp_path: Path, monkeypatch):
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\)$"):
        read_text(_write(tmp_path, "empty.txt", b""), 1000)
    locked = _write(tmp_path, "locked.txt", b"secret")
    deny_open(monkeypatch, locked)
    with pytest.raises(MediaError, match="^permission denied$"):
        read_text(locked, 1000)


# --- passages ---


def test_paragraphs_become_passages():
    text = "First paragraph\nstill first.\n\n\n  Second   one.  \n \t\nThird."
    assert split_passages(text, 100) == ["First paragraph still first.", "Second one.", "Third."]


def test_long_paragraph_is_packed_by_sentences():
    sentences = [f"Sentence number {i} says something." for i in range(20)]
    passages = split_passages(" ".join(sentences), 80)
    assert all(0 < len(p) <= 80 for p in passages)
    assert " ".join(passages) == " ".join(sentences)  # nothing lost or reordered
    assert all(p.endswith(".") for p in passages)  # cut at sentence ends
    assert len(passages) > 1 and any(p.count(".") > 1 for p in passages)  # short sentences are packed


def test_overlong_sentence_is_cut_at_spaces_then_hard():
    words = " ".join(["word"] * 50)
    passages = split_passages(words, 23)
    assert all(len(p) <= 23 for p in passages)
    assert " ".join(passages).split() == words.split()
    giant = "x" * 95
    assert split_passages(giant, 30) == ["x" * 30, "x" * 30, "x" * 30, "x" * 5]


def test_cjk_sentences_split_without_spaces():
    text = "今日は晴れです。明日は雨です。明後日は雪です。"
    assert split_passages(text, 10) == ["今日は晴れです。", "明日は雨です。", "明後日は雪です。"]


def test_no_empty_passages():
    assert split_passages("", 10) == []
    assert split_passages(" \n\n \t\n", 10) == []
    with pytest.raises(ValueError):
        split_passages("text", 0)


# --- queries ---


def test_normalize_query():
    assert normalize_query("  ｆｕｌｌｗｉｄｔｈ\u3000 ﬁsh\n\tand   chips ") == "fullwidth fish and chips"
    assert normalize_query("caf\u0065\u0301") == "café"  # combining accent composed by NFKC
    assert normalize_query(" \n ") == ""
