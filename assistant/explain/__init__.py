"""Turning an analysis into an answer: the offline composer and the citation check."""

from .citations import CitationCheck, check_citations, markers
from .composer import compose, compose_followup, format_citation

__all__ = ["CitationCheck", "check_citations", "compose", "compose_followup", "format_citation", "markers"]
