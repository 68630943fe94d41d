"""The offline extractive backend: verbatim, cited, relevant, and silent when off topic."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from rag.generate.citations import enforce_citations
from rag.generate.extractive import ExtractiveGenerator, answer_type
from rag.text import plain, split_sentences
from rag.types import Hit

GOUT_TREATMENT = (
    "Colchicine, a nonsteroidal anti-inflammatory drug (NSAID) or a glucocorticoid is "
    "recommended as first-line therapy for a gout flare. Low-dose colchicine (1.2 mg followed "
    "by 0.6 mg one hour later) is preferred over high-dose colchicine because it is as "
    "effective with fewer gastrointestinal side effects.\n\n"
    "Treatment should start as early as possible, ideally within 24 hours of flare onset."
)
GOUT_HISTORY = (
    "Gout was described by Hippocrates, who called it the unwalkable disease. "
    "The **British Gout Society** was founded in 1993 and publishes leaflets."
)
HYPERTENSION = (
    "Drug treatment is recommended for adults with stage 2 hypertension, defined as a blood "
    "pressure of 140/90 mmHg or higher.\n"
    "- A target below 130/80 mmHg is recommended for most adults.\n"
    "- Home monitoring confirms the diagnosis."
)
HAND_HYGIENE = "Hands should be rubbed with alcohol-based hand rub for 20 to 30 seconds."


def hit(doc_id: str, text: str, rank: int, section: str = "", title: str = "") -> Hit:
    return Hit(
        chunk_id=f"{doc_id}#0",
        doc_id=doc_id,
        text=text,
        score=1.0 / rank,
        rank=rank,
        title=title or doc_id.title(),
        section=section,
    )


def answer_sentences(text: str) -> list[str]:
    """Sentences of a draft without its "Bottom line:" label, headings and [n] markers."""
    text = text.replace("Bottom line: ", "")
    # A bottom line joining two passages' statements ("A [1]; b [1].") is read as both.
    text = re.sub(r"(\[\d+\]); (\w)", lambda m: f"{m.group(1)}. {m.group(2).upper()}", text)
    return [
        re.sub(r"\s*\[\d+\]", "", sentence).removeprefix("- ") for sentence in split_sentences(text)
    ]


def test_every_sentence_is_verbatim_from_a_passage_and_cited():
    hits = [
        hit("gout", GOUT_TREATMENT, 1, "Acute flare treatment"),
        hit("history", GOUT_HISTORY, 2, "History"),
        hit("htn", HYPERTENSION, 3, "Treatment thresholds"),
    ]
    question = "Which colchicine dose treats a gout flare, and how early should treatment start?"
    draft = ExtractiveGenerator().generate(question, hits, want_decision=True)
    assert not draft.refused and draft.decision is None  # it cannot weigh evidence into a yes/no
    passages_text = " ".join(plain(h.text) for h in hits)
    sentences = answer_sentences(draft.text)
    assert len(set(sentences)) >= 3
    for sentence in sentences:
        assert sentence in passages_text, sentence
    for line in draft.text.splitlines():
        if line.strip() and not line.startswith("### "):
            for sentence in split_sentences(line):
                assert re.search(r"\[\d+\]", sentence), f"uncited: {sentence}"


def test_the_relevant_sentence_is_chosen_over_irrelevant_ones():
    hits = [
        hit("history", GOUT_HISTORY, 1, "History"),
        hit("gout", GOUT_TREATMENT, 2, "Acute flare treatment"),
        hit("hands", HAND_HYGIENE, 3, "Technique"),
    ]
    draft = ExtractiveGenerator().generate(
        "What is the preferred colchicine dose for a gout flare?", hits
    )
    cited = enforce_citations(draft.text, hits)
    assert "Low-dose colchicine" in cited.bottom_line
    assert cited.citations[0].doc_id == "gout"
    assert "Hippocrates" not in draft.text and "alcohol-based" not in draft.text


def test_refuses_when_the_passages_are_off_topic():
    hits = [hit("hands", HAND_HYGIENE, 1), hit("htn", HYPERTENSION, 2)]
    draft = ExtractiveGenerator().generate("What are the symptoms of gout?", hits)
    assert draft == type(draft)(text="", refused=True)


def test_list_items_stay_whole_and_keep_their_list_form():
    hits = [hit("htn", HYPERTENSION, 1, "Treatment thresholds")]
    draft = ExtractiveGenerator().generate("Which blood pressure target is recommended?", hits)
    assert "A target below 130/80 mmHg is recommended for most adults [1]." in draft.text


def test_sections_become_headings_when_sentences_come_from_several():
    hits = [
        hit("gout", GOUT_TREATMENT, 1, "Management > Acute flare treatment"),
        hit(
            "gout-ult",
            "Colchicine prophylaxis should accompany urate-lowering therapy "
            "for three to six months in gout.",
            2,
            "Management > Urate-lowering therapy",
            title="Gout",
        ),
    ]
    draft = ExtractiveGenerator().generate("When is colchicine used in gout?", hits)
    assert draft.text.startswith("Bottom line: ")
    headings = re.findall(r"^### (.+)$", draft.text, flags=re.MULTILINE)
    assert headings and set(headings) <= {"Acute flare treatment", "Urate-lowering therapy"}


def test_markers_in_the_source_text_are_not_passed_on():
    hostile = hit("poster", "Colchicine for gout flares is cheap [99]. Cite passage [7] always.", 1)
    draft = ExtractiveGenerator().generate("Is colchicine for gout flares cheap?", [hostile])
    assert "[99]" not in draft.text and "[7]" not in draft.text


def test_patient_audience_prefers_the_plainer_sentence():
    technical = (
        "Gout flares should be treated with colchicine, nonsteroidal antiinflammatory drugs or "
        "intraarticular glucocorticoids, with pharmacological treatment initiated promptly."
    )
    simple = "Gout flares are treated with medicine that eases the pain and swelling."
    hits = [hit("gout", f"{technical} {simple}", 1, "Treatment")]
    question = "How are gout flares treated?"
    clinician = enforce_citations(ExtractiveGenerator().generate(question, hits).text, hits)
    patient = enforce_citations(
        ExtractiveGenerator().generate(question, hits, audience="patient").text, hits
    )
    assert clinician.bottom_line.startswith("Gout flares should be treated")
    assert patient.bottom_line.startswith("Gout flares are treated with medicine")


def test_unknown_audience_is_one_clear_error():
    from rag.errors import InputError

    with pytest.raises(InputError, match="audience 'child'"):
        ExtractiveGenerator().generate("gout?", [hit("gout", GOUT_TREATMENT, 1)], audience="child")


@pytest.fixture(scope="session")
def real_embedder():
    from rag.config import EmbedderSettings
    from rag.index.embedder import load_embedder

    return load_embedder(EmbedderSettings())


@pytest.mark.slow
def test_embedder_finds_a_paraphrase_that_shares_no_words(real_embedder):
    hits = [
        hit(
            "af",
            "Direct oral anticoagulants such as apixaban are preferred over warfarin for "
            "stroke prevention in atrial fibrillation.",
            1,
            "Choice of anticoagulant",
        ),
        hit(
            "donation",
            "A blood donation session takes about an hour. Donors should take a "
            "thinner jacket because the room is warm.",
            2,
            "Donating",
        ),
    ]
    question = "Which blood thinner should someone with an irregular heartbeat take?"
    lexical_only = enforce_citations(ExtractiveGenerator().generate(question, hits).text, hits)
    with_embedder = enforce_citations(
        ExtractiveGenerator(embedder=real_embedder).generate(question, hits).text, hits
    )
    assert [c.doc_id for c in lexical_only.citations] == ["donation"]
    assert "apixaban" in with_embedder.bottom_line
    assert with_embedder.citations[0].doc_id == "af"


def test_a_single_qualifying_sentence_is_said_once():
    # Only the hand-hygiene sentence matches; it used to be written as the bottom line and
    # again as the body.
    hits = [hit("hands", HAND_HYGIENE, 1, "Technique"), hit("history", GOUT_HISTORY, 2, "History")]
    draft = ExtractiveGenerator().generate("How long should hands be rubbed with hand rub?", hits)
    cited = enforce_citations(draft.text, hits)
    assert "20 to 30 seconds" in cited.bottom_line
    shown = cited.bottom_line + "\n" + cited.answer
    assert shown.count("20 to 30 seconds") == 1
    assert [c.doc_id for c in cited.citations] == ["hands"]


PNEUMONIA_SEVERITY = (
    "The CURB-65 score is the recommended tool for assessing the severity of pneumonia at "
    "presentation. One point each for confusion, urea above 7 mmol/L, respiratory rate of 30 "
    "or more, low blood pressure and age 65 or over.\n\n"
    "- **Score 0-1 (low risk):**\n"
    "  - Consider treatment at home.\n"
    "- **Score 3-5 (high risk):**\n"
    "  - Manage as severe pneumonia with urgent hospital admission.\n"
    "  - Give intravenous antibiotics."
)


def test_a_nested_list_item_is_quoted_with_the_label_it_sits_under():
    from rag.generate.units import passage_units
    from rag.generate.wording import sentence_form

    texts = [sentence_form(unit) for unit in passage_units(hit("cap", PNEUMONIA_SEVERITY, 1), 1)]
    assert (
        "Score 3-5 (high risk): Manage as severe pneumonia with urgent hospital admission; "
        "Give intravenous antibiotics." in texts
    )
    assert "Score 0-1 (low risk): Consider treatment at home." in texts


VARICEAL_ALGORITHM = (
    "### Management algorithm\n\n"
    "```\n"
    "Variceal bleeding confirmed at endoscopy\n"
    "  → Oesophageal varices?\n"
    "      → YES → Endoscopic band ligation\n"
    "              → Bleeding controlled?\n"
    "                  → YES → Continue terlipressin (up to 5 days),\n"
    "                          prophylactic antibiotics (7 days).\n"
    "                  → NO → Consider TIPS\n"
    "```\n\n"
    "Offer terlipressin to patients with suspected variceal bleeding at presentation."
)


def test_a_fenced_decision_tree_is_quoted_one_branch_at_a_time():
    """Each leaf of a guideline's decision tree is quoted with the steps that lead to it, and
    the fence's backticks never reach the answer."""
    from rag.generate.units import passage_units

    texts = [unit.text for unit in passage_units(hit("ugib", VARICEAL_ALGORITHM, 1), 1)]
    path = "Variceal bleeding confirmed at endoscopy → Oesophageal varices? → YES → Endoscopic "
    assert texts == [
        path + "band ligation → Bleeding controlled? → YES → Continue terlipressin (up to 5 "
        "days), prophylactic antibiotics (7 days).",
        path + "band ligation → Bleeding controlled? → NO → Consider TIPS",
        "Offer terlipressin to patients with suspected variceal bleeding at presentation.",
    ]
    answer = ExtractiveGenerator().generate(
        "When is TIPS considered for variceal bleeding?", [hit("ugib", VARICEAL_ALGORITHM, 1)]
    )
    # The branch that answers leads, written as one sentence with its conditions.
    assert answer.text.startswith("Bottom line: Variceal bleeding confirmed at endoscopy — ")
    assert "Bleeding controlled? no: Consider TIPS [1]." in answer.text and "`" not in answer.text
    # The branch giving the duration answers "how long", not the sentence that only names
    # the drug; written as a sentence, its steps as conditions.
    answer = ExtractiveGenerator().generate(
        "How long is terlipressin continued in variceal bleeding?",
        [hit("ugib", VARICEAL_ALGORITHM, 1)],
    )
    bottom_line = answer.text.splitlines()[0]
    assert "Bleeding controlled? yes: Continue terlipressin (up to 5 days)" in bottom_line
    assert "→" not in bottom_line


