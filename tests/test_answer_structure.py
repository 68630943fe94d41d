"""The answer a clinician reads keeps the evidence whole: one test per failure class of the
answer issue, on small guideline texts written for the tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.answer import Engine
from rag.config import Settings
from rag.converse import condense_deterministic
from rag.evaluate.metrics import auc, has_fact, readability_grade
from rag.generate.citations import enforce_citations
from rag.generate.extractive import ExtractiveGenerator, answer_type
from rag.generate.support import support_scores
from rag.generate.values import conditions, match, other_score, question_values
from rag.generate.wording import definitions, for_patient, is_sentence
from rag.retrieve import expand_sections, with_closest_of_document
from rag.types import Chunk, Hit, Turn

AF_DOSING = """\
#### DOAC Dosing and Adjustments
Standard dosing and criteria for dose reduction in non-valvular AF:

- **Apixaban:** Standard dose is 5 mg BID.
  - *Dose Reduction:* Reduce to 2.5 mg BID if the patient has **at least two** of the following characteristics: Age ≥ 80 years, Body weight ≤ 60 kg, or Serum creatinine ≥ 1.5 mg/dL.
- **Rivaroxaban:** Standard dose is 20 mg once daily with the evening meal.
  - *Dose Reduction:* Reduce to 15 mg once daily if CrCl ≤ 50 mL/min.
- **Edoxaban:** Standard dose is 60 mg once daily.
  - *Dose Reduction:* Reduce to 30 mg once daily if CrCl 15–50 mL/min.
"""
TIA_STATEMENT = """\
### Anticoagulation for Cardioembolism
- Warfarin remains an option for patients with a mechanical heart valve after a TIA.
- Apixaban dose adjustment after a TIA follows the cardioembolic source and renal function.
"""
SEVERITY_TABLE = """\
### Risk Stratification
| CURB-65 score | Risk | Site of care |
|---|---|---|
| 0–1 | Low | Home treatment |
| 2 | Moderate | Short inpatient stay or supervised outpatient treatment |
| 3–5 | High | Urgent hospital admission; assess for ICU at 4–5 |
"""
DISCHARGE_LIST = """\
## Clinical Stability for Discharge
Patients may be discharged when ALL of the following criteria are met:

1. Temperature < 37.5°C for at least 24 hours.
2. Heart rate < 100 bpm.
3. Respiratory rate < 24 breaths/min.
4. Adequate oral intake.
"""
NEWS_TREE = """\
### Response
```
NEWS2 score calculated
  → Score 5–6?
      → Urgent response within 60 minutes
  → Score ≥ 7?
      → Emergency response with continuous monitoring
```
"""


def hit(
    doc_id: str,
    text: str,
    rank: int,
    *,
    title: str,
    section: str = "",
    source: str = "",
    year: int | None = None,
) -> Hit:
    return Hit(
        chunk_id=f"{doc_id}#{rank}", doc_id=doc_id, text=text, score=1.0 / rank, rank=rank,
        title=title, section=section, source=source, year=year,
    )  # fmt: skip


def answer(question: str, hits: list[Hit], audience: str = "clinician"):
    draft = ExtractiveGenerator().generate(question, hits, audience=audience)
    assert not draft.refused
    return enforce_citations(draft.text, hits)


def demo_answer(demo_index: Path, question: str, history: tuple[Turn, ...] = ()):
    """The answer `rag ask` gives to `question` on the demo index (no related questions)."""
    engine = Engine.load(Settings().merged({"index": str(demo_index)}))
    return engine.ask(question, history=history, suggest_related=False)


def test_a_dose_keeps_the_dose_reduction_rule_nested_under_it():
    cited = answer(
        "What is the apixaban dose in atrial fibrillation?",
        [hit("af", AF_DOSING, 1, title="AF guideline", section="DOAC Dosing")],
    )
    assert "5 mg BID" in cited.bottom_line and "Reduce to 2.5 mg BID" in cited.bottom_line
    assert "Age ≥ 80 years, Body weight ≤ 60 kg" in cited.bottom_line
    # The body shows the nesting: the dose, the rule indented under it, under the list intro.
    assert "- Apixaban: Standard dose is 5 mg BID [1]." in cited.answer
    assert "  - Dose Reduction: Reduce to 2.5 mg BID" in cited.answer
    # Other drugs' doses do not pad the answer to an apixaban question.
    assert "Edoxaban" not in cited.answer and "Rivaroxaban" not in cited.answer


def test_a_caveat_about_another_drug_sharing_only_the_guidelines_topic_stays_out():
    caveat = (
        "### Antiarrhythmic Drugs\n- **Flecainide:** Must be combined with an AV nodal blocker "
        "to prevent 1:1 conduction of atrial flutter.\n"
    )
    title = "Guideline for Atrial Fibrillation"
    cited = answer(
        "What is the apixaban dose for stroke prevention in atrial fibrillation?",
        [
            hit("af", AF_DOSING, 1, title=title, section="DOAC Dosing"),
            hit("af-rhythm", caveat, 2, title=title, section="Rhythm Control"),
        ],
    )
    assert "Reduce to 2.5 mg BID" in cited.bottom_line
    # "prevent" and "atrial" are the question's words, but the guideline's topic and an
    # answer-type word: the flecainide caveat brings nothing the apixaban answer lacks.
    assert "Flecainide" not in cited.answer


def test_a_branch_answering_no_to_a_finding_the_question_reports_does_not_lead():
    tree = (
        "### ERCP Decision\n```\nAcute biliary pancreatitis confirmed\n"
        "  → Cholangitis present (fever, jaundice, RUQ pain)?\n"
        "      → YES → Urgent ERCP within 24 hours\n"
        "      → NO → Medical management, no ERCP needed\n```\n"
    )
    question = "Gallstone pancreatitis, T 39.2, bili rising, RUQ tender. Scope now or watch?"
    cited = answer(question, [hit("ap", tree, 1, title="Acute pancreatitis", section="ERCP")])
    assert "Urgent ERCP within 24 hours" in cited.bottom_line
    assert "no ERCP needed" not in cited.bottom_line
    # A patient without those findings is the NO branch's.
    calm = answer(
        "Gallstone pancreatitis, afebrile, no cholangitis, bili normal. Scope now or watch?",
        [hit("ap", tree, 1, title="Acute pancreatitis", section="ERCP")],
    )
    assert "no ERCP needed" in calm.bottom_line and "Urgent ERCP" not in calm.bottom_line


def test_a_statement_for_patients_without_what_the_question_reports_does_not_lead():
    etiology = (
        "### Etiology\n- In the absence of gallstones and/or significant alcohol use, serum "
        "triglyceride should be obtained and considered the etiology if > 1,000 mg/dL.\n"
        "- Early ERCP within 24 hours is recommended for gallstone pancreatitis with "
        "cholangitis.\n"
    )
    cited = answer(
        "Gallstone pancreatitis with cholangitis: which serum test should be obtained?",
        [hit("ap", etiology, 1, title="Acute pancreatitis", section="Etiology")],
    )
    assert cited.bottom_line.startswith("Early ERCP within 24 hours"), cited.bottom_line


def test_an_ascii_drawn_tree_is_read_as_a_tree():
    # IDSA draws its trees with "|" and "+-->": a connector-only line does not end the tree.
    tree = (
        "### Duration\n```\nComplicated UTI on effective therapy\n  |\n"
        "  +--> Any complicating factors? (Abscess, obstruction)\n        |\n"
        "        +--> YES --> Individualize duration (typically 10-14 days)\n        |\n"
        "        +--> NO --> Total duration: 7 days\n```\n"
    )
    from rag.generate.units import passage_units

    paths = [u.text for u in passage_units(hit("uti", tree, 1, title="cUTI"), 1) if u.kind == "path"]
    assert paths == [
        (
            "Complicated UTI on effective therapy → Any complicating factors? (Abscess, "
            "obstruction) → YES --> Individualize duration (typically 10-14 days); NO --> Total "
            "duration: 7 days"
        )
    ]


def test_the_table_row_matching_the_value_is_shown_with_its_header():
    cited = answer(
        "What does a CURB-65 score of 2 mean for site of care?",
        [hit("cap", SEVERITY_TABLE, 1, title="CAP guideline", section="Risk Stratification")],
    )
    assert "Short inpatient stay" in cited.bottom_line and is_sentence(cited.bottom_line)
    assert "Home treatment" not in cited.bottom_line
    assert "| CURB-65 score | Risk | Site of care |" in cited.answer  # the header, as a table
    assert re.search(r"^\| 2 \| Moderate \| .+ \[1\] \|$", cited.answer, re.MULTILINE)
    assert "| 0–1 |" not in cited.answer  # rows the value rules out are left out


def test_a_list_intro_comes_with_its_whole_list():
    cited = answer(
        "When is a patient with pneumonia stable enough for discharge?",
        [hit("cap", DISCHARGE_LIST, 1, title="CAP guideline", section="Discharge")],
    )
    shown = cited.bottom_line + "\n" + cited.answer
    for criterion in (
        "Temperature < 37.5°C",
        "Heart rate < 100 bpm",
        "Respiratory rate < 24",
        "Adequate oral intake",
    ):
        assert criterion in shown
    assert not cited.bottom_line.rstrip(" .[]0123456789").endswith(":")


def test_the_decision_branch_matching_the_score_is_chosen_not_the_other():
    cited = answer(
        "NEWS2 of 8 on the ward: what response?",
        [hit("news", NEWS_TREE, 1, title="NEWS2", section="Response")],
    )
    assert "Emergency response" in cited.bottom_line
    assert "Urgent response within 60 minutes" not in cited.bottom_line
    assert "→" not in cited.bottom_line and is_sentence(cited.bottom_line)


def test_another_guidelines_rows_stay_out_unless_they_answer_and_are_then_labelled():
    hits = [
        hit(
            "af",
            AF_DOSING,
            1,
            title="AF guideline",
            section="DOAC Dosing",
            source="ACC/AHA",
            year=2023,
        ),
        hit(
            "tia",
            TIA_STATEMENT,
            2,
            title="TIA statement",
            section="Cardioembolism",
            source="AHA/ASA",
            year=2009,
        ),
    ]
    cited = answer("What is the apixaban dose for stroke prevention in atrial fibrillation?", hits)
    assert "mechanical heart valve" not in cited.answer
    for heading in re.findall(r"^### (.+)$", cited.answer, re.MULTILINE):
        if "Cardioembolism" in heading:
            assert heading.endswith("(AHA/ASA 2009)")


def test_bottom_lines_are_sentences_never_headers_fragments_or_questions():
    assert is_sentence("Apixaban: Standard dose is 5 mg BID [1].")
    assert not is_sentence("Criterion | Definition")
    assert not is_sentence("Requires 2 of the following 3 criteria:")
    assert not is_sentence("Score 5–6?")
    assert not is_sentence("A → B → C.")
    assert not is_sentence("### DOAC Dosing")


def test_values_in_a_question_meet_the_conditions_rows_state():
    assert [v.kind for v in question_values("72-year-old, CHA2DS2-VASc 3, eGFR 25")] == [
        "age",
        "score",
        "kidney",
    ]
    # A target is no condition the patient must meet: a BP of 192/102 after alteplase is who
    # "Maintain BP < 180/105 mmHg for the first 24 hours" is for (it was left out as contradicted).
    after_lysis = question_values("Alteplase finished 90 minutes ago; BP now 192/102. Treat it?")
    assert match(after_lysis, "Maintain BP < 180/105 mmHg for the first 24 hours after alteplase") == 0
    assert match(question_values("SBP 150"), "Target SBP < 130 mmHg") == 0
    assert match(question_values("SBP 150"), "If SBP < 130 mmHg: no treatment") == -1
    # "She's 51" is the patient's age (the HEART score's age row), "she's 51 kg" her weight.
    assert [v.kind for v in question_values("She's 51, hypertensive")] == ["age"]
    assert [v.kind for v in question_values("she's 51 kg")] == ["weight"]
    assert match(question_values("CURB-65 score of 2"), "Score 2 (Moderate risk)") == 1
    assert match(question_values("CURB-65 score of 2"), "Score 3–5 (High risk)") == -1
    # An age is never compared with a threshold of another kind of measure.
    assert match(question_values("FIB-4 1.9, age 54"), "> 2.67") == -1
    assert match(question_values("FIB-4 1.9, age 54"), "1.3–2.67") == 1
    assert conditions("CrCl 15–50 mL/min")[0].kind == "kidney"
    # A value the question gives as above or below a number is just past it: the repeat
    # troponin "above the 99th percentile" takes the rise branch, never the discharge one.
    repeat = question_values("The 2-hour repeat is above the 99th percentile. What now?")
    assert match(repeat, "hs-cTn < 99th percentile at 0 and 1-3h → discharge", every=True) == -1
    assert match(repeat, "hs-cTn > 99th percentile, delta > 20% → treat as MI", every=True) == 1
    # A follow-up with no values of its own takes the conversation's; a bare number the
    # context kept ("necrosis at 5 weeks" comes back as "necrosis 5") may meet a row but turns
    # none away ("drainage succeeds in 25-60% of patients").
    follow_up = "Drain in, still septic. Necrosectomy now? (context: walled-off necrosis 5 gas)"
    assert match(question_values(follow_up), "Drainage resolves it in 25–60% of patients") == 0
    assert match(question_values(follow_up), "Score 4–6 (moderate)") == 1
    assert match(question_values("Antibiotics? (context: curb-65 score 2)"), "Score 3–5") == -1
    assert match(question_values("Lactate over 4 mmol/L"), "lactate ≥ 4 mmol/L") == 1
    assert match(question_values("SBP below 90"), "SBP < 90 mmHg") == 1


def test_a_follow_up_carries_the_score_and_the_value_it_refers_to():
    history = [
        Turn(
            "How is pneumonia severity assessed?", "Bottom line: The CURB-65 score is the tool [1]."
        ),
        Turn("What if the score is 2?", "Score 2 (Moderate risk): consider a short stay [1]."),
    ]
    condensed = condense_deterministic("Which antibiotics then?", history)
    assert "CURB-65" in condensed and "score 2" in condensed


def test_the_top_passages_bring_the_rest_of_their_section():
    chunks = [
        Chunk("cap#0", "cap", "CURB-65 is the tool.", "Severity > CURB-65", 0, 5),
        Chunk("cap#1", "cap", "| 2 | Moderate |", "Severity > CURB-65 > Risk", 1, 5),
        Chunk("cap#2", "cap", "Other topic.", "Antibiotics", 2, 5),
    ]
    top = Hit(
        "cap#0", "cap", "CURB-65 is the tool.", 1.0, 1, title="CAP", section="Severity > CURB-65"
    )
    expanded = expand_sections([top], lambda doc_id: chunks, top=3, per_hit=4)
    assert [h.chunk_id for h in expanded] == ["cap#0", "cap#1"]
    assert [h.rank for h in expanded] == [1, 2] and expanded[1].title == "CAP"


def test_the_best_documents_closest_chunks_join_the_passages_read_beside_them():
    """The document retrieval ranks first holds the answer in a section no hit opened ("DKA
    resolved; what before she goes home?" matched the resolution criteria; the discharge
    criteria sit under "Discharge"): its chunks closest to the question join the passages,
    marked as read beside them, and a chunk already present is not added twice."""
    chunks = [
        Chunk("dka#0", "dka", "Resolution: glucose < 250 mg/dL and pH > 7.3.", "DKA > Resolution", 0, 9),
        Chunk("dka#1", "dka", "Give basal insulin 2 hours before stopping the drip.", "DKA > Resolution > Transition", 1, 9),
        Chunk("dka#2", "dka", "Discharge home on a stable subcutaneous insulin regimen for 12-24 hours; follow-up within 2-4 weeks.", "DKA > Discharge", 2, 9),
        Chunk("dka#3", "dka", "Hold insulin while potassium is below 3.3 mmol/L.", "DKA > Potassium", 3, 9),
    ]  # fmt: skip
    top = Hit("dka#0", "dka", chunks[0].text, 1.0, 1, title="DKA", section="DKA > Resolution")
    passages = expand_sections([top], lambda doc_id: chunks, top=3, per_hit=4)
    assert [p.chunk_id for p in passages] == ["dka#0", "dka#1"]

    def closeness(texts):  # what the embedder's cosines with "... before she goes home?" rank
        return [0.9 if "Discharge" in text else 0.5 if "basal" in text else 0.2 for text in texts]

    read = with_closest_of_document(passages, lambda doc_id: chunks, closeness, at_most=1)
    assert [(p.chunk_id, p.beside, p.rank) for p in read] == [
        ("dka#0", False, 1), ("dka#1", False, 2), ("dka#2", True, 3)
    ]
    assert read[2].title == "DKA" and read[2].section == "DKA > Discharge"
    assert with_closest_of_document(passages, lambda doc_id: chunks, closeness, at_most=0) == passages
    cited = answer("DKA resolved, eating again. What does she need before she goes home?", read)
    shown = f"{cited.bottom_line}\n{cited.answer}"
    assert "stable subcutaneous insulin regimen for 12-24 hours" in shown


def test_a_table_cut_into_parts_is_read_whole_below_the_top_passages():
    """A hit below the top ones holding the first part of a table brings the part the chunker
    cut off (the same header): "Severe ... ICU" sat in the second part of the DKA severity
    table and was never shown for a pH of 6.92. A table with another header stays out."""
    header = "| Severity | pH | Setting |\n|---|---|---|\n"
    chunks = [
        Chunk("dka#0", "dka", f"{header}| Mild | > 7.25 | Ward |", "DKA > Severity", 0, 3),
        Chunk("dka#1", "dka", f"{header}| Severe | < 7.0 | ICU |", "DKA > Severity", 1, 3),
        Chunk("dka#2", "dka", "| Other | Table |\n|---|---|\n| a | b |", "DKA > Severity", 2, 3),
    ]
    hits = [
        Hit("x#0", "x", "Something else.", 2.0, 1, title="X", section="X"),
        Hit("dka#0", "dka", chunks[0].text, 1.0, 2, title="DKA", section="DKA > Severity"),
    ]
    expanded = expand_sections(
        hits, lambda doc_id: chunks if doc_id == "dka" else [], top=1, per_hit=4
    )
    assert [h.chunk_id for h in expanded] == ["x#0", "dka#0", "dka#1"]
    # A long reference table cut into many parts is not: it would bury the answer.
    many = [
        Chunk(f"iv#{n}", "iv", f"{header}| Drug {n} | - | - |", "HTN > IV agents", n, 6)
        for n in range(6)
    ]
    hits[1] = Hit("iv#0", "iv", many[0].text, 1.0, 2, title="HTN", section="HTN > IV agents")
    expanded = expand_sections(hits, lambda doc_id: many if doc_id == "iv" else [], top=1, per_hit=4)
    assert [h.chunk_id for h in expanded] == ["x#0", "iv#0"]


def test_a_table_part_cut_off_without_its_header_is_read_under_it():
    """The chunker cut the ETT-size table after "1-2 kg" and, the header too long to repeat,
    opened the next chunk on "| > 3 kg | ... | 9-10 cm |": for a 3.8 kg baby that row was
    shown without its column names, and the bottom line gave the rows for < 1 and 1-2 kg."""
    header = "| Weight | ETT Internal Diameter | Insertion Depth (lip) |\n|---|---|---|\n"
    section = "NRP > Intubation > ETT Size"
    chunks = [
        Chunk("nrp#0", "nrp", "Intubate when PPV fails.", "NRP > Intubation", 0, 5),
        Chunk("nrp#1", "nrp", f"{header}| < 1 kg | 2.5 mm | 6.5-7 cm |\n| 1-2 kg | 3.0 mm | 7-8 cm |", section, 1, 9),
        Chunk("nrp#2", "nrp", "| 2-3 kg | 3.5 mm | 8-9 cm |\n| > 3 kg | 3.5-4.0 mm | 9-10 cm |\n\n- Each attempt within 30 seconds.", section, 2, 9),
    ]  # fmt: skip
    hits = [
        Hit(c.id, "nrp", c.text, 1.0 / (n + 1), n + 1, title="NRP", section=c.section)
        for n, c in enumerate([chunks[1], chunks[2]])
    ]
    expanded = expand_sections(hits, lambda doc_id: chunks, top=2, per_hit=4)
    assert expanded[1].text.startswith(header + "| 2-3 kg |")
    cited = answer("Term baby, 3.8 kg. Which tube size, and how deep at the lips?", expanded)
    assert "3.5-4.0 mm" in cited.bottom_line and "9-10 cm" in cited.bottom_line
    assert "2.5 mm" not in cited.bottom_line
    # The table is shown once, whole, in its order, under its header.
    rows = [line for line in cited.answer.splitlines() if line.startswith("| ") and "kg" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| < 1 kg", "| 1-2 kg", "| 2-3 kg", "| > 3 kg"]


def test_a_score_given_with_its_name_picks_no_row_of_another_score():
    """ "High-risk TIA, ABCD2 5" gives ABCD2 a 5: the TIMI score's "5-7" rows are not this
    patient's; the ABCD2 rows and a row naming no score are compared as before."""
    five = question_values("High-risk TIA, ABCD2 5, starting aspirin plus clopidogrel today.")
    assert five[0].kind == "score" and five[0].score == "abcd2"
    assert other_score(five[0], "Upon an intermediate or high-risk TIMI score (5-7), start")
    assert not other_score(five[0], "2-Day Stroke Risk by ABCD2 Score > 4–5 | Moderate")
    assert not other_score(five[0], "The Risk Score 4-5: moderate")
    assert match(question_values("CURB-65 score of 2"), "Score 2 (Moderate risk)") == 1


