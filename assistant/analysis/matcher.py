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

Both also see how close the post is to its nearest labelled examples of each
narrative and of the benign set: the mean similarity of the k nearest, once by
embedding and once by character n-grams. A linear model draws one flat
boundary per narrative; the neighbour features let a post that closely
resembles a few known posts count even where the boundary misses it. During
fitting each example is left out of its own neighbours, so the features mean
the same in training as on a new post.

The top narrative's score is P(any); others are scaled by how likely they
are relative to the top one. The abstention threshold is the score that only
a configured share of the labelled benign examples reach out-of-fold: it is
fitted, never guessed.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, hstack, vstack

from ..corpus import NarrativeCard


class MarkerIndex:
    """Finds each narrative's marker phrases in normalised text (case-insensitive; Latin phrases at word boundaries).

    The phrases are literal, so they are compiled as a trie, shared prefixes factored out: one pattern for all
    of some 500 phrases scans a post in about 0.05 ms, where an alternation of the phrases took 1.5 ms.
    """

    def __init__(self, cards: list[NarrativeCard]):
        self.ids = [card.id for card in cards]
        self.patterns: list[re.Pattern | None] = []
        owners: dict[str, list[int]] = {}  # lower-cased phrase -> the narratives it marks
        for index, card in enumerate(cards):
            phrases = sorted({phrase.strip() for phrase in card.markers.all() if phrase.strip()})
            self.patterns.append(re.compile(_trie_pattern(phrases), re.IGNORECASE) if phrases else None)
            for phrase in phrases:
                owners.setdefault(phrase.lower(), [])
                if index not in owners[phrase.lower()]:
                    owners[phrase.lower()].append(index)
        # The scan finds the longest phrase at each position; a shorter phrase that starts it ("cotton" in "cotton
        # picking") occurs there too, so a phrase also counts for the narratives of its prefixes. A prefix that
        # ends in a Latin letter counts only where the longer phrase goes on with a non-word character.
        self._owners = {
            phrase: sorted({i for cut in range(1, len(phrase) + 1) for i in owners.get(phrase[:cut], ())
                            if cut == len(phrase) or not (_WORD.match(phrase[cut - 1]) and _ANY_WORD.match(phrase[cut]))})
            for phrase in owners
        }
        # A lookahead finds the longest phrase starting at every position, so phrases that overlap all count.
        self.combined = re.compile(f"(?=({_trie_pattern(sorted(owners))}))", re.IGNORECASE) if owners else None

    def _found(self, text: str):
        """(start, end, narrative indexes) for each phrase found."""
        if self.combined is None:
            return
        for match in self.combined.finditer(text):
            phrase = match.group(1)
            owners = self._owners.get(phrase.lower())
            if owners is None:  # a letter that only case-folding maps to the phrase's (rare): ask each narrative
                owners = [i for i, pattern in enumerate(self.patterns) if pattern is not None and pattern.fullmatch(phrase)]
            if owners:
                yield match.start(1), match.end(1), owners

    def hits(self, text: str) -> np.ndarray:
        found = np.zeros(len(self.ids), dtype=np.float32)
        for _, _, owners in self._found(text):
            found[owners] = 1.0
        return found

    def hits_within(self, text: str, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """Hits in the whole text and in each [start, end) span of it, from one scan of the text."""
        whole = np.zeros(len(self.ids), dtype=np.float32)
        parts = np.zeros((len(spans), len(self.ids)), dtype=np.float32)
        starts = [start for start, _ in spans]
        for start, end, owners in self._found(text):
            whole[owners] = 1.0
            row = bisect_right(starts, start) - 1
            if row >= 0 and end <= spans[row][1]:
                parts[row, owners] = 1.0
        return whole, parts

    def matrix(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.ids)), dtype=np.float32)
        return np.stack([self.hits(text) for text in texts])

    def spans(self, index: int, text: str) -> list[tuple[int, int]]:
        pattern = self.patterns[index]
        return [m.span() for m in pattern.finditer(text)] if pattern is not None else []


def _trie_pattern(phrases: list[str]) -> str:
    """A pattern for any of the literal `phrases`, preferring the longest at a position. Word boundaries for
    phrases that begin or end with a Latin letter or digit only: Chinese has no spaces between words."""
    trie: dict = {}
    for phrase in phrases:
        node = trie
        for char in phrase.lower():
            node = node.setdefault(char, {})
        node[""] = {}  # a phrase ends here

    def branches(node: dict, last: str) -> str:
        options = [re.escape(char) + branches(child, char) for char, child in sorted(node.items()) if char]
        if "" in node:  # after the longer phrases, so those are preferred
            options.append(r"\b" if _WORD.match(last) else "")
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    starts = [(r"\b" if _WORD.match(char) else "") + re.escape(char) + branches(child, char) for char, child in sorted(trie.items())]
    return "|".join(starts)


_WORD = re.compile(r"\w", re.ASCII)
_ANY_WORD = re.compile(r"\w")
_SPACES = re.compile(r"\s\s+")


