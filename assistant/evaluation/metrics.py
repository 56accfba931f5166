"""Scoring predictions against gold labels: the numbers an eval report shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .faithfulness import Faithfulness

BENIGN = "(benign)"
NONE = "(none)"
ERROR_EXAMPLES = 5  # how many error messages the metrics keep


@dataclass(frozen=True)
class Prediction:
    id: str
    gold: list[str]
    predicted: list[str]  # ordered by score, best first
    top_score: float
    gold_tactics: list[str] | None
    predicted_tactics: list[str]
    citation_markers: int
    citation_unresolved: int
    latency_ms: float
    faithfulness: "Faithfulness | None" = None
    candidate: str | None = None  # the best-scored narrative, passed the threshold or not
    candidate_score: float = 0.0
    source: str | None = None  # where the dataset says the post came from (for breakdowns)
    lang: str | None = None
    length: int = 0
    error: str | None = None  # the user-facing error that stopped this example; such examples are not scored


def _f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None if tp + fp + fn == 0 else 0.0
    else:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def narrative_metrics(predictions: list[Prediction], labels: list[str]) -> dict:
    per_label = {}
    total_tp = total_fp = total_fn = 0
    for label in labels:
        tp = sum(1 for p in predictions if label in p.gold and label in p.predicted)
        fp = sum(1 for p in predictions if label not in p.gold and label in p.predicted)
        fn = sum(1 for p in predictions if label in p.gold and label not in p.predicted)
        precision, recall, f1 = _f1(tp, fp, fn)
        per_label[label] = {
            "precision": _round(precision),
            "recall": _round(recall),
            "f1": _round(f1),
            "support": tp + fn,
            "predicted": tp + fp,
        }
        total_tp, total_fp, total_fn = total_tp + tp, total_fp + fp, total_fn + fn
    precision, recall, micro = _f1(total_tp, total_fp, total_fn)
    supported = [v["f1"] for v in per_label.values() if v["support"] and v["f1"] is not None]
    with_gold = [p for p in predictions if p.gold]
    top1 = (
        sum(1 for p in with_gold if p.predicted and p.predicted[0] in p.gold) / len(with_gold) if with_gold else None
    )
    return {
        "micro_f1": _round(micro),
        "macro_f1": _round(float(np.mean(supported))) if supported else None,
        "precision": _round(precision),
        "recall": _round(recall),
        "top1_accuracy": _round(top1),
        "per_narrative": per_label,
    }


def abstention_metrics(predictions: list[Prediction]) -> dict:
    benign = [p for p in predictions if not p.gold]
    flagged = sum(1 for p in benign if p.predicted)
    return {
        "benign_n": len(benign),
        "false_positives": flagged,
        "false_positive_rate": _round(flagged / len(benign)) if benign else None,
    }


def tactic_metrics(predictions: list[Prediction]) -> dict:
    scored = [p for p in predictions if p.gold_tactics is not None]
    tp = sum(len(set(p.gold_tactics) & set(p.predicted_tactics)) for p in scored)
    fp = sum(len(set(p.predicted_tactics) - set(p.gold_tactics)) for p in scored)
    fn = sum(len(set(p.gold_tactics) - set(p.predicted_tactics)) for p in scored)
    if not scored or tp + fp + fn == 0:
        return {"micro_f1": None, "precision": None, "recall": None, "n": len(scored)}
    precision, recall, f1 = _f1(tp, fp, fn)
    return {"micro_f1": _round(f1), "precision": _round(precision), "recall": _round(recall), "n": len(scored)}


def citation_metrics(predictions: list[Prediction]) -> dict:
    total = sum(p.citation_markers for p in predictions)
    bad = sum(p.citation_unresolved for p in predictions)
    return {"valid_rate": _round((total - bad) / total) if total else None, "markers": total, "unresolved": bad}


def latency_metrics(predictions: list[Prediction], wall_seconds: float) -> dict:
    times = np.array([p.latency_ms for p in predictions]) if predictions else np.zeros(0)
    return {
        "p50": _round(float(np.percentile(times, 50)), 2) if len(times) else None,
        "p95": _round(float(np.percentile(times, 95)), 2) if len(times) else None,
        "throughput_per_s": _round(len(predictions) / wall_seconds, 2) if wall_seconds > 0 else None,
    }


def confusion(predictions: list[Prediction], labels: list[str]) -> dict:
    """Rows: primary gold label (or benign); columns: top prediction (or none)."""
    rows = [*labels, BENIGN]
    columns = [*labels, NONE]
    matrix = [[0] * len(columns) for _ in rows]
    for p in predictions:
        row = rows.index(p.gold[0]) if p.gold and p.gold[0] in labels else len(labels)
        if p.gold and p.predicted and p.predicted[0] in p.gold and p.predicted[0] in labels:
            row = rows.index(p.predicted[0])  # a correct top-1 on a multi-label post counts on the diagonal
        column = columns.index(p.predicted[0]) if p.predicted and p.predicted[0] in labels else len(labels)
        matrix[row][column] += 1
    return {"rows": rows, "columns": columns, "matrix": matrix}


def error_metrics(predictions: list[Prediction], limit: int = ERROR_EXAMPLES) -> dict:
    """Examples that ended in an error: counted here, and left out of every score."""
    failed = [p for p in predictions if p.error is not None]
    return {"n": len(failed), "examples": [{"id": p.id, "error": p.error} for p in failed[:limit]]}


def summarise(predictions: list[Prediction], labels: list[str], wall_seconds: float, threshold: float = 0.5) -> dict:
    """The metrics over the examples that were answered; those that ended in an error are counted under "errors"
    (and "n" counts only the answered ones), so a failure never reads as a wrong prediction."""
    from .calibration import breakdowns, calibration, score_distribution, tradeoff

    errors = error_metrics(predictions)
    predictions = [p for p in predictions if p.error is None]
    judged = [p.faithfulness for p in predictions if p.faithfulness is not None]
    return {
        "calibration": calibration(predictions),
        "tradeoff": tradeoff(predictions),
        "score_distribution": score_distribution(predictions),
        "breakdowns": breakdowns(predictions, threshold),
        "n": len(predictions),
        "errors": errors,
        "narratives": narrative_metrics(predictions, labels),
        "abstention": abstention_metrics(predictions),
        "tactics": tactic_metrics(predictions),
        "citations": citation_metrics(predictions),
        "faithfulness": _round(float(np.mean([f.score for f in judged]))) if judged else None,
        "faithfulness_judged": {
            "sentences": sum(f.sentences for f in judged),
            "by_llm": sum(f.by_llm for f in judged),
            "by_embedding": sum(f.by_embedding for f in judged),
        } if judged else None,
        "latency_ms": latency_metrics(predictions, wall_seconds),
        "confusion": confusion(predictions, labels),
        "per_example": [
            {
                "id": p.id,
                "gold": p.gold,
                "predicted": p.predicted,
                "top1_correct": (bool(p.predicted) and p.predicted[0] in p.gold) if p.gold else None,
                "top_score": _round(p.top_score),
                "candidate": p.candidate,
                "candidate_score": _round(p.candidate_score),
            }
            for p in predictions
        ],
    }
