"""Turn report files (PDF, Markdown, text, HTML) into cited passages.

Each passage is a LangChain `Document` whose metadata carries what a citation
needs: the source's title and publisher, and a locator (page for PDFs,
section heading for Markdown and HTML, paragraph for plain text).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import HTMLHeaderTextSplitter, MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from .errors import IngestError  # noqa: F401  (raised here; also imported from this module)
from .settings import IndexSettings

SUPPORTED = (".pdf", ".md", ".markdown", ".txt", ".html", ".htm")
MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Section:
    text: str
    locator: str


# Both splitters below record the heading path under these keys; the deepest heading (the last key in
# level order) is the passage's locator, as before: "section 'Findings'", or "opening section" before any.
_MARKDOWN_HEADINGS = [("#", "h1"), ("##", "h2"), ("###", "h3")]
_HTML_HEADINGS = [("h1", "h1"), ("h2", "h2"), ("h3", "h3")]

# Not visible on the page: skipped with everything inside, never run. The <title> is read on its own.
_NOT_VISIBLE = {"head", "title", "script", "style", "noscript", "template", "svg", "iframe", "object"}
# Inline markup: its text runs on in the paragraph around it. Any other element ends a paragraph.
_INLINE = {
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "font", "i", "img", "ins",
    "kbd", "label", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr",
}
_HEADING_TAGS = {tag for tag, _ in _HTML_HEADINGS}


def _locator(headings: dict[str, str]) -> str:
    heading = " ".join(headings[max(headings)].split()) if headings else ""
    return f"section '{heading}'" if heading else "opening section"


def _sections(parts: list[Document]) -> list[Section]:
    """Consecutive parts under the same heading path make one section, their paragraphs kept apart."""
    sections: list[Section] = []
    last: dict[str, str] | None = None
    for part in parts:
        text = _tidy(part.page_content)
        if not text:
            continue
        if sections and part.metadata == last:
            sections[-1] = Section(f"{sections[-1].text}\n\n{text}", sections[-1].locator)
        else:
            sections.append(Section(text, _locator(part.metadata)))
        last = part.metadata
    return sections


def _tidy(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read_pdf(path: Path) -> tuple[str, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            # Owner-password-only PDFs open with an empty password; anything else cannot be read.
            try:
                opened = reader.decrypt("")
            except Exception:  # pypdf raises several types for unsupported encryption
                opened = 0
            if not opened:
                raise IngestError(f"{path}: the PDF is encrypted with a password; decrypt it first")
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip()
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = _tidy(page.extract_text() or "")
            if text:
                sections.append(Section(text, f"p. {number}"))
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as error:
        raise IngestError(f"{path}: not a readable PDF ({type(error).__name__}: {error})") from None
    except Exception as error:  # a damaged file can fail anywhere inside the parser
        raise IngestError(f"{path}: not a readable PDF ({type(error).__name__}: {error})") from None
    if not sections:
        raise IngestError(f"{path}: the PDF has no extractable text (empty, or scanned images without a text layer)")
    return title, sections


def _read_markdown(text: str) -> tuple[str, list[Section]]:
    """Sections by `#`-`###` heading. LangChain's splitter skips fenced code (``` or ~~~), so a `# comment`
    in a shell or Python block is not a heading. Each part is one paragraph (`return_each_line` yields the
    blocks between blank lines), so paragraph breaks survive for the chunker.

    The splitter drops every character that is not printable: measured, "Name:<tab>Value 10<no-break
    space>000" came back "Name:Value 10000". Tabs, no-break and other Unicode spaces become plain spaces first.
    (It also drops format characters such as the zero-width non-joiner; the old splitter kept them.)"""
    text = re.sub(r"[^\S\n]", " ", text)
    parts = MarkdownHeaderTextSplitter(_MARKDOWN_HEADINGS, return_each_line=True).split_text(text)
    headed = next((part.metadata for part in parts if part.metadata), {})
    title = " ".join(headed[min(headed)].split()) if headed else ""  # the top heading of the first headed part
    return title, _sections(parts)


def _flat_page(soup) -> str:
    """The page's visible text as a flat run of <h1>-<h3> and <p> elements, in reading order."""
    from html import escape

    from bs4.element import NavigableString, PreformattedString

    out: list[str] = []
    run: list[str] = []  # the text of the paragraph or heading being read
    heading = None  # the heading being read: everything inside it is part of its text

    def end(tag: str = "p") -> None:
        text = "".join(run).strip()
        run.clear()
        if text:
            out.append(f"<{tag}>{escape(text, quote=False)}</{tag}>")

    stack: list = [(soup, False)]  # a loop, not recursion: unclosed tags can nest thousands deep
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctype, CDATA, processing instructions
                run.append(str(node))
        elif leaving:
            if node is heading:
                end(node.name)
                heading = None
            elif heading is None and node.name not in _INLINE:
                end()
        elif node.name == "br":
            run.append("\n")
        elif node.name not in _NOT_VISIBLE and not node.has_attr("hidden"):
            if heading is None and node.name not in _INLINE:
                end()  # the text before a block is a paragraph of its own
                if node.name in _HEADING_TAGS:
                    heading = node
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
    end()
    return "".join(out)


