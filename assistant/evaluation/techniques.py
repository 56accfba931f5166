"""Tactic detection scored on SemEval-2021 Task 6 (subtask 1: techniques per meme text).

The data is read from the path given (never copied into the project); the
mapping from the task's 20 technique names to our tactic ids is
evals/semeval2021_task6_mapping.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..corpus import KnowledgeBase
from ..settings import REPO_ROOT
from ..text import clean
from .dataset import DatasetError

MAPPING = REPO_ROOT / "evals" / "semeval2021_task6_mapping.json"
# Published with the task's data (its README): a random baseline's micro-F1 on this dev split.
RANDOM_BASELINE_DEV_F1 = 0.04494


def load_mapping(path: Path = MAPPING) -> dict[str, str]:
    return {k: v for k, v in json.loads(Path(path).read_text(encoding="utf-8")).items() if not k.startswith("_")}


def load_task1(path: Path) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not a SemEval-2021 Task 6 JSON file ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) and "text" in item for item in data):
        raise DatasetError(f"{path}: expected a JSON list of {{id, text, labels}} objects")
    return data


def score_techniques(assistant, path: Path, mapping: dict[str, str] | None = None) -> dict:
    """Runs the assistant's own tactic detection (cue patterns and the learned model) on each text."""
    mapping = mapping or load_mapping()
    kb: KnowledgeBase = assistant.kb
    missing = sorted(set(mapping.values()) - set(kb.tactics))
    if missing:
        raise DatasetError(f"the mapping names tactic ids the knowledge base lacks: {', '.join(missing)}")
    reverse = {ours: theirs for theirs, ours in mapping.items()}
    items = load_task1(path)
    per = {name: {"tp": 0, "fp": 0, "fn": 0} for name in mapping}
    for item in items:
        gold = {label for label in item.get("labels", []) if label in mapping}
        text = item["text"] if clean(item["text"]).strip() else ""
        tactics = assistant.analyze(text).tactics if text else []
        predicted = {reverse[t.id] for t in tactics if t.id in reverse}
        for name in mapping:
            per[name]["tp"] += name in gold and name in predicted
            per[name]["fp"] += name not in gold and name in predicted
            per[name]["fn"] += name in gold and name not in predicted
    tp = sum(v["tp"] for v in per.values())
    fp = sum(v["fp"] for v in per.values())
    fn = sum(v["fn"] for v in per.values())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    micro = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    f1s = []
    for v in per.values():
        p = v["tp"] / (v["tp"] + v["fp"]) if v["tp"] + v["fp"] else 0.0
        r = v["tp"] / (v["tp"] + v["fn"]) if v["tp"] + v["fn"] else 0.0
        v["f1"] = round(2 * p * r / (p + r), 4) if p + r else 0.0
        if v["tp"] + v["fn"]:
            f1s.append(v["f1"])
    return {
        "dataset": str(path),
        "n": len(items),
        "micro_f1": round(micro, 4),
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else None,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "random_baseline_dev_micro_f1": RANDOM_BASELINE_DEV_F1,
        "per_technique": per,
    }
