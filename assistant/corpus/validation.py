"""Cross-record checks: every reference resolves, nothing is duplicated."""

from __future__ import annotations

from collections import Counter

from .loader import KnowledgeBase, Problem
from .models import LANGS, PLATFORMS


def _origin(kb: KnowledgeBase, kind: str, record_id: str) -> tuple[str, int]:
    return kb.origins.get((kind, record_id), (str(kb.root / kind), 1))


def validate(kb: KnowledgeBase) -> list[Problem]:
    """All problems: those found while loading plus broken references and duplicates."""
    problems = list(kb.problems)

    def report(kind: str, record_id: str, message: str, loc: tuple = ()) -> None:
        file, line = _origin(kb, kind, record_id)
        lines = kb.field_lines.get((kind, record_id), {})
        while loc and loc not in lines:
            loc = loc[:-1]
        problems.append(Problem(file, lines.get(loc, line) if loc else line, message))

    languages = {*LANGS, *kb.campaign.languages}
    for card in kb.narratives.values():
        if kb.campaign.id and card.campaign != kb.campaign.id:
            report("narratives", card.id, f"campaign '{card.campaign}' is not the campaign.yaml id '{kb.campaign.id}'", ("campaign",))
        for lang in card.markers.other():
            if lang not in languages:
                report("narratives", card.id, f"markers in '{lang}', a language campaign.yaml does not list", ("markers", lang))
        for index, tactic in enumerate(card.tactics):
            if tactic not in kb.tactics:
                report("narratives", card.id, f"unknown tactic id '{tactic}' in tactics", ("tactics", index))
        for index, source in enumerate(card.sources):
            if source not in kb.sources:
                report("narratives", card.id, f"unknown source id '{source}' in sources", ("sources", index))
        for index, fact in enumerate(card.facts):
            if fact.source not in kb.sources:
                report(
                    "narratives",
                    card.id,
                    f"facts[{index}] cites unknown source id '{fact.source}'",
                    ("facts", index, "source"),
                )
        for index, frame in enumerate(card.frames):
            if len(frame) < 1 or any(not group for group in frame):
                report("narratives", card.id, f"frames[{index}] needs at least one group, and no group may be empty", ("frames", index))
            for group in frame:
                for term in group:
                    if term.startswith("@") and term[1:] not in kb.concepts:
                        report("narratives", card.id, f"frames[{index}] refers to unknown concept '{term}' (corpus/concepts.yaml)", ("frames", index))
                    elif not term.strip("@* "):
                        report("narratives", card.id, f"frames[{index}] has an empty term", ("frames", index))
    for card in kb.tactics.values():
        for index, source in enumerate(card.sources):
            if source not in kb.sources:
                report("tactics", card.id, f"unknown source id '{source}' in sources", ("sources", index))

    seen_ids: Counter[str] = Counter()
    text_split: dict[str, tuple[str, str]] = {}
    for example, (file, line) in zip(kb.examples, kb.example_origins):

        def at_line(message: str) -> None:
            problems.append(Problem(file, line, message))

        seen_ids[example.id] += 1
        if seen_ids[example.id] > 1:
            at_line(f"duplicate example id '{example.id}'")
        for narrative in example.narratives:
            if narrative not in kb.narratives:
                at_line(f"example '{example.id}': unknown narrative id '{narrative}'")
        for span in example.tactics:
            if span.id not in kb.tactics:
                at_line(f"example '{example.id}': unknown tactic id '{span.id}'")
        if example.lang not in languages:
            at_line(f"example '{example.id}': language '{example.lang}' is not one of {', '.join(sorted(languages))} (campaign.yaml lists the others)")
        if example.platform not in PLATFORMS:
            at_line(f"example '{example.id}': unknown platform '{example.platform}' (one of {', '.join(PLATFORMS)})")
        key = " ".join(example.text.split()).casefold()
        if key in text_split:
            other_id, other_split = text_split[key]
            at_line(f"example '{example.id}' repeats the text of '{other_id}' ({other_split})")
        else:
            text_split[key] = (example.id, example.split)
    return sorted(set(problems), key=lambda problem: (problem.file, problem.line, problem.message))
