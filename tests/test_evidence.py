"""Evidence a clinician can weigh: the grade (direct / partial / none), what the sources do not
say, and sources that disagree (newer first, older marked), on small documents written for the
tests and indexed with the real embedder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rag.answer import Engine
from rag.generate.agreement import differ
from rag.generate.evidence import missing_facets, question_facets
from rag.render import answer_markdown
from rag.types import Document, Hit

from .conftest import build_index, settings_for

DOCUMENTS = [
    Document(
        id="acc-htn-2017",
        title="Guideline for High Blood Pressure in Adults",
        source="ACC/AHA",
        year=2017,
        text=(
            "## Blood pressure in chronic kidney disease\n\n"
            "In adults with chronic kidney disease (CKD), the blood pressure target is below "
            "130/80 mmHg, a systolic blood pressure below 130 mmHg.\n"
        ),
    ),
    Document(
        id="kdigo-bp-2024",
        title="Clinical Practice Guideline for Blood Pressure in Chronic Kidney Disease",
        source="KDIGO",
        year=2024,
        text=(
            "## Blood pressure targets\n\n"
            "In adults with chronic kidney disease (CKD) and high blood pressure, target a "
            "systolic blood pressure below 120 mmHg when tolerated.\n"
        ),
    ),
    Document(
        id="acr-gout-2020",
        title="Guideline for the Management of Gout",
        source="ACR",
        year=2020,
        text=(
            "## Treating a gout flare\n\n"
            "For a gout flare, low-dose colchicine is given as 1.2 mg at the first sign of "
            "the flare followed by 0.6 mg one hour later.\n"
        ),
    ),
    Document(
        id="ward-note-2024",
        title="Ward 7 pharmacy note: colchicine",
        source="Ward 7 pharmacy",
        year=2024,
        text=(
            "## Colchicine for a gout flare\n\n"
            "For a gout flare on the ward, colchicine is given as 1 mg at the first sign of "
            "the flare followed by 0.5 mg one hour later.\n"
        ),
    ),
    Document(
        id="sepsis3-2016",
        title="Third International Consensus Definitions for Sepsis",
        source="Sepsis-3",
        year=2016,
        text=(
            "## qSOFA\n\n"
            "The qSOFA score should serve as a bedside prompt that identifies adults with "
            "suspected infection likely to have poor outcomes outside the intensive care unit.\n"
        ),
    ),
    Document(
        id="ssc-2021",
        title="Surviving Sepsis Campaign: International Guidelines",
        source="SSC",
        year=2021,
        text=(
            "## Screening for sepsis\n\n"
            "The SSC recommends against using qSOFA compared with SIRS, NEWS or MEWS as a single "
            "screening tool for sepsis or septic shock.\n"
        ),
    ),
    Document(
        id="vte-2020",
        title="Guideline for the Treatment of Venous Thromboembolism",
        source="ASH",
        year=2020,
        text=(
            "## Apixaban for deep vein thrombosis\n\n"
            "For acute deep vein thrombosis in adults, apixaban is given at 10 mg twice daily "
            "for 7 days, then 5 mg twice daily.\n"
        ),
    ),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    index = build_index(tmp_path_factory.mktemp("evidence") / "index", DOCUMENTS)
    return Engine.load(settings_for(Path(index)))


def test_two_guidelines_disagreeing_on_a_threshold_are_both_shown_newer_first(engine: Engine):
    answer = engine.ask(
        "What systolic blood pressure target for adults with chronic kidney disease?"
    )
    assert not answer.abstained
    [disagreement] = answer.disagreements
    sides = disagreement["sides"]
    assert [side["source"] for side in sides] == ["KDIGO 2024", "ACC/AHA 2017"]
    by_number = {citation.n: citation for citation in answer.citations}
    assert {by_number[side["citation"]].doc_id for side in sides} == {
        "kdigo-bp-2024",
        "acc-htn-2017",
    }
    shown = answer_markdown(answer)
    assert "Sources differ on this point" in shown
    newer = shown.index("KDIGO 2024 (newer)")
    older = shown.index("ACC/AHA 2017 (older guidance)")
    assert newer < older
    assert "120 mmHg" in shown and "130 mmHg" in shown
    payload = json.loads(json.dumps(answer.to_json()))
    assert payload["disagreements"][0]["sides"][0]["year"] == 2024


def test_a_local_note_with_another_dose_does_not_silently_lead(engine: Engine):
    answer = engine.ask("What colchicine dose for a gout flare?")
    assert not answer.abstained
    shown = answer_markdown(answer)
    assert "1.2 mg" in shown and "1 mg" in shown, shown
    assert answer.disagreements, shown
    sources = {side["source"] for side in answer.disagreements[0]["sides"]}
    assert sources == {"ACR 2020", "Ward 7 pharmacy 2024"}


def test_an_adult_only_dose_asked_for_a_child_is_partial_and_says_what_is_missing(engine: Engine):
    child = engine.ask("What apixaban dose for deep vein thrombosis in an 8-year-old child?")
    assert not child.abstained
    assert child.evidence.grade == "partial"
    assert "children" in child.evidence.statement()
    assert child.bottom_line.startswith("The cited sources do not address an apixaban dose for children")
    assert "10 mg twice daily" in child.bottom_line  # what the sources do say follows
    shown = answer_markdown(child)
    assert "**Evidence:** partial: The cited sources do not address an apixaban dose for children" in shown
    # Said once on the Evidence line, not again as the body's first paragraph (the JSON's
    # answer text keeps it for readers without the grade).
    assert shown.count("The cited sources do not address an apixaban dose for children, such as an 8-year-old.") == 1
    assert child.answer.startswith(child.evidence.statement())

    adult = engine.ask("What apixaban dose for acute deep vein thrombosis in adults?")
    assert adult.evidence.grade == "direct"
    assert adult.evidence.missing == ()
    assert not adult.bottom_line.startswith("No indexed source")


def test_a_question_the_sources_do_not_cover_is_graded_none(engine: Engine):
    answer = engine.ask("What is the first-line eradication regimen for Helicobacter pylori?")
    assert answer.abstained
    assert answer.citations == ()
    assert answer.to_json()["evidence"]["grade"] == "none"


def test_facets_come_from_the_question_and_are_checked_in_the_cited_passages():
    assert set(question_facets("Ticagrelor dose in pregnancy, and for how long?")) == {
        "pregnancy", "ticagrelor", "a dose", "a duration"
    }  # fmt: skip
    adult = Hit("c1", "d1", "Adults: enoxaparin 1 mg/kg twice daily for 5 days.", 1.0, 1)
    child = Hit("c2", "d2", "In children, enoxaparin 1 mg/kg twice daily.", 0.9, 2)
    question = "Enoxaparin dose for a 6-year-old?"
    assert missing_facets(question, [adult]) == ("an enoxaparin dose for children, such as a 6-year-old",)
    assert missing_facets(question, [adult, child]) == ()


def test_a_missing_dose_or_population_is_named_as_the_question_asks_for_it():
    banding = Hit("c1", "d1", "Carvedilol is preferred after band ligation of varices.", 1.0, 1)
    asked = "Using propranolol instead of carvedilol after banding. What propranolol dose do I start?"
    assert missing_facets(asked, [banding]) == ("a propranolol dose",)
    per_kg = "Starting hydroxychloroquine in a 50 kg woman. What's the max daily dose in mg/kg?"
    flat = Hit("c2", "d2", "Hydroxychloroquine 400 mg daily for low disease activity.", 1.0, 1)
    assert missing_facets(per_kg, [flat]) == ("a hydroxychloroquine dose in mg/kg",)
    # Dialysis is its own population: a passage on eGFR bands does not cover it.
    ckd = Hit("c3", "d3", "Vancomycin: adjust the dose for eGFR < 30 and trough levels.", 1.0, 1)
    dialysis = "MRSA endocarditis in a pt on hemodialysis. How do I dose vancomycin?"
    assert missing_facets(dialysis, [ckd]) == ("a vancomycin dose for patients on hemodialysis",)
    on_dialysis = "MRSA endocarditis in a pt on dialysis. How do I dose vancomycin?"
    assert missing_facets(on_dialysis, [ckd]) == ("a vancomycin dose for patients on dialysis",)
    assert "prazosin" in question_facets("Could prazosin cut his drinking?")


def test_a_value_asked_in_a_unit_is_missing_unless_a_passage_gives_one_in_it():
    question = "FEV1 went from 62% to 55% predicted. What yearly decline in mL/year is rapid?"
    percent = Hit("c1", "d1", "Spirometry: FEV1 < 80% predicted confirms obstruction.", 1.0, 1)
    volume = Hit("c2", "d2", "A decline of more than 60 mL/year in FEV1 is rapid.", 1.0, 1)
    assert missing_facets(question, [percent]) == ("a value in mL/year",)
    assert missing_facets(question, [volume]) == ()


def test_a_childhood_history_or_a_dose_as_an_event_is_no_facet_asked_for():
    # The patient's allergy history is not a paediatric question; the first dose is when a
    # course starts, not an amount; "how much ST deviation" asks a threshold, not a dose.
    allergy = "74M, anaphylaxis to amoxicillin as a child, severe CAP. Which IV regimen?"
    assert "children" not in question_facets(allergy)
    course = "Does the 6-week course count from the first dose or the first negative culture?"
    assert "a dose" not in question_facets(course)
    assert "a dose" not in question_facets("How much ST deviation earns the TIMI point?")
    assert "a dose" in question_facets("How much heparin after the first dose?")
    # "How much does it fall per kg lost?" asks an effect, not a dose in mg/kg.
    effect = "Overweight hypertensive: roughly how much does systolic BP fall per kg lost?"
    assert "a dose" not in question_facets(effect)
    assert "a dose" in question_facets("How much enoxaparin per kg?")
    # The patient's medicines in the story are what they take, not what is asked about.
    rate = "Permanent AF on max metoprolol plus digoxin. What is left for rate control?"
    assert question_facets(rate) == {}
    assert "prazosin" in question_facets("Drinking again on naltrexone. Could prazosin help?")


def test_a_population_is_named_by_the_patients_age_and_role():
    # A 17-year-old is an adolescent ("children" named a near miss about adolescents wrongly);
    # the baby of a father asking about his own depression gives no paediatric facet.
    teen = question_facets("17-year-old with severe AUD. Naltrexone at his age?")
    assert "adolescents under 18, such as a 17-year-old" in teen and "children" not in teen
    croup = question_facets("4-year-old with croup: dexamethasone dose?")
    assert "children, such as a 4-year-old" in croup
    dad = "New dad of a 6-week-old, flat since the birth. Does EPDS screening extend to fathers?"
    assert list(question_facets(dad)) == ["fathers"]


def test_what_the_sources_lack_is_said_of_the_cited_sources_or_of_the_index_as_checked():
    from rag.generate.evidence import Evidence

    # A facet is checked in the cited passages only: another guideline may name the drug.
    cited = Evidence("partial", missing=("lisinopril",))
    assert cited.statement() == "The cited sources do not address lisinopril."
    # A term no passage of the index contains is said to be missing from the index.
    both = Evidence("partial", missing=("a dose",), unindexed=("pyloric",))
    assert both.gap() == "The cited sources do not address a dose; no indexed source mentions 'pyloric'"
    assert both.to_json()["unindexed"] == ["pyloric"]


def test_statements_differ_on_amounts_or_direction_not_on_wording():
    assert differ("Target a systolic below 120 mmHg.", "Target a systolic below 130 mmHg.")
    assert differ("Target systolic BP < 120 mmHg in CKD.", "BP target: < 130/80 mm Hg.")
    assert not differ("BP target: < 130/80 mm Hg.", "Aim for a BP below 130/80 mmHg.")
    # The same dose with a note on whom to avoid it in is no conflict on a dose question.
    assert not differ(
        "Nicardipine 5 mg/h IV, up by 2.5 mg/h every 5-15 min; maximum 15 mg/h; preferred.",
        "Nicardipine 5 mg/hr, titrate by 2.5 mg/hr; max 15 mg/hr; preferred; avoid in acute HF.",
        doses_only=True,
    )
    assert differ("CURB-65 is the recommended tool.", "PSI is preferred over CURB-65.")
    assert not differ("Give 1.2 mg then 0.6 mg.", "Colchicine 1.2 mg, then 0.6 mg an hour later.")
    assert not differ("Start within 24 hours.", "Begin treatment within 24 h.")
    # A dose beside a statement about which drug to prefer is not a disagreement.
    assert not differ("Apixaban: standard dose is 5 mg BID.", "DOACs are preferred over warfarin.")
    # Two ways of preferring the same drug agree; a limitation takes no side.
    assert not differ("DOACs are recommended over warfarin.", "DOACs are now preferred over warfarin.")
    assert not differ(
        "CURB-65 has less supporting evidence than PSI.", "CURB-65 does not account for oxygen."
    )
    # Asked for a dose, two statements differ on a dose, not on the times they mention.
    wake_up = "IV alteplase can be given if the event is likely within 4.5 hours."
    blood_pressure = "After alteplase, maintain BP < 180/105 mm Hg for the first 24 hours."
    assert differ(wake_up, blood_pressure)
    assert not differ(wake_up, blood_pressure, doses_only=True)
    assert differ("Give 20 mg daily.", "Give 15 mg daily.", doses_only=True)


def test_prefer_newer_moves_a_newer_source_ahead_only_when_scores_are_close():
    from rag.retrieve import newer_first

    older = Hit("a", "bts", "CURB-65 for site of care.", 1.00, 1, year=2009)
    newer = Hit("b", "ats", "PSI preferred over CURB-65.", 0.97, 2, year=2019)
    far = Hit("c", "new", "Unrelated newer text.", 0.50, 3, year=2024)
    ranked = newer_first([older, newer, far], 0.05)
    assert [hit.chunk_id for hit in ranked] == ["b", "a", "c"]
    assert [hit.rank for hit in ranked] == [1, 2, 3]
    assert [hit.chunk_id for hit in newer_first([older, newer, far], 0.01)] == ["a", "b", "c"]


def test_a_score_named_only_by_its_thresholds_lacks_its_components():
    thresholds = Hit(
        "t", "af", "The CHA2DS2-VASc score is the recommended tool.\n\n"
        "- CHA2DS2-VASc = 0: No antithrombotic therapy.\n- CHA2DS2-VASc = 1: OAC may be "
        "considered.\n- CHA2DS2-VASc ≥ 2: OAC is recommended.\n", 1.0, 1,
        section="Stroke Risk Assessment (CHA2DS2-VASc)",
    )  # fmt: skip
    cardioversion = Hit(
        "c", "af", "- Continue OAC for 4 weeks regardless of CHA2DS2-VASc score.\n"
        "- Rate control first.\n- Anticoagulate before cardioversion.\n", 0.9, 2,
        section="Cardioversion",
    )  # fmt: skip
    question = "What are the components of the CHA2DS2-VASc score?"
    assert missing_facets(question, [thresholds, cardioversion]) == (
        "the components of CHA2DS2-VASc",
    )
    components = Hit(
        "s", "tia", "| Component | Criterion | Points |\n|---|---|---|\n| Age | ≥ 60 years | 1 |\n"
        "| Blood pressure | ≥ 140/90 mmHg | 1 |\n| Diabetes | History of diabetes | 1 |\n",
        0.8, 3, section="ABCD2 Score > Score Components",
    )  # fmt: skip
    assert missing_facets("What are the components of the ABCD2 score?", [components]) == ()
    assert missing_facets("What are the components of the ABCD2 score?", [thresholds]) == (
        "the components of ABCD2",
    )


def test_a_dose_the_section_expansion_brought_is_not_reported_missing():
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    # The gate saw no dose in the top hits; the answer cites the protocol the expansion added.
    coverage = Coverage(0.5, 0.6, ("window",), (), True)
    protocol = Hit("p", "stroke", "- Dose: 0.9 mg/kg of alteplase (maximum 90 mg).", 1.0, 1)
    evidence = grade_evidence("How do I dose alteplase?", coverage, [protocol], direct_score=1.3)
    assert "a dose" not in evidence.missing
    table = Hit("t", "stroke", "| 5–15 | Moderate stroke | IV alteplase indicated |", 1.0, 1)
    evidence = grade_evidence("How do I dose alteplase?", coverage, [table], direct_score=1.3)
    assert evidence.missing == ("a dose",)


def test_sources_on_one_point_are_found_by_meaning_when_they_share_few_words(engine: Engine):
    # The consensus statement shares one word with the question ("qSOFA"): by shared words it
    # is not on the point; by meaning it is, and it disagrees with the newer guideline.
    answer = engine.ask("Can I use qSOFA alone to screen ward patients for sepsis?")
    assert not answer.abstained
    [disagreement] = answer.disagreements
    assert [side["source"] for side in disagreement["sides"]] == ["SSC 2021", "Sepsis-3 2016"]
    shown = answer_markdown(answer)
    assert "Sources differ on this point" in shown
    assert "Sepsis-3 2016 (older guidance)" in shown


def test_a_rare_term_asked_about_that_the_cited_passages_lack_is_named():
    from rag.generate.evidence import grade_evidence

    excision = Hit(
        "b", "burns", "Deep partial-thickness burns of the hand: early surgical excision and "
        "grafting within 5 days.", 1.0, 1,
    )  # fmt: skip
    question = "Deep partial-thickness burn on the hand. Is debridement with bromelain an option?"

    def rare(word: str) -> bool:
        return word in {"debridement", "bromelain"}  # a few passages of the index hold them

    evidence = grade_evidence(question, None, [excision], direct_score=1.3, is_rare=rare)
    assert evidence.grade == "partial"
    assert evidence.unmentioned == ("debridement", "bromelain")
    assert "do not mention 'debridement' or 'bromelain'" in evidence.statement()
    # A word many passages hold ("grafting" here) is no gap: the answer stays direct.
    asked = "Deep partial-thickness burn on the hand. When is grafting done?"
    assert grade_evidence(asked, None, [excision], direct_score=1.3, is_rare=rare).grade == (
        "direct"
    )


def test_an_answer_whose_passages_never_name_the_asked_acronym_is_not_direct():
    from rag.generate.evidence import grade_evidence

    transfusion = Hit("t", "sepsis", "Target haemoglobin is 7.0-9.0 g/dL after transfusion.", 1.0, 1)
    question = "What haemoglobin target when treating anaemia with an ESA?"
    evidence = grade_evidence(question, None, [transfusion], direct_score=1.3)
    assert evidence.grade == "partial"
    assert evidence.unmentioned == ("ESA",)
    assert "do not mention 'ESA'" in evidence.statement()
    esa = Hit("e", "kdigo", "In anaemia treated with an ESA, aim for haemoglobin 10-11.5 g/dL.", 1.0, 1)
    assert grade_evidence(question, None, [esa], direct_score=1.3).grade == "direct"
    # Written in full, the acronym is named: "SBP" is "systolic blood pressure".
    asah = "aSAH, aneurysm not yet secured: SBP ceiling?"
    ceiling = Hit("s", "aha", "Avoid systolic blood pressure > 160 mmHg before securing.", 1.0, 1)
    assert "SBP" not in grade_evidence(asah, None, [ceiling], direct_score=1.3).unmentioned


def test_a_vignettes_measurements_are_not_terms_the_sources_must_name():
    from rag.generate.evidence import grade_evidence

    # "RR 32", "BUN 28" describe the patient; a passage on ICU criteria need not write "RR".
    minor = Hit(
        "c", "cap", "Three or more minor criteria (respiratory rate >= 30, confusion, uremia): "
        "admit to the ICU.", 1.0, 1,
    )  # fmt: skip
    question = "Admitted with CAP, RR 32, new confusion, BUN 28, on the ward. ICU?"
    evidence = grade_evidence(question, None, [minor], direct_score=1.3)
    assert "RR" not in evidence.unmentioned and "BUN" not in evidence.unmentioned
    # The team asking is no term the sources must name either.
    ercp = Hit("e", "ap", "Cholangitis: urgent ERCP within 24 hours.", 1.0, 1)
    asked = grade_evidence("Cholangitis. GI asking: scope now?", None, [ercp], direct_score=1.3)
    assert "GI" not in asked.unmentioned
    assert evidence.unmentioned == ("CAP",)  # the passage never names the condition asked
    # Nor does where the patient is ("ED pt") or what a value was measured on ("92% RA").
    question = "ED pt with CAP, SpO2 92% RA, RR 32, new confusion. ICU?"
    evidence = grade_evidence(question, None, [minor], direct_score=1.3)
    assert evidence.unmentioned == ("CAP",)


def test_a_roman_numeral_is_no_acronym_the_sources_must_name():
    from rag.generate.evidence import grade_evidence

    vasopressin = Hit("v", "ssc", "Add vasopressin when norepinephrine alone is not enough.", 1.0, 1)
    question = "Septic shock on norepinephrine and vasopressin - role of angiotensin II?"
    evidence = grade_evidence(question, None, [vasopressin], direct_score=1.3)
    assert "II" not in evidence.unmentioned


def test_a_vignettes_description_is_not_named_when_the_passages_fit_the_patient():
    from rag.generate.evidence import grade_evidence

    def unmentioned(question: str, passage: str) -> tuple[str, ...]:
        passages = [Hit("p", "g", passage, 1.0, 1)]
        return grade_evidence(question, None, passages, direct_score=1.3).unmentioned

    # The device algorithm states EF, GDMT, NYHA class, QRS and LBBB: it is about this patient
    # though it never writes "DCM", and the answer must not open by saying so.
    device = (
        "HFrEF on >= 3 months of optimized GDMT, LVEF <= 35%, NYHA class II-III, QRS >= 150 ms "
        "with LBBB in sinus rhythm: CRT is recommended."
    )
    question = (
        "Non-ischemic DCM, EF 32% after 4 months of optimized GDMT, NYHA II, QRS 160 ms LBBB, "
        "sinus. Device?"
    )
    evidence = grade_evidence(question, None, [Hit("d", "hf", device, 1.0, 1)], direct_score=1.3)
    assert "DCM" not in evidence.unmentioned
    assert "do not mention" not in evidence.statement()
    # A passage about another patient altogether still has its gaps named.
    hypertension = "If 10-year ASCVD risk < 10%: nonpharmacologic therapy for 3-6 months."
    question = "Day 7 post-SAH, new aphasia, TCD MCA mean velocity 210 cm/s. First-line treatment?"
    assert "SAH" in unmentioned(question, hypertension)
    # Passages stating all a long story asks ("absolute contraindication", "alteplase") fit
    # it though they name little of the story: its acronyms are not what they leave out.
    lysis = (
        "Absolute contraindications to IV alteplase: active internal bleeding; platelet count "
        "< 100,000/mm3; intracranial hemorrhage on CT."
    )
    question = (
        "63M, L MCA syndrome, LKW 90 min, NIHSS 11. Admitted 2 wks ago for a bleeding duodenal "
        "ulcer, Hb stable since. Absolute contraindication to alteplase?"
    )
    assert unmentioned(question, lysis) == ()


def test_a_stage_only_the_question_writes_does_not_hide_another_guidelines_target():
    from rag.generate.agreement import compare_sources

    # "G3b" is the patient's stage; neither guideline writes it, and both give a target for
    # adults with CKD: the older, different target is shown and the disagreement said.
    kdigo = Hit(
        "k#1", "kdigo", "## Blood Pressure Targets\n- Target systolic BP < 120 mmHg in adults "
        "with CKD and hypertension (Grade 2B).\n", 1.0, 1, title="KDIGO BP in CKD",
        section="Blood Pressure Targets", source="KDIGO", year=2024,
    )  # fmt: skip
    acc = Hit(
        "a#1", "acc", "## CKD\n- Adults with hypertension and CKD: BP target < 130/80 mm Hg "
        "(Class I).\n", 0.9, 2, title="ACC/AHA High Blood Pressure", section="CKD",
        source="ACC/AHA", year=2017,
    )  # fmt: skip
    draft = "Bottom line: Target systolic BP < 120 mmHg in adults with CKD (Grade 2B) [1]."
    text, found = compare_sources(
        "CKD G3b with hypertension - what systolic BP target?", draft, [kdigo, acc]
    )
    assert found and "[2]" in text and "ACC/AHA 2017" in text


def test_two_documents_of_one_organisation_and_year_are_not_two_sides():
    from rag.generate.agreement import compare_sources

    # ADA 2024's basal-insulin table and ADA 2024's DKA transition rule both name insulin and
    # give hours; they are one body of guidance on two subjects, not sources that disagree.
    basal = Hit(
        "d#1", "diabetes", "- Glargine U-300 insulin: duration of action is more than 24 hours.\n",
        1.0, 1, title="Standards of Care in Diabetes", section="Basal Insulin", source="ADA",
        year=2024,
    )  # fmt: skip
    crisis = Hit(
        "k#1", "crises", "- Not yet eating: continue the insulin infusion and reassess every "
        "4-6 hours.\n", 0.9, 2, title="Hyperglycemic Crises in Adults",
        section="Transition off the Insulin Infusion", source="ADA", year=2024,
    )  # fmt: skip
    question = "Basal insulin: how many hours?"
    draft = "Bottom line: Glargine U-300 insulin: duration of action is more than 24 hours [1]."
    text, found = compare_sources(question, draft, [basal, crisis])
    assert not found and "Sources differ" not in text
    # The same statement from another organisation is a side.
    other = Hit(
        "o#1", "other", "- Glargine U-300 insulin: duration of action is about 18 hours.\n",
        0.9, 2, title="Insulin handbook", section="Basal Insulin", source="Diabetes UK",
        year=2019,
    )  # fmt: skip
    text, found = compare_sources(question, draft, [basal, other])
    assert found and "Diabetes UK 2019" in text


def test_another_source_is_shown_as_agreeing_only_when_it_is_on_the_point():
    from rag.generate.agreement import compare_sources

    gina = Hit(
        "g#1", "gina", "- Positive bronchodilator reversibility in adults: FEV1 increase >12% "
        "and >200 mL.\n", 1.0, 1, title="GINA asthma", section="Spirometry", source="GINA",
        year=2024,
    )  # fmt: skip
    gold = Hit(
        "c#1", "gold", "- Initial therapy: a bronchodilator.\n", 0.9, 2, title="GOLD COPD",
        section="Group A", source="GOLD", year=2024,
    )  # fmt: skip
    bts = Hit(
        "b#1", "bts", "- In adults, asthma is confirmed by bronchodilator reversibility: an FEV1 "
        "increase of more than 12% and 200 mL.\n", 0.8, 3, title="BTS asthma",
        section="Diagnosis", source="BTS", year=2019,
    )  # fmt: skip
    question = "What bronchodilator reversibility confirms asthma in adults?"
    draft = "Bottom line: Positive bronchodilator reversibility in adults: FEV1 >12% and >200 mL [1]."

    def close_in_meaning(texts):
        return [0.9] * len(texts)  # every unit as close as can be: the words must decide

    text, _ = compare_sources(question, draft, [gina, gold], similarity=close_in_meaning)
    assert "Other guidance" not in text and "GOLD" not in text
    text, _ = compare_sources(question, draft, [gina, bts], similarity=close_in_meaning)
    assert "### Other guidance on this point" in text and "BTS 2019" in text


def test_a_dose_in_the_patients_story_is_not_a_dose_asked_for():
    assert "a dose" in question_facets("What ICS dose is safe in pregnancy?")
    # The story mentions a dose; the question asks whether to step down.
    story = "Asthma well controlled on medium-dose ICS-LABA, 8 wks pregnant. Step down?"
    assert "a dose" not in question_facets(story)
    # "How much" monitoring is no dose.
    assert "a dose" not in question_facets("After a TIA, how much rhythm monitoring is needed?")
    assert "a dose" in question_facets("How much potassium phosphate in DKA?")


def test_a_vignettes_story_words_are_not_named_as_what_the_sources_lack():
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    # Partly covered: the terms named are those of the question asked ("leflunomide"), not of
    # the story told before it ("nauseated").
    coverage = Coverage(0.5, 0.7, ("nauseated", "leflunomide"), (), False)
    passage = Hit("m", "ra", "In RA, folic acid 1 mg daily is co-prescribed with methotrexate.", 1.0, 1)
    question = "RA on weekly methotrexate, nauseated for two days after every dose. Switch to leflunomide?"  # fmt: skip
    terms = {"weekly", "nauseated", "leflunomide"}.__contains__  # the embedder splits these
    evidence = grade_evidence(question, coverage, [passage], direct_score=1.3, is_term=terms)
    assert evidence.grade == "partial"
    # (a drug the question names, so named as one the sources do not address)
    assert evidence.missing + evidence.unmentioned == ("leflunomide",)


def test_a_partial_bottom_line_names_the_gap_once_and_then_answers():
    from rag.generate.evidence import Evidence, lead_with_missing

    evidence = Evidence("partial", (), ("ESA",))
    text, bottom_line = lead_with_missing(
        evidence, "### Targets\n\nTarget haemoglobin 7-9 g/dL [1].", "Target haemoglobin 7-9 g/dL [1]."
    )
    # The caution to check the passages heads the answer; the bottom line stays short.
    assert text.startswith("The cited passages do not mention 'ESA'; check that they answer")
    assert bottom_line == (
        "The cited passages do not mention 'ESA'; what they state: target haemoglobin 7-9 g/dL [1]."
    )
    # A label in title case keeps its capitals ("clinical Response:" reads as a typo).
    _, labelled = lead_with_missing(evidence, "", "Clinical Response: Review within 1 hour [1].")
    assert labelled.endswith("what they state: Clinical Response: Review within 1 hour [1].")


def test_another_guideline_off_the_questions_subject_is_no_side_of_a_disagreement():
    from rag.generate.agreement import compare_sources

    # The asthma statement shares "improving" with the question and recommends where the UTI
    # one recommends "rather than": by words and direction a disagreement, but on another
    # subject. A pneumonia guideline on the same point is still one.
    uti = Hit(
        "u#1", "uti", "- For pyelonephritis improving on effective therapy, a course of 7 days is "
        "suggested rather than a longer course.\n", 1.0, 1,
        title="Complicated urinary tract infection", section="Treatment duration",
        source="IDSA", year=2022,
    )  # fmt: skip
    asthma = Hit(
        "g#1", "gina", "- Reassess at 1 hour: if symptoms improving, consider discharge with a "
        "written plan.\n", 0.9, 2, title="Global strategy for asthma",
        section="Acute exacerbations", source="GINA", year=2024,
    )  # fmt: skip
    older = Hit(
        "o#1", "old", "- Pyelonephritis improving on ceftriaxone: a course of 14 days.\n", 0.8, 3,
        title="Urinary tract infection in adults", section="Pyelonephritis", source="EAU",
        year=2015,
    )  # fmt: skip
    question = "Pyelonephritis improving on ceftriaxone. Is a 7-day course enough?"
    draft = "Bottom line: For pyelonephritis improving on therapy, a 7-day course is suggested [1]."

    def close_in_meaning(texts):
        return [0.9] * len(texts)  # as the embedder found the asthma line: close to the question

    text, found = compare_sources(question, draft, [uti, asthma], similarity=close_in_meaning)
    assert not found and "GINA" not in text, text
    text, found = compare_sources(
        question, draft, [uti, asthma, older], similarity=close_in_meaning
    )
    assert found and "EAU 2015" in text and "GINA" not in text, text


def test_a_dose_asked_for_by_its_kind_is_checked_and_named_as_that_kind():
    from rag.generate.evidence import grade_evidence

    # A maintenance dose does not answer "what loading dose?": the gap is named as asked.
    seizure = Hit("s", "ich", "Treat clinical seizures with levetiracetam 500 mg twice daily.", 1.0, 1)
    question = "Lobar ICH, just had a seizure on the ward. Levetiracetam - what loading dose?"
    evidence = grade_evidence(question, None, [seizure], direct_score=1.3)
    assert evidence.grade == "partial" and "a levetiracetam loading dose" in evidence.statement()
    loaded = Hit("l", "ich", "Levetiracetam: loading dose 60 mg/kg IV (max 4,500 mg).", 1.0, 1)
    assert "loading" not in grade_evidence(question, None, [loaded], direct_score=1.3).statement()
    # Named as a clinician says it: the drug, then the kind of dose.
    cooling = Hit("c", "nrp", "Therapeutic hypothermia at 33.5-34.5 C for 72 hours.", 1.0, 1)
    asked = "Term baby cooled for HIE has started seizing. Phenobarbital loading dose in mg/kg?"
    statement = grade_evidence(asked, None, [cooling], direct_score=1.3).statement()
    assert "a phenobarbital loading dose" in statement, statement



def test_a_partial_answer_names_the_terms_no_indexed_source_mentions():
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    # The gate was not passed and the cited passages lack no term of a known kind: instead of
    # a caution naming nothing, the answer names the story's and the question's terms the index
    # never holds, a term of two words as one.
    coverage = Coverage(0.5, 0.6, ("ramadan",), (), False)
    sulfonylurea = Hit(
        "s", "diabetes", "Sulfonylureas such as glipizide cause hypoglycemia; reduce the dose "
        "when intake falls.", 1.0, 1,
    )  # fmt: skip
    unindexed = {"ramadan", "anorexia", "nervosa", "obeticholic"}

    def grade(question: str, coverage: Coverage = coverage):
        return grade_evidence(
            question, coverage, [sulfonylurea], direct_score=1.3,
            is_term=lambda word: word.lower() in unindexed,
            is_unindexed=lambda word: word.lower() in unindexed | {"plans"},
        )  # fmt: skip

    fasting = grade("Diabetic on glipizide plans to fast for Ramadan. How should glipizide change?")
    assert fasting.grade == "partial"
    assert fasting.statement() == "No indexed source mentions 'Ramadan'."
    anorexia = grade("24-year-old with anorexia nervosa on glipizide. Stop the glipizide?")
    assert anorexia.unindexed == ("anorexia nervosa",)
    # The gate's own unknown word (asked, never indexed) is named with its noun too.
    unknown = Coverage(0.5, 1.0, (), ("obeticholic",), False)
    acid = grade("Diabetic man on glipizide. Is obeticholic acid an option for him?", unknown)
    assert acid.statement() == "No indexed source mentions 'obeticholic acid'."
    # ... with the word before it the index never holds either, and the noun after it that
    # makes it a procedure: the term as a clinician names it, each word once.
    unindexed |= {"strontium", "ranelate", "baroreflex"}
    unknown = Coverage(0.5, 1.0, (), ("strontium", "ranelate"), False)
    drug = grade("Refuses injections, on glipizide. Would strontium ranelate be an option?", unknown)
    assert drug.statement() == "No indexed source mentions 'strontium ranelate'."
    unknown = Coverage(0.5, 1.0, (), ("baroreflex",), False)
    device = grade("On glipizide, BP still high. Is baroreflex activation therapy an option?", unknown)
    assert device.statement() == "No indexed source mentions 'baroreflex activation'."


def test_a_term_the_cited_passages_state_is_not_named_as_unmentioned():
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    # The gate's top passages lacked "cephalexin"; the table the answer cites states it.
    coverage = Coverage(0.5, 0.6, ("cephalexin", "isolate"), (), False)
    table = Hit(
        "t", "uti", "| Agent | Oral Dose | Frequency |\n|---|---|---|\n| **Cephalexin** | 1000 mg "
        "| Four times daily |", 1.0, 1, section="IV to Oral Transition > Other Oral Agents",
    )  # fmt: skip
    question = "The isolate is cefazolin-susceptible. If I use cephalexin, what dose?"
    evidence = grade_evidence(question, coverage, [table], direct_score=1.3)
    assert evidence.grade == "partial"
    assert "cephalexin" not in evidence.statement()



def test_everyday_words_are_never_named_as_what_the_passages_do_not_mention():
    """"today's" and "watch" are how the question is said: a partial answer names "PR", the
    term of the question the passage lacks, never them."""
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    monitoring = Hit(
        "c1", "d1", "ECG should be monitored daily in patients with aortic valve IE to detect "
        "new conduction abnormalities.", 1.0, 1,
    )  # fmt: skip
    question = "Aortic valve IE, today's ECG shows a new PR of 280 ms. How closely do I watch it?"
    coverage = Coverage(0.5, 0.4, ("today's", "watch", "closely"))  # the gate did not pass it
    evidence = grade_evidence(
        question, coverage, [monitoring], direct_score=1.3, is_rare=lambda word: True
    )  # as rare as a word no passage holds
    assert evidence.grade == "partial"
    assert "PR" in evidence.unmentioned
    named = " ".join(evidence.unmentioned + evidence.unindexed)
    assert "today" not in named and "watch" not in named, evidence.statement()
    # Nor the words that put the question ("Any caveat to a standard DOAC?" was told the
    # passages "do not mention 'caveat'").
    doac = Hit("d", "vte", "Provoked DVT: limited DOAC trial data in patients < 50 kg.", 1.0, 1)
    asked = "Provoked DVT in a 44 kg woman - any caveat to a standard DOAC? Who qualifies?"
    evidence = grade_evidence(asked, None, [doac], direct_score=1.3, is_rare=lambda word: True)
    assert evidence.grade == "direct", evidence.statement()


def test_a_combination_drug_is_one_facet_named_whole():
    """"ceftazidime-avibactam" is not ceftazidime: a passage dosing ceftazidime alone does not
    cover it, and the gap names the combination; "meropenem-resistant" is no drug."""
    from rag.generate.evidence import grade_evidence, question_facets

    question = (
        "EVD ventriculitis with a KPC Klebsiella that is meropenem-resistant. Is "
        "ceftazidime-avibactam an option, and at what dose?"
    )
    assert "meropenem-resistant" not in question_facets(question)
    ceftazidime = Hit("c", "d", "Ceftazidime 2 g IV every 8 hours for ventriculitis.", 1.0, 1)
    evidence = grade_evidence(question, None, [ceftazidime], direct_score=1.3)
    assert evidence.grade == "partial"
    assert "ceftazidime-avibactam" in evidence.statement(), evidence.statement()
    both = Hit("b", "d", "Ceftazidime-avibactam 2.5 g IV every 8 hours.", 1.0, 1)
    assert "ceftazidime" not in grade_evidence(question, None, [both], direct_score=1.3).missing


def test_a_population_the_question_rules_out_is_not_named_as_missing():
    """"not pregnant", "not on dialysis": the patient is outside the population, so passages
    silent on it lack nothing (they were named: "The cited sources do not address pregnancy")."""
    from rag.generate.evidence import grade_evidence

    oxygen = Hit("o", "co", "Give 100% FiO2 until the COHb level falls below 5%.", 1.0, 1)
    question = "House fire, COHb 18%, not pregnant, on 100% O2. When can I stop the oxygen?"
    evidence = grade_evidence(question, None, [oxygen], direct_score=1.3)
    assert "pregnan" not in evidence.statement(), evidence.statement()
    renal = Hit("r", "vte", "CrCl < 30 mL/min: use UFH initially, then warfarin.", 1.0, 1)
    asked = "81M, new proximal DVT, CrCl 22 mL/min, not on dialysis. Which anticoagulant?"
    assert "dialysis" not in grade_evidence(asked, None, [renal], direct_score=1.3).statement()
    # Said as it is, the population is still asked about.
    pregnant = "House fire, COHb 18%, 28 weeks pregnant, on 100% O2. When can I stop the oxygen?"
    statement = grade_evidence(pregnant, None, [oxygen], direct_score=1.3).statement()
    assert "The cited sources do not address pregnant patients" in statement, statement


def test_child_pugh_names_no_child():
    """"a man with Child-Pugh B cirrhosis" was told "The cited sources do not address
    children"; a Child-Pugh class is a liver population, and a passage giving one is no
    paediatric passage."""
    vte = Hit("v", "vte", "Moderate-to-severe hepatic disease: use LMWH or UFH; DOACs avoided.", 1.0, 1)
    question = "New proximal DVT in a man with Child-Pugh B cirrhosis, INR 1.7. Is a DOAC fine?"
    assert "children" not in question_facets(question)
    assert "liver impairment" in question_facets(question)
    assert missing_facets(question, [vte]) == ()
    scored = Hit("s", "cirrhosis", "Child-Pugh class C: 10-15 points.", 1.0, 1)
    missing = missing_facets("Dose for a 6-year-old child with cirrhosis?", [scored])
    assert any("children" in name for name in missing), missing


def test_a_population_is_named_in_the_questions_own_words():
    # An age the question gives is the population, said with it (not "children or adolescents").
    wells = Hit("w", "pe", "Wells criteria for PE in adults: clinical signs of DVT (3 points).", 1.0, 1)
    question = "15-year-old girl on the pill, pleuritic pain, HR 112. Does the Wells score apply?"
    assert missing_facets(question, [wells]) == ("adolescents under 18, such as a 15-year-old",)
    child = "8-year-old with an asthma attack: what dose of prednisolone?"
    assert missing_facets(child, [wells])[0] == "a prednisolone dose for children, such as an 8-year-old"
    # Dialysis as the question says it: "haemodialysis" (round 11 was told "patients on
    # dialysis" for a question on haemodialysis).
    apixaban = Hit("a", "af", "Apixaban 5 mg BID; 2.5 mg BID with two of age, weight, creatinine.", 1.0, 1)
    on_hd = "AF on haemodialysis, CHA2DS2-VASc 4. Apixaban 5 mg or 2.5 mg BID?"
    assert missing_facets(on_hd, [apixaban]) == ("patients on haemodialysis",)


def test_a_term_with_a_number_in_its_name_is_named_whole():
    """"booked for her COVID-19 booster" was told the passages "do not mention 'COVID'"."""
    from rag.generate.evidence import grade_evidence

    question = (
        "RA on methotrexate 20 mg weekly, booked for her COVID-19 booster on Friday. Should the"
        " MTX be held, and for how many weeks afterwards?"
    )
    mtx = Hit("m", "acr", "RA: hold methotrexate for 2 weeks around a serious infection.", 1.0, 1)
    statement = grade_evidence(question, None, [mtx], direct_score=1.3).statement()
    assert "'COVID-19'" in statement, statement


def test_a_dose_is_that_of_the_drug_asked_about_in_one_passage():
    """"consider IV aminophylline. What loading dose?" asks aminophylline's: a passage naming it
    with no amount, beside another drug's loading dose, does not give it."""
    from rag.generate.evidence import grade_evidence

    question = "Life-threatening asthma, GINA says consider IV aminophylline. What loading dose should I give?"  # fmt: skip
    named = Hit("a", "gina", "Consider IV salbutamol or IV aminophylline (specialist only).", 1.0, 1)
    other = Hit("d", "gina", "Dupilumab: loading dose 400 mg SC, then 200 mg every 2 weeks.", 1.0, 2)
    evidence = grade_evidence(question, None, [named, other], direct_score=1.3)
    assert evidence.grade == "partial"
    assert "an aminophylline loading dose" in evidence.statement(), evidence.statement()
    dosed = Hit("x", "gina", "Aminophylline: loading dose 5 mg/kg IV over 20 minutes.", 1.0, 1)
    assert grade_evidence(question, None, [dosed, other], direct_score=1.3).missing == ()
    # A drug the asking sentence names is the one dosed, not the story's ("max bisoprolol").
    ivabradine = "EF 30%, HR 78 on max tolerated bisoprolol. Ivabradine - what starting dose?"
    assert "bisoprolol" not in " ".join(missing_facets(ivabradine, [other]))


