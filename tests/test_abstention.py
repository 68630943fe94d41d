"""Abstention: a question the index does not cover gets "the sources do not cover this" and the
nearest sources, never a guess; a covered one gets a cited answer. Real index, real embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from rag.answer import NOT_COVERED, Engine
from rag.config import Settings
from rag.generate.abstention import topical_words
from rag.generate.base import Draft
from rag.render import answer_markdown
from rag.types import Hit

OFF_TOPIC = "What is the first-line eradication regimen for Helicobacter pylori infection?"
ON_TOPIC = "Which colchicine dose is preferred for an acute gout flare?"


def engine_for(index: Path, generator=None) -> Engine:
    settings = Settings().merged({"index": str(index)})
    return Engine.load(settings, generator=generator)


@pytest.fixture(scope="module")
def engine(small_index: Path) -> Engine:
    return engine_for(small_index)


class RecordingGenerator:
    """A stand-in LLM that answers every question from passage 1 and records each call."""

    name = "recording"

    def __init__(self, reply: str = "Bottom line: Colchicine is first-line therapy [1].") -> None:
        self.reply = reply
        self.questions: list[str] = []

    def generate(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        audience="clinician",
        want_decision=False,
        cited_before=(),
    ) -> Draft:
        self.questions.append(question)
        return Draft(text=self.reply)


def test_an_off_topic_question_abstains_and_lists_the_nearest_sources(engine: Engine):
    answer = engine.ask(OFF_TOPIC, suggest_related=False)
    assert answer.abstained
    assert answer.answer.startswith(NOT_COVERED)
    # The terms the index never mentions are named, so the user sees why.
    assert "'Helicobacter'" in answer.answer and "'pylori'" in answer.answer
    assert answer.citations == ()
    assert answer.retrieved  # the nearest passages are still returned ...
    shown = answer_markdown(answer)
    assert "### Nearest sources" in shown  # ... and shown, instead of an answer
    assert "Management of Gout Flares" in shown or "Hypertension" in shown or "Pneumonia" in shown
    assert "[1]" not in shown


def test_an_on_topic_question_is_answered_with_citations(engine: Engine):
    answer = engine.ask(ON_TOPIC, suggest_related=False)
    assert not answer.abstained
    assert "colchicine" in (answer.bottom_line + answer.answer).lower()
    assert answer.citations and answer.citations[0].doc_id.endswith("gout.md")
    assert all(c.support is not None and c.support > 0.9 for c in answer.citations)  # verbatim


def test_coverage_names_the_words_the_index_lacks(engine: Engine):
    hits = engine.search(OFF_TOPIC)
    coverage = engine.coverage(OFF_TOPIC, hits)
    assert {"helicobacter", "pylori"} <= set(coverage.missing_words)
    on_topic = engine.coverage(ON_TOPIC, engine.search(ON_TOPIC))
    assert on_topic.score > coverage.score
    minimum = engine.settings.answer.min_coverage_score
    assert on_topic.covered(minimum) and not coverage.covered(minimum)


def test_the_llm_is_not_asked_when_the_index_does_not_cover_the_question(small_index: Path):
    generator = RecordingGenerator()
    engine = engine_for(small_index, generator)
    assert engine.ask(OFF_TOPIC, suggest_related=False).abstained
    assert generator.questions == []  # no call, no cost, no chance to guess
    assert not engine.ask(ON_TOPIC, suggest_related=False).abstained
    assert generator.questions == [ON_TOPIC]


def test_an_llm_answer_citing_only_unsupportive_passages_abstains(small_index: Path):
    # The model cites a real passage number for a claim that passage does not make.
    generator = RecordingGenerator("Bottom line: Drinking garlic tea every morning cures it [1].")
    answer = engine_for(small_index, generator).ask(ON_TOPIC, suggest_related=False)
    assert generator.questions == [ON_TOPIC]
    assert answer.abstained and answer.citations == ()
    assert "garlic" not in answer.answer + answer.bottom_line


def test_a_source_filter_that_excludes_everything_abstains(engine: Engine):
    answer = engine.ask(ON_TOPIC, sources=["No Such Society"], suggest_related=False)
    assert answer.abstained and answer.citations == ()


def test_generic_question_words_do_not_count_as_topic():
    words = topical_words("What is the recommended treatment for Kawasaki disease?")
    assert set(words) == {"kawasaki"}


def test_a_vignettes_values_are_not_topic_words():
    # "82F", "24" and "96" are the patient's; a passage on qSOFA never writes them, and as
    # topic words they would weigh as much as "qSOFA" itself.
    words = topical_words("82F on the ward, RR 24, SBP 96, GCS 14. What does her qSOFA mean?")
    assert set(words.values()) == {"ward", "RR", "SBP", "GCS", "qSOFA"}
    assert "CHA2DS2" in topical_words("CHA2DS2-VASc of 3 in a 62m: anticoagulate?").values()


def test_the_coverage_thresholds_decide_between_abstaining_partial_and_direct(
    small_index: Path, engine: Engine
):
    """min_partial_score decides whether to answer at all, min_direct_score whether the answer
    is graded direct or partial (rag.generate.evidence)."""
    score = engine.coverage(ON_TOPIC, engine.search(ON_TOPIC)).score

    def asked_with(partial: float, direct: float):
        answer = {
            "min_partial_score": partial,
            "min_direct_score": direct,
            "min_coverage_score": partial,
        }
        settings = Settings().merged({"index": str(small_index), "answer": answer})
        return Engine.load(settings).ask(ON_TOPIC, suggest_related=False)

    direct = asked_with(score - 0.04, score - 0.02)
    assert not direct.abstained and direct.evidence.grade == "direct"
    partial = asked_with(score - 0.02, score + 0.02)
    assert not partial.abstained and partial.evidence.grade == "partial"
    stricter = asked_with(score + 0.02, score + 0.04)
    assert stricter.abstained and stricter.citations == ()
    assert stricter.to_json()["evidence"]["grade"] == "none"


def test_a_question_worded_differently_from_its_passage_is_still_answered(engine: Engine):
    # "admitted" vs the passage's "admission": same word family, not a missing topic.
    question = "When should a patient with pneumonia be admitted to hospital?"
    coverage = engine.coverage(question, engine.search(question))
    assert coverage.missing_words == ()
    assert not engine.ask(question, suggest_related=False).abstained


def test_the_context_label_of_a_condensed_follow_up_is_not_a_topic_word():
    """A condensed follow-up carries "(context: ...)": the label must not count as a topic
    word the sources fail to mention, or every follow-up would lean towards abstaining."""
    from rag.generate.abstention import topical_words

    words = topical_words(
        "And what if those are contraindicated? (context: first-line treatment acute gout flare)"
    )
    assert "context" not in words.values()
    assert "gout" in words.values()
    assert "line" not in words.values()


def test_a_term_the_index_never_mentions_vetoes_an_otherwise_close_question(engine: Engine):
    """A question about a drug the index never names is never graded direct even though the
    rest of it (gout, flare, first-line) is well covered: the answer leads by saying the
    sources do not address that drug (a partial answer, rag.generate.evidence); an ordinary
    word the passages happen not to use ("straight") vetoes nothing."""
    unknown_drug = "Is zuranolone a first-line treatment for an acute gout flare?"
    coverage = engine.coverage(unknown_drug, engine.search(unknown_drug))
    assert coverage.unknown_words == ("zuranolone",)
    assert not coverage.covered(engine.settings.answer.min_coverage_score)
    answer = engine.ask(unknown_drug, suggest_related=False)
    assert answer.abstained or answer.evidence.grade == "partial"
    shown = answer.answer if answer.abstained else answer.bottom_line
    assert "zuranolone" in shown, shown

    ordinary = "Which colchicine dose is preferred straight away for an acute gout flare?"
    coverage = engine.coverage(ordinary, engine.search(ordinary))
    assert coverage.unknown_words == ()
    assert not engine.ask(ordinary, suggest_related=False).abstained


def test_numbers_and_known_words_are_never_unknown_terms():
    from rag.generate.abstention import is_specific_term

    class Splitter:  # splits every word of more than four letters, like a WordPiece vocabulary
        @staticmethod
        def count_tokens(word: str) -> int:
            return 1 if len(word) <= 4 else 2

    assert is_specific_term(Splitter(), "resmetirom")
    assert not is_specific_term(Splitter(), "dose")
    assert not is_specific_term(Splitter(), "15000")  # digits: a dose or a count, not a term
    assert not is_specific_term(object(), "resmetirom")  # an embedder that cannot count tokens


def test_british_spellings_are_looked_up_in_american(demo_index: Path):
    """The guidelines mostly write "norepinephrine" and "hemorrhage"; a clinician writing
    "noradrenaline" and "haemorrhage" is answered as if they had spelled it that way, neither
    told the index never mentions the word nor marked down for it."""
    engine = engine_for(demo_index)
    pairs = [
        (
            "Is noradrenaline the first-choice vasopressor in septic shock?",
            "Is norepinephrine the first-choice vasopressor in septic shock?",
        ),
        (
            "How is oesophageal variceal haemorrhage treated in cirrhosis?",
            "How is esophageal variceal hemorrhage treated in cirrhosis?",
        ),
    ]
    for british, american in pairs:
        as_british = engine.coverage(british, engine.search(british))
        as_american = engine.coverage(american, engine.search(american))
        assert as_british.unknown_words == ()
        assert as_british.missing_words == as_american.missing_words
        assert not engine.ask(british, suggest_related=False).abstained


def test_american_spelling_respells_british_forms_only():
    from rag.index.lexical import american_spelling

    assert american_spelling("Haemorrhage") == "hemorrhage"
    assert american_spelling("oedema") == "edema"
    assert american_spelling("hospitalised") == "hospitalized"
    assert american_spelling("tumours") == "tumors"
    assert american_spelling("Paracetamol") == "acetaminophen"
    assert american_spelling("warfarin") == "warfarin"


def test_a_dose_question_needs_a_passage_that_doses_what_it_asks_about(engine: Engine):
    """The index names apixaban but never doses it: asked for its dose, rag never answers as
    if it had one: the answer is graded partial and leads by saying no source gives its dose
    (rag.generate.evidence). Allopurinol's dose is given, so that is answered directly."""
    undosed = "What dose of apixaban is used for stroke prevention in atrial fibrillation?"
    coverage = engine.coverage(undosed, engine.search(undosed))
    assert coverage.dose_missing and coverage.unknown_words == ()
    answer = engine.ask(undosed, suggest_related=False)
    if not answer.abstained:
        assert answer.evidence.grade == "partial"
        assert answer.bottom_line.startswith("The cited sources do not address an apixaban dose")
    else:
        assert "states a dose" in answer.answer

    dosed = "What starting dose of allopurinol is used in gout?"
    assert not engine.coverage(dosed, engine.search(dosed)).dose_missing
    answer = engine.ask(dosed, suggest_related=False)
    assert not answer.abstained and "100 mg" in answer.bottom_line + answer.answer
    assert answer.evidence.grade == "direct"


