"""Narrative Lens: explains which known influence-operation narratives a post matches, with evidence."""

from .analysis.models import Analysis
from .api import Answer, Assistant, EmptyPost, NarrativeLensError
from .settings import Settings

__all__ = ["Analysis", "Answer", "Assistant", "EmptyPost", "NarrativeLensError", "Settings"]
__version__ = "0.1.0"