def test_a_dose_or_time_the_question_offers_must_be_one_the_sources_state():
    from rag.generate.evidence import grade_evidence

    seizure = Hit("s", "tbi", "Phenytoin loading dose 15-20 mg/kg IV; levetiracetam is an alternative.", 1.0, 1)  # fmt: skip
    question = "Severe TBI, we'd rather use levetiracetam. Is 500 mg BID for 7 days the right dose?"
    statement = grade_evidence(question, None, [seizure], direct_score=1.3).statement()
    assert "500 mg" in statement, statement
    follow = Hit("f", "sah", "Long-term angiographic follow-up is recommended after coiling.", 1.0, 1)
    asked = "Ruptured ACom aneurysm coiled last week. When is the first angiogram due - at 6 months?"
    statement = grade_evidence(asked, None, [follow], direct_score=1.3).statement()
    assert "the 6 months asked about" in statement, statement
    timed = Hit("t", "sah", "Obtain the first follow-up angiogram at 6 months after coiling.", 1.0, 1)
    assert grade_evidence(asked, None, [timed], direct_score=1.3).grade == "direct"
    # The patient's current dose, in the story, is not offered as the answer.
    story = "Septic shock, norepinephrine at 0.3 mcg/kg/min and MAP still 58 - vasopressin dose?"
    assert not [name for name in question_facets(story) if "asked about" in name]


