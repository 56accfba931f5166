"""Real PDFs for the tests, made with fpdf2."""

from pathlib import Path

from fpdf import FPDF


def make_pdf(path: Path, pages: list[str], *, title: str = "", user_password: str | None = None) -> Path:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if user_password:
        pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path
