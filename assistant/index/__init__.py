"""The vector index: Chroma collections built aside and swapped in."""

from .builder import BuildReport, IndexStore, Manifest, corpus_items, document_items
from .protocol import Store
from .store import IndexWriteError, StoreUnavailable, describe, make_client

__all__ = ["BuildReport", "IndexStore", "IndexWriteError", "Manifest", "Store", "StoreUnavailable", "corpus_items", "describe", "document_items", "make_client"]
