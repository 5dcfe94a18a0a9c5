"""Captions: a fixed canonical sentence per attribute set, plus varied paraphrases that name every attribute.

Every caption names all six attributes, with synonyms from the tables below and varied word order. The
synonym tables are public so callers (and ``caption_attributes``) can map words back to attribute values.
"""

from __future__ import annotations

import re

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.world.attributes import ATTRIBUTES, all_attribute_sets
from xsearch.world.groups import Group

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "amber", "tangerine"),
    "yellow": ("yellow", "golden", "lemon"),
    "green": ("green", "emerald", "lime"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "blue": ("blue", "azure", "cobalt"),
    "purple": ("purple", "violet", "lilac"),
    "pink": ("pink", "rose", "salmon"),
}
#: (singular, plural) nouns per shape. No "dot" (it would collide with the dotted background) and no "ring".
SHAPE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"), ("disc", "discs")),
    "square": (("square", "squares"), ("box", "boxes"), ("block", "blocks")),
    "triangle": (("triangle", "triangles"), ("wedge", "wedges")),
    "star": (("star", "stars"), ("pentagram", "pentagrams")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
#: Count phrases that go before the adjectives; "a" becomes "an" before a vowel.
COUNT_WORDS: dict[int, tuple[str, ...]] = {
    1: ("one", "a single", "a"),
    2: ("two", "a pair of", "a couple of"),
    3: ("three", "a trio of"),
    4: ("four", "a group of four"),
}
POSITION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left side", "to the left"),
    "centre": ("in the centre", "in the middle"),
    "right": ("on the right", "at the right side", "to the right"),
}
#: Background nouns; those ending in "background"/"backdrop" take an article.
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("plain background", "blank backdrop", "plain backdrop", "blank background"),
    "striped": ("striped background", "stripes", "striped backdrop"),
    "dotted": ("dotted background", "polka dots", "spotted backdrop", "spotted background"),
}
_BACKGROUND_PREPOSITIONS = ("on", "against", "over")
_CANONICAL_COUNT = {1: "one", 2: "two", 3: "three", 4: "four"}
_CANONICAL_POSITION = {"left": "on the left", "centre": "in the centre", "right": "on the right"}

# Paraphrase templates. Slots: {np} count+size+colour+noun, {np_colour_after} count+size+noun "in" colour,
# {pos}, {bg} (preposition + background), {bg_noun} (background with its article), {be}/{sit} agreeing verbs.
TEMPLATES: tuple[str, ...] = (
    "{np} {pos} {bg}",
    "{pos}, {np} {bg}",
    "{bg_noun}: {np} {pos}",
    "there {be} {np} {pos} {bg}",
    "{np} {sit} {pos} {bg}",
    "a picture of {np} {pos} {bg}",
    "{pos} {bg}, {np}",
    "{np_colour_after} {pos} {bg}",
    "{bg_noun} with {np} {pos}",
)


def canonical_caption(attributes: dict) -> str:
    """The fixed evaluation caption, e.g. "two small red circles on the left on a striped background"."""
    a = attributes
    noun = _SHAPE_CANONICAL[a["shape"]][0 if a["count"] == 1 else 1]
    return (
        f"{_CANONICAL_COUNT[a['count']]} {a['size']} {a['colour']} {noun} "
        f"{_CANONICAL_POSITION[a['position']]} on a {a['background']} background"
    )


_SHAPE_CANONICAL = {shape: words[0] for shape, words in SHAPE_WORDS.items()}


def captions(group: Group, n: int = 5) -> list[str]:
    """``n`` distinct captions of the group: the canonical one first, then paraphrases drawn from its seed."""
    if n < 1:
        raise UsageError(f"the number of captions per group must be 1 or more, not {n}.")
    rng = group.rng("text")
    out = [canonical_caption(group.attributes)]
    for _ in range(100 * n):
        if len(out) == n:
            break
        text = paraphrase(group.attributes, rng)
        if text not in out:
            out.append(text)
    return out