def test_type_1_diabetes_is_a_population_a_type_2_passage_does_not_cover():
    finerenone = Hit(
        "f", "ckd", "Finerenone 10 mg daily for adults with type 2 diabetes, CKD and albuminuria.", 1.0, 1
    )  # fmt: skip
    asked = "Type 1 diabetic with CKD G3a, ACR 600 on max lisinopril. Can finerenone be added?"
    assert missing_facets(asked, [finerenone]) == ("type 1 diabetes",)
    covered = Hit("t", "ada", "In type 1 diabetes, start basal-bolus insulin.", 1.0, 1)
    assert missing_facets("T1DM, what insulin regimen?", [covered]) == ()


def test_a_duration_asked_in_one_unit_needs_a_duration_in_that_unit():
    """"Within how many weeks should IR pull it?" was graded with no gap named: the cited
    passage's "3 months" of anticoagulation is a duration, not when the filter comes out."""
    filter_ = Hit("f", "vte", "IVC filter: anticoagulate for 3 months; retrieve when safe.", 1.0, 1)
    question = "IVC filter in for a DVT with a GI bleed, back on apixaban. Within how many weeks should IR pull it?"  # fmt: skip
    assert missing_facets(question, [filter_]) == ("a duration in weeks",)
    stated = Hit("s", "vte", "Retrieve the filter within 2-4 weeks of restarting anticoagulation.", 1.0, 1)
    assert missing_facets(question, [stated]) == ()