def test_dose_amounts_are_told_from_concentrations():
    from rag.generate.abstention import DOSE_AMOUNT

    for amount in (
        "666 mg three times daily",
        "0.25 mg/kg IV",
        "30 mL/kg",
        "10 units",
        "1,998 mg/day",
    ):
        assert DOSE_AMOUNT.search(amount), amount
    for concentration in ("below 6 mg/dL", "5 mmol/L", "ferritin 100 ng/mL", "300 cells/µL"):
        assert not DOSE_AMOUNT.search(concentration), concentration


@pytest.fixture()
def llm_server():
    from tests.fakes import FakeOpenAIServer

    fake = FakeOpenAIServer()
    yield fake
    fake.stop()


def llm_engine_for(index: Path, url: str, **answer) -> Engine:
    settings = Settings().merged(
        {"index": str(index), "llm": {"base_url": url, "retries": 0}, "answer": answer}
    )
    return Engine.load(settings)


def test_the_model_saying_the_passages_do_not_answer_makes_the_engine_abstain(
    small_index: Path, llm_server
):
    llm_server.check_replies.append(0.2)  # the model: these passages do not state it
    engine = llm_engine_for(small_index, llm_server.url, min_answerable_probability=0.5)
    answer = engine.ask(ON_TOPIC, suggest_related=False)
    assert answer.abstained and answer.citations == ()
    assert "do not state an answer" in answer.answer
    assert llm_server.requests == []  # no answer was generated from passages judged useless
    (check,) = llm_server.checks
    assert ON_TOPIC in check["messages"][-1]["content"]
    assert "colchicine" in check["messages"][-1]["content"].lower()  # the top passage

    llm_server.check_replies.append(0.8)
    llm_server.enqueue("reply", "Bottom line: Low-dose colchicine is preferred [1].")
    answer = engine.ask(ON_TOPIC, suggest_related=False)
    assert not answer.abstained and answer.citations
    assert len(llm_server.requests) == 1


