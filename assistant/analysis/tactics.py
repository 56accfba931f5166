"""Finds persuasion techniques and campaign tactics in a post with each card's cue patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..corpus import TacticCard

MAX_SPANS_PER_TACTIC = 5


@dataclass(frozen=True)
class TacticSpanHit:
    tactic_id: str
    start: int
    end: int


class TacticDetector:
    def __init__(self, cards: list[TacticCard]):
        self.cards = {card.id: card for card in cards}
        self.patterns: dict[str, list[re.Pattern]] = {}
        for card in cards:
            compiled = []
            for cue in card.cues.all():
                try:
                    compiled.append(re.compile(cue, re.IGNORECASE))
                except re.error:
                    continue  # validate reports it; a bad cue must not stop analysis
            if compiled:
                self.patterns[card.id] = compiled

    def find(self, text: str) -> dict[str, list[tuple[int, int]]]:
        """Tactic id -> merged [start, end) spans in `text` (normalised text)."""
        found: dict[str, list[tuple[int, int]]] = {}
        for tactic_id, patterns in self.patterns.items():
            spans = []
            for pattern in patterns:
                for match in pattern.finditer(text):
                    if match.end() > match.start():
                        spans.append(match.span())
            if spans:
                found[tactic_id] = _merge(spans)[:MAX_SPANS_PER_TACTIC]
        return found


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


class TacticModel:
    """Learned from the annotated examples: which sentences carry which technique.

    Cue patterns are precise but miss paraphrases; this model catches
    sentences that resemble annotated spans. A tactic needs a few annotated
    examples before it gets a model.
    """

    def __init__(self, c: float = 4.0, min_positive: int = 5, threshold: float = 0.5):
        self.c = c
        self.min_positive = min_positive
        self.threshold = threshold
        self.vectorizer = None
        self.models: dict[str, object] = {}

    def _features(self, texts: list[str], vectors):
        from scipy.sparse import csr_matrix, hstack

        return hstack([csr_matrix(vectors.astype("float64")), self.vectorizer.transform([t.lower() for t in texts])]).tocsr()

    def fit(self, texts: list[str], vectors, labels: list[set[str]]) -> "TacticModel":
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if not texts:
            return self
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=30000
        ).fit([t.lower() for t in texts])
        x = self._features(texts, vectors)
        for tactic_id in sorted({t for group in labels for t in group}):
            y = np.array([tactic_id in group for group in labels])
            if self.min_positive <= y.sum() < len(y):
                model = LogisticRegression(C=self.c, max_iter=2000, class_weight="balanced")
                self.models[tactic_id] = model.fit(x, y)
        # One matrix product scores every tactic at once at analysis time.
        self.ids = list(self.models)
        if self.ids:
            self.weights = np.vstack([self.models[t].coef_[0] for t in self.ids]).T
            self.bias = np.array([self.models[t].intercept_[0] for t in self.ids])
        return self

    def predict(self, texts: list[str], vectors) -> dict[str, list[int]]:
        """Tactic id -> indexes of the segments that carry it."""
        if not self.models or not texts:
            return {}
        import numpy as np

        logits = np.asarray(self._features(texts, vectors) @ self.weights) + self.bias
        cut = np.log(self.threshold / (1 - self.threshold))
        found = {}
        for column, tactic_id in enumerate(self.ids):
            hits = [int(i) for i in np.flatnonzero(logits[:, column] >= cut)]
            if hits:
                found[tactic_id] = hits
        return found
