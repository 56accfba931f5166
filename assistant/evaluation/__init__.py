"""Batch evaluation against labelled posts: metrics, reports, cross-validation."""

from .dataset import DatasetError, EvalExample, load_dataset
from .metrics import Prediction, summarise
from .runner import cross_validate, evaluate, evaluate_parallel

__all__ = ["DatasetError", "EvalExample", "Prediction", "cross_validate", "evaluate", "evaluate_parallel", "load_dataset", "summarise"]
