"""What a score means on a dataset: calibration, the top-1/false-positive trade-off, and breakdowns.

Each post's *top score* is the matcher's best narrative score whether or not it passed the threshold,
and it counts as correct when that narrative is one of the post's gold narratives (a benign post's top
score is never correct). A calibrated matcher's top scores match the share correct in each bin.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .metrics import Prediction, _round

BINS = 10
LENGTHS = ((0, 40, "under 40 chars"), (40, 120, "40-119 chars"), (120, 280, "120-279 chars"), (280, 10**9, "280+ chars"))


def _correct(p: Prediction) -> bool:
    return bool(p.gold) and p.candidate in p.gold


def calibration(predictions: list[Prediction], bins: int = BINS) -> dict:
    """Expected calibration error of the top score (equal-width bins) and the reliability table behind it."""
    scores = np.array([p.candidate_score for p in predictions], dtype=float)
    correct = np.array([_correct(p) for p in predictions], dtype=float)
    rows, ece = [], 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    for index, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        inside = (scores >= low) & ((scores < high) if index < bins - 1 else (scores <= high))
        if not inside.any():
            continue
        mean_score, share = float(scores[inside].mean()), float(correct[inside].mean())
        ece += inside.mean() * abs(mean_score - share)
        rows.append({"low": _round(low, 2), "high": _round(high, 2), "n": int(inside.sum()), "mean_score": _round(mean_score), "correct": _round(share)})
    return {"ece": _round(ece) if len(scores) else None, "bins": rows}


def tradeoff(predictions: list[Prediction], points: int = 21) -> list[dict]:
    """Top-1 accuracy on narrative posts against the benign false-positive rate, over thresholds."""
    positives = [p for p in predictions if p.gold]
    benign = np.array([p.candidate_score for p in predictions if not p.gold], dtype=float)
    scores = np.array([p.candidate_score for p in positives], dtype=float)
    right = np.array([_correct(p) for p in positives], dtype=bool)
    thresholds = sorted(set(np.round(np.linspace(0.0, 1.0, points), 3)) | set(np.round(np.quantile(benign, [0.8, 0.85, 0.9, 0.95]), 4) if len(benign) else []))
    curve = []
    for threshold in thresholds:
        curve.append({
            "threshold": _round(threshold),
            "benign_fpr": _round(float((benign >= threshold).mean())) if len(benign) else None,
            "top1": _round(float((right & (scores >= threshold)).mean())) if len(scores) else None,
        })
    return curve


def score_distribution(predictions: list[Prediction], bins: int = BINS) -> dict:
    """Histogram counts of the top score for benign posts and for narrative posts."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    benign = [p.candidate_score for p in predictions if not p.gold]
    narrative = [p.candidate_score for p in predictions if p.gold]
    return {
        "edges": [_round(e, 2) for e in edges],
        "benign": np.histogram(benign, bins=edges)[0].tolist(),
        "narrative": np.histogram(narrative, bins=edges)[0].tolist(),
    }


def breakdowns(predictions: list[Prediction], threshold: float) -> dict:
    """Top-1 and benign false-positive rate by source, language and length, where the dataset says them."""
    out = {}
    for field, key in (("source", lambda p: p.source), ("lang", lambda p: p.lang), ("length", _length)):
        groups: dict[str, list[Prediction]] = defaultdict(list)
        for p in predictions:
            value = key(p)
            if value:
                groups[value].append(p)
        if len(groups) < 2 and field != "length":
            continue
        table = {}
        for value, members in sorted(groups.items()):
            positives = [p for p in members if p.gold]
            benign = [p for p in members if not p.gold]
            table[value] = {
                "n": len(members),
                "narrative_posts": len(positives),
                "top1": _round(np.mean([bool(p.predicted) and p.predicted[0] in p.gold for p in positives])) if positives else None,
                "benign_posts": len(benign),
                "benign_fpr": _round(np.mean([bool(p.predicted) for p in benign])) if benign else None,
            }
        out[field] = table
    return out


def _length(p: Prediction) -> str:
    for low, high, name in LENGTHS:
        if low <= p.length < high:
            return name
    return ""
