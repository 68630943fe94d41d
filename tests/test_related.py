"""Related questions: built from sections that exist, kept only when the index answers them."""

from __future__ import annotations

import re
from pathlib import Path

from rag.related import heading_question, related_questions
from rag.types import Citation, Hit


def hit(doc_id: str, section: str, title: str = "Gout guideline") -> Hit:
    return Hit(chunk_id=f"{doc_id}#0", doc_id=doc_id, text="...", score=1.0, rank=1,
               title=title, section=section, source="ACR", year=2020)


def cite(doc_id: str, section: str) -> Citation:
    return Citation(n=1, doc_id=doc_id, chunk_id=f"{doc_id}#0", title="Gout guideline",
                    source="ACR", year=2020, url=None, doi=None, section=section, quote="")


def test_heading_question_names_the_guideline_and_keeps_acronyms():
    question = heading_question("t", "ACR", 2020, "Flare Management — ACR 2020 > Second-Line: IL-1 Inhibitors")
    assert question == "What does ACR 2020 say about second-line IL-1 inhibitors for flare management?"
    # Headings that say what they answer become the question a clinician would ask.
    assert heading_question("t", "ACC/AHA", 2023, "Anticoagulation in AF — ACC/AHA 2023 > Bleeding Risk Assessment") == (
        "How is bleeding risk assessed for anticoagulation in AF?"
    )
    assert heading_question("t", "BTS", 2009, "Discharge — BTS 2009 > Discharge Criteria") == (
        "What are the discharge criteria?"
    )
    assert "CURB-65" in heading_question("t", "BTS", 2009, "Severity > CURB-65 Score")
    # "Recommendations for ..." and "Choice of ..." read as what they ask.
    af = "Anticoagulation in Atrial Fibrillation — ACC/AHA 2023"
    assert heading_question("t", "ACC/AHA", 2023, f"{af} > Recommendations for Oral Anticoagulation") == (
        "What does ACC/AHA 2023 recommend for oral anticoagulation?"
    )
    assert heading_question("t", "ACC/AHA", 2023, f"{af} > Choice of Anticoagulant") == (
        "Which anticoagulant is preferred for anticoagulation in atrial fibrillation?"
    )


def test_generic_or_empty_headings_give_no_question():
    assert heading_question("t", "ACR", 2020, "") is None
    assert heading_question("t", "ACR", 2020, "Guide > Overview") is None
    # A heading that is a branch's condition has no topic: "recommend on mmhg" asks nothing.
    ich = "Blood Pressure Management in Spontaneous ICH — AHA/ASA 2022 > Blood Pressure Targets"
    assert heading_question("t", "AHA/ASA", 2022, f"{ich} > SBP > 220 mmHg") is None
    assert heading_question("t", "ACC/AHA", 2018, "Statins > Age <= 75 Years") is None
    assert heading_question("t", "AHA/ASA", 2022, f"{ich} > SBP 150-220 mmHg (No Contraindication)") is None
    assert heading_question("t", "AHA/ASA", 2022, f"{ich} > Rationale") is None
    # Its values are left out of a heading that has a topic.
    renal = heading_question("t", "ACC/AHA", 2013, "Dosing > Renal Impairment (CrCl < 30 mL/min)")
    assert renal == "What does ACC/AHA 2013 say about renal impairment for dosing?"
    # A leaf naming its topic already is not followed by it again.
    timing = heading_question("t", "AHA/ASA", 2022, f"{ich} > Timing of Blood Pressure Management")
    assert timing == "When should blood pressure management start?"


def test_suggestions_skip_cited_sections_and_unanswerable_ones():
    cited = [cite("gout/flares", "Flares > Colchicine")]
    siblings = {
        "gout/flares": [
            hit("gout/flares", "Flares > Colchicine"),  # already used by the answer
            hit("gout/ult", "Urate Lowering > Allopurinol Dosing"),
            hit("gout/diet", "Lifestyle > Alcohol Intake"),
        ]
    }

    def retrieve(question: str) -> list[Hit]:
        # The index answers the allopurinol question but not the lifestyle one.
        if "allopurinol" in question:
            return [hit("gout/ult", "Urate Lowering > Allopurinol Dosing")]
        return [hit("other/doc", "Something else")]

    suggestions = related_questions(
        "What treats a gout flare?", [], cited, lambda doc_id: siblings.get(doc_id, []), retrieve
    )
    assert suggestions == ["How is allopurinol dosed for urate lowering?"]


