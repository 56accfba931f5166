"""Faithfulness of an LLM answer: is each cited sentence supported by a passage it cites?

An LLM is configured whenever answers come from one, so the same endpoint judges
each (sentence, cited passage) pair with a yes or a no. A pair the judge leaves
undecided (the endpoint fails, or the reply holds neither word) is measured by
embedding similarity instead, so one bad reply does not sink the figure; the
result says how many sentences each judge decided.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import HumanMessage, SystemMessage

from ..explain.citations import MARKER, markers
from ..explain.llm import LLMUnavailable, LLMWriter, sentences

JUDGE = """You check whether a statement is supported by a source passage.
Answer "yes" if the passage supports the statement, "no" if it does not. Reply with one word: yes or no."""

_VERDICT = re.compile(r"\b(yes|no)\b|(是|否|不)", re.IGNORECASE)


@dataclass(frozen=True)
class Faithfulness:
    score: float  # share of cited sentences supported by a passage they cite
    sentences: int
    by_llm: int  # sentences the LLM judge decided
    by_embedding: int  # sentences the embedding measure decided


def build_judge_prompt(statement: str, passage: str) -> list:
    statement = MARKER.sub("", statement).strip()
    return [SystemMessage(JUDGE), HumanMessage(f"PASSAGE:\n{passage}\n\nSTATEMENT:\n{statement}\n\nSupported (yes or no)?")]


def parse_verdict(reply: str) -> bool | None:
    """True for yes, False for no, None when the reply says neither first."""
    match = _VERDICT.search(reply)
    if match is None:
        return None
    if match.group(1):
        return match.group(1).lower() == "yes"
    return match.group(2) == "是"


def cited_sentences(answer) -> list[tuple[str, list[str]]]:
    """(sentence, texts of the passages it cites) for each sentence of the answer's body with a valid citation."""
    body = answer.answer.split("\n### ")[0]  # the sections after the LLM's prose are the composer's
    passages = {c.id: c.text for c in answer.citations}
    out = []
    for sentence in sentences(body):
        cited = [passages[n] for n in markers(sentence) if n in passages]
        if cited:
            out.append((sentence, cited))
    return out


def faithfulness(answer, embeddings, writer: LLMWriter | None = None, min_similarity: float = 0.3) -> Faithfulness | None:
    pairs = cited_sentences(answer)
    if not pairs:
        return None
    supported = by_llm = 0
    undecided: list[tuple[str, list[str]]] = []
    for sentence, passages in pairs:
        verdicts = [_judge(writer, sentence, passage) for passage in passages] if writer is not None else [None]
        if any(verdicts):
            supported += 1
            by_llm += 1
        elif verdicts and all(v is False for v in verdicts):
            by_llm += 1
        else:
            undecided.append((sentence, passages))
    if undecided:
        vectors = embeddings.encode([s for s, _ in undecided] + [p for _, ps in undecided for p in ps])
        offset = len(undecided)
        for index, (_, passages) in enumerate(undecided):
            best = max(float(vectors[index] @ vectors[offset + k]) for k in range(len(passages)))
            supported += best >= min_similarity
            offset += len(passages)
    return Faithfulness(supported / len(pairs), len(pairs), by_llm, len(undecided))


def _judge(writer: LLMWriter, sentence: str, passage: str) -> bool | None:
    try:
        return parse_verdict("".join(writer.stream(build_judge_prompt(sentence, passage))))
    except LLMUnavailable:
        return None
