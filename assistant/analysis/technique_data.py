"""The technique model's training data: SemEval-2021 Task 6 and the project's annotated posts, as `Annotated` texts
of the two registers the model has an expert for (see analysis/techniques.py)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..text import normalise

SEMEVAL_DATA = {
    "name": "SemEval-2021 Task 6: Detection of Persuasion Techniques in Texts and Images (subtasks 1 and 2)",
    "citation": "Dimitrov et al., 2021, Proceedings of SemEval-2021",
    "source": "github.com/di-dimitrov/SEMEVAL-2021-task6-corpus",
    "licence": "free for general research use (the dataset's README)",
    "files": ["training_set_task1.txt", "training_set_task2.txt"],
}
PROJECT_DATA = {
    "name": "Narrative Lens annotated example posts (corpus/examples, split train)",
    "licence": "the project's own constructed examples (Apache-2.0 with the project)",
}

SEM, POST = "semeval", "post"


@dataclass
class Annotated:
    """Training texts of one register: normalised text, gold spans (start, end, label) into it, labels per text."""

    texts: list[str]
    spans: list[list[tuple[int, int, str]]]
    labels: list[set[str]]
    # Texts written as neutral (benign example posts: no narrative, no tactic); the post register's threshold keeps
    # the share of them given any technique at most max_benign_fpr.
    neutral: list[bool] = field(default_factory=list)


def _normalised_spans(raw: str, spans: Iterable[tuple[int, int, str]]) -> tuple[str, list[tuple[int, int, str]]]:
    """The normalised text and the gold spans moved onto it (normalisation can drop or expand characters)."""
    normal = normalise(raw)
    origin = np.asarray(normal.origin, dtype=np.int64)
    moved = []
    for s, e, label in spans:
        inside = np.flatnonzero((origin >= s) & (origin < e))
        if len(inside):
            moved.append((int(inside[0]), int(inside[-1]) + 1, label))
    return normal.text, moved


def load_semeval(directory: Path, split: str = "training") -> tuple[Annotated, list[str]]:
    """SemEval-2021 Task 6 `split` (training or dev): labels from *_task1.txt, spans from *_task2.txt. Returns the
    texts normalised, and their ids."""
    directory = Path(directory)
    task1 = json.loads((directory / f"{split}_set_task1.txt").read_text(encoding="utf-8"))
    task2_path = directory / f"{split}_set_task2.txt"
    task2 = {item["id"]: item for item in json.loads(task2_path.read_text(encoding="utf-8"))} if task2_path.exists() else {}
    texts, spans, labels, ids = [], [], [], []
    for item in task1:
        gold = [(l["start"], l["end"], l["technique"]) for l in task2.get(item["id"], {}).get("labels", [])]
        text, moved = _normalised_spans(item["text"], gold)
        texts.append(text)
        spans.append(moved)
        labels.append(set(item.get("labels", [])))
        ids.append(item["id"])
    return Annotated(texts, spans, labels), ids


def project_training_examples(kb) -> list:
    """The knowledge base's train examples annotated for tactics: every example of a file in which at least one
    example has tactic spans (benign posts there are annotated negatives); files with none were not annotated for
    tactics, and their posts would teach the model that their wording carries no technique."""
    files: dict[str, list] = defaultdict(list)
    origins = getattr(kb, "example_origins", None) or [("", 0)] * len(kb.examples)
    for example, (file, _) in zip(kb.examples, origins):
        if example.split == "train":
            files[file].append(example)
    return [e for group in files.values() if any(x.tactics for x in group) for e in group]


def annotated_posts(examples: Iterable, ids: set[str]) -> Annotated:
    texts, spans, labels, neutral = [], [], [], []
    for example in examples:
        gold = [(t.start, t.end, t.id) for t in example.tactics if t.id in ids]
        text, moved = _normalised_spans(example.text, gold)
        texts.append(text)
        spans.append(moved)
        labels.append({t.id for t in example.tactics if t.id in ids})
        neutral.append(not example.narratives and not example.tactics)
    return Annotated(texts, spans, labels, neutral)