def test_the_check_is_not_asked_when_coverage_already_abstains_or_it_is_off(
    small_index: Path, llm_server
):
    engine = llm_engine_for(small_index, llm_server.url, min_answerable_probability=0.5)
    assert engine.ask(OFF_TOPIC, suggest_related=False).abstained
    assert llm_server.checks == [] and llm_server.requests == []

    engine = llm_engine_for(small_index, llm_server.url, min_answerable_probability=0.0)
    llm_server.enqueue("reply", "Bottom line: Low-dose colchicine is preferred [1].")
    assert not engine.ask(ON_TOPIC, suggest_related=False).abstained
    assert llm_server.checks == []


def test_a_word_of_a_family_the_index_knows_is_not_unknown_to_it():
    import numpy as np

    from rag.index.lexical import LexicalIndex

    lexical = LexicalIndex.build(
        np.arange(2), ["Dyspnea at rest with tachycardia.", "Plasma levels of the drug."]
    )
    assert lexical.has_family("dyspneic")  # "dyspnea": one family, written another way
    assert lexical.has_family("Dyspnea")
    assert not lexical.has_family("plasmapheresis")  # shares "plasma", but is another word
    assert not lexical.has_family("bradycardia")


def test_clinical_shorthand_is_read_as_its_full_form(demo_index: Path):
    """A clinician types "MTX", "tPA", "AIS"; the guidelines write "methotrexate", "alteplase",
    "acute ischemic stroke". The shorthand neither vetoes the answer as a term the index never
    mentions nor keeps retrieval from the section that answers it."""
    engine = engine_for(demo_index)
    pairs = [
        (
            "RA on MTX wants to conceive: when should she stop MTX?",
            "Rheumatoid arthritis on methotrexate planning pregnancy: when should she stop methotrexate?",
        ),
        (
            "AIS 2 h from onset, tPA candidate, BP 198/114. What BP target before lysis?",
            "Acute ischemic stroke 2 h from onset, alteplase candidate, BP 198/114. What blood pressure target before thrombolysis?",
        ),
    ]
    for shorthand, spelled in pairs:
        coverage = engine.coverage(shorthand, engine.search(shorthand))
        assert coverage.unknown_words == (), shorthand
        short, full = (engine.ask(q, suggest_related=False) for q in (shorthand, spelled))
        assert not short.abstained, shorthand
        assert short.evidence.unmentioned == (), short.bottom_line
        assert short.citations[0].doc_id == full.citations[0].doc_id, shorthand
    # "vit E" and "SL GTN" were declined as terms no indexed passage mentions.
    vitamin = engine.ask(
        "NASH on vit E 800 IU - what long-term harms should a man hear about?",
        suggest_related=False,
    )
    assert "prostate cancer" in vitamin.bottom_line, vitamin.bottom_line
    nitrate = engine.ask(
        "Inferior STEMI, ongoing pain, HR 46, BP 128/76. Is SL GTN OK?", suggest_related=False
    )
    assert not nitrate.abstained, nitrate.bottom_line


