"""Follow-up condensation (rag.converse) and the ranking that keeps a follow-up's source
(rag.retrieve.lift_cited_source). Saved conversations: tests/test_sessions.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rag.converse import condense, condense_deterministic
from rag.generate.prompts import build_condense_messages as rewrite_messages
from rag.retrieve import cited_source_doc_ids, lift_cited_source
from rag.types import Hit, Turn

GOUT = Turn(
    question="What is the first-line treatment for a gout flare?",
    answer="Colchicine, NSAIDs or glucocorticoids are first-line [1].",
    standalone_question="What is the first-line treatment for a gout flare?",
    cited_doc_ids=("acr_gout_2020/flare_management",),
)


# --- condensation without an LLM ----------------------------------------------------------


def test_follow_up_carries_the_topic() -> None:
    standalone = condense("And how long for?", [GOUT])

    assert "gout" in standalone.lower() and "flare" in standalone.lower()
    assert standalone.startswith("And how long for?")


def test_third_turn_still_carries_the_first_turns_topic() -> None:
    second = Turn("And if the patient cannot take anything by mouth?", "Parenteral steroids [1].")
    standalone = condense("What if none of those work?", [GOUT, second])

    assert "gout" in standalone.lower()
    assert "none of those work" in standalone


def test_self_contained_question_is_left_alone() -> None:
    question = "What is the alteplase dose for acute ischemic stroke?"
    assert condense(question, [GOUT]) == question


def test_a_change_of_subject_becomes_the_new_topic() -> None:
    stroke = Turn("What is the alteplase dose for acute ischemic stroke?", "0.9 mg/kg [1].")
    standalone = condense("And the maximum time window?", [GOUT, stroke])

    assert "stroke" in standalone and "alteplase" in standalone
    assert "gout" not in standalone


def test_no_history_returns_the_question() -> None:
    assert condense("  What is the CURB-65 score?  ", []) == "What is the CURB-65 score?"


def test_follow_up_words_are_not_repeated_in_the_context() -> None:
    standalone = condense_deterministic("Which gout treatment is first?", [GOUT])
    context = standalone.split("(context:", 1)[1]
    assert "gout" not in context and "treatment" not in context


def test_context_carries_each_topic_word_once_whatever_its_form() -> None:
    """Words are compared by their Snowball stem: "screened" is the follow-up's "screen" and
    "aneurysmal" the topic's "aneurysm", so neither is appended again."""
    screening = Turn("How is perinatal depression screened?", "", "", ())
    standalone = condense_deterministic("What score counts as a positive screen?", [screening])
    assert standalone.endswith("(context: perinatal depression)")
    bleed = Turn("Ruptured aneurysm: aneurysmal subarachnoid hemorrhage care?", "", "", ())
    context = condense_deterministic("Which pressure until then?", [bleed]).split("(context:")[1]
    assert context.split().count("aneurysm") == 1 and "aneurysmal" not in context


def test_what_the_conversation_rules_out_is_not_carried_as_its_topic() -> None:
    """"He wants disulfiram - no heart disease, no psychosis, not on metronidazole." carried
    "metronidazole" and "psychosis" as bare topic words, and the follow-up "Starting dose?"
    was answered with "Metronidazole use (interaction risk)"."""
    story = Turn(
        "He wants disulfiram - goal is complete abstinence, no heart disease, no psychosis,"
        " not on metronidazole.",
        "",
        "",
        (),
    )
    context = condense_deterministic("Starting dose, and how long after his last drink?", [story])
    context = context.split("(context:", 1)[1]
    assert "disulfiram" in context
    assert "metronidazole" not in context and "psychosis" not in context


def test_ie_stays_a_topic_of_the_conversation() -> None:
    endocarditis = Turn("E. faecalis native valve IE, fully susceptible — regimen?", "", "", ())
    assert " ie " in condense_deterministic("His CrCl is 35.", [endocarditis])


# --- condensation with a rewrite function --------------------------------------------------


class RecordingChat:
    """A chat function that returns a queued reply (or raises) and records the messages."""

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []

    def __call__(self, messages: list[dict[str, str]]) -> str:
        self.calls.append(messages)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_good_rewrite_is_used() -> None:
    chat = RecordingChat("How long should treatment of an acute gout flare continue?")

    standalone = condense("And how long for?", [GOUT], rewrite=chat)

    assert standalone == "How long should treatment of an acute gout flare continue?"
    prompt = chat.calls[0][-1]["content"]
    assert "gout flare" in prompt and "And how long for?" in prompt