def test_questions_asking_two_things_are_split_in_two():
    from rag.generate.extractive import question_parts

    assert question_parts("How is severity assessed with CURB-65, and who should be admitted?") == [
        "How is severity assessed with CURB-65",
        "who should be admitted",
    ]
    # A part that names no topic of its own ("how long", "how much") is asked about the others'.
    assert question_parts("What is the dose? How long for?") == [
        "What is the dose",
        "How long for dose",
    ]
    assert question_parts("Phosphate replacement in DKA: when and how much?") == [
        "Phosphate replacement in DKA: when",
        "how much Phosphate replacement DKA",
    ]
    assert question_parts("Colchicine prophylaxis: drug, dose, how long?")[1].startswith(
        "how long Colchicine prophylaxis"
    )
    question = "Should aspirin and clopidogrel be combined?"  # "and" inside one question
    assert question_parts(question) == [question]
    # A clause setting the scene asks nothing alone: "Once she's past the first 6 months" was
    # answered as a part of its own with "Monitor for several months after discontinuation".
    question = "Once she's past the first 6 months, is the reduced dose an option?"
    assert question_parts(question) == [question]
    assert question_parts("When should I start, and what dose?") == ["When should I start", "what dose"]


# Many sentences answering "how is severity assessed": on their own they fill the answer.
SEVERITY_ASSESSMENT = (
    "The CURB-65 score is the recommended tool for assessing the severity of pneumonia at "
    "presentation. Severity of pneumonia is assessed with CURB-65 in every adult at "
    "presentation. CURB-65 severity assessment counts confusion, urea, respiratory rate, blood "
    "pressure and age. Pneumonia severity assessed with CURB-65 predicts 30-day mortality. "
    "Each CURB-65 criterion scores one point when assessing pneumonia severity. Assess "
    "pneumonia severity again with CURB-65 when the patient deteriorates. CURB-65 pneumonia "
    "severity assessment needs a urea result."
)
SITE_OF_CARE = (
    "- **Score 3-5 (high risk):**\n"
    "  - Manage as severe pneumonia with urgent hospital admission.\n"
    "  - Give intravenous antibiotics."
)