def test_support_separates_the_cited_passage_from_another():
    claim = "Reduce to 2.5 mg BID if the patient has at least two of the criteria."
    real = support_scores([(claim, AF_DOSING)], None)
    other = support_scores([(claim, SEVERITY_TABLE)], None)
    assert real[0] > 0.9 > other[0] + 0.5
    assert auc([0.9, 0.8], [0.1, 0.85]) == 0.75


def test_patient_wording_spells_out_abbreviations_and_reads_easier():
    text = "Direct oral anticoagulants (DOACs) at 5 mg BID are recommended (Class I)."
    plain = for_patient(text, definitions(text))
    assert "twice a day" in plain and "(Class I)" not in plain
    clinician = answer(
        "What is the apixaban dose in atrial fibrillation?", [hit("af", AF_DOSING, 1, title="AF")]
    )
    patient = answer(
        "What is the apixaban dose in atrial fibrillation?",
        [hit("af", AF_DOSING, 1, title="AF")],
        "patient",
    )
    assert "BID" in clinician.bottom_line and "twice a day" in patient.bottom_line
    assert readability_grade(patient.bottom_line) < readability_grade(clinician.bottom_line)


def test_key_facts_are_found_only_with_their_numbers():
    text = "Apixaban: reduce to 2.5 mg BID if age >= 80 years [1]."
    assert has_fact(text, "2.5 mg BID")
    assert has_fact(text, "age ≥ 80 years")
    assert not has_fact(text, "5 mg BID daily if age ≥ 85")


THROMBOLYSIS = """\
### NIHSS Severity Classification
| NIHSS Score | Severity | Clinical Implication |
|---|---|---|
| 5–15 | Moderate stroke | IV alteplase is indicated if within the time window |
| 16–20 | Moderate-to-severe stroke | IV alteplase plus evaluation for thrombectomy |
"""
ALTEPLASE_DOSING = """\
### Dosing Protocol
- Dose: 0.9 mg/kg of alteplase (maximum total dose: 90 mg).
- Bolus: 10% of the total dose IV over 1 minute, the remaining 90% over 60 minutes.
"""


def test_a_dose_question_leads_with_the_dose_even_when_it_is_written_as_a_label():
    hits = [
        hit("stroke", THROMBOLYSIS, 1, title="Stroke guideline", section="NIHSS"),
        hit("stroke-dose", ALTEPLASE_DOSING, 2, title="Stroke guideline", section="Dosing"),
    ]
    cited = answer("Acute ischemic stroke within the window: how do I dose alteplase?", hits)
    # "Dose: 0.9 mg/kg ..." has no verb; written "Dose is 0.9 mg/kg ..." it is the bottom line,
    # not the severity table that happens to read as a sentence.
    assert cited.bottom_line.startswith(
        "Dose is 0.9 mg/kg of alteplase (maximum total dose: 90 mg)"
    )
    assert is_sentence(cited.bottom_line)


ABCD2_COMPONENTS_1 = """\
### Score Components
| Component | Criterion | Points |
|---|---|---|
| Age | ≥ 60 years | 1 |
| Blood pressure | ≥ 140/90 mmHg | 1 |
| Clinical features | Unilateral weakness | 2 |
"""
ABCD2_COMPONENTS_2 = """\
| Component | Criterion | Points |
|---|---|---|
| Duration | ≥ 60 minutes | 2 |
| Diabetes | History of diabetes | 1 |
"""


def test_a_table_the_chunker_cut_in_two_is_shown_as_one_table_led_by_its_rows():
    section = "ABCD2 Score > Score Components"
    hits = [
        hit("tia", ABCD2_COMPONENTS_1, 1, title="TIA statement", section=section),
        hit("tia-2", ABCD2_COMPONENTS_2, 2, title="TIA statement", section=section),
    ]
    cited = answer("What are the components of the ABCD2 score?", hits)
    assert cited.answer.count("| Component | Criterion | Points |") == 1, cited.answer
    assert "| Diabetes | History of diabetes | 1 [2] |" in cited.answer
    assert "| Age | ≥ 60 years | 1 [1] |" in cited.answer
    # The bottom line is the list asked for, each row in words its header gives.
    assert "Age: criterion is ≥ 60 years and points are 1" in cited.bottom_line


REVERSAL_TREE = """\
### Anticoagulant Reversal Decision Algorithm
```
Patient with anticoagulant-associated ICH
  → VKA (warfarin)? → Check INR
    → INR >= 2.0: → 4F-PCC 25-50 IU/kg IV; Vitamin K 10 mg IV
    → INR 1.3-1.9: → Consider 4F-PCC 10-20 IU/kg; Vitamin K 10 mg IV
```
"""


def test_the_branch_the_value_meets_leads_and_the_contradicted_one_stays_out():
    cited = answer(
        "Warfarin patient with ICH, INR 4.5. How do I reverse?",
        [hit("ich", REVERSAL_TREE, 1, title="ICH guideline", section="Reversal")],
    )
    assert "4F-PCC 25-50 IU/kg IV; Vitamin K 10 mg IV" in cited.bottom_line
    assert "10-20 IU/kg" not in cited.answer and "1.3-1.9" not in cited.answer


UTI_DEFINITION = """\
### Definition of Complicated UTI
The IDSA guideline defines complicated urinary tract infection by signs that the infection has spread beyond the bladder.

### Clinical Features of Complicated UTI
A cUTI is characterized by any of the following:
- Systemic symptoms: fever, chills, flank pain, costovertebral angle tenderness
- Urinary tract devices: indwelling catheters, ureteral stents
- Bacteremia with a urinary source
"""


def test_words_of_the_guidelines_title_do_not_keep_its_own_list_out():
    from rag.config import EmbedderSettings
    from rag.index.embedder import load_embedder

    hits = [
        hit(
            "uti",
            UTI_DEFINITION,
            1,
            title="Complicated UTI — IDSA 2022",
            section="Complicated UTI — IDSA 2022 > Definitions",
        )
    ]
    question = "What makes a UTI complicated per IDSA 2022?"
    # The embedder finds the list ("cUTI" is not "UTI" to word overlap).
    draft = ExtractiveGenerator(load_embedder(EmbedderSettings())).generate(question, hits)
    cited = enforce_citations(draft.text, hits)
    # The list never repeats "IDSA" or "complicated": the guideline's title says it for it.
    assert "flank pain" in cited.answer and "ureteral stents" in cited.answer


ICP_INDICATIONS = """\
### Who Should Be Monitored
- ICP should be monitored in salvageable patients with a severe TBI and an abnormal CT scan (Level IIB).
- ICP monitoring is indicated in severe TBI with a normal CT scan if two or more of the following features are noted at admission (Level III):
  - Age > 40 years
  - Unilateral or bilateral motor posturing
  - Systolic blood pressure (SBP) < 90 mmHg
"""
SPO2_TABLE = """\
### Targeted Preductal SpO2 After Birth
| Time After Birth | Target SpO2 |
|---|---|
| 1 minute | 60-65% |
| 2 minutes | 65-70% |
| 5 minutes | 80-85% |
| 10 minutes | 85-95% |
"""
ICP_TREE = """\
### ICP Treatment Algorithm
```
Patient with severe TBI
  --> Abnormal CT scan?
      --> NO: Age > 40 AND/OR SBP < 90 mmHg? (2 or more)
          --> YES: ICP monitoring indicated
  --> ICP monitoring in place
      --> ICP > 22 mmHg?
          --> Initiate ICP-lowering therapy
```
"""


def test_one_of_the_items_an_intro_announces_is_shown_with_all_the_others():
    # "if two or more of the following:" with only "Age > 40" under it would tell a clinician
    # that age alone is the rule.
    cited = answer(
        "When to monitor ICP in severe TBI with a normal CT?",
        [hit("tbi", ICP_INDICATIONS, 1, title="TBI guideline", section="Who Should Be Monitored")],
    )
    shown = cited.bottom_line + "\n" + cited.answer
    for feature in ("Age > 40 years", "motor posturing", "(SBP) < 90 mmHg"):
        assert feature in shown
    assert cited.answer.count("Unilateral or bilateral motor posturing") == 1  # once, nested
    assert "  - Unilateral or bilateral motor posturing [1]" in cited.answer


def test_every_row_the_values_pick_answers_in_the_bottom_line():
    cited = answer(
        "Target preductal SpO2 at 5 and 10 minutes after birth?",
        [hit("nrp", SPO2_TABLE, 1, title="Neonatal resuscitation", section="SpO2 targets")],
    )
    assert "80-85%" in cited.bottom_line and "85-95%" in cited.bottom_line
    assert is_sentence(cited.bottom_line)
    assert "60-65%" not in cited.bottom_line + cited.answer


def test_a_value_given_for_one_measurement_does_not_meet_another_measurements_condition():
    # "ICP 26 mmHg" is a pressure, as is "SBP < 90 mmHg", but not the same one.
    values = question_values("Severe TBI, ICP 26 mmHg, MAP 80. Treat?")
    assert match(values, "ICP > 22 mmHg?") == 1
    assert match(values, "NO: Age > 40 AND/OR SBP < 90 mmHg? (2 or more)") == 0
    assert match(question_values("INR 4.5"), "INR 1.3-1.9:") == -1
    # Times are compared in one unit: an MI 3 weeks ago is within the first 40 days; 90
    # minutes is within 4.5 hours, 2 days is not within 24 hours.
    assert match(question_values("MI 3 weeks ago, EF 25%"), "LVEF <= 35%, >= 40 days post-MI") == -1
    assert match(question_values("MI 3 weeks ago, EF 25%"), "Within 40 days post-MI:") == 1
    assert match(question_values("onset 90 minutes ago"), "within 4.5 hours") == 1
    assert match(question_values("presented 2 days ago"), "within 24 hours") == -1
    assert match(question_values("Pericarditis on day 2"), "Early (within 1-3 days post-MI)") == 1
    cited = answer(
        "Severe TBI, ICP 26 mmHg, MAP 80. Treat?",
        [hit("tbi", ICP_TREE, 1, title="TBI guideline", section="ICP Treatment Algorithm")],
    )
    assert "Initiate ICP-lowering therapy" in cited.bottom_line
    assert "Age > 40" not in cited.bottom_line


DKA_INSULIN = """\
### Insulin Infusion
- Fixed-rate infusion: 0.1 units/kg per hour of regular insulin.
- A 0.1 units/kg IV bolus may be given before starting the infusion if it will be delayed.

### Dose Reduction When Glucose < 250 mg/dL
- Reduce infusion rate to 0.05 units/kg per hour.
- Add 5-10% dextrose to IV fluids to prevent hypoglycemia.
"""


AUD_DRUGS = """\
### Oral Naltrexone

| Parameter | Detail |
|---|---|
| Starting dose | 25 mg/day for the first 1-2 days to assess tolerability |
| Target dose | 50 mg/day (single tablet, once daily) |

### Disulfiram

| Parameter | Detail |
|---|---|
| Starting dose | 250 mg/day |
| Dose range | 125-500 mg/day |

- The disulfiram-ethanol reaction can occur for up to 2 weeks after the last disulfiram dose.
"""


def test_a_follow_up_asking_a_dose_first_doses_the_drug_of_its_conversation():
    """After "He wants disulfiram ...", "Starting dose, and how long after his last drink
    before the first tablet?" led with naltrexone's starting dose (its "single tablet"): the
    follow-up names no drug, so the one its conversation names is the one dosed."""
    aud = hit("aud", AUD_DRUGS, 1, title="AUD pharmacotherapy guideline", section="FDA-Approved Medications")  # fmt: skip
    cited = answer(
        "Starting dose, and how long after his last drink before the first tablet? (context:"
        " wants disulfiram goal complete abstinence)",
        [aud],
    )
    assert "250 mg/day" in cited.bottom_line.split("[1]")[0], cited.bottom_line
    assert not cited.bottom_line.startswith("Oral Naltrexone"), cited.bottom_line


HHS_INSULIN = """\
| Clinical Scenario | Insulin Regimen |
|---|---|
| **HHS without significant ketonemia** (beta-hydroxybutyrate < 3.0 mmol/L) | Fixed-rate IV infusion at **0.05 units/kg per hour** |
| **HHS with significant ketonemia** (beta-hydroxybutyrate >= 3.0 mmol/L) | Fixed-rate IV infusion at **0.1 units/kg per hour** |
"""
DKA_INSULIN_RATE = """\
- **Fixed-rate infusion:** 0.1 units/kg per hour of regular insulin.
- **Variable-rate alternative:** Nurse-driven, titratable insulin infusion protocol.
"""


def test_a_row_for_the_condition_its_document_pairs_with_the_one_asked_does_not_lead():
    """A DKA question with a beta-hydroxybutyrate of 0.4 was answered with the row "HHS without
    significant ketonemia (beta-hydroxybutyrate < 3.0 mmol/L)": the ketones met its condition,
    but the row is under "Insulin Therapy for HHS" in a document on DKA and HHS."""
    top = "Insulin Therapy and Electrolyte Management in DKA and HHS — ADA 2024"
    hhs, dka = f"{top} > Insulin Therapy for HHS", f"{top} > Insulin Therapy for DKA > IV Insulin"
    hits = [
        hit("dka", HHS_INSULIN, 1, title="Hyperglycemic crises", section=hhs),
        hit("dka", DKA_INSULIN_RATE, 2, title="Hyperglycemic crises", section=dka),
    ]
    cited = answer(
        "DKA day 2: beta-hydroxybutyrate 0.4 mmol/L, pH 7.34. What insulin infusion regimen?", hits
    )
    assert "HHS" not in cited.bottom_line, cited.bottom_line
    assert "0.1 units/kg per hour" in cited.bottom_line, cited.bottom_line


CHEST_PAIN_DRUGS = """\
Initiate the following if acute coronary syndrome is suspected:
- **Aspirin:** 162–325 mg non-enteric coated, chewed, given immediately (Class I). Continue 81 mg daily.
- **Nitroglycerin:** 0.4 mg sublingual every 5 minutes × 3 doses for ongoing ischemic chest pain (Class I).
"""
NITRATE_CONTRAINDICATIONS = """\
  - **Contraindications:** SBP < 90 mmHg, recent PDE-5 inhibitor use (sildenafil/vardenafil within 24 hours, tadalafil within 48 hours), right ventricular infarction, severe aortic stenosis.
  - **Escalation:** If pain persists after 3 sublingual doses, initiate IV nitroglycerin infusion.
- **Supplemental Oxygen:** Only if SpO2 < 90% or signs of respiratory distress (Class I).
"""


def test_asked_whether_a_drug_can_be_given_its_contraindication_the_story_meets_leads():
    """"Took tadalafil about 14 h ago. Can he have sublingual GTN?" was answered "Nitroglycerin:
    0.4 mg sublingual every 5 minutes": the contraindication (tadalafil within 48 hours), cut
    by the chunker from its "Nitroglycerin:" item, was read under its label only and never
    met the 14 h. A list labelled "Contraindications:" is a list of conditions, and one the
    story meets, for the drug the story names, leads."""
    section = "Acute Management > Pharmacotherapy"
    hits = [
        hit("chest", CHEST_PAIN_DRUGS, 1, title="Chest pain guideline", section=section),
        hit("chest", NITRATE_CONTRAINDICATIONS, 2, title="Chest pain guideline", section=section),
    ]
    cited = answer(
        "57M in ED with 40 min of crushing central chest pain, no STE on ECG, BP 138/84, SpO2 97%."
        " Took tadalafil about 14 h ago. Can he have sublingual GTN? What else goes in now?",
        hits,
    )
    assert cited.bottom_line.startswith("Contraindications: SBP < 90 mmHg"), cited.bottom_line
    assert "tadalafil within 48 hours" in cited.bottom_line, cited.bottom_line


ALTEPLASE_CONTRAINDICATIONS = """\
The following are absolute contraindications to IV alteplase:
- Active internal bleeding
- Recent (within 3 months) intracranial or intraspinal surgery, or serious head trauma
- Platelet count < 100,000/mm³
- Use of direct thrombin inhibitors or direct factor Xa inhibitors within 48 hours (unless normal lab values)
"""
ALTEPLASE_DOSE = """\
- **Dose:** 0.9 mg/kg (maximum 90 mg); 10% as an IV bolus over 1 minute, the rest over 60 minutes.
- IV alteplase should not be delayed while awaiting thrombectomy evaluation (Class I).
"""


def test_asked_whether_to_lyse_a_patient_on_apixaban_the_factor_xa_rule_answers():
    """"... apixaban for AF, last dose about 20 hours ago; no anti-Xa level. Can she have
    alteplase?" never met "direct factor Xa inhibitors within 48 hours (unless normal lab
    values)": the item was read by its "unless" clause, as too long for a bare criterion. Its
    condition is its text; apixaban is a factor Xa inhibitor; and the 2 h since onset is no
    "within 3 months" of surgery the story never mentions."""
    title, contraindications = "AIS guideline", "IV Thrombolysis > Absolute Contraindications"
    hits = [
        hit("stroke", ALTEPLASE_DOSE, 1, title=title, section="IV Thrombolysis > Dosing"),
        hit("stroke", ALTEPLASE_CONTRAINDICATIONS, 2, title=title, section=contraindications),
    ]
    cited = answer(
        "68F, right M1 occlusion on CTA, LKW 2 h ago, NIHSS 14. She takes apixaban for AF and her"
        " last dose was about 20 hours ago; no anti-Xa level available. Can she have alteplase?",
        hits,
    )
    assert "factor Xa inhibitors within 48 hours" in cited.bottom_line, cited.bottom_line