def char_ngrams(text: str, low: int = 2, high: int = 4) -> list[str]:
    """Character n-grams inside words, each word padded with a space: sklearn's 'char_wb' analyzer, lowercased.

    The matcher scores with its own copy so that analysing a post needs no sklearn import (1.5 s of start-up).
    """
    grams: list[str] = []
    append = grams.append
    for word in _SPACES.sub(" ", text.lower()).split():
        word = f" {word} "
        length = len(word)
        for n in range(low, high + 1):
            offset = 0
            append(word[offset : offset + n])
            while offset + n < length:
                offset += 1
                append(word[offset : offset + n])
            if offset == 0:  # a short word counts once
                break
    return grams


@dataclass(frozen=True)
class Features:
    """Feature rows in two blocks: dense columns (embedding, markers, neighbours) and sparse character n-grams.

    Scoring multiplies each block by its share of the weights; joining them into one sparse
    matrix costs more than the products themselves, so that happens only to fit a model.
    """

    dense: np.ndarray
    lexical: csr_matrix

    def __len__(self) -> int:
        return self.dense.shape[0]

    def __getitem__(self, rows) -> "Features":
        return Features(self.dense[rows], self.lexical[rows])

    def dot(self, weights: np.ndarray) -> np.ndarray:
        width = self.dense.shape[1]
        return self.dense @ weights[:width] + np.asarray(self.lexical @ weights[width:])

    def matrix(self) -> csr_matrix:
        return hstack([csr_matrix(self.dense), self.lexical]).tocsr()


