"""The fitted models, and keeping them on disk between starts: the narrative matcher (fitted on the indexed
examples) and the technique model (fitted on SemEval-2021 Task 6 and the annotated examples).

Fitting takes 10-20 s each on two cores, so a fitted model is saved under a key of everything it depends on; a
later start with the same inputs loads it instead.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..cache_files import replace_cache_file
from ..corpus import KnowledgeBase
from ..errors import DatasetError
from ..settings import REPO_ROOT, MatchingSettings
from ..text import clean
from .analyzer import ExampleTable, example_table, post_frames
from .claims import ClaimFrames
from .matcher import MarkerIndex, NarrativeMatcher
from .matcher_file import load_matcher, save_matcher

MAPPING = REPO_ROOT / "evals" / "semeval2021_task6_mapping.json"
MATCHER_VERSION = "32"  # bump when the matcher's features or model change, to refit cached matchers


def matcher_key(kb: KnowledgeBase, examples_digest: str, ids: list[str], markers: MarkerIndex, matching: MatchingSettings,
                model_name: str) -> str:
    """A digest of everything the fitted matcher depends on: the examples, the cards, their markers and frames,
    the matching settings, the embedding model, scikit-learn's version and MATCHER_VERSION."""
    source = "|".join(
        [examples_digest, ",".join(ids), str(matching.target_benign_fpr), str(matching.prior), version("scikit-learn"),
         model_name, MATCHER_VERSION, json.dumps(kb.concepts, sort_keys=True)]
        + [card.model_dump_json() for card in kb.narratives.values()]
        + [m.pattern if m is not None else "" for m in markers.patterns]
    )
    return hashlib.sha256(source.encode()).hexdigest()[:20]


def fit_matcher(kb: KnowledgeBase, table: ExampleTable, embedder, ids: list[str], markers: MarkerIndex,
                matching: MatchingSettings) -> NarrativeMatcher:
    cards = [kb.narratives[narrative_id] for narrative_id in ids]
    frames = ClaimFrames(cards, kb.concepts)
    claim_texts = [(clean(text), card.id) for card in cards for text in [card.title, *card.claims]]
    claim_vectors = embedder.encode([text for text, _ in claim_texts])
    claims = [(text, vector, label) for (text, label), vector in zip(claim_texts, claim_vectors)]
    texts = [clean(text) for text in table.texts]
    return NarrativeMatcher(ids, markers, frames, prior=matching.prior).fit(
        texts,
        table.vectors,
        table.narratives,
        matching.target_benign_fpr,
        claims=claims,
        frame_hits=np.stack([post_frames(frames, text) for text in texts]) if texts else None,
    )


def load_or_fit_matcher(kb: KnowledgeBase, store, embedder, manifest, markers: MarkerIndex, matching: MatchingSettings,
                        cache_dir: Path) -> tuple[NarrativeMatcher, ExampleTable]:
    """Fit once per set of indexed examples (an ingested document does not change them); later starts load the
    fitted matcher, and the examples it was fitted on, from `cache_dir` instead of the store."""
    ids = list(kb.narratives)
    key = matcher_key(kb, manifest.digests.get("examples", manifest.generation), ids, markers, matching, embedder.name)
    cache = Path(cache_dir) / f"matcher-{key}.npz"
    if cache.is_file():
        try:
            return load_matcher(cache, markers, ClaimFrames([kb.narratives[i] for i in ids], kb.concepts))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            pass  # a damaged or older cache is refitted below
    table = example_table(store.all_items("examples", manifest.generation), embedder.dimension)
    matcher = fit_matcher(kb, table, embedder, ids, markers, matching)
    # Files fitted for an older index or settings are stale (and pickles from before this format, which are never
    # read); with no room (a full disk) the next start refits.
    replace_cache_file(cache, lambda handle: save_matcher(handle, matcher, table), stale="matcher-*.[np][pk][zl]")  # .npz and old .pkl
    return matcher, table


# -- the technique model ---------------------------------------------------------------------------------------------
def load_mapping(path: Path = MAPPING) -> dict[str, str]:
    """SemEval-2021 Task 6 technique name -> our tactic id (keys starting with "_" are notes)."""
    return {k: v for k, v in json.loads(Path(path).read_text(encoding="utf-8")).items() if not k.startswith("_")}


def technique_model_key(kb: KnowledgeBase, semeval_dir: Path, model_name: str) -> str:
    """A digest of everything a fitted technique model depends on: the model version, the training files, the
    annotated examples that take part, the rhetorical cards, the mapping and the embedding model."""
    from .techniques import VERSION, project_training_examples

    digest = hashlib.sha256(f"v{VERSION}|cues|{model_name}".encode())
    for name in ("training_set_task1.txt", "training_set_task2.txt"):
        digest.update((Path(semeval_dir) / name).read_bytes())
    for example in project_training_examples(kb):
        digest.update(json.dumps([example.text, [(t.id, t.start, t.end) for t in example.tactics]], ensure_ascii=False).encode())
    digest.update(json.dumps(sorted(c.id for c in kb.tactics.values() if c.kind == "rhetorical")).encode())
    digest.update(MAPPING.read_bytes())
    return digest.hexdigest()[:16]


def load_or_fit_model(kb: KnowledgeBase, embeddings, semeval_dir: Path, cache_dir: Path | None, model_name: str = "use-m3"):
    """The fitted technique model for this knowledge base and training data: from `cache_dir` when it holds one
    fitted on the same inputs, else fitted now (about 10 s) and saved there. DatasetError without the training
    split; use `technique_model_or_none` where the cue patterns should take over instead."""
    from .techniques import TechniqueModel, fit_from_knowledge_base

    semeval_dir = Path(semeval_dir)
    if not (semeval_dir / "training_set_task1.txt").exists():
        raise DatasetError(
            f"the technique model is fitted on SemEval-2021 Task 6's training split, not found in {semeval_dir} "
            "(pass its directory, e.g. ../shared/data/semeval2021-task6)"
        )
    key = technique_model_key(kb, semeval_dir, model_name)
    target = Path(cache_dir) / f"technique-model-{key}" if cache_dir is not None else None
    if target is not None and (target / "technique-model.json").exists():
        try:
            return TechniqueModel.load(target)
        except (OSError, ValueError, KeyError):
            pass  # damaged or from another version: fit again
    model = fit_from_knowledge_base(kb, semeval_dir, lambda texts: embeddings.encode(texts, normalised=True))
    if target is not None:
        try:
            model.save(target)
        except OSError:
            pass  # no room: the model still works, only unsaved
    return model


def technique_model_or_none(kb: KnowledgeBase, embeddings, semeval_dir: Path, cache_dir: Path | None, model_name: str):
    """The technique model, or None where there is nothing to fit it on (no SemEval data here, or a knowledge
    base without technique annotations: a team's own taxonomy); techniques then come from the cards' cues."""
    from .techniques import project_training_examples

    if not (Path(semeval_dir) / "training_set_task1.txt").is_file() or not project_training_examples(kb):
        return None
    return load_or_fit_model(kb, embeddings, semeval_dir, cache_dir, model_name)