GOLD_GRADES = """\
In patients with FEV1/FVC < 0.70, the severity of airflow limitation is classified by the post-bronchodilator FEV1 % predicted:

| GOLD Grade | Severity | FEV1 % predicted |
|---|---|---|
| GOLD 1 | Mild | ≥ 80% |
| GOLD 2 | Moderate | 50% ≤ FEV1 < 80% |
| GOLD 3 | Severe | 30% ≤ FEV1 < 50% |
| GOLD 4 | Very Severe | < 30% |
"""


def test_a_row_is_read_by_its_own_band_not_by_the_tables_intro():
    """"ratio 0.64 after salbutamol, FEV1 62% predicted ... where does she sit on GOLD?" was
    answered with GOLD 2, GOLD 1 and GOLD 3: the intro's "FEV1/FVC < 0.70", met by the 0.64,
    held for every row, and "50% ≤ FEV1 < 80%" was read as "< 80%" and a bare 50%. A chained
    comparison is one band; the row's own band says whose row it is."""
    assert match(question_values("FEV1 62%"), "50% ≤ FEV1 < 80%") == 1
    assert match(question_values("FEV1 45%"), "50% ≤ FEV1 < 80%") == -1
    grades = hit("copd", GOLD_GRADES, 1, title="GOLD COPD report", section="Grading of Airflow Limitation")  # fmt: skip
    cited = answer(
        "Spirometry back for a 71-year-old woman: ratio 0.64 after salbutamol, FEV1 62% predicted."
        " Where does she sit on GOLD?",
        [grades],
    )
    assert "GOLD 2" in cited.bottom_line, cited.bottom_line
    assert "GOLD 1" not in cited.bottom_line and "GOLD 3" not in cited.bottom_line, cited.bottom_line


def test_a_named_scale_is_read_against_its_own_band_whatever_else_the_story_scores():
    # "item 10 scored 0" gives a score; the EPDS of 15 is still read against "EPDS 13-19".
    values = question_values("5 weeks postpartum, EPDS 15 with item 10 scored 0. How to manage?")
    assert match(values, "Moderate Depression (EPDS 13-19, PHQ-9 15-19)") == 1
    assert match(values, "Mild Depression (EPDS 10-12, PHQ-9 10-14)") == -1


def test_a_laboratory_value_is_read_only_against_its_own_measurements_condition():
    # A pH of 7.12 is no glucose: "Glucose < 250 mg/dL" is not met by it, and the glucose of
    # 540 contradicts it.
    values = question_values("DKA, 80 kg, pH 7.12, glucose 540. Insulin rate?")
    assert match(values, "Dose Reduction When Glucose < 250 mg/dL") == -1
    assert match(question_values("pH 7.12"), "Glucose < 250 mg/dL") == 0
    assert match(question_values("K 5.4, pH 7.29"), "K+ < 3.3 mEq/L: hold insulin") == -1
    assert match(question_values("corrected Ca 2.02 mmol/L"), "if calcium < 2.1 mmol/L") == 1
    # A laboratory condition is met by that measurement only: a "30-a-day" smoker has no
    # potassium of 30.
    assert match(question_values("30-a-day smoker"), "Avoid if baseline K+ > 5.0 mEq/L") == 0
    # Vitamin K is a drug, not potassium; an INR is not its dose.
    assert match(question_values("INR 9, no bleeding"), "Vitamin K 2.5-5 mg orally") == 0
    # A comma before three digits groups thousands: a glucose of 1,100 is no "< 250".
    assert match(question_values("HHS, glucose 1,100 mg/dL"), "Glucose < 250 mg/dL") == -1
    assert match(question_values("TG 800 mg/dL"), "Triglycerides >= 1,000 mg/dL") == -1
    assert match(question_values("TG 1,200 mg/dL"), "Triglycerides >= 1,000 mg/dL") == 1
    assert [v.number for v in question_values("2,5 mg daily")] == [2.5]  # a decimal comma
    cited = answer(
        "DKA, 80 kg, pH 7.12, glucose 540. What insulin rate do I start?",
        [hit("dka", DKA_INSULIN, 1, title="DKA and HHS", section="Insulin Therapy")],
    )
    assert "0.1 units/kg per hour" in cited.bottom_line
    assert "0.05 units/kg" not in cited.bottom_line


def test_years_counted_since_a_diagnosis_are_no_age():
    # "T2DM for 20 years" is how long, not how old: an 81-year-old meets no "Age <= 75" row.
    values = question_values("81F, T2DM for 20 years, no ASCVD, LDL 84. Stop the statin?")
    assert match(values, "Age <= 75 years: initiate high-intensity statin") == -1
    assert match(values, "Age > 75 years, already on a statin: continue") == 1
    assert match(question_values("smoked for 30 years"), "Age >= 20 years") == 0


def test_a_scores_rows_are_read_against_the_score_not_the_other_numbers_of_the_story():
    values = question_values(
        "68M, suspicious chest pain, 1.5 mm ST depression, first hs-cTn 2x ULN. HEART 9. Dispo?"
    )
    # 1.5 and 2 fall in 0-3, but they are no HEART score.
    assert match(values, "HEART Score 0–3 (Low Risk): consider early discharge") == -1
    assert match(values, "HEART Score 7–10 (High Risk): hospital admission") == 1


def test_a_follow_up_asking_about_another_drug_instead_drops_the_one_it_replaces():
    history = [Turn("Patient with UGIB actively bleeding, on warfarin, what reversal?", "PCC [1].")]
    condensed = condense_deterministic("And if he was on dabigatran instead?", history)
    assert "warfarin" not in condensed and "bleeding" in condensed
    history = [Turn("Dispo for chest pain with a HEART score of 2?", "Discharge [1].")]
    condensed = condense_deterministic("What if the HEART score is 5 instead?", history)
    assert " 2" not in condensed.partition("(context:")[2]
    # Without "instead" the earlier drug is the context the follow-up leans on.
    history = [Turn("Patient on warfarin with an INR of 9, no bleeding: what now?", "Hold [1].")]
    assert "warfarin" in condense_deterministic("And what dose of vitamin K?", history)


ALTEPLASE_PROTOCOL = """\
### Dosing Protocol (Class I)
- Dose: 0.9 mg/kg (maximum total dose: 90 mg).
- Administration: 10% of the total dose as an IV bolus over 1 minute, followed by the remaining 90% infused IV over 60 minutes.
- Example: 80 kg patient → Total dose = 72 mg → Bolus = 7.2 mg IV push.
"""


def test_a_dose_comes_with_the_rest_of_its_protocol():
    cited = answer(
        "Acute ischemic stroke, 80 kg. How do I dose alteplase?",
        [hit("stroke", ALTEPLASE_PROTOCOL, 1, title="Stroke guideline", section="Alteplase")],
    )
    assert "0.9 mg/kg" in cited.bottom_line
    shown = cited.bottom_line + "\n" + cited.answer
    assert "10% of the total dose as an IV bolus over 1 minute" in shown
    assert "Total dose = 72 mg" in shown


def test_a_chunk_opening_inside_a_decision_tree_is_read_as_the_tree():
    from rag.generate.units import passage_units

    tail = (
        "          --> YES: Administer mannitol 0.25-1 g/kg IV bolus\n"
        "  --> Refractory ICP elevation despite hyperosmolar therapy?\n"
        "      --> Consider barbiturate coma or decompressive craniectomy\n"
        "```"
    )
    units = passage_units(hit("tbi", tail, 1, title="TBI guideline"), 1)
    assert {unit.kind for unit in units} == {"path"}
    assert any(
        unit.text.startswith("Refractory ICP elevation despite hyperosmolar therapy? → Consider")
        for unit in units
    )


PARKLAND = """\
### Parkland (Baxter) Formula
Total 24-hour fluid = 4 mL x body weight (kg) x % TBSA burned.

| Parameter | Value |
|---|---|
| First 8 hours | 50% of total calculated volume |
| Next 16 hours | Remaining 50% |

A 70 kg patient with 30% TBSA burn:
- Total 24h volume = 4 x 70 x 30 = 8,400 mL LR
- First 8 hours: 4,200 mL (525 mL/hr)
"""


def test_a_worked_example_for_another_patient_does_not_answer_for_this_one():
    # The example's "first 8 hours" matches the question, its 70 kg and 30% do not.
    assert match(question_values("80 kg, 40% TBSA. LR in the first 8 hours?"),
                 "A 70 kg patient with 30% TBSA burn: First 8 hours: 4,200 mL") == -1  # fmt: skip
    cited = answer(
        "80 kg man, 40% TBSA burns. How much LR in the first 8 hours?",
        [hit("burns", PARKLAND, 1, title="Burn guideline", section="Fluid resuscitation")],
    )
    assert "4,200 mL" not in cited.bottom_line
    assert "50% of total calculated volume" in cited.bottom_line
    # A column named "Value" is not read out: "First 8 hours: 50% ...", not "value is 50%".
    assert "value is" not in cited.bottom_line.lower()


STATIN_GROUPS = """\
### Statin Benefit Groups
- Diabetes Mellitus (Age 40-75): Requires at least moderate-intensity statin.

### Primary Prevention (Ages 40--75, No Diabetes)
- LDL-C 70--189 mg/dL and 10-year ASCVD risk >= 7.5%: Moderate-intensity statin is recommended.
- 10-year ASCVD risk >= 20%: High-intensity statin to reduce LDL-C by >= 50%.
- Calculate 10-year ASCVD risk with the Pooled Cohort Equations for moderate-intensity decisions.
  - If 10-year risk >= 20%: High-intensity statin.
"""


def test_a_rule_for_a_population_the_question_rules_out_does_not_lead():
    cited = answer(
        "55M, no diabetes, LDL 130, 10-year ASCVD risk 12%. Which statin intensity?",
        [hit("lipids", STATIN_GROUPS, 1, title="Cholesterol guideline", section="Statins")],
    )
    assert "risk >= 7.5%" in cited.bottom_line
    assert "Diabetes Mellitus (Age 40-75)" not in cited.bottom_line
    # The row's own threshold (>= 20%) rules it out, though its heading's ages (40-75) fit.
    assert "High-intensity" not in cited.answer
    # "10-year risk" names what is measured (no age of a 10-year-old, no value); "55M" is an age.
    values = question_values("55M, 10-year ASCVD risk 12%, a 9-year-old")
    assert [(v.number, v.kind) for v in values] == [(55, "age"), (12, "percent"), (9, "age")]


DKA_CRITERIA_START = """\
### DKA Diagnostic Criteria
The diagnosis of DKA requires all three of the following criteria:

| Criterion | Parameter | Threshold |
|---|---|---|
| D — Diabetes | Plasma glucose | >= 200 mg/dL or prior history of diabetes |
| K — Ketosis | Beta-hydroxybutyrate | >= 3.0 mmol/L |
"""
DKA_CRITERIA_REST = """\
| Criterion | Parameter | Threshold |
|---|---|---|
| A — Acidosis | Venous pH | < 7.3 |
| | OR Bicarbonate | < 18 mmol/L |
"""


def test_a_table_cut_in_two_chunks_is_said_whole_in_the_bottom_line():
    section = "Hyperglycemic crises > DKA Diagnostic Criteria"
    hits = [
        hit("dka", DKA_CRITERIA_REST, 1, title="ADA consensus", section=section),
        hit("dka", DKA_CRITERIA_START, 2, title="ADA consensus", section=section),
    ]
    cited = answer("What are the DKA diagnostic criteria?", hits)
    line = cited.bottom_line
    # Intro first, every criterion, each part citing its own chunk; the continuation row
    # (empty first cell) reads as its own clause, not ": parameter is ...".
    assert line.startswith("The diagnosis of DKA requires all three of the following criteria:")
    for fact in (">= 200 mg/dL", ">= 3.0 mmol/L", "< 7.3", "< 18 mmol/L"):
        assert fact in line
    assert line.index(">= 3.0 mmol/L") < line.index("< 7.3")
    assert re.search(r"3\.0 mmol/L \[\d\]; A — Acidosis", line) and line.endswith("mmol/L [2].")
    assert "; :" not in line
    # The body shows one table under its intro, in the document's row order.
    body = cited.answer
    assert body.count("| Criterion | Parameter | Threshold |") == 1
    assert body.index("requires all three") < body.index("D — Diabetes") < body.index("A — Acidosis")


def test_a_limitation_is_shown_after_the_answer_and_never_leads():
    hits = [
        hit(
            "gina", "### Limitations\n- A positive bronchodilator reversibility test can also be "
            "seen in COPD, so it confirms asthma in adults only with a typical history.\n", 1,
            title="Asthma guideline", section="Diagnosis > Limitations",
        ),
        hit(
            "gina", "### Spirometry\n- Positive bronchodilator reversibility in adults: increase "
            "in FEV1 >12% and >200 mL from baseline.\n", 2,
            title="Asthma guideline", section="Diagnosis > Spirometry",
        ),
    ]  # fmt: skip
    cited = answer("What bronchodilator reversibility confirms asthma in adults?", hits)
    assert cited.bottom_line.startswith("Positive bronchodilator reversibility in adults")
    assert "### Limitations" in cited.answer  # still shown, after the answer
    # Asked about, a limitation may lead.
    asked = answer("What are the limitations of bronchodilator reversibility in COPD?", hits)
    assert asked.bottom_line.startswith("A positive bronchodilator reversibility test")


def test_a_limitation_that_alone_answers_the_question_leads():
    """"Hospitalised CAP - roughly what proportion of blood cultures come back positive?" was
    led by "Do NOT routinely obtain blood cultures ...": the figure sits under "Limitations"."""
    hits = [
        hit(
            "cap", "### Inpatients\n- Do NOT routinely obtain blood cultures in nonsevere "
            "inpatient CAP without risk factors for MRSA.\n", 1,
            title="CAP guideline", section="Microbiological Testing > Blood Cultures > Inpatients",
        ),
        hit(
            "cap", "## Limitations\n- Blood culture positivity in CAP is low (approximately "
            "5-14% in hospitalized patients), but when positive, results influence management.\n",
            2, title="CAP guideline", section="Microbiological Testing > Limitations",
        ),
    ]  # fmt: skip
    cited = answer("Hospitalised CAP - roughly what proportion of blood cultures come back positive?", hits)  # fmt: skip
    assert cited.bottom_line.startswith("Blood culture positivity in CAP is low"), cited.bottom_line


NEWBORN_HR = """\
### Heart Rate Thresholds
- Heart rate >= 100 bpm: Reassuring; continue observation and supportive care.
- Heart rate < 100 bpm: Initiate positive pressure ventilation if the newborn is apneic or gasping.
- Heart rate < 60 bpm after 30 seconds of effective ventilation: Initiate chest compressions coordinated with ventilation and increase FiO2 to 100%.
"""


def test_of_two_rows_the_values_meet_the_one_written_for_them_leads():
    # A heart rate of 50 meets "< 100" and "< 60": the closer bound is the branch for it.
    cited = answer(
        "Newborn on PPV with good chest rise, heart rate 50 bpm. What next?",
        [hit("nrp", NEWBORN_HR, 1, title="Neonatal resuscitation", section="Heart rate")],
    )
    assert cited.bottom_line.startswith("Heart rate < 60 bpm")
    assert "chest compressions" in cited.bottom_line


def test_a_guideline_for_the_population_the_question_rules_out_does_not_lead():
    hits = [
        hit(
            "ada", "### CKD\n- An SGLT2 inhibitor should be used in adults with type 2 diabetes "
            "who have CKD with eGFR 20-60 mL/min/1.73 m2 to start an SGLT2 inhibitor early.\n", 1,
            title="Standards of Care in Diabetes", section="CKD",
        ),
        hit(
            "kdigo", "### SGLT2 inhibitors\n- Initiation threshold: start if eGFR >= 20 "
            "mL/min/1.73 m2, regardless of diabetes status.\n", 2,
            title="KDIGO Guideline for CKD", section="SGLT2 inhibitors",
        ),
    ]  # fmt: skip
    cited = answer("CKD with eGFR 22 and no diabetes - too late to start an SGLT2 inhibitor?", hits)
    assert "regardless of diabetes status" in cited.bottom_line


STENT_DELAY = """\
### Timing of Elective Surgery After Stent Implantation
| Intervention | Minimum delay before elective noncardiac surgery |
|---|---|
| Balloon angioplasty | 14 days |
| Bare-metal stent (BMS) | 30 days |
| Drug-eluting stent (DES) | Optimally 365 days |
| DES (abbreviated DAPT) | May be considered after 180 days |
| Coronary artery bypass grafting | 6 weeks |
| Carotid endarterectomy | 4 weeks |
| Transcatheter valve implantation | 3 months |
| Surgical valve replacement | 3 months |
| Pacemaker implantation | 2 weeks |
"""


def test_rows_that_answer_equally_are_all_in_the_bottom_line_in_the_documents_order():
    # Too long a table to quote whole: its rows are the units, and two of them name the DES.
    cited = answer(
        "How long after a DES should elective noncardiac surgery be delayed?",
        [hit("periop", STENT_DELAY, 1, title="Perioperative guideline", section="Stents")],
    )
    line = cited.bottom_line
    assert "365 days" in line and "180 days" in line
    assert line.index("365 days") < line.index("180 days")
    assert "30 days" not in line


def test_the_rest_of_a_list_in_the_next_chunk_is_not_read_as_the_whole_list_under_its_heading():
    # The chunker cut a list in two: the second chunk opens with the list's last items. Read
    # under the section heading, they would pass for all the criteria.
    first = (
        "The following burn injuries should be referred to a verified burn center:\n\n"
        "- Partial-thickness burns > 10% TBSA\n- Any full-thickness burns\n"
        "- Burns of the face, hands, feet or genitalia\n"
    )
    rest = (
        "- Burns in children at hospitals without qualified personnel for pediatric care\n"
        "- Burns requiring special social or rehabilitative intervention\n"
    )
    section = "Burn care > Burn Center Referral Criteria"
    hits = [
        hit("burns", rest, 2, title="Burn guideline", section=section),
        hit("burns", first, 1, title="Burn guideline", section=section),
    ]
    cited = answer("Burn center referral criteria?", hits)
    assert cited.bottom_line.startswith("The following burn injuries should be referred")
    assert "10% TBSA" in cited.bottom_line


DEVICE_TREE = """\
### Device Therapy in HFrEF
```
Patient with HFrEF on optimized GDMT, non-ischemic cardiomyopathy
  → LVEF still ≤ 35%?
      → YES → Ischemic etiology?
          → NO (non-ischemic)
  → LBBB with QRS ≥ 150 ms?
      → YES → CRT recommended (Class I)
```
"""


def test_a_tree_path_cut_before_its_action_does_not_lead():
    cited = answer(
        "Non-ischemic cardiomyopathy on optimized GDMT, LVEF 30%, LBBB with QRS 160 ms. Device?",
        [hit("hf", DEVICE_TREE, 1, title="Heart failure guideline", section="Devices")],
    )
    assert "CRT recommended" in cited.bottom_line
    assert not cited.bottom_line.rstrip(" .[]0123456789").endswith("(non-ischemic)")


