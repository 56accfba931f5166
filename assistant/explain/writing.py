"""The one answer writer: an LLM's text streamed through the citation check, with the offline answer behind it.

Every surface (`ask`, follow-ups, the app, the eval) gets its answer from `AnswerWriter`, as typed events:
`Partial` (the checked answer so far, while the model writes), then one `Final` (the answer, with notices
saying what was dropped, or the offline answer and a notice saying why). Sentence buffering and the check
of each sentence live here and nowhere else; `check_answer` runs the same check over a finished text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, Union

from ..analysis.models import Analysis
from ..corpus import KnowledgeBase
from ..errors import LLMUnavailable
from ..settings import LLMSettings
from .answers import Answer, FollowUpAnswer
from .composer import answer_language, closing_block, compose, compose_followup, sources_block, verdict_block
from .llm import Prompt, build_prompt, build_question_prompt, build_rerank_prompt, check_sentence, parse_choice, sentences

NOTICES = {
    "unavailable": "The LLM answer was not available ({reason}); this is the offline answer.",
    "poorly cited": "The LLM's answer did not cite its sources well enough ({dropped} of {total} sentences failed "
    "the citation check); this is the offline answer.",
    "removed": "{dropped} sentence(s) of the LLM's answer without a valid citation were removed.",
}


class ChatWriter(Protocol):
    """What writes the text: `LLMWriter` (any OpenAI-compatible endpoint), or a scripted fake in tests."""

    @property
    def model_name(self) -> str: ...

    def stream(self, messages: list) -> Iterator[str]: ...


@dataclass(frozen=True)
class Partial:
    """The answer so far: only sentences that passed the check."""

    text: str


@dataclass(frozen=True)
class Final:
    answer: Union[Answer, FollowUpAnswer]


Event = Union[Partial, Final]


@dataclass
class CheckedText:
    """An LLM's text checked sentence by sentence as it arrives: `feed` pieces, then `finish`.

    A sentence counts as complete once the next one has begun, so citation markers that arrive just after its
    full stop still join it."""

    allowed: set[int]
    kb: KnowledgeBase
    matched: set[str]
    kept: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (sentence, reason)
    _pending: str = ""

    def _check(self, sentence: str) -> bool:
        reason = check_sentence(sentence, self.allowed, self.kb, self.matched)
        if reason is None:
            self.kept.append(sentence)
        else:
            self.dropped.append((sentence, reason))
        return reason is None

    def feed(self, piece: str) -> bool:
        """Adds text; True when a sentence was kept by this piece."""
        self._pending += piece
        parts = sentences(self._pending)
        if len(parts) < 2 or parts[-1].startswith("["):
            return False
        self._pending = self._pending[self._pending.rfind(parts[-1]) :]
        return any([self._check(sentence) for sentence in parts[:-1]])

    def finish(self) -> "CheckedText":
        for sentence in sentences(self._pending):
            self._check(sentence)
        self._pending = ""
        return self

    @property
    def text(self) -> str:
        return " ".join(self.kept)


def check_answer(text: str, allowed: set[int], kb: KnowledgeBase, analysis: Analysis | None = None) -> CheckedText:
    """The writer's check over a finished text (matched narratives from `analysis`; none for a follow-up)."""
    matched = {m.id for m in analysis.narratives} if analysis is not None else set()
    checked = CheckedText(allowed, kb, matched)
    checked.feed(text)
    return checked.finish()


