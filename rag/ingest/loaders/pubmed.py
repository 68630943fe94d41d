"""XML articles: PubMed (PubmedArticleSet / PubmedArticle: title, abstract sections, journal,
year, DOI) and PMC JATS (<article>: abstract and body sections, lists, tables). One Document an
article, ids `pmid:<PMID>` and `pmc:PMC<n>`; an article that cannot be used is a problem and the
rest still load."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree

from rag.ingest.loaders.common import (
    IngestProblem,
    Unusable,
    clean,
    doi_from,
    pipe_table,
    read_text,
    year_from,
)
from rag.types import Document


def load_xml(path: Path, shown: str) -> Iterator[Document | IngestProblem]:
    text = read_text(path)
    try:
        root = ElementTree.fromstring(text.encode("utf-8"))
    except ElementTree.ParseError as error:
        line = error.position[0] if error.position else None
        raise Unusable(f"XML does not parse ({clean(str(error))})", line) from None
    strip_namespaces(root)
    if root.tag in {"PubmedArticleSet", "PubmedArticle"}:
        yield from _xml_articles(root, "PubmedArticleSet", "PubmedArticle", pubmed_document, shown)
    elif root.tag in {"article", "pmc-articleset"}:
        yield from _xml_articles(root, "pmc-articleset", "article", _pmc_document, shown)
    else:
        raise Unusable(
            f"XML root <{root.tag}> is neither PubMed (PubmedArticleSet) nor PMC JATS (<article>)"
        )


def _xml_articles(
    root: ElementTree.Element,
    set_tag: str,
    article_tag: str,
    to_document: Callable[[ElementTree.Element, str, int], Document],
    shown: str,
) -> Iterator[Document | IngestProblem]:
    """One Document per `article_tag` element of `root` (itself one, or a `set_tag` holding
    them), numbered from 1; an article that cannot be used becomes an IngestProblem and the
    rest still load. Unusable when a set holds no article."""
    articles = [root] if root.tag == article_tag else root.findall(article_tag)
    if not articles:
        raise Unusable(f"{set_tag} holds no {article_tag}")
    for number, article in enumerate(articles, start=1):
        try:
            yield to_document(article, shown, number)
        except Unusable as problem:
            yield IngestProblem(shown, problem.message, problem.line)


def strip_namespaces(root: ElementTree.Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.rsplit("}", 1)[1]


def _inner_text(element: ElementTree.Element | None) -> str:
    return clean("".join(element.itertext())) if element is not None else ""


def pubmed_document(article: ElementTree.Element, shown: str, number: int) -> Document:
    pmid = _inner_text(article.find("MedlineCitation/PMID"))
    label = f"PubmedArticle {number}" + (f" (PMID {pmid})" if pmid else "")
    journal_article = article.find("MedlineCitation/Article")
    if journal_article is None:
        raise Unusable(f"{label} has no <Article> element")
    title = _inner_text(journal_article.find("ArticleTitle")).rstrip()
    sections: list[str] = []
    for abstract_text in journal_article.findall("Abstract/AbstractText"):
        paragraph = _inner_text(abstract_text)
        if not paragraph:
            continue
        heading = clean(abstract_text.get("Label"))
        if heading:
            sections.append(f"## {heading.capitalize() if heading.isupper() else heading}")
        sections.append(paragraph)
    if not sections:
        raise Unusable(f"{label} has no abstract text; skipped")
    pub_date = journal_article.find("Journal/JournalIssue/PubDate")
    year = None
    if pub_date is not None:
        year = year_from(pub_date.findtext("Year")) or year_from(pub_date.findtext("MedlineDate"))
    doi = None
    for location in journal_article.findall("ELocationID"):
        if (location.get("EIdType") or "").lower() == "doi":
            doi = doi_from(location.text)
            break
    if doi is None:
        for article_id in article.findall("PubmedData/ArticleIdList/ArticleId"):
            if (article_id.get("IdType") or "").lower() == "doi":
                doi = doi_from(article_id.text)
                break
    return Document(
        id=f"pmid:{pmid}" if pmid else f"{shown}#{number}",
        title=title or (f"PubMed {pmid}" if pmid else label),
        text="\n\n".join(sections),
        source=_inner_text(journal_article.find("Journal/Title")),
        year=year,
        url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else None,
        doi=doi,
        origin=shown,
    )


def _pmc_document(article: ElementTree.Element, shown: str, number: int) -> Document:
    meta = article.find("front/article-meta")
    if meta is None:
        raise Unusable(f"article {number} has no <front><article-meta>")
    ids = {
        (article_id.get("pub-id-type") or "").lower(): clean(article_id.text)
        for article_id in meta.findall("article-id")
    }
    pmcid = ids.get("pmc") or ids.get("pmcid") or ids.get("pmcaid") or ""
    if pmcid and not pmcid.upper().startswith("PMC"):
        pmcid = f"PMC{pmcid}"
    title = _inner_text(meta.find("title-group/article-title"))
    journal = _inner_text(article.find("front/journal-meta/journal-title-group/journal-title"))
    journal = journal or _inner_text(article.find("front/journal-meta/journal-title"))
    year = None
    for pub_date in meta.findall("pub-date"):
        year = year_from(pub_date.findtext("year"))
        if year:
            break
    blocks: list[str] = []
    for abstract in meta.findall("abstract"):
        if abstract.get("abstract-type") in {"graphical", "teaser"}:
            continue
        blocks.append("## Abstract")
        _jats_blocks(abstract, 3, blocks)
    body = article.find("body")
    if body is not None:
        _jats_blocks(body, 2, blocks)
    text = "\n\n".join(block for block in blocks if block)
    if not any(not block.startswith("#") for block in blocks):
        raise Unusable(f"article {number}" + (f" ({pmcid})" if pmcid else "") + " has no text")
    doi = doi_from(ids.get("doi"))
    url = (
        f"https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"
        if pmcid
        else (f"https://doi.org/{doi}" if doi else None)
    )
    return Document(
        id=f"pmc:{pmcid}" if pmcid else f"{shown}#{number}",
        title=title or pmcid or f"{shown}#{number}",
        text=text,
        source=journal,
        year=year,
        url=url,
        doi=doi,
        origin=shown,
    )


def _jats_blocks(element: ElementTree.Element, level: int, blocks: list[str]) -> None:
    """Append Markdown blocks for the children of a JATS <abstract>, <body> or <sec>."""
    for child in element:
        tag = child.tag
        if tag == "sec":
            heading = _inner_text(child.find("title"))
            if heading:
                blocks.append("#" * min(level, 6) + " " + heading)
            _jats_blocks(child, level + 1, blocks)
        elif tag == "p":
            paragraph = _inner_text(child)
            if paragraph:
                blocks.append(paragraph)
        elif tag == "list":
            items = [_inner_text(item) for item in child.findall("list-item")]
            if any(items):
                blocks.append("\n".join(f"- {item}" for item in items if item))
        elif tag == "table-wrap":
            caption = _inner_text(child.find("caption"))
            if caption:
                blocks.append(caption)
            for table in child.iter("table"):
                rows = [
                    [
                        _inner_text(cell).replace("|", "\\|")
                        for cell in row
                        if cell.tag in {"td", "th"}
                    ]
                    for row in table.iter("tr")
                ]
                rows = [row for row in rows if any(row)]
                if rows:
                    blocks.append(pipe_table(rows))
        elif tag in {"fig", "boxed-text", "disp-quote"}:
            caption = _inner_text(child.find("caption")) if tag == "fig" else ""
            if caption:
                blocks.append(caption)
            elif tag != "fig":
                _jats_blocks(child, level, blocks)
