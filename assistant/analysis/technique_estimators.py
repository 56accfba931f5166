"""The numerical pieces the technique model is fitted from (see analysis/techniques.py): token labels and the
feature matrix, cross-validation folds, the naive-Bayes lexicon, the ridge regression, the per-technique stacker,
and the per-technique decision cuts."""

from __future__ import annotations

import numpy as np


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def micro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    tp = int((gold & pred).sum())
    fp = int((~gold & pred).sum())
    fn = int((gold & ~pred).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def feature_matrix(doc: list[list[str]], vocab: dict[str, int]):
    """Sparse [tokens, vocab] indicator matrix of each token's known features."""
    from scipy import sparse

    rows, cols = [], []
    for r, fs in enumerate(doc):
        for f in fs:
            j = vocab.get(f)
            if j is not None:
                rows.append(r)
                cols.append(j)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(doc), len(vocab)))


def token_labels(toks, spans, index, convert) -> np.ndarray:
    y = np.zeros((len(toks), len(index)))
    for s, e, label in spans:
        column = index.get(convert(label) or "")
        if column is None:
            continue
        for i, (a, b, _) in enumerate(toks):
            if s < b and a < e:
                y[i, column] = 1.0
    return y


def cv_folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[i::k]) for i in range(k)]


def nb_lexicon(own, other, other_weight, alpha) -> np.ndarray:
    pos = own[0] + other_weight * other[0]
    tot = own[1] + other_weight * other[1]
    npos = own[2] + other_weight * other[2]
    ntok = own[3] + other_weight * other[3]
    prior = (npos + 1.0) / (ntok + 2.0)
    prob = (pos + alpha * prior) / (tot[:, None] + alpha)
    return logit(prob) - logit(prior)[None, :]


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc = x - mean_x
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ (y - mean_y))
    return w, mean_y - mean_x @ w


def ridge_targets(y: np.ndarray) -> np.ndarray:
    """Ridge targets: each technique, and a last column for "any technique" (what sets propaganda apart from
    news and everyday posts in the embedding), which every stacker reads."""
    return np.column_stack([y, y.any(1)]).astype(np.float64)


def token_summary(scores: np.ndarray) -> np.ndarray:
    """[columns, 3]: best token score, mean of the best two, log(1 + sum of positive scores)."""
    scores = np.asarray(scores)
    if scores.shape[0] == 0:
        return np.zeros((scores.shape[1], 3))
    top = np.sort(scores, 0)[-2:]
    return np.stack([top[-1], top.mean(0), np.log1p(np.maximum(scores, 0).sum(0))], 1)


def fit_stacker(z: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """One row: the features' mean and std, then the logistic regression's coefficients and intercept."""
    from sklearn.linear_model import LogisticRegression

    mean, std = z.mean(0), z.std(0) + 1e-6
    model = LogisticRegression(C=c, max_iter=2000).fit((z - mean) / std, y)
    return np.r_[mean, std, model.coef_[0], model.intercept_[0]]


def apply_stacker(row: np.ndarray, z: np.ndarray) -> np.ndarray:
    k = (len(row) - 1) // 3
    mean, std, coef, bias = row[0:k], row[k : 2 * k], row[2 * k : 3 * k], row[3 * k]
    return sigmoid(((z - mean) / std) @ coef + bias)


def per_technique_cuts(
    probs, evidence, y, neutral, start: float, max_fpr: float, *, grid: np.ndarray, max_move: float, min_gain: float,
    rounds: int = 2,
) -> np.ndarray:
    """One cut per technique, from the shared one: coordinate ascent over `grid` on the out-of-fold
    probabilities, each technique's cut moved to where micro-F1 over all techniques together is best while the
    share of neutral texts given any technique stays within max_fpr. A cut moves only for a gain of at least
    `min_gain` true positives' worth, and at most `max_move` from the shared cut, so that rare techniques, whose
    best cut on a few examples is noise, keep the shared one."""
    n, c = probs.shape
    cuts = np.full(c, start)
    grid = grid[np.abs(grid - start) <= max_move + 1e-9]
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
            if f1.max() > f1[now[j]] + min_gain * gain_per_tp:
                cuts[j] = grid[int(np.argmax(f1))]
    return cuts
