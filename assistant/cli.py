"""The `narrative-lens` command: thin wrappers over `Assistant`, errors as one-line messages.

Every command catches `NarrativeLensError` (assistant/errors.py) and prints `error: <message>` on standard
error, exiting with the error's `exit_code` (2: an input or option was refused, 1: an operation failed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from .api import Assistant
from .corpus import load_knowledge_base, validate
from .errors import IndexWriteError, IngestError, NarrativeLensError, StoreUnavailable
from .index import describe
from .settings import Settings

app = typer.Typer(
    help="Narrative Lens: which known influence-operation narratives a post matches, why, and where that is documented.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    # The message is escaped: a file name or regex with [brackets] is printed as it is, not read as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _fail_on(error: NarrativeLensError, suffix: str = "") -> None:
    _fail(f"{error}{suffix}", error.exit_code)


def _os_message(error: OSError) -> str:
    """An OSError as a user reads it: "Permission denied: /path", without errno noise."""
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename else reason


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[Optional[Path], typer.Option(help="Index and ingested documents (env NARRATIVE_LENS_DATA_DIR).")] = None,
    corpus_dir: Annotated[Optional[Path], typer.Option(help="Knowledge base folder (env NARRATIVE_LENS_CORPUS_DIR).")] = None,
    chroma_url: Annotated[Optional[str], typer.Option(help="Use a Chroma server, http://host:port (env NARRATIVE_LENS_CHROMA_URL).")] = None,
) -> None:
    overrides = {k: v for k, v in {"data_dir": data_dir, "corpus_dir": corpus_dir, "chroma_url": chroma_url}.items() if v}
    try:
        ctx.obj = Settings(**overrides)
    except Exception as error:  # pydantic ValidationError from a bad environment variable
        _fail(f"invalid settings: {error}")


def _assistant(ctx: typer.Context) -> Assistant:
    return Assistant(ctx.obj)


def _read_post(text: str) -> str:
    if text != "-":
        return text
    raw = sys.stdin.buffer.read()
    # Invalid bytes arrive as lone surrogates, as they do in argv: the analysis replaces them with U+FFFD and
    # says so, rather than failing, so a pasted post is analysed as far as it can be.
    return raw.decode("utf-8", errors="surrogateescape")


@app.command()
def ask(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The post to analyse, or - to read it from standard input.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of Markdown.")] = False,
    llm: Annotated[
        Optional[bool],
        typer.Option("--llm/--offline", help="Force the LLM writer or the offline composer (default: LLM when configured)."),
    ] = None,
) -> None:
    """Analyse one post: matched narratives, techniques, context and citations."""
    post = _read_post(text)
    mode = None if llm is None else ("llm" if llm else "offline")
    try:
        answer = _assistant(ctx).ask(post, mode=mode)
    except NarrativeLensError as error:
        _fail_on(error)
    except OSError as error:  # the data directory cannot be written, for instance
        _fail(_os_message(error))
    if json_output:
        sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(answer.answer)


@app.command("validate")
def validate_command(ctx: typer.Context) -> None:
    """Check the knowledge base: unknown ids, broken references, duplicates, missing fields."""
    settings: Settings = ctx.obj
    kb = load_knowledge_base(settings.corpus_dir)
    problems = validate(kb)
    for problem in problems:
        typer.echo(str(problem))
    summary = (
        f"{len(kb.narratives)} narratives, {len(kb.tactics)} tactics, {len(kb.sources)} sources, "
        f"{len(kb.examples)} examples ({len(kb.examples_in('train'))} train, {len(kb.examples_in('dev'))} dev, "
        f"{len(kb.examples_in('test'))} test)"
    )
    if problems:
        err.print(f"{len(problems)} problem(s) in {settings.corpus_dir} ({summary})", highlight=False)
        raise typer.Exit(1)
    typer.echo(f"ok: {summary}")


def _progress():
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} items"), console=err, transient=True)


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Report files: .pdf, .md, .txt, .html.")],
    source: Annotated[Optional[str], typer.Option(help="Attach the passages to this source record id.")] = None,
    title: Annotated[Optional[str], typer.Option(help="Title to cite (default: the document's own).")] = None,
) -> None:
    """Add reports to the index; their passages are cited with page or section."""
    assistant = _assistant(ctx)
    if source and source not in assistant.kb.sources:
        _fail(f"unknown source id '{source}' (see corpus/sources/)")
    try:
        report = _indexing(lambda progress: assistant.ingest(paths, source_id=source, title=title, progress=progress))
    except (IngestError, StoreUnavailable) as error:
        _fail_on(error, "; the index was not changed")
    typer.echo(
        f"indexed {len(paths)} file(s): {report.counts.get('passages', 0)} passages in the index "
        f"({report.embedded} newly embedded) in {report.seconds:.1f}s"
    )


def _indexing(run):
    """Runs an index build with a progress bar; a write failure or a full disk leaves the previous index in use.
    IngestError and StoreUnavailable are passed on (for ingest, they mean nothing was changed)."""
    try:
        with _progress() as progress:
            task = progress.add_task("indexing", total=None)
            return run(lambda n: progress.advance(task, n))
    except (IngestError, StoreUnavailable):
        raise
    except IndexWriteError as error:
        _fail_on(error, "; the previous index is still in use")
    except NarrativeLensError as error:
        _fail_on(error)
    except OSError as error:
        _fail(f"{_os_message(error)}; the previous index is still in use")


@app.command()
def index(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-write every collection even if nothing changed.")] = False,
) -> None:
    """Build or update the index from the knowledge base (done automatically on first use)."""
    assistant = _assistant(ctx)
    try:
        report = _indexing(lambda progress: assistant.build_index(force=rebuild, progress=progress))
    except NarrativeLensError as error:  # the store is unreachable
        _fail_on(error)
    state = "built" if report.changed else "up to date"
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    typer.echo(f"index {state} in {describe(assistant.settings)}: {counts}; {report.embedded} embedded, {report.seconds:.1f}s")


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="JSON Lines: {id, text, narratives, tactics?, lang?} per line.")],
    mode: Annotated[str, typer.Option(help="offline, or llm (needs an endpoint).")] = "offline",
    json_output: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Write report.md, report.html, plots and metrics.json here.")] = None,
    cv: Annotated[Optional[int], typer.Option("--cv", help="K-fold cross-validation using the dataset as the knowledge base.")] = None,
    workers: Annotated[int, typer.Option(help="Offline eval spread over this many processes.")] = 1,
    perturb: Annotated[bool, typer.Option("--perturb", help="Also rewrite each matched post with evasion tricks (filler, emoji, spaced letters, reversed text, leetspeak) and report how many matches survive.")] = False,
) -> None:
    """Score the assistant on labelled posts: F1, top-1, benign false positives, citations, latency."""
    from .evaluation import cross_validate, evaluate, evaluate_parallel, load_dataset
    from .evaluation.report import write_report

    if mode not in ("offline", "llm"):
        _fail(f"unknown mode '{mode}' (offline or llm)", code=2)
    if mode == "llm":
        from .explain.llm import llm_configured

        if not llm_configured():
            _fail("--mode llm needs an LLM endpoint; none is configured (set OPENAI_API_KEY or OPENAI_BASE_URL)", code=2)
        if cv:
            _fail("--cv runs offline only", code=2)
    assistant = _assistant(ctx)
    known = None if cv else set(assistant.kb.narratives)
    try:
        examples = load_dataset(dataset, known)
    except NarrativeLensError as error:
        _fail_on(error)
    labels = sorted({n for e in examples for n in e.narratives} | (set() if cv else set(assistant.kb.narratives)))
    show = not json_output and sys.stderr.isatty() or len(examples) >= 200
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True, disable=not show) as progress:
            task = progress.add_task("evaluating", total=len(examples))
            advance = lambda n: progress.advance(task, n)  # noqa: E731
            if cv:
                summary, answers = cross_validate(ctx.obj, examples, labels, cv, progress=advance)
            elif workers > 1 and mode == "offline":
                summary, answers = evaluate_parallel(ctx.obj, examples, labels, workers, progress=advance)
            else:
                summary, answers = evaluate(assistant, examples, labels, progress=advance, mode=mode)
    except NarrativeLensError as error:
        _fail_on(error)
    except OSError as error:
        _fail(_os_message(error))
    summary["mode"] = mode
    summary["dataset"] = str(dataset)
    if perturb:
        from .evaluation.perturb import perturbation_survival

        analyse = lambda texts: [[n.id for n in a.narratives] for a in assistant.ask_many(texts)]  # noqa: E731
        summary["perturb"] = perturbation_survival(analyse, examples)
    failed = summary["errors"]
    if failed["n"]:
        first = failed["examples"][0]
        err.print(
            f"warning: {failed['n']} example(s) ended in an error and were not scored (first, {first['id']}: {first['error']})",
            highlight=False, markup=False, soft_wrap=True,
        )
    if out:
        title = f"Narrative Lens eval: {dataset.name} ({mode}{', ' + str(cv) + '-fold CV' if cv else ''})"
        written = write_report(out, summary, examples, answers, title)
        err.print(f"report written to {out} ({', '.join(p.name for p in written)})", highlight=False)
    if json_output:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        from .evaluation.report import metric_rows

        for name, value in metric_rows(summary):
            typer.echo(f"{name:<28} {value}")
    if failed["n"] and not summary["n"]:
        raise typer.Exit(1)  # every example failed: nothing was scored


@app.command("eval-techniques")
def eval_techniques(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="SemEval-2021 Task 6 subtask-1 file, e.g. ../shared/data/semeval2021-task6/dev_set_task1.txt")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    spans: Annotated[bool, typer.Option("--spans", help="Also score task-2 style spans on the matching *_task2.txt file.")] = False,
) -> None:
    """Score technique detection on SemEval-2021 Task 6, beside baselines computed on the same file."""
    from .evaluation.techniques import format_table, score_spans, score_techniques

    assistant = _assistant(ctx)
    try:
        result = score_techniques(assistant, path)
        span_result = None
        if spans:
            task2 = path.with_name(path.name.replace("_task1", "_task2"))
            span_result = score_spans(assistant, task2)
    except NarrativeLensError as error:
        _fail_on(error)
    if json_output:
        if span_result is not None:
            result = {**result, "spans": span_result}
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    typer.echo(format_table(result, span_result))


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but localhost needs --auth.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    auth: Annotated[Optional[str], typer.Option(help="user:password required to open the app (env NARRATIVE_LENS_AUTH).")] = None,
) -> None:
    """Start the chat app in the browser (offline by default)."""
    from .app.server import serve as run_server

    assistant = _assistant(ctx)
    try:
        typer.echo(f"Narrative Lens is starting on http://{host}:{port} ...")
        run_server(assistant, host=host, port=port, auth=auth)
    except NarrativeLensError as error:
        _fail_on(error)
    except OSError as error:
        _fail(f"cannot listen on {host}:{port}: {error.strerror or error}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