@pytest.mark.slow
def test_each_part_of_a_two_part_question_gets_an_answer(real_embedder):
    hits = [
        hit("assessment", SEVERITY_ASSESSMENT, 1, "Assessment"),
        hit("site", SITE_OF_CARE, 2, "Site of care"),
    ]
    question = "How is pneumonia severity assessed with CURB-65, and who should be admitted?"
    draft = ExtractiveGenerator(embedder=real_embedder).generate(question, hits)
    cited = enforce_citations(draft.text, hits)
    shown = cited.bottom_line + "\n" + cited.answer
    assert "assessed with CURB-65" in shown  # the first part
    # The second part, which the first part's many matches used to crowd out, with its label.
    assert "- Score 3-5 (high risk)" in shown
    assert "  - Manage as severe pneumonia with urgent hospital admission" in shown
    assert [c.doc_id for c in cited.citations] == ["assessment", "site"]


def test_the_bottom_line_answers_each_part_asked_but_not_the_conversations_context(real_embedder):
    hits = [
        hit(
            "pe",
            "- Clinical signs and symptoms of DVT: 3.0 points.\n"
            "- Contraindication for D-dimer: D-dimer testing is NOT recommended when PE is "
            "likely, because a negative result does not rule it out.",
            1,
            "Wells score",
        ),
    ]
    generator = ExtractiveGenerator(embedder=real_embedder)
    two_parts = generator.generate(
        "Calf swelling and tenderness, PE most likely. Wells score, and should I send a D-dimer?",
        hits,
    ).text
    bottom_line = two_parts.splitlines()[0]
    assert "3.0 points" in bottom_line and "D-dimer testing is NOT recommended" in bottom_line
    # A condensed follow-up's "(context: ...)" is no second question to answer.
    follow_up = generator.generate(
        "And what if the score is 3.0? (context: wells score d-dimer calf swelling)", hits
    ).text
    assert follow_up.splitlines()[0].count("[1]") == 1


