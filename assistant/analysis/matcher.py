"""A calibrated narrative classifier with an abstention threshold fitted on benign posts.

One logistic regression per narrative over the post's sentence embedding and
its marker hits. Scores are Platt-calibrated on out-of-fold decisions, and
the abstention threshold is the score that only a small, configured share of
the labelled benign examples reach out-of-fold: no number here is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ..corpus import NarrativeCard

MARKER_WEIGHT = 1.0


class MarkerIndex:
    """Finds each narrative's marker phrases in normalised text."""

    def __init__(self, cards: list[NarrativeCard]):
        self.ids = [card.id for card in cards]
        self.patterns: list[re.Pattern | None] = []
        for card in cards:
            phrases = sorted({phrase.strip() for phrase in card.markers.all() if phrase.strip()}, key=len, reverse=True)
            if phrases:
                self.patterns.append(re.compile("|".join(_phrase_pattern(p) for p in phrases), re.IGNORECASE))
            else:
                self.patterns.append(None)

    def hits(self, text: str) -> np.ndarray:
        return np.array([1.0 if p is not None and p.search(text) else 0.0 for p in self.patterns], dtype=np.float32)

    def matrix(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.ids)), dtype=np.float32)
        return np.stack([self.hits(text) for text in texts])

    def spans(self, index: int, text: str) -> list[tuple[int, int]]:
        pattern = self.patterns[index]
        return [m.span() for m in pattern.finditer(text)] if pattern is not None else []


def _phrase_pattern(phrase: str) -> str:
    escaped = re.escape(phrase)
    # Word boundaries for Latin phrases only; Chinese has no spaces between words.
    if re.match(r"^\w", phrase, re.ASCII):
        escaped = r"\b" + escaped
    if re.search(r"\w$", phrase, re.ASCII):
        escaped = escaped + r"\b"
    return escaped


@dataclass
class _Label:
    model: LogisticRegression | None
    calibrator: LogisticRegression | None
    constant: float  # used when a label has too few positives to learn from


class NarrativeMatcher:
    def __init__(self, narrative_ids: list[str], c: float = 4.0, folds: int = 5, seed: int = 13):
        self.ids = list(narrative_ids)
        self.c = c
        self.folds = folds
        self.seed = seed
        self.labels: list[_Label] = []
        self.threshold = 1.0
        self.benign_scores: np.ndarray = np.zeros(0)
        self.oof_scores: np.ndarray = np.zeros((0, len(self.ids)))

    @staticmethod
    def features(vectors: np.ndarray, markers: np.ndarray) -> np.ndarray:
        return np.hstack([vectors, MARKER_WEIGHT * markers]).astype(np.float64)

    def _fit_one(self, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
        model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000)
        model.fit(x, y)
        return model

    def fit(self, x: np.ndarray, gold: list[list[str]], target_benign_fpr: float) -> "NarrativeMatcher":
        n = len(gold)
        y = np.array([[1 if label in labels else 0 for label in self.ids] for labels in gold], dtype=int)
        benign = y.sum(axis=1) == 0
        oof = np.zeros((n, len(self.ids)))
        self.labels = []
        for j in range(len(self.ids)):
            positives = int(y[:, j].sum())
            folds = min(self.folds, positives, n - positives)
            if folds < 2:
                self.labels.append(_Label(None, None, 0.0))
                continue
            decisions = np.zeros(n)
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
            for train, held in splitter.split(x, y[:, j]):
                decisions[held] = self._fit_one(x[train], y[train, j]).decision_function(x[held])
            calibrator = LogisticRegression(C=1e4, max_iter=1000).fit(decisions.reshape(-1, 1), y[:, j])
            oof[:, j] = calibrator.predict_proba(decisions.reshape(-1, 1))[:, 1]
            self.labels.append(_Label(self._fit_one(x, y[:, j]), calibrator, 0.0))
        self.oof_scores = oof
        self.benign_scores = oof[benign].max(axis=1) if benign.any() else np.zeros(0)
        if len(self.benign_scores):
            self.threshold = float(np.quantile(self.benign_scores, 1 - target_benign_fpr, method="higher"))
            # The threshold sits just above the benign scores it must exclude.
            self.threshold = min(0.99, self.threshold + 1e-6)
        else:
            self.threshold = 0.5
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = np.zeros((x.shape[0], len(self.ids)))
        for j, label in enumerate(self.labels):
            if label.model is None:
                scores[:, j] = label.constant
                continue
            decision = label.model.decision_function(x).reshape(-1, 1)
            scores[:, j] = label.calibrator.predict_proba(decision)[:, 1]
        return scores
