"""The citation contract: one test per malformed-citation case, plus a random-soup property."""

from __future__ import annotations

import random
import re

import pytest

from rag.generate.citations import (
    enforce_citations,
    is_refusal,
    parse_decision,
    strip_reference_list,
)
from rag.generate.prompts import REFUSAL_SENTENCE
from rag.text import split_sentences
from rag.types import Hit

PASSAGES = [
    "Colchicine is first-line therapy for a gout flare. Low-dose colchicine has fewer side effects.",
    "Allopurinol is the preferred urate-lowering agent. It is started at 100 mg daily.",
    "Blood pressure should be confirmed with home monitoring. A target below 130/80 is advised.",
    "Apixaban is preferred over warfarin in atrial fibrillation. It causes less intracranial bleeding.",
    "Hands should be rubbed with alcohol-based hand rub for 20 to 30 seconds.",
]


def make_hits(count: int = 5) -> list[Hit]:
    return [
        Hit(
            chunk_id=f"doc{i}#0",
            doc_id=f"doc{i}",
            text=PASSAGES[(i - 1) % len(PASSAGES)],
            score=1.0 / i,
            rank=i,
            title=f"Document {i}",
            section="Section",
            source="Test Society",
            year=2020 + i,
        )
        for i in range(1, count + 1)
    ]


def markers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


def doc_ids(cited) -> list[str]:
    return [citation.doc_id for citation in cited.citations]


def test_number_beyond_the_passages_is_removed():
    cited = enforce_citations("Colchicine treats flares [1]. Bleach cures gout [9].", make_hits(5))
    assert cited.answer == "Colchicine treats flares [1]. Bleach cures gout."
    assert doc_ids(cited) == ["doc1"]


def test_comma_group_becomes_adjacent_markers():
    cited = enforce_citations("Both drugs help [1,2]. Also [1, 2].", make_hits())
    assert cited.answer == "Both drugs help [1][2]. Also [1][2]."
    assert doc_ids(cited) == ["doc1", "doc2"]


@pytest.mark.parametrize("dash", ["-", "–"])
def test_range_expands_to_every_passage_in_it(dash):
    cited = enforce_citations(f"Several sources agree [1{dash}3].", make_hits())
    assert cited.answer == "Several sources agree [1][2][3]."
    assert doc_ids(cited) == ["doc1", "doc2", "doc3"]


def test_repeated_markers_collapse():
    cited = enforce_citations("Colchicine works [2][2] and is cheap [2, 2][2].", make_hits())
    assert cited.answer == "Colchicine works [1] and is cheap [1]."
    assert doc_ids(cited) == ["doc2"]


def test_no_citations_gives_no_citation_list():
    cited = enforce_citations("Colchicine works. It is cheap.", make_hits())
    assert cited.citations == ()
    assert cited.answer == "Colchicine works. It is cheap."
    assert cited.bottom_line == "Colchicine works."


def test_marker_glued_inside_a_word_still_cites():
    cited = enforce_citations("Gout flare[4]s respond to colchicine.", make_hits())
    assert cited.answer == "Gout flares [1] respond to colchicine."
    assert doc_ids(cited) == ["doc4"]


def test_marker_glued_to_the_end_of_a_word_gets_a_space():
    cited = enforce_citations("Colchicine works[1].", make_hits())
    assert cited.answer == "Colchicine works [1]."


def test_zero_negative_and_huge_numbers_leave_no_trace():
    text = "Colchicine works [0]. Allopurinol [-1] lowers urate [99999999999999999]. Fine [1]."
    cited = enforce_citations(text, make_hits())
    assert cited.answer == "Colchicine works. Allopurinol lowers urate. Fine [1]."
    assert "[]" not in cited.answer and "  " not in cited.answer


def test_empty_group_at_line_start_and_in_parentheses_leaves_no_trace():
    cited = enforce_citations("[7] Colchicine works ([8]) well [1].", make_hits())
    assert cited.answer == "Colchicine works well [1]."


