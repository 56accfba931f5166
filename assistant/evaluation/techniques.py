"""Technique detection scored on SemEval-2021 Task 6, beside baselines computed on the same file.

Subtask 1 (techniques per text), `score_techniques`:

- micro-F1, the task's official metric, and macro-F1 as the task's scorer (scorer/task1_3.py) computes it: the
  gold and predicted label sets are binarised over all 20 techniques (techniques.txt) and passed to sklearn's
  `f1_score(average="micro" | "macro", zero_division=1)`. For macro-F1 that means a technique that is neither in
  the gold labels nor predicted counts as F1 = 1, and one that is in either but never right counts as 0: on a
  63-text split where several techniques never occur, this is why it is far above an average over the
  techniques that do occur (which is what this command printed before, 0.071 against the scorer's 0.160).
  `macro_f1_present` keeps that average over the techniques present in the gold labels, named as such.
- baselines on the same file, computed, never copied: the task's random baseline (baselines/baseline_task1_random.py:
  per text, keep drawing a technique uniformly at random, with replacement, while a fair coin says so; seeded;
  its mean over 200 seeds and its run with seed 42), and "most frequent labels": the k most frequent techniques of
  the training split written on every text, for k = 1..5, the best k reported.

Subtask 2 (spans), `score_spans`: the task-2 scorer's definition (the FLC scorer of Da San Martino et al., 2019,
used again for SemEval-2021 Task 6 subtask 2): for every predicted span p and gold span g of the same technique
in the same text, precision gains |p ∩ g| / |p| and recall gains |p ∩ g| / |g| (characters); precision is divided
by the number of predicted spans, recall by the number of gold spans; F1 is their harmonic mean (1 when there is
neither). Our own overlapping spans of one technique are merged before scoring; gold spans are taken as given.

The data is read from the path given (never copied into the project); the mapping from the task's 20 technique
names to our tactic ids is evals/semeval2021_task6_mapping.json.

    python -m assistant.evaluation.techniques ../shared/data/semeval2021-task6/dev_set_task1.txt [--spans] [--json]
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Callable

from ..settings import REPO_ROOT
from ..text import merge_spans
from ..analysis.fitting import MAPPING, load_mapping, load_or_fit_model, technique_model_key  # noqa: F401  (their home is analysis/)
from .dataset import DatasetError

DEFAULT_SEMEVAL_DIR = REPO_ROOT.parent / "shared" / "data" / "semeval2021-task6"
RANDOM_SEEDS = 200


def load_task1(path: Path) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not a SemEval-2021 Task 6 JSON file ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) and "text" in item for item in data):
        raise DatasetError(f"{path}: expected a JSON list of {{id, text, labels}} objects")
    return data


def technique_names(semeval_dir: Path | None, mapping: dict[str, str]) -> list[str]:
    """The task's 20 technique names: techniques.txt beside the data, else the mapping's keys."""
    if semeval_dir is not None and (Path(semeval_dir) / "techniques.txt").exists():
        names = [line.strip() for line in (Path(semeval_dir) / "techniques.txt").read_text(encoding="utf-8").splitlines()]
        return [n for n in names if n]
    return list(mapping)


# -- metrics -------------------------------------------------------------------------------------------------------
def set_scores(gold: list[set[str]], predicted: list[set[str]], classes: list[str]) -> dict:
    """Micro- and macro-F1 as sklearn's f1_score(..., zero_division=1) gives them over the binarised label sets
    (labels outside `classes` are ignored, as MultiLabelBinarizer fitted on the classes does), with counts."""
    per = {}
    for name in classes:
        tp = sum(1 for g, p in zip(gold, predicted) if name in g and name in p)
        fp = sum(1 for g, p in zip(gold, predicted) if name not in g and name in p)
        fn = sum(1 for g, p in zip(gold, predicted) if name in g and name not in p)
        precision = tp / (tp + fp) if tp + fp else 1.0  # zero_division=1
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        per[name] = {"tp": tp, "fp": fp, "fn": fn, "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
    tp = sum(v["tp"] for v in per.values())
    fp = sum(v["fp"] for v in per.values())
    fn = sum(v["fn"] for v in per.values())
    micro = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    exact_f1 = [2 * v["tp"] / (2 * v["tp"] + v["fp"] + v["fn"]) if v["tp"] + v["fp"] + v["fn"] else 1.0 for v in per.values()]
    present = [f for f, v in zip(exact_f1, per.values()) if v["tp"] + v["fn"]]
    return {
        "micro_f1": micro,
        "macro_f1": sum(exact_f1) / len(exact_f1) if exact_f1 else 1.0,
        "macro_f1_present": sum(present) / len(present) if present else None,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "per_technique": per,
    }


def random_labels(n: int, classes: list[str], seed: int) -> list[set[str]]:
    """The task's random baseline: per text, draw techniques uniformly (with replacement) while a coin says so."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        labels, i = [], 0
        while i < len(classes) and rng.random() < 0.5:
            labels.append(classes[rng.randint(0, len(classes) - 1)])
            i += 1
        out.append(set(labels))
    return out


