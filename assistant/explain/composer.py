"""The offline answer: a deterministic, cited Markdown explanation of an Analysis.

Nothing here is generated beyond the analysis and the cards: every factual
sentence carries a [n] marker that resolves to the analysis' citation list.
The post's own words are quoted as inline code, so pasted Markdown, links or
HTML are shown as text and never rendered.
"""

from __future__ import annotations

from ..analysis.models import Analysis, Citation
from ..corpus import KnowledgeBase
from .citations import MARKER

PHRASES = {
    "en": {
        "verdict_match": "**Verdict:** the post matches the known narrative **{title}** (score {score:.2f}, {confidence} confidence) {cite}.",
        "verdict_also": "It also matches **{title}** (score {score:.2f}, {confidence} confidence) {cite}.",
        "verdict_none": "**Verdict:** no known narrative. The evidence is too weak to match this post to any narrative in the knowledge base (best candidate: {best}, below the threshold of {threshold:.2f}).",
        "verdict_none_plain": "**Verdict:** no known narrative. Nothing in this post comes close to a narrative in the knowledge base (threshold {threshold:.2f}).",
        "verdict_short": "**Verdict:** too little text to judge. A few words, emoji or a bare link cannot show which claim a post makes; paste more of the post.",
        "verdict_refutes": "**Verdict:** no known narrative. The post attributes a claim to others and rejects it: reporting on or refuting a narrative is not carrying it.",
        "verdict_far": "**Verdict:** no known narrative. This post is far from every claim and example the knowledge base holds, so the matcher abstains rather than guess.",
        "why": "### Why it matches",
        "phrase": "- {label}: the post says `{quote}`",
        "marker": "a marker phrase of **{title}** (phrase score {score:.2f})",
        "frame": "has the shape of a claim of **{title}** (phrase score {score:.2f})",
        "similar": "its own words are close to **{title}** (phrase score {score:.2f})",
        "summary": "- What the narrative claims: {summary} {cite}",
        "nearest": "- Nearest annotated example ({id}, similarity {sim:.2f}, constructed): `{text}`",
        "tactics": "### Techniques used",
        "tactic": "- **{name}**: `{quote}`. {summary} {cite}",
        "no_tactics": "### Techniques used\n- No persuasion technique from the knowledge base was found in the wording.",
        "context": "### Context a reader needs",
        "fact": "- {text} {cite}",
        "related": "### Related report passages",
        "passage": "- {title}, {locator}: {text} {cite}",
        "caveat": "_Matching a narrative describes what the post says, not who wrote it: it is not proof that the post or its author is part of an influence operation. Attribution needs behavioural evidence (accounts, timing, networks) that a single post cannot give._",
        "caveat_none": "_No match does not make a post accurate, and a match would not prove who wrote it. {scope}_",
        "scope": "The knowledge base covers known {name} narratives only.",
        "scope_unnamed": "The knowledge base covers only the narratives it holds.",
        "sources": "### Sources",
    },
    "zh": {
        "verdict_match": "**结论：** 该帖子符合已知叙事 **{title}**（得分 {score:.2f}，置信度：{confidence}）{cite}。",
        "verdict_also": "它也符合 **{title}**（得分 {score:.2f}，置信度：{confidence}）{cite}。",
        "verdict_none": "**结论：** 未匹配到已知叙事。证据不足，无法将该帖子与知识库中的任何叙事对应（最接近的候选：{best}，低于阈值 {threshold:.2f}）。",
        "verdict_none_plain": "**结论：** 未匹配到已知叙事。该帖子与知识库中的叙事都不接近（阈值 {threshold:.2f}）。",
        "verdict_short": "**结论：** 文字太少，无法判断。几个词、表情符号或一个链接无法说明帖子提出了什么主张；请粘贴更多内容。",
        "verdict_refutes": "**结论：** 未匹配到已知叙事。该帖子转述他人的说法并予以驳斥：报道或驳斥某一叙事并不等于宣扬它。",
        "verdict_far": "**结论：** 未匹配到已知叙事。该帖子与知识库中的所有主张和示例都相距甚远，因此不作判断。",
        "why": "### 为什么匹配",
        "phrase": "- {label}：帖子写道 `{quote}`",
        "marker": "**{title}** 的标志性说法（短语得分 {score:.2f}）",
        "frame": "具有 **{title}** 某一主张的句式（短语得分 {score:.2f}）",
        "similar": "其措辞与 **{title}** 相近（短语得分 {score:.2f}）",
        "summary": "- 该叙事的主张：{summary} {cite}",
        "nearest": "- 最相近的标注示例（{id}，相似度 {sim:.2f}，为项目自编示例）：`{text}`",
        "tactics": "### 使用的手法",
        "tactic": "- **{name}**：`{quote}`。{summary} {cite}",
        "no_tactics": "### 使用的手法\n- 未在措辞中发现知识库中的说服手法。",
        "context": "### 读者需要了解的背景",
        "fact": "- {text} {cite}",
        "related": "### 相关报告段落",
        "passage": "- {title}，{locator}：{text} {cite}",
        "caveat": "_匹配某一叙事只说明帖子的内容，不说明作者是谁：这不能证明该帖子或其作者属于某个影响力行动。归因需要单条帖子无法提供的行为证据（账号、时间、网络）。_",
        "caveat_none": "_未匹配并不代表帖子内容准确；即使匹配，也不能证明作者身份。{scope}_",
        "scope": "知识库仅涵盖已知的 {name} 叙事。",
        "scope_unnamed": "知识库仅涵盖其收录的叙事。",
        "sources": "### 来源",
    },
}
CONFIDENCE_ZH = {"high": "高", "moderate": "中", "low": "低"}
QUOTE_LIMIT = 160


