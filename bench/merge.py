"""Put several ``bench.run`` reports into one results file: ``python -m bench.merge OUT.json OUT.md A.json B.json``.

For measurements that cannot run as one process within a time limit (the 1M table: autofaiss and the HNSW peers
each take most of an hour on 2 cores), each part runs on its own; ratios are only ever taken inside one part
(each part holds the rows it compares), and each part keeps its own machine description and load averages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import run


def merge(parts: list[dict], titles: list[str]) -> tuple[dict, str]:
    """(JSON with every part under "runs", markdown with one section per part)."""
    text = [f"# xsearch benchmarks: {len(parts)} runs, one results file",
            "Ratios are taken inside each run only; each run lists its machine and load averages."]
    for title, part in zip(titles, parts):
        body = run.to_markdown(part).split("\n", 1)[1]  # drop the per-run title line
        body = body.replace("\n## ", "\n### ")
        text.append(f"## {title}\n\n{body}")
    return {"runs": parts, "titles": titles}, "\n\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    out_json, out_md, inputs = Path(args[0]), Path(args[1]), [Path(a) for a in args[2:]]
    parts, titles = [], []
    for path in inputs:
        title, _, file = str(path).rpartition("=") if "=" in str(path) else ("", "", str(path))
        parts.append(json.loads(Path(file).read_text(encoding="utf-8")))
        titles.append(title or Path(file).stem)
    data, text = merge(parts, titles)
    out_json.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    out_md.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
