"""What the rest of the package needs of an index store: `IndexStore` (Chroma) is the real one, and
`tests/fakes.py`'s `InMemoryStore` the fake; `Assistant(settings, store=...)` takes either."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from langchain_core.documents import Document

from .builder import BuildReport, Item, Manifest


@runtime_checkable
class Store(Protocol):
    def manifest(self) -> Manifest | None:
        """The generation in use, or None before the first build."""
        ...

    def build(self, items: dict[str, list[Item]], *, force: bool = False,
              progress: Callable[[int], None] | None = None) -> BuildReport:
        """Write a generation holding `items` (kind -> items) and switch to it; nothing when they are unchanged."""
        ...

    def all_items(self, kind: str, generation: str, with_vectors: bool = True) -> dict:
        """Chroma's `get` layout: ids, documents, metadatas (and embeddings)."""
        ...

    def search(self, kind: str, generation: str, vectors: list[list[float]], k: int) -> list[list[tuple[Document, float]]]:
        """The k nearest items to each vector, with cosine similarity."""
        ...
