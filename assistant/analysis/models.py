"""What an analysis is: typed evidence that travels from matcher to answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(Model):
    """A stretch of the post as pasted: text == post[start:end]."""

    start: int
    end: int
    text: str


class PhraseEvidence(Span):
    score: float = Field(description="How strongly this phrase alone points to the narrative (0-1).")
    reason: Literal["marker", "frame", "similar"] = Field(
        "similar", description="marker: a marker phrase of the card; frame: the clause has the shape of a claim; similar: its words score high."
    )


class ExampleEvidence(Model):
    id: str
    text: str
    similarity: float
    lang: str
    rationale: str = ""


class Evidence(Model):
    phrases: list[PhraseEvidence] = []
    examples: list[ExampleEvidence] = []


class NarrativeMatch(Model):
    id: str
    title: str
    score: float = Field(ge=0, le=1, description="Calibrated probability that the post carries this narrative.")
    confidence: Literal["high", "moderate", "low"]
    summary: str = ""
    evidence: Evidence = Evidence()
    citations: list[int] = Field([], description="Citations documenting this narrative.")


class TacticHit(Model):
    id: str
    name: str
    kind: Literal["rhetorical", "campaign"]
    score: float | None = Field(None, description="The technique model's score (None when found by a cue pattern alone).")
    summary: str = ""
    spans: list[Span] = []
    citations: list[int] = []


class Citation(Model):
    id: int = Field(description="1-based; the answer's [n] markers refer to it.")
    source_id: str
    title: str
    source: str = Field(description="The publisher.")
    author: str = ""
    date: str = ""
    locator: str
    url: str = ""
    text: str = Field(description="The passage or paraphrased note the citation rests on.")
    origin: Literal["corpus", "ingested"] = "corpus"


class ContextItem(Model):
    narrative_id: str
    text: str
    citation: int


class Analysis(Model):
    text: str = Field(description="The post as analysed (after any truncation); spans index into it.")
    lang: Literal["en", "zh", "mixed", "other"]
    narratives: list[NarrativeMatch] = []
    candidates: list[NarrativeMatch] = Field([], description="Best narratives below the threshold, for transparency.")
    tactics: list[TacticHit] = []
    citations: list[Citation] = []
    context: list[ContextItem] = []
    threshold: float = Field(description="Abstention threshold fitted on labelled benign examples.")
    abstention: Literal["too little text", "reports or refutes the claim", "far from the knowledge base", "below the threshold"] | None = Field(
        None, description="Why no narrative was reported (None when one was)."
    )
    notices: list[str] = []

    @property
    def abstained(self) -> bool:
        return not self.narratives

    def citation(self, number: int) -> Citation | None:
        return next((c for c in self.citations if c.id == number), None)
