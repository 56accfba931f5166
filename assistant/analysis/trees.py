"""A fitted gradient-boosted tree ensemble kept as plain arrays, scored with numpy.

The matcher fits scikit-learn's HistGradientBoostingClassifier, then keeps only its trees here, so
analysing a post imports no scikit-learn (about 1.5 s of start-up) and the fitted model can be saved as
arrays. All trees are walked at once, one level per step, which takes well under a millisecond for a post.
"""

from __future__ import annotations

import numpy as np


class TreeEnsemble:
    def __init__(self, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
                 leaf: np.ndarray, value: np.ndarray, roots: np.ndarray, depth: int, baseline: float):
        self.feature, self.threshold, self.left, self.right = feature, threshold, left, right
        self.leaf, self.value, self.roots, self.depth, self.baseline = leaf, value, roots, depth, baseline

    @classmethod
    def from_sklearn(cls, model) -> "TreeEnsemble":
        """From a fitted binary HistGradientBoostingClassifier with numeric features and no missing values."""
        features, thresholds, lefts, rights, leaves, values, roots = [], [], [], [], [], [], []
        offset, depth = 0, 0
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            roots.append(offset)
            features.append(nodes["feature_idx"].astype(np.int64))
            thresholds.append(nodes["num_threshold"].astype(np.float64))
            lefts.append(nodes["left"].astype(np.int64) + offset)
            rights.append(nodes["right"].astype(np.int64) + offset)
            leaves.append(nodes["is_leaf"].astype(bool))
            values.append(nodes["value"].astype(np.float64))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        join = np.concatenate
        return cls(join(features), join(thresholds), join(lefts), join(rights), join(leaves), join(values),
                   np.asarray(roots, dtype=np.int64), depth, float(np.ravel(model._baseline_prediction)[0]))

    def decision(self, x: np.ndarray) -> np.ndarray:
        """The raw score (log-odds) for each row of x, as the classifier's decision_function gives it."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return np.zeros(0)
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            inner = ~self.leaf[node]
            if not inner.any():
                break
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.baseline + self.value[node].sum(axis=1)

    @classmethod
    def average(cls, ensembles: list["TreeEnsemble"]) -> "TreeEnsemble":
        """One ensemble whose score is the mean of the given ensembles' scores (their trees side by side)."""
        share = 1.0 / len(ensembles)
        features, thresholds, lefts, rights, leaves, values, roots = [], [], [], [], [], [], []
        offset = 0
        for ensemble in ensembles:
            features.append(ensemble.feature)
            thresholds.append(ensemble.threshold)
            lefts.append(ensemble.left + offset)
            rights.append(ensemble.right + offset)
            leaves.append(ensemble.leaf)
            values.append(ensemble.value * share)
            roots.append(ensemble.roots + offset)
            offset += len(ensemble.feature)
        join = np.concatenate
        return cls(join(features), join(thresholds), join(lefts), join(rights), join(leaves), join(values), join(roots),
                   max(e.depth for e in ensembles), float(np.mean([e.baseline for e in ensembles])))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "feature": self.feature, "threshold": self.threshold, "left": self.left, "right": self.right,
            "leaf": self.leaf, "value": self.value, "roots": self.roots,
            "meta": np.array([self.depth, self.baseline], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray]) -> "TreeEnsemble":
        depth, baseline = data["meta"]
        return cls(data["feature"], data["threshold"], data["left"], data["right"], data["leaf"].astype(bool),
                   data["value"], data["roots"], int(depth), float(baseline))