SEPSIS_FLUIDS = """\
### Initial Resuscitation
- For adults with sepsis-induced hypoperfusion, give at least 30 mL/kg of IV crystalloid fluid within the first 3 hours.
- Prefer balanced crystalloids over normal saline during resuscitation.
- Reassess fluid responsiveness with dynamic measures rather than physical examination alone.

### Vasopressors
- Norepinephrine is the first-line vasopressor.
"""


def test_a_short_answer_is_read_with_the_statements_beside_it():
    """The volume alone answers half of "volume and type": an answer shorter than FILL_WORDS
    takes the on-topic statements written next to its best unit under the same heading (which
    crystalloid), nearest first, never another heading's or an off-topic one."""
    from rag.generate.extractive import _with_neighbours
    from rag.generate.units import passage_units

    units = passage_units(
        hit("ssc", SEPSIS_FLUIDS, 1, title="Surviving Sepsis", section="Initial Resuscitation"), 1
    )
    best = next(unit for unit in units if "30 mL/kg" in unit.text)
    # On topic (scored above 0): the volume, the crystalloid and the vasopressor; the
    # reassessment statement is off topic (0).
    scores = [0.0 if "Reassess" in unit.text else 1.0 for unit in units]
    shown = [unit.text for unit in _with_neighbours([best], units, scores, {"crystalloid"})]
    assert shown[0] == best.text
    assert any("balanced crystalloids" in text for text in shown)
    assert not any("Reassess" in text or "Norepinephrine" in text for text in shown)


PERINATAL = """\
### Pharmacotherapy
- SSRIs are first-line pharmacotherapy for postpartum depression; sertraline is preferred when breastfeeding.
- Screen for bipolar disorder before starting an antidepressant.
- If the screen is positive, antidepressant monotherapy is contraindicated: refer to psychiatry.
"""


def test_a_follow_ups_own_words_outweigh_the_conversations_topic():
    """"The screen is positive" after a postpartum depression question: the bottom line is
    what a positive screen means, not the first turn's answer again, though the context the
    condenser adds (postpartum depression, sertraline) matches that one better."""
    cited = answer(
        "The screen comes back positive. (context: postpartum depression sertraline)",
        [hit("acog", PERINATAL, 1, title="Perinatal depression", section="Pharmacotherapy")],
    )
    assert "monotherapy is contraindicated" in cited.bottom_line, cited.bottom_line


NEWS_RESPONSE = """\
### NEWS2 Score 1–4 — Ward-Based Assessment
- **Clinical Response:**
  - A registered nurse must assess the patient.
### NEWS2 Score 5–6 — Urgent Response
- **Clinical Response:**
  - Urgent assessment within 60 minutes by a clinician with acute illness competencies.
  - Consider sepsis if infection is suspected.
### NEWS2 Score ≥ 7 — Emergency Response
- **Clinical Response:**
  - Emergency assessment within 30 minutes by a critical care team.
"""
HEART_DISPOSITION = """\
### Disposition by HEART Score
- **HEART Score 4–6 (Moderate Risk):** Response: admit to the ward for observation, serial
  troponin and urgent review by the patient's clinician.
- **HEART Score 7–10 (High Risk):** Urgent invasive strategy.
"""


def test_a_heading_bounding_the_score_is_the_condition_of_the_items_under_it():
    # The score 5 is the condition "NEWS2 Score 5–6" of the heading above the response items,
    # not a name of the table; read as a name, no NEWS2 item matched and a chest-pain row
    # "HEART Score 4–6" (which 5 falls in) led the answer from another guideline.
    hits = [
        hit("news2/response", NEWS_RESPONSE, 1, title="NEWS2", section="Clinical Response"),
        hit("chest_pain/heart", HEART_DISPOSITION, 2, title="Chest Pain", section="HEART"),
    ]
    cited = answer("Ward patient, NEWS2 just jumped to 5. What response should this kick off?", hits)
    assert "Urgent assessment within 60 minutes" in cited.bottom_line
    assert "30 minutes" not in cited.bottom_line
    assert "HEART" not in f"{cited.bottom_line} {cited.answer}"


def test_an_exception_or_rationale_beside_a_rule_does_not_lead():
    # "Exception: ... remain indicated for refractory septic shock" led the answer to whether
    # to give corticosteroids in severe CAP, whose rule says not to.
    steroids = """\
### Severe CAP (Non-Influenza)
- **Rationale:** Some studies suggested benefit of short-course corticosteroids in severe CAP, but the evidence was insufficient.
- **Exception:** Corticosteroids remain indicated for refractory septic shock in severe CAP.
- **Recommendation:** Do NOT routinely use corticosteroids in adults with severe CAP (Conditional).
"""
    hits = [hit("cap/steroids", steroids, 1, title="CAP", section="Corticosteroids")]
    cited = answer("Severe CAP in the ICU, not in shock. Routine corticosteroids?", hits)
    assert cited.bottom_line.startswith("Recommendation: Do NOT routinely use corticosteroids")


def test_a_question_asking_what_counts_as_a_term_is_answered_by_its_definition():
    dci = """\
### Delayed Cerebral Ischemia
- DCI occurs in approximately 20–30% of patients with aSAH, typically between days 4 and 14 after the bleed, with a GCS often falling.
- Delayed cerebral ischemia (DCI) is defined as focal neurological impairment or a decrease in GCS of ≥ 2 points lasting ≥ 1 hour.
"""
    hits = [hit("sah/dci", dci, 1, title="aSAH", section="DCI")]
    cited = answer("aSAH day 6: what actually counts as DCI - how big a GCS drop?", hits)
    assert cited.bottom_line.startswith("Delayed cerebral ischemia (DCI) is defined as")


@pytest.mark.parametrize(
    ("text", "question", "opening"),
    [
        # What has not been studied follows the recommendation it qualifies.
        (
            (
                "LMA use in infants < 34 weeks or < 2000 g is not well studied. A laryngeal mask "
                "airway (LMA) may be considered when face mask ventilation is ineffective and "
                "intubation is unsuccessful, particularly for infants >= 34 weeks (COR 2a)."
            ),
            "Neonatal resus: when is an LMA reasonable, and in which babies?",
            "A laryngeal mask airway (LMA) may be considered when",
        ),
        # What a guideline does is no answer: "How fast do abx need to go in per SSC?" was
        # answered "The SSC 2021 guideline introduces a stratified approach to antibiotic timing".
        (
            (
                "The SSC 2021 guideline introduces a stratified approach to antibiotic timing in "
                "possible sepsis based on diagnostic certainty and shock status.\n\n"
                "Give antibiotics within 3 hours in possible sepsis if infection remains "
                "suspected.\n"
            ),
            "Possible sepsis, no shock. How fast does SSC want antibiotic timing?",
            "Give antibiotics within 3 hours",
        ),
    ],
)
def test_the_bottom_line_is_the_recommendation_not_what_qualifies_or_frames_it(
    text: str, question: str, opening: str
):
    hits = [hit("guideline/section", text, 1, title="Guideline", section="Recommendations")]
    cited = answer(question, hits)
    assert cited.bottom_line.startswith(opening), cited.bottom_line


def test_a_row_the_story_values_match_does_not_lead_when_it_says_nothing_of_what_is_asked():
    # "NIHSS 11" meets "Perform CTA if LVO is suspected (NIHSS >= 6)"; the question asks for
    # the absolute contraindications to alteplase, which that line never mentions.
    stroke = """\
### Emergency Evaluation
- **CT Angiography:** Perform CTA if large vessel occlusion is suspected (NIHSS ≥ 6).
### Absolute Contraindications to Alteplase
- Absolute contraindications to IV alteplase: active internal bleeding; platelet count < 100,000/mm³; intracranial hemorrhage on CT.
"""
    hits = [hit("stroke/lysis", stroke, 1, title="AIS", section="Thrombolysis")]
    question = "NIHSS 11, CT clear, bleeding ulcer 2 weeks ago. Absolute contraindication to alteplase?"
    cited = answer(question, hits)
    assert cited.bottom_line.startswith("Absolute contraindications to IV alteplase")


def test_the_guideline_whose_title_names_the_topic_answers_over_a_closer_worded_one():
    neonatal = hit(
        "nrp", "Supplemental oxygen should be titrated to maintain SpO2 within the target "
        "range, avoiding both hypoxia and hyperoxia.", 1,
        title="Neonatal Resuscitation Guidelines", section="Oxygen Management > Targeted SpO2",
    )  # fmt: skip
    asthma = hit(
        "gina", "- Oxygen: titrate controlled flow oxygen to a target SpO2 93-95% (94-98% in "
        "pregnancy)\n- Do NOT routinely give 100% oxygen", 2,
        title="GINA Global Strategy for Asthma Management", section="Acute Exacerbation > ED",
    )  # fmt: skip
    question = "Acute asthma in the ED - what SpO2 range should I titrate oxygen to?"
    cited = answer(question, [neonatal, asthma])
    # The neonatal sentence shares "titrated" and "range"; the question is about asthma.
    assert "93-95%" in cited.bottom_line
    assert "hyperoxia" not in cited.answer



def test_a_name_the_question_writes_in_capitals_keeps_the_answer_in_the_guideline_writing_it(
    demo_index: Path,
):
    """"CAGE questionnaire - what score is a positive screen?" was answered from the perinatal
    depression guideline's screening lines (the Mood Disorder Questionnaire), several of
    which outscored together the alcohol guideline's one CAGE row (demo index)."""
    cited = demo_answer(demo_index, "CAGE questionnaire - what score is a positive screen?")
    assert "CAGE" in cited.bottom_line and "MDQ" not in cited.bottom_line, cited.bottom_line
    assert cited.citations[0].doc_id.startswith("apa_aud_2018/")


def test_asking_which_patients_are_at_risk_is_answered_by_the_list_of_risk_factors(
    demo_index: Path,
):
    """"Which TBI patients are at higher risk of post-traumatic seizures?" led with the line
    against late seizure prophylaxis; the guideline's risk factors were further down (demo
    index)."""
    cited = demo_answer(demo_index, "Which TBI patients are at higher risk of post-traumatic seizures?")
    assert "GCS < 10" in cited.bottom_line and "Depressed skull fracture" in cited.bottom_line, (
        cited.bottom_line
    )


def test_a_decision_trees_many_paths_do_not_outvote_the_guideline_retrieval_put_first(
    demo_index: Path,
):
    """Each path of a tree is a unit; the paths of one tree are one passage, one witness.
    Counted one by one, the GI-bleeding resuscitation tree's paths made that guideline the
    answer's scope for a septic patient "not bleeding" asking about VTE prophylaxis, and the
    sepsis guideline's recommendation, retrieved first, was dropped (demo index)."""
    cited = demo_answer(
        demo_index,
        "Septic shock day 1, CrCl 75, plt 160, not bleeding. Heparin 5000 TID or enoxaparin "
        "for VTE ppx, and do I add SCDs on top?",
    )
    assert "low-molecular-weight heparin (LMWH) over unfractionated heparin" in cited.answer
    assert "massive transfusion" not in cited.answer
    assert cited.citations[0].doc_id.startswith("ssc_sepsis_2021/")


def test_one_generic_line_does_not_outvote_a_guideline_with_several_on_the_point(
    demo_index: Path,
):
    """"Day 2 after an anterior STEMI, new AF at 132 ... How do I control the rate?" was
    answered by the AF guideline's one line "Rate control is recommended as the initial
    strategy for most patients with AF"; the STEMI guideline's "Atrial fibrillation in STEMI"
    items (IV beta-blocker, IV amiodarone) scored a little lower one by one and were left out
    (demo index)."""
    cited = demo_answer(
        demo_index,
        "Day 2 after an anterior STEMI, 66F now in new AF at 132, BP 118/72, lungs clear, no "
        "heart failure. How do I control the rate?",
    )
    assert "IV beta-blocker for rate control" in cited.answer, cited.answer
    assert cited.citations[0].doc_id.startswith("acc_aha_stemi_2013/")


def test_a_follow_up_is_answered_by_what_it_asks_not_by_its_context(demo_index: Path):
    """After "which secondary causes should I think about?" for paroxysmal hypertension, "What's
    the screening test for pheo then?" is answered by the metanephrines line; the phentolamine
    row of the hypertensive-crisis table, which the context's words favour about as much, does
    not lead (demo index)."""
    engine = Engine.load(Settings().merged({"index": str(demo_index)}))
    first = (
        "34F, episodic headaches, palpitations and sweating, BP spikes into the 190s. Which "
        "secondary causes should I think about?"
    )
    history = [Turn(question=first, answer="", standalone_question=first)]
    cited = engine.ask(
        "What's the screening test for pheo then?", history=history, suggest_related=False
    )
    assert "metanephrines" in cited.bottom_line, cited.bottom_line
    assert not cited.bottom_line.startswith("For Phentolamine")


def test_the_thresholds_of_the_score_asked_about_are_not_passed_over_for_a_rule_saying_score():
    """The section path names CHA2DS2-VASc, so every unit under it is about the score: the
    score's name still anchors what is shown, and its thresholds come before a cardioversion
    rule that merely says "score"."""
    section = "Anticoagulation in AF > Stroke Risk Assessment (CHA2DS2-VASc)"
    tool = hit("af1", "The CHA2DS2-VASc score is the recommended tool for assessing "
               "thromboembolic risk in patients with AF.", 1, title="AF Guideline", section=section)
    men = hit("af2", "**Men:**\n\n- CHA2DS2-VASc = 0: No antithrombotic therapy is recommended.\n"
              "- CHA2DS2-VASc = 1: OAC may be considered.\n- CHA2DS2-VASc ≥ 2: OAC is "
              "recommended to reduce thromboembolic stroke risk.", 2, title="AF Guideline",
              section=section + " > Recommendations for Oral Anticoagulation (OAC)")
    cardioversion = hit("af3", "- Post-cardioversion: continue OAC for ≥ 4 weeks regardless of "
                        "CHA2DS2-VASc score.", 3, title="AF Guideline",
                        section="Rhythm Control > Cardioversion")
    cited = answer("What are the components of the CHA2DS2-VASc score?", [tool, men, cardioversion])
    assert "CHA2DS2-VASc ≥ 2: OAC is recommended" in cited.answer, cited.answer


DRUG_TABLE = """\
### Preferred Agents and Dosing

| Drug Class | Preferred Agent | Starting Dose | Target Dose |
|---|---|---|---|
| Thiazide-type diuretic | Chlorthalidone (preferred over HCTZ) | 12.5 mg | 25 mg |
| Thiazide-type diuretic | Indapamide | 1.25 mg | 2.5 mg |
| ACE inhibitor | Lisinopril | 10 mg | 40 mg |
| ARB | Losartan | 50 mg | 100 mg |
| DHP CCB | Amlodipine | 2.5 mg | 10 mg |
"""


def test_a_tables_bottom_line_says_the_rows_the_question_names_and_the_body_shows_the_table():
    section = "Pharmacotherapy > Preferred Agents and Dosing"
    hits = [hit("htn", DRUG_TABLE, 1, title="Hypertension guideline", section=section)]
    cited = answer("Which thiazide-type diuretic is preferred, and at what starting dose?", hits)
    assert "Chlorthalidone" in cited.bottom_line and "12.5 mg" in cited.bottom_line
    assert "Indapamide" in cited.bottom_line
    for other in ("Lisinopril", "Losartan", "Amlodipine"):
        assert other not in cited.bottom_line, cited.bottom_line
    # The table itself is shown whole, under its header.
    assert "| ACE inhibitor | Lisinopril | 10 mg | 40 mg [1] |" in cited.answer, cited.answer
    assert "| Drug Class | Preferred Agent | Starting Dose | Target Dose |" in cited.answer


OAC_BY_SEX = """\
### Recommendations for Oral Anticoagulation

Men:
- CHA2DS2-VASc = 0: No antithrombotic therapy is recommended.
- CHA2DS2-VASc >= 2: OAC is recommended.

Women:
- CHA2DS2-VASc = 1 (with sex being the only factor): No antithrombotic therapy is recommended.
- CHA2DS2-VASc >= 3: OAC is recommended.
"""


def test_thresholds_given_for_men_and_for_women_are_both_in_the_bottom_line_unless_one_is_asked():
    hits = [hit("af", OAC_BY_SEX, 1, title="AF guideline", section="Anticoagulation")]
    cited = answer("When is oral anticoagulation recommended by CHA2DS2-VASc score in AF?", hits)
    # The men's thresholds alone would read as everyone's.
    line = cited.bottom_line
    assert "CHA2DS2-VASc >= 2: OAC is recommended" in line, line
    assert "CHA2DS2-VASc >= 3: OAC is recommended" in line, line
    assert line.index(">= 2") < line.index(">= 3")  # in the guideline's order
    woman = answer("In a woman with AF, when is oral anticoagulation recommended by CHA2DS2-VASc score?", hits)  # fmt: skip
    assert ">= 3: OAC is recommended" in woman.bottom_line
    assert ">= 2: OAC" not in woman.bottom_line, woman.bottom_line


THROMBOLYSIS = """\
### Absolute Contraindications
- Active internal bleeding
- Blood glucose < 50 mg/dL
- Platelet count < 100,000/mm3

### Post-Alteplase Monitoring
- Suspected hemorrhagic conversion: Stop infusion immediately. Obtain STAT CT head.
- Neurological checks (NIHSS): Every 15 minutes during infusion, every 30 minutes for 6 hours.
"""


def test_a_bare_criterion_the_values_meet_leads_said_as_what_its_heading_lists():
    section = "IV Thrombolysis for Acute Ischemic Stroke > IV Alteplase"
    hits = [hit("stroke", THROMBOLYSIS, 1, title="AHA/ASA stroke guideline", section=section)]
    cited = answer("Stroke 80 min ago, NIHSS 9, CT clear, glucose 44 mg/dL. Thrombolysis?", hits)
    # The glucose of 44 meets "< 50 mg/dL"; the line reads as a sentence, not a fragment, and
    # the monitoring after alteplase does not answer whether to give it.
    assert cited.bottom_line.startswith(
        "Absolute contraindications include blood glucose < 50 mg/dL [1]"
    ), cited.bottom_line
    assert "hemorrhagic conversion" not in cited.bottom_line


AUD_CRITERIA = """\
## DSM-5 Diagnostic Criteria for Alcohol Use Disorder
At least 2 of the following 11 criteria within a 12-month period:

| # | Criterion |
|---|---|
| 1 | Alcohol often taken in larger amounts or over a longer period than intended |
| 2 | Persistent desire or unsuccessful efforts to cut down or control alcohol use |
| 3 | Great deal of time spent obtaining, using, or recovering from alcohol |
| 4 | Craving, or a strong desire or urge to use alcohol |

### Severity Classification
| Severity | Number of Criteria Met | Clinical Implications |
|---|---|---|
| Mild | 2-3 | Brief intervention, motivational interviewing; pharmacotherapy may be considered |
| Moderate | 4-5 | Pharmacotherapy recommended (naltrexone or acamprosate) |
| Severe | 6 or more | Pharmacotherapy strongly recommended |
"""