def test_renumbering_follows_first_use():
    cited = enforce_citations(
        "Apixaban is preferred [3]. Colchicine works [1]. Again [3].", make_hits()
    )
    assert cited.answer == "Apixaban is preferred [1]. Colchicine works [2]. Again [1]."
    assert [c.n for c in cited.citations] == [1, 2]
    assert doc_ids(cited) == ["doc3", "doc1"]
    assert cited.citations[0].chunk_id == "doc3#0"
    assert cited.citations[0].year == 2023


def test_uncited_passages_are_not_listed():
    cited = enforce_citations("Only one source matters [2].", make_hits(5))
    assert doc_ids(cited) == ["doc2"]


def test_passage_and_source_labels_are_citations():
    cited = enforce_citations(
        "Colchicine works [Passage 2]. So does rest [Source 1]. And [Passages 1 and 3].",
        make_hits(),
    )
    assert cited.answer == "Colchicine works [1]. So does rest [2]. And [2][3]."
    assert doc_ids(cited) == ["doc2", "doc1", "doc3"]


def test_bottom_line_is_extracted_and_numbered_with_the_body():
    text = "**Bottom line:** Apixaban is preferred [4].\n\nIt causes less bleeding [4][1]."
    cited = enforce_citations(text, make_hits())
    assert cited.bottom_line == "Apixaban is preferred [1]."
    assert "Bottom line" not in cited.answer
    assert cited.answer == "It causes less bleeding [1][2]."
    assert doc_ids(cited) == ["doc4", "doc1"]


def test_bottom_line_falls_back_to_the_first_sentence():
    cited = enforce_citations(
        "### Treatment\n\nColchicine works [1]. It is cheap [2].", make_hits()
    )
    assert cited.bottom_line == "Colchicine works [1]."
    assert cited.answer.startswith("### Treatment")


def test_model_written_reference_list_is_stripped():
    text = (
        "Bottom line: Colchicine works [1].\n\nIt is cheap [2].\n\n"
        "### References\n1. Document 1, Test Society, 2021\n2. Document 2, Test Society, 2022"
    )
    cited = enforce_citations(text, make_hits())
    assert cited.answer == "It is cheap [2]."
    assert "Test Society" not in cited.answer


def test_trailing_bracketed_reference_entries_are_stripped():
    text = "Colchicine works [1].\n\n[1] Document 1 (2021)\n[2] Document 2 (2022)"
    cited = enforce_citations(text, make_hits())
    assert cited.answer == "Colchicine works [1]."
    assert doc_ids(cited) == ["doc1"]


def test_sources_line_is_stripped_but_a_sources_sentence_is_kept():
    assert (
        strip_reference_list("Colchicine works [1].\n\nSources: [1], [2]")
        == "Colchicine works [1]."
    )
    prose = "Intro.\nSources of infection include soil and water [1]."
    assert strip_reference_list(prose) == prose


@pytest.mark.parametrize(
    "line, decision",
    [
        ("Decision: yes", "yes"),
        ("Decision: Yes.", "yes"),
        ("DECISION: NO", "no"),
        ("**Decision:** maybe", "maybe"),
        ("Answer: Yes.", "yes"),
        ("Final answer: **No**", "no"),
        ("Decision - maybe [2]", "maybe"),
        ("Decision: inconclusive", "maybe"),
    ],
)
def test_decision_line_is_parsed_and_removed(line, decision):
    text, parsed = parse_decision(f"Colchicine works [1].\n\n{line}\n")
    assert parsed == decision
    assert text == "Colchicine works [1]."


def test_answer_prose_is_not_mistaken_for_a_decision():
    text = "Answer: yes, colchicine works in most patients [1].\nIt is cheap [2]."
    assert parse_decision(text) == (text, None)


def test_enforce_citations_reports_the_decision():
    cited = enforce_citations("Bottom line: It helps [2].\n\nDecision: Yes.", make_hits())
    assert cited.decision == "yes"
    assert "Decision" not in cited.answer + cited.bottom_line