def test_a_guidelines_acronym_and_how_a_question_is_put_do_not_decline_it(demo_index: Path):
    """Both were declined as questions the index does not cover: "SSC" retrieved endocarditis
    regimens, and "does it actually make a difference" left too little of the question
    covered."""
    engine = engine_for(demo_index)
    deferred = engine.ask(
        "ED patient with fever and tachycardia, BP fine, and on reflection infection looks "
        "unlikely (probably a drug reaction). Does SSC still want antibiotics straight away?",
        suggest_related=False,
    )
    assert "deferring antimicrobials" in deferred.bottom_line, deferred.bottom_line
    supervised = engine.ask(
        "Does it actually make a difference if someone watches him take his disulfiram every day?",
        suggest_related=False,
    )
    assert not supervised.abstained
    assert supervised.citations[0].doc_id == "apa_aud_2018/fda_approved_medications"


def test_a_known_word_behind_a_prefix_or_asking_if_it_is_worthwhile_does_not_decline_it(
    demo_index: Path,
):
    """Both were declined for one word no passage holds: "antiproteinuric" (proteinuria's word
    behind a prefix) and "worthwhile" (how the question is put)."""
    engine = engine_for(demo_index)
    for question, cited in (
        (
            (
                "proteinuric CKD already on max lisinopril - ok to add losartan on top for "
                "extra antiproteinuric effect?"
            ),
            "kdigo_ckd_2024/",
        ),
        (
            (
                "Podagra that started 3 days ago, he's taken nothing yet, eGFR 80, no "
                "interacting drugs. Is starting colchicine now still worthwhile?"
            ),
            "acr_gout_2020/flare_management",
        ),
    ):
        answered = engine.ask(question, suggest_related=False)
        assert not answered.abstained, answered.bottom_line
        assert any(c.doc_id.startswith(cited) for c in answered.citations), answered.citations