def paraphrase(attributes: dict, rng: np.random.Generator) -> str:
    """One random caption naming every attribute (a template filled with random synonyms)."""
    a = attributes

    def pick(options):
        return options[rng.integers(len(options))]

    count, size, colour = pick(COUNT_WORDS[a["count"]]), pick(SIZE_WORDS[a["size"]]), pick(COLOUR_WORDS[a["colour"]])
    noun = pick(SHAPE_WORDS[a["shape"]])[0 if a["count"] == 1 else 1]
    pos = pick(POSITION_WORDS[a["position"]])
    bg_word = pick(BACKGROUND_WORDS[a["background"]])
    bg_noun = f"a {bg_word}" if bg_word.endswith(("background", "backdrop")) else bg_word
    singular_subject = count.startswith("a ") or a["count"] == 1  # "a pair of ..." takes "is"
    slots = {
        "np": f"{count} {size} {colour} {noun}",
        "np_colour_after": f"{count} {size} {noun} in {colour}",
        "pos": pos,
        "bg": f"{pick(_BACKGROUND_PREPOSITIONS)} {bg_noun}",
        "bg_noun": bg_noun,
        "be": "is" if singular_subject else "are",
        "sit": "sits" if singular_subject else "sit",
    }
    return _fix_articles(pick(TEMPLATES).format(**slots))


def _fix_articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def vocabulary() -> list[str]:
    """The canonical caption of every attribute combination (2880 strings, fixed order)."""
    return [canonical_caption(a) for a in all_attribute_sets()]


def attribute_phrases() -> list[str]:
    """One short phrase per attribute value, e.g. "red", "circle", "two objects", "striped background"."""
    phrases = list(ATTRIBUTES["colour"]) + list(ATTRIBUTES["shape"]) + list(ATTRIBUTES["size"])
    phrases += [f"{_CANONICAL_COUNT[c]} object{'s' if c > 1 else ''}" for c in ATTRIBUTES["count"]]
    phrases += [_CANONICAL_POSITION[p] for p in ATTRIBUTES["position"]]
    phrases += [f"{b} background" for b in ATTRIBUTES["background"]]
    return phrases


def caption_attributes(text: str) -> dict:
    """Read the six attributes back from a caption; ValueError if one is missing or named twice differently."""
    t = " ".join(text.lower().split())
    found: dict = {}
    for name, table in (("colour", COLOUR_WORDS), ("size", SIZE_WORDS), ("position", POSITION_WORDS),
                        ("background", BACKGROUND_WORDS)):
        found[name] = _one_value(name, table, t)
    shape_forms = {s: tuple(w for pair in pairs for w in pair) for s, pairs in SHAPE_WORDS.items()}
    found["shape"] = _one_value("shape", shape_forms, t)
    plural = any(re.search(rf"\b{re.escape(p)}\b", t) for pairs in SHAPE_WORDS.values() for _, p in pairs)
    spoken = _values_named(COUNT_WORDS, t, drop=("a",))  # a bare "a" is every caption's article: count 1 by noun
    if len(spoken) > 1:
        raise ValueError(f"caption names several counts {sorted(spoken)}: {text!r}")
    count = spoken.pop() if spoken else 1
    if (count > 1) != plural:
        raise ValueError(f"caption's count and noun number disagree: {text!r}")
    found["count"] = count
    return {name: found[name] for name in ATTRIBUTES}


def _values_named(table: dict, text: str, drop: tuple[str, ...] = ()) -> set:
    named = set()
    for value, words in table.items():
        for word in words:
            if word in drop:
                continue
            if re.search(rf"\b{re.escape(word)}\b", text):
                named.add(value)
    return named


def _one_value(name: str, table: dict, text: str):
    named = _values_named(table, text)
    if len(named) != 1:
        raise ValueError(f"caption names {len(named)} {name} values {sorted(map(str, named))}: {text!r}")
    return named.pop()