def test_rewrite_label_and_quotes_are_stripped() -> None:
    chat = RecordingChat('Standalone question: "How long is a gout flare treated for?"')
    assert (
        condense("And how long for?", [GOUT], rewrite=chat)
        == "How long is a gout flare treated for?"
    )


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   \n  ",
        "I'm sorry, I can't help with that.",
        "Colchicine is continued until the flare resolves, usually a few days.",
        "What is the first-line treatment for a gout flare?",  # lost the follow-up's words
        "How long " + "really " * 100 + "for a gout flare?",
        RuntimeError("endpoint down"),
    ],
    ids=["empty", "blank", "refusal", "answer", "lost-words", "too-long", "raises"],
)
def test_unusable_rewrite_falls_back(reply: str | Exception) -> None:
    standalone = condense("And how long for?", [GOUT], rewrite=RecordingChat(reply))

    assert standalone == condense("And how long for?", [GOUT])
    assert "gout" in standalone.lower()


def test_rewrite_prompt_keeps_first_turn_and_cuts_long_answers() -> None:
    turns = [GOUT] + [Turn(f"Follow-up {n}?", "x " * 500) for n in range(6)]
    messages = rewrite_messages("And then?", turns)

    user = messages[-1]["content"]
    assert messages[0]["role"] == "system"
    assert "Q1: What is the first-line treatment for a gout flare?" in user
    assert "Follow-up 0?" not in user and "Follow-up 5?" in user
    assert len(user) < 2500


def test_rewrite_prompt_names_the_sources_the_last_answer_cited() -> None:
    messages = rewrite_messages(
        "How long should it continue?",
        [GOUT],
        source_titles=[
            "2020 ACR Guideline for Management of Gout",
            "2020 ACR Guideline for Management of Gout",
        ],
    )

    user = messages[-1]["content"]
    assert user.count("2020 ACR Guideline for Management of Gout") == 1
    assert "Sources cited in the last answer" in user


# --- the cited guideline moves up in the ranking ----------------------------------------------


def _hit(doc_id: str, rank: int) -> Hit:
    return Hit(
        chunk_id=f"{doc_id}#0", doc_id=doc_id, text="passage", score=1.0 - rank / 100, rank=rank
    )


# Sections as the demo corpus has them: one guideline per title, several documents per title.
TITLES = {
    "acs/antithrombotic": "ESC Guidelines for acute coronary syndromes",
    "acs/invasive": "ESC Guidelines for acute coronary syndromes",
    "tia/early_management": "Transient Ischemic Attack statement",
    "stroke/thrombolysis": "Acute Ischemic Stroke guideline",
    "single/paper": "A paper whose title no other document has",
}


def _siblings(doc_id: str) -> list[str]:
    title = TITLES.get(doc_id)
    return [other for other, other_title in TITLES.items() if other_title == title]


def test_sections_of_the_cited_guideline_move_up_a_few_places() -> None:
    # "How long should dual antiplatelet therapy continue?" after an ACS question: the TIA and
    # stroke sections match the words better, the ACS guideline is what the user is reading.
    history = [
        Turn(
            "Which P2Y12 inhibitor in NSTE-ACS?",
            "Ticagrelor [1][2].",
            "",
            ("acs/invasive", "stroke/thrombolysis"),
        )
    ]
    hits = [
        _hit("tia/early_management", 1),
        _hit("stroke/thrombolysis", 2),
        _hit("acs/antithrombotic", 3),
    ]

    preferred = cited_source_doc_ids(history, _siblings)
    lifted = lift_cited_source(hits, preferred)

    assert preferred == {"acs/antithrombotic", "acs/invasive"}
    assert [hit.doc_id for hit in lifted] == [
        "acs/antithrombotic",
        "tia/early_management",
        "stroke/thrombolysis",
    ]
    assert [hit.rank for hit in lifted] == [1, 2, 3]
    assert lifted[0].score == hits[2].score  # retrieval scores are not rewritten


def test_a_strong_match_far_down_is_not_pulled_to_the_top() -> None:
    history = [Turn("q", "a", "", ("acs/invasive",))]
    hits = [_hit(f"other/{n}", n) for n in range(1, 15)] + [_hit("acs/antithrombotic", 15)]

    lifted = lift_cited_source(hits, cited_source_doc_ids(history, _siblings))

    assert lifted[0].doc_id == "other/1"
    assert 2 < [hit.doc_id for hit in lifted].index("acs/antithrombotic") + 1 < 15


def test_a_document_with_a_title_of_its_own_gets_no_lift() -> None:
    # Lifting the cited document itself pinned follow-ups to the previous section on dev.
    history = [Turn("q", "a", "", ("single/paper", "acs/invasive"))]
    assert cited_source_doc_ids(history, _siblings) == frozenset()
    assert cited_source_doc_ids([], _siblings) == frozenset()
    # A turn that cited nothing (an abstention) leaves the previous source in force.
    abstained = Turn("And the dose?", "The indexed sources do not answer this question.")
    assert cited_source_doc_ids([Turn("q", "a", "", ("acs/invasive",)), abstained], _siblings) == {
        "acs/antithrombotic",
        "acs/invasive",
    }


