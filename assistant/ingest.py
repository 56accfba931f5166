"""Turn report files (PDF, Markdown, text, HTML) into cited passages.

Each passage is a LangChain `Document` whose metadata carries what a citation
needs: the source's title and publisher, and a locator (page for PDFs,
section heading for Markdown and HTML, paragraph for plain text).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from .errors import IngestError  # noqa: F401  (raised here; also imported from this module)
from .settings import IndexSettings

SUPPORTED = (".pdf", ".md", ".markdown", ".txt", ".html", ".htm")
MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Section:
    text: str
    locator: str


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, by heading; scripts and styles are dropped, never run."""

    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self._heading = ""
        self._buffer: list[str] = []
        self._skip = 0
        self._in_heading = False
        self._heading_text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self._skip += 1
        if re.fullmatch(r"h[1-3]", tag):
            self._flush()
            self._in_heading = True
            self._heading_text = []
        elif tag in self.BLOCK:
            self._buffer.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        if re.fullmatch(r"h[1-3]", tag) and self._in_heading:
            self._in_heading = False
            self._heading = " ".join("".join(self._heading_text).split())
        elif tag in self.BLOCK:
            self._buffer.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._skip:
            return
        if self._in_heading:
            self._heading_text.append(data)
        else:
            self._buffer.append(data)

    def _flush(self):
        text = _tidy("".join(self._buffer))
        if text:
            self.sections.append(Section(text, f"section '{self._heading}'" if self._heading else "opening section"))
        self._buffer = []

    def close(self):
        super().close()
        self._flush()


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
    title = ""
    sections: list[Section] = []
    heading, buffer = "", []
    for line in text.splitlines():
        match = re.match(r"^(#{1,3})\s+(.*)$", line)
        if match:
            body = _tidy("\n".join(buffer))
            if body:
                sections.append(Section(body, f"section '{heading}'" if heading else "opening section"))
            heading, buffer = match.group(2).strip(), []
            title = title or heading
        else:
            buffer.append(line)
    body = _tidy("\n".join(buffer))
    if body:
        sections.append(Section(body, f"section '{heading}'" if heading else "opening section"))
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
        parser = _HTMLText()
        parser.feed(text)
        parser.close()
        title, sections = " ".join(parser.title.split()), parser.sections
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