def baselines(gold: list[set[str]], classes: list[str], train_labels: list[set[str]] | None, seeds: int = RANDOM_SEEDS) -> dict:
    runs = [set_scores(gold, random_labels(len(gold), classes, seed), classes) for seed in range(seeds)]
    seed42 = set_scores(gold, random_labels(len(gold), classes, 42), classes)
    source = "training split" if train_labels is not None else "this file (no training split found beside it)"
    counts = {name: 0 for name in classes}
    for labels in train_labels if train_labels is not None else gold:
        for label in labels:
            if label in counts:
                counts[label] += 1
    order = sorted(classes, key=lambda name: (-counts[name], name))
    frequent = []
    for k in range(1, 6):
        chosen = set(order[:k])
        scores = set_scores(gold, [chosen] * len(gold), classes)
        frequent.append({"k": k, "labels": order[:k], "micro_f1": round(scores["micro_f1"], 4), "macro_f1": round(scores["macro_f1"], 4)})
    best = max(frequent, key=lambda row: row["micro_f1"])
    return {
        "random": {
            "micro_f1_mean": round(sum(r["micro_f1"] for r in runs) / seeds, 4),
            "macro_f1_mean": round(sum(r["macro_f1"] for r in runs) / seeds, 4),
            "seeds": seeds,
            "micro_f1_seed_42": round(seed42["micro_f1"], 4),
        },
        "most_frequent": {"counted_on": source, "by_k": frequent, "best": best},
    }


def span_prf(gold: list[list[tuple[int, int, str]]], predicted: list[list[tuple[int, int, str]]]) -> dict:
    """Task-2 span precision, recall and F1 (see the module docstring); per text lists of (start, end, technique)."""
    prec_num = rec_num = 0.0
    n_pred = n_gold = 0
    per: dict[str, dict[str, float]] = {}
    for gold_doc, pred_doc in zip(gold, predicted):
        merged = []
        for technique in {t for _, _, t in pred_doc}:
            merged += [(s, e, technique) for s, e in merge_spans((s, e) for s, e, t in pred_doc if t == technique)]
        gold_doc = [(s, e, t) for s, e, t in gold_doc if e > s]
        n_pred += len(merged)
        n_gold += len(gold_doc)
        for _, _, t in merged:
            per.setdefault(t, {"p_num": 0.0, "r_num": 0.0, "pred": 0, "gold": 0})["pred"] += 1
        for _, _, t in gold_doc:
            per.setdefault(t, {"p_num": 0.0, "r_num": 0.0, "pred": 0, "gold": 0})["gold"] += 1
        for ps, pe, pt in merged:
            for gs, ge, gt in gold_doc:
                if pt != gt:
                    continue
                overlap = max(0, min(pe, ge) - max(ps, gs))
                if overlap:
                    prec_num += overlap / (pe - ps)
                    rec_num += overlap / (ge - gs)
                    per[gt]["p_num"] += overlap / (pe - ps)
                    per[gt]["r_num"] += overlap / (ge - gs)

    def prf(pn, pd, rn, rd):
        p = pn / pd if pd else 0.0
        r = rn / rd if rd else 0.0
        f = 1.0 if not pd and not rd else (2 * p * r / (p + r) if p > 0 and r > 0 else 0.0)
        return p, r, f

    p, r, f = prf(prec_num, n_pred, rec_num, n_gold)
    per_technique = {}
    for t, v in sorted(per.items()):
        tp_, tr_, tf_ = prf(v["p_num"], v["pred"], v["r_num"], v["gold"])
        per_technique[t] = {"precision": round(tp_, 4), "recall": round(tr_, 4), "f1": round(tf_, 4), "predicted": v["pred"], "gold": v["gold"]}
    return {"precision": p, "recall": r, "f1": f, "predicted_spans": n_pred, "gold_spans": n_gold, "per_technique": per_technique}