# --- the engine condenses with the configured LLM ---------------------------------------------


@pytest.fixture()
def llm_server():
    from tests.fakes import FakeOpenAIServer

    fake = FakeOpenAIServer()
    yield fake
    fake.stop()


def _gout_doc_id(engine) -> str:
    return next(
        doc.id for doc in engine.index.documents() if doc.title == "Management of Gout Flares"
    )


def _gout_history(engine) -> list[Turn]:
    return [
        Turn(
            question="What is the first-line treatment for a gout flare?",
            answer="Colchicine, NSAIDs or glucocorticoids [1].",
            standalone_question="What is the first-line treatment for a gout flare?",
            cited_doc_ids=(_gout_doc_id(engine),),
        )
    ]


def _llm_engine(small_index: Path, url: str):
    from rag.answer import Engine
    from tests.conftest import settings_for

    return Engine.load(
        settings_for(small_index, llm={"base_url": url, "retries": 0, "timeout_s": 5.0})
    )


def test_engine_asks_the_llm_for_the_standalone_question(small_index: Path, llm_server) -> None:
    rewritten = "How long should colchicine be continued for an acute gout flare?"
    llm_server.enqueue("reply", rewritten)
    engine = _llm_engine(small_index, llm_server.url)

    answer = engine.ask("And how long for?", history=_gout_history(engine), suggest_related=False)

    assert answer.standalone_question == rewritten
    condense_request = llm_server.requests[0]["messages"]
    assert "rewrite the last question" in condense_request[0]["content"]
    assert "And how long for?" in condense_request[-1]["content"]
    assert "Management of Gout Flares" in condense_request[-1]["content"]  # the cited title
    # The generation request that follows works from the rewritten question.
    assert any(rewritten in json.dumps(body) for body in llm_server.requests[1:])


@pytest.mark.parametrize("reply", ["I'm sorry, I cannot help with that.", "status"])
def test_engine_falls_back_when_the_llm_rewrite_is_unusable(
    small_index: Path, llm_server, reply
) -> None:
    if reply == "status":
        llm_server.enqueue("status", 503)  # the endpoint fails: condensing must not
    else:
        llm_server.enqueue("reply", reply)
    engine = _llm_engine(small_index, llm_server.url)

    history = _gout_history(engine)
    standalone = engine.condense("And how long for?", history)

    assert standalone == condense_deterministic("And how long for?", history)
    assert "gout" in standalone.lower()
    assert len(llm_server.requests) == 1


def test_engine_without_an_llm_condenses_deterministically(small_index: Path) -> None:
    from rag.answer import Engine
    from tests.conftest import settings_for

    engine = Engine.load(settings_for(small_index))
    history = _gout_history(engine)
    answer = engine.ask("And how long for?", history=history, suggest_related=False)

    assert answer.standalone_question == condense_deterministic("And how long for?", history)
    assert answer.retrieved and answer.retrieved[0].doc_id == _gout_doc_id(engine)


def test_a_result_reported_in_a_conversation_is_read_as_a_follow_up() -> None:
    masld = Turn("MASLD patient, FIB-4 is 2.1 — what do I do?", "Proceed to VCTE [1].")
    standalone = condense_deterministic("FibroScan came back at 13.5 kPa.", [masld])
    assert "(context:" in standalone and "masld" in standalone.lower()
    # A question or a keyword query on a new subject is still its own topic.
    assert "(context:" not in condense_deterministic(
        "Apixaban dose for atrial fibrillation in CKD", [masld]
    )


def test_a_noun_or_contraction_that_points_back_makes_a_follow_up() -> None:
    pegloticase = Turn(
        "Refractory tophaceous gout, started pegloticase 8 mg IV every 2 weeks.",
        "Check serum urate before each infusion [1].",
    )
    for follow_up in (
        "Pre-infusion urate today is 7.1. Go ahead with the dose?",
        "Six weeks in she's still scoring 12 and not improving. What now?",
    ):
        standalone = condense_deterministic(follow_up, [pegloticase])
        assert "(context:" in standalone and "pegloticase" in standalone, standalone
    # Naming which dose makes the question its own.
    question = "What is the dose of apixaban for atrial fibrillation in CKD?"
    assert condense_deterministic(question, [pegloticase]) == question