def test_suggestions_are_limited_and_distinct():
    sections = [hit(f"g/{n}", f"Part > Topic Number {n}") for n in range(3)] * 2
    sections += [hit(f"g/{n}", f"Part > Topic Number {n}") for n in range(3, 10)]

    def retrieve(question: str) -> list[Hit]:
        number = re.search(r"number (\d+)", question).group(1)
        return [section for section in sections if section.doc_id == f"g/{number}"]

    cited = [cite("g/0", "Part > Topic Number 0")]
    suggestions = related_questions("q", [], cited, lambda doc_id: sections, retrieve, limit=4)
    assert len(suggestions) == 4
    assert len(set(suggestions)) == 4
    assert not any(suggestion.endswith("number 0?") for suggestion in suggestions)


def test_engine_answer_offers_related_questions_from_the_index(small_index: Path):
    from rag.answer import Engine
    from tests.conftest import settings_for

    engine = Engine.load(settings_for(small_index))
    answer = engine.ask("What is the first-line treatment for a gout flare?")
    assert not answer.abstained
    assert answer.related_questions
    for question in answer.related_questions:
        top = engine.search(question, k=3)
        assert top, question


# One guideline from the source the user asked for, and three from another source that say
# more about the section it is suggested from: unfiltered, they take every top place.
FILTERED_CORPUS = [
    {
        "id": "alpha/flare",
        "title": "Alpha Gout Guideline",
        "source": "Alpha Society",
        "year": 2022,
        "text": "# Alpha Gout Guideline\n\n## Flare Treatment\n\nColchicine, an NSAID or a "
        "glucocorticoid is recommended as first-line therapy for a gout flare.",
    },
    {
        "id": "alpha/urate",
        "title": "Alpha Gout Guideline",
        "source": "Alpha Society",
        "year": 2022,
        "text": "# Alpha Gout Guideline\n\n## Serum Urate Monitoring\n\nCheck the level "
        "every six months.",
    },
] + [
    {
        "id": f"beta/urate-{number}",
        "title": f"Beta Serum Urate Monitoring Statement {number}",
        "source": "Beta College",
        "year": 2015,
        "text": f"# Beta Serum Urate Monitoring Statement {number}\n\n## Serum Urate "
        "Monitoring\n\nSerum urate monitoring: monitor serum urate every three to six months "
        "while titrating urate-lowering therapy, and serum urate at least yearly once at the "
        "serum urate target.",
    }
    for number in range(1, 4)
]


def test_related_questions_are_checked_under_the_users_filters(tmp_path: Path):
    from rag.answer import Engine
    from rag.types import Document
    from tests.conftest import build_index, settings_for

    index = build_index(tmp_path / "index", [Document(**row) for row in FILTERED_CORPUS])
    engine = Engine.load(settings_for(index))
    question = "What is the first-line therapy for a gout flare?"

    for filters in ({"sources": ["Alpha"]}, {"min_year": 2020}):
        answer = engine.ask(question, **filters)
        assert not answer.abstained
        assert {hit.doc_id for hit in answer.retrieved} <= {"alpha/flare", "alpha/urate"}
        # The other section of the guideline read is offered: within the user's filters the
        # index answers it from that very section.
        urate = [text for text in answer.related_questions if "urate" in text.lower()]
        assert urate, (filters, answer.related_questions)
        assert "alpha/urate" in {hit.doc_id for hit in engine.search(urate[0], k=3, **filters)}
        # Unfiltered, the other source holds every top place: checked that way, the
        # suggestion would have been dropped.
        assert "alpha/urate" not in {hit.doc_id for hit in engine.search(urate[0], k=3)}
