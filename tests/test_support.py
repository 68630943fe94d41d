"""Citation support: a citation whose passage does not back its sentence is removed, with the
real embedder, and the citation contract still holds afterwards."""

from __future__ import annotations

import re

import pytest

from rag.config import EmbedderSettings, Settings
from rag.generate.citations import enforce_citations
from rag.generate.support import (
    attribute_uncited,
    check_support,
    lexical_share,
    support_scores,
)
from rag.types import Hit

GOUT = (
    "Colchicine, a nonsteroidal anti-inflammatory drug (NSAID) or a glucocorticoid is "
    "recommended as first-line therapy for a gout flare. Low-dose colchicine (1.2 mg followed "
    "by 0.6 mg one hour later) is preferred over high-dose colchicine because it is as "
    "effective with fewer gastrointestinal side effects."
)
HANDS = (
    "Hands should be rubbed with alcohol-based hand rub for 20 to 30 seconds, covering all "
    "surfaces of the hands and fingers."
)
AF = (
    "Oral anticoagulation with a direct oral anticoagulant is recommended for patients with "
    "atrial fibrillation and a CHA2DS2-VASc score of 2 or more in men or 3 or more in women."
)
# Paraphrases, as an LLM writes them: supported by GOUT but not copied from it.
PARAPHRASE = (
    "Low-dose colchicine is favoured over high doses since it is equally effective and "
    "causes fewer gut side effects."
)
REMOVE_BELOW = Settings().answer.support_remove_below


def hit(doc_id: str, text: str, rank: int) -> Hit:
    return Hit(f"{doc_id}#0", doc_id, text, 1.0 / rank, rank, title=doc_id.title())


