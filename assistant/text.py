"""Unicode normalisation that remembers where each character came from.

Matching runs on a normalised copy of the post (NFKC, zero-width characters
removed, look-alike letters folded to Latin) so that "Xinjiang" typed with
Cyrillic letters still matches. Spans shown to the user must point into the
post as it was pasted, so every normalised character keeps the index of the
original character it came from.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Invisible characters used to break up keywords; removed before matching.
ZERO_WIDTH = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e"
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u2800"
    "\u206c\u206d\u206e\u206f\u3164\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05"
    "\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f\ufeff\uffa0"
)

# Cyrillic and Greek letters that look like Latin ones (the common confusables).
HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic lower case
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h",
        "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s",
        "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h",
        "ӏ": "l", "ɡ": "g",
        # Cyrillic upper case
        "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H",
        "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S",
        "І": "I", "Ї": "I", "Ј": "J", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W", "Һ": "H",
        "Ӏ": "I",
        # Greek
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z",
        "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
        "Τ": "T", "Υ": "Y", "Χ": "X",
        # Armenian and Latin-extended letters that pass for Latin ones
        "օ": "o", "ս": "u", "ց": "g", "ո": "n", "հ": "h", "ք": "p", "Տ": "S", "Օ": "O",
        "ɑ": "a", "ı": "i", "ȷ": "j", "ɩ": "i", "ʏ": "y", "ɴ": "n", "ʀ": "r", "ꜱ": "s", "ᴄ": "c", "ᴏ": "o",
        "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
    }
)

# Leetspeak digits and signs, folded only inside a word that has them between letters ("x1nj1ang", "f0rt"):
# "covid19", "5G", "2nd" and "G7" keep their digits.
# "@" and "$" are left alone: inside a word they are mostly addresses and prices.
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"})
_LEET_WORD = re.compile(r"(?<!\w)[A-Za-z0-9]*[A-Za-z][013457]+[A-Za-z][A-Za-z0-9]*")
# Letters typed one by one with a space between ("F o r t D e t r i c k", "新 疆 棉 花"): four or more.
# Chinese is written without spaces, so a space between two Chinese characters is dropped wherever it is.
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_] ){3,}[^\W\d_](?![^\W\d_])|(?<=[\u3400-\u4dbf\u4e00-\u9fff]) (?=[\u3400-\u4dbf\u4e00-\u9fff])")
_RLO_RUN = re.compile("\u202e([^\u202c\n]*)")  # right-to-left override up to its pop or the line end

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# The one definition of a Chinese character (CJK unified ideographs, extension A, compatibility ideographs), for
# every module that tells Chinese text from Latin; HAN_TEXT adds CJK punctuation and full-width forms, which
# also say that a text is written in Chinese.
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
HAN_TEXT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff01-\uff5e]")


@dataclass(frozen=True)
class NormalisedText:
    """A normalised string plus, for each of its characters, the original index."""

    original: str
    text: str
    origin: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the normalised text back onto the original."""
        if not self.origin or start >= end:
            return (0, 0)
        start = max(0, min(start, len(self.origin) - 1))
        end = max(start + 1, min(end, len(self.origin)))
        covered = self.origin[start:end]  # not increasing where a right-to-left run was read backwards
        return min(covered), max(covered) + 1


def normalise(text: str) -> NormalisedText:
    """NFKC, zero-width and control characters removed, homoglyphs folded.

    Characters are normalised one at a time so that each output character can
    be traced to its source; NFKC of a single character equals NFKC of the
    whole string for everything except combining sequences, which are rare in
    posts and still map to a nearby original index.
    """
    out: list[str] = []
    origin: list[int] = []
    fold = _folded_positions(text)
    order, dropped, leet = _reading_order(text)
    for index in order:
        char = text[index]
        if char in ZERO_WIDTH or _CONTROL.match(char) or index in dropped:
            continue
        folded = unicodedata.normalize("NFKC", char)
        if index in fold:
            folded = folded.translate(HOMOGLYPHS)
        if index in leet:
            folded = folded.translate(LEET)
        for piece in folded:
            if piece in ZERO_WIDTH:
                continue
            out.append(piece)
            origin.append(index)
    return NormalisedText(original=text, text="".join(out), origin=tuple(origin))


def _reading_order(text: str) -> tuple[list[int], set[int], set[int]]:
    """How evasions are undone: the order to read the characters in (a run under a right-to-left override is
    stored backwards so that it displays forwards: read it backwards), the spaces of letter-spaced words (dropped),
    and the leetspeak digits (folded). The three common ways to hide a phrase from a keyword filter."""
    order = list(range(len(text)))
    if "\u202e" in text:
        for match in _RLO_RUN.finditer(text):
            start, end = match.span(1)
            order[start:end] = order[start:end][::-1]
    dropped = {match.start() + offset for match in _SPACED.finditer(text)
               for offset, char in enumerate(match.group()) if char == " "} if " " in text else set()
    dropped = set(dropped)
    for match in _SYMBOL_RUN.finditer(text):  # a wall of emoji drowns the words for the encoder: three are kept
        dropped.update(range(match.start() + 3, match.end()))
    leet = {match.start() + offset for match in _LEET_WORD.finditer(text)
            for offset, char in enumerate(match.group()) if char in "013457"} if _HAS_LEET.search(text) else set()
    return order, dropped, leet


