"""Stance cues: words that show a text reports on, attributes or refutes a claim rather than making it.

"State media claim ...", "falsely", "fact check", "no evidence", 网传, 不实: a post that carries a
narrative rarely distances itself from the claim like this; a news report, a researcher's thread or a
debunk usually does. The cues are language-level, not campaign-level, so they live in code; the matcher
learns how much each kind weighs from labelled examples (benign reports and debunks of the same claims).
"""

from __future__ import annotations

import re

import numpy as np

# Each kind is one pattern; Latin cues at word boundaries, over lower-cased text.
_CUES = {
    # Someone else's claim, at a distance: the writer reports it.
    "reports": [
        r"\b(?:claim(?:s|ed|ing)?|alleg(?:e|es|ed|ing|ation|ations)|accus(?:e|es|ed|ing)|blam(?:e|es|ed|ing))\b",
        r"\b(?:push(?:es|ed|ing)? the (?:claim|narrative|idea|line|story)|narratives?|talking points?|the line that)\b",
        r"\b(?:state media|state-run|state-backed|state-linked|propaganda outlets?|mouthpieces?|spamouflage|dragonbridge|influence operations?|troll (?:farm|network)s?|bot networks?|fake accounts|inauthentic)\b",
        r"\b(?:according to|researchers? (?:found|say|said)|analysts? (?:say|said)|report(?:ed|s)? that|said on|told reporters)\b",
        r"\b(?:conspiracy theor(?:y|ies|ist|ists)|disinformation campaign|propaganda campaign)\b",
        r"(?:声称|聲稱|宣称|宣稱|指控|官媒|党媒|黨媒|大外宣|据报道|據報道|据称|據稱|网传|網傳|研究人员|研究人員|报告指出|報告指出|水军|水軍|假账号|假帳號|影响力行动|影響力行動)",
    ],
    # The writer rejects the claim.
    "refutes": [
        r"\b(?:fact[- ]?check(?:s|ed|ing)?|debunk(?:s|ed|ing)?|false(?:ly)?|baseless|unfounded|misleading|no evidence|without (?:any |a shred of |a single piece of |a scrap of )?evidence|without a shred|not true|untrue|myth|there is no proof|fabricated by beijing)\b",
        r"\b(?:the evidence (?:says|shows) otherwise|in fact|in reality|actually (?:were|was|are)|contrary to)\b",
        r"(?:不实|不實|谣言止于|謠言止於|事实查核|事實查核|查证|查證|毫无根据|毫無根據|没有证据|沒有證據|并非事实|並非事實|实际上是|實際上是|事实上|事實上|误导|誤導)",
    ],
}
# Who the claim is attributed to, when it is the narrative's own side: a text that attributes a claim to state
# media or officials and rejects it is a report or a debunk. Attributions to the other side ("the allegations",
# "Western accusations") are how narrative posts reject their critics, so they do not count here.
_CUES["attributes"] = [
    r"\b(?:state media|state-run media|state-backed media|party media|chinese (?:state media|officials?|government|diplomats?|embassy|authorities)|beijing|the ccp|the chinese communist party|china's (?:government|foreign ministry|state media|officials|embassy)|pro-china accounts|pro-beijing accounts|pro-kremlin|propaganda outlets?|spamouflage|dragonbridge|troll (?:farm|network)s?|bot networks?|conspiracy theor(?:y|ies|ists?))\b(?:\W+\w+){0,4}?\W+(?:claim(?:s|ed|ing)?|blam(?:e|es|ed|ing)|accus(?:e|es|ed|ing)|insist(?:s|ed)?|push(?:es|ed|ing)?|sa(?:y|ys|id)|spread(?:s|ing)?|repeat(?:s|ed|ing)?|call(?:s|ed)?)\b",
    r"(?:官媒|党媒|黨媒|大外宣|中方|北京|外交部|中国政府|中國政府|水军|水軍|假账号|假帳號)(?:\S{0,8})(?:声称|聲稱|宣称|宣稱|称|稱|指责|指責|甩锅|甩鍋|炒作|散布|散佈)",
]
_PATTERNS = {kind: re.compile("|".join(f"(?:{p})" for p in patterns)) for kind, patterns in _CUES.items()}
KINDS = ("reports", "refutes", "attributes")


_OPEN_QUOTES = "\"'“‘「『«"
_CLOSE_QUOTES = "\"'”’」』»"
_SO_CALLED = re.compile(r"(?:so[- ]called|alleged|所谓|所謂|号称|號稱)\s*$", re.IGNORECASE)


def quoted(text: str, spans: list[tuple[int, int]]) -> bool:
    """Whether a narrative's own phrase (a marker span) stands in quotation marks: the writer quotes the narrative's
    vocabulary to distance themselves from it ("vocational training centres" in quotes). Scare quotes after
    "so-called" or 所谓 are the opposite move (the narrative mocking its critics' words) and do not count."""
    for start, end in spans:
        before = text[max(0, start - 1) : start]
        after = text[end : end + 1]
        if before and after and before in _OPEN_QUOTES and after in _CLOSE_QUOTES:
            if not _SO_CALLED.search(text[max(0, start - 12) : start - 1]):
                return True
    return False


# Identifiers of three or more hyphen-joined parts ("covid-origin-blame-us", URL slugs) are names, not prose: the
# "blame" in a narrative's id is nobody blaming anyone.
_SLUG = re.compile(r"\b[\w]+(?:-[\w]+){2,}\b")


def stance_cues(text: str) -> np.ndarray:
    """How many cues of each kind (reports, refutes, attributes to the narrative's side) the text has, capped at 3."""
    lowered = _SLUG.sub(" ", text.lower())
    return np.array([min(3, len(_PATTERNS[kind].findall(lowered))) for kind in KINDS], dtype=np.float32)


def stance_matrix(texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, len(KINDS)), dtype=np.float32)
    return np.stack([stance_cues(text) for text in texts])
