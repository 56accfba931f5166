"""The knowledge base's records: what a card, a source and an example are."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
LANGS = ("en", "zh-Hans", "zh-Hant", "mixed")
# A language tag as the corpus writes it ("en", "ru", "zh-Hans"); the shipped languages are LANGS, a campaign file
# (corpus/campaign.yaml) names the others its cards and examples are written in.
LANG_PATTERN = r"^(?:[a-z]{2,3}(?:-[A-Za-z]{2,4})?|mixed)$"
PLATFORMS = (
    "x", "facebook", "youtube", "weibo", "instagram", "tiktok", "telegram", "news-site", "blog", "forum", "reddit",
    "other",
)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceNote(Record):
    text: str = Field(min_length=1)
    locator: str = Field(min_length=1, description="Section, paragraph or page in the source.")


class SourceRecord(Record):
    id: str = Field(pattern=ID_PATTERN)
    # Left empty when the exact title is not known for certain; citations then name the publisher.
    title: str = ""
    publisher: str = Field(min_length=1)
    author: str = ""
    date: str = ""
    url: str = ""
    kind: Literal["report", "dataset", "framework", "statement", "law", "document"] = "report"
    notes: list[SourceNote] = []
    body: str = ""

    @property
    def display_title(self) -> str:
        return self.title or f"{self.publisher} ({self.kind}{', ' + self.date if self.date else ''})"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://\S+$", value):
            raise ValueError("must be an http(s) URL or empty")
        return value


class Fact(Record):
    text: str = Field(min_length=1)
    source: str = Field(pattern=ID_PATTERN)
    locator: str = Field(min_length=1)


class Markers(Record):
    # Languages beyond the three named fields ("ru", "fa", ...) are further keys, each a list of phrases.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    en: list[str] = []
    zh_hans: list[str] = Field([], alias="zh-Hans")
    zh_hant: list[str] = Field([], alias="zh-Hant")

    @model_validator(mode="after")
    def _other_languages(self) -> "Markers":
        for key, value in (self.model_extra or {}).items():
            if not re.match(LANG_PATTERN, key):
                raise ValueError(f"marker language {key!r} is not a language tag like 'ru' or 'zh-Hans'")
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"markers for {key!r} must be a list of phrases")
        return self

    def other(self) -> dict[str, list[str]]:
        """Phrases in languages other than English and Chinese, by language tag."""
        return {key: list(value) for key, value in (self.model_extra or {}).items()}

    def all(self) -> list[str]:
        return [*self.en, *self.zh_hans, *self.zh_hant, *(p for phrases in self.other().values() for p in phrases)]


class Seen(Record):
    platforms: list[str] = []
    periods: list[str] = []
    events: list[str] = []


class NarrativeCard(Record):
    id: str = Field(pattern=ID_PATTERN)
    campaign: str = Field(min_length=1)
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    claims: list[str] = Field(min_length=1)
    markers: Markers = Markers()
    # Claim frames: each is a list of term groups; a sentence with a term of every group has the shape of one of
    # the narrative's claims ("@name" refers to a group in corpus/concepts.yaml). See corpus/README.md.
    frames: list[list[list[str]]] = []
    tactics: list[str] = []
    seen: Seen = Seen()
    facts: list[Fact] = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    body: str = ""


class CampaignName(Record):
    """The campaign's display name by answer language; a language without its own name uses the English one."""

    model_config = ConfigDict(extra="allow", frozen=True)

    en: str = ""
    zh: str = ""

    @model_validator(mode="after")
    def _other_languages(self) -> "CampaignName":
        for key, value in (self.model_extra or {}).items():
            if not re.match(LANG_PATTERN, key) or not isinstance(value, str):
                raise ValueError(f"name.{key}: expected a language tag and a name")
        return self

    def get(self, lang: str) -> str:
        named = {"en": self.en, "zh": self.zh, **(self.model_extra or {})}
        return named.get(lang) or self.en


class Campaign(Record):
    """What the knowledge base covers (corpus/campaign.yaml): the names, languages and actor words that belong to
    one campaign, not to the code. Without the file the assistant names no campaign."""

    id: str = Field("", pattern=r"^(?:[a-z0-9]+(?:-[a-z0-9]+)*)?$")
    # Shown in the answer's scope caveat ("covers known <name> narratives only"); empty: a campaign-free sentence.
    name: CampaignName = CampaignName()
    # Other names researchers use for the same operation (for readers, and for stance cues in a later change).
    aliases: list[str] = []
    # The language tags the cards and examples are written in (beyond LANGS, which the code always knows).
    languages: list[str] = []
    # Words that, in "this post is X propaganda", would attribute a post to this campaign's actor: "chinese",
    # "ccp", 中共. Lower-case literals; the generic part of the check (propaganda, troll, bot, 水军) is in code.
    attribution: list[str] = []

    @field_validator("name", mode="before")
    @classmethod
    def _one_name(cls, value):
        return {"en": value, "zh": value} if isinstance(value, str) else value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not re.match(LANG_PATTERN, tag):
                raise ValueError(f"{tag!r} is not a language tag like 'ru' or 'zh-Hans'")
        return value

    @field_validator("attribution", "aliases")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        for word in value:
            if not word.strip():
                raise ValueError("empty word")
        return value


class Cues(Record):
    en: list[str] = []
    zh: list[str] = []

    @model_validator(mode="after")
    def _compile(self) -> "Cues":
        for pattern in [*self.en, *self.zh]:
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as error:
                raise ValueError(f"cue {pattern!r} is not a valid regular expression: {error}") from None
            if compiled.fullmatch(""):
                raise ValueError(f"cue {pattern!r} matches the empty string")
        return self

    def all(self) -> list[str]:
        return [*self.en, *self.zh]


class HowToSpot(Record):
    en: str = ""
    zh: str = ""


class TacticCard(Record):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    kind: Literal["rhetorical", "campaign"]
    disarm: list[str] = []
    semeval: str = ""
    summary: str = Field(min_length=1)
    how_to_spot: HowToSpot = HowToSpot()
    why_it_works: str = ""
    example: str = ""
    example_note: str = ""
    educator_note: str = ""
    cues: Cues = Cues()
    sources: list[str] = []
    body: str = ""

    @field_validator("disarm")
    @classmethod
    def _disarm(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.match(r"^T\d{4}(?:\.\d{3})?$", item):
                raise ValueError(f"{item!r} is not a DISARM technique id like T0049 or T0049.001")
        return value


class Span(Record):
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class TacticSpan(Span):
    id: str = Field(pattern=ID_PATTERN)


class Example(Record):
    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    # One of LANGS or a language the campaign file names (checked by validate).
    lang: str = Field("en", pattern=LANG_PATTERN)
    platform: str = "other"
    narratives: list[str] = []
    tactics: list[TacticSpan] = []
    rationale: str = ""
    constructed: bool = True
    split: Literal["train", "dev", "test", "user"] = "train"

    @model_validator(mode="after")
    def _spans(self) -> "Example":
        for span in self.tactics:
            if not (0 <= span.start < span.end <= len(self.text)) or self.text[span.start : span.end] != span.text:
                raise ValueError(
                    f"tactic span {span.id} [{span.start}:{span.end}] does not match its text {span.text!r}"
                )
        return self

    @property
    def benign(self) -> bool:
        return not self.narratives
