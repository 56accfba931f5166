"""The one object every surface uses: `Assistant().ask(text)`.

The CLI, the app and the eval runner are thin layers over this class; it
owns the knowledge base, the index and the analyzer, all built from one
`Settings` object.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import threading
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Literal

import sklearn
from pydantic import BaseModel, ConfigDict

from . import offline
from .analysis.analyzer import Analyzer, example_table
from .analysis.matcher import MarkerIndex, NarrativeMatcher
from .analysis.models import Analysis, Citation, ContextItem, Evidence, Span
from .analysis.retrieval import PassageRetriever
from .corpus import KnowledgeBase, load_knowledge_base, validate
from .embeddings import get_embeddings
from .explain import compose
from .index import BuildReport, IndexStore, StoreUnavailable, corpus_items, document_items, make_client
from .ingest import IngestError, load_document
from .settings import Settings
from .text import clean


class NarrativeLensError(Exception):
    """An error with a message meant for the user (no traceback needed)."""


class EmptyPost(NarrativeLensError):
    pass


class AnswerNarrative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    score: float
    confidence: str
    evidence: Evidence


class AnswerTactic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    kind: str
    spans: list[Span]


class Answer(BaseModel):
    """What `ask` returns; `narrative-lens ask --json` prints exactly this."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["offline", "llm"]
    model: str | None = None
    lang: str
    verdict: Literal["match", "no known narrative"]
    narratives: list[AnswerNarrative]
    tactics: list[AnswerTactic]
    citations: list[Citation]
    context: list[ContextItem]
    answer: str
    notices: list[str]
    threshold: float

    @classmethod
    def offline(cls, analysis: Analysis, markdown: str) -> "Answer":
        return cls(
            mode="offline",
            lang=analysis.lang,
            verdict="match" if analysis.narratives else "no known narrative",
            narratives=[
                AnswerNarrative(id=m.id, title=m.title, score=m.score, confidence=m.confidence, evidence=m.evidence)
                for m in analysis.narratives
            ],
            tactics=[AnswerTactic(id=t.id, name=t.name, kind=t.kind, spans=t.spans) for t in analysis.tactics],
            citations=analysis.citations,
            context=analysis.context,
            answer=markdown,
            notices=analysis.notices,
            threshold=analysis.threshold,
        )


def prepare_post(text: str, max_chars: int) -> tuple[str, list[str]]:
    """Checks and trims a pasted post; returns the text to analyse and any notices."""
    if text is None or not clean(text).strip():
        raise EmptyPost("the post is empty: paste the text of a post to analyse")
    notices = []
    if len(text) > max_chars:
        notices.append(
            f"The post is {len(text):,} characters long; only the first {max_chars:,} characters were analysed."
        )
        text = text[:max_chars]
    return text, notices


class Assistant:
    def __init__(self, settings: Settings | None = None, *, kb: KnowledgeBase | None = None, **overrides):
        offline.prepare()
        self.settings = settings or Settings(**overrides)
        self._lock = threading.RLock()
        if kb is not None:
            self.kb = kb  # fills the cached property: an in-memory knowledge base (cross-validation, tests)

    # -- components ---------------------------------------------------------
    @cached_property
    def kb(self) -> KnowledgeBase:
        return load_knowledge_base(self.settings.corpus_dir, (self.settings.user_examples_path,))

    @cached_property
    def embeddings(self):
        return get_embeddings(self.settings.embeddings)

    @property
    def model_name(self) -> str:
        s = self.settings.embeddings
        return "use-m3" if s.provider == "use-m3" else f"openai:{s.model}"

    @cached_property
    def store(self) -> IndexStore:
        return IndexStore(make_client(self.settings), self.embeddings, self.model_name, self.settings.index.collection_prefix)

    def problems(self):
        return validate(self.kb)

    # -- index --------------------------------------------------------------
    @contextmanager
    def _build_lock(self):
        """One build at a time per data directory (processes and threads)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.settings.data_dir / ".build.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def build_index(self, *, force: bool = False, documents=(), progress=None) -> BuildReport:
        items = corpus_items(self.kb)
        items["passages"] = items["passages"] + document_items(documents)
        with self._build_lock():
            report = self.store.build(items, force=force, progress=progress)
        self.__dict__.pop("analyzer", None)
        return report

    def ensure_index(self) -> None:
        manifest = self.store.manifest()
        if manifest is None or manifest.model != self.model_name:
            self.build_index()
            return
        from .index.builder import digest

        items = corpus_items(self.kb)
        if any(manifest.digests.get(kind) != digest(items[kind]) for kind in ("cards", "examples")):
            self.build_index()

    def ingest(self, paths: list[Path], *, source_id: str | None = None, title: str | None = None, progress=None) -> BuildReport:
        """Adds report files to the index. All files are read first: one bad file changes nothing."""
        documents = []
        for path in paths:
            record = self.kb.sources.get(source_id) if source_id else None
            documents += load_document(
                Path(path),
                self.settings.index,
                source_id=source_id,
                title=title or (record.title if record else None),
                publisher=record.publisher if record else "",
                date=record.date if record else "",
                url=record.url if record else "",
            )
        return self.build_index(documents=documents, progress=progress)

    # -- analysis -----------------------------------------------------------
    @cached_property
    def analyzer(self) -> Analyzer:
        with self._lock:
            self.ensure_index()
            manifest = self.store.manifest()
            stored = self.store.all_items("examples", manifest.generation)
            table = example_table(stored)
            cards = list(self.kb.narratives.values())
            markers = MarkerIndex(cards)
            matcher = self._fitted_matcher(manifest.generation, table, markers, [c.id for c in cards])
            retriever = PassageRetriever(self.store.vectorstore("passages", manifest.generation))
            return Analyzer(self.kb, self.embeddings, matcher, markers, table, retriever, self.settings.matching)

    def _fitted_matcher(self, generation, table, markers, ids) -> NarrativeMatcher:
        """Fit once per index generation; later starts load the fitted model from disk."""
        key_source = "|".join(
            [generation, ",".join(ids), str(self.settings.matching.target_benign_fpr), sklearn.__version__, self.model_name]
            + [m.pattern if m is not None else "" for m in markers.patterns]
        )
        key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
        cache = self.settings.data_dir / "cache" / f"matcher-{key}.pkl"
        if cache.is_file():
            try:
                with open(cache, "rb") as handle:
                    return pickle.load(handle)
            except Exception:
                pass  # a damaged cache is refitted below
        features = NarrativeMatcher.features(table.vectors, markers.matrix([clean(t) for t in table.texts]))
        matcher = NarrativeMatcher(ids).fit(features, table.narratives, self.settings.matching.target_benign_fpr)
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.part")
        with open(partial, "wb") as handle:
            pickle.dump(matcher, handle)
        os.replace(partial, cache)
        return matcher

    def analyze(self, text: str) -> Analysis:
        text, notices = prepare_post(text, self.settings.app.max_post_chars)
        return self.analyzer.analyze(text, notices)

    def ask(self, text: str) -> Answer:
        analysis = self.analyze(text)
        return Answer.offline(analysis, compose(analysis, self.kb))


__all__ = ["Answer", "Assistant", "EmptyPost", "IngestError", "NarrativeLensError", "StoreUnavailable"]