def test_a_follow_up_in_the_guideline_being_read_is_answered_not_declined(small_index: Path):
    """"Took the tablets at supper; toe still throbbing and swollen. Carry on?" shares few
    words with any passage ("tablets", "supper", "toe", "throbbing" are in none), yet it goes
    on in the gout guideline the last answer cited: it is answered from that guideline, graded
    partial (not declined as off-topic). After an answer that cited nothing, the same follow-up
    gets no such benefit of the doubt. (Everyday words the index never uses, "started",
    "morning", "keep going", no longer count against a question at all.)"""
    from rag.answer import Engine
    from tests.conftest import settings_for

    engine = Engine.load(settings_for(small_index))
    follow_up = "Took the tablets at supper; toe still throbbing and swollen. Carry on?"
    answer = engine.ask(follow_up, history=_gout_history(engine), suggest_related=False)
    assert not answer.abstained
    assert answer.citations[0].doc_id == _gout_doc_id(engine)
    assert answer.evidence.grade == "partial"

    declined = [replace(_gout_history(engine)[0], cited_doc_ids=())]
    assert engine.ask(follow_up, history=declined, suggest_related=False).abstained


def test_a_follow_up_that_names_no_guideline_topic_keeps_the_conversations_topic() -> None:
    from rag.text import title_topics

    topics = title_topics("IDSA Clinical Practice Guideline for Complicated Urinary Tract Infections")
    topics |= title_topics("Infective Endocarditis in Adults: Diagnosis and Antimicrobial Therapy")
    pyelo = Turn(
        "Pyelo, day 2 of IV ceftriaxone, still vomiting. E. coli resistant to cipro. Orals now?",
        "Switch once afebrile and tolerating oral intake [1].",
    )
    follow_up = "Vomiting settled by day 3 and the isolate is cefazolin-susceptible. Cephalexin dose?"
    # Words enough to stand alone, but no condition: the pyelonephritis is what it is about.
    standalone = condense_deterministic(follow_up, [pyelo], topics)
    assert standalone.startswith(follow_up) and "(context: pyelo" in standalone
    # Without the index's topics it is taken as self-contained, as before.
    assert condense_deterministic(follow_up, [pyelo]) == follow_up
    # A follow-up naming a guideline's topic (here by shorthand: "IE") changes the subject.
    switch = "New murmur and fevers in a PWID with staph in the blood cultures. Workup for IE?"
    assert condense_deterministic(switch, [pyelo], topics) == switch


def test_a_heart_sound_in_the_answer_is_no_score_the_follow_up_carries() -> None:
    """"What's his RCRI?" answered with the RCRI table, whose heart-failure row names "S3":
    "that score" in the follow-up was carried as S3 (the only name with a digit in the turn),
    which then read as a history of heart failure when the RCRI was added up."""
    rcri = Turn(
        "Pre-op for open AAA repair: prior stroke, creatinine 2.4, on insulin. What's his RCRI?",
        "History of CHF, pulmonary edema, bilateral rales or S3 [1]. RCRI 3: 9% to 11% [1].",
        "Pre-op for open AAA repair: prior stroke, creatinine 2.4, on insulin. What's his RCRI?",
        ("acc_aha_perioperative_2014/risk_assessment",),
    )
    standalone = condense_deterministic("And his cardiac risk with that score?", [rcri])
    assert "S3" not in standalone and "rcri" in standalone.lower(), standalone


def test_the_drug_a_story_settles_on_and_no_drug_name_of_the_answer_are_carried() -> None:
    """The story named its drug last, past the context's word limit, and the answer's
    "Anti-IL4 Receptor Alpha" (a name with a digit, but no score) was carried instead: the
    follow-up's "what dose should I stay under?" was answered with dupilumab's dose."""
    turn = Turn(
        "Severe eosinophilic asthma, two biologics have failed and she keeps needing rescue "
        "pred, so we're resorting to daily maintenance prednisolone.",
        "Anti-IL4 Receptor Alpha: Dupilumab, loading dose 400 mg SC [1].",
    )
    standalone = condense_deterministic(
        "What dose should I try to stay under, and what protective measures go alongside it?",
        [turn],
    )
    assert "prednisolone" in standalone and "IL4" not in standalone, standalone


def test_a_long_story_carries_its_clinical_terms_not_its_everyday_words() -> None:
    """"Nearest cath lab is a good 150 min away by road, so our 76-year-old lady with an
    anterior STEMI is getting TNK here in the ED." has more words than the context holds: it
    carried "good" and "away" and lost "TNK", the drug the follow-up's "the lytic"
    is, so the follow-up was declined. The rarest words in English are kept, in their order."""
    story = Turn(
        "Nearest cath lab is a good 150 min away by road, so our 76-year-old lady with an"
        " anterior STEMI is getting TNK here in the ED.",
        "",
        "",
        (),
    )
    standalone = condense_deterministic("What clopidogrel dose goes with the lytic?", [story])
    context = standalone.split("(context:")[1]
    assert "stemi" in context and "tnk" in context, standalone
    assert not {"good", "away"} & set(context.rstrip(")").split()), standalone