def _read_html(path: Path, text: str) -> tuple[str, list[Section]]:
    """Visible text of an HTML page by h1-h3 heading (LangChain's HTMLHeaderTextSplitter), and its <title>.

    BeautifulSoup parses the page with lxml's HTML parser (which closes unclosed <p>, <li> and <td> as
    browsers do and keeps text after "</html>"), and `_flat_page` hands the splitter the visible text only,
    as flat headings and paragraphs. That small walk is kept by hand for measured reasons: on small test
    pages the splitter alone (langchain-text-splitters 1.1)
    - kept the text of <script>, <style>, <noscript>, <template>, <svg> and comments in <body> as passage text;
    - reads only each element's own strings, so "Para <b>bold</b> tail" became "Para tail" then "bold",
      "<h2>H <i>it</i></h2>" the heading "H", and "<div>D1<p>inner</p>D2</div>" "D1 D2" then "inner";
    - scopes a heading to its parent element: after "<header><h1>T</h1></header>" the page had no heading;
    - reads only the first <body>, where lxml puts text after "</html>" in a second <html>;
    - costs time with the depth of each element: 8,000 unclosed <p>, nested by its html.parser, took 2.9 s.
    Tidying the tree in place with bs4's unwrap()/wrap() instead was quadratic (20,000 links in one <div>
    took 12.7 s); the walk is linear. Nothing is run: the parsers only parse, and scripts are skipped.
    The heading path the splitter gives is reduced to the deepest heading, the locator used before."""
    from bs4 import BeautifulSoup, FeatureNotFound

    try:
        soup = BeautifulSoup(text, "lxml")
        page_title = next((tag for tag in soup.find_all("title") if tag.find_parent("svg") is None), None)
        title = " ".join(page_title.get_text().split()) if page_title else ""
        parts = HTMLHeaderTextSplitter(_HTML_HEADINGS, return_each_element=True).split_text(_flat_page(soup))
    except FeatureNotFound:
        raise  # lxml is not installed: a broken install, not a broken page
    except Exception as error:  # a damaged page can fail anywhere inside the parsers
        raise IngestError(f"{path}: not readable HTML ({type(error).__name__}: {error})") from None
    # In element mode each heading also comes back as a part of its own: its text under its own path.
    # (A paragraph that only repeats its heading word for word goes with it.)
    parts = [part for part in parts if not (part.metadata and part.page_content == part.metadata[max(part.metadata)])]
    sections = _sections(parts)
    if not sections:
        raise IngestError(f"{path}: no visible text found (only markup, scripts or styles)")
    return title, sections


def _read_text(text: str) -> tuple[str, list[Section]]:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    first = " ".join(paragraphs[0].split()) if paragraphs else ""
    return (first if len(first) <= 160 else ""), [
        Section(_tidy(p), f"para. {index}") for index, p in enumerate(paragraphs, start=1)
    ]


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(f"{path}: not UTF-8 text; convert it to UTF-8 first") from None


def read_sections(path: Path) -> tuple[str, list[Section]]:
    """The document's title (may be empty) and its located sections."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise IngestError(f"{path}: unsupported file type '{suffix}' (supported: {', '.join(SUPPORTED)})")
    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise IngestError(f"{path}: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if suffix == ".pdf":
        return _read_pdf(path)
    text = _decode(path, path.read_bytes())
    if suffix in (".md", ".markdown"):
        title, sections = _read_markdown(text)
    elif suffix in (".html", ".htm"):
        title, sections = _read_html(path, text)
    else:
        title, sections = _read_text(text)
    if not sections:
        raise IngestError(f"{path}: no text found")
    return title, sections


def splitter(settings: IndexSettings) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name=settings.encoding,
        chunk_size=settings.chunk_tokens,
        chunk_overlap=min(settings.chunk_overlap, settings.chunk_tokens // 2),
        separators=["\n\n", "\n", "。", ". ", "！", "？", "; ", " ", ""],
    )


def load_document(
    path: Path,
    settings: IndexSettings,
    *,
    source_id: str | None = None,
    title: str | None = None,
    publisher: str = "",
    date: str = "",
    url: str = "",
) -> list[Document]:
    """Passages of one file, ready for the index. Raises IngestError with the file's name."""
    path = Path(path)
    found_title, sections = read_sections(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = source_id or f"doc-{digest[:12]}"
    metadata = {
        "source_id": source,
        "title": title or found_title or path.stem,
        "publisher": publisher,
        "date": date,
        "url": url,
        "file": path.name,
        "file_sha256": digest,
        "origin": "ingested",
    }
    chunker = splitter(settings)
    documents = []
    for section in sections:
        for chunk in chunker.split_text(section.text):
            documents.append(Document(page_content=chunk, metadata={**metadata, "locator": section.locator}))
    return documents
