"""The errors a user can act on: one root, a few kinds, each message saying what is wrong and what to do.

Every surface (the CLI, the app, the eval runner) catches `NarrativeLensError` and shows its message as one
line, never a traceback; any other exception is a bug and propagates. This module imports nothing from the
rest of the package, so every layer can raise these.
"""

from __future__ import annotations


class NarrativeLensError(Exception):
    """An error the user can act on; the message says what went wrong and what to do about it."""

    exit_code = 2  # the CLI's exit status: 2 when an input or option was refused, 1 when an operation failed


class InvalidInput(NarrativeLensError):
    """A post, id or option was refused (unknown id, out-of-range value): correct it and run again."""


class EmptyPost(InvalidInput):
    """The post has no visible text: paste the text of the post to analyse."""


class DatasetError(InvalidInput):
    """An eval dataset that cannot be evaluated; the message lists every problem by line: fix the file."""


class CorpusError(NarrativeLensError):
    """The knowledge base cannot back the assistant (no narrative cards, too few labelled examples): point
    --corpus-dir (NARRATIVE_LENS_CORPUS_DIR) at the knowledge base, or add examples; `narrative-lens validate`
    lists its problems."""

    exit_code = 1


class StoreUnavailable(NarrativeLensError):
    """The Chroma server cannot be reached, or the local store cannot be opened: start the server or fix
    NARRATIVE_LENS_CHROMA_URL (or the data directory's permissions), then retry."""

    exit_code = 1


class IndexWriteError(NarrativeLensError):
    """Writing a new index generation failed (a full disk, for instance) and the previous one is still in use:
    free space, then run `narrative-lens index`."""

    exit_code = 1


class IngestError(NarrativeLensError):
    """A file that cannot be ingested; the message names the file and the reason: fix or convert the file
    (the index was not changed)."""

    exit_code = 1


class LLMUnavailable(NarrativeLensError):
    """The LLM endpoint failed (down, slow, rate-limited, garbage); the message says why, without secrets.
    Answers fall back to the offline composer: check OPENAI_BASE_URL / OPENAI_API_KEY, or retry later."""

    exit_code = 1


__all__ = [
    "CorpusError",
    "DatasetError",
    "EmptyPost",
    "IndexWriteError",
    "IngestError",
    "InvalidInput",
    "LLMUnavailable",
    "NarrativeLensError",
    "StoreUnavailable",
]
