"""Runs an assistant over a labelled dataset; k-fold cross-validation on the dataset's own labels.

A post that ends in a user-facing error (`NarrativeLensError`, an empty post for instance) is recorded as an
error and counted apart from the scores; any other exception is a bug and stops the run.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
from collections.abc import Callable
from pathlib import Path

from ..api import Answer, Assistant
from ..corpus import Example, KnowledgeBase, NarrativeCard
from ..corpus.models import Markers, Seen
from ..errors import DatasetError, InvalidInput, NarrativeLensError
from ..explain import check_citations
from ..settings import Settings
from .dataset import EvalExample
from .faithfulness import Faithfulness, faithfulness
from .metrics import Prediction, summarise


BATCH = 32
LATENCY_SAMPLE = 100


def _describe(error: NarrativeLensError) -> str:
    return f"{type(error).__name__}: {error}"


def _prediction(
    example: EvalExample, answer: Answer | NarrativeLensError, elapsed_ms: float, faithful: Faithfulness | None = None
) -> Prediction:
    """The prediction for one answer; for an error, a record that the metrics count apart and do not score."""
    about = {"source": example.source, "lang": example.lang, "length": len(example.text)}
    if isinstance(answer, NarrativeLensError):
        return Prediction(
            example.id, example.narratives, [], 0.0, example.tactics, [], 0, 0, elapsed_ms, error=_describe(answer), **about
        )
    best = answer.narratives[0] if answer.narratives else (answer.candidates[0] if answer.candidates else None)
    check = check_citations(answer.answer, {c.id for c in answer.citations})
    return Prediction(
        id=example.id,
        gold=list(example.narratives),
        # LLM-assisted matching puts the LLM's pick first; the rest keep the matcher's order.
        predicted=list(dict.fromkeys([answer.llm_choice] * bool(answer.llm_choice) + [n.id for n in answer.narratives])),
        top_score=answer.narratives[0].score if answer.narratives else 0.0,
        gold_tactics=example.tactics,
        predicted_tactics=sorted({t.id for t in answer.tactics}),
        citation_markers=check.total,
        citation_unresolved=len(check.unresolved),
        latency_ms=elapsed_ms,
        faithfulness=faithful,
        candidate=best.id if best else None,
        candidate_score=best.score if best else 0.0,
        **about,
    )


def predict(assistant: Assistant, example: EvalExample, mode: str = "offline") -> tuple[Prediction, Answer | None]:
    started = time.perf_counter()
    try:
        answer = assistant.ask(example.text, mode=mode)
    except NarrativeLensError as error:  # recorded as an error, not scored; anything else is a bug and propagates
        return _prediction(example, error, (time.perf_counter() - started) * 1000), None
    elapsed = (time.perf_counter() - started) * 1000
    faithful = None
    if mode == "llm" and answer.mode == "llm":
        faithful = faithfulness(answer, assistant.embeddings, assistant.writer if assistant.settings.llm.judge_faithfulness else None)
    return _prediction(example, answer, elapsed, faithful), answer


def _answer_batch(assistant: Assistant, texts: list[str]) -> list[Answer | NarrativeLensError]:
    """Offline answers in one pass; when a post ends in a user-facing error, the batch is answered post by post so
    that only that post is recorded as an error."""
    try:
        return list(assistant.ask_many(texts))
    except NarrativeLensError:
        pass
    results: list[Answer | NarrativeLensError] = []
    for text in texts:
        try:
            results.append(assistant.ask(text, mode="offline"))
        except NarrativeLensError as error:
            results.append(error)
    return results


def evaluate(
    assistant: Assistant,
    examples: list[EvalExample],
    labels: list[str],
    progress: Callable[[int], None] | None = None,
    mode: str = "offline",
) -> tuple[dict, list[Answer | None]]:
    """Offline: posts are answered in batches (throughput), and single-post latency is measured on a sample.
    LLM mode: one post at a time, with faithfulness."""
    assistant.prepare()  # load and fit before the clock starts
    assistant.embeddings.encode(["warm-up"])  # a cached fit skips the encoder; loading it is cold start, not throughput
    predictions: list[Prediction] = []
    answers: list[Answer | None] = []
    started = time.perf_counter()
    if mode == "llm":
        for example in examples:
            prediction, answer = predict(assistant, example, mode="llm")
            predictions.append(prediction)
            answers.append(answer)
            if progress:
                progress(1)
    else:
        for offset in range(0, len(examples), BATCH):
            batch = examples[offset : offset + BATCH]
            batch_started = time.perf_counter()
            batch_answers = _answer_batch(assistant, [e.text for e in batch])
            per_post = (time.perf_counter() - batch_started) * 1000 / len(batch)
            for example, answer in zip(batch, batch_answers):
                predictions.append(_prediction(example, answer, per_post))
                answers.append(None if isinstance(answer, NarrativeLensError) else answer)
            if progress:
                progress(len(batch))
    wall = time.perf_counter() - started
    summary = summarise(predictions, labels, wall, assistant.analyzer.matcher.threshold)
    if mode != "llm":
        # Single-post latency, as a user pasting one post sees it.
        failed = {p.id for p in predictions if p.error is not None}
        timed = [predict(assistant, e)[0] for e in examples[:LATENCY_SAMPLE] if e.id not in failed]
        sample = [p.latency_ms for p in timed if p.error is None]
        if sample:
            summary["latency_ms"].update(
                {"p50": round(float(np.percentile(sample, 50)), 2), "p95": round(float(np.percentile(sample, 95)), 2), "sample": len(sample)}
            )
    summary["threshold"] = assistant.analyzer.matcher.threshold
    return summary, answers


_worker_assistant: Assistant | None = None


def _start_worker(settings: Settings) -> None:
    global _worker_assistant  # one Assistant per worker process, built once
    _worker_assistant = Assistant(settings)
    _worker_assistant.prepare()


def _answer_chunk(texts: list[str]) -> tuple[list[dict | NarrativeLensError], float]:
    """Answers as JSON; a post that ended in a user-facing error as the error itself (it pickles)."""
    started = time.perf_counter()
    answers = _answer_batch(_worker_assistant, texts)
    dumped = [a if isinstance(a, NarrativeLensError) else a.model_dump(mode="json") for a in answers]
    return dumped, time.perf_counter() - started


def evaluate_parallel(
    settings: Settings,
    examples: list[EvalExample],
    labels: list[str],
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict, list[Answer | None]]:
    """Offline eval spread over processes; each loads the same index (best shared through a Chroma server)."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    Assistant(settings).analyzer  # build the index and fit once, before the workers load it
    chunks = [examples[i : i + BATCH] for i in range(0, len(examples), BATCH)]
    predictions: list[Prediction] = []
    answers: list[Answer | None] = []
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(settings,)) as pool:
        for chunk, (dumped, seconds) in zip(chunks, pool.map(_answer_chunk, [[e.text for e in c] for c in chunks])):
            for example, data in zip(chunk, dumped):
                answer = data if isinstance(data, NarrativeLensError) else Answer.model_validate(data)
                predictions.append(_prediction(example, answer, seconds * 1000 / len(chunk)))
                answers.append(None if isinstance(answer, NarrativeLensError) else answer)
            if progress:
                progress(len(chunk))
    wall = time.perf_counter() - started
    summary = summarise(predictions, labels, wall)
    summary["workers"] = workers
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
        raise InvalidInput(f"--cv needs 2 <= K <= the number of examples ({len(examples)}), got {k}")
    strata = [e.narratives[0] if e.narratives else "" for e in examples]
    counts = {s: strata.count(s) for s in strata}
    strata = [s if counts[s] >= k else "rare" for s in strata]
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(examples)), strata))
    for fold, (train_idx, _) in enumerate(splits):  # checked before any fold is fitted
        carrying = sum(1 for i in train_idx if examples[i].narratives)
        if carrying < 2 or len(train_idx) - carrying < 2:
            raise DatasetError(
                f"fold {fold + 1} of {k} would train on {carrying} post(s) with a narrative and {len(train_idx) - carrying} "
                "benign one(s); the matcher needs at least two of each: add posts, or use a smaller --cv"
            )
    base = Assistant(settings).kb
    fold_predictions: list[tuple[int, Prediction, Answer | None]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="narrative-lens-cv-") as scratch:
        for fold, (train_idx, test_idx) in enumerate(splits):
            fold_settings = settings.model_copy(update={"data_dir": Path(scratch) / f"fold-{fold}", "chroma_url": None})
            kb = _cv_knowledge_base(base, [examples[i] for i in train_idx], labels)
            assistant = Assistant(fold_settings, kb=kb)
            assistant.prepare()
            fold = [examples[i] for i in test_idx]
            fold_answers = _answer_batch(assistant, [e.text for e in fold])
            for i, example, answer in zip(test_idx, fold, fold_answers):
                kept = None if isinstance(answer, NarrativeLensError) else answer
                fold_predictions.append((int(i), _prediction(example, answer, 0.0), kept))
            if progress:
                progress(len(fold))
    wall = time.perf_counter() - started
    fold_predictions.sort(key=lambda item: item[0])
    summary = summarise([p for _, p, _ in fold_predictions], labels, wall)
    summary["cv_folds"] = k
    return summary, [a for _, _, a in fold_predictions]
