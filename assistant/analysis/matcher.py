"""A calibrated narrative matcher with an abstention threshold fitted on benign posts.

Two questions, two models, one probability:

* the *gate*: does the post carry any known narrative at all? A logistic
  regression over the sentence embedding, the narratives' marker phrases and
  character n-grams (which capture stance words such as "so-called",
  "lies" or 谎言 that topic embeddings miss). Its out-of-fold scores are
  Platt-calibrated, so it reads as a probability.
* the *choice*: given that it does, which narrative? A multinomial logistic
  regression over the same features, trained on the narrative examples and
  the cards' own claims.

The top narrative's score is P(any); others are scaled by how likely they
are relative to the top one. The abstention threshold is the score that only
a configured share of the labelled benign examples reach out-of-fold: it is
fitted, never guessed.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.sparse import csr_matrix, hstack, vstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from ..corpus import NarrativeCard


class MarkerIndex:
    """Finds each narrative's marker phrases in normalised text."""

    def __init__(self, cards: list[NarrativeCard]):
        self.ids = [card.id for card in cards]
        self.patterns: list[re.Pattern | None] = []
        for card in cards:
            # Longest first so the regex prefers whole phrases; ties by text, so the pattern is the same in every process.
            phrases = sorted({phrase.strip() for phrase in card.markers.all() if phrase.strip()}, key=lambda p: (-len(p), p))
            if phrases:
                self.patterns.append(re.compile("|".join(_phrase_pattern(p) for p in phrases), re.IGNORECASE))
            else:
                self.patterns.append(None)
        parts = [f"(?P<n{i}>{p.pattern})" for i, p in enumerate(self.patterns) if p is not None]
        self.combined = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def hits(self, text: str) -> np.ndarray:
        found = np.zeros(len(self.ids), dtype=np.float32)
        if self.combined is not None:
            # One scan finds which narratives' markers occur; the group name says whose marker it is.
            for match in self.combined.finditer(text):
                found[int(match.lastgroup[1:])] = 1.0
        return found

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


class NarrativeMatcher:
    def __init__(self, narrative_ids: list[str], markers: MarkerIndex, c: float = 16.0, folds: int = 5, seed: int = 13):
        self.ids = list(narrative_ids)
        self.markers = markers
        self.c = c
        self.folds = folds
        self.seed = seed
        self.threshold = 1.0
        self.benign_scores = np.zeros(0)
        self.classes: list[str] = []
        self.vectorizer: TfidfVectorizer | None = None
        self.gate: LogisticRegression | None = None
        self.calibrator: LogisticRegression | None = None
        self.choice: LogisticRegression | None = None

    # -- features -----------------------------------------------------------
    def features(self, texts: list[str], vectors: np.ndarray, marker_hits: np.ndarray | None = None):
        """texts are normalised (see text.clean); vectors are their unit embeddings; marker hits may be given."""
        hits = self.markers.matrix(texts) if marker_hits is None else marker_hits
        parts = [csr_matrix(vectors.astype(np.float64)), csr_matrix(hits.astype(np.float64))]
        if self.vectorizer is not None:
            parts.append(self.vectorizer.transform([text.lower() for text in texts]))
        return hstack(parts).tocsr()

    # -- fitting ------------------------------------------------------------
    def fit(
        self,
        texts: list[str],
        vectors: np.ndarray,
        gold: list[list[str]],
        target_benign_fpr: float,
        claims: list[tuple[str, np.ndarray, str]] = (),
    ) -> "NarrativeMatcher":
        """Fit on labelled posts (empty label list = benign) plus the cards' claims (text, vector, narrative)."""
        known = set(self.ids)
        gold = [[label for label in labels if label in known] for labels in gold]
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=30000
        ).fit([text.lower() for text in texts] + [text.lower() for text, _, _ in claims])
        x = self.features(texts, vectors)
        carries = np.array([1 if labels else 0 for labels in gold])
        if carries.sum() < 2 or (carries == 0).sum() < 2:
            raise ValueError("the matcher needs at least two narrative examples and two benign examples")

        self.gate = LogisticRegression(C=self.c, max_iter=3000, class_weight="balanced")
        folds = StratifiedKFold(n_splits=min(self.folds, int(carries.sum()), int((carries == 0).sum())), shuffle=True, random_state=self.seed)
        oof = cross_val_predict(self.gate, x, carries, cv=folds, method="decision_function")
        self.calibrator = LogisticRegression(C=1e4, max_iter=1000).fit(oof.reshape(-1, 1), carries)
        self.gate.fit(x, carries)

        rows, labels = [], []
        for index, labels_of in enumerate(gold):
            for label in labels_of:
                rows.append(index)
                labels.append(label)
        choice_x = x[rows]
        if claims:
            claim_x = self.features([text for text, _, _ in claims], np.stack([vector for _, vector, _ in claims]))
            choice_x = vstack([choice_x, claim_x]).tocsr()
            labels += [label for _, _, label in claims]
        self.choice = LogisticRegression(C=self.c, max_iter=3000).fit(choice_x, labels)
        self.classes = list(self.choice.classes_)

        gate_oof = self.calibrator.predict_proba(oof.reshape(-1, 1))[:, 1]
        self.benign_scores = gate_oof[carries == 0]
        cut = float(np.quantile(self.benign_scores, 1 - target_benign_fpr, method="higher"))
        self.threshold = min(0.99, cut + 1e-6)  # just above the benign scores it must exclude
        return self

    def _choice_matrix(self, x) -> np.ndarray:
        # The softmax of the linear scores, computed directly: sklearn's input checks cost more than the maths.
        scores = np.asarray(x @ self.choice.coef_.T) + self.choice.intercept_
        if scores.shape[1] == 1:  # two classes: sklearn keeps one column of coefficients
            scores = np.hstack([-scores, scores])
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        out = np.zeros((x.shape[0], len(self.ids)))
        for column, label in enumerate(self.classes):
            out[:, self.ids.index(label)] = probabilities[:, column]
        return out

    # -- scoring ------------------------------------------------------------
    def predict(self, texts: list[str], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(any narrative) per text, P(narrative) per text and narrative)."""
        return self.predict_features(self.features(texts, vectors))

    def predict_features(self, x) -> tuple[np.ndarray, np.ndarray]:
        decision = np.asarray(x @ self.gate.coef_[0]).ravel() + self.gate.intercept_[0]
        logit = decision * self.calibrator.coef_[0, 0] + self.calibrator.intercept_[0]
        gate = 1.0 / (1.0 + np.exp(-logit))
        choice = self._choice_matrix(x)
        relative = choice / np.maximum(choice.max(axis=1, keepdims=True), 1e-12)
        return gate, gate[:, None] * relative
