"""The knowledge base: models, loading from files, and validation."""

from .loader import KnowledgeBase, Problem, load_knowledge_base
from .models import Example, Fact, NarrativeCard, SourceNote, SourceRecord, TacticCard, TacticSpan
from .validation import validate

__all__ = [
    "Example",
    "Fact",
    "KnowledgeBase",
    "NarrativeCard",
    "Problem",
    "SourceNote",
    "SourceRecord",
    "TacticCard",
    "TacticSpan",
    "load_knowledge_base",
    "validate",
]