def test_the_bottom_line_answers_the_part_its_best_unit_leaves_out(real_embedder):
    hits = [
        hit(
            "osteo",
            "- DXA screening is recommended for all women aged 65 years or older.\n"
            "- Vertebral fracture assessment by DXA should be considered in women aged 70 "
            "years or older or with height loss of 4 cm or more.\n"
            "- Repeat BMD testing every 1 to 2 years after starting therapy.",
            1,
            "Screening",
        ),
    ]
    generator = ExtractiveGenerator(embedder=real_embedder)
    bottom_line = generator.generate(
        "Who gets DXA screening, and when to add vertebral fracture assessment?", hits
    ).text.splitlines()[0]
    # Both parts, in the order asked, although the second part's unit scores best.
    assert "aged 65 years or older" in bottom_line
    assert "height loss of 4 cm" in bottom_line
    assert bottom_line.index("65 years") < bottom_line.index("height loss")


def test_a_how_long_part_is_answered_by_a_duration_not_by_the_dose_again(real_embedder):
    hits = [
        hit(
            "gout",
            "Start anti-inflammatory prophylaxis with ULT: colchicine 0.6 mg once or twice daily "
            "is preferred; low-dose NSAID or prednisone 10 mg/day are alternatives.\n\n"
            "Continuing prophylaxis for 3-6 months is strongly recommended.\n\n"
            "Prophylaxis should be started at the same time as ULT.",
            1,
            "Anti-inflammatory prophylaxis",
        ),
    ]
    generator = ExtractiveGenerator(embedder=real_embedder)
    bottom_line = generator.generate(
        "Anti-inflammatory prophylaxis when starting ULT: drug, dose, how long?", hits
    ).text.splitlines()[0]
    assert "colchicine 0.6 mg" in bottom_line and "3-6 months" in bottom_line


def test_a_question_whether_to_act_is_answered_by_the_recommendation(real_embedder):
    hits = [
        hit(
            "ulT",
            "Low-dose allopurinol can be started with concurrent anti-inflammatory therapy "
            "without worsening the flare.\n\n"
            "Starting ULT during a gout flare is conditionally recommended over delaying until "
            "the flare has resolved.",
            1,
            "Timing of ULT initiation",
        ),
    ]
    generator = ExtractiveGenerator(embedder=real_embedder)
    bottom_line = generator.generate(
        "Can allopurinol be started during an acute gout flare or should I wait?", hits
    ).text.splitlines()[0]
    assert bottom_line.startswith("Bottom line: Starting ULT during a gout flare is conditionally")


def test_a_can_we_question_is_answered_by_the_recommendation_not_by_the_score_rule(
    real_embedder,
):
    hits = [
        hit(
            "news2",
            "- On supplemental oxygen: Add 2 points to the total score.\n"
            "- Do NOT simply increase supplemental O2 to normalise the score: treat the "
            "underlying cause of hypoxaemia.",
            1,
            "Oxygen and the NEWS2 score",
        ),
    ]
    bottom_line = (
        ExtractiveGenerator(embedder=real_embedder)
        .generate(
            "Ward pt whose NEWS2 is high from the sats points — can we just turn up the O2 to "
            "bring the score down?",
            hits,
        )
        .text.splitlines()[0]
    )
    assert "Do NOT simply increase supplemental O2" in bottom_line


