"""Loader benchmark: what the PDF and HTML loaders keep of documents as clinicians bring them.

HTML: the saved pages of tests/samples.py (cookie banners, navigation, "Related links"
asides, footers around a guideline article) read by rag's loader and by trafilatura's main
content extraction (when installed), scored on the article's passages kept, clutter leaked,
headings kept, ordered lists still numbered and tables still tables.

PDF: the generated guideline PDFs (bookmarked, not bookmarked, a table over a page break)
read by rag's loader and by pypdf's plain page text, scored on section headings found, dose
table rows kept as pipe rows under their header, running footers dropped, the sections the
chunker names and pages per second.

    .venv/bin/python evals/loaders.py            # prints Markdown tables
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _samples():
    spec = importlib.util.spec_from_file_location("samples", REPO / "tests" / "samples.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["samples"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _flat(text: str) -> str:
    return " ".join(text.split())


def rag_html(path: Path) -> str:
    from rag.ingest.loaders import load_file

    (document,) = list(load_file(path))
    return document.text


def trafilatura_html(path: Path) -> str:
    """trafilatura's Markdown of the main content (tables and formatting on, comments off;
    minimum extracted size lowered so short pages are not handed to its baseline)."""
    import trafilatura
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "min_extracted_size", "1")
    config.set("DEFAULT", "extraction_timeout", "0")
    text = trafilatura.extract(
        path.read_text(encoding="utf-8"),
        output_format="markdown",
        include_tables=True,
        include_formatting=True,
        include_comments=False,
        config=config,
    )
    # Undo Markdown escapes (\<, \_) so passages compare as the page shows them.
    return re.sub(r"\\([\\`*_{}\[\]()#+\-.!<>|])", r"\1", text or "")


def score_html(page, text: str) -> dict[str, object]:
    flat = _flat(text)
    lines = [line.strip() for line in text.split("\n")]
    numbered = [f"{number}. {_flat(step)}" for number, step in enumerate(page.ordered_steps, 1)]
    return {
        "content": sum(_flat(passage) in flat for passage in page.content),
        "content_total": len(page.content),
        "clutter": sum(item in flat for item in page.clutter),
        "clutter_total": len(page.clutter),
        "headings": sum(heading in lines for heading in page.headings),
        "headings_total": len(page.headings),
        "steps": sum(step in lines for step in numbered),
        "steps_total": len(numbered),
        "table_rows": sum(row in lines for row in page.table_rows),
        "table_rows_total": len(page.table_rows),
    }


def html_report(folder: Path) -> str:
    samples = _samples()
    readers: dict[str, Callable[[Path], str]] = {"rag (html.parser + rules)": rag_html}
    try:
        import trafilatura  # noqa: F401

        readers["trafilatura 2 (markdown)"] = trafilatura_html
    except ImportError:
        print("trafilatura not installed: only rag's loader is measured", file=sys.stderr)
    rows = [
        (
            "| reader | page | passages kept | clutter leaked | headings | numbered steps | "
            "table rows | ms |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    totals: dict[str, dict[str, int]] = {}
    for page, path in samples.write_saved_pages(folder):
        for name, read in readers.items():
            started = time.perf_counter()
            text = read(path)
            elapsed = (time.perf_counter() - started) * 1000
            score = score_html(page, text)
            total = totals.setdefault(name, {})
            for key, value in score.items():
                total[key] = total.get(key, 0) + int(value)
            rows.append(
                f"| {name} | {page.name} | {score['content']}/{score['content_total']} | "
                f"{score['clutter']}/{score['clutter_total']} | "
                f"{score['headings']}/{score['headings_total']} | "
                f"{score['steps']}/{score['steps_total']} | "
                f"{score['table_rows']}/{score['table_rows_total']} | {elapsed:.1f} |"
            )
    for name, total in totals.items():
        rows.append(
            f"| **{name}** | all | {total['content']}/{total['content_total']} | "
            f"{total['clutter']}/{total['clutter_total']} | "
            f"{total['headings']}/{total['headings_total']} | "
            f"{total['steps']}/{total['steps_total']} | "
            f"{total['table_rows']}/{total['table_rows_total']} | |"
        )
    return "\n".join(rows)


def pypdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n\n".join((page.extract_text() or "").strip() for page in PdfReader(path).pages)


def rag_pdf(path: Path) -> str:
    from rag.ingest.loaders import load_file

    (document,) = list(load_file(path))
    return document.text


def chunk_sections(text: str) -> tuple[int, int]:
    """(chunks, distinct section names) the chunker makes of `text`."""
    from rag.config import Settings
    from rag.index.embedder import load_embedder
    from rag.ingest.chunking import chunk_document
    from rag.types import Document

    embedder = _embedder_cache.setdefault("e", load_embedder(Settings().embedder))
    chunks = chunk_document(
        Document(id="x", title="Guideline", text=text), Settings().chunking, embedder.count_tokens
    )
    return len(chunks), len({chunk.section for chunk in chunks})


_embedder_cache: dict[str, object] = {}


def pdf_report(folder: Path) -> str:
    samples = _samples()
    folder.mkdir(parents=True, exist_ok=True)
    pdfs = {
        "guideline, bookmarked (3 pages)": samples.write_guideline_pdf(folder / "bookmarked.pdf"),
        "guideline, no bookmarks (3 pages)": samples.write_guideline_pdf(
            folder / "plain.pdf", bookmarks=False
        ),
        "70-row table over 2 pages": samples.write_long_table_pdf(folder / "table.pdf"),
    }
    headings = [heading for _, heading, _ in samples.VORTAXIN_SECTIONS]
    rows = [
        (
            "| reader | PDF | headings as Markdown | table rows under header | footer lines left | "
            "chunks / sections named | pages/s |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    readers = {"pypdf page text (before)": pypdf_text, "rag (pdfplumber + outline)": rag_pdf}
    for label, path in pdfs.items():
        from pypdf import PdfReader

        pages = len(PdfReader(path).pages)
        for name, read in readers.items():
            started = time.perf_counter()
            for _ in range(3):
                text = read(path)
            seconds = (time.perf_counter() - started) / 3
            lines = [line.strip() for line in text.split("\n")]
            if "table" in label:
                expected_rows = ["| Weight (kg) | Gentamicin dose | Interval |"] + [
                    f"| {20 + row} | {(20 + row) * 7} mg | 24 h |" for row in range(70)
                ]
                found_headings = "-"
            else:
                expected_rows = ["| " + " | ".join(row) + " |" for row in samples.DOSE_TABLE]
                found = sum(
                    any(re.fullmatch(r"#{1,6} " + re.escape(h), line) for line in lines)
                    for h in headings
                )
                found_headings = f"{found}/{len(headings)}"
            header_at = lines.index(expected_rows[0]) if expected_rows[0] in lines else -1
            kept = (
                sum(row in lines[header_at:] for row in expected_rows[1:]) if header_at >= 0 else 0
            )
            footers = sum("page" in line.lower() and "guideline" in line.lower() for line in lines)
            chunks, sections = chunk_sections(text)
            rows.append(
                f"| {name} | {label} | {found_headings} | {kept}/{len(expected_rows) - 1} | "
                f"{footers} | {chunks} / {sections} | {pages / seconds:.1f} |"
            )
    return "\n".join(rows)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        print("## HTML: saved pages with clutter\n")
        print(html_report(Path(scratch) / "pages"))
        print("\n## PDF: generated guidelines\n")
        print(pdf_report(Path(scratch) / "pdfs"))


if __name__ == "__main__":
    main()
