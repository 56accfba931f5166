"""The narrative matcher: for each post and each narrative, a calibrated probability that the post carries it.

One model scores (post, narrative) pairs, and it sees only how the post relates to that narrative's own
evidence, never the raw embedding:

* how close the post is to the narrative's nearest labelled examples, and to the nearest benign ones
  (by embedding and by character n-grams), and how far ahead of the other narratives it is;
* how close it is to the card's own claims and title (the claims are first-class evidence, so a one-line
  headline that states a claim is found although no example looks like it);
* whether it names the card's marker phrases, and whether a sentence of it has the shape of a claim
  (claim frames, see claims.py);
* stance cues: words that report, attribute or refute a claim (see stance.py), alone and with the above;
* how much text there is.

Because the weights are shared by all narratives and the features are similarities, not topics, the
model learns "close to a claim, in the claim's own voice" rather than "about Xinjiang": a post's
topic alone moves it little. Its out-of-fold scores are Platt-calibrated with benign posts weighted to
a stated share of narrative posts (`prior`), so a score reads as a probability for a post from a mixed
stream. The abstention threshold is the score only a configured share of benign examples reach
out-of-fold. A second, smaller model scores sentences and clauses from their own words only (n-grams,
markers, frames, stance), so each highlighted phrase has a score of its own.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from ..corpus import NarrativeCard
from ..text import HAN, with_hashtag_forms
from .trees import TreeEnsemble


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
            phrases = sorted(with_hashtag_forms({phrase.strip() for phrase in card.markers.all() if phrase.strip()}))
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


def _group_tops(similarity: np.ndarray, groups: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean of the k highest, the highest) similarity in each group: n x len(groups) each.

    The columns are gathered in group order once (one copy), then each group is a contiguous slice: a gather
    per group and per statistic cost about 2 ms a post.
    """
    order = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    gathered = similarity[:, order]
    top_k = np.zeros((similarity.shape[0], len(groups)))
    top_1 = np.zeros((similarity.shape[0], len(groups)))
    start = 0
    for column, members in enumerate(groups):
        end = start + len(members)
        if end > start:
            part = gathered[:, start:end]
            kk = min(k, end - start)
            top_1[:, column] = part.max(axis=1)
            top_k[:, column] = np.partition(part, -kk, axis=1)[:, -kk:].sum(axis=1) / kk if kk > 1 else top_1[:, column]
        start = end
    return top_k, top_1


def _lead(values: np.ndarray) -> np.ndarray:
    """Each column's lead over the best other column (negative when another is ahead)."""
    if values.shape[1] < 2:
        return values.copy()
    order = np.sort(values, axis=1)
    best, second = order[:, -1:], order[:, -2:-1]
    return values - np.where(values >= best, second, best)


PAIR_FEATURES = (
    "examples_k", "examples_1", "benign_k", "benign_1", "examples_k_minus_benign", "examples_1_minus_benign",
    "examples_lead", "lexical_k", "lexical_benign_k", "lexical_lead", "claim", "claim_lead", "claim_lexical",
    "marker", "frame", "other_marker", "reports", "refutes", "reports_x_frame", "refutes_x_frame",
    "reports_x_claim", "refutes_x_claim", "short", "log_length", "reports_x_own_share", "refutes_x_own_share",
)
PHRASE_FEATURES = (
    "lexical_k", "lexical_benign_k", "lexical_lead", "claim_lexical", "marker", "frame", "reports", "refutes",
    "refutes_x_frame", "short",
)


@dataclass
class PairInputs:
    """What the pair features are made of, for a batch of texts."""

    markers: np.ndarray  # n x J marker hits
    frames: np.ndarray  # n x J claim-frame hits
    stance: np.ndarray  # n x 3 (reports, refutes, attributes to the narrative's side); features use the first two
    length: np.ndarray  # n letters (CJK characters count twice)
    lexical: csr_matrix  # n x vocabulary, TF-IDF char n-grams


_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_NOISE = re.compile(r"https?://\S+|www\.\S+|@\w+|#", re.UNICODE)


def text_weight(text: str) -> int:
    """Letters that carry meaning: links, @handles and '#' left out; a CJK character counts as two letters."""
    stripped = _NOISE.sub(" ", text)
    return len(_LETTERS.findall(stripped)) + len(HAN.findall(stripped))


