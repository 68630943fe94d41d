"""The shared text helpers (rag.text): one sentence splitter, one stemmer, one set of words;
and the BM25 index's tokens, which stored indexes depend on, unchanged."""

from __future__ import annotations

import pytest

from rag.config import ChunkSettings
from rag.index.lexical import TOKENIZER_VERSION, tokenize
from rag.ingest.chunking import chunk_document
from rag.text import (
    content_stems,
    content_words,
    plain,
    section_headings,
    split_prose_sentences,
    split_sentences,
    terms,
    words,
)
from rag.types import Document

# Cases the splitters of chunking.py and citations.py used to read differently, or both wrongly.
SPLITS = [
    # A dotted abbreviation ends no sentence: "i.v.", "b.i.d.", "e.g.", "C.I.".
    (
        "Give ceftriaxone 2 g i.v. Repeat daily for 7 days.",
        ["Give ceftriaxone 2 g i.v. Repeat daily for 7 days."],
    ),
    (
        "Take 500 mg b.i.d. With food if nauseated. Stop at 14 days.",
        ["Take 500 mg b.i.d. With food if nauseated.", "Stop at 14 days."],
    ),
    (
        "Give 2.5 mg, e.g. at night. Dr. Smith agreed (see Fig. 2). Stop if INR > 3. Recheck.",
        [
            "Give 2.5 mg, e.g. at night.",
            "Dr. Smith agreed (see Fig. 2).",
            "Stop if INR > 3.",
            "Recheck.",
        ],
    ),
    (
        "The bias was 5.6 mmHg (95% C.I. 5.1-6.1). Agreement was good.",
        ["The bias was 5.6 mmHg (95% C.I. 5.1-6.1).", "Agreement was good."],
    ),
    # A letter in brackets or after a slash is no initial: "(Class I).", "B/C.".
    (
        "Obtain an ECG within 10 minutes (Class I). Repeat it if pain recurs.",
        ["Obtain an ECG within 10 minutes (Class I).", "Repeat it if pain recurs."],
    ),
    (
        "Lower the starting dose in Child-Pugh B/C. Hold if SBP < 90.",
        ["Lower the starting dose in Child-Pugh B/C.", "Hold if SBP < 90."],
    ),
    # "min." ends a sentence: it was an abbreviation to chunking.
    (
        "Infuse over 30 min. Then check the blood pressure.",
        ["Infuse over 30 min.", "Then check the blood pressure."],
    ),
    # A bold lead opens a sentence; citations.py's splitter ran it into the previous one.
    (
        "Colchicine is first-line. **Dose:** 1.2 mg, then 0.6 mg an hour later.",
        ["Colchicine is first-line.", "**Dose:** 1.2 mg, then 0.6 mg an hour later."],
    ),
    # Markers written after the period stay with their sentence; chunking moved them on.
    (
        "Colchicine works. [1] Allopurinol lowers urate, e.g. in gout [2].",
        ["Colchicine works. [1]", "Allopurinol lowers urate, e.g. in gout [2]."],
    ),
    # Initials, "et al." and decimals never split; a possessive is no initial.
    (
        "J. Smith et al. found 2.5 mg enough. Onset in their 20's. Later it spreads.",
        ["J. Smith et al. found 2.5 mg enough.", "Onset in their 20's.", "Later it spreads."],
    ),
]


@pytest.mark.parametrize(("paragraph", "sentences"), SPLITS)
def test_the_one_splitter_reads_abbreviations_decimals_and_markers(paragraph, sentences):
    assert split_prose_sentences(paragraph) == sentences


def test_chunks_split_long_paragraphs_where_the_answerer_splits_sentences():
    """Chunking and the answerer share the splitter: a paragraph over the budget is cut
    exactly at the sentence ends the answerer sees, "i.v." and "(Class I)." included."""
    paragraph = " ".join(paragraph for paragraph, _ in SPLITS[:6])
    document = Document(id="d", title="", text=paragraph)
    count_words = lambda text: len(text.split())
    chunks = chunk_document(
        document, ChunkSettings(max_tokens=25, overlap_sentences=0), count_words
    )
    pieces = [sentence for chunk in chunks for sentence in split_prose_sentences(chunk.text)]
    assert pieces == split_prose_sentences(paragraph)
    assert "Give ceftriaxone 2 g i.v. Repeat daily for 7 days." in pieces


def test_markdown_sentences_keep_list_items_and_rows_whole():
    text = "## Dosing\n\nStart low. Go slow.\n\n- Apixaban 5 mg b.i.d. Reduce if frail.\n| a | b |\n|---|---|"
    assert split_sentences(text) == [
        "Start low.",
        "Go slow.",
        "- Apixaban 5 mg b.i.d. Reduce if frail.",
        "| a | b |",
    ]


