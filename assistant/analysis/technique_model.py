"""`TechniqueModel`, the persuasion-technique model described in analysis/techniques.py: its fitting, its
prediction of techniques and their spans in one post, and its files on disk (arrays as .npz, metadata as JSON)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .technique_data import POST, PROJECT_DATA, SEM, SEMEVAL_DATA, Annotated
from .technique_estimators import (
    apply_stacker,
    cv_folds,
    feature_matrix,
    fit_ridge,
    fit_stacker,
    micro_f1,
    nb_lexicon,
    per_technique_cuts,
    ridge_targets,
    sigmoid,
    token_labels,
    token_summary,
)
from .technique_spans import (
    WORDISH,
    choose_span_cut,
    embedding_text,
    span_styles,
    technique_spans,
    token_features,
    token_scores,
    tokens,
)

VERSION = 4
FORMAT = "narrative-lens-technique-model"


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


class TechniqueModel:
    """See analysis/techniques.py's docstring. Fit with `fit_from_sources` there (or `fit`), then
    `predict(text, vector)`."""

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
        self.stack: dict[str, np.ndarray] = {}  # [columns, 19]: per technique a fit_stacker row
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
        X = {r: feature_matrix([fs for doc in feats[r] for fs in doc], self.vocab) for r in data}
        bounds = {r: np.cumsum([0] + [len(tk) for tk in toks[r]]) for r in data}

        report: dict = {"registers": {}}
        for expert in (SEM, POST):
            other = POST if expert == SEM else SEM
            cols = self.columns[expert]
            index = {c: j for j, c in enumerate(cols)}
            tok_y = {
                r: np.vstack(
                    [np.zeros((0, len(cols)))]
                    + [token_labels(toks[r][i], data[r].spans[i], index, convert[expert][r]) for i in range(len(toks[r]))]
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
            folds = cv_folds(n, p["folds"], p["seed"])
            oof = np.zeros((n, len(cols), 6))
            oof_tokens: list[np.ndarray] = [np.zeros((0, len(cols)))] * n
            b = bounds[expert]
            for held in folds:
                rows = np.concatenate([np.arange(b[i], b[i + 1]) for i in held])
                own = tuple(a - c for a, c in zip(own_all, totals(expert, rows)))
                lex = nb_lexicon(own, other_totals, p["other_register_weight"], p["nb_alpha"])
                train = np.setdiff1d(np.arange(n), held)
                w, bias = fit_ridge(vectors[expert][train], ridge_targets(text_y[train]), lam)
                ridge = vectors[expert][held] @ w + bias
                scores = np.asarray(X[expert][rows] @ lex)
                offset = 0
                for k, i in enumerate(held):
                    count = b[i + 1] - b[i]
                    oof_tokens[i] = scores[offset : offset + count]
                    offset += count
                    oof[i, :, 0] = ridge[k, :-1]
                    oof[i, :, 1:4] = token_summary(oof_tokens[i])
                    oof[i, :, 4] = ridge[k, -1]
                    oof[i, :, 5] = self._cue_feature(cue_hits[expert][i], expert)
            # Kept at half precision, as saved, so a loaded model predicts exactly as the fitted one.
            lexicon = nb_lexicon(own_all, other_totals, p["other_register_weight"], p["nb_alpha"])
            self.lexicon[expert] = lexicon.astype(np.float16).astype(np.float32)
            w, bias = fit_ridge(vectors[expert], ridge_targets(text_y), lam)
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
                for held in cv_folds(n, p["folds"], p["seed"] + 1):
                    train = np.setdiff1d(np.arange(n), held)
                    if y[train].sum() == 0:
                        continue
                    probs[held, j] = apply_stacker(fit_stacker(Z[train], y[train], p["stack_c"]), Z[held])
                stack[j] = fit_stacker(Z, y, p["stack_c"])
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
            cuts = per_technique_cuts(
                probs, evidence & active, text_y, neutral, float(self.GRID[best]), max_fpr,
                grid=self.GRID, max_move=self.MAX_MOVE, min_gain=self.MIN_GAIN,
            )
            self.threshold[expert] = [float(c) for c in cuts]
            self.span_style[expert] = span_styles(self.mapping, expert, cols, data)
            self.span_cut[expert], span_cv = choose_span_cut(
                data[expert], toks[expert], oof_tokens, index, self.span_style[expert]
            )
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

    # -- prediction ------------------------------------------------------------------------------------------------
    def register(self, vector: np.ndarray) -> tuple[str, float]:
        """Which expert reads this text, and the gate's probability that it is a meme caption (SemEval-like)."""
        prob = float(sigmoid(float(np.asarray(vector, np.float32) @ self.gate_w) + self.gate_b))
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
        scores = token_scores(toks, self.lexicon[expert], self.vocab)
        summary = token_summary(scores)
        ridge = np.asarray(vector, np.float32) @ self.ridge_w[expert] + self.ridge_b[expert]
        cuts = self.threshold[expert]
        cue_row = self._cue_feature(cues or {}, expert)
        hits = []
        for j in np.flatnonzero(self.active[expert]):
            if summary[j, 0] <= 0:
                continue  # no word of the post carries this technique
            z = np.r_[ridge[j], summary[j], ridge[-1], cue_row[j]][None, :]
            prob = float(apply_stacker(self.stack[expert][j], z)[0])
            if prob < cuts[j]:
                continue
            spans = technique_spans(text, toks, scores[:, j], self.span_style[expert][j], self.span_cut[expert])
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

