"""What the assistant answers, as typed models: `Answer` (what `narrative-lens ask --json` prints) and
`FollowUpAnswer`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..analysis.models import Analysis, Citation, ContextItem, Evidence, Span


class AnswerNarrative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    score: float
    confidence: str
    evidence: Evidence


class AnswerTactic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    kind: str
    spans: list[Span]


class AnswerCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    score: float


class Answer(BaseModel):
    """What `ask` returns; `narrative-lens ask --json` prints exactly this."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["offline", "llm"]
    model: str | None = None
    lang: str
    verdict: Literal["match", "no known narrative"]
    narratives: list[AnswerNarrative]
    tactics: list[AnswerTactic]
    citations: list[Citation]
    context: list[ContextItem]
    answer: str
    notices: list[str]
    threshold: float
    abstention: str | None = None
    candidates: list[AnswerCandidate] = []
    llm_choice: str | None = None

    @classmethod
    def offline(cls, analysis: Analysis, markdown: str) -> "Answer":
        return cls(
            mode="offline",
            lang=analysis.lang,
            verdict="match" if analysis.narratives else "no known narrative",
            narratives=[
                AnswerNarrative(id=m.id, title=m.title, score=m.score, confidence=m.confidence, evidence=m.evidence)
                for m in analysis.narratives
            ],
            tactics=[AnswerTactic(id=t.id, name=t.name, kind=t.kind, spans=t.spans) for t in analysis.tactics],
            citations=analysis.citations,
            context=analysis.context,
            answer=markdown,
            notices=analysis.notices,
            threshold=analysis.threshold,
            abstention=analysis.abstention,
            candidates=[AnswerCandidate(id=c.id, title=c.title, score=c.score) for c in analysis.candidates],
        )


class FollowUpAnswer(BaseModel):
    """A follow-up question answered from the knowledge base."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["offline", "llm"]
    model: str | None = None
    lang: str
    answer: str
    citations: list[Citation]
    notices: list[str] = []