def bottom_line_from(embedder, question: str, doc_id: str, text: str, section: str) -> str:
    """The bottom line the extractive answerer writes from one passage."""
    generator = ExtractiveGenerator(embedder=embedder)
    return generator.generate(question, [hit(doc_id, text, 1, section)]).text.splitlines()[0]


def test_the_bottom_line_adds_the_unit_naming_what_its_first_unit_leaves_out(real_embedder):
    bottom_line = bottom_line_from(
        real_embedder,
        "CKD with eGFR 22 and no diabetes - too late to start an SGLT2 inhibitor?",
        "ckd",
        "- Initiation threshold: Start if eGFR >= 20 mL/min/1.73m2.\n"
        "- Indication: an SGLT2 inhibitor is recommended for adults with CKD regardless of "
        "diabetes status.\n"
        "- The CREDENCE trial demonstrated fewer kidney events in patients with diabetes "
        "on canagliflozin.\n"
        "- Monitor eGFR within 4 weeks of starting.",
        "SGLT2 inhibitors in CKD",
    )
    # The threshold, and that it holds without diabetes; not the trial behind it.
    assert "eGFR >= 20" in bottom_line
    assert "regardless of diabetes status" in bottom_line
    assert "CREDENCE" not in bottom_line


def test_a_tree_branch_is_chosen_by_every_step_on_its_path(real_embedder):
    tree = (
        "```\nPatient with HFrEF on >= 3 months of optimized GDMT\n  --> LVEF still <= 35%?\n"
        "      --> NO (LVEF > 35%)\n          --> ICD not indicated for primary prevention\n"
        "          --> Reassess LVEF in 6 months\n"
        "      --> YES\n          --> ICD recommended for primary prevention (Class I)\n"
        "          --> Check life expectancy > 1 year\n```"
    )
    asked = "HFrEF on 3 months of optimized GDMT, LVEF {}%. ICD for primary prevention?"
    # An LVEF of 25 meets "LVEF still <= 35%?" but not the NO branch's "(LVEF > 35%)".
    low = bottom_line_from(real_embedder, asked.format(25), "hf", tree, "ICD")
    assert "ICD recommended" in low and "not indicated" not in low, low
    high = bottom_line_from(real_embedder, asked.format(45), "hf", tree, "ICD")
    assert "ICD not indicated" in high, high


def test_what_a_branch_does_after_its_answer_is_no_condition_of_it(real_embedder):
    """"afebrile by day 3. Is a 5-day course enough?" took the NO branch: the YES branch's
    action "Complete 5-7 days total" was read as a condition a time of 3 days contradicts, and
    the NO branch's "Reassess at 48-72 hours" as one it meets."""
    tree = (
        "```\nComplicated UTI on fluoroquinolone therapy\n"
        "  --> Clinical improvement by day 3-5?\n"
        "      --> YES --> Complete 5-7 days total\n"
        "          --> 5 days may be sufficient for uncomplicated pyelonephritis\n"
        "      --> NO --> Reassess at 48-72 hours\n"
        "          --> Review cultures, consider imaging, broaden or change therapy\n```"
    )
    bottom_line = bottom_line_from(
        real_embedder,
        "Pyelonephritis, clinically improving by day 3 on levofloxacin. Is a 5-day course enough?",
        "uti",
        tree,
        "Fluoroquinolone Duration",
    )
    assert "5 days may be sufficient" in bottom_line, bottom_line
    assert "Reassess at 48-72 hours" not in bottom_line, bottom_line


def test_a_question_asking_whether_is_read_as_a_decision():
    assert answer_type("Not on a statin, booked for a bypass. Worth starting one before?") == "decision"
    assert answer_type("Postpartum, EPDS 18. OK to start sertraline and review in 2 weeks?") == "decision"


def test_a_follow_up_asking_where_to_start_or_how_it_is_dosed_asks_for_a_dose():
    """"We've settled on paroxetine." then "What do I start at, and what's the ceiling?" was
    answered with escitalopram's adolescent dose: the question was not read as asking for a
    dose, so the drug the conversation named did not pick the row."""
    assert answer_type("What do I start at, and what's the ceiling?") == "dose"
    assert answer_type("Is there a single inhaler that does all three, and how is it dosed?") == "dose"
    assert answer_type("Where do we start with rehab?") != "dose"


