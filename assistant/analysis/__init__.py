"""From a post to evidence: narrative matching, tactic spans and cited retrieval."""

from .analyzer import Analyzer, detect_language
from .models import Analysis, Citation, ContextItem, NarrativeMatch, Span, TacticHit

__all__ = ["Analysis", "Analyzer", "Citation", "ContextItem", "NarrativeMatch", "Span", "TacticHit", "detect_language"]