def test_a_column_numbering_the_rows_picks_no_row_by_the_questions_count():
    hits = [hit("aud", AUD_CRITERIA, 1, title="APA AUD guideline", section="Assessment")]
    cited = answer("29M meets 3 DSM-5 AUD criteria: binges, failed cut-backs. Start naltrexone?", hits)  # fmt: skip
    # "3 criteria" is not criterion number 3, and meeting the intro's "at least 2" says the
    # table applies, not which row: the severity the count meets answers.
    for criterion in ("Alcohol often taken", "Persistent desire", "Great deal of time"):
        assert criterion not in cited.bottom_line, cited.bottom_line
    assert "Mild" in cited.bottom_line and "2-3" in cited.bottom_line, cited.bottom_line


AKI_STAGES_START = """\
## AKI Staging
AKI is staged for severity according to the following criteria:

| Stage | Serum Creatinine Criteria | Urine Output Criteria |
|---|---|---|
| Stage 1 | 1.5-1.9 times baseline; OR increase >= 0.3 mg/dL | < 0.5 mL/kg/h for 6-12 hours |
| Stage 2 | 2.0-2.9 times baseline | < 0.5 mL/kg/h for >= 12 hours |
"""
AKI_STAGES_REST = """\
| Stage | Serum Creatinine Criteria | Urine Output Criteria |
|---|---|---|
| Stage 3 | 3.0 times baseline; OR increase to >= 4.0 mg/dL; OR initiation of RRT | < 0.3 mL/kg/h for >= 24 hours; OR anuria for >= 12 hours |
"""


def test_a_last_row_the_chunker_cut_into_a_chunk_of_its_own_is_shown_in_its_table():
    section = "AKI Definition and Staging > AKI Staging"
    hits = [
        hit("aki", AKI_STAGES_START, 1, title="KDIGO AKI", section=section),
        hit("aki", AKI_STAGES_REST, 2, title="KDIGO AKI", section=section),
    ]
    # The story's values (2.7, 4.1) meet no row well enough to choose Stage 3 on its own.
    question = "CKD, baseline creatinine 2.7, now 4.1 mg/dL after diarrhoea, urine output fine. Which AKI stage?"  # fmt: skip
    cited = answer(question, hits)
    body = cited.answer
    assert body.count("| Stage | Serum Creatinine Criteria | Urine Output Criteria |") == 1
    assert "| Stage 3 | 3.0 times baseline; OR increase to >= 4.0 mg/dL" in body, body
    assert body.index("| Stage 1 |") < body.index("| Stage 2 |") < body.index("| Stage 3 |")


def test_a_titer_is_compared_as_its_dilution():
    # "1:1600" is a titer of 1600: it meets "> 1:800", not a bare "1" of a heading's numbering.
    values = question_values("Coxiella phase I IgG comes back at 1:1600. Major Duke criterion?")
    criterion = "Major Criterion 1: anti-phase I IgG antibody titer > 1:800"
    assert match(values, criterion) == 1
    assert match(question_values("Phase I IgG titer 1:400?"), criterion) == -1
    assert match(values, "Major Criterion 1: Blood Cultures Positive for IE") == 0


def test_an_answer_stops_adding_statements_once_it_is_long_enough(demo_index: Path):
    """A broad vignette ("Management?") once brought 395 words: every step of the perinatal
    depression pathway. The body keeps its best statements and stops near 250 words; the
    bottom line and the best statement stay (demo index)."""
    from rag.evaluate.metrics import answer_text, word_count

    cited = demo_answer(
        demo_index,
        "6 weeks postpartum, EPDS 16, no suicidal thoughts, breastfeeding. Management?",
    )
    assert not cited.abstained
    assert word_count(answer_text(cited)) <= 250, answer_text(cited)
    assert "Suicidal ideation: Directly assess for suicidal thoughts" in cited.answer


GOUT_MEDICATIONS = """\
### Concurrent Medication Management
Several commonly used medications affect serum urate levels. The ACR 2020 guideline provides conditional recommendations on managing these medications in gout patients.

### Losartan
Losartan is conditionally recommended as the preferred antihypertensive agent for gout patients who need an angiotensin receptor blocker.

- Losartan has a uricosuric effect. This property makes it a preferred choice when an antihypertensive medication is needed in gout patients.
"""


def test_a_sentence_saying_only_that_recommendations_exist_is_never_the_bottom_line():
    hits = [hit("gout", GOUT_MEDICATIONS, 1, title="ACR gout guideline", section="Medications")]
    for question in (
        "How does ACR manage concurrent medications in gout patients?",
        "Which antihypertensive medications does ACR prefer for gout patients?",
    ):
        line = answer(question, hits).bottom_line
        assert "provides conditional recommendations" not in line, line


def test_a_question_asking_when_leads_with_the_condition_not_the_harms(demo_index: Path):
    """ "When is bicarbonate indicated in DKA?" is answered by "Consider only if venous pH <
    7.0", not by the list of what routine bicarbonate may worsen (demo index)."""
    engine = Engine.load(Settings().merged({"index": str(demo_index)}))
    cited = engine.ask("When is bicarbonate indicated in DKA?", suggest_related=False)
    assert cited.bottom_line.startswith("Consider only if venous pH < 7.0"), cited.bottom_line


def test_a_score_the_question_names_keeps_the_answer_in_its_guideline(demo_index: Path):
    """Hb, BUN and "haematemesis" bring the sepsis guideline's transfusion items up, but only
    the GI-bleeding guideline holds the "Glasgow-Blatchford" score the question names: the
    answer keeps to it, and the eponym keeps its capital inside the bottom line (demo index)."""
    cited = demo_answer(
        demo_index,
        "Haematemesis in a 40F with no heart or liver disease, Hb 11.0 g/dL, BUN 21, pulse 96."
        " Can the Glasgow-Blatchford score send her home?",
    )
    assert {c.doc_id for c in cited.citations} == {"nice_ugib_2012/risk_assessment"}
    assert "transfusion" not in cited.answer.lower()
    # The values add up to a GBS of 3 ("pulse 96" is the heart rate), which picks the
    # admission branch; the eponym keeps its capital inside the joined bottom line.
    assert cited.bottom_line.startswith(
        "By the values given, Glasgow-Blatchford is 3: hemoglobin 11.0 (1), BUN 21 (2); 0 for"
        " heart rate 96,"
    ), cited.bottom_line
    assert "Calculate Glasgow-Blatchford Score" in cited.bottom_line
    assert "GBS ≥ 2: Moderate-to-high risk. Hospital admission" in cited.bottom_line
    # A word only the other guideline holds ("components": ABCD2's "Score Components") does
    # not carry a question about CHA2DS2-VASc, which the AF guideline names throughout.
    cited = demo_answer(demo_index, "What are the components of the CHA2DS2-VASc score?")
    assert cited.citations[0].doc_id == "acc_aha_af_2023/anticoagulation"
    assert "Speech disturbance" not in cited.answer


def test_a_score_asked_for_is_added_up_on_its_components_when_only_its_risk_rows_are_found(
    demo_index: Path,
):
    """Retrieval finds ABCD2's "2-Day Stroke Risk" rows, not the component table beside them:
    the table is read from the same document, the story adds up to 7 and the high-risk row
    leads, not the hypertension guideline's BP targets its "BP 162/94" brought (demo index)."""
    cited = demo_answer(
        demo_index,
        "72M, 70 minutes of right arm weakness this morning, now resolved. BP 162/94, type 2"
        " diabetic. ABCD2, 2-day stroke risk, and where should he be worked up?",
    )
    assert cited.bottom_line.startswith(
        "By the values given, ABCD2 is 7: age 72 (1), blood pressure 162/94 (1), unilateral"
        " weakness (2), duration 70 minutes (2), history of diabetes mellitus (1)"
    ), cited.bottom_line
    assert "High risk and 2-Day Stroke Risk is 8.1%" in cited.bottom_line
    assert cited.citations[0].doc_id == "aha_asa_tia_2009/definition_and_risk_stratification"
    # "L arm weakness" is unilateral; a follow-up's context, which has lost the story's "no
    # diabetes", adds up no score of its own.
    first = "64F, 40 min of L arm weakness, now resolved, BP 152/90, no diabetes. ABCD2?"
    cited = demo_answer(demo_index, first)
    assert "ABCD2 is 5:" in cited.bottom_line and "unilateral weakness (2)" in cited.bottom_line
    follow_up = demo_answer(demo_index, "And the 7-day risk for her?", (cited.as_turn(),))
    assert "By the values given" not in follow_up.bottom_line, follow_up.bottom_line


def test_a_score_with_bare_points_in_its_header_is_added_up_on_the_scale_asked_for(
    demo_index: Path,
):
    """NEWS2's table gives its points as bare column headers ("Parameter | 3 | 2 | 1 | 0 | 1 |
    2 | 3"); "HR 98" is its pulse; "on scale 2" takes the SpO2 row of the scale 2 table (90% on
    air scores 0, not scale 1's 3). The story's numbers are measurements, not the score: "BP
    128" no longer meets "NEWS2 Score >= 7". The total, 3, picks "1-4 (total)", not the row
    for 3 points in one parameter, which none scored (demo index)."""
    cited = demo_answer(
        demo_index,
        "COPD with documented T2RF, prescribed target 88-92%. On room air: RR 22, SpO2 90%, BP"
        " 128/80, HR 98, alert, temp 37.2. What's her NEWS2 on scale 2, and how often do obs"
        " need doing?",
    )
    assert cited.bottom_line.startswith(
        "By the values given, NEWS2 is 3: respiration rate 22 (2), pulse (HR 98) (1); 0 for"
    ), cited.bottom_line
    assert "SpO2 90" in cited.bottom_line
    assert (
        "1–4 (total), clinical Risk is Low and frequency of Monitoring is Minimum every 4–6"
        " hours" in cited.bottom_line
    )
    assert "single parameter" not in cited.bottom_line
    assert "30 minutes" not in cited.bottom_line
    # A systolic of 224 scores 3 on its own: the row for 3 in one parameter (hourly
    # monitoring) is said beside what the total of 4 means.
    cited = demo_answer(
        demo_index,
        "Ward patient: RR 18, SpO2 97% on air, BP 224/110, HR 46, alert, temp 36.9. What's the"
        " NEWS2 and what response does it trigger?",
    )
    assert cited.bottom_line.startswith("By the values given, NEWS2 is 4:"), cited.bottom_line
    # (As the table's row or as the decision tree's branch for a single parameter of 3.)
    assert re.search(r"single parameter", cited.bottom_line, re.IGNORECASE), cited.bottom_line
    assert re.search(r"Minimum every 1 hour|Hourly monitoring", cited.bottom_line), cited.bottom_line


def test_ward_sats_are_the_scores_oxygen_saturation_and_the_total_picks_the_path(
    demo_index: Path,
):
    """ "sats 93%" is NEWS2's SpO₂ scale 1 row (2 points), not a parameter left out as absent;
    the total of 8 takes the decision tree's path for a score of 7 or more, not the path for
    a score of 1-4 that asks about a single parameter of 3 on the way (demo index)."""
    cited = demo_answer(
        demo_index,
        "Medical ward, 74F being treated for pneumonia: resp rate 26, sats 93% breathing air,"
        " BP 98/60, pulse 96, alert, temp 37.9. What does that add up to on NEWS2?",
    )
    assert cited.bottom_line.startswith("By the values given, NEWS2 is 8:"), cited.bottom_line
    assert "(sats 93) (2)" in cited.bottom_line
    assert "counted as absent" not in cited.bottom_line
    assert "Score 1–4" not in cited.bottom_line
    assert "'resp'" not in cited.answer


def test_ward_words_of_two_words_are_read_as_the_guideline_writes_them(demo_index: Path):
    """ "hep B" is hepatitis B and "word-finding" trouble a speech disturbance: neither is a
    term the index never mentions, and the answer comes from the guideline that writes them
    in full (demo index)."""
    cited = demo_answer(
        demo_index,
        "RA starting adalimumab; her hep B core antibody and surface antigen are both positive."
        " What do we do about the hep B first?",
    )
    assert cited.bottom_line.startswith("Prophylactic antiviral therapy"), cited.bottom_line
    assert "'hep'" not in cited.answer
    cited = demo_answer(
        demo_index,
        "58M, 15 minutes of word-finding difficulty this afternoon, fully resolved, no weakness,"
        " BP 132/80, no diabetes. ABCD2? Can he be seen in clinic, and how soon?",
    )
    assert cited.citations[0].doc_id == "aha_asa_tia_2009/definition_and_risk_stratification"
    assert "Speech disturbance without weakness" in cited.answer
    assert "mention 'ABCD2'" not in cited.answer

    cited = demo_answer(
        demo_index,
        "Type 2 diabetic on glargine that keeps going up: what should come before mealtime insulin?",
    )
    # "mealtime" insulin is what the diabetes guideline calls prandial insulin.
    assert not cited.abstained
    assert "GLP-1 RA" in cited.answer and "'mealtime'" not in cited.answer


STEP_DOWN = """\
### Stepping Down
- Consider stepping down when asthma has been well controlled for at least 3 months.
- Reduce ICS dose by approximately 25-50% at 3-month intervals.
- Never completely withdraw ICS in adults or adolescents with asthma.

### Step 3 Treatment
- Controller: Low-dose ICS-formoterol maintenance (e.g., budesonide-formoterol 200/6 mcg, 1 inhalation twice daily).
- Reliever: As-needed low-dose ICS-formoterol (same inhaler as maintenance).
"""


def test_asked_how_fast_the_answer_is_a_pace_not_a_dose():
    """ "How fast can I step the dose down?" asks for a pace: the 25-50% at 3-month intervals
    leads, not the dose a maintenance controller is given at."""
    question = "Asthma well controlled for months on ICS - how fast can I step the dose down?"
    assert answer_type(question) == "time"
    cited = answer(
        question, [hit("gina", STEP_DOWN, 1, title="Asthma strategy", section="Stepping Down")]
    )
    assert "25-50% at 3-month intervals" in cited.bottom_line


BIOLOGICS = """\
#### Anti-IL5: Mepolizumab
- Eligibility: Severe eosinophilic asthma; blood eosinophils >=150 cells/mcL
- Dose: 100 mg SC every 4 weeks
"""
ICS_DOSES = """\
#### ICS Dose Categories for Adults
| ICS Drug | Low Dose (mcg/day) | Medium Dose (mcg/day) | High Dose (mcg/day) |
|---|---|---|---|
| Fluticasone propionate (DPI) | 100-250 | >250-500 | >500 |
| Budesonide (DPI) | 200-400 | >400-800 | >800 |
"""


def test_a_dose_question_is_answered_with_the_dose_of_the_drug_it_asks_about():
    """Her "high-dose ICS-LABA" brings the ICS dose table, but the dose asked is
    mepolizumab's: the table stays out, and the dose is said with the drug its heading names
    (said alone, "Dose: 100 mg SC every 4 weeks" names no drug)."""
    hits = [
        hit("ics", ICS_DOSES, 1, title="GINA", section="Diagnosis > ICS Dose Categories for Adults"),
        hit("bio", BIOLOGICS, 2, title="GINA", section="Biologic Therapies > Anti-IL5: Mepolizumab"),
    ]
    cited = answer(
        "52F with severe asthma on high-dose ICS-LABA, blood eosinophils 380. Does she qualify"
        " for mepolizumab, and what's the dose?",
        hits,
    )
    assert "Fluticasone" not in cited.answer
    assert cited.bottom_line.startswith("Anti-IL5: Mepolizumab — "), cited.bottom_line
    assert "; dose: 100 mg SC every 4 weeks [1]." in cited.bottom_line, cited.bottom_line


CARBON_MONOXIDE = """\
### Treatment
| COHb Level | Symptoms | Treatment |
|---|---|---|
| 10-25% | Headache, nausea | 100% O2 via non-rebreather |
| 25-40% | Ataxia, syncope | 100% O2; consider intubation |
| > 40% | Seizures, coma | 100% O2 via ETT; consider hyperbaric oxygen |
"""


def test_oxygen_given_is_no_finding_a_row_is_chosen_by():
    """ "On 100% oxygen" is the treatment, not a carboxyhemoglobin level: the "> 40%" row is
    not chosen for a COHb of 32%."""
    assert question_values("How long do we keep him on 100% oxygen?") == []
    cited = answer(
        "House-fire victim, COHb 32% on arrival, intubated. How long do we keep him on 100% oxygen?",
        [hit("burn", CARBON_MONOXIDE, 1, title="Burn guideline", section="Carbon Monoxide")],
    )
    assert cited.bottom_line.startswith("For 25-40%"), cited.bottom_line
    assert "> 40%" not in cited.bottom_line, cited.bottom_line


STRESS_TESTING = """\
### Preoperative Noninvasive Stress Testing
- For patients with elevated risk and poor or unknown functional capacity, exercise stress testing is preferred if the patient can exercise.
- Pharmacologic stress testing (dobutamine stress echocardiography or myocardial perfusion imaging) is appropriate for patients who cannot exercise.
"""


def test_a_rule_for_a_patient_who_can_do_what_this_one_cannot_does_not_lead():
    section = "Perioperative Cardiac Assessment > Preoperative Noninvasive Stress Testing"
    hits = [hit("periop", STRESS_TESTING, 1, title="ACC/AHA perioperative", section=section)]
    cited = answer("Preoperative stress testing needed, but he can't walk on a treadmill. Which stress test?", hits)  # fmt: skip
    assert cited.bottom_line.startswith("Pharmacologic stress testing"), cited.bottom_line


def test_a_singular_in_is_takes_is():
    # "Diagnosis" is no plural: a bare item under it is not said as "Diagnosis include ...".
    from rag.generate.units import Unit
    from rag.generate.wording import sentence_form

    bare = Unit("item", "Serum lipase ≥ 3x ULN", 1, 0, "Diagnosis")
    assert sentence_form(bare) == "Serum lipase ≥ 3x ULN."
    listed = Unit("item", "Serum lipase ≥ 3x ULN", 1, 0, "Diagnostic Criteria")
    assert sentence_form(listed) == "Diagnostic criteria include serum lipase ≥ 3x ULN."


CURB65_TABLE = """\
### Criteria (1 point each)

| Criterion | Definition |
|-----------|------------|
| **C**onfusion | Abbreviated Mental Test Score ≤ 8 or new disorientation |
| **U**rea | Blood urea nitrogen > 20 mg/dL (> 7 mmol/L) |
| **R**espiratory rate | ≥ 30 breaths per minute |
| **B**lood pressure | Systolic < 90 mmHg or diastolic ≤ 60 mmHg |
| Age ≥ **65** | Patient age 65 or older |

### Risk Stratification and Management

- **Score 0–1 (Low risk):** Home treatment; oral antibiotics: amoxicillin.
- **Score 2 (Moderate risk):** Short inpatient stay; antibiotics: amoxicillin plus clarithromycin.
- **Score 3–5 (High risk):** Urgent admission; IV antibiotics: co-amoxiclav plus clarithromycin.
"""