# -- the model under test ------------------------------------------------------------------------------------------
def _semeval_dir_for(path: Path, semeval_dir: Path | None) -> Path:
    if semeval_dir is not None:
        return Path(semeval_dir)
    beside = Path(path).resolve().parent
    if (beside / "training_set_task1.txt").exists():
        return beside
    return DEFAULT_SEMEVAL_DIR


def model_predictor(model, encode: Callable[[list[str]], object], cues: Callable[[str], dict] | None = None) -> Callable[[list[str]], list[list]]:
    """A batch function: raw texts -> per text a list of TechniqueHit with spans mapped back onto the raw text."""
    import numpy as np

    from ..analysis.techniques import TechniqueHit, embedding_text
    from ..text import normalise

    def predict(texts: list[str]) -> list[list]:
        normals = [normalise(t) for t in texts]
        vectors = np.asarray(encode([embedding_text(n.text) or " " for n in normals]))
        out = []
        for normal, vector in zip(normals, vectors):
            found = cues(normal.text) if cues is not None and normal.text.strip() else None
            hits = model.predict(normal.text, vector, cues=found) if normal.text.strip() else []
            out.append(
                [
                    TechniqueHit(h.id, h.semeval, h.score, h.threshold, tuple(normal.original_span(s, e) for s, e in h.spans), h.register)
                    for h in hits
                ]
            )
        return out

    return predict


def _resolve(subject, path: Path, semeval_dir: Path | None, model=None, cues=None):
    """(batch predict function, description) for an Assistant, a TechniqueModel or a function."""
    from ..analysis.techniques import TechniqueModel

    if isinstance(subject, TechniqueModel) or model is not None:
        model = model or subject
        if hasattr(subject, "embeddings") and not isinstance(subject, TechniqueModel):
            embeddings = subject.embeddings
        else:
            from ..embeddings import get_embeddings
            from ..settings import Settings

            settings = Settings()
            embeddings = get_embeddings(settings.embeddings)
        return model_predictor(model, lambda xs: embeddings.encode(xs, normalised=True), cues), "technique model"
    if hasattr(subject, "kb") and hasattr(subject, "embeddings"):  # an Assistant
        model = getattr(subject, "technique_model", None)
        if model is None:
            settings = getattr(subject, "settings", None)
            cache = getattr(settings, "data_dir", None)
            model = load_or_fit_model(
                subject.kb, subject.embeddings, _semeval_dir_for(path, semeval_dir), cache, getattr(subject, "model_name", "use-m3")
            )
        from ..analysis.techniques import cue_finder

        cues = cues or (cue_finder(subject.kb) if getattr(model, "uses_cues", False) else None)
        return model_predictor(model, lambda xs: subject.embeddings.encode(xs, normalised=True), cues), "technique model"
    if callable(subject):
        return (lambda texts: [list(subject(t)) for t in texts]), "function"
    raise TypeError("score_techniques needs an Assistant, a TechniqueModel or a function text -> techniques")


def _names(found, mapping: dict[str, str]) -> set[str]:
    """SemEval names of a prediction: TechniqueHits (their .semeval or mapped .id), SemEval names or our ids."""
    reverse = {ours: theirs for theirs, ours in mapping.items()}
    names = set()
    for item in found:
        if hasattr(item, "semeval"):
            name = item.semeval or reverse.get(item.id, "")
        elif hasattr(item, "id"):
            name = reverse.get(item.id, "")
        else:
            name = item if item in mapping else reverse.get(item, "")
        if name:
            names.add(name)
    return names


