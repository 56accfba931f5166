"""Persuasion techniques in a post: which ones, how sure, and the phrases that carry them.

A `TechniqueModel` is fitted on two kinds of annotated text:

- SemEval-2021 Task 6 (Dimitrov et al., 2021): meme texts labelled with 20 techniques (subtask 1) and their
  character spans (subtask 2), read at fit time from the directory given (never copied into the project;
  "free for general research use");
- the project's own annotated example posts (English and Chinese), whose tactic ids map to the SemEval names
  through evals/semeval2021_task6_mapping.json ("SemEval name -> our tactic id").

The two sets are written in different registers (shouted meme captions against social-media posts) and
annotated with different habits (SemEval marks single loaded words, our examples mark clauses), so the model has
two experts with the same structure, one per register, and a gate that says which register a text is in:

1. a lexicon per expert: naive-Bayes log-odds that a token lies inside a span of each technique, from features of
   the token and its neighbours (word, affixes, neighbouring words, bigrams; single characters and their
   neighbours for Chinese), counted over the gold spans of both sets (the other register's counts weighted down);
2. a ridge regression per expert from the post's sentence embedding (the bundled encoder, 512-d) to its labels;
3. a stacker per technique: logistic regression over that technique's own evidence (its ridge score, the best and
   second-best token scores and their positive sum), fitted on out-of-fold values;
4. one decision threshold per technique, chosen by cross-validation on the training data alone: first one cut
   shared by an expert's techniques, where micro-F1 over all of them together (the official task metric) is best,
   then each technique's cut moved from it by coordinate ascent on the same out-of-fold scores; for the post
   expert, only while at most max_benign_fpr of the neutral example posts get any technique. A technique is
   reported only when its own score passes its cut and some of the post's words carry it (a positive token
   score), which is where its spans come from.

Campaign-behaviour tactics (cards with kind: campaign) describe accounts and networks, not wording: they are never
in the model's label set. Everything is kept as numpy arrays (saved as .npz, metadata as JSON; no pickle) and
prediction needs no scikit-learn: one post costs well under a millisecond after its embedding.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..text import HAN, merge_spans, normalise

VERSION = 4
FORMAT = "narrative-lens-technique-model"
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

# Latin words (with an apostrophe part), single CJK characters, hashtags, runs of ! and ?.
TOKEN = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+(?:['’][A-Za-z]+)?|[\u3400-\u9fff\uf900-\ufaff]|#\w+|[!?！？]+")
CJK = HAN
WORDISH = re.compile(r"[A-Za-z\u00c0-\u024f\u3400-\u9fff\uf900-\ufaff]")
# Clause boundaries: sentence ends and line breaks always; commas, colons and dashes only inside long sentences.
SENTENCE_END = re.compile(r"[.!?。！？；;…]+[\"'”’)）]*|\n+")
CLAUSE_MARK = re.compile(r"[,:，：、]|\s[-–—]\s")


@dataclass(frozen=True)
class TechniqueHit:
    """One technique found in a post. `spans` are [start, end) into the text given to `predict`."""

    id: str  # our tactic id (corpus/tactics/<id>.md)
    semeval: str  # the SemEval-2021 Task 6 name, or "" for techniques the task does not have
    score: float  # the stacker's probability for this technique in this register
    threshold: float  # the cut it passed (chosen by cross-validation on training data)
    spans: tuple[tuple[int, int], ...] = ()
    register: str = POST  # which expert decided: "semeval" (meme captions) or "post"

    def texts(self, text: str) -> list[str]:
        return [text[s:e] for s, e in self.spans]


@dataclass
class Annotated:
    """Training texts of one register: normalised text, gold spans (start, end, label) into it, labels per text."""

    texts: list[str]
    spans: list[list[tuple[int, int, str]]]
    labels: list[set[str]]
    # Texts written as neutral (benign example posts: no narrative, no tactic); the post register's threshold keeps
    # the share of them given any technique at most max_benign_fpr.
    neutral: list[bool] = field(default_factory=list)


# -- text pieces ---------------------------------------------------------------------------------------------------
def embedding_text(text: str) -> str:
    """The string to embed for the model: a post in capitals (most memes) is lower-cased, since the encoder reads
    shouted text poorly (cross-validated: +0.03 AUC on the most frequent techniques). Other text is unchanged."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) > 0.5 * len(letters):
        return text.lower()
    return text


def tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]


def token_features(toks: Sequence[tuple[int, int, str]]) -> list[list[str]]:
    words = [w.lower() for _, _, w in toks]
    n = len(words)
    out = []
    for i, (_, _, w) in enumerate(toks):
        lw = words[i]
        prev = words[i - 1] if i else "<s>"
        nxt = words[i + 1] if i + 1 < n else "</s>"
        feats = ["w=" + lw, "pw=" + prev, "nw=" + nxt, "bg=" + prev + "_" + lw, "bg2=" + lw + "_" + nxt]
        if CJK.match(w):
            feats.append("tg=" + prev + lw + nxt)
        elif len(lw) > 4:
            feats += ["p4=" + lw[:4], "s4=" + lw[-4:]]
        out.append(feats)
    return out


