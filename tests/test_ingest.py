"""Ingesting reports: real PDFs made here, page numbers in citations, bad files change nothing."""

import pytest
from typer.testing import CliRunner

from assistant import Assistant, Settings
from assistant.cli import app
from assistant.ingest import IngestError, read_sections
from pdfs import make_pdf

runner = CliRunner()

PAGE_ONE = "Introduction. This test report studies online posts about cotton harvesting in several regions."
PAGE_TWO = (
    "Findings. Accounts in the network claimed that combine harvesters pick all the cotton, "
    "so no worker could be forced to pick it, and that sanctions on cotton only hurt farmers."
)
PAGE_THREE = "Annex. Methods and the list of accounts reviewed, with dates of collection."


@pytest.fixture
def assistant(mini_corpus, tmp_path):
    return Assistant(Settings(data_dir=tmp_path / "data", corpus_dir=mini_corpus))


def test_pdf_pages_reach_the_citations(assistant, tmp_path):
    pdf = make_pdf(tmp_path / "report.pdf", [PAGE_ONE, PAGE_TWO, PAGE_THREE], title="Cotton Findings Report")
    report = assistant.ingest([pdf])
    assert report.changed and report.counts["passages"] >= 5
    answer = assistant.ask("Machines pick all the cotton so forced labour is impossible, and the sanctions hurt the farmers.")
    ingested = [c for c in answer.citations if c.origin == "ingested"]
    assert ingested, answer.citations
    top = ingested[0]
    assert top.title == "Cotton Findings Report"
    assert top.locator == "p. 2"
    assert "combine harvesters" in top.text
    assert f"[{top.id}]" in answer.answer
    assert not any("list of accounts reviewed" in c.text for c in ingested)  # the annex is off topic


def test_retrieval_ranks_by_similarity_and_drops_the_unrelated(assistant, tmp_path):
    """Chroma reports cosine distance; the threshold is on similarity, so the closest passage always passes."""
    assistant.ingest([make_pdf(tmp_path / "report.pdf", [PAGE_ONE, PAGE_TWO, PAGE_THREE])])
    retriever = assistant.analyzer.retriever
    vectors = assistant.embeddings.encode([PAGE_TWO, "Recipe: lamb skewers with cumin at a Kashgar night market."])
    same, unrelated = retriever.search_many(vectors.tolist(), 4, assistant.settings.matching.min_passage_similarity)
    assert same[0][0].page_content.startswith("Findings.") and same[0][1] > 0.95
    assert [s for _, s in same] == sorted((s for _, s in same), reverse=True)
    assert all(s >= assistant.settings.matching.min_passage_similarity for _, s in same)
    assert not [doc.page_content for doc, _ in unrelated if doc.metadata.get("origin") == "ingested"]
    assert retriever.search(vectors[0].tolist(), 4, 0.25) == same


def test_ingesting_keeps_the_fitted_matcher_and_saving_an_example_refits_it(assistant, tmp_path):
    before = assistant.analyzer.matcher
    cached = sorted((assistant.settings.data_dir / "cache").glob("matcher-*.npz"))
    assistant.ingest([make_pdf(tmp_path / "report.pdf", [PAGE_ONE, PAGE_TWO])])
    assert sorted((assistant.settings.data_dir / "cache").glob("matcher-*.npz")) == cached  # not refitted
    assert assistant.analyzer.matcher.threshold == before.threshold
    assistant.add_example("Constructed: the cotton sanctions are a lie and machines pick everything.", ["cotton-is-machine-picked"], [])
    refitted = sorted((assistant.settings.data_dir / "cache").glob("matcher-*.npz"))
    assert len(refitted) == 1 and refitted != cached


def test_ingested_passages_survive_a_rebuild(assistant, tmp_path):
    pdf = make_pdf(tmp_path / "report.pdf", [PAGE_ONE, PAGE_TWO])
    first = assistant.ingest([pdf])
    again = assistant.build_index(force=True)
    assert again.counts["passages"] == first.counts["passages"]
    assert again.embedded == 0  # every vector reused by content hash


def test_markdown_html_and_text_sections(tmp_path):
    md = tmp_path / "notes.md"
    md.write_text("# Report\nIntro text.\n## Findings\nThe finding text.\n")
    html = tmp_path / "page.html"
    html.write_text("<html><head><title>Page</title><script>alert(1)</script></head><body><h2>Part A</h2><p>Visible text</p></body></html>")
    txt = tmp_path / "plain.txt"
    txt.write_text("First paragraph.\n\nSecond paragraph.\n")
    assert [(s.locator, s.text) for s in read_sections(md)[1]] == [
        ("section 'Report'", "Intro text."),
        ("section 'Findings'", "The finding text."),
    ]
    title, sections = read_sections(html)
    assert title == "Page"
    assert [(s.locator, s.text) for s in sections] == [("section 'Part A'", "Visible text")]
    assert [s.locator for s in read_sections(txt)[1]] == ["para. 1", "para. 2"]