def test_a_dose_offered_as_a_choice_is_asked_about_without_the_word_dose():
    """"If I add oral NAC, is it 600 mg or 1200 mg BD?" offers two doses: a passage giving
    neither does not answer it."""
    contrast = Hit("c", "aki", "Oral NAC may be used with IV isotonic fluids.", 1.0, 1)
    question = "CKD 3b for CT angio tomorrow, IV saline planned. If I add oral NAC, is it 600 mg or 1200 mg BD?"  # fmt: skip
    missing = missing_facets(question, [contrast])
    assert "the 600 mg dose asked about" in missing and "the 1200 mg dose asked about" in missing
    # A concentration in the story is no dose offered.
    # A dose asked for by its unit: "what mg/kg once daily?"
    assert "a dose" in question_facets("Pyelo. If I use gentamicin, what mg/kg once daily?")
    measured = question_facets("Elective hip next week. Is a glucose of 250 mg/dL too high?")
    assert not [name for name in measured if "asked about" in name], measured


def test_a_dose_offered_with_its_drug_is_named_with_the_drug():
    """"Start labetalol 100 mg or labetalol 200 mg twice daily?" was told the sources do not
    address "the 200 mg dose asked about": 200 mg of what, the reader had to work out."""
    labetalol = Hit("l", "htn", "Labetalol: 200-800 mg/day in 2 divided doses.", 1.0, 1)
    question = "Chronic hypertension at 12 weeks' gestation. Start labetalol 100 mg or labetalol 200 mg twice daily?"  # fmt: skip
    missing = missing_facets(question, [labetalol])
    assert "the labetalol 100 mg dose asked about" in missing, missing
    assert "the labetalol 200 mg dose asked about" in missing, missing


