"""A fitted gradient-boosted tree ensemble kept as plain arrays, scored with numpy.

The matcher fits scikit-learn's HistGradientBoostingClassifier, then keeps only its trees here, so
analysing a post imports no scikit-learn (about 1.5 s of start-up) and the fitted model can be saved as
arrays. All trees are walked at once, one level per step, which takes well under a millisecond for a post.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np


class TreeEnsemble:
    def __init__(self, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
                 leaf: np.ndarray, value: np.ndarray, roots: np.ndarray, depth: int, baseline: float):
        self.feature, self.threshold, self.left, self.right = feature, threshold, left, right
        self.leaf, self.value, self.roots, self.depth, self.baseline = leaf, value, roots, depth, baseline

    @cached_property
    def _walk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Tables for the walk: a node's two children side by side, right then left (kids[2 * node + goes_left]),
        with leaves pointing at themselves both ways, so a step is the same four gathers for every tree; and the
        roots ordered deepest tree first, with for each step the number of trees still walking (most trees are
        shallow: this halves the time of walking all of them to the deepest one's depth)."""
        me = np.arange(len(self.leaf))
        kids = np.stack([np.where(self.leaf, me, self.right), np.where(self.leaf, me, self.left)], 1).ravel()
        level = np.zeros(len(self.leaf), dtype=np.int64)
        inner = np.flatnonzero(~self.leaf)
        for _ in range(self.depth):  # each pass sets one more level right: children one below their parent
            level[self.left[inner]] = level[inner] + 1
            level[self.right[inner]] = level[inner] + 1
        tree = np.searchsorted(self.roots, me, side="right") - 1
        tree_depth = np.zeros(len(self.roots), dtype=np.int64)
        np.maximum.at(tree_depth, tree, level)
        order = np.argsort(-tree_depth, kind="stable")
        walking = np.array([(tree_depth > d).sum() for d in range(self.depth)], dtype=np.int64)
        return kids, np.where(self.leaf, 0, self.feature), self.roots[order], walking

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
        kids, feature, roots, walking = self._walk
        threshold = self.threshold
        node = np.broadcast_to(roots, (len(x), len(roots))).copy()
        for count in walking:
            part = node[:, :count]
            node[:, :count] = kids[2 * part + (x[rows, feature[part]] <= threshold[part])]
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