class NarrativeMatcher:
    def __init__(
        self,
        narrative_ids: list[str],
        markers: MarkerIndex,
        c: float = 16.0,
        folds: int = 5,
        seed: int = 13,
        neighbours: int = 5,
        neighbour_weight: float = 2.0,
    ):
        self.ids = list(narrative_ids)
        self.markers = markers
        self.c = c
        self.folds = folds
        self.seed = seed
        self.neighbours = neighbours
        self.neighbour_weight = neighbour_weight
        self.reference = np.zeros((0, 0), dtype=np.float32)
        # The reference examples' n-grams, one column per example: the shape the products at analysis time want.
        self.lexical_reference_t: csr_matrix | None = None
        self.groups: list[np.ndarray] = []
        self.threshold = 1.0
        self.benign_scores = np.zeros(0)
        self.classes: list[str] = []
        # The fitted models, kept as plain arrays (see char_ngrams for why).
        self.vocabulary: dict[str, int] = {}
        self.idf = np.zeros(0)
        self.gate_weights = np.zeros(0)
        self.gate_bias = 0.0
        self.calibration = (1.0, 0.0)  # Platt scaling of the gate's decision: slope, intercept
        self.choice_weights = np.zeros((0, 0))  # one column per class in self.classes
        self.choice_bias = np.zeros(0)

    # -- features -----------------------------------------------------------
    def features(self, texts: list[str], vectors: np.ndarray, marker_hits: np.ndarray | None = None, *, leave_out: bool = False) -> Features:
        """texts are normalised (see text.clean); vectors are their unit embeddings; marker hits may be given.

        leave_out: the texts are the reference examples themselves, row i being reference i (fitting only).
        """
        hits = self.markers.matrix(texts) if marker_hits is None else marker_hits
        if leave_out and self.lexical_reference_t is not None:
            lexical = self.lexical_reference_t.T.tocsr()
        else:
            lexical = self.lexical(texts)
        parts = [vectors.astype(np.float64), hits.astype(np.float64)]
        if self.groups:
            semantic = vectors.astype(np.float32) @ self.reference.T
            lexical_similarity = (lexical @ self.lexical_reference_t).toarray()
            parts += [self._nearest(semantic, leave_out), self._nearest(lexical_similarity, leave_out)]
        return Features(np.hstack(parts), lexical)

    def sentence_features(self, texts: list[str], posts: Features, parents: list[int], marker_hits: np.ndarray | None = None) -> Features:
        """Features of sentences of posts: each keeps its post's embedding and neighbour columns and has its own
        marker and character n-gram columns. Embedding every sentence as well would double the embedding time,
        the largest cost of an analysis; within one post, sentences then differ by their wording."""
        hits = self.markers.matrix(texts) if marker_hits is None else marker_hits
        dense = posts.dense[np.asarray(parents, dtype=np.int64)]  # fancy indexing copies
        markers_at = self.reference.shape[1] if self.groups else dense.shape[1] - len(self.ids)
        dense[:, markers_at : markers_at + len(self.ids)] = hits
        return Features(dense, self.lexical(texts))

    def lexical(self, texts: list[str]) -> csr_matrix:
        """The fitted TF-IDF character n-grams, computed without sklearn's per-call checks (equal to its transform)."""
        vocabulary, idf = self.vocabulary, self.idf
        indptr, indices, values = [0], [], []
        for text in texts:
            counts = Counter(column for column in map(vocabulary.get, char_ngrams(text)) if column is not None)
            if counts:
                columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[columns]
                weights /= np.sqrt(weights @ weights)
                order = np.argsort(columns)
                indices.append(columns[order])
                values.append(weights[order])
            indptr.append(indptr[-1] + len(counts))
        return csr_matrix(
            (
                np.concatenate(values) if values else np.zeros(0),
                np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(texts), len(vocabulary)),
        )

    def _nearest(self, similarity: np.ndarray, leave_out: bool) -> np.ndarray:
        """Mean similarity of the k nearest reference examples in each group (narratives, then benign), weighted."""
        if leave_out:
            np.fill_diagonal(similarity, -1.0)
        out = np.zeros((similarity.shape[0], len(self.groups)))
        for column, members in enumerate(self.groups):
            if len(members) == 0:
                continue
            k = min(self.neighbours, len(members))
            out[:, column] = np.partition(similarity[:, members], -k, axis=1)[:, -k:].mean(axis=1)
        return out * self.neighbour_weight

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
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        known = set(self.ids)
        gold = [[label for label in labels if label in known] for labels in gold]
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=30000
        ).fit([text.lower() for text in texts] + [text.lower() for text, _, _ in claims])
        self.vocabulary = {gram: int(column) for gram, column in vectorizer.vocabulary_.items()}
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        if self.neighbours > 0:
            self.reference = np.asarray(vectors, dtype=np.float32)
            self.lexical_reference_t = self.lexical(texts).T.tocsr()
            # One group per narrative (a post with two narratives is in both), then the benign posts.
            self.groups = [np.flatnonzero([narrative in labels for labels in gold]) for narrative in self.ids]
            self.groups.append(np.flatnonzero([not labels for labels in gold]))
        features = self.features(texts, vectors, leave_out=self.neighbours > 0)
        x = features.matrix()
        carries = np.array([1 if labels else 0 for labels in gold])
        if carries.sum() < 2 or (carries == 0).sum() < 2:
            raise ValueError("the matcher needs at least two narrative examples and two benign examples")

        gate = LogisticRegression(C=self.c, max_iter=3000, class_weight="balanced")
        folds = StratifiedKFold(n_splits=min(self.folds, int(carries.sum()), int((carries == 0).sum())), shuffle=True, random_state=self.seed)
        oof = cross_val_predict(gate, x, carries, cv=folds, method="decision_function")
        calibrator = LogisticRegression(C=1e4, max_iter=1000).fit(oof.reshape(-1, 1), carries)
        gate.fit(x, carries)
        self.gate_weights = np.ascontiguousarray(gate.coef_[0], dtype=np.float64)
        self.gate_bias = float(gate.intercept_[0])
        self.calibration = (float(calibrator.coef_[0, 0]), float(calibrator.intercept_[0]))

        rows, labels = [], []
        for index, labels_of in enumerate(gold):
            for label in labels_of:
                rows.append(index)
                labels.append(label)
        choice_x = x[rows]
        if claims:
            claim_x = self.features([text for text, _, _ in claims], np.stack([vector for _, vector, _ in claims])).matrix()
            choice_x = vstack([choice_x, claim_x]).tocsr()
            labels += [label for _, _, label in claims]
        choice = LogisticRegression(C=self.c, max_iter=3000).fit(choice_x, labels)
        self.classes = [str(label) for label in choice.classes_]
        weights, bias = choice.coef_.T, choice.intercept_
        if weights.shape[1] == 1:  # two classes: sklearn keeps one column, for the second class
            weights, bias = np.hstack([-weights, weights]), np.array([-bias[0], bias[0]])
        # C order: scipy copies a transposed (Fortran-order) operand on every sparse product.
        self.choice_weights = np.ascontiguousarray(weights, dtype=np.float64)
        self.choice_bias = np.asarray(bias, dtype=np.float64)

        gate_oof = calibrator.predict_proba(oof.reshape(-1, 1))[:, 1]
        self.benign_scores = gate_oof[carries == 0]
        cut = float(np.quantile(self.benign_scores, 1 - target_benign_fpr, method="higher"))
        self.threshold = min(0.99, cut + 1e-6)  # just above the benign scores it must exclude
        return self

    def _choice_matrix(self, x: Features) -> np.ndarray:
        scores = x.dot(self.choice_weights) + self.choice_bias
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        out = np.zeros((len(x), len(self.ids)))
        for column, label in enumerate(self.classes):
            out[:, self.ids.index(label)] = probabilities[:, column]
        return out

    # -- scoring ------------------------------------------------------------
    def predict(self, texts: list[str], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(any narrative) per text, P(narrative) per text and narrative)."""
        return self.predict_features(self.features(texts, vectors))

    def predict_features(self, x: Features) -> tuple[np.ndarray, np.ndarray]:
        decision = x.dot(self.gate_weights) + self.gate_bias
        slope, intercept = self.calibration
        logit = decision * slope + intercept
        gate = 1.0 / (1.0 + np.exp(-logit))
        choice = self._choice_matrix(x)
        relative = choice / np.maximum(choice.max(axis=1, keepdims=True), 1e-12)
        return gate, gate[:, None] * relative