def test_nursing_home_residents_and_men_asked_about_are_populations():
    cap = Hit("c", "cap", "Inpatient nonsevere CAP: beta-lactam plus macrolide.", 1.0, 1)
    nursing = "Nursing home resident with CAP on the ward, no MRSA risk. Standard regimen or broader?"
    assert missing_facets(nursing, [cap]) == ("nursing home residents",)
    holiday = Hit("h", "bone", "Postmenopausal women: consider a drug holiday after 5 years.", 1.0, 1)
    asked = "5 years of alendronate, now moderate risk. Does the drug holiday apply to a man?"
    assert missing_facets(asked, [holiday]) == ("men",)
    # A man the story describes is the patient, not a population asked about.
    story = "72-year-old man, 5 years of alendronate, now moderate risk. Drug holiday?"
    assert "men" not in question_facets(story)


def test_children_the_patient_is_not_planning_are_no_population_asked_about():
    assert "children" not in question_facets("Severe AUD, not planning kids. What next?")
    assert "children" in question_facets("Severe AUD in a teenager with kids. What next?")


def test_a_drug_is_stated_by_its_class_but_not_by_a_class_too_broad_to_be_it():
    """"Once she's on alendronate, how often should I repeat her DXA?" was told the sources do
    not address alendronate: the table's row is "On oral bisphosphonate therapy"."""
    dxa = Hit("d", "bone", "| On oral bisphosphonate therapy | Every 1-3 years |", 1.0, 1)
    assert missing_facets("Once she's on alendronate, how often should I repeat her DXA?", [dxa]) == ()
    biologic = Hit("b", "ra", "Add a biologic DMARD if not at target after methotrexate.", 1.0, 1)
    assert missing_facets("Not at target on MTX. Is rituximab the one to add?", [biologic]) == (
        "rituximab",
    )