def test_a_known_word_with_a_prefix_or_suffix_is_not_named_as_one_no_source_mentions(
    demo_index: Path,
):
    """The answer led with "No indexed source mentions 'afebrile'": a story's finding in a
    form of a word the index holds ("febrile"), like "unsteady" (steady) or "coilable" (coil),
    is no term the index has never heard of."""
    engine = engine_for(demo_index)
    answered = engine.ask(
        "44F with pyelonephritis and a ureteric stent placed for an obstructing stone last "
        "month. Not bacteraemic, afebrile by day 3 on levofloxacin 750 mg daily. Is a 5-day "
        "course enough?",
        suggest_related=False,
    )
    assert "afebrile" not in answered.bottom_line, answered.bottom_line
    shown = f"{answered.bottom_line}\n{answered.answer}"
    assert "5 days may be sufficient" in shown, shown
    for word in ("afebrile", "unsteady", "coilable"):
        assert engine._is_unindexed(word) is False, word
    assert engine._is_unindexed("carbocisteine")


def test_ward_words_for_a_procedure_or_its_timing_are_read_as_the_guideline_writes_them(
    demo_index: Path,
):
    """ "Pre-op", "treadmill", "scoped": a clinician's words for preoperative, exercise and
    endoscopy. Read as written, the gate declined the stress-test question outright."""
    engine = engine_for(demo_index)
    stress = engine.ask(
        "Pre-op patient who needs stress testing but can't walk on a treadmill because of his "
        "knees. Which test?",
        suggest_related=False,
    )
    assert not stress.abstained, stress.bottom_line
    shown = f"{stress.bottom_line}\n{stress.answer}"
    assert "Pharmacologic stress testing" in shown, shown
    from rag.shorthand import spelled_out

    assert spelled_out("When should he be scoped?") == "When should he be scoped (endoscopy)?"
    # "Which clotting tests should go off?" was told the passages do not mention "clotting".
    assert spelled_out("Which clotting tests?") == "Which clotting (coagulation) tests?"


def test_an_electrolyte_symbol_is_spelled_out_only_where_it_labels_a_value():
    from rag.shorthand import spelled_out

    assert spelled_out("DKA, K 3.1, Na 128. Start insulin?") == (
        "DKA, (potassium) K 3.1, (sodium) Na 128. Start insulin?"
    )
    # Vitamin K is no potassium, and a bare letter labels nothing.
    assert spelled_out("vitamin K 10 mg IV") == "vitamin K 10 mg IV"
    assert spelled_out("Plan K for the ward") == "Plan K for the ward"