def test_a_hash_line_in_a_markdown_code_fence_is_not_a_heading(tmp_path):
    md = tmp_path / "howto.md"
    md.write_text(
        "# Collection\nWe gathered posts.\n\n```bash\n# install the scraper first\npip install scraper\n```\n\n"
        "~~~\n## not a heading either\n~~~\n## Findings\nThe finding text:\t10\u00a0000 posts.\n"
    )
    title, sections = read_sections(md)
    assert title == "Collection"
    assert [s.locator for s in sections] == ["section 'Collection'", "section 'Findings'"]
    assert "# install the scraper first" in sections[0].text and "## not a heading either" in sections[0].text
    assert sections[0].text.startswith("We gathered posts.\n\n")  # paragraphs stay apart for the chunker
    assert sections[1].text == "The finding text: 10 000 posts."  # a tab or no-break space still parts words


def test_html_scripts_styles_and_markup_never_reach_passages(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title> Network\n Report </title><style>body { color: red }</style>"
        "<script>document.write('HEAD-SCRIPT')</script></head><body>"
        "<p>Opening words.</p><script>var secret = 'BODY-SCRIPT';</script><style>.x { content: 'BODY-STYLE' }</style>"
        "<noscript>NOSCRIPT</noscript><template>TEMPLATE</template><!-- COMMENT --><p hidden>HIDDEN</p>"
        "<header><h1>Summary</h1></header><p>Accounts <b>posted</b> in wa<i>ves</i>.</p>"
        "<h2>Method <small>(short)</small></h2><div>Before<p>middle</p>after</div>"
        "<svg><title>SVG-TITLE</title><text>SVG-TEXT</text></svg><h3>Annex</h3><p>First<p>Second<li>Item"
        "</body></html>"
    )
    title, sections = read_sections(page)
    assert title == "Network Report"
    assert [(s.locator, s.text) for s in sections] == [
        ("opening section", "Opening words."),
        ("section 'Summary'", "Accounts posted in waves."),
        ("section 'Method (short)'", "Before\n\nmiddle\n\nafter"),
        ("section 'Annex'", "First\n\nSecond\n\nItem"),
    ]
    text = " ".join(s.text for s in sections)
    for hidden in ("SCRIPT", "STYLE", "color", "secret", "NOSCRIPT", "TEMPLATE", "COMMENT", "HIDDEN", "SVG"):
        assert hidden not in text


@pytest.mark.parametrize(
    "markup, expected",
    [
        ("<h2>Unclosed <p>text here <div><h3>Sub</h3> more", [("section 'Unclosed'", "text here"), ("section 'Sub'", "more")]),
        ("\x00<<<>>> &&& </ <b", [("opening section", "<<<>>> &&&")]),
        ("<td><tr>cell</table></html></body><h2>Late</h2><p>after the end", [("opening section", "cell"), ("section 'Late'", "after the end")]),
    ],
)
def test_malformed_html_is_read_not_crashed_on(tmp_path, markup, expected):
    page = tmp_path / "broken.html"
    page.write_text(markup)
    sections = read_sections(page)[1]
    assert [s.locator for s in sections] == [locator for locator, _ in expected]
    assert all(part in s.text for s, (_, part) in zip(sections, expected))


def test_an_html_page_without_visible_text_gives_a_clear_error(tmp_path):
    page = tmp_path / "scripts.html"
    page.write_text("<html><head><title>Only a title</title></head><body><script>run()</script><!-- x --></body></html>")
    with pytest.raises(IngestError, match="scripts.html: no visible text found"):
        read_sections(page)


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("corrupt.pdf", lambda p: p.write_bytes(b"%PDF-1.7\n this is not really a pdf \x00\x01"), "not a readable PDF"),
        ("locked.pdf", lambda p: make_pdf(p, [PAGE_ONE], user_password="secret"), "encrypted with a password"),
        ("blank.pdf", lambda p: make_pdf(p, ["", ""]), "no extractable text"),
        ("zero.pdf", lambda p: p.write_bytes(b""), "the file is empty"),
        ("notes.docx", lambda p: p.write_bytes(b"PK\x03\x04"), "unsupported file type"),
    ],
)
def test_bad_files_give_a_clear_error_and_leave_the_index_alone(assistant, tmp_path, name, make, reason):
    good = make_pdf(tmp_path / "good.pdf", [PAGE_ONE, PAGE_TWO])
    assistant.ingest([good])
    before = assistant.store.manifest()
    bad = tmp_path / name
    make(bad)
    with pytest.raises(IngestError) as caught:
        assistant.ingest([good, bad])
    assert name in str(caught.value) and reason in str(caught.value)
    assert assistant.store.manifest() == before

    result = runner.invoke(
        app, ["--data-dir", str(assistant.settings.data_dir), "--corpus-dir", str(assistant.settings.corpus_dir), "ingest", str(bad)]
    )
    assert result.exit_code == 1
    assert name in result.output and reason in result.output and "the index was not changed" in result.output
    assert "Traceback" not in result.output