class AnswerWriter:
    """Answers for an analysis or a follow-up question: written by `writer` when one is given, else offline."""

    def __init__(self, kb: KnowledgeBase, settings: LLMSettings, *, rerank: bool = False):
        self.kb = kb
        self.settings = settings
        self.rerank = rerank  # matching.llm_rerank: ask the LLM which candidate narrative fits best

    def offline(self, analysis: Analysis, notices: list[str] = ()) -> Answer:
        if notices:
            analysis = analysis.model_copy(update={"notices": analysis.notices + list(notices)})
        return Answer.offline(analysis, compose(analysis, self.kb))

    def answer(self, analysis: Analysis, writer: ChatWriter | None, notices: list[str] = ()) -> Iterator[Event]:
        if writer is None:
            yield Final(self.offline(analysis, notices))
            return
        lang = answer_language(analysis)
        prompt = build_prompt(analysis, self.kb, self.settings)
        head = "\n".join(verdict_block(analysis, lang)) + "\n\n"

        def written(checked: CheckedText, shown: list[str]) -> Answer:
            markdown = head + checked.text + "\n" + "\n".join(closing_block(analysis, lang, self.kb)) + "\n"
            noted = analysis.model_copy(update={"notices": analysis.notices + shown})
            answer = Answer.offline(noted, markdown)
            update = {"mode": "llm", "model": writer.model_name, "llm_choice": self.choice(noted, writer)}
            return answer.model_copy(update=update)

        yield from self._checked_events(
            writer, prompt, {m.id for m in analysis.narratives}, notices, head=head,
            offline=lambda shown: self.offline(analysis, shown), written=written,
        )

    def follow_up(self, question: str, found, writer: ChatWriter | None, notices: list[str] = ()) -> Iterator[Event]:
        """`found`: the QuestionAnswerer's result (citations, language) for `question`."""
        offline = FollowUpAnswer(
            mode="offline", lang=found.lang, answer=compose_followup(found), citations=found.citations, notices=list(notices)
        )
        if writer is None or not found.citations:
            yield Final(offline)
            return
        prompt = build_question_prompt(question, found.citations, found.lang, self.settings)

        def written(checked: CheckedText, shown: list[str]) -> FollowUpAnswer:
            sources = "\n".join(sources_block(found.citations, "zh" if found.lang == "zh" else "en"))
            return FollowUpAnswer(
                mode="llm", model=writer.model_name, lang=found.lang, answer=checked.text + "\n" + sources + "\n",
                citations=found.citations, notices=shown,
            )

        yield from self._checked_events(
            writer, prompt, set(), notices,
            offline=lambda shown: offline.model_copy(update={"notices": shown}), written=written,
        )

    def _checked_events(
        self,
        writer: ChatWriter,
        prompt: Prompt,
        matched: set[str],
        notices: list[str],
        *,
        head: str = "",
        offline: Callable[[list[str]], Union[Answer, FollowUpAnswer]],
        written: Callable[[CheckedText, list[str]], Union[Answer, FollowUpAnswer]],
    ) -> Iterator[Event]:
        """The streaming behind both `answer` and `follow_up`, so that the two fall back and give notice alike:
        a `Partial` (after `head`) each time a checked sentence is kept, then one `Final`: `written(checked,
        shown)`, or `offline(shown)` when the LLM fails or fewer than min_kept_sentences pass the check. `shown`
        is the caller's `notices`, then the one saying what was removed or why the answer is offline."""
        checked = CheckedText(prompt.source_ids, self.kb, matched)
        try:
            for piece in writer.stream(prompt.messages):
                if checked.feed(piece):
                    yield Partial(head + checked.text)
        except LLMUnavailable as error:
            yield Final(offline([*notices, NOTICES["unavailable"].format(reason=error)]))
            return
        checked.finish()
        if len(checked.kept) < self.settings.min_kept_sentences:
            total = len(checked.kept) + len(checked.dropped)
            yield Final(offline([*notices, NOTICES["poorly cited"].format(dropped=len(checked.dropped), total=total)]))
            return
        removed = [NOTICES["removed"].format(dropped=len(checked.dropped))] if checked.dropped else []
        yield Final(written(checked, [*notices, *removed]))

    def choice(self, analysis: Analysis, writer: ChatWriter) -> str | None:
        """LLM-assisted matching: which of the matched and runner-up narratives the LLM picks (if asked to)."""
        if not self.rerank or not analysis.narratives:
            return None
        candidates = [*analysis.narratives, *analysis.candidates][:4]
        messages = build_rerank_prompt(analysis.text, [(c.id, c.title, c.summary) for c in candidates])
        try:
            reply = "".join(writer.stream(messages))
        except LLMUnavailable:
            return None
        return parse_choice(reply, [c.id for c in candidates])


def final_answer(events: Iterator[Event]):
    """The Final event's answer, for callers that do not stream."""
    answer = None
    for event in events:
        if isinstance(event, Final):
            answer = event.answer
    return answer