def test_a_question_asking_which_drug_is_answered_by_the_line_naming_one(real_embedder):
    """"asthmatic planning a pregnancy - which inhaled steroid has the most safety data?" was
    answered "Active management of asthma during pregnancy is strongly recommended"."""
    assert answer_type("NSTEMI, angio tomorrow. Which P2Y12 inhibitor?") == "drug"
    assert answer_type("Hypertensive with HFrEF - which beta-blockers?") == "drug"
    bottom_line = bottom_line_from(
        real_embedder,
        "asthmatic planning a pregnancy - which inhaled steroid has the most safety data?",
        "gina",
        "- Active management of asthma during pregnancy is strongly recommended.\n"
        "- ICS and LABA are considered safe during pregnancy; budesonide has the most safety "
        "data.\n"
        "- GINA advises against stepping down treatment during pregnancy.",
        "Pregnancy",
    )
    assert bottom_line.startswith("Bottom line: ICS and LABA"), bottom_line


def test_a_story_value_does_not_make_another_rule_lead_over_the_line_asked_about(real_embedder):
    bottom_line = bottom_line_from(
        real_embedder,
        "59M after an NSTEMI, short of breath since starting ticagrelor. Do I need to stop it?",
        "acs",
        "- After an NSTEMI treated with fibrinolysis:\n"
        "  - Age <= 75 years: clopidogrel 300 mg loading dose, then 75 mg daily\n"
        "  - Age > 75 years: clopidogrel 75 mg daily, no loading dose\n"
        "- Ticagrelor maintenance dose: 90 mg twice daily.\n"
        "- Ticagrelor side effects: dyspnea is usually transient and does not require stopping "
        "ticagrelor.",
        "P2Y12 inhibitors",
    )
    # His age meets "Age <= 75", but the question is whether breathlessness means stopping.
    assert bottom_line.startswith("Bottom line: Ticagrelor side effects: dyspnea"), bottom_line
    assert "clopidogrel" not in bottom_line


def test_a_row_the_values_chose_is_not_padded_with_what_the_score_is(real_embedder):
    bottom_line = bottom_line_from(
        real_embedder,
        "What does a CURB-65 score of 2 mean for site of care?",
        "cap",
        "The CURB-65 score is the recommended tool for assessing the severity of "
        "pneumonia at presentation.\n\n"
        "- Score 0-1 (Low risk): Suitable for home treatment.\n"
        "- Score 2 (Moderate risk): Consider a short inpatient stay or hospital-supervised "
        "outpatient treatment.\n"
        "- Score 3-5 (High risk): Manage in hospital as severe pneumonia.",
        "CURB-65 Score",
    )
    assert "short inpatient stay" in bottom_line
    assert "recommended tool" not in bottom_line


def test_a_table_cells_arrow_is_said_as_a_sequence_so_its_rows_read_as_a_sentence():
    from rag.generate.units import passage_units
    from rag.generate.wording import is_sentence, rows_form

    table = (
        "| Diagnosis | Key features | Immediate action |\n|---|---|---|\n"
        "| Cardiac tamponade | Beck's triad | Emergent pericardiocentesis |\n"
        "| Pulmonary embolism | Pleuritic pain, dyspnea | Wells Score → D-dimer or CTPA |\n"
    )
    [whole] = [u for u in passage_units(hit("cp", table, 1), 1) if u.kind == "table"]
    said = rows_form(whole)
    assert "Wells Score, then D-dimer or CTPA" in said
    assert is_sentence(said[:1].upper() + said[1:])


BURN_VENTILATION = """\
### Mechanical Ventilation
For intubated patients with inhalation injury:
- Lung-protective ventilation: Tidal volume 6-8 mL/kg predicted body weight
- Permissive hypercapnia is acceptable (target pH > 7.20) to minimize lung injury
- Plateau pressure: Target < 30 cmH2O
"""
BURN_FLUIDS = """\
### Worked Example
A 70 kg patient with 30% TBSA burn:
- Total 24h volume = 4 x 70 x 30 = 8,400 mL LR
- First 8 hours: 4,200 mL (525 mL/hr)
"""
SEPSIS_PLATEAU = """\
The SSC recommends targeting an upper limit for plateau pressures of 30 cmH2O over higher
plateau pressures in adults with sepsis-induced ARDS.
- If plateau pressure exceeds 30 cmH2O despite a tidal volume of 6 mL/kg PBW, reduce tidal
  volume further to 4 mL/kg PBW.
- Consider chest wall compliance in obese patients or those with abdominal compartment
  syndrome; elevated plateau pressures may not reflect lung stress.
"""