def test_doses_offered_as_alternatives_durations_by_number_and_comorbidities_asked_about():
    sulfasalazine = Hit("s", "ra", "Sulfasalazine: start 500 mg daily and titrate weekly.", 1.0, 1)
    question = "Going with sulfasalazine. What target dose, 2 g/day or 3 g/day, and how quickly do I titrate?"  # fmt: skip
    missing = missing_facets(question, [sulfasalazine])
    assert "the 2 g/day dose asked about" in missing and "the 3 g/day dose asked about" in missing
    prophylaxis = Hit("p", "liver", "Norfloxacin 400 mg daily as primary SBP prophylaxis.", 1.0, 1)
    lifelong = "Started norfloxacin as primary SBP prophylaxis. Is it lifelong, or for a set number of months?"  # fmt: skip
    assert missing_facets(lifelong, [prophylaxis]) == ("a duration in months",)
    gout = Hit("g", "gout", "Flare: colchicine, an NSAID or a glucocorticoid.", 1.0, 1)
    failing = "Gout flare in a man on furosemide. Does the heart failure push me towards colchicine?"
    assert missing_facets(failing, [gout]) == ("heart failure",)
    bp = Hit("b", "htn", "First-line agents: thiazide, ACE inhibitor, ARB or CCB.", 1.0, 1)
    assert missing_facets("Which first-line class for a kidney transplant patient?", [bp]) == (
        "transplant recipients",
    )
    curb = Hit("c", "cap", "CURB-65: Confusion scores 1 point.", 1.0, 1)
    assert "patients with dementia" in missing_facets(
        "Advanced dementia, now has CAP. Does her baseline confusion earn the C point?", [curb]
    )


def test_two_drugs_doses_are_no_disagreement_and_a_differing_row_reads_as_a_sentence():
    """A T2D/CKD question on lisinopril was shown "Sources differ on this point" between the
    2017 losartan row and the 2013 lisinopril row, each side its cells run together with the
    table's header words after them."""
    from rag.generate.agreement import compare_sources

    header = "| Agent | Initial Dose | Target Dose |\n|---|---|---|\n"
    lisinopril = Hit(
        "s#1", "stemi", header + "| Lisinopril | 2.5-5 mg orally once daily | 10-20 mg once daily |\n",
        1.0, 1, title="STEMI guideline", section="ACE Inhibitors", source="ACCF/AHA", year=2013,
    )  # fmt: skip
    losartan = Hit(
        "h#1", "htn", header + "| Losartan | 50 mg | 100 mg |\n", 0.9, 2,
        title="Hypertension guideline", section="ACE inhibitor and ARB dosing", source="ACC/AHA",
        year=2017,
    )  # fmt: skip
    question = "Just started lisinopril 5 mg. Should I push the ACE inhibitor to the target dose in mg?"
    draft = "Bottom line: Lisinopril: initial dose is 2.5-5 mg, target dose is 10-20 mg once daily [1]."
    text, found = compare_sources(question, draft, [lisinopril, losartan], similarity=lambda t: [0.9] * len(t))  # fmt: skip
    assert not found and "Sources differ" not in text, text
    # The same drug at another dose in the newer source is a disagreement, said as sentences.
    newer = Hit(
        "h#1", "htn", header + "| Lisinopril | 40 mg | 80 mg |\n", 0.9, 2,
        title="Hypertension guideline", section="ACE inhibitor dosing", source="ACC/AHA", year=2017,
    )  # fmt: skip
    text, found = compare_sources(question, draft, [lisinopril, newer], similarity=lambda t: [0.9] * len(t))  # fmt: skip
    assert found, text
    assert "ACC/AHA 2017 (newer): For Lisinopril, initial Dose is 40 mg" in text, text
    assert "Agent Initial Dose Target Dose" not in text, text


def _sides(question: str, draft: str, hits: list[Hit]):
    """The disagreements `compare_sources` finds, and the text, with the embedder's meaning as
    close for every unit."""
    from rag.generate.agreement import compare_sources

    text, found = compare_sources(question, draft, hits, similarity=lambda t: [0.9] * len(t))
    return found, text


def test_a_look_back_a_concentration_or_another_drugs_amount_is_no_disagreement():
    """Read on fresh questions, six of six "Sources differ" sections compared unlike things:
    a blood-culture look-back ("in the last 90 days") with a 5-day course, a glucose in mg/dL
    with a 25 mg dose, an allopurinol row (its drug only in its heading) with bisoprolol's
    dose, ticagrelor's 180 mg load with prasugrel's 60 mg."""
    assert not differ(
        "Obtain blood cultures if hospitalised and given IV antibiotics in the last 90 days.",
        "First-line: amoxicillin 500 mg TDS orally for 5 days.",
    )
    assert differ("Stop after at least 5 days if clinically stable.", "Moderate CAP: 7-10 days.")
    assert not differ("Presents with euglycemic DKA (glucose often < 200 mg/dL).", "Maximum 25 mg once daily.")  # fmt: skip
    assert not differ("Increase dietary potassium to 3,500-5,000 mg/day.", "If K+ <= 4.8, increase 10 mg to 20 mg.")  # fmt: skip
    assert differ("Eat under 1,500 mg/day of sodium.", "Aim for under 2,300 mg/day of sodium.")

    header = "| Agent | Initial Dose | Target Dose |\n|---|---|---|\n"
    bisoprolol = Hit(
        "h#1", "hf", header + "| Bisoprolol | 1.25 mg daily | 10 mg daily |\n", 1.0, 1,
        title="Heart failure guideline", section="Beta-blocker dosing", source="AHA/ACC", year=2022,
    )  # fmt: skip
    allopurinol = Hit(
        "g#1", "gout", "### Allopurinol Dosing in CKD\n\n| CKD Stage | Starting Dose | Titration |\n"
        "|---|---|---|\n| CKD stage 1-2 | <= 100 mg/day orally | Titrate by up to 100 mg |\n",
        0.9, 2, title="Gout guideline: dosing when starting therapy", section="Allopurinol Dosing in CKD",
        source="ACR", year=2020,
    )  # fmt: skip
    found, text = _sides(
        "New HFrEF: starting dose of bisoprolol and what to titrate to?",
        "Bottom line: Bisoprolol: initial dose is 1.25 mg daily, target dose is 10 mg daily [1].",
        [bisoprolol, allopurinol],
    )
    assert not found and "Sources differ" not in text, text

    prasugrel = Hit(
        "s#1", "stemi", "| Agent | Loading Dose |\n|---|---|\n| Prasugrel | 60 mg orally |\n",
        1.0, 1, title="STEMI guideline", section="P2Y12 inhibitor loading", source="ACCF/AHA",
        year=2013,
    )  # fmt: skip
    asked = "Prasugrel loading dose for the P2Y12 inhibitor?"
    draft = "Bottom line: Prasugrel: loading dose is 60 mg orally [1]."
    for prasugrel_said, differs in (("(only after coronary anatomy is known)", False), ("(30 mg load)", True)):  # fmt: skip
        timi = Hit(
            "t#1", "timi", f"- P2Y12 inhibitor loading: add ticagrelor (180 mg load, 90 mg BID) "
            f"OR prasugrel {prasugrel_said}.\n", 0.9, 2, title="UA/NSTEMI risk score guideline",
            section="P2Y12 inhibitor loading", source="TIMI", year=2000,
        )  # fmt: skip
        found, text = _sides(asked, draft, [prasugrel, timi])
        assert bool(found) == differs, text
        assert ("Sources differ" in text) == differs, text
    assert "TIMI 2000 (older guidance)" in text, text


def test_a_guideline_for_another_condition_is_no_side_of_a_disagreement():
    """"55 mL lobar ICH, GCS 6: should he get an ICP monitor?" was shown the TBI guideline's
    ICP rule against the ICH guideline's; "Hospitalised CAP: blood cultures?" an endocarditis
    guideline's blood cultures against the pneumonia guideline's."""
    from rag.generate.agreement import compare_sources

    def close(texts):
        return [0.9] * len(texts)

    ich = Hit(
        "i#1", "ich", "- ICP monitoring may be considered in patients with GCS <= 8, treating ICP "
        "above 20 mmHg.\n", 1.0, 1, title="Guideline for the management of spontaneous "
        "intracerebral hemorrhage", section="ICP monitoring", source="AHA/ASA", year=2022,
    )  # fmt: skip
    tbi = Hit(
        "t#1", "tbi", "- ICP monitoring is recommended with GCS 3-8 and an abnormal CT, treating "
        "ICP above 22 mmHg.\n", 0.9, 2, title="Guidelines for the management of severe traumatic "
        "brain injury", section="ICP monitoring", source="BTF", year=2016,
    )  # fmt: skip
    question = "62M, 55 mL lobar ICH, GCS 6, intubated. Should he get an ICP monitor?"
    draft = "Bottom line: ICP monitoring may be considered with GCS <= 8 [1]."
    text, found = compare_sources(question, draft, [ich, tbi], similarity=close)
    assert not found and "BTF" not in text, text
    # Another ICH guideline on the same point still differs.
    older = Hit(
        "o#1", "ich-old", "- ICP monitoring is recommended with GCS <= 8, treating ICP above "
        "25 mmHg.\n", 0.9, 2, title="Guidelines for the management of spontaneous intracerebral "
        "hemorrhage", section="ICP monitoring", source="AHA/ASA", year=2010,
    )  # fmt: skip
    text, found = compare_sources(question, draft, [ich, older], similarity=close)
    assert found and "AHA/ASA 2010 (older guidance)" in text, text