_PICTOGRAPH = "\u2190-\u2bff\U0001f000-\U0001faff"  # arrows, dingbats, emoji
_SYMBOL_RUN = re.compile(f"[{_PICTOGRAPH}](?:[{_PICTOGRAPH}\ufe0f\u200d\\s]*[{_PICTOGRAPH}]){{3,}}")
_HAS_LEET = re.compile(r"[A-Za-z][013457]")
_FOREIGN = re.compile(r"[\u0370-\u03ff\u0400-\u052f\u0530-\u058f]")  # Greek, Cyrillic and Armenian letters
_WORD = re.compile(r"[^\W_]+(?:[\u00ad\u200b-\u200d\u2060\ufeff][^\W_]+)*")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")


def _folded_positions(text: str) -> set[int]:
    """Where look-alike letters are folded to Latin: inside a word that mixes them with Latin letters ("Xіnjiang"),
    and, in a text written with no genuine Greek or Cyrillic letter, inside any word (a spoof made of look-alikes
    only). A Russian or Greek text keeps its own words: "Санкции" must not become "Caнkции"."""
    if not _FOREIGN.search(text):
        return set()
    genuine = any(_FOREIGN.match(c) and c not in _HOMOGLYPH_KEYS for c in text)
    positions: set[int] = set()
    for match in _WORD.finditer(text):
        word = match.group()
        if _FOREIGN.search(word) and (not genuine or _LATIN_LETTER.search(word)):
            positions.update(range(match.start(), match.end()))
    return positions


_HOMOGLYPH_KEYS = frozenset(chr(code) for code in HOMOGLYPHS)


# Anything but whitespace, control and zero-width characters: the same test as `clean`, without its cost.
_VISIBLE = re.compile("[^\\s\\x00-\\x1f\\x7f" + "".join(re.escape(c) for c in sorted(ZERO_WIDTH)) + "]")


_SURROGATE = re.compile("[\ud800-\udfff]")


def prepare_post(text: str | None, max_chars: int) -> tuple[str, list[str]]:
    """Checks and trims a pasted post; returns the text to analyse and any notices (EmptyPost when blank)."""
    from .errors import EmptyPost

    if text is None or not _VISIBLE.search(text):
        raise EmptyPost("the post is empty: paste the text of a post to analyse")
    notices = []
    if _SURROGATE.search(text):  # undecodable bytes (argv, a pipe) arrive as lone surrogates, which nothing can encode
        text = _SURROGATE.sub("\ufffd", text)
        notices.append("Part of the post was not valid text (undecodable bytes); each such byte is shown as \ufffd.")
    if len(text) > max_chars:
        notices.append(f"The post is {len(text):,} characters long; only the first {max_chars:,} characters were analysed.")
        text = text[:max_chars]
    return text, notices


def clean(text: str) -> str:
    """The normalised string alone, for corpus text and queries."""
    return normalise(text).text


# A full stop ends a sentence unless it sits inside a token ("3.5", "t.co/x") or closes an initial ("U.S.", "D.C.").
# A regex rather than pysbd: pysbd takes about 1 ms a post here (a fifth of the encoder's own time, against a
# budget of 3x the encoder for the whole analysis) where this takes 0.006 ms, and it segments English only.
_SEGMENT = re.compile(r"(?:[^.!?。！？；;\n]|\.(?=[^\s.!?])|(?<=\b[A-Z])\.)+[.!?。！？；;]*", re.UNICODE)


def segments(text: str, min_chars: int = 6) -> list[tuple[int, int]]:
    """Sentence-like segments of a text as [start, end) spans, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    for match in _SEGMENT.finditer(text):
        start, end = match.span()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end - start >= min_chars:
            spans.append((start, end))
    return spans


def merge_spans(spans) -> list[tuple[int, int]]:
    """[start, end) spans sorted, overlapping or touching ones joined."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def hashtag_form(phrase: str) -> str | None:
    """A Latin phrase of several words as a hashtag or handle writes it ("adrian zenz" -> "adrianzenz"), or None.

    Real posts carry their claims in tags ("#ForcedLabour", "#FortDetrick"): without this form a phrase the
    card names is missed whenever a post tags it. Only phrases of 8 letters or more, so that a joined short
    phrase does not turn up inside unrelated words.
    """
    words = phrase.lower().replace("-", " ").split()
    if len(words) < 2 or not all(word.isascii() and word.isalnum() for word in words):
        return None
    joined = "".join(words)
    return joined if len(joined) >= 8 else None


def with_hashtag_forms(phrases) -> set[str]:
    return set(phrases) | {form for phrase in phrases if (form := hashtag_form(phrase))}
