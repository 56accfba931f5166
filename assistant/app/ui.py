"""The Gradio app: check a post, browse cards, examples and quiz, export, teach, API.

Handlers are methods of `Handlers`, which holds the one `Assistant`; the UI
wiring in `build_app` only connects components to them. A handler never lets
an exception reach the page: users see a short message, never a stack trace.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
from pathlib import Path

from .. import offline

offline.disable_telemetry()  # before gradio is imported

import gradio as gr  # noqa: E402

from ..analysis.questions import looks_like_question  # noqa: E402
from ..api import Assistant  # noqa: E402
from ..errors import NarrativeLensError  # noqa: E402
from ..explain.writing import Final  # noqa: E402
from .render import (  # noqa: E402
    BATCH_HEADERS,
    answer_json,
    as_text_block,
    batch_rows,
    brief_markdown,
    card_markdown,
    citations_html,
    highlights,
    mode_line,
)

log = logging.getLogger(__name__)
API_NAME = "analyze"
MODES = {"auto": None, "offline": "offline", "llm": "llm"}
MAX_BATCH = 20
CSS = """
.nl-citation summary { cursor: pointer; }
.nl-citation blockquote { margin: 4px 0 8px 16px; white-space: pre-wrap; }
"""


def friendly(error: Exception) -> str:
    """The message a visitor sees: a NarrativeLensError's own; for anything else (a bug) a generic line, with the
    traceback in the server log."""
    if isinstance(error, NarrativeLensError):
        return str(error)
    log.error("unexpected error in the app: %s", type(error).__name__, exc_info=error)
    return "Something went wrong while answering; please try again. (The details are in the server log.)"


def split_posts(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"\n\s*\n", text) if part.strip()]


class Handlers:
    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.export_dir = Path(tempfile.mkdtemp(prefix="narrative-lens-export-"))

    # -- choices ------------------------------------------------------------
    def narrative_choices(self) -> list[tuple[str, str]]:
        return [(card.title, card.id) for card in self.assistant.kb.narratives.values()]

    def tactic_choices(self) -> list[tuple[str, str]]:
        return [(card.name, card.id) for card in sorted(self.assistant.kb.tactics.values(), key=lambda c: (c.kind, c.name))]

    # -- check a post -------------------------------------------------------
    def _exports(self, post: str, answer) -> tuple[str, str]:
        stem = self.export_dir / f"analysis-{abs(hash((post, answer.answer))) % 10**10}"
        markdown, json_file = stem.with_suffix(".md"), stem.with_suffix(".json")
        markdown.write_text(brief_markdown(post, answer), encoding="utf-8")
        json_file.write_text(answer_json(answer), encoding="utf-8")
        return str(markdown), str(json_file)

    def submit(self, message: str, history: list, several: bool, state: dict | None, mode: str = "auto"):
        """Stream the answer into the chat; fill the evidence panels at the end."""
        history = list(history or [])
        state = dict(state or {})
        keep = (gr.skip(),) * 8
        message = message or ""
        if not message.strip():
            history.append({"role": "assistant", "content": "Paste the text of a post (or ask a question about one)."})
            yield (history, "", *keep, state)
            return
        history.append({"role": "user", "content": as_text_block(message)})
        yield (history, "", *keep, state)
        try:
            if several and len(split_posts(message)) > 1:
                yield from self._batch(message, history, state, MODES[mode])
                return
            if state.get("post") and looks_like_question(message):
                history.append({"role": "assistant", "content": "_Looking it up…_"})
                focus = [n["id"] for n in state.get("narratives", [])]
                for event in self.assistant.follow_up_stream(message, focus=focus, mode=MODES[mode]):
                    if isinstance(event, Final):
                        result = event.answer
                        text = "\n".join(f"> {n}" for n in result.notices) + ("\n\n" if result.notices else "") + result.answer
                        history[-1] = {"role": "assistant", "content": text + "\n\n" + mode_line(result)}
                        # The follow-up's [n] are its own citations: the panel shows them, not the post's.
                        yield (history, "", keep[0], citations_html(result.citations), *keep[2:], state)
                    else:
                        history[-1] = {"role": "assistant", "content": event.text}
                        yield (history, "", *keep, state)
                return
            answer = None
            history.append({"role": "assistant", "content": "_Analysing…_"})
            for event in self.assistant.ask_stream(message, MODES[mode]):
                if isinstance(event, Final):
                    answer = event.answer
                else:
                    history[-1] = {"role": "assistant", "content": event.text}
                    yield (history, "", *keep, state)
        except Exception as error:  # shown as a short message, never a traceback
            if history and history[-1].get("content") in ("_Analysing…_", "_Looking it up…_"):
                history.pop()
            history.append({"role": "assistant", "content": f"**Error:** {friendly(error)}"})
            yield (history, "", *keep, state)
            return
        analysed = message[: self.assistant.settings.app.max_post_chars]  # the text the spans index into
        state = {"post": analysed, "narratives": [n.model_dump() for n in answer.narratives]}
        markdown_path, json_path = self._exports(state["post"], answer)
        final = (
            gr.update(value=highlights(answer, state["post"]), visible=True),
            citations_html(answer.citations),
            gr.update(visible=False),
            gr.update(value=markdown_path, interactive=True),
            gr.update(value=json_path, interactive=True),
            gr.update(value=[n.id for n in answer.narratives]),
            gr.update(value=[t.id for t in answer.tactics]),
            "",
        )
        history[-1] = {"role": "assistant", "content": answer.answer + "\n\n" + mode_line(answer)}
        yield (history, "", *final, state)

    def _batch(self, message, history, state, mode: str | None):
        posts = split_posts(message)[:MAX_BATCH]
        answers = [self.assistant.ask(post, mode) for post in posts]
        lines = [f"Analysed {len(posts)} posts; the table below compares them."]
        if len(split_posts(message)) > MAX_BATCH:
            lines.append(f"Only the first {MAX_BATCH} posts were analysed.")
        for number, answer in enumerate(answers, start=1):
            verdict = (
                f"matches **{answer.narratives[0].title}** ({answer.narratives[0].score:.2f})" if answer.narratives else "no known narrative"
            )
            lines.append(f"{number}. {verdict}")
        history.append({"role": "assistant", "content": "\n".join(lines) + "\n\n" + mode_line(answers[0])})
        yield (
            history,
            "",
            gr.update(visible=False),
            "",
            gr.update(value=batch_rows(posts, answers), visible=True),
            gr.skip(),
            gr.skip(),
            gr.skip(),
            gr.skip(),
            "",
            state,
        )

    def api_analyze(self, text: str) -> dict:
        """The same JSON object as `narrative-lens ask --json`."""
        try:
            return self.assistant.ask(text).model_dump(mode="json")
        except Exception as error:
            raise gr.Error(friendly(error)) from None

    # -- teach it -----------------------------------------------------------
    def save_example(self, state: dict | None, narratives: list[str], tactics: list[str], for_eval: bool):
        if not state or not state.get("post"):
            yield "Analyse a post first; then correct its labels and save it."
            return
        # The index is rebuilt and the matcher refitted with the new example, which takes a while on a small machine.
        yield "Saving the example and refitting the matcher with it (this can take a minute)…"
        try:
            example = self.assistant.add_example(state["post"], narratives or [], tactics or [], for_eval=for_eval)
        except Exception as error:
            yield f"**Not saved:** {friendly(error)}"
            return
        where = "the index and your eval set" if for_eval else "the index"
        labels = ", ".join(narratives) if narratives else "benign (no known narrative)"
        yield f"Saved as `{example.id}` ({labels}); it is now part of {where}."

    # -- browse cards -------------------------------------------------------
    def card_options(self, query: str) -> list[tuple[str, str]]:
        kb = self.assistant.kb
        query = (query or "").strip().casefold()
        options = []
        for card in kb.narratives.values():
            haystack = " ".join([card.id, card.title, card.summary, *card.claims, *card.markers.all()]).casefold()
            if not query or query in haystack:
                options.append((f"Narrative: {card.title}", f"narrative:{card.id}"))
        for card in sorted(kb.tactics.values(), key=lambda c: c.name):
            haystack = " ".join([card.id, card.name, card.summary, card.how_to_spot.en, card.how_to_spot.zh]).casefold()
            if not query or query in haystack:
                options.append((f"Tactic: {card.name}", f"tactic:{card.id}"))
        return options

    def search_cards(self, query: str):
        options = self.card_options(query)
        first = options[0][1] if options else None
        return gr.update(choices=options, value=first), self.show_card(first)

    def show_card(self, key: str | None) -> str:
        if not key or ":" not in key:
            return "No card matches this search."
        kind, card_id = key.split(":", 1)
        kb = self.assistant.kb
        if (kind == "narrative" and card_id not in kb.narratives) or (kind == "tactic" and card_id not in kb.tactics):
            return "No such card."
        return card_markdown(kb, kind, card_id)

    # -- examples and quiz --------------------------------------------------
    def gallery_rows(self) -> list[list[str]]:
        kb = self.assistant.kb
        return [
            [e.id, e.lang, ", ".join(e.narratives) or "(benign)", " ".join(e.text.split())[:160]]
            for e in kb.examples
            if e.split in ("train", "user")
        ]

    def analyse_row(self, event: gr.SelectData) -> str:
        try:
            row = event.row_value if event.row_value else None
            example_id = row[0] if row else None
            example = next(e for e in self.assistant.kb.examples if e.id == example_id)
            answer = self.assistant.ask(example.text)
        except StopIteration:
            return "Select an example in the table."
        except Exception as error:
            return f"**Error:** {friendly(error)}"
        return f"### {example.id}\n\n{as_text_block(example.text)}\n\n{answer.answer}\n\n{mode_line(answer)}"

    def new_question(self, quiz: dict | None):
        quiz = dict(quiz or {"asked": 0, "right": 0})
        pool = [e for e in self.assistant.kb.examples if e.split == "train"]
        example = random.Random(quiz.get("asked", 0) * 7919 + len(pool)).choice(pool) if pool else None
        if example is None:
            return quiz, "No examples to quiz on.", gr.update(value=[]), gr.update(value=[]), ""
        quiz["current"] = example.id
        return (
            quiz,
            f"**Which narratives (if any) does this post carry, and which techniques does it use?**\n\n{as_text_block(example.text)}",
            gr.update(value=[]),
            gr.update(value=[]),
            "",
        )

    def check_answer(self, quiz: dict | None, narratives: list[str], tactics: list[str]):
        quiz = dict(quiz or {"asked": 0, "right": 0})
        example = next((e for e in self.assistant.kb.examples if e.id == quiz.get("current")), None)
        if example is None:
            return quiz, "Press **New post** first.", score_line(quiz)
        gold = set(example.narratives)
        picked = {n for n in (narratives or []) if n != "none"}
        correct = picked == gold
        quiz["asked"] = quiz.get("asked", 0) + 1
        quiz["right"] = quiz.get("right", 0) + int(correct)
        quiz.pop("current", None)
        kb = self.assistant.kb
        gold_titles = ", ".join(kb.narratives[n].title for n in example.narratives) or "no known narrative (benign)"
        gold_tactics = sorted({s.id for s in example.tactics})
        found = set(tactics or []) & set(gold_tactics)
        try:
            explanation = self.assistant.ask(example.text).answer
        except Exception as error:
            explanation = f"(The assistant could not answer: {friendly(error)})"
        spans = "\n".join(f"- {kb.tactics[s.id].name}: `{s.text}`" for s in example.tactics if s.id in kb.tactics)
        reveal = "\n".join(
            [
                f"### {'Correct' if correct else 'Not quite'}",
                f"**Narratives:** {gold_titles}",
                f"**Techniques:** {', '.join(kb.tactics[t].name for t in gold_tactics if t in kb.tactics) or 'none annotated'}"
                + (f" (you found {len(found)} of {len(gold_tactics)})" if gold_tactics else ""),
                spans,
                f"**Why:** {example.rationale} _(constructed example)_",
                "",
                "#### The assistant's explanation",
                explanation,
            ]
        )
        return quiz, reveal, score_line(quiz)


def score_line(quiz: dict) -> str:
    return f"**Score:** {quiz.get('right', 0)} / {quiz.get('asked', 0)}"


def build_app(assistant: Assistant) -> gr.Blocks:
    handlers = Handlers(assistant)
    narratives = handlers.narrative_choices()
    tactics = handlers.tactic_choices()
    with gr.Blocks(title="Narrative Lens", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Narrative Lens\nPaste a post (English or Chinese) to see which known influence-operation narratives it "
            "matches, the phrases and techniques behind the match, the context a reader needs and the sources. "
            "A match describes what a post says, not who wrote it."
        )
        with gr.Tab("Check a post", id="check"):
            state = gr.State({})
            chatbot = gr.Chatbot(label="Conversation", height=460, elem_id="chat")
            post = gr.Textbox(
                label="Post or question",
                placeholder="Paste a post here. Ask follow-up questions about it afterwards.",
                lines=5,
                elem_id="post",
            )
            with gr.Row():
                several = gr.Checkbox(label="Several posts, separated by a blank line (side-by-side table)", value=False)
                mode = gr.Radio(
                    [("Auto (LLM if configured)", "auto"), ("Offline", "offline"), ("LLM", "llm")],
                    value="auto", label="Answer mode", elem_id="mode",
                )
                submit = gr.Button("Analyse", variant="primary", elem_id="analyse")
            highlight = gr.HighlightedText(label="Why it matches: the post's phrases", visible=False, elem_id="highlights")
            batch = gr.Dataframe(headers=BATCH_HEADERS, visible=False, label="Posts side by side", elem_id="batch", interactive=False)
            with gr.Accordion("Citations", open=True):
                citations = gr.HTML(elem_id="citations")
            with gr.Row():
                download_md = gr.DownloadButton("Download brief (Markdown)", interactive=False, elem_id="download-md")
                download_json = gr.DownloadButton("Download JSON", interactive=False, elem_id="download-json")
            with gr.Accordion("Correct the labels and save as an example", open=False, elem_id="teach"):
                teach_narratives = gr.CheckboxGroup(narratives, label="Narratives in this post (none = benign)", elem_id="teach-narratives")
                teach_tactics = gr.CheckboxGroup(tactics, label="Techniques in this post", elem_id="teach-tactics")
                for_eval = gr.Checkbox(label="Also add it to my eval set", value=False)
                save = gr.Button("Save as labelled example", elem_id="save-example")
                saved = gr.Markdown(elem_id="saved")
            outputs = [chatbot, post, highlight, citations, batch, download_md, download_json, teach_narratives, teach_tactics, saved, state]
            submit.click(handlers.submit, [post, chatbot, several, state, mode], outputs)
            post.submit(handlers.submit, [post, chatbot, several, state, mode], outputs)
            save.click(handlers.save_example, [state, teach_narratives, teach_tactics, for_eval], saved)

        with gr.Tab("Narratives and tactics", id="browse"):
            options = handlers.card_options("")
            search = gr.Textbox(label="Search cards (English or Chinese)", elem_id="card-search")
            picker = gr.Dropdown(options, value=options[0][1] if options else None, label="Card", elem_id="card-picker")
            card = gr.Markdown(handlers.show_card(options[0][1] if options else None), elem_id="card")
            search.submit(handlers.search_cards, search, [picker, card])
            picker.change(handlers.show_card, picker, card)

        with gr.Tab("Examples and quiz", id="learn"):
            gr.Markdown("### Annotated examples (all constructed). Click a row to analyse it.")
            gallery = gr.Dataframe(
                value=handlers.gallery_rows(), headers=["id", "lang", "narratives", "text"], interactive=False,
                elem_id="gallery", max_height=320,
            )
            gallery_answer = gr.Markdown(elem_id="gallery-answer")
            gallery.select(handlers.analyse_row, None, gallery_answer)
            gr.Markdown("### Quiz")
            quiz = gr.State({"asked": 0, "right": 0})
            score = gr.Markdown(score_line({}), elem_id="quiz-score")
            question = gr.Markdown(elem_id="quiz-post")
            quiz_narratives = gr.CheckboxGroup(
                [*narratives, ("No known narrative", "none")], label="Narratives", elem_id="quiz-narratives"
            )
            quiz_tactics = gr.CheckboxGroup(tactics, label="Techniques", elem_id="quiz-tactics")
            with gr.Row():
                new = gr.Button("New post", elem_id="quiz-new")
                check = gr.Button("Check my answer", variant="primary", elem_id="quiz-check")
            reveal = gr.Markdown(elem_id="quiz-reveal")
            new.click(handlers.new_question, quiz, [quiz, question, quiz_narratives, quiz_tactics, reveal])
            check.click(handlers.check_answer, [quiz, quiz_narratives, quiz_tactics], [quiz, reveal, score])

        gr.api(handlers.api_analyze, api_name=API_NAME, api_description="Analyse one post; returns the ask --json object.")
    return demo
