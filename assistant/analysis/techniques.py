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

This module fits the model from its sources; the pieces live beside it: technique_data (the training data),
technique_spans (tokens, features, clauses and spans), technique_estimators (lexicon, ridge, stacker, cuts) and
technique_model (TechniqueModel itself). Their public names are importable from here too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..text import normalise
from .technique_data import (
    POST,
    PROJECT_DATA,
    SEM,
    SEMEVAL_DATA,
    Annotated,
    annotated_posts,
    load_semeval,
    project_training_examples,
)
from .technique_estimators import micro_f1
from .technique_model import FORMAT, VERSION, TechniqueHit, TechniqueModel
from .technique_spans import (
    CJK,
    CLAUSE_MARK,
    SENTENCE_END,
    TOKEN,
    WORDISH,
    clauses,
    embedding_text,
    token_features,
    tokens,
)

__all__ = [
    "CJK", "CLAUSE_MARK", "FORMAT", "POST", "PROJECT_DATA", "SEM", "SEMEVAL_DATA", "SENTENCE_END", "TOKEN", "VERSION",
    "WORDISH", "Annotated", "TechniqueHit", "TechniqueModel", "annotated_posts", "clauses", "cue_finder",
    "embedding_text", "fit_from_knowledge_base", "fit_from_sources", "load_semeval", "micro_f1",
    "project_training_examples", "token_features", "tokens",
]


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