def score_techniques(
    assistant, path: Path, mapping: dict[str, str] | None = None, *, semeval_dir: Path | None = None, model=None, cues=None
) -> dict:
    """Subtask-1 scores of `assistant` on the SemEval-2021 Task 6 file at `path`, with baselines on the same file.

    `assistant`: an Assistant (its `technique_model` when it has one, else the model fitted for its knowledge base,
    loaded from or saved to its data directory), a TechniqueModel, or a function text -> techniques (TechniqueHits,
    SemEval names or our tactic ids). `semeval_dir` holds the training split (default: the file's own directory,
    else ../shared/data/semeval2021-task6). `cues`: the cue finder a TechniqueModel was fitted with
    (analysis.techniques.cue_finder(kb)); an Assistant's is built from its knowledge base.
    """
    mapping = mapping or load_mapping()
    kb = getattr(assistant, "kb", None)
    if kb is not None and hasattr(kb, "tactics"):
        missing = sorted(set(mapping.values()) - set(kb.tactics))
        if missing:
            raise DatasetError(f"the mapping names tactic ids the knowledge base lacks: {', '.join(missing)}")
    items = load_task1(path)
    directory = _semeval_dir_for(path, semeval_dir)
    classes = technique_names(directory, mapping)
    predict, what = _resolve(assistant, path, semeval_dir, model, cues)
    started = time.perf_counter()
    found = predict([item["text"] for item in items])
    elapsed = time.perf_counter() - started
    gold = [set(item.get("labels", [])) for item in items]
    predicted = [_names(f, mapping) for f in found]
    scores = set_scores(gold, predicted, classes)
    train_path = directory / "training_set_task1.txt"
    train_labels = None
    if train_path.exists() and train_path.resolve() != Path(path).resolve():
        train_labels = [set(item.get("labels", [])) for item in load_task1(train_path)]
    base = baselines(gold, classes, train_labels)
    return {
        "dataset": str(path),
        "n": len(items),
        "predictor": what,
        "micro_f1": round(scores["micro_f1"], 4),
        "macro_f1": round(scores["macro_f1"], 4),
        "macro_f1_present": round(scores["macro_f1_present"], 4) if scores["macro_f1_present"] is not None else None,
        "precision": round(scores["precision"], 4),
        "recall": round(scores["recall"], 4),
        "tp": scores["tp"],
        "fp": scores["fp"],
        "fn": scores["fn"],
        "per_technique": scores["per_technique"],
        "baselines": base,
        # Kept for the CLI's current print line: the random baseline computed on this file (mean over seeds).
        "random_baseline_dev_micro_f1": base["random"]["micro_f1_mean"],
        "ms_per_text": round(1000 * elapsed / max(1, len(items)), 2),
        "definitions": "micro/macro-F1: sklearn f1_score over the 20 binarised techniques, zero_division=1 (the task's scorer)",
    }


def load_task2(path: Path) -> list[dict]:
    items = load_task1(path)
    if items and not all(isinstance(l, dict) and "start" in l for item in items for l in item.get("labels", [])):
        raise DatasetError(f"{path}: not a subtask-2 file (labels need start, end and technique)")
    return items


def score_spans(
    assistant, path: Path, mapping: dict[str, str] | None = None, *, semeval_dir: Path | None = None, model=None, cues=None
) -> dict:
    """Subtask-2 span scores (the task-2 scorer's character-overlap precision, recall and F1) on a *_task2.txt file.
    Accepts the same `assistant` as score_techniques; a function must return TechniqueHits (with spans)."""
    mapping = mapping or load_mapping()
    items = load_task2(path)
    predict, what = _resolve(assistant, path, semeval_dir, model, cues)
    found = predict([item["text"] for item in items])
    reverse = {ours: theirs for theirs, ours in mapping.items()}
    gold = [[(l["start"], l["end"], l["technique"]) for l in item.get("labels", [])] for item in items]
    predicted = []
    for hits in found:
        doc = []
        for hit in hits:
            name = getattr(hit, "semeval", "") or reverse.get(getattr(hit, "id", ""), "")
            if name:
                doc += [(s, e, name) for s, e in getattr(hit, "spans", ())]
        predicted.append(doc)
    result = span_prf(gold, predicted)
    return {
        "dataset": str(path),
        "n": len(items),
        "predictor": what,
        "span_f1": round(result["f1"], 4),
        "span_precision": round(result["precision"], 4),
        "span_recall": round(result["recall"], 4),
        "predicted_spans": result["predicted_spans"],
        "gold_spans": result["gold_spans"],
        "per_technique": result["per_technique"],
        "definition": "task-2 scorer: sum |p∩g|/|p| over predicted spans, sum |p∩g|/|g| over gold spans, same technique",
    }


