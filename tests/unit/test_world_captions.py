"""Captions: canonical form, every attribute named, synonyms, grammar, vocabulary."""

from __future__ import annotations

import re

import pytest

from xsearch.world import (
    ATTRIBUTES,
    attribute_phrases,
    canonical_caption,
    caption_attributes,
    captions,
    sample_groups,
    vocabulary,
)
from xsearch.world.text import (
    BACKGROUND_WORDS,
    COLOUR_WORDS,
    COUNT_WORDS,
    POSITION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
)


@pytest.fixture(scope="module")
def captioned():
    return [(g, captions(g)) for g in sample_groups(1500, seed=11)]


def test_canonical_caption_examples():
    two = {"colour": "red", "shape": "circle", "size": "small", "count": 2, "position": "left", "background": "striped"}
    assert canonical_caption(two) == "two small red circles on the left on a striped background"
    one = {"colour": "blue", "shape": "cross", "size": "large", "count": 1, "position": "centre", "background": "plain"}
    assert canonical_caption(one) == "one large blue cross in the centre on a plain background"


def test_first_caption_is_canonical_and_all_are_distinct(captioned):
    for g, texts in captioned[:200]:
        assert texts[0] == canonical_caption(g.attributes)
        assert len(texts) == 5 == len(set(texts))
    g = captioned[0][0]
    assert captions(g, 9)[:5] == captions(g) and len(captions(g, 9)) == 9
    assert captions(g, 1) == [canonical_caption(g.attributes)]


def test_every_caption_names_every_attribute(captioned):
    for g, texts in captioned:
        for text in texts:
            assert caption_attributes(text) == g.attributes, text


@pytest.mark.parametrize("text", [
    "two small red circles on the left",  # no background
    "two small red circles on a striped background",  # no position
    "two small red blue circles on the left on a striped background",  # two colours
    "two small red circle on the left on a striped background",  # count and noun number disagree
])
def test_caption_reader_rejects_incomplete_captions(text):
    with pytest.raises(ValueError):
        caption_attributes(text)


def test_every_synonym_is_used(captioned):
    corpus = " | ".join(t for _, texts in captioned for t in texts)
    words = [w for table in (COLOUR_WORDS, SIZE_WORDS, POSITION_WORDS, BACKGROUND_WORDS) for ws in table.values()
             for w in ws]
    words += [form for pairs in SHAPE_WORDS.values() for pair in pairs for form in pair]
    words += [w for ws in COUNT_WORDS.values() for w in ws if w != "a"]
    missing = [w for w in words if not re.search(rf"\b{re.escape(w)}\b", corpus)]
    assert not missing


def test_word_order_varies(captioned):
    # Where the position phrase sits relative to the shape noun: both before and after must occur.
    position_first = shape_first = 0
    for g, texts in captioned[:300]:
        for text in texts[1:]:
            pos = min(text.find(w) for w in POSITION_WORDS[g.attributes["position"]] if w in text)
            noun = min(m.start() for pair in SHAPE_WORDS[g.attributes["shape"]] for form in pair
                       for m in re.finditer(rf"\b{re.escape(form)}\b", text))
            position_first += pos < noun
            shape_first += noun < pos
    assert position_first > 100 and shape_first > 100


def test_grammar(captioned):
    for g, texts in captioned:
        for text in texts:
            assert not re.search(r"\ba [aeiou]", text), text
            assert not re.search(r"\ban [^aeiou]", text), text
            assert not re.search(r"\bdots?\b", text.replace("polka dots", "")), text  # "dot" names no shape
            if g.attributes["count"] == 1:
                assert "there are" not in text, text


def test_vocabulary_and_phrases():
    vocab = vocabulary()
    assert len(vocab) == 2880 == len(set(vocab))
    assert "two small red circles on the left on a striped background" in vocab
    for text in vocab[::37]:
        assert canonical_caption(caption_attributes(text)) == text
    phrases = attribute_phrases()
    assert {"red", "circle", "small", "two objects", "on the left", "striped background"} <= set(phrases)
    assert len(phrases) == sum(len(v) for v in ATTRIBUTES.values())