def test_a_score_the_values_add_up_to_picks_the_row_and_shows_the_working():
    """"AMT 9/10, urea 8.2, RR 26, BP 118/58, 71F: CURB-65?" was shown the score-2 regimen:
    nothing added the criteria up. Urea > 7 mmol/L, diastolic <= 60 and age >= 65 make 3,
    so the high-risk row answers, after the working a clinician can check."""
    hits = [hit("cap", CURB65_TABLE, 1, title="CAP guideline", section="CURB-65 Score")]
    cited = answer(
        "71F with CAP: AMT 9/10, urea 8.2 mmol/L, RR 26, BP 118/58. What's her CURB-65 and"
        " which antibiotics?",
        hits,
    )
    assert cited.bottom_line.startswith(
        "By the values given, CURB-65 is 3: urea 8.2 (1), blood pressure 118/58 (1), age 71 (1);"
        " 0 for confusion (AMT 9/10), respiratory rate 26 [1]; score 3–5 (High risk): Urgent"
        " admission; IV antibiotics: co-amoxiclav plus clarithromycin [1]."
    ), cited.bottom_line
    assert "co-amoxiclav" in cited.bottom_line and "Score 2" not in cited.bottom_line
    # The same values but a systolic of 88 and an AMT of 7 make 5; "newly confused" names the
    # confusion criterion without a number; a score the question gives is not worked out.
    cited = answer("78M, newly confused, urea 9 mmol/L, RR 32, BP 88/70. CURB-65?", hits)
    assert (
        "CURB-65 is 5: confusion (1), urea 9 (1), respiratory rate 32 (1), blood pressure 88/70"
        " (1), age 78 (1)" in cited.bottom_line
    ), cited.bottom_line
    cited = answer("CAP with a CURB-65 of 2, urea 8.2. Which antibiotics?", hits)
    assert "By the values given" not in cited.answer


BLATCHFORD_PARTS = [
    """\
| Parameter | Criteria | Score |
|---|---|---|
| **BUN (mg/dL)** | 18.2–22.3 | 2 |
| | 22.4–27.9 | 3 |
| **Hemoglobin — Male (g/dL)** | 12.0–12.9 | 1 |
| | 10.0–11.9 | 3 |
| **Hemoglobin — Female (g/dL)** | 10.0–11.9 | 1 |
| | < 10.0 | 6 |
""",
    """\
| Parameter | Criteria | Score |
|---|---|---|
| **Heart Rate** | ≥ 100 bpm | 1 |
| **Other Markers** | Melena at presentation | 1 |
| | Syncope at presentation | 1 |
| | Hepatic disease | 1 |
| | Cardiac failure | 1 |
""",
]


def test_a_score_is_added_up_over_a_table_cut_in_two_by_sex_and_by_what_is_ruled_out():
    """A points column with its component written once for its rows, cut by the chunker into
    two parts: the woman's haemoglobin row counts, not the man's; "melaena" is the table's
    "Melena"; "no liver or heart disease" rules out hepatic disease and cardiac failure;
    another finding under "Other Markers" adds its own point."""
    from rag.generate.scores import tally

    section = "Glasgow-Blatchford Score (GBS)"
    hits = [
        hit("gi", text, n, title="GI bleeding", section=section)
        for n, text in enumerate(BLATCHFORD_PARTS, start=1)
    ]
    found = tally(
        "26F with melaena and syncope, no liver or heart disease. BUN 20 mg/dL, Hb 11.4 g/dL,"
        " HR 92. Glasgow-Blatchford score?",
        hits,
    )
    assert found is not None and found.total == 5, found
    assert found.sentence() == (
        "By the values given, Glasgow-Blatchford is 5: BUN 20 (2), hemoglobin 11.4 (1), melena"
        " at presentation (1), syncope at presentation (1); 0 for heart rate 92, no hepatic"
        " disease, no cardiac failure"
    ), found.sentence()
    # A man with the same haemoglobin scores 3 for it; a question naming no score adds none up.
    man = tally("58M, BUN 20 mg/dL, Hb 11.4 g/dL, HR 106. Glasgow-Blatchford score?", hits)
    assert man is not None and man.total == 6, man
    assert tally("58M, BUN 20 mg/dL, Hb 11.4 g/dL, HR 106. Admit?", hits) is None


def test_four_factor_pcc_is_no_four_year_old_woman():
    """"How much 4F-PCC?" read "4F" as a case's age and sex ("78M", "34F"), so an ICH score
    asked beside it counted "age 4" and an age row could be chosen for a 4-year-old."""
    values = question_values("Warfarin, now a 25 mL lobar ICH. INR 7.2, 90 kg. How much 4F-PCC?")
    assert not [value for value in values if value.kind == "age"], values
    assert [v.number for v in question_values("34F, 2 days of dysuria") if v.kind == "age"] == [34]


CHILD_PUGH = """\
### Scoring Criteria

| Parameter | 1 Point | 2 Points | 3 Points |
|---|---|---|---|
| **Bilirubin** (mg/dL) | < 2 | 2–3 | > 3 |
| **Albumin** (g/dL) | > 3.5 | 2.8–3.5 | < 2.8 |
| **INR** | < 1.7 | 1.7–2.3 | > 2.3 |
| **Ascites** | None | Mild (diuretic-responsive) | Moderate-Severe (refractory) |
| **Encephalopathy** | None | Grade I–II (managed) | Grade III–IV (poorly controlled) |
"""


def test_a_score_with_its_points_in_the_header_counts_what_is_ruled_out_and_names_the_rest():
    """Points in the header ("1 Point | 2 Points | 3 Points"): "no encephalopathy" is its "None"
    cell (1 point, not 0, and not the "poorly controlled" row the story's "well controlled"
    shares a word with), and ascites the question says nothing of is counted as absent, named."""
    from rag.generate.scores import tally

    hits = [hit("liver", CHILD_PUGH, 1, title="Cirrhosis", section="Child-Pugh Score")]
    found = tally(
        "58M, bili 2.4 mg/dL, albumin 3.1 g/dL, INR 1.5, BP well controlled, no"
        " encephalopathy. What Child-Pugh class is he?",
        hits,
    )
    assert found is not None and found.total == 7, found
    assert found.sentence() == (
        "By the values given, Child-Pugh is 7: bilirubin 2.4 (2), albumin 3.1 (2), INR 1.5 (1),"
        " no encephalopathy (1); not stated, counted as absent: ascites (1) (up to 9 if present)"
    ), found.sentence()


def test_a_graded_component_is_read_by_the_grade_the_story_gives():
    """"mild ascites controlled on diuretics, grade I HE on lactulose" scored encephalopathy as
    "Grade III–IV (poorly controlled)" (3 points): the ascites' "controlled" is no grade."""
    from rag.generate.scores import tally

    hits = [hit("liver", CHILD_PUGH, 1, title="Cirrhosis", section="Child-Pugh Score")]
    found = tally(
        "61M alcohol cirrhosis: bili 2.8, albumin 2.7, INR 2.0, mild ascites controlled on"
        " diuretics, grade I HE on lactulose. Child-Pugh class?",
        hits,
    )
    assert found is not None and found.total == 11, found
    assert "grade I–II (2)" in found.sentence(), found.sentence()


ABCD2_TABLE = """\
### Score Components

| Component | Criterion | Points |
|---|---|---|
| **A**ge | ≥ 60 years | 1 |
| **B**lood pressure | Systolic ≥ 140 mmHg or diastolic ≥ 90 mmHg at initial evaluation | 1 |
| **C**linical features | Unilateral weakness | 2 |
| **C**linical features | Speech disturbance without weakness | 1 |
| **D**uration | ≥ 60 minutes | 2 |
| **D**uration | 10–59 minutes | 1 |
| **D**iabetes | History of diabetes mellitus | 1 |
"""


def test_a_duration_in_minutes_counts_beside_a_time_since_onset_in_hours():
    """"35 minutes of slurred speech ... seen 20 h after onset": the duration is the one time
    written in minutes, 1 point for "10–59 minutes"; the 20 h since onset is no duration, so
    the score is 4 (moderate risk), not 3 with the duration counted as absent."""
    from rag.generate.scores import tally

    hits = [hit("tia", ABCD2_TABLE, 1, title="TIA statement", section="ABCD2 Score")]
    found = tally(
        "63F had 35 minutes of slurred speech without limb weakness, now fully resolved. ED BP"
        " 148/86, no diabetes, seen 20 h after onset. ABCD2, and does she get admitted?",
        hits,
    )
    assert found is not None and found.total == 4, found and found.sentence()
    assert "duration 35 minutes (1)" in found.sentence(), found.sentence()


EARLY_WARNING = """\
### Scoring Table — Scale 1

| Parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
|---|---|---|---|---|---|---|---|
| **Respiration Rate** (breaths/min) | ≤ 8 | | 9–11 | 12–20 | | 21–24 | ≥ 25 |
| **SpO₂ Scale 1** (%) | ≤ 91 | 92–93 | 94–95 | ≥ 96 | | | |
| **Pulse** (bpm) | ≤ 40 | | 41–50 | 51–90 | 91–110 | 111–130 | ≥ 131 |
"""
EARLY_WARNING_SCALE_2 = """\
| SpO₂ Scale 2 | 3 | 2 | 1 | 0 (on air) |
|---|---|---|---|---|
| **SpO₂ (%)** | ≤ 83 | 84–85 | 86–87 | 88–92 |
"""


def test_points_given_as_bare_column_headers_are_added_up_on_the_scale_named():
    """A header of bare points ("Parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3") prices each column;
    "HR 98" is the pulse, "SpO2 90" the SpO₂ row; a question on scale 2 reads SpO2 on the
    scale 2 table of the same document, one naming no scale on scale 1."""
    from rag.generate.scores import tally

    section = "EWS2 Scoring System > Physiological Parameters"
    hits = [
        hit("ews", EARLY_WARNING, 1, title="EWS", section=f"{section} > Scoring Table"),
        hit("ews", EARLY_WARNING_SCALE_2, 2, title="EWS", section=f"{section} > SpO₂ Scale 2"),
    ]
    story = "RR 22, SpO2 90% on air, HR 98."
    found = tally(f"{story} What's her EWS2 on scale 2?", hits)
    assert found is not None and found.total == 3, found
    assert ("SpO2 90", 0) in found.counted
    found = tally(f"{story} What's her EWS2?", hits)
    assert found is not None and found.total == 6, found  # SpO2 90 is 3 on scale 1


WELLS_LIST = """\
The Wells score assigns points to seven clinical features.

### Clinical Criteria and Point Values

- **Clinical signs and symptoms of DVT**: 3.0 points
  *(minimum of leg swelling and pain with palpation of the deep veins)*
- **An alternative diagnosis is less likely than PE**: 3.0 points
- **Heart rate > 100 beats per minute**: 1.5 points
- **Hemoptysis**: 1.0 point
- **Malignancy**: 1.0 point
"""
QSOFA_LIST = """\
### qSOFA Criteria

A patient meets the qSOFA criteria if they exhibit at least **two** of the following three:
1. **Respiratory Rate:** ≥ 22 breaths per minute
2. **Altered Mentation:** Glasgow Coma Scale (GCS) < 15
3. **Systolic Blood Pressure:** ≤ 100 mmHg

### Next steps
- Check lactate.
- Start antibiotics within 1 hour.
"""


def test_a_list_of_criteria_is_added_up_with_its_own_points_or_one_each():
    """A list whose items give their points (Wells: 1.5 for a heart rate over 100) or whose
    intro counts them ("at least two of the following three": qSOFA) is added up like a table;
    "no haemoptysis" rules its item out; a list of actions beside it is no criterion."""
    from rag.generate.scores import tally

    wells = [hit("pe", WELLS_LIST, 1, title="PE", section="Wells Clinical Model")]
    found = tally(
        "34F, pleuritic pain, HR 112, no haemoptysis, PE the most likely diagnosis. Wells score?",
        wells,
    )
    assert found is not None and found.sentence() == (
        "By the values given, Wells is 4.5: an alternative diagnosis is less likely than PE (3),"
        " heart rate 112 (1.5); 0 for no hemoptysis; not stated, counted as absent: clinical"
        " signs and symptoms of DVT, malignancy (up to 8.5 if present)"
    ), found
    qsofa = [hit("sepsis", QSOFA_LIST, 1, title="Sepsis", section="qSOFA")]
    found = tally("Pneumonia, RR 24, GCS 14, SBP 105. qSOFA?", qsofa)
    assert found is not None and found.sentence() == (
        "By the values given, qSOFA is 2: respiratory rate 24 (1), altered mentation (GCS 14)"
        " (1); 0 for systolic blood pressure 105"
    ), found


def test_a_question_asking_what_to_watch_for_leads_with_what_to_monitor(demo_index: Path):
    """"While terlipressin is running, which adverse effects should the nurses be watching
    for?" was answered "Offer terlipressin at presentation": the item saying what to monitor
    ("Monitor for: Hyponatremia, ...") shares no word with "adverse effects" (demo index)."""
    cited = demo_answer(
        demo_index,
        "While terlipressin is running for a suspected variceal bleed, which adverse effects"
        " should the nurses be watching for?",
    )
    assert cited.bottom_line.startswith(
        "Monitor for: Hyponatremia, cardiac ischemia, peripheral ischemia"
    ), cited.bottom_line


def test_the_drug_a_vignette_asks_the_dose_of_is_dosed(demo_index: Path) -> None:
    """"Gout, allopurinol intolerant, febuxostat out because of CVD, normal kidneys. Probenecid
    starting dose?" was answered with allopurinol's starting dose: the story's drugs filled the
    retrieved passages and the probenecid table was not among them (demo index)."""
    cited = demo_answer(
        demo_index,
        "Gout, allopurinol intolerant, febuxostat out because of CVD, normal kidneys."
        " Probenecid starting dose?",
    )
    assert "500 mg once or twice daily orally" in cited.answer, cited.answer
    # ... and leads: not the decision tree that names probenecid as the alternative.
    assert cited.bottom_line.startswith("Probenecid: starting dose is 500 mg"), cited.bottom_line


P2Y12_LOADING = """\
### Loading Doses
- Ticagrelor 180 mg is preferred over a clopidogrel loading dose in ACS treated with PCI (Class I).
- If clopidogrel is chosen: 600 mg orally, then 75 mg daily.
"""


def test_an_amount_doses_the_drug_named_just_before_it_not_one_named_after():
    """"Ticagrelor 180 mg is preferred over a clopidogrel loading dose" names clopidogrel and
    gives an amount, but the amount is ticagrelor's: asked for clopidogrel's loading dose, the
    bottom line gives the 600 mg (the drug named last before an amount is the one it doses)."""
    loading = hit("acs", P2Y12_LOADING, 1, title="ACS guideline", section="P2Y12 Inhibitors > Loading Doses")  # fmt: skip
    cited = answer("What clopidogrel loading dose before PCI in ACS?", [loading])
    assert cited.bottom_line.startswith("If clopidogrel is chosen: 600 mg orally"), cited.bottom_line


DKA_INSULIN_AND_POTASSIUM = """\
### Insulin Therapy

| Clinical Scenario | Insulin Regimen |
|---|---|
| Significant ketonemia (beta-hydroxybutyrate >= 3.0 mmol/L) | Fixed-rate IV infusion at 0.1 units/kg per hour |

### Potassium Management Algorithm

```
Check serum potassium on admission
  --> K+ < 3.5 mmol/L (hypokalemia)?
      --> Replace at 10 mmol/hour IV
      --> DELAY insulin until K+ > 3.5 mmol/L
  --> K+ 3.5-5.0 mmol/L?
      --> Add 20-30 mmol potassium per liter of IV fluid
      --> Start insulin therapy
```
"""


DKA_BOLUS_AND_POTASSIUM = """\
### Intravenous Insulin

- **Fixed-rate infusion:** 0.1 units/kg per hour of regular insulin.
- **Optional initial bolus:** 0.1 units/kg IV bolus before starting infusion, particularly if infusion delay is anticipated.

### Potassium Management Algorithm

```
Check serum potassium on admission
  --> K+ < 3.5 mmol/L (hypokalemia)?
      --> Replace at 10 mmol/hour IV
      --> DELAY insulin until K+ > 3.5 mmol/L
      --> Recheck K+ every 1-2 hours until > 3.5 mmol/L
  --> K+ 3.5-5.0 mmol/L?
      --> Add 20-30 mmol potassium per liter of IV fluid
      --> Start insulin therapy
```
"""


def test_a_potassium_written_as_k_without_its_unit_picks_the_branch_that_delays_insulin():
    """"24M type 1, DKA: glucose 520 mg/dL, pH 7.08, bicarb 6, K 3.1 ... Can I start the insulin
    infusion now?" led with the optional bolus "before starting infusion": the K of 3.1, with
    no unit beside a glucose that has one, was compared with no potassium branch, and "until
    K+ > 3.5" read as a condition the 3.1 contradicts. A wrong answer that kills: the branch
    for a potassium below 3.5 says to delay insulin, and it leads."""
    values = question_values("glucose 520 mg/dL, pH 7.08, bicarb 6, K 3.1")
    low = "K+ < 3.5 mmol/L (hypokalemia)? → Replace at 10 mmol/hour IV; DELAY insulin until K+ > 3.5 mmol/L"  # fmt: skip
    assert match(values, low) == 1
    assert match(values, "K+ 3.5-5.0 mmol/L? → Start insulin therapy") == -1
    dka = hit("dka", DKA_BOLUS_AND_POTASSIUM, 1, title="DKA consensus", section="Insulin and Electrolytes")  # fmt: skip
    cited = answer(
        "24M type 1, DKA: glucose 520 mg/dL, pH 7.08, bicarb 6, K 3.1. Litre of saline already"
        " in. Can I start the insulin infusion now?",
        [dka],
    )
    assert cited.bottom_line.startswith(
        "Check serum potassium on admission — K+ < 3.5 mmol/L (hypokalemia)?: Replace at 10"
        " mmol/hour IV; DELAY insulin until K+ > 3.5 mmol/L"
    ), cited.bottom_line


def test_asked_whether_to_start_a_drug_the_branch_that_holds_it_back_leads():
    """"... K+ 3.1 mmol/L. Can the insulin infusion start now?" led with the insulin regimen
    the ketones match; the potassium branch the K+ of 3.1 meets says to delay insulin, and a
    rule holding back what the question asks whether to do answers it first."""
    dka = hit("dka", DKA_INSULIN_AND_POTASSIUM, 1, title="DKA consensus", section="Insulin and Electrolytes")  # fmt: skip
    cited = answer(
        "Glucose 486 mg/dL, pH 7.14, beta-hydroxybutyrate 5.9 mmol/L, K+ 3.1 mmol/L. Can the"
        " insulin infusion start now?",
        [dka],
    )
    assert cited.bottom_line.startswith(
        "Check serum potassium on admission — K+ < 3.5 mmol/L (hypokalemia)?: Replace at 10"
        " mmol/hour IV; DELAY insulin until K+ > 3.5 mmol/L [1]"
    ), cited.bottom_line


GABAPENTIN_RENAL = """\
### Contraindications
- Hypersensitivity to gabapentin
- Dose adjustment required in renal impairment:

| CrCl (mL/min) | Recommended Maximum Daily Dose |
|---|---|
| >= 60 | 1,800 mg/day |
| 30-59 | 600-900 mg/day |
| 15-29 | 300-600 mg/day |
| < 15 | 100-300 mg/day |
"""


def test_a_row_whose_first_cell_is_a_number_is_read_under_its_column():
    """"CrCl 22 ... gabapentin - what's the max daily dose at that clearance?" never reached the
    "15-29" row: a bare range under "CrCl (mL/min)" was read as a number of no kind."""
    gabapentin = hit("aud", GABAPENTIN_RENAL, 1, title="AUD guideline", section="Gabapentin > Contraindications")  # fmt: skip
    cited = answer("58M, CrCl 22, not on HD. Going for gabapentin - max daily dose at that clearance?", [gabapentin])  # fmt: skip
    assert cited.bottom_line.startswith(
        "For CrCl 15-29 mL/min, recommended Maximum Daily Dose is 300-600 mg/day"
    ), cited.bottom_line