def test_ward_names_for_a_condition_are_spelled_out():
    from rag.shorthand import spelled_out

    assert "rapid ventricular response" in spelled_out("IV diltiazem for fast AF - dose?")
    assert "postpartum" in spelled_out("Postnatal depression on sertraline: how long?")
    # "fits" are seizures only where someone has them: "nothing fits better than PE" is a verb.
    assert spelled_out("Nothing fits better than PE.") == "Nothing fits better than PE."
    assert "seizures" in spelled_out("She had fits twice last night.")


def test_ward_words_for_diabetes_an_angiogram_and_inhaler_puffs_are_the_guidelines_words():
    """"68M, DM, HTN, current smoker ... TIMI score and when to cath?" counted two risk
    factors (not diabetes) and was told the passages do not mention "cath" beside "Coronary
    angiography < 24 hours"; "max puffs per day" is asked in the guideline's inhalations."""
    from rag.generate.abstention import absent_words
    from rag.shorthand import spelled_out

    assert "DM (diabetes mellitus)" in spelled_out("68M, DM, HTN, current smoker")
    angiography = Hit(
        chunk_id="acs#0", doc_id="acs", text="High risk: Coronary angiography < 24 hours.",
        score=1.0, rank=1, title="NSTE-ACS guideline", section="Timing",
    )  # fmt: skip
    assert "cath" not in absent_words("TIMI score and when to cath?", [angiography])
    assert "inhalations" in spelled_out("max puffs per day?")


def test_shorthand_is_spelled_out_once_and_only_where_unambiguous():
    from rag.shorthand import spelled_out

    assert spelled_out("AIS, tPA candidate; tPA dose?") == (
        "AIS (acute ischemic stroke), tPA (alteplase) candidate; tPA dose?"
    )
    assert spelled_out("tPA (alteplase) dose") == "tPA (alteplase) dose"  # already spelled
    # Two-letter capitals match only as capitals; ambiguous shorthand ("SBP") is left alone.
    assert spelled_out("seen in ED; ed") == "seen in ED (emergency department); ed"
    assert spelled_out("Day 7 post-SAH") == "Day 7 post-SAH (subarachnoid hemorrhage)"
    assert spelled_out("SBP 84, on Eliquis") == "SBP 84, on Eliquis (apixaban)"
    # A drug's class is no full form: "apixaban (NOAC)" would pull up other NOACs' doses.
    assert spelled_out("apixaban dose in AF") == "apixaban dose in AF"
    # A label keeps its value beside it ("MAP 80" is read as a mean arterial pressure of 80).
    assert spelled_out("MAP 80, MAP target?") == "(mean arterial pressure) MAP 80, MAP target?"
    # Everyday words are read as what a guideline calls them.
    assert spelled_out("Flu jab Monday - hold the MTX?") == (
        "Flu (influenza) jab (vaccination) Monday - hold the MTX (methotrexate)?"
    )
    assert spelled_out("short of breath on ticagrelor") == "short of breath (dyspnea) on ticagrelor"
    # Shorthand the passages write themselves is left alone for the answer's scoring.
    assert spelled_out("TBI, MAP 80, tPA?", "In severe TBI keep MAP >= 80") == (
        "TBI, MAP 80, tPA (alteplase)?"
    )


def test_a_follow_up_in_the_guideline_being_read_is_still_put_to_the_check(
    small_index: Path, llm_server
):
    """A follow-up that goes on in the cited guideline needs no coverage score, but the model's
    answerability check is still asked, and its "no" still declines."""
    from rag.types import Turn

    engine = llm_engine_for(small_index, llm_server.url, min_answerable_probability=0.5)
    gout = engine.search(ON_TOPIC)[0].doc_id
    history = [Turn(ON_TOPIC, "Low-dose colchicine [1].", ON_TOPIC, cited_doc_ids=(gout,))]
    follow_up = "Started it yesterday evening, still hurting this morning. Keep going?"
    llm_server.enqueue("reply", f"{follow_up} (gout flare colchicine)")  # the rewrite
    llm_server.check_replies.append(0.2)
    answer = engine.ask(follow_up, history=history, suggest_related=False)
    assert len(llm_server.checks) == 1
    assert answer.abstained and "do not state an answer" in answer.answer