def clauses(text: str, long_tokens: int = 14) -> list[tuple[int, int]]:
    """Clause-like pieces of `text` as [start, end) spans, whitespace and edge punctuation trimmed: sentences and
    lines, with sentences of more than `long_tokens` tokens cut again at commas, colons and dashes."""
    pieces: list[tuple[int, int]] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        pieces.append((start, match.end()))
        start = match.end()
    pieces.append((start, len(text)))
    out = []
    for s, e in pieces:
        if len(tokens(text[s:e])) > long_tokens:
            cut = s
            for m in CLAUSE_MARK.finditer(text, s, e):
                out.append((cut, m.end()))
                cut = m.end()
            out.append((cut, e))
        else:
            out.append((s, e))
    trimmed = []
    for s, e in out:
        while s < e and (text[s].isspace() or text[s] in ",:;，：、-–—"):
            s += 1
        while e > s and (text[e - 1].isspace() or text[e - 1] in ",:，：、-–—"):
            e -= 1
        if e > s and WORDISH.search(text, s, e):
            trimmed.append((s, e))
    return trimmed


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def micro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    tp = int((gold & pred).sum())
    fp = int((~gold & pred).sum())
    fn = int((gold & ~pred).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


# -- the model -----------------------------------------------------------------------------------------------------
class TechniqueModel:
    """See the module docstring. Fit with `fit_from_sources` (or `fit`), then `predict(text, vector)`."""

    GRID = np.round(np.arange(0.10, 0.71, 0.01), 2)
    MAX_MOVE = 0.15
    MIN_GAIN = 2.0

    def __init__(
        self,
        *,
        ridge_lambda: float = 10.0,
        # The post register has 3x the texts of SemEval's and longer ones; a lighter penalty fits it better in
        # cross-validation (post micro-F1 0.437 at 3 against 0.428 at 10), while SemEval's CV is flat.
        post_ridge_lambda: float = 3.0,
        nb_alpha: float = 1.0,
        other_register_weight: float = 0.1,
        stack_c: float = 0.3,
        folds: int = 5,
        seed: int = 0,
        min_positive: int = 3,
        # Policy, not fitted per technique: at most this share of benign example posts may get any technique in
        # cross-validation. 0.15 gave the project's constructed test split a higher tactic F1 (0.41 against 0.38)
        # but put Red Herring on a plain Chinese news line; neutral text without techniques comes first.
        max_benign_fpr: float = 0.10,
    ):
        self.params = {
            "ridge_lambda": ridge_lambda,
            "post_ridge_lambda": post_ridge_lambda,
            "nb_alpha": nb_alpha,
            "other_register_weight": other_register_weight,
            "stack_c": stack_c,
            "folds": folds,
            "seed": seed,
            "min_positive": min_positive,
            "max_benign_fpr": max_benign_fpr,
        }
        self.mapping: dict[str, str] = {}
        self.columns: dict[str, list[str]] = {SEM: [], POST: []}
        self.vocab: dict[str, int] = {}
        self.lexicon: dict[str, np.ndarray] = {}
        self.ridge_w: dict[str, np.ndarray] = {}
        self.ridge_b: dict[str, np.ndarray] = {}
        self.stack: dict[str, np.ndarray] = {}  # [columns, 10]: mean(4), std(4), coef... see _stack_apply
        self.threshold: dict[str, float] = {}
        self.active: dict[str, np.ndarray] = {}
        self.span_style: dict[str, list[str]] = {}
        self.span_cut: dict[str, float] = {}
        self.gate_w = np.zeros(512, np.float32)
        self.gate_b = 0.0
        self.uses_cues = False
        self.metadata: dict = {}

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit(
        self,
        semeval: Annotated,
        semeval_vectors: np.ndarray,
        posts: Annotated,
        post_vectors: np.ndarray,
        *,
        mapping: dict[str, str],
        post_ids: Iterable[str],
        sources: dict | None = None,
        register_vectors: np.ndarray | None = None,
        cues: Callable[[str], dict] | None = None,
    ) -> "TechniqueModel":
        """`semeval` labels are SemEval names, `posts` labels our tactic ids; `mapping` is SemEval name -> our id;
        `post_ids` the tactic ids the post expert may predict (rhetorical ones only). Vectors are unit embeddings
        of `embedding_text(text)` for each text. `register_vectors`: more posts (annotated for tactics or not) that
        teach the gate what a post looks like; by default the annotated ones. `cues(text)`: the tactic cards' cue
        hits (TacticDetector.find: tactic id -> spans), a stacker feature; pass the same at prediction time."""
        started = time.perf_counter()
        p = self.params
        self.mapping = dict(mapping)
        reverse = {ours: theirs for theirs, ours in mapping.items()}
        self.columns = {SEM: list(mapping), POST: sorted(set(post_ids))}
        data = {SEM: semeval, POST: posts}
        self.uses_cues = cues is not None
        cue_hits = {r: [cues(t) if cues else {} for t in data[r].texts] for r in data}
        vectors = {SEM: np.asarray(semeval_vectors, np.float32), POST: np.asarray(post_vectors, np.float32)}
        # Labels of each register in each expert's label space.
        to_sem = {SEM: lambda label: label, POST: lambda label: reverse.get(label)}
        to_post = {SEM: lambda label: mapping.get(label), POST: lambda label: label}
        convert = {SEM: to_sem, POST: to_post}

        toks = {r: [tokens(t) for t in data[r].texts] for r in data}
        feats = {r: [token_features(tk) for tk in toks[r]] for r in data}
        counts: dict[str, int] = defaultdict(int)
        for r in data:
            for doc in feats[r]:
                for fs in doc:
                    for f in fs:
                        counts[f] += 1
        self.vocab = {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= 2))}
        # All tokens of a register as one sparse matrix (token x vocab); bounds[i]:bounds[i+1] are text i's rows.
        X = {r: self._matrix([fs for doc in feats[r] for fs in doc]) for r in data}
        bounds = {r: np.cumsum([0] + [len(tk) for tk in toks[r]]) for r in data}

        report: dict = {"registers": {}}
        for expert in (SEM, POST):
            other = POST if expert == SEM else SEM
            cols = self.columns[expert]
            index = {c: j for j, c in enumerate(cols)}
            tok_y = {
                r: np.vstack(
                    [np.zeros((0, len(cols)))]
                    + [self._token_labels(toks[r][i], data[r].spans[i], index, convert[expert][r]) for i in range(len(toks[r]))]
                )
                for r in data
            }
            text_y = np.array([[c in data[expert].labels[i] for c in cols] for i in range(len(data[expert].texts))], dtype=bool)
            text_y = text_y.reshape(len(data[expert].texts), len(cols))

            def totals(r, rows):
                x, y = X[r][rows], tok_y[r][rows]
                return np.asarray(x.T @ y), np.asarray(x.sum(0)).ravel(), y.sum(0), len(rows)

            n = len(data[expert].texts)
            lam = p["post_ridge_lambda"] if expert == POST else p["ridge_lambda"]
            other_totals = totals(other, np.arange(X[other].shape[0]))
            own_all = totals(expert, np.arange(X[expert].shape[0]))
            folds = self._folds(n, p["folds"], p["seed"])
            oof = np.zeros((n, len(cols), 6))
            oof_tokens: list[np.ndarray] = [np.zeros((0, len(cols)))] * n
            b = bounds[expert]
            for held in folds:
                rows = np.concatenate([np.arange(b[i], b[i + 1]) for i in held])
                own = tuple(a - c for a, c in zip(own_all, totals(expert, rows)))
                lex = self._lexicon(own, other_totals, p["other_register_weight"], p["nb_alpha"])
                train = np.setdiff1d(np.arange(n), held)
                w, bias = self._ridge(vectors[expert][train], self._targets(text_y[train]), lam)
                ridge = vectors[expert][held] @ w + bias
                scores = np.asarray(X[expert][rows] @ lex)
                offset = 0
                for k, i in enumerate(held):
                    count = b[i + 1] - b[i]
                    oof_tokens[i] = scores[offset : offset + count]
                    offset += count
                    oof[i, :, 0] = ridge[k, :-1]
                    oof[i, :, 1:4] = self._token_summary(oof_tokens[i])
                    oof[i, :, 4] = ridge[k, -1]
                    oof[i, :, 5] = self._cue_feature(cue_hits[expert][i], expert)
            # Kept at half precision, as saved, so a loaded model predicts exactly as the fitted one.
            lexicon = self._lexicon(own_all, other_totals, p["other_register_weight"], p["nb_alpha"])
            self.lexicon[expert] = lexicon.astype(np.float16).astype(np.float32)
            w, bias = self._ridge(vectors[expert], self._targets(text_y), lam)
            self.ridge_w[expert], self.ridge_b[expert] = w.astype(np.float32), bias.astype(np.float32)
            # Stackers: fitted on the out-of-fold evidence; their own out-of-fold probabilities choose the threshold.
            stack, active = np.zeros((len(cols), 19)), np.zeros(len(cols), bool)
            probs = np.zeros((n, len(cols)))
            for j in range(len(cols)):
                y = text_y[:, j]
                if y.sum() < p["min_positive"]:
                    continue
                active[j] = True
                Z = oof[:, j, :]
                for held in self._folds(n, p["folds"], p["seed"] + 1):
                    train = np.setdiff1d(np.arange(n), held)
                    if y[train].sum() == 0:
                        continue
                    probs[held, j] = self._stack_apply(self._fit_stacker(Z[train], y[train], p["stack_c"]), Z[held])
                stack[j] = self._fit_stacker(Z, y, p["stack_c"])
            self.stack[expert], self.active[expert] = stack, active
            # The evidence rule, as at prediction time: some token must score above zero.
            evidence = oof[:, :, 1] > 0
            scores_at = [micro_f1(text_y, (probs >= t) & evidence & active) for t in self.GRID]
            neutral = np.array(data[expert].neutral or [False] * n, dtype=bool)
            fpr_at = [
                float(((probs[neutral] >= t) & evidence[neutral] & active).any(1).mean()) if neutral.any() else 0.0 for t in self.GRID
            ]
            max_fpr = p["max_benign_fpr"] if expert == POST else 1.0
            allowed = [i for i, f in enumerate(fpr_at) if f <= max_fpr]
            best = max(allowed or [len(self.GRID) - 1], key=lambda i: scores_at[i])
            cuts = self._per_technique_cuts(probs, evidence & active, text_y, neutral, float(self.GRID[best]), max_fpr)
            self.threshold[expert] = [float(c) for c in cuts]
            self.span_style[expert] = self._span_styles(expert, cols, data)
            self.span_cut[expert], span_cv = self._choose_span_cut(expert, data[expert], toks[expert], oof_tokens, index)
            predicted = (probs >= cuts) & evidence & active
            report["registers"][expert] = {
                "texts": n,
                "active": [c for c, a in zip(cols, active) if a],
                "shared_threshold": float(self.GRID[best]),
                "shared_threshold_cv_micro_f1": round(scores_at[best], 4),
                "threshold": dict(zip(cols, self.threshold[expert])),
                "cv_micro_f1": round(micro_f1(text_y, predicted), 4),
                "cv_neutral_texts": int(neutral.sum()),
                "cv_neutral_given_any_technique": round(float(predicted[neutral].any(1).mean()) if neutral.any() else 0.0, 4),
                "cv_best_unconstrained": {"threshold": float(self.GRID[int(np.argmax(scores_at))]), "micro_f1": round(max(scores_at), 4)},
                "cv_micro_f1_by_threshold": {f"{t:.2f}": round(f, 4) for t, f in zip(self.GRID[::5], scores_at[::5])},
                "cv_neutral_given_any_by_threshold": {f"{t:.2f}": round(f, 4) for t, f in zip(self.GRID[::5], fpr_at[::5])},
                "cv_per_technique": {
                    c: {"tp": int((text_y[:, j] & predicted[:, j]).sum()), "fp": int((~text_y[:, j] & predicted[:, j]).sum()),
                        "fn": int((text_y[:, j] & ~predicted[:, j]).sum())}
                    for j, c in enumerate(cols)
                },
                "span_cut": self.span_cut[expert],
                "cv_span_f1_given_gold_techniques": span_cv,
            }
        # The gate: which register a text is in (logistic regression over the embedding, balanced classes).
        from sklearn.linear_model import LogisticRegression

        posts_x = vectors[POST] if register_vectors is None else np.asarray(register_vectors, np.float32)
        gx = np.vstack([vectors[SEM], posts_x])
        gy = np.r_[np.ones(len(vectors[SEM])), np.zeros(len(posts_x))]
        gate = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(gx, gy)
        self.gate_w, self.gate_b = gate.coef_[0].astype(np.float32), float(gate.intercept_[0])
        report["fit_seconds_after_embedding"] = round(time.perf_counter() - started, 2)
        self.metadata = {
            "format": FORMAT,
            "version": VERSION,
            "params": self.params,
            "data": sources or {"semeval": SEMEVAL_DATA, "posts": PROJECT_DATA},
            "report": report,
        }
        return self

    def _matrix(self, doc: list[list[str]]):
        from scipy import sparse

        rows, cols = [], []
        for r, fs in enumerate(doc):
            for f in fs:
                j = self.vocab.get(f)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(doc), len(self.vocab)))

    @staticmethod
    def _token_labels(toks, spans, index, convert) -> np.ndarray:
        y = np.zeros((len(toks), len(index)))
        for s, e, label in spans:
            column = index.get(convert(label) or "")
            if column is None:
                continue
            for i, (a, b, _) in enumerate(toks):
                if s < b and a < e:
                    y[i, column] = 1.0
        return y

    @staticmethod
    def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
        order = np.random.default_rng(seed).permutation(n)
        return [np.sort(order[i::k]) for i in range(k)]

    @staticmethod
    def _lexicon(own, other, other_weight, alpha) -> np.ndarray:
        pos = own[0] + other_weight * other[0]
        tot = own[1] + other_weight * other[1]
        npos = own[2] + other_weight * other[2]
        ntok = own[3] + other_weight * other[3]
        prior = (npos + 1.0) / (ntok + 2.0)
        prob = (pos + alpha * prior) / (tot[:, None] + alpha)
        return _logit(prob) - _logit(prior)[None, :]

    def _per_technique_cuts(self, probs, evidence, y, neutral, start: float, max_fpr: float, rounds: int = 2) -> np.ndarray:
        """One cut per technique, from the shared one: coordinate ascent over the grid on the out-of-fold
        probabilities, each technique's cut moved to where micro-F1 over all techniques together is best while the
        share of neutral texts given any technique stays within max_fpr. A cut moves only for a gain of at least
        MIN_GAIN true positives' worth, and at most MAX_MOVE from the shared cut, so that rare techniques, whose
        best cut on a few examples is noise, keep the shared one."""
        n, c = probs.shape
        cuts = np.full(c, start)
        grid = self.GRID[np.abs(self.GRID - start) <= self.MAX_MOVE + 1e-9]
        # fires[:, j, g]: technique j reported on text i at grid cut g.
        fires = (probs[:, :, None] >= grid[None, None, :]) & evidence[:, :, None]
        tp_g = (fires & y[:, :, None]).sum(0)  # [c, g]
        fp_g = (fires & ~y[:, :, None]).sum(0)
        positives = y.sum()
        at = lambda j: int(np.argmin(np.abs(grid - cuts[j])))
        for _ in range(rounds):
            for j in range(c):
                now = [at(k) for k in range(c)]
                tp = sum(tp_g[k, now[k]] for k in range(c) if k != j) + tp_g[j]
                fp = sum(fp_g[k, now[k]] for k in range(c) if k != j) + fp_g[j]
                f1 = 2 * tp / np.maximum(2 * tp + fp + (positives - tp), 1)
                if neutral.any():
                    others = np.zeros(int(neutral.sum()), bool)
                    for k in range(c):
                        if k != j:
                            others |= fires[neutral, k, now[k]]
                    fpr = (others[:, None] | fires[neutral, j, :]).mean(0)
                    f1 = np.where(fpr <= max_fpr, f1, -1.0)
                gain_per_tp = 2 / max(2 * positives, 1)
                if f1.max() > f1[now[j]] + self.MIN_GAIN * gain_per_tp:
                    cuts[j] = grid[int(np.argmax(f1))]
        return cuts

    @staticmethod
    def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        mean_x, mean_y = x.mean(0), y.mean(0)
        xc = x - mean_x
        w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ (y - mean_y))
        return w, mean_y - mean_x @ w

    @staticmethod
    def _targets(y: np.ndarray) -> np.ndarray:
        """Ridge targets: each technique, and a last column for "any technique" (what sets propaganda apart from
        news and everyday posts in the embedding), which every stacker reads."""
        return np.column_stack([y, y.any(1)]).astype(np.float64)

    @staticmethod
    def _token_summary(scores: np.ndarray) -> np.ndarray:
        """[columns, 3]: best token score, mean of the best two, log(1 + sum of positive scores)."""
        scores = np.asarray(scores)
        if scores.shape[0] == 0:
            return np.zeros((scores.shape[1], 3))
        top = np.sort(scores, 0)[-2:]
        return np.stack([top[-1], top.mean(0), np.log1p(np.maximum(scores, 0).sum(0))], 1)

    @staticmethod
    def _fit_stacker(z: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        mean, std = z.mean(0), z.std(0) + 1e-6
        model = LogisticRegression(C=c, max_iter=2000).fit((z - mean) / std, y)
        return np.r_[mean, std, model.coef_[0], model.intercept_[0]]

    @staticmethod
    def _stack_apply(row: np.ndarray, z: np.ndarray) -> np.ndarray:
        k = (len(row) - 1) // 3
        mean, std, coef, bias = row[0:k], row[k : 2 * k], row[2 * k : 3 * k], row[3 * k]
        return _sigmoid(((z - mean) / std) @ coef + bias)

    def _span_styles(self, expert, cols, data) -> list[str]:
        """'phrase' for techniques whose gold spans are a few words (median <= 4 tokens), else 'clause'. SemEval
        spans decide for the techniques it has (at least 5 spans); our examples for the rest."""
        lengths: dict[str, dict[str, list[int]]] = {SEM: defaultdict(list), POST: defaultdict(list)}
        for r in (SEM, POST):
            for text, spans in zip(data[r].texts, data[r].spans):
                for s, e, label in spans:
                    ours = self.mapping.get(label, label) if r == SEM else label
                    lengths[r][ours].append(len(tokens(text[s:e])))
        styles = []
        for c in cols:
            ours = self.mapping.get(c, c) if expert == SEM else c
            found = lengths[SEM][ours] if len(lengths[SEM][ours]) >= 5 else lengths[POST][ours]
            styles.append("phrase" if found and float(np.median(found)) <= 4 else "clause")
        return styles

    def _choose_span_cut(self, expert, data: Annotated, toks, oof_tokens, index):
        """The token-score cut for phrase spans, by span F1 (task 2's definition, see evaluation.techniques) on the
        held-out folds' token scores, given each text's gold techniques (so that it rates the spans alone)."""
        from ..evaluation.techniques import span_prf

        cuts = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
        gold_all, pred_all = [], {c: [] for c in cuts}
        for i, text in enumerate(data.texts):
            gold = [(s, e, lab) for s, e, lab in data.spans[i] if lab in index]
            gold_all.append(gold)
            for cut in cuts:
                pred = []
                for label in sorted({lab for _, _, lab in gold}):
                    j = index[label]
                    for s, e in self._spans(text, toks[i], oof_tokens[i][:, j], self.span_style[expert][j], cut):
                        pred.append((s, e, label))
                pred_all[cut].append(pred)
        results = {c: span_prf(gold_all, pred_all[c])["f1"] for c in cuts}
        best = max(cuts, key=lambda c: results[c])
        return float(best), {str(c): round(v, 4) for c, v in results.items()}

    # -- prediction ------------------------------------------------------------------------------------------------
    def register(self, vector: np.ndarray) -> tuple[str, float]:
        """Which expert reads this text, and the gate's probability that it is a meme caption (SemEval-like)."""
        prob = float(_sigmoid(float(np.asarray(vector, np.float32) @ self.gate_w) + self.gate_b))
        return (SEM if prob >= 0.5 else POST), prob

    def _cue_feature(self, hits: dict, expert: str) -> np.ndarray:
        """log(1 + number of cue spans) of each column's tactic, for the post expert only: the cards' cues were
        written for the project's posts and say nothing about meme captions (AUC about 0.5 there, and a few
        chance hits on training memes made the stacker trust them on plain English sentences)."""
        if expert == SEM:
            return np.zeros(len(self.columns[expert]))
        return np.array([np.log1p(len(hits.get(i, ()))) for i in self.columns[expert]])

    def predict(
        self, text: str, vector: np.ndarray | None = None, encode: Callable | None = None, cues: dict | None = None
    ) -> list[TechniqueHit]:
        """Techniques in `text` (normalised text, as the analyser has it), strongest first.

        `vector`: the unit embedding of `embedding_text(text)` (the post's own embedding works nearly as well
        when the post is not in capitals); without one, `encode(list_of_str)` is called.
        `cues`: the cards' cue hits for `text` (TacticDetector(cards).find(text)), which the model was fitted with
        (metadata "uses_cues"); without them the model reads no cue evidence.
        """
        toks = tokens(text)
        if not toks or not WORDISH.search(text):
            return []  # emoji, punctuation, numbers only
        if vector is None:
            if encode is None:
                raise ValueError("predict needs the post's embedding or an encode function")
            vector = np.asarray(encode([embedding_text(text)]))[0]
        expert, _ = self.register(vector)
        cols = self.columns[expert]
        scores = self._token_scores(toks, expert)
        summary = self._token_summary(scores)
        ridge = np.asarray(vector, np.float32) @ self.ridge_w[expert] + self.ridge_b[expert]
        cuts = self.threshold[expert]
        cue_row = self._cue_feature(cues or {}, expert)
        hits = []
        for j in np.flatnonzero(self.active[expert]):
            if summary[j, 0] <= 0:
                continue  # no word of the post carries this technique
            z = np.r_[ridge[j], summary[j], ridge[-1], cue_row[j]][None, :]
            prob = float(self._stack_apply(self.stack[expert][j], z)[0])
            if prob < cuts[j]:
                continue
            spans = self._spans(text, toks, scores[:, j], self.span_style[expert][j], self.span_cut[expert])
            if not spans:
                continue
            name = cols[j]
            ours = self.mapping[name] if expert == SEM else name
            theirs = name if expert == SEM else {v: k for k, v in self.mapping.items()}.get(name, "")
            hits.append(TechniqueHit(ours, theirs, round(prob, 4), cuts[j], tuple(spans), expert))
        hits.sort(key=lambda h: -h.score)
        return hits

    def predict_many(self, texts: list[str], vectors: np.ndarray, cues: list[dict] | None = None) -> list[list[TechniqueHit]]:
        return [self.predict(t, v, cues=c) for t, v, c in zip(texts, vectors, cues or [None] * len(texts))]

    def _token_scores(self, toks, expert) -> np.ndarray:
        lex = self.lexicon[expert]
        feats = token_features(toks)
        # One gather and one segmented sum for all tokens (a numpy call per token cost 0.5 ms on a long post).
        vocab = self.vocab
        rows = [[vocab[f] for f in fs if f in vocab] for fs in feats]
        counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        out = np.zeros((len(toks), lex.shape[1]), np.float32)
        known = np.flatnonzero(counts)
        if len(known):
            flat = np.fromiter((r for group in rows for r in group), dtype=np.int64, count=int(counts.sum()))
            starts = np.r_[0, np.cumsum(counts)[:-1]][known]
            out[known] = np.add.reduceat(lex[flat], starts, axis=0)
        return out

    @staticmethod
    def _spans(text, toks, scores, style, cut, max_spans: int = 3) -> list[tuple[int, int]]:
        """Phrase style: runs of tokens scoring at least `cut` (a gap of one positive token bridged, at most six
        tokens, never across a line or sentence end), or the best token with its strong neighbours; a Chinese run
        is widened to at least two and at most eight characters. Clause style: the clause whose tokens score best
        (mean of its best three), and any other clause scoring at least as high as `cut` and 0.8 of the best."""
        if not toks or scores.max() <= 0:
            return []
        if style == "phrase":
            def joinable(i, j):  # tokens i < j on one line and in one sentence
                return not SENTENCE_END.search(text, toks[i][1], toks[j][0])

            runs: list[list[int]] = []
            for i, s in enumerate(scores):
                if s < cut:
                    continue
                if runs and len(runs[-1]) < 6 and joinable(runs[-1][-1], i) and (
                    i - runs[-1][-1] == 1 or (i - runs[-1][-1] == 2 and scores[i - 1] > 0)
                ):
                    runs[-1] += list(range(runs[-1][-1] + 1, i + 1))
                else:
                    runs.append([i])
            if not runs:
                best = int(np.argmax(scores))
                run = [best]
                for k in (best - 1, best + 1):
                    if 0 <= k < len(toks) and scores[k] >= cut / 2 and joinable(min(k, best), max(k, best)):
                        run.append(k)
                runs = [sorted(run)]
            widened = []
            for run in runs:
                run = sorted(run)
                if CJK.match(toks[run[0]][2]):
                    while len(run) < 8:
                        left, right = run[0] - 1, run[-1] + 1
                        options = []
                        if left >= 0 and CJK.match(toks[left][2]) and toks[left][1] == toks[run[0]][0]:
                            options.append(left)
                        if right < len(toks) and CJK.match(toks[right][2]) and toks[run[-1]][1] == toks[right][0]:
                            options.append(right)
                        options = [k for k in options if len(run) < 2 or scores[k] >= cut / 2]
                        if not options:
                            break
                        run = sorted(run + [max(options, key=lambda k: scores[k])])
                widened.append(run)
            widened.sort(key=lambda r: -max(scores[i] for i in r))
            spans = merge_spans([(toks[r[0]][0], toks[r[-1]][1]) for r in widened[:max_spans]])
            return spans
        pieces = clauses(text)
        if not pieces:
            return []
        starts = np.array([a for a, _, _ in toks])
        rated = []
        for s, e in pieces:
            inside = scores[(starts >= s) & (starts < e)]
            if len(inside):
                rated.append((float(np.sort(inside)[-3:].mean()), s, e))
        if not rated:
            return []
        rated.sort(reverse=True)
        chosen = [rated[0]] + [r for r in rated[1:max_spans] if r[0] >= max(cut, 0.8 * rated[0][0])]
        return sorted((s, e) for _, s, e in chosen)

    # -- saving ----------------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"vocab": np.array(sorted(self.vocab, key=self.vocab.get), dtype=str), "gate_w": self.gate_w}
        for e in (SEM, POST):
            arrays[f"{e}_lexicon"] = self.lexicon[e].astype(np.float16)
            arrays[f"{e}_ridge_w"] = self.ridge_w[e]
            arrays[f"{e}_ridge_b"] = self.ridge_b[e]
            arrays[f"{e}_stack"] = self.stack[e]
            arrays[f"{e}_active"] = self.active[e]
        np.savez_compressed(directory / "technique-model.npz", **arrays)
        meta = dict(self.metadata)
        meta.update(
            {
                "format": FORMAT,
                "version": VERSION,
                "mapping": self.mapping,
                "columns": self.columns,
                "threshold": self.threshold,
                "span_style": self.span_style,
                "span_cut": self.span_cut,
                "gate_b": self.gate_b,
                "uses_cues": self.uses_cues,
            }
        )
        (directory / "technique-model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path) -> "TechniqueModel":
        directory = Path(directory)
        meta = json.loads((directory / "technique-model.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{directory}: not a version-{VERSION} technique model")
        model = cls(**meta.get("params", {}))
        with np.load(directory / "technique-model.npz", allow_pickle=False) as arrays:
            model.vocab = {f: i for i, f in enumerate(arrays["vocab"].tolist())}
            model.gate_w = arrays["gate_w"]
            for e in (SEM, POST):
                # Half precision on disk, as in memory after fitting; scores are summed in float32.
                model.lexicon[e] = arrays[f"{e}_lexicon"].astype(np.float32)
                model.ridge_w[e] = arrays[f"{e}_ridge_w"]
                model.ridge_b[e] = arrays[f"{e}_ridge_b"]
                model.stack[e] = arrays[f"{e}_stack"]
                model.active[e] = arrays[f"{e}_active"]
        model.mapping = meta["mapping"]
        model.columns = meta["columns"]
        model.threshold = {k: [float(c) for c in v] for k, v in meta["threshold"].items()}
        model.span_style = meta["span_style"]
        model.span_cut = {k: float(v) for k, v in meta["span_cut"].items()}
        model.gate_b = float(meta["gate_b"])
        model.uses_cues = bool(meta.get("uses_cues", False))
        model.metadata = {k: meta[k] for k in ("format", "version", "params", "data", "report") if k in meta}
        return model


# -- sources -------------------------------------------------------------------------------------------------------
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


def fit_from_sources(
    semeval_dir: Path,
    project_examples: Sequence,
    encode: Callable[[list[str]], np.ndarray],
    *,
    rhetorical_ids: Iterable[str],
    mapping: dict[str, str] | None = None,
    register_texts: Sequence[str] = (),
    cues: Callable[[str], dict] | None = None,
    **params,
) -> TechniqueModel:
    """Fits on SemEval-2021 Task 6's training split (read from `semeval_dir`) and `project_examples` (the output of
    `project_training_examples(kb)`). `encode(list_of_str)` returns unit embeddings (the project's encoder:
    `lambda xs: embeddings.encode(xs, normalised=True)`); `rhetorical_ids` are the tactic ids the model may
    predict (cards of kind rhetorical: campaign tactics are never predicted from text); `register_texts`: further
    posts, annotated for tactics or not, that only teach the gate what a post (not a meme caption) looks like."""
    from .fitting import load_mapping

    started = time.perf_counter()
    mapping = mapping or load_mapping()
    ids = set(rhetorical_ids)
    mapping = {k: v for k, v in mapping.items() if v in ids}
    semeval, _ = load_semeval(Path(semeval_dir), "training")
    posts = annotated_posts(project_examples, ids)
    t0 = time.perf_counter()
    extra = [normalise(t).text for t in register_texts]
    vectors = np.asarray(encode([embedding_text(t) or " " for t in semeval.texts + posts.texts + extra]), np.float32)
    embed_s = time.perf_counter() - t0
    n_sem, n_post = len(semeval.texts), len(posts.texts)
    sources = {
        "semeval": dict(SEMEVAL_DATA, directory_name=Path(semeval_dir).name, texts=len(semeval.texts)),
        "posts": dict(PROJECT_DATA, texts=len(posts.texts)),
    }
    model = TechniqueModel(**params).fit(
        semeval, vectors[:n_sem], posts, vectors[n_sem : n_sem + n_post], mapping=mapping, post_ids=ids, sources=sources,
        register_vectors=vectors[n_sem:], cues=cues,
    )
    model.metadata["report"]["embedding_seconds"] = round(embed_s, 2)
    model.metadata["report"]["fit_seconds"] = round(time.perf_counter() - started, 2)
    return model


def fit_from_knowledge_base(kb, semeval_dir: Path, encode: Callable[[list[str]], np.ndarray], **params) -> TechniqueModel:
    """fit_from_sources with the knowledge base's annotated train examples, its rhetorical cards, and its other
    train examples (not annotated for tactics) for the gate only."""
    rhetorical = [card.id for card in kb.tactics.values() if card.kind == "rhetorical"]
    annotated = project_training_examples(kb)
    taken = {id(e) for e in annotated}
    others = [e.text for e in kb.examples_in("train") if id(e) not in taken]
    return fit_from_sources(
        semeval_dir, annotated, encode, rhetorical_ids=rhetorical, register_texts=others, cues=cue_finder(kb), **params
    )


def cue_finder(kb) -> Callable[[str], dict]:
    """The cards' cue patterns as the model reads them (rhetorical cards only): text -> tactic id -> spans."""
    from .tactics import TacticDetector

    return TacticDetector([c for c in kb.tactics.values() if c.kind == "rhetorical"]).find
