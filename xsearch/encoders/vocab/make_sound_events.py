"""Rebuild sound_events.txt from the AudioSet ontology (github.com/audioset/ontology, ontology.json).

    python xsearch/encoders/vocab/make_sound_events.py path/to/ontology.json > xsearch/encoders/vocab/sound_events.txt

Every class name is split into its synonyms ("Vehicle horn, car horn, honking"), a parenthetical qualifier
is dropped from the templates but kept on the bare label, and each synonym is expanded with a few caption
templates, plus one line naming its parent class. Deterministic: same ontology, same file.
"""

from __future__ import annotations

import json
import re
import sys

SOURCE = "https://github.com/audioset/ontology (ontology.json, v1 2017-03-06)"
LICENCE = "CC BY-SA 4.0 (the AudioSet ontology by Google Inc.); this derived list is under the same licence"

# Names whose commas are part of one phrase, not a list of synonyms.
PHRASES = {
    "Inside, small room": ["inside a small room"],
    "Inside, large room or hall": ["inside a large room or hall"],
    "Inside, public space": ["inside a public space"],
    "Outside, urban or manmade": ["outside in the city"],
    "Outside, rural or natural": ["outside in nature"],
    "Channel, environment and background": ["background noise"],
    "Dishes, pots, and pans": ["dishes, pots and pans"],
}
TEMPLATES = ("{s}", "the sound of {s}", "{s} in the distance", "a recording of {s}")
_PAREN = re.compile(r"^(.*?)\s*\((.*)\)\s*$")


def synonyms(name: str) -> tuple[list[str], str | None]:
    """(synonyms for the templates, the full label when it carries a qualifier)."""
    if name in PHRASES:
        return PHRASES[name], None
    full = None
    m = _PAREN.match(name)
    if m:
        full, name = name.lower(), m.group(1)
    parts = [p.strip().lower() for p in name.split(",")]
    parts = [re.sub(r"^and ", "", p) for p in parts if p and p != "etc."]
    return parts, full


def build(ontology: list[dict]) -> list[str]:
    by_id = {c["id"]: c for c in ontology}
    parent = {child: c["id"] for c in ontology for child in c.get("child_ids", [])}
    lines: list[str] = []
    for cls in ontology:
        syns, full = synonyms(cls["name"])
        if full:
            lines.append(full)
        for s in syns:
            lines.extend(t.format(s=s) for t in TEMPLATES)
        if cls["id"] in parent:
            parent_syns, _ = synonyms(by_id[parent[cls["id"]]]["name"])
            lines.append(f"{syns[0]}, a kind of {parent_syns[0]}")
    return list(dict.fromkeys(lines))


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        lines = build(json.load(f))
    print(f"# Sound-event vocabulary for the CLIP<->CLAP text bridge: {len(lines)} entries, one per line.")
    print(f"# Source: {SOURCE}; class names expanded with caption templates by make_sound_events.py.")
    print(f"# Licence: {LICENCE}.")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