def test_a_drug_the_passages_name_only_by_its_class_is_half_covered_not_unknown(engine: Engine):
    """"Is naproxen first-line for a gout flare?" over a guideline that says "an NSAID": the
    drug is no term the index never mentions (its class is there), but the passage speaks of
    the class, not the drug, so it covers the question less than the class itself would."""
    by_class = "Is an NSAID a first-line treatment for an acute gout flare?"
    by_drug = "Is naproxen a first-line treatment for an acute gout flare?"
    unknown = "Is zuranolone a first-line treatment for an acute gout flare?"
    class_coverage, drug_coverage, unknown_coverage = (
        engine.coverage(q, engine.search(q)) for q in (by_class, by_drug, unknown)
    )
    assert drug_coverage.unknown_words == ()
    assert unknown_coverage.unknown_words == ("zuranolone",)
    assert (
        unknown_coverage.word_coverage
        < drug_coverage.word_coverage
        < class_coverage.word_coverage
    )


def test_a_term_only_a_vignettes_description_uses_vetoes_nothing(engine: Engine):
    """The patient's story ("slurred speech", a drug she once took) is not what is asked: a
    term of it the index never mentions does not veto the question the vignette asks. The
    same term in the sentence that asks still does."""
    vignette = (
        "68M, zuranolone stopped last year, big toe hot and swollen since last night. "
        "Is colchicine first-line for this gout flare?"
    )
    assert engine.coverage(vignette, engine.search(vignette)).unknown_words == ()
    asked = "68M with a gout flare since last night. Is zuranolone first-line for it?"
    assert engine.coverage(asked, engine.search(asked)).unknown_words == ("zuranolone",)
    # A vignette may ask without a question mark: the sentence asking "whether" is the one.
    told = (
        "68M, zuranolone stopped last year, big toe hot and swollen since last night. "
        "The registrar asks whether colchicine is first-line for this gout flare."
    )
    assert engine.coverage(told, engine.search(told)).unknown_words == ()


def test_everyday_words_the_index_never_uses_do_not_count_against_coverage(engine: Engine):
    """How a clinician talks ("got ... today", "something else") is no topic the index
    must hold: such words are left out of the coverage, so a question in ward speech is
    answered; a rarer word the index never uses ("cellulitis") still counts against it."""
    plain = "Which colchicine dose is preferred for an acute gout flare?"
    chatty = (
        "Got an acute gout flare today - which colchicine dose is preferred, or something "
        "else?"
    )
    coverage = engine.coverage(chatty, engine.search(chatty))
    assert not {"got", "today", "something", "else"} & set(coverage.missing_words)
    assert coverage.score >= engine.settings.answer.min_coverage_score
    assert not engine.ask(chatty, suggest_related=False).abstained
    assert coverage.word_coverage == pytest.approx(
        engine.coverage(plain, engine.search(plain)).word_coverage, abs=0.05
    )
    rare = "Which colchicine dose is preferred for an acute gout flare with cellulitis?"
    rare_coverage = engine.coverage(rare, engine.search(rare))
    assert "cellulitis" in rare_coverage.missing_words
    assert rare_coverage.word_coverage < coverage.word_coverage


def test_a_brand_name_asked_for_its_dose_finds_the_generic_dose(engine: Engine):
    """"Zyloprim" is allopurinol: a passage dosing allopurinol gives the dose asked for."""
    question = "What starting dose of Zyloprim is used in gout?"
    coverage = engine.coverage(question, engine.search(question))
    assert not coverage.dose_missing
    answer = engine.ask(question, suggest_related=False)
    assert not answer.abstained and "100 mg" in answer.bottom_line + answer.answer