def test_refusal_is_recognised_however_decorated():
    assert is_refusal(REFUSAL_SENTENCE)
    assert is_refusal(f"Bottom line: **{REFUSAL_SENTENCE}**\n\nDecision: maybe")
    assert is_refusal("")
    assert not is_refusal("Colchicine is first-line therapy for a gout flare [1].")
    long_answer = (
        "Colchicine works [1]. " * 20 + "The passages do not answer this question for children."
    )
    assert not is_refusal(long_answer)


def test_quote_is_the_passage_sentence_that_matches_the_claim():
    cited = enforce_citations("Low-dose colchicine causes fewer side effects [1].", make_hits())
    assert cited.citations[0].quote == "Low-dose colchicine has fewer side effects."


def test_quote_is_trimmed():
    long_passage = "Colchicine " + "works well in gout " * 40 + "."
    hit = Hit(chunk_id="x#0", doc_id="x", text=long_passage, score=1.0, rank=1)
    cited = enforce_citations("Colchicine works well [1].", [hit])
    assert len(cited.citations[0].quote) <= 300


def test_sentences_keep_markers_written_after_the_period():
    assert split_sentences("Colchicine works. [1] Allopurinol lowers urate, e.g. in gout [2].") == [
        "Colchicine works. [1]",
        "Allopurinol lowers urate, e.g. in gout [2].",
    ]


def _soup(rng: random.Random) -> str:
    words = ["Colchicine", "works", "flare", "gout", "dose", "urate", "bleeding", "risk"]
    inner = [
        lambda: str(rng.randint(-3, 12)),
        lambda: f"{rng.randint(0, 7)},{rng.randint(0, 7)}",
        lambda: f"{rng.randint(0, 7)}, {rng.randint(0, 99)}",
        lambda: f"{rng.randint(0, 4)}-{rng.randint(0, 9)}",
        lambda: f"{rng.randint(1, 6)}–{rng.randint(1, 6)}",
        lambda: f"Passage {rng.randint(0, 8)}",
        lambda: f"Source {rng.randint(1, 5)}",
        lambda: "",
        lambda: str(rng.randint(10**12, 10**15)),
    ]
    pieces = []
    if rng.random() < 0.5:
        pieces.append(f"Bottom line: {rng.choice(words)} [{rng.choice(inner)()}].\n\n")
    for _ in range(rng.randint(1, 12)):
        token = rng.choice(words)
        roll = rng.random()
        if roll < 0.35:
            token += f" [{rng.choice(inner)()}]"
        elif roll < 0.45:
            token = token[:2] + f"[{rng.choice(inner)()}]" + token[2:]
        elif roll < 0.55:
            token += f"[{rng.choice(inner)()}][{rng.choice(inner)()}]"
        pieces.append(token + rng.choice([" ", ". ", ", ", "\n"]))
    return "".join(pieces)


def test_random_marker_soup_always_resolves():
    """Whatever the model writes, every [n] left resolves to a citation and every citation
    is used; no empty brackets survive."""
    rng = random.Random(20240607)
    hits = make_hits(5)
    for _ in range(400):
        text = _soup(rng)
        cited = enforce_citations(text, hits)
        shown = markers(cited.answer) + markers(cited.bottom_line)
        numbers = [citation.n for citation in cited.citations]
        assert numbers == list(range(1, len(numbers) + 1)), text
        assert set(shown) == set(numbers), text
        assert "[]" not in cited.answer and "[]" not in cited.bottom_line, text
        # Every group is written as adjacent single numbers.
        assert not re.search(r"\[\d+\s*[,\-–]", cited.answer), text
        first_use = list(dict.fromkeys(shown_in_reading_order(cited)))
        assert first_use == numbers, text


def shown_in_reading_order(cited) -> list[int]:
    """Numbers as a reader meets them: bottom line first (when it was a separate line), then
    the body; the fallback bottom line is the body's first sentence, already in it."""
    body = markers(cited.answer)
    if cited.answer.startswith(cited.bottom_line) or not cited.bottom_line:
        return body
    return markers(cited.bottom_line) + body