HITS = [hit("gout", GOUT, 1), hit("hands", HANDS, 2), hit("af", AF, 3)]


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2, loaded once for the session."""
    from rag.index.embedder import load_embedder

    return load_embedder(EmbedderSettings())


def shown_numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


def assert_contract(cited) -> None:
    """Every [n] shown resolves to citations[n-1]; every citation is shown; numbered 1..m."""
    shown = set(shown_numbers(cited.bottom_line + "\n" + cited.answer))
    assert shown == set(range(1, len(cited.citations) + 1))
    assert [c.n for c in cited.citations] == list(range(1, len(cited.citations) + 1))


def test_a_paraphrase_of_its_passage_is_supported_and_a_wrong_passage_is_not(embedder):
    right, wrong_hands, wrong_af = support_scores(
        [(PARAPHRASE, GOUT), (PARAPHRASE, HANDS), (PARAPHRASE, AF)], embedder
    )
    assert right >= REMOVE_BELOW
    assert wrong_hands < REMOVE_BELOW and wrong_af < REMOVE_BELOW
    assert right > max(wrong_hands, wrong_af) + 0.15


def test_a_sentence_copied_from_its_passage_scores_full_support_without_embedding():
    copied = "Low-dose colchicine (1.2 mg followed by 0.6 mg one hour later) is preferred."
    # No embedder at all: the verbatim test alone decides (the extractive backend's case).
    assert support_scores(
        [("**Low-dose colchicine** is preferred over high-dose", GOUT)], None
    ) == [1.0]
    assert lexical_share(copied, GOUT) == 1.0


def test_an_unsupported_citation_is_removed_and_the_rest_renumbered(embedder):
    draft = (
        "Bottom line: Hands are rubbed with alcohol hand rub for 20 to 30 seconds [2][1].\n\n"
        f"{PARAPHRASE[:-1]} [1]. Anticoagulation is advised in atrial fibrillation with a high "
        "CHA2DS2-VASc score [3][2]."
    )
    cited = enforce_citations(draft, HITS)
    assert [c.doc_id for c in cited.citations] == ["hands", "gout", "af"]

    checked = check_support(cited, HITS, embedder, remove_below=REMOVE_BELOW)
    # The hand-rub sentence keeps only the hand passage; the paraphrase keeps gout; the AF
    # sentence keeps AF and loses the hand passage it did not come from.
    assert checked.bottom_line == (
        "Hands are rubbed with alcohol hand rub for 20 to 30 seconds [1]."
    )
    assert checked.answer == (
        f"{PARAPHRASE[:-1]} [2]. Anticoagulation is advised in atrial fibrillation with a high "
        "CHA2DS2-VASc score [3]."
    )
    assert [c.doc_id for c in checked.citations] == ["hands", "gout", "af"]
    assert_contract(checked)
    assert all(c.support is not None and c.support >= REMOVE_BELOW for c in checked.citations)


def test_each_clause_of_a_sentence_is_checked_against_the_passage_it_cites(embedder):
    # The extractive bottom line joins a table the chunker cut in two: each part's rows cite
    # their own chunk, and neither citation is lost because the other half is not in it.
    draft = (
        "Bottom line: Hands are rubbed with alcohol-based hand rub for 20 to 30 seconds, "
        "covering all surfaces of the hands and fingers [2]; oral anticoagulation with a direct "
        "oral anticoagulant is recommended for atrial fibrillation and a CHA2DS2-VASc score of 2 "
        "or more in men or 3 or more in women [3]."
    )
    checked = check_support(enforce_citations(draft, HITS), HITS, embedder, remove_below=REMOVE_BELOW)
    assert shown_numbers(checked.bottom_line) == [1, 2]
    assert [c.doc_id for c in checked.citations] == ["hands", "af"]
    # A clause citing the wrong passage still loses that citation.
    wrong = (
        "Bottom line: Hands are rubbed with alcohol hand rub for 20 to 30 seconds [2]; low-dose "
        "colchicine is preferred over high-dose colchicine [3]."
    )
    checked = check_support(enforce_citations(wrong, HITS), HITS, embedder, remove_below=REMOVE_BELOW)
    assert [c.doc_id for c in checked.citations] == ["hands"]


def test_a_reference_no_sentence_still_cites_is_dropped(embedder):
    draft = (
        "Bottom line: Colchicine is first-line therapy for a gout flare [2].\n\n"
        "Low-dose colchicine is preferred over high-dose colchicine [1][2]."
    )
    cited = enforce_citations(draft, HITS)  # [1] = gout, [2] = hands after renumbering
    assert [c.doc_id for c in cited.citations] == ["hands", "gout"]
    checked = check_support(cited, HITS, embedder, remove_below=REMOVE_BELOW)
    assert [c.doc_id for c in checked.citations] == ["gout"]
    assert checked.bottom_line == "Colchicine is first-line therapy for a gout flare."
    assert checked.answer == "Low-dose colchicine is preferred over high-dose colchicine [1]."
    assert_contract(checked)


def test_an_answer_whose_every_citation_is_unsupported_is_left_with_none(embedder):
    draft = "Bottom line: Bleach cures gout [2].\n\nApply bleach to the joint daily [3]."
    checked = check_support(
        enforce_citations(draft, HITS), HITS, embedder, remove_below=REMOVE_BELOW
    )
    assert checked.citations == ()
    assert shown_numbers(checked.bottom_line + checked.answer) == []


def test_lists_and_headings_survive_the_check_unchanged(embedder):
    draft = (
        "Bottom line: Colchicine is first-line therapy for a gout flare [1].\n\n"
        "### Dosing\n\n"
        "- Low-dose colchicine is preferred over high-dose colchicine [1]\n"
        "- Rub hands with alcohol-based hand rub for 20 to 30 seconds [2]"
    )
    cited = enforce_citations(draft, HITS)
    checked = check_support(cited, HITS, embedder, remove_below=REMOVE_BELOW)
    assert checked.answer == cited.answer  # every citation here is supported
    assert checked.answer.startswith("### Dosing\n\n- Low-dose")
    assert all(c.support >= REMOVE_BELOW for c in checked.citations)


def test_an_uncited_sentence_gets_the_passage_that_backs_it(embedder):
    """A small model often states what a passage says without the [n]: the pipeline adds it,
    but only where one passage clearly backs the sentence."""
    hits = [hit("hands", HANDS, 1), hit("gout", GOUT, 2), hit("af", AF, 3)]
    draft = (
        f"Bottom line: {PARAPHRASE}\n\n### Anticoagulation\n"
        "Atrial fibrillation with a CHA2DS2-VASc score of 2 or more in men calls for a direct "
        "oral anticoagulant [3]. Regular exercise and a cheerful outlook help everyone."
    )
    attributed = attribute_uncited(
        draft, hits, embedder, min_support=Settings().answer.attribute_min_support
    )
    assert attributed.startswith(f"Bottom line: {PARAPHRASE[:-1]} [2].")
    assert "oral anticoagulant [3]." in attributed  # the model's own citation is kept as is
    assert "cheerful outlook help everyone." in attributed  # nothing backs it: no marker
    assert shown_numbers(attributed) == [2, 3]
    cited = check_support(
        enforce_citations(attributed, hits), hits, embedder, remove_below=REMOVE_BELOW
    )
    assert_contract(cited)
    assert [c.doc_id for c in cited.citations] == ["gout", "af"]


def test_a_sentence_off_the_question_is_not_attributed(embedder):
    """An echoed stray sentence gets no source even when a passage says it word for word."""
    hits = [hit("hands", HANDS, 1), hit("gout", GOUT, 2)]
    draft = "Hands should be rubbed with alcohol-based hand rub for 20 to 30 seconds."
    question = "Which colchicine dose is preferred for a gout flare?"
    minimum = Settings().answer.attribute_min_support
    assert attribute_uncited(draft, hits, embedder, min_support=minimum, question=question) == draft
    assert attribute_uncited(draft, hits, embedder, min_support=minimum).endswith("seconds [1].")


def test_a_heading_is_never_given_a_citation(embedder):
    """A heading that repeats a passage's title names a topic; a [n] after it would count as
    a claim and shift the numbering of the sentences below."""
    hits = [hit("gout", GOUT, 1)]
    heading = "### Low-dose colchicine for an acute gout flare"
    draft = f"Bottom line: {GOUT} [1]\n\n{heading}\n\n{GOUT} [1]"
    question = "Which colchicine dose is preferred for an acute gout flare?"
    minimum = Settings().answer.attribute_min_support
    attributed = attribute_uncited(draft, hits, embedder, min_support=minimum, question=question)
    assert f"\n{heading}\n" in attributed
