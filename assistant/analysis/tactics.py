"""Finds persuasion techniques and campaign tactics in a post with each card's cue patterns."""

from __future__ import annotations

import re

from ..corpus import TacticCard
from ..text import HAN_TEXT, merge_spans

MAX_SPANS_PER_TACTIC = 5
CJK = HAN_TEXT  # a cue or a post written in Chinese
LATIN = re.compile(r"[A-Za-z]")
ESCAPE = re.compile(r"\\.|\(\?[^)]*\)|\[\^?\\?[a-z]")
SELF_CONTAINED = re.compile(r"\\\d|\(\?P=|\(\?[aiLmsux]+\)")


class TacticDetector:
    """Cue patterns are matched case-insensitively. Cues written all in lower case (nearly all of them) are run
    without the IGNORECASE flag over a lower-cased copy of the post, which finds the same spans in about 70% of
    the time; `fold_case=False` runs every cue with the flag instead (the reference the tests compare against)."""

    def __init__(self, cards: list[TacticCard], fold_case: bool = True):
        self.cards = {card.id: card for card in cards}
        self.fold_case = fold_case
        # Per script, so a monolingual post is scanned only with the cues that can match it;
        # a mixed post with both sets (a cue in both finds the same spans twice, and they merge).
        # Each pattern with whether it runs over the lower-cased post.
        self.latin: dict[str, list[tuple[re.Pattern, bool]]] = {}
        self.cjk: dict[str, list[tuple[re.Pattern, bool]]] = {}
        for card in cards:
            cues = card.cues.all()
            # A cue belongs to the script of its literal letters; one with none (say '#\w+') to both.
            latin = [c for c in cues if not CJK.search(c)]
            cjk = [c for c in cues if CJK.search(c) or not LATIN.search(ESCAPE.sub("", c))]
            for chosen, target in ((latin, self.latin), (cjk, self.cjk)):
                compiled = self._compile(chosen)
                if compiled:
                    target[card.id] = compiled
        self.patterns = {
            tactic_id: self.latin.get(tactic_id, []) + self.cjk.get(tactic_id, []) for tactic_id in dict.fromkeys([*self.latin, *self.cjk])
        }

    def _compile(self, cues: list[str]) -> list[tuple[re.Pattern, bool]]:
        # One alternation per tactic scans the post once instead of once per cue; cues with back-references or
        # inline flags keep their own pattern, since joining would change them. A cue with no capital letter means
        # the same over lower-cased text without the flag; one with a capital may hold a case-sensitive escape
        # (\W, \S, \B) and keeps the flag.
        alone = [cue for cue in cues if SELF_CONTAINED.search(cue)]
        joined = [cue for cue in cues if cue not in alone]
        folded = [cue for cue in joined if cue == cue.lower()]
        groups = [(folded, True), ([cue for cue in joined if cue not in folded], False)]
        groups += [([cue], cue == cue.lower()) for cue in alone]
        return [compiled for group, lower in groups if group for compiled in _alternation(group, lower and self.fold_case)]

    def find(self, text: str) -> dict[str, list[tuple[int, int]]]:
        """Tactic id -> merged [start, end) spans in `text` (normalised text)."""
        has_cjk = bool(CJK.search(text))
        has_latin = bool(LATIN.search(text))
        if has_cjk and has_latin:
            selected = self.patterns
        else:
            selected = self.cjk if has_cjk else self.latin
        lowered = text.lower()
        if len(lowered) != len(text):  # a letter that lower-cases to two (İ): spans would shift, keep the flag
            lowered = None
        found: dict[str, list[tuple[int, int]]] = {}
        for tactic_id, patterns in selected.items():
            spans = []
            for pattern, lower in patterns:
                if lower and lowered is None:
                    pattern, target = re.compile(pattern.pattern, re.IGNORECASE), text
                else:
                    target = lowered if lower else text
                for match in pattern.finditer(target):
                    if match.end() > match.start():
                        spans.append(match.span())
            if spans:
                found[tactic_id] = merge_spans(spans)[:MAX_SPANS_PER_TACTIC]
        return found


def _alternation(cues: list[str], lower: bool) -> list[tuple[re.Pattern, bool]]:
    """One pattern for `cues` (a cue on its own as written: its inline flags must stay at the start)."""
    flags = 0 if lower else re.IGNORECASE
    try:
        return [(re.compile(cues[0] if len(cues) == 1 else "|".join(f"(?:{cue})" for cue in cues), flags), lower)]
    except re.error:
        valid = []
        for cue in cues:
            try:
                re.compile(cue, flags)
                valid.append(cue)
            except re.error:
                continue  # validate reports it; a bad cue must not stop analysis
        return _alternation(valid, lower) if valid else []