def test_a_follow_up_about_it_doses_the_drug_its_conversation_names(demo_index: Path) -> None:
    """After "he's keen on acamprosate", "His CrCl is 26. Can he have it at a reduced dose?" was
    answered with gabapentin's row for that clearance (demo index)."""
    first = Turn(question="Moderate AUD, goal is complete abstinence, he's keen on acamprosate.", answer="")  # fmt: skip
    cited = demo_answer(demo_index, "His CrCl is 26. Can he have it at a reduced dose?", (first,))
    assert "acamprosate" in cited.bottom_line.lower(), cited.bottom_line
    assert "gabapentin" not in cited.bottom_line.lower(), cited.bottom_line


def test_a_vignette_is_answered_on_what_its_asking_sentence_asks(demo_index: Path) -> None:
    """"Septic shock on norepi 0.4 + vaso 0.03, adrenaline added 2 h ago ... lactate up 3.1 ->
    4.6. Failing resus?" was led by the vasopressor escalation algorithm alone: the story's
    drugs and pressures made it the closest unit, and the line saying serial lactate is
    unreliable on epinephrine stayed below (demo index)."""
    cited = demo_answer(
        demo_index,
        "Septic shock on norepi 0.4 + vaso 0.03, adrenaline added 2 h ago. Cap refill better,"
        " MAP 68, but lactate up 3.1 → 4.6. Failing resus?",
    )
    assert "lactate measurements may be unreliable" in cited.bottom_line, cited.bottom_line


ORGANISMS = """\
| Organism | First-Line | Alternatives |
|---|---|---|
| **MSSA** | Nafcillin or oxacillin | Vancomycin (if allergy) |
| **Gram-negative (susceptible)** | Ceftriaxone or cefotaxime | -- |
| **Pseudomonas** | Cefepime, ceftazidime, or meropenem | Aztreonam |
| **ESBL-producing GNB** | Meropenem | -- |
| **Candida** | Liposomal amphotericin B | Fluconazole (step-down) |
"""

DXA = """\
| Clinical Scenario | Recommended DXA Interval |
|---|---|
| On oral bisphosphonate therapy | Every 1-3 years |
| On denosumab | Every 1-2 years |
| On anabolic therapy (teriparatide, abaloparatide, romosozumab) | At end of treatment course |
"""


def test_a_tables_bottom_line_says_the_row_the_story_names_when_the_asking_sentence_names_none():
    """"CSF has now grown an ESBL-producing Klebsiella ... What do we switch to?" was answered
    with all eleven rows of the organism table (400 words)."""
    hits = [hit("mening", ORGANISMS, 1, title="Meningitis guideline", section="Organism-Specific Therapy")]  # fmt: skip
    cited = answer("CSF has now grown an ESBL-producing Klebsiella that's meropenem-susceptible. What do we switch to?", hits)  # fmt: skip
    assert "ESBL-producing GNB: First-Line is Meropenem" in cited.bottom_line, cited.bottom_line
    for other in ("MSSA", "Pseudomonas", "Gram-negative (susceptible)", "Candida"):
        assert other not in cited.bottom_line, cited.bottom_line
    # A drug names its row by its class: alendronate is an oral bisphosphonate.
    dxa = [hit("bone", DXA, 1, title="Osteoporosis guideline", section="When to Perform DXA")]
    repeat = answer("Once she's on alendronate, how often should I repeat her DXA?", dxa)
    assert "oral bisphosphonate therapy is Every 1-3 years" in repeat.bottom_line, repeat.bottom_line
    assert "denosumab" not in repeat.bottom_line


def test_the_drug_the_question_asks_about_leads_over_another_guidelines_statement_on_its_class():
    """"RA well controlled on certolizumab and she's planning a pregnancy. Stop it or carry
    on?" was answered from the asthma guideline ("Biologic therapy should be continued during
    pregnancy"), the rheumatology row for certolizumab left out as another guideline's."""
    asthma = hit(
        "gina", "- Biologic therapy should be continued during pregnancy if indicated "
        "(stopping may trigger loss of control).\n- Active management of asthma during "
        "pregnancy is strongly recommended.\n", 1, title="Asthma strategy",
        section="Asthma in pregnancy",
    )  # fmt: skip
    rheumatology = hit(
        "acr", "- Certolizumab pegol is strongly recommended for continuation when planning a "
        "pregnancy and during pregnancy.\n- JAK inhibitors should be discontinued before "
        "conception.\n", 2,
        title="Reproductive health in rheumatic disease", section="Medications",
    )  # fmt: skip
    cited = answer(
        "RA well controlled on certolizumab and she's planning a pregnancy. Stop it or carry on?",
        [asthma, rheumatology],
    )
    assert cited.bottom_line.startswith("Certolizumab pegol is strongly recommended"), cited.bottom_line
    # A drug's class names it: "MRA" for spironolactone.
    hfpef = hit(
        "hf", "- SGLT2i may be considered to reduce hospitalizations in HFpEF.\n- Loop diuretics "
        "for congestion in HFpEF.\n- MRA may be considered to reduce hospitalizations in "
        "HFpEF.\n", 1, title="Heart failure guideline", section="HFpEF",
    )  # fmt: skip
    adding = answer("HFpEF, EF 55%, repeated hospitalizations. Is spironolactone worth adding?", [hfpef])
    assert adding.bottom_line.startswith("MRA may be considered"), adding.bottom_line


def test_another_guidelines_statement_on_other_drugs_is_no_side_of_a_disagreement(demo_index: Path):
    """"RA on certolizumab, planning a pregnancy. Stop it or carry on?" was shown "Sources
    differ": GINA's "biologic therapy should be continued during pregnancy" (asthma's
    biologics) against the whole ACR list run together, whose "should be discontinued" (for
    JAK inhibitors) read as the other direction."""
    cited = demo_answer(
        demo_index, "RA well controlled on certolizumab and she's planning a pregnancy. Stop it or carry on?"
    )
    assert cited.bottom_line.startswith("Certolizumab pegol is strongly recommended"), cited.bottom_line
    assert "Sources differ" not in cited.answer and not cited.disagreements, cited.answer


TIMI_CRITERIA = """\
### Scoring Criteria
Assign 1 point for each of the following 7 independent variables present at admission:

- Age ≥ 65 years
- ≥3 CAD risk factors (family history of CAD, hypertension, hypercholesterolemia, diabetes mellitus, or current smoker)
- Known CAD (prior coronary stenosis ≥50%)
- Aspirin use in the past 7 days
- Severe angina (≥2 anginal events in the past 24 hours)
- ST-segment deviation ≥ 0.5 mm on presenting ECG
- Elevated cardiac markers (troponin or CK-MB)
"""
TIMI_BANDS = """\
| Risk Group | Score | Actionable Recommendation |
| :--- | :--- | :--- |
| **Low Risk** | 0-2 | Conservative strategy: non-invasive stress testing before discharge. |
| **Intermediate Risk** | 3-4 | Early invasive strategy: coronary angiography within 24–72 hours. |
| **High Risk** | 5-7 | Immediate invasive strategy: coronary angiography < 24 hours. |
"""
TIMI_DRUGS = """\
Upon an intermediate or high-risk TIMI score, before angiography:

1. **Antiplatelet therapy:**
   - **Aspirin:** 162–325 mg loading dose, then 81 mg daily.
   - **Ticagrelor:** 180 mg load, then 90 mg BID.
"""


def test_a_score_counts_the_risk_factors_the_story_names_and_its_band_row_leads():
    """"58M, diabetic, hypertensive, current smoker ... first troponin negative. TIMI score and
    when should he be cathed?" was added up as 3 with the negative troponin counted as
    elevated markers and the three risk factors not counted, and the bottom line gave the
    "TIMI ≥ 3" drug list, not the band row with the timing of angiography (its score is in
    the table's second column)."""
    title = "TIMI risk score for UA/NSTEMI"
    hits = [
        hit("timi", TIMI_CRITERIA, 1, title=title, section="TIMI Risk Score Calculation"),
        hit("timi", TIMI_DRUGS, 2, title=title, section="Pharmacotherapy (TIMI ≥ 3)"),
        hit("timi", TIMI_BANDS, 3, title=title, section="Actionable Risk Stratification"),
    ]
    cited = answer(
        "58M, diabetic, hypertensive, current smoker, no known CAD, takes aspirin 81 daily. ECG"
        " 0.5 mm ST depression V4-V6, first troponin negative. TIMI score and when should he"
        " go for angiography?",
        hits,
    )
    assert cited.bottom_line.startswith(
        "By the values given, TIMI is 3: 3 risk factors (hypertension, diabetes mellitus,"
        " current smoker) (1), aspirin use in the past 7 days (1), ST-segment deviation"
    ), cited.bottom_line
    assert "no elevated cardiac markers" in cited.bottom_line, cited.bottom_line
    assert "coronary angiography within 24–72 hours" in cited.bottom_line, cited.bottom_line
    # Two risk factors do not meet "≥3"; an ex-smoker is no current smoker.
    cited = answer(
        "70M ex-smoker, diabetic, hypertensive, on aspirin, troponin elevated. TIMI score?", hits
    )
    assert "TIMI is 3: age 70 (1)" in cited.bottom_line, cited.bottom_line
    assert "0 for 2 risk factors (hypertension, diabetes mellitus)" in cited.bottom_line
    # A normal troponin is no elevated marker, high cholesterol is hypercholesterolemia, and
    # "1 mm ST depression" (its millimetres before its name) is an ST deviation: this story
    # was added up as TIMI 2, low risk, conservative strategy.
    cited = answer(
        "62M with HTN, high cholesterol, current smoker, takes aspirin daily; 1 mm ST depression"
        " V4-6, first troponin normal, no known CAD. TIMI score and when should he go to the lab?",
        hits,
    )
    assert cited.bottom_line.startswith(
        "By the values given, TIMI is 3: 3 risk factors (hypertension, hypercholesterolemia,"
        " current smoker) (1), aspirin use in the past 7 days (1), ST-segment deviation 1 mm (1)"
    ), cited.bottom_line
    assert "no elevated cardiac markers" in cited.bottom_line, cited.bottom_line
    assert "coronary angiography within 24–72 hours" in cited.bottom_line, cited.bottom_line


HEART_TABLE = """\
| Component | 0 Points | 1 Point | 2 Points |
|---|---|---|---|
| **H**istory | Slightly suspicious | Moderately suspicious | Highly suspicious |
| **E**CG | Normal | Non-specific repolarization disturbance | Significant ST deviation |
| **A**ge | < 45 years | 45–64 years | ≥ 65 years |
| **R**isk factors | No known risk factors | 1–2 risk factors | ≥ 3 risk factors OR history of atherosclerotic disease |
| **T**roponin | ≤ normal limit | 1–3× normal limit | > 3× normal limit |

> Risk factors include: Hypertension, Diabetes Mellitus, current smoker, obesity (BMI > 30), hypercholesterolemia, family history of premature CAD.

- **HEART Score 0–3 (Low Risk):** Consider early discharge with outpatient follow-up.
- **HEART Score 4–6 (Moderate Risk):** Admit to observation unit for serial troponin.
- **HEART Score 7–10 (High Risk):** Early invasive strategy.
"""


def test_a_risk_factor_a_measurement_defines_is_counted_by_the_value_given():
    """"52F ... she has hypertension and a BMI of 33. HEART score and disposition?" counted no
    risk factor (the table's "1–2 risk factors" names none; its note below lists them, obesity
    as BMI > 30), added up 3 and gave the low-risk row."""
    hits = [hit("heart", HEART_TABLE, 1, title="Chest pain guideline", section="HEART Score")]
    cited = answer(
        "52F in ED with chest pain that's moderately suspicious, ECG shows non-specific"
        " repolarization changes, she has hypertension and a BMI of 33. HEART score and"
        " disposition?",
        hits,
    )
    assert "HEART is 4:" in cited.bottom_line, cited.bottom_line
    assert "2 risk factors (hypertension, obesity) (1)" in cited.bottom_line
    assert "Admit to observation unit" in cited.bottom_line, cited.bottom_line
    # "heart failure" in a story names no HEART score: nothing is added up.
    cited = answer(
        "Beta-blocker-naive 67M booked for a hip replacement. Insulin-treated diabetes and a TIA"
        " last year; no CAD, heart failure or renal impairment.",
        hits,
    )
    assert "By the values given" not in cited.bottom_line, cited.bottom_line


STEROIDS_DOSE = """\
The guideline suggests IV corticosteroids for adults with septic shock and an ongoing requirement for vasopressors.

- **Drug:** Hydrocortisone.
- **Dose:** 200 mg/day IV, administered as:
  - **50 mg IV every 6 hours**, OR
  - **Continuous IV infusion of 200 mg over 24 hours**
"""
STEROIDS_WHEN = """\
- **When to initiate:** Typically when norepinephrine dose is >= **0.25 mcg/kg/min** for at least **4 hours** after vasopressor initiation.
- **Duration:** Continue until vasopressors are no longer required, then taper.
"""


def test_a_part_asking_the_dose_is_answered_by_the_items_labelled_dose_with_its_nested_doses():
    """"Norepinephrine at 0.3 mcg/kg/min for 5 hours. Is it time for steroids, and what dose
    and schedule?" was answered by "When to initiate" alone: the "Dose:" item of the same
    list sat in the chunk before, and once shown it lost its "50 mg IV every 6 hours" to the
    story's "30 mL/kg" of crystalloid, read as a dose that rules the 50 mg out."""
    from rag.config import EmbedderSettings
    from rag.index.embedder import load_embedder

    hits = [
        hit("ssc", STEROIDS_WHEN, 1, title="Septic shock guideline", section="Corticosteroids"),
        hit("ssc", STEROIDS_DOSE, 2, title="Septic shock guideline", section="Corticosteroids"),
    ]
    question = (
        "Septic shock, 30 mL/kg crystalloid in, norepinephrine started 5 hours ago and now at"
        " 0.3 mcg/kg/min. Is it time for steroids, and what dose and schedule?"
    )
    # The parts of a question are told apart by the embedder, as `rag ask` does.
    draft = ExtractiveGenerator(load_embedder(EmbedderSettings())).generate(question, hits)
    cited = enforce_citations(draft.text, hits)
    assert "0.25 mcg/kg/min for at least 4 hours" in cited.bottom_line, cited.bottom_line
    assert "200 mg/day IV" in cited.bottom_line, cited.bottom_line
    assert "50 mg IV every 6 hours" in cited.answer, cited.answer
    assert "Continuous IV infusion of 200 mg over 24 hours" in cited.answer, cited.answer


def test_a_laboratory_value_given_as_a_bound_meets_the_nested_rule_for_it():
    """"Still exacerbating on dual bronchodilators with eos under 300: roflumilast or
    azithromycin?" showed "Add ICS if ≥ 300" and dropped the nested rule for eosinophils
    below 300: "eos" was no measurement, so 300 met nothing."""
    rule_below, rule_above = "If eosinophils < 300 cells/µL, add roflumilast", "Add ICS if eosinophils ≥ 300 cells/µL"  # fmt: skip
    assert match(question_values("COPD with eos under 300: roflumilast?"), rule_below) == 1
    assert match(question_values("FEV1 45% predicted, blood eos 340"), rule_below) == -1
    assert match(question_values("FEV1 45% predicted, blood eos 340"), rule_above) == 1
    # An eosinophil count is no FEV1: the rule's "FEV1 < 50%" does not contradict it.
    with_fev1 = "If eosinophils < 300 cells/µL, consider roflumilast (chronic bronchitis and FEV1 < 50%)"
    assert match(question_values("COPD with eos under 300: roflumilast?"), with_fev1) == 1



def test_criteria_met_together_are_the_bottom_line_for_the_drug_asked_about(demo_index: Path):
    """"Should eplerenone be added?" after a STEMI (age 63) led with clopidogrel's "Age <= 75
    years: 300 mg loading dose": the age met that row, the STEMI guideline's "Aldosterone
    Antagonists" were not read as naming eplerenone, and their criteria, nested under "all of
    the following:", were no list a bottom line could quote whole (demo index)."""
    cited = demo_answer(
        demo_index,
        "63F, day 3 after an anterior STEMI treated with primary PCI. Echo EF 38%. Lungs clear, "
        "no heart failure symptoms at any point, not diabetic. On ramipril 2.5 mg BD and "
        "bisoprolol 2.5 mg. Creatinine 0.9 mg/dL, K 4.2. Should eplerenone be added?",
    )
    assert "Either symptomatic heart failure OR diabetes mellitus" in cited.bottom_line, (
        cited.bottom_line
    )
    assert "No hyperkalemia (Serum potassium < 5.0 mEq/L)" in cited.bottom_line
    assert "P2Y12" not in cited.bottom_line and "clopidogrel" not in cited.bottom_line.lower()


def test_two_guidelines_the_question_names_each_answer_it(demo_index: Path):
    """"NICE says offer acid suppression to everyone admitted to critical care, but Surviving
    Sepsis sounds pickier" was answered from the sepsis guideline alone: NICE's critical-care
    recommendation was out of scope. Each guideline the question names now gives its line in
    the bottom line, and the answer lists both in its references (demo index)."""
    cited = demo_answer(
        demo_index,
        "NICE wants acid suppression for everyone admitted to critical care; Surviving Sepsis "
        "seems to want risk factors first. Who should get stress ulcer prophylaxis?",
    )
    assert "Offer acid-suppression therapy for primary prevention of UGIB" in cited.bottom_line, (
        cited.bottom_line
    )
    assert "risk factors for gastrointestinal bleeding" in cited.bottom_line, cited.bottom_line
    sources = {citation.doc_id.split("/")[0] for citation in cited.citations}
    assert {"nice_ugib_2012", "ssc_sepsis_2021"} <= sources, sources


def test_what_the_bottom_lines_headings_name_needs_no_second_clause(demo_index: Path):
    """"What does a CURB-65 score of 2 mean for site of care?" (one of the issue's three
    questions) was answered with the score-2 band and then "the CURB-65 score is the
    recommended tool for assessing the severity of community acquired pneumonia": the band
    says neither "CURB-65" nor "score", so the tool sentence joined as naming what the band
    left out. The band sits under "CURB-65 Score": its headings say it (demo index)."""
    cited = demo_answer(demo_index, "What does a CURB-65 score of 2 mean for site of care?")
    assert "Consider short inpatient stay or hospital-supervised outpatient treatment" in (
        cited.bottom_line
    ), cited.bottom_line
    assert "recommended tool" not in cited.bottom_line, cited.bottom_line


def test_a_dose_questions_bottom_line_gives_the_amount_not_a_line_naming_the_drug(
    demo_index: Path,
):
    """Asked for the epinephrine dose down the ET tube, the bottom line led with "Preferred
    route is IV (umbilical vein)": it names the drug, which a dose question also weighs, and the
    line giving the ET amount was among the best three (demo index). ("Newborn, no IV access
    yet" still leads with the saline flush's 0.5-1.0 mL, an amount too.)"""
    cited = demo_answer(
        demo_index,
        "Neonatal resus, UVC not in yet - what epinephrine dose via the ET tube, and what once "
        "the line is in?",
    )
    assert "0.05-0.1 mg/kg" in cited.bottom_line, cited.bottom_line


