"""Turning answers into what the app shows: safe text, highlights, citation panels, exports.

Everything that came from a user (a pasted post) is shown as text: it goes into
code blocks or is HTML-escaped, so pasted HTML, scripts and Markdown links are
never rendered or fetched.
"""

from __future__ import annotations

import html
import json
import re

from ..api import Answer
from ..corpus import KnowledgeBase

OFFLINE_MODE_LINE = "_Mode: offline. The post was analysed on this machine and sent nowhere._"


def as_text_block(text: str) -> str:
    """A pasted post as a Markdown code block: shown verbatim, never rendered."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def mode_line(answer) -> str:
    if answer.mode == "llm" and answer.model:
        return f"_Mode: LLM ({answer.model}); every sentence was checked against the cited sources._"
    return OFFLINE_MODE_LINE


def highlights(answer: Answer, text: str) -> list[tuple[str, str | None]]:
    """The post split into (piece, label) pairs; a piece carrying a narrative and a technique shows both."""
    labels: list[list[str]] = [[] for _ in text]

    def paint(start: int, end: int, label: str) -> None:
        for index in range(max(0, start), min(len(text), end)):
            if label not in labels[index]:
                labels[index].append(label)

    for narrative in answer.narratives:
        for phrase in narrative.evidence.phrases:
            paint(phrase.start, phrase.end, f"narrative: {narrative.title}")
    for tactic in answer.tactics:
        for span in tactic.spans:
            paint(span.start, span.end, f"tactic: {tactic.name}")
    joined = ["; ".join(names) or None for names in labels]
    pieces: list[tuple[str, str | None]] = []
    start = 0
    for index in range(1, len(text) + 1):
        if index == len(text) or joined[index] != joined[start]:
            pieces.append((text[start:index], joined[start]))
            start = index
    return pieces


def citations_html(citations) -> str:
    """Numbered citations, each a <details> that opens on the passage; all text escaped."""
    if not citations:
        return "<p><em>No citations for this answer.</em></p>"
    parts = ['<div class="nl-citations">']
    for citation in citations:
        title = html.escape(citation.title)
        where = html.escape(", ".join(p for p in (citation.source, citation.date, citation.locator) if p))
        link = ""
        if citation.url and re.match(r"^https?://", citation.url):
            url = html.escape(citation.url, quote=True)
            link = f'<p><a href="{url}" target="_blank" rel="noopener noreferrer">{url}</a></p>'
        parts.append(
            f'<details class="nl-citation" id="citation-{citation.id}"><summary>[{citation.id}] {title} ({where})</summary>'
            f"<blockquote>{html.escape(citation.text)}</blockquote>{link}</details>"
        )
    parts.append("</div>")
    return "".join(parts)


def brief_markdown(post: str, answer: Answer) -> str:
    """The downloadable brief: the post, the answer with its citations, the mode."""
    return "\n".join(
        [
            "# Narrative Lens brief",
            "",
            "## The post",
            "",
            as_text_block(post),
            "",
            "## Analysis",
            "",
            answer.answer.strip(),
            "",
            mode_line(answer),
            "",
        ]
    )


def answer_json(answer: Answer) -> str:
    return json.dumps(answer.model_dump(mode="json"), ensure_ascii=False, indent=2)


def batch_rows(posts: list[str], answers: list[Answer]) -> list[list]:
    rows = []
    for number, (post, answer) in enumerate(zip(posts, answers), start=1):
        top = answer.narratives[0] if answer.narratives else None
        rows.append(
            [
                number,
                " ".join(post.split())[:120],
                top.title if top else "no known narrative",
                round(top.score, 2) if top else None,
                ", ".join(n.title for n in answer.narratives[1:]),
                ", ".join(t.name for t in answer.tactics),
            ]
        )
    return rows


BATCH_HEADERS = ["#", "post", "verdict", "score", "also matches", "techniques"]


def card_markdown(kb: KnowledgeBase, kind: str, card_id: str, max_examples: int = 6) -> str:
    """A narrative or tactic card for educators, with its examples, sources and Chinese markers."""
    if kind == "narrative":
        card = kb.narratives[card_id]
        lines = [f"## {card.title}", "", f"`{card.id}` (campaign: {card.campaign})", "", card.summary, "", "### Typical claims"]
        lines += [f"- {claim}" for claim in card.claims]
        lines += ["", "### Markers"]
        for label, values in (("English", card.markers.en), ("简体中文", card.markers.zh_hans), ("繁體中文", card.markers.zh_hant)):
            if values:
                lines.append(f"- **{label}**: " + ", ".join(f"`{v}`" for v in values))
        if card.tactics:
            lines += ["", "### Related tactics", ", ".join(kb.tactics[t].name if t in kb.tactics else t for t in card.tactics)]
        seen = card.seen
        if seen.platforms or seen.periods or seen.events:
            lines += ["", "### Where and when it was seen"]
            if seen.platforms:
                lines.append(f"- Platforms: {', '.join(seen.platforms)}")
            if seen.periods:
                lines.append(f"- Periods: {', '.join(seen.periods)}")
            lines += [f"- Event: {event}" for event in seen.events]
        lines += ["", "### Context a reader needs"]
        for fact in card.facts:
            source = kb.sources.get(fact.source)
            where = f"{source.display_title}, {fact.locator}" if source else f"{fact.source}, {fact.locator}"
            lines.append(f"- {fact.text} _(source: {where})_")
        examples = [e for e in kb.examples if card.id in e.narratives and e.split in ("train", "user")]
    else:
        card = kb.tactics[card_id]
        lines = [f"## {card.name}", "", f"`{card.id}` ({card.kind} tactic"
                 + (f"; DISARM {', '.join(card.disarm)}" if card.disarm else "")
                 + (f"; SemEval-2023 '{card.semeval}'" if card.semeval else "") + ")", "", card.summary]
        if card.how_to_spot.en:
            lines += ["", "### How to spot it", card.how_to_spot.en]
        if card.how_to_spot.zh:
            lines += ["", "### How to spot it in Chinese text", card.how_to_spot.zh]
        if card.why_it_works:
            lines += ["", "### Why it works", card.why_it_works]
        if card.example:
            lines += ["", f"### Example ({card.example_note or 'constructed'})", as_text_block(card.example)]
        if card.educator_note:
            lines += ["", "### For educators", card.educator_note]
        examples = [e for e in kb.examples if any(s.id == card.id for s in e.tactics) and e.split in ("train", "user")]
    sources = [kb.sources[s] for s in card.sources if s in kb.sources]
    if sources:
        lines += ["", "### Sources"]
        lines += [f"- {s.display_title}. {s.publisher}{', ' + s.date if s.date else ''}." + (f" <{s.url}>" if s.url else "") for s in sources]
    if examples:
        lines += ["", f"### Annotated examples ({len(examples)}; showing {min(len(examples), max_examples)}, all constructed)"]
        for example in examples[:max_examples]:
            lines += ["", f"**{example.id}** ({example.lang}, {example.platform}): {example.rationale}", as_text_block(example.text)]
    if card.body:
        lines += ["", "### Notes", card.body]
    return "\n".join(lines)