def _quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    # A quoted "[99]" would read as a citation of this answer: quoted text keeps its numbers, not the brackets.
    text = MARKER.sub(r"(\1)", " ".join(text.split()).replace("`", "'"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cite(*numbers: int | None) -> str:
    return "".join(f"[{n}]" for n in numbers if n)


def format_citation(citation: Citation) -> str:
    parts = [f"[{citation.id}] {citation.title}"]
    who = ", ".join(part for part in (citation.author, citation.source) if part)
    if who:
        parts.append(who)
    if citation.date:
        parts.append(citation.date)
    parts.append(citation.locator)
    line = ". ".join(parts) + "."
    if citation.url:
        line += f" <{citation.url}>"
    return line


def answer_language(analysis: Analysis, language: str | None = None) -> str:
    """The template set for an answer: Chinese for a Chinese post, English for any other language (a Russian post,
    a mixed one), since the templates exist in those two only."""
    lang = language or analysis.lang
    return lang if lang in PHRASES else "en"


def scope_sentence(kb: KnowledgeBase | None, lang: str) -> str:
    """What the knowledge base covers, named by the campaign file (corpus/campaign.yaml)."""
    say = PHRASES[lang if lang in PHRASES else "en"]
    name = kb.campaign.name.get(lang) if kb is not None else ""
    return say["scope"].format(name=name) if name else say["scope_unnamed"]


def verdict_block(analysis: Analysis, lang: str) -> list[str]:
    """Notices and the verdict line(s): decided by the analysis, never by an LLM."""
    say = PHRASES.get(lang, PHRASES["en"])
    conf = (lambda c: CONFIDENCE_ZH[c]) if lang == "zh" else (lambda c: c)
    lines: list[str] = []
    if analysis.notices:
        lines += [f"> {notice}" for notice in analysis.notices] + [""]
    if not analysis.narratives:
        reasons = {"too little text": "verdict_short", "reports or refutes the claim": "verdict_refutes", "far from the knowledge base": "verdict_far"}
        if analysis.abstention in reasons:
            lines.append(say[reasons[analysis.abstention]])
        elif analysis.candidates:
            best = analysis.candidates[0]
            lines.append(say["verdict_none"].format(best=f"{best.title} ({best.score:.2f})", threshold=analysis.threshold))
        else:
            lines.append(say["verdict_none_plain"].format(threshold=analysis.threshold))
        return lines
    first, *others = analysis.narratives
    lines.append(
        say["verdict_match"].format(
            title=first.title, score=first.score, confidence=conf(first.confidence), cite=_cite(*first.citations)
        )
    )
    for match in others:
        lines.append(
            say["verdict_also"].format(
                title=match.title, score=match.score, confidence=conf(match.confidence), cite=_cite(*match.citations)
            )
        )
    return lines


def sources_block(citations, lang: str) -> list[str]:
    """The numbered sources list, headed in the answer's language."""
    if not citations:
        return []
    return ["", PHRASES.get(lang, PHRASES["en"])["sources"], *[format_citation(c) for c in citations]]


def closing_block(analysis: Analysis, lang: str, kb: KnowledgeBase | None = None) -> list[str]:
    """The attribution caveat and the numbered sources; `kb` names the campaign the knowledge base covers."""
    lang = lang if lang in PHRASES else "en"
    say = PHRASES[lang]
    caveat = say["caveat"] if analysis.narratives else say["caveat_none"].format(scope=scope_sentence(kb, lang))
    return ["", caveat, *sources_block(analysis.citations, lang)]


def compose(analysis: Analysis, kb: KnowledgeBase, language: str | None = None) -> str:
    """The Markdown answer for an analysis, in English or Chinese (by the post's language)."""
    lang = answer_language(analysis, language)
    say = PHRASES[lang]
    lines = verdict_block(analysis, lang)
    if analysis.narratives:
        lines += ["", say["why"]]
        for match in analysis.narratives:
            lines.append(say["summary"].format(summary=match.summary.strip(), cite=_cite(*match.citations)))
            for phrase in match.evidence.phrases[:4]:
                label = say[phrase.reason].format(title=match.title, score=phrase.score)
                lines.append(say["phrase"].format(label=label, quote=_quote(phrase.text)))
            for example in match.evidence.examples[:1]:
                lines.append(say["nearest"].format(id=example.id, sim=example.similarity, text=_quote(example.text, 120)))

    if analysis.tactics:
        lines += ["", say["tactics"]]
        for hit in analysis.tactics:
            quote = " / ".join(_quote(span.text, 60) for span in hit.spans[:3])
            lines.append(
                say["tactic"].format(name=hit.name, quote=quote, summary=hit.summary.strip(), cite=_cite(*hit.citations))
            )
    elif analysis.narratives:
        lines += ["", say["no_tactics"]]

    if analysis.context:
        lines += ["", say["context"]]
        for item in analysis.context:
            lines.append(say["fact"].format(text=item.text.strip(), cite=_cite(item.citation)))

    used = (
        {n for m in analysis.narratives for n in m.citations}
        | {item.citation for item in analysis.context}
        | {n for hit in analysis.tactics for n in hit.citations}
    )
    related = [c for c in analysis.citations if c.id not in used]
    if related:
        lines += ["", say["related"]]
        for citation in related:
            lines.append(
                say["passage"].format(
                    title=citation.title, locator=citation.locator, text=_quote(citation.text, 220), cite=_cite(citation.id)
                )
            )
    lines += closing_block(analysis, lang, kb)
    return "\n".join(lines).strip() + "\n"

FOLLOWUP = {
    "en": {
        "intro": "From the knowledge base (offline):",
        "none": "The knowledge base has nothing close enough to this question to answer it with a source. "
        "Try naming a narrative, a technique (for example 'whataboutism') or a topic (for example 'cotton mechanisation').",
        "example": "_(constructed example, not a real post)_",
    },
    "zh": {
        "intro": "知识库中的相关内容（离线）：",
        "none": "知识库中没有与此问题足够接近、可以附上出处回答的内容。可以试着提到某个叙事、某种手法（例如 whataboutism）或某个主题（例如棉花机械化采摘）。",
        "example": "_（项目自编示例，不是真实帖子）_",
    },
}


def compose_followup(answer, language: str | None = None) -> str:
    """Markdown for a follow-up question answered from the knowledge base (a KnowledgeAnswer)."""
    lang = language or answer.lang
    lang = lang if lang in FOLLOWUP else "en"
    say = FOLLOWUP[lang]
    if not answer.items:
        return say["none"] + "\n"
    lines = [say["intro"], ""]
    for item in answer.items:
        if item.heading in ("Constructed example",):
            lines.append(f"- **{item.heading}** {say['example']}: `{_quote(item.text, 300)}`")
            continue
        lines.append(f"- **{item.heading}**: {item.text} {_cite(item.citation)}".rstrip())
    lines += sources_block(answer.citations, lang)
    return "\n".join(lines).strip() + "\n"