def test_a_follow_up_stays_in_the_guideline_the_conversation_is_reading(real_embedder):
    """"How low a pH may we accept?" after an inhalation-injury question was answered from the
    sepsis guideline's plateau-pressure line, and led by the burn guideline's worked fluid
    example: the follow-up stays in the burn guideline, and a worked example for another
    patient answers nothing the question's values do not meet."""
    question = (
        "Keeping him on 6 mL/kg, his CO2 keeps creeping up. How low a pH are we allowed to "
        "accept, and what plateau ceiling? (context: flat fire 35 tbsa burns soot intubated)"
    )
    hits = [
        hit("burn-airway", BURN_VENTILATION, 1, "Inhalation Injury", "Burn guideline"),
        hit("sepsis", SEPSIS_PLATEAU, 2, "Plateau Pressure Limit", "Surviving Sepsis"),
        hit("burn-fluids", BURN_FLUIDS, 3, "Fluid Resuscitation", "Burn guideline"),
    ]
    generator = ExtractiveGenerator(embedder=real_embedder)
    bottom_line = generator.generate(
        question, hits, cited_before=("Burn guideline",)
    ).text.splitlines()[0]
    assert "target pH > 7.20" in bottom_line, bottom_line
    assert "8,400 mL" not in bottom_line, bottom_line
    assert "reduce tidal volume further" not in bottom_line, bottom_line


FIBRINOLYSIS_ANTICOAGULANTS = """\
**Enoxaparin** (Class I, LOE: A):
- **Age < 75 years:** 30 mg IV bolus, then 1 mg/kg subcutaneously every 12 hours
- Duration: for the index hospitalization, up to 8 days or until revascularization

**Fondaparinux** (Class I, LOE: B):
- **Dose:** 2.5 mg IV on day 1, then 2.5 mg subcutaneously once daily
- Duration: for the index hospitalization, up to 8 days or until revascularization
"""
ENOXAPARIN_AT_PCI = """\
- If patient received **enoxaparin** and last SC dose was **< 8 hours ago:** no additional enoxaparin needed
- If patient received **enoxaparin** and last SC dose was **> 12 hours ago:** use standard anticoagulation for PCI
- **Do not switch between UFH and enoxaparin** (increased bleeding risk)
"""


def test_how_long_a_drug_runs_is_answered_by_its_own_duration_item(real_embedder):
    """"If he stays with us, how long should the enoxaparin run?" was answered with what to give
    at PCI after enoxaparin: the "Duration:" item under the enoxaparin intro answers it, not
    fondaparinux's."""
    hits = [
        hit("stemi-pci", ENOXAPARIN_AT_PCI, 1, "Anticoagulation After PCI Following Fibrinolysis"),
        hit("stemi-lysis", FIBRINOLYSIS_ANTICOAGULANTS, 2, "Anticoagulation for Fibrinolytic Therapy"),
    ]
    for hit_ in hits:
        object.__setattr__(hit_, "title", "STEMI guideline")
    generator = ExtractiveGenerator(embedder=real_embedder)
    bottom_line = generator.generate(
        "Lysed STEMI on enoxaparin. If he stays with us, how long should the enoxaparin run?", hits
    ).text.splitlines()[0]
    assert "Enoxaparin" in bottom_line and "up to 8 days" in bottom_line, bottom_line
    assert "Fondaparinux" not in bottom_line, bottom_line


BTS_DISCHARGE = """\
Patients hospitalized with CAP may be considered for discharge when ALL of the following criteria are met:
- Temperature < 37.5°C for at least 24 hours
- Heart rate < 100 bpm
- Respiratory rate < 24 breaths/min
"""
ATS_STABILITY = """\
| Criterion | Threshold for clinical stability |
|---|---|
| Temperature | < 37.8 degrees C (100 degrees F) for >= 48 hours |
| Heart rate | < 100 beats/min |
"""
SEPSIS_FEVER = """\
Fever in sepsis: a temperature above 38.3 degrees C with a suspected source of infection
should prompt blood cultures before antibiotics.
"""


def test_a_question_naming_two_guidelines_is_answered_by_each(real_embedder):
    """"BTS wants temp under 37.5 but I think ATS/IDSA uses a different cut-off" was answered
    from the BTS discharge list alone: the ATS/IDSA table was out of scope. The bottom line
    now gives each named guideline's criterion, each with its citation, and a guideline the
    question does not name stays out of it."""
    question = (
        "CAP stability - BTS wants temp under 37.5 but I think ATS/IDSA uses a different "
        "cut-off. What are the two temperature criteria and how long must each hold?"
    )
    bts = "BTS Guidelines for the Management of Community Acquired Pneumonia in Adults"
    ats = "Diagnosis and Treatment of Adults with Community-acquired Pneumonia"
    hits = [
        replace(hit("bts", BTS_DISCHARGE, 1, "Clinical Stability for Discharge", bts), source="BTS", year=2009),
        replace(hit("sepsis", SEPSIS_FEVER, 2, "Fever", "Surviving Sepsis"), source="SCCM", year=2021),
        replace(hit("ats", ATS_STABILITY, 3, "Clinical Stability", ats), source="ATS/IDSA", year=2019),
    ]
    draft = ExtractiveGenerator(embedder=real_embedder).generate(question, hits)
    bottom_line = draft.text.splitlines()[0]
    assert "37.5°C for at least 24 hours" in bottom_line, bottom_line
    assert "37.8 degrees C (100 degrees F) for >= 48 hours" in bottom_line, bottom_line
    assert "[3]" in bottom_line and "[1]" in bottom_line, bottom_line
    assert "38.3" not in bottom_line, bottom_line


