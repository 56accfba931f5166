"""Runs an assistant over a labelled dataset; k-fold cross-validation on the dataset's own labels."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..api import Answer, Assistant
from ..corpus import Example, KnowledgeBase, NarrativeCard
from ..corpus.models import Markers, Seen
from ..explain import check_citations
from ..settings import Settings
from .dataset import EvalExample
from .metrics import Prediction, summarise


def predict(assistant: Assistant, example: EvalExample) -> tuple[Prediction, Answer | None]:
    started = time.perf_counter()
    try:
        answer = assistant.ask(example.text)
    except Exception as error:  # an example that cannot be answered counts as no prediction
        elapsed = (time.perf_counter() - started) * 1000
        return (
            Prediction(example.id, example.narratives, [], 0.0, example.tactics, [], 0, 0, elapsed),
            None,
        )
    elapsed = (time.perf_counter() - started) * 1000
    check = check_citations(answer.answer, {c.id for c in answer.citations})
    top = answer.narratives[0].score if answer.narratives else 0.0
    return (
        Prediction(
            id=example.id,
            gold=list(example.narratives),
            predicted=[n.id for n in answer.narratives],
            top_score=top,
            gold_tactics=example.tactics,
            predicted_tactics=sorted({t.id for t in answer.tactics}),
            citation_markers=check.total,
            citation_unresolved=len(check.unresolved),
            latency_ms=elapsed,
        ),
        answer,
    )


def evaluate(
    assistant: Assistant,
    examples: list[EvalExample],
    labels: list[str],
    progress: Callable[[int], None] | None = None,
) -> tuple[dict, list[Answer | None]]:
    assistant.analyzer  # load and fit before the clock starts
    predictions, answers = [], []
    started = time.perf_counter()
    for example in examples:
        prediction, answer = predict(assistant, example)
        predictions.append(prediction)
        answers.append(answer)
        if progress:
            progress(1)
    wall = time.perf_counter() - started
    summary = summarise(predictions, labels, wall)
    summary["threshold"] = assistant.analyzer.matcher.threshold
    return summary, answers


def _cv_knowledge_base(base: KnowledgeBase, train: list[EvalExample], labels: list[str]) -> KnowledgeBase:
    """A knowledge base whose examples are the fold's training posts; cards from the corpus when known."""
    narratives: dict[str, NarrativeCard] = {}
    for label in labels:
        if label in base.narratives:
            narratives[label] = base.narratives[label]
        else:
            title = label.replace("-", " ").replace("_", " ").capitalize()
            # Built without validation: a team's own taxonomy has no facts or sources yet.
            narratives[label] = NarrativeCard.model_construct(
                id=label, campaign="dataset", title=title, summary=title, claims=[title], markers=Markers(),
                tactics=[], seen=Seen(), facts=[], sources=[], body="",
            )
    examples = [
        Example.model_construct(
            id=e.id, text=e.text, lang="en", platform="other", narratives=list(e.narratives), tactics=[],
            rationale="", constructed=False, split="train",
        )
        for e in train
    ]
    return KnowledgeBase(
        root=base.root, narratives=narratives, tactics=dict(base.tactics), sources=dict(base.sources), examples=examples
    )


def cross_validate(
    settings: Settings,
    examples: list[EvalExample],
    labels: list[str],
    k: int,
    progress: Callable[[int], None] | None = None,
    seed: int = 7,
) -> tuple[dict, list[Answer | None]]:
    """k folds: each fold's posts are answered by an assistant whose knowledge is the other folds."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    if k < 2 or k > len(examples):
        raise ValueError(f"--cv needs 2 <= K <= the number of examples ({len(examples)})")
    strata = [e.narratives[0] if e.narratives else "" for e in examples]
    counts = {s: strata.count(s) for s in strata}
    strata = [s if counts[s] >= k else "rare" for s in strata]
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    base = Assistant(settings).kb
    fold_predictions: list[tuple[int, Prediction, Answer | None]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="narrative-lens-cv-") as scratch:
        for fold, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(examples)), strata)):
            fold_settings = settings.model_copy(update={"data_dir": Path(scratch) / f"fold-{fold}", "chroma_url": None})
            kb = _cv_knowledge_base(base, [examples[i] for i in train_idx], labels)
            assistant = Assistant(fold_settings, kb=kb)
            assistant.analyzer
            for i in test_idx:
                prediction, answer = predict(assistant, examples[i])
                fold_predictions.append((int(i), prediction, answer))
                if progress:
                    progress(1)
    wall = time.perf_counter() - started
    fold_predictions.sort(key=lambda item: item[0])
    summary = summarise([p for _, p, _ in fold_predictions], labels, wall)
    summary["cv_folds"] = k
    return summary, [a for _, _, a in fold_predictions]
