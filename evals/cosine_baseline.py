"""The reference point for the matcher: one sentence per narrative (its card title), cosine
similarity with the bundled encoder, threshold set so that at most 10% of benign posts are flagged.

Run from the repository root: .venv/bin/python evals/cosine_baseline.py [evals/test.jsonl]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from assistant.corpus import load_knowledge_base
from assistant.embeddings import MultilingualUSEEmbeddings
from assistant.offline import prepare

ROOT = Path(__file__).resolve().parent.parent


def main(path: str = "evals/test.jsonl", benign_fpr: float = 0.10) -> None:
    prepare()
    kb = load_knowledge_base(ROOT / "corpus")
    encoder = MultilingualUSEEmbeddings()
    ids = list(kb.narratives)
    cards = encoder.encode([kb.narratives[i].title for i in ids])
    rows = [json.loads(line) for line in (ROOT / path).read_text(encoding="utf-8").splitlines() if line.strip()]
    similarity = encoder.encode([row["text"] for row in rows]) @ cards.T
    best, top = similarity.max(axis=1), similarity.argmax(axis=1)
    benign = np.array([not row["narratives"] for row in rows])
    threshold = float(np.quantile(best[benign], 1 - benign_fpr))
    positives = [i for i, row in enumerate(rows) if row["narratives"]]
    top1 = np.mean([best[i] >= threshold and ids[top[i]] in rows[i]["narratives"] for i in positives])
    print(f"{path}: cosine baseline top-1 {top1:.3f} at benign false-positive rate {np.mean(best[benign] >= threshold):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
