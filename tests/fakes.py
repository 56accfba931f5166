"""Fakes for the three seams, for the fast unit tier: `Assistant(settings, embedder=..., store=..., writer=...)`.

- `HashEmbedder`: deterministic unit vectors from hashed character n-grams (texts sharing words land close);
- `InMemoryStore`: the index store's interface (manifest, build, all_items, search) over numpy arrays;
- `ScriptedWriter`: an LLM writer that streams replies queued with `enqueue`, or fails on cue
  (in the spirit of llm's `MockModel.enqueue` and httpx's `MockTransport`).

They replace the real parts only where a test is about something else; integration tests keep the real
encoder, Chroma and llama.cpp.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import deque
from collections.abc import Iterator

import numpy as np
from langchain_core.documents import Document

from assistant.errors import LLMUnavailable
from assistant.index.builder import KINDS, BuildReport, Manifest, digest


class HashEmbedder:
    """Character 3-grams of each word, hashed into `dimension` buckets, summed, then unit length."""

    name = "hash-fake"

    def __init__(self, dimension: int = 64):
        self.dimension = dimension

    def encode(self, texts: list[str], normalised: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.casefold()):
                padded = f" {word} "
                for i in range(max(1, len(padded) - 2)):
                    bucket = int.from_bytes(hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest(), "little")
                    out[row, bucket % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms == 0, 1, norms)
        out[norms[:, 0] == 0, 0] = 1.0  # blank text: one fixed direction, never a zero vector
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


class InMemoryStore:
    """One generation at a time, kept in memory; the same answers as IndexStore for the same items."""

    def __init__(self, embedder, model_name: str | None = None):
        self.embedder = embedder
        self.model_name = model_name or embedder.name
        self._manifest: Manifest | None = None
        self._items: dict[str, dict] = {}
        self.builds = 0

    def manifest(self) -> Manifest | None:
        return self._manifest

    def build(self, items: dict, *, force: bool = False, progress=None, carry_ingested: bool = True) -> BuildReport:
        started = time.perf_counter()
        items = {kind: list({item.id: item for item in items.get(kind, [])}.values()) for kind in KINDS}
        digests = {kind: digest(items[kind]) for kind in KINDS}
        current = self._manifest
        if not force and current and current.model == self.model_name and current.digests == digests:
            return BuildReport(current.generation, current.counts, 0, 0, False, time.perf_counter() - started)
        generation = f"{time.time_ns():x}"
        self._items = {}
        for kind in KINDS:
            batch = items[kind]
            vectors = self.embedder.encode([item.text for item in batch]) if batch else np.zeros((0, self.embedder.dimension), np.float32)
            self._items[kind] = {
                "ids": [item.id for item in batch],
                "documents": [item.text for item in batch],
                "metadatas": [dict(item.metadata) for item in batch],
                "embeddings": vectors,
            }
        counts = {kind: len(items[kind]) for kind in KINDS}
        self._manifest = Manifest(generation, self.model_name, digests, counts, time.time())
        self.builds += 1
        total = sum(counts.values())
        return BuildReport(generation, counts, total, 0, True, time.perf_counter() - started)

    def _generation(self, kind: str, generation: str) -> dict:
        if self._manifest is None or generation != self._manifest.generation:
            raise KeyError(f"no {kind} collection for generation {generation}")
        return self._items[kind]

    def all_items(self, kind: str, generation: str, with_vectors: bool = True) -> dict:
        found = dict(self._generation(kind, generation))
        if not with_vectors:
            found.pop("embeddings")
        return found

    def search(self, kind: str, generation: str, vectors, k: int) -> list[list[tuple[Document, float]]]:
        stored = self._generation(kind, generation)
        if k <= 0 or not len(vectors) or not stored["ids"]:
            return [[] for _ in vectors]
        similarity = np.asarray(vectors, dtype=np.float32) @ stored["embeddings"].T
        found = []
        for row in similarity:
            order = np.argsort(-row, kind="stable")[:k]
            found.append([
                (Document(page_content=stored["documents"][i], metadata=stored["metadatas"][i], id=stored["ids"][i]), float(row[i]))
                for i in order
            ])
        return found


class ScriptedWriter:
    """Streams each queued reply in word-sized pieces; `fail(reason)` queues an endpoint failure instead."""

    model_name = "scripted-fake"

    def __init__(self, *replies: str):
        self.queue: deque = deque(replies)
        self.prompts: list[list] = []  # every messages list it was given, in order

    def enqueue(self, *replies: str) -> "ScriptedWriter":
        self.queue.extend(replies)
        return self

    def fail(self, reason: str = "the endpoint is down") -> "ScriptedWriter":
        self.queue.append(LLMUnavailable(reason))
        return self

    def stream(self, messages: list) -> Iterator[str]:
        self.prompts.append(messages)
        if not self.queue:
            raise LLMUnavailable("no scripted reply left")
        reply = self.queue.popleft()
        if isinstance(reply, Exception):
            raise reply
        yield from re.findall(r"\S+\s*", reply)