def format_table(result: dict, spans: dict | None = None) -> str:
    """The eval-techniques table: ours, then the baselines computed on the same file, then per technique."""
    base = result["baselines"]
    frequent = base["most_frequent"]["best"]
    lines = [
        f"SemEval-2021 Task 6, subtask 1, {result['n']} texts ({Path(result['dataset']).name})",
        f"{'':34} {'micro-F1':>9} {'macro-F1':>9} {'P':>7} {'R':>7}",
        f"{'ours':34} {result['micro_f1']:9.3f} {result['macro_f1']:9.3f} {result['precision']:7.3f} {result['recall']:7.3f}",
        f"{'random (task baseline, mean of ' + str(base['random']['seeds']) + ')':34} "
        f"{base['random']['micro_f1_mean']:9.3f} {base['random']['macro_f1_mean']:9.3f}   (seed 42 alone: micro {base['random']['micro_f1_seed_42']:.3f})",
        f"{'most frequent, top ' + str(frequent['k']) + ' (' + base['most_frequent']['counted_on'].split(' (')[0] + ')':34} "
        f"{frequent['micro_f1']:9.3f} {frequent['macro_f1']:9.3f}",
        "macro-F1 as the task's scorer: all 20 techniques, zero_division=1 (absent and unpredicted = 1); "
        f"over the techniques present only: {result['macro_f1_present']}",
    ]
    if spans is not None:
        lines.append(
            f"subtask 2 spans ({Path(spans['dataset']).name}): F1 {spans['span_f1']:.3f} "
            f"(P {spans['span_precision']:.3f}, R {spans['span_recall']:.3f}; {spans['predicted_spans']} predicted, {spans['gold_spans']} gold)"
        )
    for name, row in sorted(result["per_technique"].items(), key=lambda item: (-(item[1]["tp"] + item[1]["fn"]), item[0])):
        lines.append(
            f"  {name:<52} P {row['precision']:.2f} R {row['recall']:.2f} F1 {row['f1']:.2f}  (tp {row['tp']}, fp {row['fp']}, fn {row['fn']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m assistant.evaluation.techniques", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a *_task1.txt file, e.g. ../shared/data/semeval2021-task6/dev_set_task1.txt")
    parser.add_argument("--spans", action="store_true", help="also score spans on the matching *_task2.txt file")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--semeval-dir", type=Path, default=None, help="directory of the training split (default: the file's)")
    parser.add_argument("--model-dir", type=Path, default=None, help="load a saved technique model instead of fitting")
    args = parser.parse_args(argv)

    from ..analysis.techniques import TechniqueModel, cue_finder
    from ..corpus import load_knowledge_base
    from ..embeddings import get_embeddings
    from ..settings import Settings

    settings = Settings()
    embeddings = get_embeddings(settings.embeddings)
    try:
        kb = load_knowledge_base(settings.corpus_dir)
        if args.model_dir:
            model = TechniqueModel.load(args.model_dir)
        else:
            model = load_or_fit_model(kb, embeddings, _semeval_dir_for(args.path, args.semeval_dir), settings.data_dir)
        cues = cue_finder(kb) if model.uses_cues else None
        result = score_techniques(model, args.path, semeval_dir=args.semeval_dir, cues=cues)
        spans = None
        if args.spans:
            task2 = args.path.with_name(args.path.name.replace("_task1", "_task2"))
            spans = score_spans(model, task2, semeval_dir=args.semeval_dir, cues=cues)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"techniques": result, "spans": spans}, ensure_ascii=False))
    else:
        print(format_table(result, spans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