def test_an_amount_offered_by_a_yes_no_clause_or_a_bare_number_choice_is_asked_about():
    """"Is it 100 mg SC daily, and for how many days?" offers a dose in its first clause;
    "300 or 600 mg?" offers two; "is 7 days of readings the right protocol?" offers a time."""
    anakinra = Hit("a", "gout", "Anakinra may be used for flares when other agents are contraindicated.", 1.0, 1)  # fmt: skip
    offered = "Using anakinra for the flare. Is it 100 mg SC daily, and for how many days?"
    assert "the 100 mg dose asked about" in missing_facets(offered, [anakinra])
    clopidogrel = Hit("c", "tia", "Clopidogrel loading dose then 75 mg daily with aspirin.", 1.0, 1)
    choice = question_facets("High-risk TIA on aspirin. What clopidogrel loading dose, 300 or 600 mg?")
    assert "the 300 mg dose asked about" in choice and "the 600 mg dose asked about" in choice
    assert missing_facets("What clopidogrel loading dose, 300 or 600 mg?", [clopidogrel]) != ()
    home = question_facets("Confirming hypertension at home - is 7 days of twice daily readings the right protocol?")  # fmt: skip
    assert "the 7 days asked about" in home
    # A story's amount is not offered: the norepinephrine rate is what she is on.
    story = question_facets("Norepinephrine at 0.3 mcg/kg/min and MAP still 58 - vasopressin dose?")
    assert not [name for name in story if "asked about" in name], story



def test_a_british_dosing_frequency_is_read_as_either_way_the_passages_write_it():
    """"fluticasone propionate 500 mcg BD" was told the passages do not mention 'BD' beside
    "1 inhalation BID"; "acamprosate 666 mg TDS" is stated by "three times daily"."""
    from rag.generate.evidence import grade_evidence

    inhaler = Hit("i", "gina", "Fluticasone propionate/salmeterol 250/50 mcg 1 inhalation BID.", 1.0, 1)  # fmt: skip
    asked = "Asthmatic on fluticasone propionate 500 mcg BD. Any concern with the inhaler?"
    assert "BD" not in grade_evidence(asked, None, [inhaler], direct_score=1.3).statement()
    acamprosate = Hit("a", "aud", "Acamprosate: 666 mg three times daily.", 1.0, 1)
    tds = "Starting acamprosate 666 mg TDS. Most common side effect?"
    assert "TDS" not in grade_evidence(tds, None, [acamprosate], direct_score=1.3).statement()
    enoxaparin = Hit("e", "acs", "Enoxaparin: 1 mg/kg SC every 12 hours.", 1.0, 1)
    bd = "Unstable angina on enoxaparin 1 mg/kg BD. Stop it at discharge?"
    assert "BD" not in grade_evidence(bd, None, [enoxaparin], direct_score=1.3).statement()


def test_who_asks_and_a_narrower_word_for_what_the_passage_says_are_not_named_as_missing():
    """"Cardiology SHO wants prasugrel as the P2Y12. OK?" was told the passages do not mention
    'SHO'; "Osteoporosis pt on haemodialysis" that they do not mention 'haemodialysis' beside
    "including those on dialysis"; "angio declined" that no source mentions 'angio'."""
    from rag.generate.evidence import grade_evidence

    prasugrel = Hit("p", "acs", "Prasugrel: only in patients proceeding to PCI after angiography.", 1.0, 1)  # fmt: skip
    asked = "NSTEMI in an 82F, angio declined. Cardiology SHO wants prasugrel as the P2Y12. OK?"
    graded = grade_evidence(asked, None, [prasugrel], direct_score=1.3)
    assert "SHO" not in graded.statement(), graded.statement()
    denosumab = Hit("d", "bone", "Denosumab: no renal dose adjustment, including those on dialysis.", 1.0, 1)  # fmt: skip
    dialysis = grade_evidence("Osteoporosis pt on haemodialysis - can denosumab be used?", None, [denosumab], direct_score=1.3)  # fmt: skip
    assert "haemodialysis" not in dialysis.statement(), dialysis.statement()
    from rag.shorthand import alternatives

    assert alternatives("angio") == "angiography"


def test_a_test_the_story_reports_is_not_named_as_missing():
    """"79M on warfarin, INR 4.6, 75 kg, left lobar ICH on CT. How much 4F-PCC, and what else
    goes in?" led with "The cited passages do not mention 'CT'": the scan found the bleed, it
    is not what is asked. A test the question asks about is still named."""
    from rag.generate.evidence import grade_evidence

    pcc = Hit("p", "ich", "Warfarin-associated ICH with baseline INR 4.0-6.0: give 4F-PCC 35 IU/kg (maximum 3,500 IU) with vitamin K 10 mg IV.", 1.0, 1)  # fmt: skip
    asked = "79M on warfarin, INR 4.6, weighs 75 kg, left lobar ICH on CT. How much 4F-PCC, and what else goes in?"  # fmt: skip
    graded = grade_evidence(asked, None, [pcc], direct_score=1.3)
    assert "CT" not in graded.unmentioned, graded.statement()
    scan = grade_evidence("Lobar ICH. Repeat CT at 6 hours?", None, [pcc], direct_score=1.3)
    assert "CT" in scan.unmentioned, scan.statement()


def test_a_term_of_a_hyphenated_name_is_named_whole():
    """"No indexed source mentions 'Ganz'" named half of "Swan-Ganz", and "do not mention
    'EUS'" half of "EUS-guided coil injection": the reader is told the whole name."""
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    tips = Hit("t", "liver", "Gastric varices bleeding despite cyanoacrylate: consider TIPS.", 1.0, 1)
    question = "Fundal varix still oozing after cyanoacrylate. Is EUS-guided coil injection a next step before TIPS?"  # fmt: skip
    assert grade_evidence(question, None, [tips], direct_score=1.3).unmentioned == (
        "EUS-guided coil",
    )
    shock = Hit("s", "stemi", "Cardiogenic shock: consider an IABP or Impella.", 1.0, 1)
    asked = "Cardiogenic shock on norepinephrine. Should a pulmonary artery catheter (Swan-Ganz) guide therapy?"  # fmt: skip
    coverage = Coverage(0.5, 0.6, ("ganz",), ("Ganz",), False)
    evidence = grade_evidence(asked, coverage, [shock], direct_score=1.3)
    assert "'Swan-Ganz'" in evidence.statement(), evidence.statement()


def test_a_time_offered_in_words_is_asked_about_and_met_in_digits():
    """"Should ferritin and TSAT be rechecked at twelve weeks?" and "Continue it for twelve
    months and then review, or for life?" offer a time in words: a passage must state it (as
    "12 weeks" or in words) for the answer to be direct."""
    recheck = "HFrEF, IV ferric carboxymaltose given. Should ferritin and TSAT be rechecked at twelve weeks?"  # fmt: skip
    iron = Hit("i", "hf", "IV iron improves symptoms in HFrEF with iron deficiency.", 1.0, 1)
    assert "the twelve weeks asked about" in missing_facets(recheck, [iron])
    stated = Hit("s", "hf", "Recheck ferritin and TSAT 12 weeks after IV iron.", 1.0, 1)
    assert "the twelve weeks asked about" not in missing_facets(recheck, [stated])
    rifaximin = "HE on lactulose, rifaximin added. Continue it for twelve months and then review, or for life?"  # fmt: skip
    assert "the twelve months asked about" in question_facets(rifaximin)


def test_another_intensity_or_an_alternative_row_is_no_disagreement():
    """Read on fresh questions: a peri-operative statin question was shown "Sources differ"
    between the 2018 moderate-intensity rosuvastatin row (5-10 mg) and the 2013 STEMI
    high-intensity row (20-40 mg); an NSTEMI enoxaparin question between ESC's 1 mg/kg every
    12 hours and ASH's "Enoxaparin (alternative)" 1.5 mg/kg once daily, although ASH's row
    above it gives 1 mg/kg every 12 hours too."""
    header = "| Drug | Daily Dose | Frequency |\n|---|---|---|\n"
    moderate = Hit(
        "c#1", "chol", header + "| Rosuvastatin | 5-10 mg | Once daily |\n", 1.0, 1,
        title="Cholesterol guideline", section="Moderate-Intensity Statin Therapy",
        source="ACC/AHA", year=2018,
    )  # fmt: skip
    high = Hit(
        "s#1", "stemi", "| Agent | Dose |\n|---|---|\n| Rosuvastatin | 20-40 mg once daily |\n",
        0.9, 2, title="STEMI guideline", section="High-Intensity Statin (Class I)",
        source="ACCF/AHA", year=2013,
    )  # fmt: skip
    question = "On rosuvastatin before a bowel resection: any change to the statin dose?"
    draft = "Bottom line: Rosuvastatin: daily dose is 5-10 mg once daily [1]."
    found, text = _sides(question, draft, [moderate, high])
    assert not found and "Sources differ" not in text, text
    # The same intensity at another dose in the older source is a disagreement.
    older = replace(high, section="Moderate-Intensity Statin")
    found, text = _sides(question, draft, [moderate, older])
    assert found and "ACCF/AHA 2013 (older guidance)" in text, text

    esc = Hit(
        "e#1", "acs", "- Enoxaparin dose: 1 mg/kg subcutaneously every 12 hours.\n", 1.0, 1,
        title="ACS guideline", section="Enoxaparin", source="ESC", year=2023,
    )  # fmt: skip
    rows = "| Enoxaparin | 1 mg/kg | Every 12 hours |\n| Enoxaparin (alternative) | 1.5 mg/kg | Once daily |\n"  # fmt: skip
    ash = Hit(
        "a#1", "vte", "| Drug | Dose | Frequency |\n|---|---|---|\n" + rows, 0.9, 2,
        title="VTE guideline", section="LMWH enoxaparin dosing", source="ASH", year=2020,
    )  # fmt: skip
    question = "NSTEMI on enoxaparin: what dose of enoxaparin?"
    draft = "Bottom line: Enoxaparin dose: 1 mg/kg subcutaneously every 12 hours [1]."
    found, text = _sides(question, draft, [esc, ash])
    assert not found and "Sources differ" not in text, text
    only_once_daily = replace(ash, text=ash.text.replace(rows.splitlines()[0] + "\n", ""))
    found, text = _sides(question, draft, [esc, only_once_daily])
    assert found and "ASH 2020 (older guidance)" in text, text


