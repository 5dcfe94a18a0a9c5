"""The torch-free tokenizer gives id-for-id what open_clip's SimpleTokenizer gives (the builtin model was trained on
those ids), on captions, unicode, HTML entities, mojibake, control characters, long and random strings."""

from __future__ import annotations

import random

import numpy as np
import pytest

from xsearch.encoders.tokenizer import ClipTokenizer

FIXED = [
    "", " ", "a red circle", "A RED Circle!!", "two small blue squares on the left, over stripes",
    "it's a dog's life; we'll see — they'd've", "naïve café déjà vu", "日本語のテキスト", "Ελληνικά κείμενα",
    "emoji 🐶🐱‍👤 and flags 🇫🇷", "&amp;amp; &lt;b&gt; &#39;quoted&#39; &nbsp;", "<b>bold</b> & co",
    "mojibake: Ã©tÃ© â€œquotesâ€\x9d", "tabs\tand\nnew\r\nlines   spaced", "ctrl\x00\x07\x1b chars\x7f",
    "fullwidth ＡＢＣ １２３ and ligature ﬁne", "numbers 1234567 3.14159 -2e10", "<start_of_text> inside",
    "zero\u200bwidth\u00adsoft", "right-to-left עברית عربى", "a " * 200, "supercalifragilisticexpialidocious" * 3,
]


def _random_strings(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789 .,;:!?'\"-()[]{}&#<>/\\@$%^*_=+~`|",
        "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿ ßœ€“”‘’…—–",
        "αβγδεζηθικλμνξοπρστυφχψω абвгдежзийклмн 中文字符测试 ひらがなカタカナ 한국어",
        "\t\n\r \u00a0\u2003\u200b\ufeff\x01\x1f\x7f\x85",
    ]
    out = []
    for _ in range(n):
        k = rng.randint(1, 60)
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(k)))
    return out


@pytest.fixture(scope="module")
def reference():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer


@pytest.mark.parametrize("context_length", [32, 77])
def test_same_ids_as_open_clip(reference, context_length):
    texts = FIXED + _random_strings(400, seed=context_length)
    ours = ClipTokenizer(context_length=context_length)(texts)
    theirs = reference(context_length=context_length)(texts).numpy()
    assert ours.dtype == np.int64 and ours.shape == (len(texts), context_length)
    mismatched = [t for t, a, b in zip(texts, ours, theirs) if not np.array_equal(a, b)]
    assert not mismatched, mismatched[:3]


def test_truncation_keeps_the_end_token():
    tok = ClipTokenizer(context_length=8)
    ids = tok(["one two three four five six seven eight nine ten"])[0]
    assert ids[0] == tok.sot_token_id and ids[-1] == tok.eot_token_id and (ids != 0).all()


def test_importing_it_loads_neither_torch_nor_open_clip():
    import subprocess
    import sys

    code = ("import sys; from xsearch.encoders.tokenizer import ClipTokenizer; ClipTokenizer(32)(['a red circle']); "
            "print(sorted(m for m in ('torch', 'open_clip', 'ftfy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ftfy_is_skipped_only_where_it_changes_nothing():
    """The tokenizer skips ftfy for printable ASCII without '&'; ftfy must indeed leave every such string alone."""
    import ftfy

    from xsearch.encoders.tokenizer import _FTFY_NO_OP

    rng = random.Random(7)
    plain = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "&"]
    texts = ["".join(rng.choice(plain) for _ in range(rng.randint(0, 80))) for _ in range(3000)]
    texts += ["a red circle", "ABC;DEF<b>x</b>", "\\x1b[31m", "'quoted' \"double\" `tick`"]
    assert all(_FTFY_NO_OP.fullmatch(t) for t in texts)
    assert [t for t in texts if ftfy.fix_text(t) != t] == []
    assert not any(_FTFY_NO_OP.fullmatch(t) for t in ("&amp;", "caf\u00e9", "a\tb"))