@dataclass
class LinearModel:
    """A standardised logistic regression kept as arrays."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias


class NarrativeMatcher:
    def __init__(self, narrative_ids: list[str], markers: MarkerIndex, frames=None, c: float = 1.0, folds: int = 3,
                 seed: int = 13, neighbours: int = 5, prior: float = 0.2, trees: int = 150, bins: int = 255,
                 average_folds: bool = True):
        self.ids = list(narrative_ids)
        self.markers = markers
        self.frames = frames  # a ClaimFrames, or None for no frames
        self.c = c
        self.folds = folds
        self.seed = seed
        self.neighbours = neighbours
        self.prior = prior
        self.trees = trees
        self.bins = bins
        self.average_folds = average_folds
        self.reference = np.zeros((0, 0), dtype=np.float32)
        self.lexical_reference_t: csr_matrix | None = None
        self.groups: list[np.ndarray] = []
        self.claim_vectors = np.zeros((0, 0), dtype=np.float32)
        self.claim_lexical_t: csr_matrix | None = None
        self.claim_labels = np.zeros(0, dtype=np.int64)
        self.vocabulary: dict[str, int] = {}
        self.idf = np.zeros(0)
        self.pair: TreeEnsemble | LinearModel | None = None
        self.phrase: LinearModel | None = None
        self.calibration = (1.0, 0.0)
        self.phrase_calibration = (1.0, 0.0)
        self.threshold = 1.0
        self.near = 0.0  # the closeness to a narrative's example or claim that "close evidence" means
        self.far = -1.0  # below this closeness to every example and claim, with no marker or frame, a post is unknown ground
        self.benign_scores = np.zeros(0)
        self.short_letters = 12
        # Per narrative, the share of its own examples that report or refute something (J x 2). A narrative that
        # denies accusations ("the genocide story is debunked") is written in a debunk's words, so a refutation cue
        # argues against most narratives but not against that one: the trees need to know which is which.
        self.stance_share = np.zeros((0, 2))

    # -- inputs -------------------------------------------------------------
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

    def inputs(self, texts: list[str], marker_hits: np.ndarray | None = None, frame_hits: np.ndarray | None = None,
               lexical: csr_matrix | None = None) -> PairInputs:
        from .stance import quoted, stance_matrix

        n = len(texts)
        markers = self.markers.matrix(texts) if marker_hits is None else marker_hits
        stance = stance_matrix(texts).astype(np.float64).reshape(n, 3)
        for i in np.flatnonzero(np.asarray(markers).reshape(n, -1).any(axis=1)):
            # A narrative's own phrase quoted at a distance counts as reporting it.
            spans = [span for j in np.flatnonzero(markers[i]) for span in self.markers.spans(int(j), texts[i])]
            if quoted(texts[i], spans):
                stance[i, 0] += 1
                stance[i, 2] += 1
        if frame_hits is None:
            frame_hits = self.frames.matrix(texts) if self.frames is not None else np.zeros((n, len(self.ids)), np.float32)
        return PairInputs(
            markers=np.asarray(markers, dtype=np.float64).reshape(n, len(self.ids)),
            frames=np.asarray(frame_hits, dtype=np.float64).reshape(n, len(self.ids)),
            stance=stance,
            length=np.array([text_weight(text) for text in texts], dtype=np.float64),
            lexical=self.lexical(texts) if lexical is None else lexical,
        )

    # -- features -----------------------------------------------------------
    def _common(self, inputs: PairInputs, lexical_similarity: np.ndarray, leave_out: bool):
        if leave_out:
            np.fill_diagonal(lexical_similarity, -1.0)
        tops, _ = _group_tops(lexical_similarity, self.groups, self.neighbours)
        lexical_k, lexical_benign = tops[:, :-1], tops[:, -1]
        claim_lexical_all = (inputs.lexical @ self.claim_lexical_t).toarray() if self.claim_lexical_t is not None else np.zeros((len(inputs.length), 0))
        claim_lexical = np.stack(
            [claim_lexical_all[:, self.claim_labels == j].max(axis=1) if (self.claim_labels == j).any() else np.zeros(len(inputs.length))
             for j in range(len(self.ids))], axis=1)
        reports, refutes = inputs.stance[:, 0:1], inputs.stance[:, 1:2]
        short = (inputs.length < self.short_letters).astype(np.float64)
        return lexical_k, lexical_benign, claim_lexical, reports, refutes, short

    def pair_features(self, vectors: np.ndarray, inputs: PairInputs, leave_out: bool = False, semantic: np.ndarray | None = None) -> np.ndarray:
        """n x J x len(PAIR_FEATURES). leave_out: the texts are the reference examples themselves (fitting only).
        semantic: the texts' cosine similarity to the reference examples, when the caller has it."""
        n, J = len(inputs.length), len(self.ids)
        if semantic is None:
            semantic = np.asarray(vectors, dtype=np.float32) @ self.reference.T
        if leave_out:
            np.fill_diagonal(semantic, -1.0)
        lexical_similarity = (inputs.lexical @ self.lexical_reference_t).toarray()
        lexical_k, lexical_benign, claim_lexical, reports, refutes, short = self._common(inputs, lexical_similarity, leave_out)
        tops, firsts = _group_tops(semantic, self.groups, self.neighbours)
        examples_k, examples_1 = tops[:, :-1], firsts[:, :-1]
        benign_k, benign_1 = tops[:, -1:], firsts[:, -1:]
        claim_all = np.asarray(vectors, dtype=np.float32) @ self.claim_vectors.T
        claim = np.stack([claim_all[:, self.claim_labels == j].max(axis=1) for j in range(J)], axis=1)
        markers, frames = inputs.markers, inputs.frames
        other_marker = (markers.sum(axis=1, keepdims=True) - markers > 0).astype(np.float64)
        ones = np.ones((n, J))
        columns = [
            examples_k, examples_1, benign_k * ones, benign_1 * ones, examples_k - benign_k, examples_1 - benign_1,
            _lead(examples_k), lexical_k, lexical_benign[:, None] * ones, _lead(lexical_k), claim, _lead(claim), claim_lexical,
            markers, frames, other_marker, reports * ones, refutes * ones, reports * frames, refutes * frames,
            reports * claim, refutes * claim, short[:, None] * ones, np.log1p(inputs.length)[:, None] * ones,
            reports * self.stance_share[None, :, 0], refutes * self.stance_share[None, :, 1],
        ]
        return np.stack(columns, axis=2)

    def phrase_features(self, inputs: PairInputs, leave_out: bool = False) -> np.ndarray:
        """n x J x len(PHRASE_FEATURES), from the texts' own words only (no embedding)."""
        J = len(self.ids)
        lexical_similarity = (inputs.lexical @ self.lexical_reference_t).toarray()
        lexical_k, lexical_benign, claim_lexical, reports, refutes, short = self._common(inputs, lexical_similarity, leave_out)
        ones = np.ones((len(inputs.length), J))
        columns = [
            lexical_k, lexical_benign[:, None] * ones, _lead(lexical_k), claim_lexical, inputs.markers, inputs.frames,
            reports * ones, refutes * ones, refutes * inputs.frames, short[:, None] * ones,
        ]
        return np.stack(columns, axis=2)

    @staticmethod
    def _logit(features: np.ndarray, model) -> np.ndarray:
        flat = features.reshape(-1, features.shape[-1])
        return model.decision(flat).reshape(features.shape[:-1])

    @staticmethod
    def _sigmoid(x: np.ndarray, calibration: tuple[float, float]) -> np.ndarray:
        slope, intercept = calibration
        return 1.0 / (1.0 + np.exp(-(x * slope + intercept)))

    # -- fitting ------------------------------------------------------------
    def fit(self, texts: list[str], vectors: np.ndarray, gold: list[list[str]], target_benign_fpr: float,
            claims: list[tuple[str, np.ndarray, str]] = (), frame_hits: np.ndarray | None = None,
            marker_hits: np.ndarray | None = None) -> "NarrativeMatcher":
        """Fit on labelled posts (empty label list = benign) and the cards' claims (text, vector, narrative)."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold

        known = set(self.ids)
        gold = [[label for label in labels if label in known] for labels in gold]
        carries = np.array([1 if labels else 0 for labels in gold])
        if carries.sum() < 2 or (carries == 0).sum() < 2:
            raise ValueError("the matcher needs at least two narrative examples and two benign examples")
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=30000
        ).fit([text.lower() for text in texts] + [text.lower() for text, _, _ in claims])
        self.vocabulary = {gram: int(column) for gram, column in vectorizer.vocabulary_.items()}
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self.reference = np.asarray(vectors, dtype=np.float32)
        inputs = self.inputs(texts, marker_hits, frame_hits)
        self.lexical_reference_t = inputs.lexical.T.tocsr()
        self.groups = [np.flatnonzero([narrative in labels for labels in gold]) for narrative in self.ids]
        self.groups.append(np.flatnonzero(carries == 0))
        own_stance = inputs.stance[:, :2] > 0
        self.stance_share = np.array([own_stance[group].mean(axis=0) if len(group) else np.zeros(2) for group in self.groups[:-1]])
        claim_rows = [(text, vector, self.ids.index(label)) for text, vector, label in claims if label in known]
        if claim_rows:
            self.claim_vectors = np.stack([vector for _, vector, _ in claim_rows]).astype(np.float32)
            self.claim_lexical_t = self.lexical([text for text, _, _ in claim_rows]).T.tocsr()
            self.claim_labels = np.array([label for _, _, label in claim_rows], dtype=np.int64)
        else:
            self.claim_vectors = np.zeros((1, self.reference.shape[1]), np.float32)
            self.claim_labels = np.array([-1])
        J = len(self.ids)
        pairs = self.pair_features(vectors, inputs, leave_out=True)
        phrases = self.phrase_features(inputs, leave_out=True)
        y = np.array([[1 if narrative in labels else 0 for narrative in self.ids] for labels in gold])
        # Benign posts are weighted so that narrative posts make up `prior` of the whole: the share in a mixed
        # stream of posts that the score is calibrated for (the examples over-represent narrative posts).
        positives, negatives = carries.sum(), (carries == 0).sum()
        benign_weight = positives * (1 - self.prior) / self.prior / negatives
        post_weight = np.where(carries == 1, 1.0, benign_weight)
        weights = np.repeat(post_weight, J)
        post_of_row = np.repeat(np.arange(len(texts)), J)

        def standardised_fit(x, y_rows, w):
            mean = x.mean(axis=0)
            scale = x.std(axis=0) + 1e-6
            model = LogisticRegression(C=self.c, max_iter=2000).fit((x - mean) / scale, y_rows, sample_weight=w)
            return LinearModel(mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]))

        def trees_fit(x, y_rows, w):
            model = HistGradientBoostingClassifier(
                max_iter=self.trees, learning_rate=0.08, max_leaf_nodes=15, l2_regularization=1.0, max_bins=self.bins,
                early_stopping=False, random_state=self.seed,
            ).fit(x, y_rows, sample_weight=w)
            return TreeEnsemble.from_sklearn(model)

        def fit_calibrated(features, fit_one, folds, average=None):
            """Out-of-fold scores calibrate the model; with `average`, the fold models averaged are the model
            (one fit fewer: for the trees, a quarter of the refit)."""
            x = features.reshape(-1, features.shape[2])
            rows = y.reshape(-1)
            oof = np.zeros(len(rows))
            models = []
            for train, held in GroupKFold(n_splits=folds).split(x, rows, groups=post_of_row):
                models.append(fit_one(x[train], rows[train], weights[train]))
                oof[held] = models[-1].decision(x[held])
            model = average(models) if average is not None else fit_one(x, rows, weights)
            calibrator = LogisticRegression(C=1e4, max_iter=1000).fit(oof.reshape(-1, 1), rows, sample_weight=weights)
            calibration = (float(calibrator.coef_[0, 0]), float(calibrator.intercept_[0]))
            return model, calibration, self._sigmoid(oof, calibration).reshape(len(texts), J)

        # The pair model is boosted trees: stance, frames and markers matter through their interactions with
        # closeness (a debunk quoting a marker, a headline with a frame and no near example), which a linear model
        # cannot draw; on the real-text dev set the trees gave +0.04 top-1 at a 10% false-positive rate.
        # A small knowledge base (a team's own taxonomy, a test corpus) has too few pairs for trees to split on.
        pair_fit = trees_fit if len(texts) >= 300 else standardised_fit
        self.pair, self.calibration, oof_scores = fit_calibrated(
            pairs, pair_fit, self.folds, TreeEnsemble.average if pair_fit is trees_fit and self.average_folds else None
        )
        self.phrase, self.phrase_calibration, _ = fit_calibrated(phrases, standardised_fit, self.folds)
        top = oof_scores.max(axis=1)
        self.benign_scores = top[carries == 0]
        cut = float(np.quantile(self.benign_scores, 1 - target_benign_fpr, method="higher"))
        self.threshold = min(0.99, cut + 1e-6)  # just above the benign scores it must exclude
        # Close evidence: as close to a narrative's example or claim as half of the narrative posts are to theirs.
        own = np.array([max(pairs[i, j, 1], pairs[i, j, 10]) for i, labels in enumerate(gold) for j in [self.ids.index(l) for l in labels]])
        self.near = float(np.quantile(own, 0.5)) if len(own) else 1.0
        # Unknown ground: farther from every narrative example and claim than 99% of narrative posts are from theirs.
        self.far = float(np.quantile(own, 0.01)) if len(own) else -1.0
        return self

    # -- scoring ------------------------------------------------------------
    def score(self, vectors: np.ndarray, inputs: PairInputs, semantic: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n x J calibrated probabilities, n x J x F pair features) for posts; `semantic` as for pair_features."""
        features = self.pair_features(vectors, inputs, semantic=semantic)
        return self._sigmoid(self._logit(features, self.pair), self.calibration), features

    def score_phrases(self, inputs: PairInputs) -> np.ndarray:
        """n x J probabilities for sentences or clauses, from their own words."""
        if len(inputs.length) == 0:
            return np.zeros((0, len(self.ids)))
        return self._sigmoid(self._logit(self.phrase_features(inputs), self.phrase), self.phrase_calibration)

    def predict(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        """n x J probabilities for whole texts (frames scanned over each whole text)."""
        return self.score(vectors, self.inputs(texts))[0]

    def closeness(self, features: np.ndarray) -> np.ndarray:
        """n x J: the closest example or claim of each narrative (embedding cosine)."""
        return np.maximum(features[:, :, PAIR_FEATURES.index("examples_1")], features[:, :, PAIR_FEATURES.index("claim")])
