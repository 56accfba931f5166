"""Assigns every annotated example to train, dev or test, by a hash of its id.

Train examples stay in corpus/examples/ (they build the index); dev and test
examples live in evals/dev.jsonl and evals/test.jsonl and are never indexed.
The split depends only on each id, so adding examples never moves old ones.
Batches written after the test split was frozen (ids with a TRAIN_ONLY tag, such
as "xfl-b4-en-001") stay in train, so dev and test figures stay comparable
across sessions.
Run from the repository root: python evals/split_examples.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "corpus" / "examples"
EVALS = ROOT / "evals"


TRAIN_ONLY = ("-b4-", "-b5-", "-b5x-", "-b5u-", "-b5w-", "-b6-")


def split_of(example_id: str) -> str:
    if any(tag in example_id for tag in TRAIN_ONLY):
        return "train"
    bucket = int(hashlib.sha1(example_id.encode()).hexdigest(), 16) % 5
    return "train" if bucket < 3 else "dev" if bucket == 3 else "test"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    held: dict[str, list[dict]] = {"dev": [], "test": []}
    for split in held:
        for row in read(EVALS / f"{split}.jsonl"):
            row["split"] = split_of(row["id"])
            if row["split"] == "train":
                raise SystemExit(f"{row['id']} would move from {split} back to train; ids must not change")
            held[row["split"]].append(row)
    known = {row["id"] for rows in held.values() for row in rows}
    for path in sorted(EXAMPLES.glob("*.jsonl")):
        keep = []
        for row in read(path):
            row["split"] = split_of(row["id"])
            if row["split"] == "train":
                keep.append(row)
            elif row["id"] not in known:
                held[row["split"]].append(row)
        write(path, keep)
    for split, rows in held.items():
        rows.sort(key=lambda row: row["id"])
        write(EVALS / f"{split}.jsonl", rows)
        print(f"{split}: {len(rows)}")


if __name__ == "__main__":
    main()