def test_one_stemmer_meets_word_forms_the_light_stemmers_kept_apart():
    assert content_stems("contraindicated; discharged") == content_stems(
        "contraindications, discharge"
    )
    assert content_words("The patient's flares don't settle in 2 days") == [
        "patient", "flares", "settle", "2", "days",
    ]  # fmt: skip


def test_terms_keep_clinical_names_and_numbers_whole():
    assert terms("CHA2DS2-VASc of 2.5 mg/kg, can't") == [
        "cha2ds2-vasc",
        "of",
        "2.5",
        "mg/kg",
        "can't",
    ]


def test_plain_drops_emphasis_and_source_markers():
    assert plain("**Apixaban** _5 mg_ twice daily [3, 4].") == "Apixaban 5 mg twice daily."


def test_bm25_tokens_are_those_stored_indexes_were_built_with():
    """The lexical index's tokens are written into every index: the shared text module must
    not change them (a change would need a new TOKENIZER_VERSION and a rebuild)."""
    text = (
        "The Patients' haemorrhage: CHA2DS2-VASc ≥2 — give 2.5 mg apixaban b.i.d.; hospitalised, "
        "treatments, noradrenaline in paediatric oedema, tumours, litres, Müller_test café naïve "
        "doesn't and/or 1,000 IU. **C**onfusion"
    )
    assert TOKENIZER_VERSION == "words-v3+snowball+medical-adjectives"
    assert tokenize(text) == [
        "patient", "hemorrhag", "cha2ds2", "vasc", "2", "give", "2", "5", "mg", "apixaban", "b",
        "hospit", "treatment", "norepinephrin", "pediatr", "edema", "tumor", "liter", "müller",
        "test", "café", "naïv", "1", "000", "iu", "confus",
    ]  # fmt: skip


def test_non_joins_the_word_it_negates():
    # Guidelines write "nonsevere" and "non-severe"; a question about non-severe disease must not
    # match the severe branch on "severe".
    assert words("Non-severe CAP, nonsevere inpatient") == [
        "nonsevere",
        "cap",
        "nonsevere",
        "inpatient",
    ]
    assert "sever" not in content_stems("non-severe pneumonia")


def test_a_step_number_after_a_colon_or_an_arrow_ends_no_sentence():
    text = "Stepwise approach: → 1. Head of bed elevation 30 degrees; 2. Sedation. Reassess."
    assert split_prose_sentences(text) == [
        "Stepwise approach: → 1. Head of bed elevation 30 degrees; 2. Sedation.",
        "Reassess.",
    ]
    assert split_prose_sentences("The score is ≥ 2. Women score one more.") == [
        "The score is ≥ 2.",
        "Women score one more.",
    ]


def test_a_medical_adjective_meets_its_noun_in_the_index_and_in_the_answer():
    """A clinician asks about "fibrinolysis"; the guideline heads its list "Contraindications
    to Fibrinolytic Therapy". Snowball leaves the two apart; both sides now share the noun's
    stem, while "systemic", "robotic" and "antibiotics" keep theirs."""
    assert tokenize("fibrinolysis") == tokenize("fibrinolytic") == tokenize("fibrinolytics")
    assert tokenize("thrombotic") == tokenize("thrombosis")
    assert tokenize("ischemic") == tokenize("ischemia")
    assert tokenize("septic") == tokenize("sepsis")
    assert content_stems("fibrinolytic therapy") == content_stems("fibrinolysis therapy")
    assert tokenize("systemic") == tokenize("system")
    assert tokenize("robotic") == ["robot"]
    assert tokenize("antibiotic") == tokenize("antibiotics")


def test_a_heading_holding_the_path_separator_stays_one_heading():
    """"PE Likely (Score > 4.0)" is a heading; the answer's section must not read "4.0)"."""
    path = "Wells Criteria for PE > Interpretation > PE Likely (Score > 4.0)"
    assert section_headings(path) == ["Wells Criteria for PE", "Interpretation", "PE Likely (Score > 4.0)"]
    assert section_headings("") == []


def test_a_bold_initial_letter_does_not_cut_the_word():
    # CURB-65 and ABCD2 tables bold the letter the score's name takes: "**D**iabetes" is
    # diabetes to the answerer and to the coverage check, not "iabetes".
    assert content_stems("| **D**iabetes | **C**onfusion |") == content_stems("Diabetes Confusion")


def test_an_everyday_verb_done_again_is_how_a_question_is_said_not_a_term():
    """"When do the U&Es need rechecking?" was told the passages "do not mention
    'rechecking'", and "stent it or redo the CEA?" that no indexed source mentions 'redo'."""
    from rag.text import is_everyday_english

    for said in ("rechecking", "rechecked", "redo", "restarting"):
        assert is_everyday_english(said), said
    for term in ("resection", "refeeding", "rebleeding", "reperfusion", "renal"):
        assert not is_everyday_english(term), term