def test_a_drug_is_addressed_by_its_class_written_as_shorthand():
    """"eGFR went from 52 to 44. Stop the dapagliflozin?" was told "The cited sources do not
    address dapagliflozin" beside KDIGO's "Do not stop SGLT2i for this dip": the class's
    shorthand names the drug as its full form does."""
    caveat = Hit(
        "k#1", "ckd", "- Caveat: Expect an initial transient dip in eGFR. Do not stop SGLT2i for"
        " this dip unless it exceeds 25-30% from baseline.", 1.0, 1, title="CKD guideline",
        section="Caveats",
    )  # fmt: skip
    assert missing_facets("eGFR went from 52 to 44. Stop the dapagliflozin?", [caveat]) == ()
    assert missing_facets("eGFR went from 52 to 44. Stop the finerenone?", [caveat]) == ("finerenone",)


def test_a_term_only_the_patients_story_uses_does_not_lead_the_bottom_line():
    """"82F, TIA yesterday and AF found on the monitor. Was on aspirin only. What
    antithrombotic, and at what dose?" was answered "The cited passages do not mention 'TIA';
    what they state: ...": the story's terms describe the patient, and an answer on apixaban
    dosing need not write them. The caution still heads the answer; the bottom line answers.
    An acronym the sentence that asks uses still leads it."""
    from rag.generate.evidence import grade_evidence, lead_with_missing

    dosing = Hit(
        "a", "af", "Apixaban 5 mg BID; reduce to 2.5 mg BID with two of age >= 80, weight <= 60 kg.", 1.0, 1
    )
    question = "82F, 58 kg, TIA yesterday. Was on aspirin only. What antithrombotic, and at what dose?"
    evidence = grade_evidence(question, None, [dosing], direct_score=1.3)
    assert evidence.unmentioned == ("TIA",) and evidence.told
    text, bottom_line = lead_with_missing(evidence, "Apixaban 5 mg BID [1].", "Apixaban 5 mg BID [1].")
    assert text.startswith("The cited passages do not mention 'TIA'")
    assert bottom_line == "Apixaban 5 mg BID [1]."
    asked = "What apixaban dose after a TIA?"
    evidence = grade_evidence(asked, None, [dosing], direct_score=1.3)
    assert evidence.unmentioned == ("TIA",) and not evidence.told
    _, bottom_line = lead_with_missing(evidence, "Apixaban 5 mg BID [1].", "Apixaban 5 mg BID [1].")
    assert bottom_line.startswith("The cited passages do not mention 'TIA'; what they state:")


def graded_partly_covered(question: str, cited: list[Hit], **checks):
    """The grade of an answer citing `cited` to a question the gate found only partly covered
    (coverage score 1.1, under the direct grade's 1.3), with the engine's `checks` faked."""
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    return grade_evidence(question, Coverage(0.5, 0.6), cited, direct_score=1.3, **checks)


def test_a_term_no_source_holds_that_only_the_story_uses_does_not_lead_the_bottom_line():
    """"63F had 35 minutes of slurred speech ... ABCD2, and does she get admitted?" was answered
    "No indexed source mentions 'slurred'; what they state: ...": the index never writes the
    story's word, but the question asks for the score. The caution heads the answer; the bottom
    line answers. A term the sentence that asks uses still leads it."""
    from rag.generate.evidence import lead_with_missing

    scoring = Hit("a", "tia", "ABCD2: speech disturbance without weakness 1 point.", 1.0, 1)

    def slurred(word: str) -> bool:
        return word == "slurred"

    story = "63F had 35 minutes of slurred speech, now resolved. What is her ABCD2 score?"
    evidence = graded_partly_covered(story, [scoring], is_term=slurred, is_unindexed=slurred)
    assert evidence.unindexed == ("slurred",) and evidence.told, evidence
    text, bottom_line = lead_with_missing(evidence, "ABCD2 is 4 [1].", "ABCD2 is 4 [1].")
    assert text.startswith("No indexed source mentions 'slurred'.")
    assert bottom_line == "ABCD2 is 4 [1]."
    asked = "Does slurred speech score on the ABCD2?"
    evidence = graded_partly_covered(asked, [scoring], is_term=slurred, is_unindexed=slurred)
    assert "slurred" in evidence.unmentioned + evidence.unindexed and not evidence.told, evidence
    _, bottom_line = lead_with_missing(evidence, "ABCD2 is 4 [1].", "ABCD2 is 4 [1].")
    assert "'slurred'; what they state: ABCD2 is 4 [1]." in bottom_line, bottom_line


def test_a_name_the_question_capitalises_that_no_source_holds_is_named():
    """"... Is a Ross procedure recommended?" was told only that the passages "may not answer
    every part": "Ross" is one token to the embedder, so it did not count as a specific term.
    A name capitalised inside a sentence is one; the statement names it with its noun. The
    sentence's first word ("Which ...") is no name."""
    surgery = Hit("a", "ie", "Early surgery is recommended when heart failure is caused by valve dysfunction.", 1.0, 1)  # fmt: skip

    def grade(question: str):
        return graded_partly_covered(
            question,
            [surgery],
            is_term=lambda word: False,
            is_unindexed=lambda word: word.lower() in {"ross", "which"},
        )

    evidence = grade("Aortic valve endocarditis needing valve replacement. Is a Ross procedure recommended?")  # fmt: skip
    assert evidence.unindexed == ("Ross procedure",), evidence
    assert evidence.statement() == "No indexed source mentions 'Ross procedure'."
    assert grade("Which valve replacement is recommended in endocarditis?").unindexed == ()


def test_a_range_of_times_asked_about_is_named_whole():
    """"Should the pooled cohort estimate be repeated every 4-6 years?" was told the sources do
    not address "the 6 years asked about": the range is what was asked, and is named whole. A
    passage stating its last number states it, as before."""
    from rag.generate.evidence import grade_evidence

    question = "45-year-old, 10-year ASCVD risk 3%. Should the pooled cohort estimate be repeated every 4-6 years?"  # fmt: skip
    silent = Hit("a", "ascvd", "Estimate 10-year ASCVD risk with the pooled cohort equations.", 1.0, 1)  # fmt: skip
    evidence = grade_evidence(question, None, [silent], direct_score=1.3)
    assert evidence.statement() == "The cited sources do not address the 4-6 years asked about."
    stated = Hit("a", "ascvd", "Reassess the pooled cohort estimate every 6 years.", 1.0, 1)
    assert grade_evidence(question, None, [stated], direct_score=1.3).missing == ()


def test_a_name_and_its_noun_no_passage_writes_together_is_named():
    """"Does APA adjust first-line treatment for adults with Down syndrome?" named only the
    story's 'carers': "down" and "syndrome" are each in the index, but no passage writes
    "Down syndrome". A name and its noun in the sentence that asks, never written together,
    are named whole; one the index writes ("Surviving Sepsis") is not."""
    depression = Hit("a", "mdd", "Psychotherapy is recommended as a first-line treatment for depression.", 1.0, 1)  # fmt: skip

    def grade(question: str):
        return graded_partly_covered(
            question,
            [depression],
            is_term=lambda word: False,
            is_unindexed_phrase=lambda phrase: phrase.lower() == "down syndrome",
        )

    evidence = grade("Does the guideline adjust first-line treatment for adults with Down syndrome?")
    assert evidence.unindexed == ("Down syndrome",), evidence
    assert grade("Does the guideline back Surviving Sepsis bundles for depression?").unindexed == ()


def test_a_range_of_times_offered_is_named_whole():
    """"Can LMWH prophylaxis be started somewhere in the 24 to 72 hours after injury window?"
    was told the sources "do not address the 72 hours asked about": half of what was asked."""
    from rag.generate.evidence import grade_evidence

    prophylaxis = Hit("p", "tbi", "LMWH or low-dose UFH may be used with mechanical prophylaxis.", 1.0, 1)  # fmt: skip
    asked = "Severe TBI, contusions stable. Can LMWH prophylaxis be started in the 24 to 72 hours after injury window?"  # fmt: skip
    statement = grade_evidence(asked, None, [prophylaxis], direct_score=1.3).statement()
    assert "the 24 to 72 hours asked about" in statement, statement
    access = Hit("a", "ckd", "Establish vascular access well before anticipated dialysis start.", 1.0, 1)
    asked = "CKD G5 heading for haemodialysis. Is six to twelve months before the start the right time for the fistula?"  # fmt: skip
    statement = grade_evidence(asked, None, [access], direct_score=1.3).statement()
    assert "the six to twelve months asked about" in statement, statement


def test_a_question_about_a_covered_topic_with_a_never_mentioned_term_is_answered_partial():
    """A near miss ("Pharmacy suggests IV tigecycline - does ATS/IDSA list it?") was declined
    outright when the never-mentioned term's own weight pulled its coverage below the bar, though
    the rest of the question was covered as well as any answered one: it is answered, graded
    partial, and names the term. A question whose other words are not covered still abstains."""
    from rag.generate.abstention import Coverage, decide_before_generating

    covered_but_for_term = Coverage(0.55, 0.4, ("tigecycline",), ("tigecycline",), False, 0.5)
    assert covered_but_for_term.score < 0.985 <= covered_but_for_term.known_score
    gate = decide_before_generating(covered_but_for_term, min_score=0.75, unknown_term_min_score=0.985)
    assert not gate.abstains
    off_topic = Coverage(0.4, 0.2, ("endometritis",), ("endometritis",), False, 0.3)
    gate = decide_before_generating(off_topic, min_score=0.75, unknown_term_min_score=0.985)
    assert gate.reason == "unknown_words" and gate.unknown_words == ("endometritis",)


def test_an_adjective_ending_in_ular_is_named_with_its_noun():
    """"Should the stenting be guided by intravascular ultrasound?" was told the passages "do
    not mention 'intravascular'": the procedure is the adjective and its noun."""
    from rag.generate.abstention import Coverage
    from rag.generate.evidence import grade_evidence

    stenting = Hit("s", "acs", "Stent placement is recommended over balloon angioplasty alone for primary PCI.", 1.0, 1)  # fmt: skip
    question = "Left main culprit going for PCI. Should the stenting be guided by intravascular ultrasound?"
    evidence = grade_evidence(
        question, Coverage(0.5, 0.6, ("intravascular",), (), False), [stenting], direct_score=1.3,
        is_term=lambda word: word.lower() == "intravascular",
    )  # fmt: skip
    assert evidence.unmentioned == ("intravascular ultrasound",), evidence