def test_a_blood_pressure_pair_is_a_systolic_and_a_diastolic_pressure():
    """"BP 192/104" is a systolic of 192 and a diastolic of 104: the ICH algorithm's "SBP
    150-220 mmHg?" branch is the patient's, "SBP < 150 mmHg?" is not (the 104 met it)."""
    values = question_values("Lobar ICH, BP 192/104, nicardipine going.")
    assert [(v.label, v.kind) for v in values] == [("SBP", "pressure"), ("DBP", "pressure")]
    assert match(values, "SBP 150-220 mmHg?") == 1
    assert match(values, "SBP < 150 mmHg?") == -1
    # Below a pair is below both; above it, above either.
    assert match(values, "BP < 185/110 mmHg") == -1
    assert match(values, "BP > 185/110 mmHg") == 1
    assert match(question_values("BP 80/50"), "systolic blood pressure < 90 mmHg") == 1
    assert match(question_values("now sitting at 124 systolic"), "Avoid SBP < 130 mmHg") == 1
    # A drug's strength is no measurement: "200/6" meets no "200-400" band.
    assert question_values("on budesonide-formoterol 200/6 MART") == []


def test_an_amount_to_give_is_no_condition_and_an_age_band_written_60_plus_is_one():
    # "on citalopram 40" is a dose of 40; the heading "Age 60+" holds for a woman of 72, and
    # "adults over 60 years" is an age, not a time.
    values = question_values("72yo been on citalopram 40 for years from another GP.")
    assert [v.kind for v in values] == ["age", "dose"]
    assert match(values, "Citalopram: maximum 20 mg/day in adults over 60 years") == 1
    assert match(values, "Pharmacotherapy for Older Adults (Age 60+)") == 1
    assert conditions("in adults over 60 years")[0].kind == "age"
    # "SBP in the 90s" is no amount of nimodipine.
    dips = question_values("SBP dips into the 90s after every nimodipine dose. Stop it?")
    assert match(dips, "If the patient cannot tolerate 60 mg every 4 hours, reduce to 30 mg") == 0
    # An intracranial pressure is no osmolality; the end of "INR 2-3" is an INR, no CrCl.
    assert match(question_values("Severe TBI with EVD, ICP 28"), "hold if >= 320 mOsm/L") == 0
    assert match(question_values("every INR 2-3"), "CrCl < 30 mL/min?") == 0
    # "His eos came back at 110" is an eosinophil count: the ">= 300" ICS rule is not his.
    came_back = question_values("His eos came back at 110. What would GOLD add?")
    assert match(came_back, "Add ICS if blood eosinophils >= 300 cells/µL") == -1


HYPEROSMOLAR_TREE = """\
### Hyperosmolar Therapy Decision Algorithm

```
ICP > 22 mmHg despite first-line measures (HOB elevation, sedation, CSF drainage)
  --> Is ICP monitoring in place?
      --> YES: Administer mannitol 0.25-1 g/kg IV bolus
          --> Check SBP: must be >= 90 mmHg
          --> Monitor serum osmolality: hold if >= 320 mOsm/L
          --> Reassess ICP in 15-30 minutes
      --> NO: Signs of transtentorial herniation?
          --> YES: Administer mannitol 0.25-1 g/kg IV bolus [Level III]
          --> NO: Establish ICP monitoring before initiating hyperosmolar therapy
```
"""


def test_the_branch_a_pressure_meets_keeps_the_osmolality_at_which_to_hold():
    """"ICP 28 ... Mannitol dose, and what serum osm makes me hold it?" lost the branch saying
    "hold if >= 320 mOsm/L": the ICP of 28 was read against the osmolality and failed it."""
    tbi = hit("tbi", HYPEROSMOLAR_TREE, 1, title="TBI guideline", section="Hyperosmolar Therapy")
    cited = answer(
        "Severe TBI with EVD, ICP 28 despite sedation and draining CSF. Mannitol dose, and what"
        " serum osm makes me hold it?",
        [tbi],
    )
    assert "hold if >= 320 mOsm/L" in cited.bottom_line, cited.bottom_line
    assert "YES: Administer mannitol 0.25-1 g/kg IV bolus" in cited.bottom_line


ICS_AND_MART = """\
### ICS Dose Categories for Adults

| ICS Drug | Low Dose (mcg/day) | Medium Dose (mcg/day) | High Dose (mcg/day) |
|---|---|---|---|
| Budesonide (DPI) | 200-400 | >400-800 | >800 |
| Fluticasone propionate (DPI) | 100-250 | >250-500 | >500 |

### MART

- Reliever: As-needed low-dose ICS-formoterol (e.g., budesonide-formoterol 200/6 mcg, 1 inhalation as needed)

Note: The maximum recommended total formoterol dose from both maintenance and reliever use is 48 mcg/day (12 actuations of budesonide-formoterol 200/6 mcg).
"""


def test_a_question_asking_a_ceiling_is_answered_by_the_maximum_even_in_a_note():
    """"budesonide-formoterol 200/6 MART ... max puffs per day?" was answered with the reliever
    line (on the demo index, with the budesonide row of the ICS dose table: its "200" met
    "200-400"); the note giving the maximum is the answer."""
    gina = hit("gina", ICS_AND_MART, 1, title="GINA", section="Pharmacotherapy")
    cited = answer(
        "Pt on budesonide-formoterol 200/6 MART using it a lot - max puffs per day including"
        " the reliever ones?",
        [gina],
    )
    assert cited.bottom_line.startswith(
        "Note: The maximum recommended total formoterol dose from both maintenance and reliever"
        " use is 48 mcg/day"
    ), cited.bottom_line


SEPTIC_SHOCK_VASOPRESSORS = """\
### Vasopressor Algorithm

```
Septic shock: MAP < 65 mmHg despite initial fluid resuscitation
  --> Start norepinephrine (first-line)
      --> MAP not at target on norepinephrine 0.25-0.5 mcg/kg/min?
          --> Add vasopressin 0.03 units/min (fixed dose)
```

- Vasopressin is typically started when the norepinephrine dose is in the range of 0.25-0.5 mcg/kg/min.
"""

RRT_PRESCRIPTION = """\
### RRT Prescription

1. **Modality:** If hemodynamically unstable: use CRRT (Grade 2B).
2. **Dosing:**
   - CRRT: Target effluent 20-25 mL/kg/h (Grade 1A).
   - IHD: Target Kt/V 3.9 per week (Grade 1A).
3. **Anticoagulation:**
   - If CRRT and no contraindication to citrate: regional citrate (Grade 2B).
   - If IHD: UFH or LMWH (Grade 1C).
"""


def test_a_follow_up_on_a_topic_of_its_own_is_not_answered_with_the_conversations_numbers():
    """After a septic-shock story ("norad 0.3"), "Starting RRT - CRRT or IHD, what effluent
    dose, and which anticoagulant?" was answered with the vasopressin branch its context's 0.3
    met and the norepinephrine it dosed; the RRT dosing answers it."""
    sepsis = hit("ssc", SEPTIC_SHOCK_VASOPRESSORS, 1, title="Surviving Sepsis Campaign", section="Vasopressors")  # fmt: skip
    rrt = hit("kdigo", RRT_PRESCRIPTION, 2, title="KDIGO AKI", section="Renal Replacement Therapy")  # fmt: skip
    cited = answer(
        "Starting RRT - CRRT or IHD, what effluent dose, and which anticoagulant if nothing"
        " contraindicates it? (context: septic shock icu norad (norepinephrine) 0.3 anuric 18"
        " 6.9 despite insulin-dextrose binders)",
        [sepsis, rrt],
    )
    assert cited.bottom_line.startswith(
        "Dosing: CRRT: Target effluent 20-25 mL/kg/h (Grade 1A)"
    ), cited.bottom_line


NIMODIPINE = """\
## Nimodipine

- **Dosing:** Nimodipine 60 mg orally (or via enteral tube) every 4 hours for **21 days** from SAH onset.
- **Hemodynamic intolerance:** If the patient cannot tolerate 60 mg every 4 hours due to hypotension, reduce to **30 mg every 2 hours**.
- Nimodipine is the **only FDA-approved agent** for improving outcomes in aSAH.
"""


def test_asked_whether_to_stop_a_drug_the_line_saying_how_to_change_it_answers():
    """"SBP dips into the 90s after every nimodipine dose. Stop it, or change how it's
    given?" was answered with the usual dose: "the 90s" failed the "60 mg" of the line that
    says what to do, and "reduce to" read as no recommendation."""
    sah = hit("sah", NIMODIPINE, 1, title="aSAH guideline", section="Medical Management")
    cited = answer(
        "SBP dips into the 90s after every nimodipine dose. Stop it, or change how it's given?"
        " (context: asah hunt-hess 2 aneurysm coiled morning 60 mg q4h ng started)",
        [sah],
    )
    assert "reduce to 30 mg every 2 hours" in cited.bottom_line, cited.bottom_line


def test_each_part_of_a_question_asking_two_things_finds_its_passage(demo_index: Path) -> None:
    """"CURB-65 2 pneumonia, improving, stepped down to oral amox + clari. Total abx length,
    and does a 62yo smoker need a repeat CXR?" was answered from the antibiotic passages only:
    the discharge section's "CXR at 6 weeks" came up only when its part was searched alone."""
    cited = demo_answer(
        demo_index,
        "CURB-65 2 pneumonia, improving, stepped down to oral amox + clari. Total abx length, and"
        " does a 62yo smoker need a repeat CXR?",
    )
    shown = f"{cited.bottom_line}\n{cited.answer}"
    assert "CXR at 6 weeks" in shown or "Chest X-ray follow-up arranged at 6 weeks" in shown, shown


HHS_INSULIN = """\
### Insulin Therapy for HHS

| Clinical Scenario | Insulin Regimen |
|---|---|
| HHS with significant ketonemia (beta-hydroxybutyrate >= 3.0 mmol/L) | Fixed-rate IV infusion at 0.1 units/kg per hour |
| HHS without significant ketonemia (beta-hydroxybutyrate < 3.0 mmol/L) | Fixed-rate IV infusion at 0.05 units/kg per hour |
"""
HHS_MONITORING = """\
### Monitoring During Insulin Therapy

| Parameter | Frequency | Target |
|---|---|---|
| Capillary glucose | Every 1-2 hours | Decline of 50-75 mg/dL per hour |
| Venous pH and bicarbonate | Every 4 hours | pH >= 7.3 and bicarbonate >= 18 mmol/L |
"""


def test_a_follow_up_is_read_against_the_measurements_the_story_gave():
    """"74M, 80 kg, glucose 920, ..., BHB 1.1 mmol/L, pH 7.35 ..." then "once the insulin goes
    on, what rate?": the condensed follow-up kept the story's words but not its numbers, so
    its "74" and "80" met "pH >= 7.3" and the monitoring table led; the ketone level picks
    the HHS row."""
    history = [
        Turn(
            "74M, 80 kg, glucose 920 mg/dL, effective osm 348, BHB 1.1 mmol/L, pH 7.35, bicarb"
            " 22, K 4.4. Saline running.",
            "Bottom line: Fluid resuscitation takes priority [1].",
        )
    ]
    condensed = condense_deterministic("once the insulin goes on, what rate?", history)
    assert "BHB 1.1 mmol/L" in condensed and "pH 7.35" in condensed, condensed
    monitoring = hit("dka", HHS_MONITORING, 1, title="DKA and HHS", section="Monitoring")
    insulin = hit("dka-insulin", HHS_INSULIN, 2, title="DKA and HHS", section="Insulin")
    cited = answer(condensed, [monitoring, insulin])
    assert "0.05 units/kg per hour" in cited.bottom_line, cited.bottom_line
    assert "0.1 units/kg" not in cited.bottom_line, cited.bottom_line
    # In a conversation about a score, the score is carried, not the story's measurements: they
    # would pick the score's criteria rows over the row for the score they add up to.
    curb = [Turn("78M, newly confused, urea 9 mmol/L, RR 32, BP 110/70. What's his CURB-65?", "")]
    condensed = condense_deterministic("Which IV antibiotics should he get then?", curb)
    assert "CURB-65" in condensed and "urea 9 mmol/L," not in condensed, condensed


NFS_TABLE = """\
## NAFLD Fibrosis Score (NFS)

| NFS Result | Interpretation |
|---|---|
| **< −1.455** | Low risk of advanced fibrosis (NPV 93%) |
| **−1.455 to 0.676** | Indeterminate |
| **> 0.676** | High risk of advanced fibrosis (PPV 90%) |
"""


def test_a_negative_score_picks_the_row_for_negative_scores():
    """"NAFLD fibrosis score of −1.9 ... how do I read that?" read 1.9, and the "> 0.676"
    row (high risk) led; a T-score of -1.9 met "T-score <= -2.5"."""
    nafld = hit("nafld", NFS_TABLE, 1, title="MASLD guidance", section="Fibrosis Assessment")
    cited = answer("NAFLD fibrosis score of −1.9 in a 47-year-old — how do I read that?", [nafld])
    assert "Low risk of advanced fibrosis" in cited.bottom_line, cited.bottom_line
    assert "High risk" not in cited.bottom_line, cited.bottom_line
    t_score = question_values("DXA today shows total hip T -1.9")
    assert match(t_score, "Osteoporosis: T-score <= -2.5") < 0
    assert match(t_score, "Osteopenia: T-score between -1.0 and -2.5") > 0
    # A range written with a hyphen stays a range.
    assert [v.number for v in question_values("lispro every 1-2 hours")] == [1.0, 2.0]


SGLT2_PILLAR = """\
### Pillar 4: SGLT2 Inhibitors (Class I, LOE A)

- No dose titration required.
- Can be initiated regardless of diabetes status.
- **Caution if eGFR < 20 mL/min/1.73 m²** (limited data; do not initiate below this threshold but can continue if eGFR declines after initiation).
"""
GDMT_TREE = """\
### GDMT Initiation Algorithm
```
Patient with symptomatic HFrEF (LVEF ≤ 40%)
  → Start dapagliflozin 10 mg daily or empagliflozin 10 mg daily
```
"""


def test_a_numbered_heading_is_no_condition_of_the_lines_under_it():
    """"HFrEF with eGFR 18 — can I start dapagliflozin?" was answered with the initiation
    algorithm: the eGFR of 18 failed "Pillar 4" of the heading the eGFR rule sits under."""
    tree = hit("hf", GDMT_TREE, 1, title="HF guideline", section="GDMT")
    pillar = hit(
        "hf-sglt2", SGLT2_PILLAR, 2, title="HF guideline",
        section="Pharmacotherapy > Pillar 4: SGLT2 Inhibitors (Class I, LOE A)",
    )  # fmt: skip
    cited = answer(
        "HFrEF with eGFR 18 — can I start dapagliflozin? And if he was already on it and drifted"
        " below 20?",
        [tree, pillar],
    )
    assert cited.bottom_line.startswith("Caution if eGFR < 20"), cited.bottom_line
    assert conditions("Statement 3: Use of Biomarkers") == []


ABSOLUTE_CONTRAINDICATIONS = """\
### Absolute Contraindications

The following are absolute contraindications to IV alteplase:
- Active internal bleeding (excluding menses)
- BP persistently > 185/110 mmHg despite treatment
- Platelet count < 100,000/mm³
- INR > 1.7 or PT > 15 seconds
- Blood glucose < 50 mg/dL
"""
NIHSS_TABLE = """\
### NIHSS Severity Classification

| NIHSS Score | Severity | Clinical Implication |
|---|---|---|
| 0–4 | Minor stroke | Consider alteplase if disabling deficit |
| 5–15 | Moderate stroke | IV alteplase indicated if within time window. Assess for LVO. |
"""


def test_a_contraindication_the_values_meet_opens_the_bottom_line():
    """"72M, LKW 90 min, NIHSS 9, ..., known ITP with platelets 88,000. Alteplase?" led with
    the NIHSS row ("IV alteplase indicated"); the platelet count it gives meets an absolute
    contraindication, which the answer showed only further down."""
    stroke = hit("stroke", NIHSS_TABLE, 1, title="AIS guideline", section="ED Evaluation")
    ruled_out = hit(
        "stroke-ci", ABSOLUTE_CONTRAINDICATIONS, 2, title="AIS guideline",
        section="IV Alteplase > Absolute Contraindications",
    )  # fmt: skip
    question = "72M, LKW 90 min, NIHSS 9, CT clear, BP {bp}, platelets {platelets}. Alteplase?"
    cited = answer(question.format(bp="164/90", platelets="88,000"), [stroke, ruled_out])
    assert cited.bottom_line.startswith(
        "By the values given, these contraindications (Absolute Contraindications) are met:"
        " Platelet count < 100,000/mm³"
    ), cited.bottom_line
    assert "185/110" not in cited.bottom_line.split("[")[0], cited.bottom_line
    # Platelets above the bound meet no contraindication.
    cited = answer(question.format(bp="164/90", platelets="210,000"), [stroke, ruled_out])
    assert "are met" not in cited.bottom_line, cited.bottom_line
    # A glucose written without its unit is read in the unit of the ward that wrote it: "7"
    # (mmol/L) meets no "< 50 mg/dL"; "45 mg/dL" does.
    story = "72M, LKW 90 min, NIHSS 9, CT clear, BP 164/90, platelets 210,000, glucose {}. Alteplase?"
    cited = answer(story.format("7"), [stroke, ruled_out])
    assert "are met" not in cited.bottom_line, cited.bottom_line
    cited = answer(story.format("45 mg/dL"), [stroke, ruled_out])
    assert "are met: Blood glucose < 50 mg/dL" in cited.bottom_line, cited.bottom_line


def test_a_test_the_question_reports_normal_picks_the_line_for_a_normal_result(demo_index: Path):
    """"GCS 6 post resus, extensor posturing, SBP 84 on arrival, CT head reported normal.
    Still need an ICP bolt?" led with BTF's indication for an abnormal CT scan; the line for a
    normal CT scan (two or more of age > 40, posturing, SBP < 90) is this patient's."""
    cited = demo_answer(
        demo_index,
        "52M fell off a ladder, GCS 6 post resus, extensor posturing, SBP 84 on arrival, CT head"
        " reported normal. Still need an ICP bolt? What ICP do we treat?",
    )
    assert "with a normal CT scan if two or more" in cited.bottom_line, cited.bottom_line
    assert "and an abnormal CT scan" not in cited.bottom_line, cited.bottom_line


PHQ9_RESPONSE = """\
### Assessing Response at 8 Weeks

- If remission achieved (PHQ-9 < 5): continue treatment for 4-9 months.
- If partial response (25-49% reduction): optimize dose or increase session frequency; reassess at 4 weeks.
- If non-response (<25% reduction): switch antidepressant or augment.
"""


def test_a_score_given_at_baseline_and_now_is_read_as_its_reduction():
    """"PHQ-9 20 at baseline and 13 today. Responder or not, and what next?" was answered
    with the non-response branch: neither reading is a percent, so no branch was met."""
    depression = hit("mdd", PHQ9_RESPONSE, 1, title="Depression guideline", section="Follow-up")
    cited = answer(
        "42M on sertraline 100 mg for 8 weeks, PHQ-9 20 at baseline and 13 today. Responder or"
        " not, and what next?",
        [depression],
    )
    assert cited.bottom_line.startswith("If partial response (25-49% reduction)"), cited.bottom_line
    # A creatinine that rises from baseline is no score's reduction.
    assert [v for v in question_values("baseline Cr 0.9, today 2.0 mg/dL") if v.kind == "percent"] == []