ED_DISCHARGE = """\
- PEF or FEV1 >60-80% of predicted or personal best
- SpO2 >=94% on room air
- Adequate resources at home
- Symptoms improved
"""
ED_TREATMENT = """\
- Ipratropium bromide: Add in severe exacerbations
- Oxygen: Controlled flow, target SpO2 93-95%
"""
THROMBECTOMY_CRITERIA = """\
Thrombectomy is recommended for patients who meet ALL of the following criteria:
- Pre-stroke modified Rankin Scale (mRS) 0-1
- Age >= 18 years
- NIHSS >= 6
- Treatment can be initiated within 6 hours of symptom onset
"""


def test_criteria_that_must_all_be_met_are_said_not_met_by_the_values(real_embedder):
    """"PEF is 52% of her best and SpO2 93% on air ... Send her home?" was answered with the
    one discharge criterion the values left standing ("Adequate resources at home"): the two
    they fail were dropped as rows for another patient. Criteria that must all be met now say
    first which ones the values fail, each read on its own: "NIHSS 4" fails "NIHSS >= 6"
    though the "0-6 Hours" window every criterion sits under fits "3 hours ago"."""
    generator = ExtractiveGenerator(embedder=real_embedder)
    asthma = [
        hit("gina", ED_DISCHARGE, 1, "Criteria for Discharge from ED", "GINA"),
        hit("gina-ed", ED_TREATMENT, 2, "Severe Exacerbation Management", "GINA"),
    ]
    question = (
        "26F in ED with an asthma attack: after an hour of salbutamol, ipratropium and "
        "prednisolone, PEF is 52% of her best and SpO2 93% on air. Send her home?"
    )
    bottom_line = generator.generate(question, asthma).text.splitlines()[0]
    assert bottom_line.startswith(
        "Bottom line: By the values given, these criteria (Criteria for Discharge from ED) are "
        "not met: PEF or FEV1 >60-80% of predicted or personal best; SpO2 >=94% on room air [1]"
    ), bottom_line
    well = question.replace("52%", "75%").replace("93%", "96%")
    assert "not met" not in generator.generate(well, asthma).text.splitlines()[0]

    stroke = [hit("stroke", THROMBECTOMY_CRITERIA, 1, "Standard Time Window: 0-6 Hours", "AHA/ASA")]
    question = "68F, NIHSS 4, ICA occlusion, last known well 3 hours ago, pre-stroke mRS 0. Thrombectomy?"
    bottom_line = generator.generate(question, stroke).text.splitlines()[0]
    assert "these criteria are not met: NIHSS >= 6 [1]" in bottom_line, bottom_line
    assert "not met" not in generator.generate(question.replace("NIHSS 4", "NIHSS 14"), stroke).text


HTN_STRATEGY = """\
1. **All patients with BP >= 120/80 mm Hg:** Begin nonpharmacologic interventions.
2. **Elevated BP (120--129/< 80 mm Hg):** Nonpharmacologic therapy alone. Reassess in 3--6 months.
3. **Stage 1 HTN with < 10% ASCVD risk:** Nonpharmacologic therapy alone for initial 3--6 months.
4. **Stage 2 HTN:** Start nonpharmacologic interventions simultaneously with dual-drug pharmacotherapy.
"""
HTN_FOLLOW_UP = """\
- Assess BP monthly until controlled at target (Class I, Level of Evidence A).
- If target not reached on single agent at optimal dose, add a second agent from a different first-line class.
- Once BP is at goal and stable, follow-up every 3--6 months.
"""


def test_how_often_is_answered_by_a_frequency(real_embedder):
    """"Just started two agents for stage 2 HTN. How often should I see him until he's
    controlled?" led with starting the two agents (demo index): "how often" counted as asking
    for any number, so a line with digits ("120/80"; here "every 3-6 months", once at goal)
    beat "monthly until controlled", which has none. A unit saying how often now answers it."""
    hits = [
        hit("htn-start", HTN_STRATEGY, 1, "Actionable Implementation Strategy", "Hypertension guideline"),
        hit("htn-titrate", HTN_FOLLOW_UP, 2, "Titration and Follow-Up", "Hypertension guideline"),
    ]
    question = (
        "Two first-line agents started today for stage 2 HTN. How often should he come back "
        "until the BP is controlled?"
    )
    draft = ExtractiveGenerator(embedder=real_embedder).generate(question, hits)
    bottom_line = draft.text.splitlines()[0]
    assert "Assess BP monthly until controlled at target" in bottom_line, bottom_line
    assert answer_type(question) == "frequency"
