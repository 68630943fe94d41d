"""The offline backend: an answer assembled only from sentences copied out of the passages.

Over 500 lines: choosing units (scoring, scope, values) and writing them as Markdown are one
stage whose parts share the units' scores; the units themselves are in units.py, the values in
values.py, the wording in wording.py.

`ExtractiveGenerator` needs no LLM and is deterministic. It splits each passage into units
(prose sentences; list items and table rows whole), scores every unit against the question,
and writes the best few, each followed by its passage's [n]:

    Bottom line: <best unit> [n].

    ### <section>
    <unit> [n]. <unit> [m].

What it writes is always passage text: the only edits are dropped Markdown emphasis
(**, __, *, _, backticks), dropped citation markers the source itself carried ("[12]", which
would otherwise collide with ours), table cells joined by " | ", a nested list item written
after the label of the item it sits under ("Score 3-5 (high risk): Manage as severe
pneumonia ..."), a line of a fenced block (the guidelines' decision trees) written after the
lines it branches from, and the [n] it adds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rag.generate.base import Draft, check_audience
from rag.generate.scores import Tally, measured, tally
from rag.generate.units import Unit, is_headed_list, label_of, passage_units, shown_text
from rag.generate.values import NAME_WITH_DIGITS, Value, names_number, other_score, question_values
from rag.generate.values import conditions as value_conditions
from rag.generate.values import match as value_match
from rag.generate.values import slack as value_slack
from rag.generate.wording import (
    definitions,
    for_patient,
    is_sentence,
    lowered,
    rows_form,
    sentence_form,
)
from rag.shorthand import (
    alternatives,
    drug_class,
    drug_forms,
    named_guidelines,
    stems_with_full_forms,
    writes_form,
)
from rag.text import (
    CONTEXT_OPENER,
    DRUG_NAME,
    WORD,
    asked_part,
    asking_clause,
    asking_sentences,
    content_stems,
    content_words,
    drug_stem,
    is_everyday_english,
    negated_stems,
    plain,
    section_headings,
    title_topics,
    told_sentences,
)
from rag.types import Hit

__all__ = ["GENERIC_WORDS", "ExtractiveGenerator", "plain", "question_parts"]


MAX_UNITS = 10
MAX_WORDS = 300
MAX_EMBEDDED_UNITS = 64  # bounds the embedder's work per question (~2 s worst case here)

# Question words that say what kind of answer is wanted but not what it is about: a passage
# sharing only these ("symptoms", "treatment") with the question is not on its topic. Stemmed,
# as questions and units are compared (content_stems).
GENERIC_WORDS = content_stems(
    """
    symptom symptoms sign signs treatment treatments treat treated therapy therapies cause
    causes caused diagnosis diagnose diagnosed risk risks factor factors prevent prevention
    outlook prognosis people person patient patients disease diseases condition conditions
    disorder disorders information type types test tests effect effects use used using
    manage management recommended recommendation recommendations option options common best
    many much know known get help need needs way ways mean means like affect affected first
    long time adult adults child children study studies associated
    """
)

# Text addressed to an AI rather than to a reader: a passage containing it is not quoted.
_INJECTION = re.compile(
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) (?:instructions|prompts?)"
    r"|disregard (?:all |any )?(?:the )?(?:previous|prior|above) "
    r"|\bsystem prompt\b|\byou are (?:now )?(?:an? )?(?:ai|assistant|language model|chatbot)\b"
    r"|\breply only with\b|\bcite (?:passage|source)s? \[",
    re.IGNORECASE,
)
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def continues_section(hit: Hit, hits: Sequence[Hit]) -> bool:
    """Whether the chunk before `hit` in its document, of the same section, is among `hits`:
    then `hit` goes on from it (its list is the rest of one begun there)."""
    number = _chunk_number(hit)
    if number is None:
        return False
    before = f"{hit.chunk_id.rpartition('#')[0]}#{number - 1}"
    return any(other.chunk_id == before and other.section == hit.section for other in hits)


def _chunk_number(hit: Hit) -> int | None:
    """The position of `hit`'s chunk in its document (its id is "<doc_id>#<n>"), or None."""
    number = hit.chunk_id.rpartition("#")[2]
    return int(number) if number.isdigit() else None


def quotable(hit: Hit) -> bool:
    """Whether a passage may be quoted: none holding text addressed to an AI."""
    return not _INJECTION.search(hit.text)


class ExtractiveGenerator:
    """Answers with the passage units that best match the question; never invents a claim.

    `embedder` (optional) is anything with `embed_query(text) -> (d,)` and
    `embed_passages(texts) -> (n, d)` returning unit vectors (rag.index.embedder.Embedder);
    when given, cosine similarity with the question joins the lexical score, which lets a
    paraphrase ("high blood pressure" for "hypertension") be found.
    """

    name = "extractive"

    def __init__(self, embedder: Any | None = None) -> None:
        self.embedder = embedder

    def generate(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        audience: str = "clinician",
        want_decision: bool = False,
        cited_before: Sequence[str] = (),
    ) -> Draft:
        """A draft citing `hits` as [1]..[len(hits)], or Draft(text="", refused=True) when no
        passage shares meaningful content with `question`. The decision is always None: this
        backend copies passages and cannot weigh them into a yes or no.

        1. Split every passage into units that keep their structure (rag.generate.units).
        2. Score each unit against the question: shared words weighted by rarity, the
           embedder's similarity, the retrieval rank, and whether the row or branch matches
           the values the question gives (rag.generate.values), among them a score its values
           add up to on the score's own table (rag.generate.scores).
        3. Keep to the guideline of the best unit (in a follow-up, to the one the previous
           answer cited, `cited_before`, when it answers at all): another guideline's unit
           stays only when it answers as well, and is then labelled with its organisation and
           year.
        4. The best unit, written as one sentence, is the bottom line; the others follow under
           their section headings, tables as tables, lists under their intro.
        """
        check_audience(audience)
        units = [
            unit
            for passage, hit in enumerate(hits, start=1)
            if quotable(hit)
            for unit in passage_units(hit, passage, continues=continues_section(hit, hits))
            if not unit.is_header_only
        ]
        question_words = set(content_stems(question))
        if not units or not question_words:
            return Draft(text="", refused=True)

        # What the patient does not have ("no diabetes") is no word a passage should share.
        negated = negated_stems(question)
        unable = unable_stems(question)
        topical_words = (question_words - GENERIC_WORDS) or question_words
        # A section headed by what is asked ("Reperfusion Therapy in STEMI > ... > Absolute
        # Contraindications to Fibrinolytic Therapy" for "Absolute contraindications to
        # fibrinolysis in STEMI?"): its heading path names every topical word of the question.
        titled = [
            topical_words <= content_stems(hits[unit.passage - 1].section)
            and bool(topical_words & content_stems(unit.section))
            for unit in units
        ]
        wants_list = bool(_WANTS_LIST.search(question))
        # A list read under its heading (no intro of its own) is quoted whole only in a section
        # headed by what is asked, or for a question asking for a list its heading names
        # ("qSOFA Criteria" for "qSOFA criteria?", not "Limitations" for what makes a UTI
        # complicated).
        kept = [
            i
            for i, unit in enumerate(units)
            if not is_headed_list(unit)
            or titled[i]
            or (wants_list and topical_words & content_stems(unit.section))
        ]
        units, titled = [units[i] for i in kept], [titled[i] for i in kept]
        own_words = asked_part(question)  # without a follow-up's "(context: ...)"
        asking = asking_sentences(question)
        context_words = frozenset(question_words - content_stems(own_words))
        lexical = _lexical_scores(
            (question_words - negated) or question_words, units, titled, context_words
        )
        on_topic = [bool(unit.words & topical_words) for unit in units]
        vectors = self._unit_vectors(units, lexical)
        similarity = None
        if vectors:
            question_vector = np.asarray(self.embedder.embed_query(question), dtype=np.float32)
            similarity = [
                float(vectors[i] @ question_vector) if i in vectors else 0.0
                for i in range(len(units))
            ]
            # A vignette's story fills its embedding ("on norepi 0.4 + vaso 0.03, adrenaline
            # added ... lactate up 3.1 -> 4.6. Failing resus?" is closest to the vasopressor
            # algorithm): the sentences that ask weigh half of what a unit is close to.
            clause = asking_clause(asking)
            if clause != own_words:
                asking_vector = np.asarray(self.embedder.embed_query(clause), dtype=np.float32)
                similarity = [
                    (1 - ASKING_SIMILARITY_SHARE) * sim
                    + ASKING_SIMILARITY_SHARE * (float(vectors[i] @ asking_vector) if i in vectors else 0.0)
                    for i, sim in enumerate(similarity)
                ]

        # The score the story's values add up to ("CURB-65?" with urea, RR, BP and age given)
        # picks the row for that score, as a score the question gave would.
        added_up = tally(question, hits)
        given_score = [Value(float(added_up.total), "score")] if added_up is not None else []
        # The story of a score it adds up to gives measurements, none of them the score:
        # "RR 22, HR 98 ... NEWS2?" meets no "NEWS2 >= 7".
        # A follow-up on a topic of its own ("Starting RRT - CRRT or IHD, what effluent dose
        # ...?" after a septic-shock story) is not read with the conversation's numbers: its
        # "norad 0.3" picks no vasopressor branch.
        own_topic = _own_topic(question)
        story = measured(added_up, question_values(asked_part(question) if own_topic else question))
        values = story + given_score
        # Whether each unit's condition meets (+1), contradicts (-1) or says nothing of (0) the
        # question's values: it weighs the unit, and picks the rows and branches shown.
        fits = [
            0 if added_up is not None and unit.header and added_up.is_component(unit.header)
            else _single_parameter_fit(story, added_up, unit)
            if added_up is not None and _SINGLE_PARAMETER.search(unit.text)
            else _value_match(values, unit)
            for unit in units
        ]
        # A branch that answers NO to a finding the question reports ("Cholangitis present
        # (fever, jaundice, RUQ pain)? -> NO" for "T 39.2, bili rising, RUQ tender") is the
        # other patient's branch.
        findings = content_stems(own_words) - negated - GENERIC_WORDS
        # So is one under a heading for the other condition its document pairs with the one
        # asked about ("Insulin Therapy for HHS" in "... in DKA and HHS", for a DKA question:
        # its "beta-hydroxybutyrate < 3.0" row is no DKA patient's, whatever the ketones).
        spelled = {word.upper() for word in WORD.findall(question)}
        results = reported_results(own_words)
        fits = [
            -1
            if fit >= 0
            and (
                _denies(unit, findings, negated - GENERIC_WORDS)
                or _opens_without(unit, findings)
                or _for_paired_condition(unit, hits[unit.passage - 1].section, spelled)
                or _states_result(unit, results, same=False)
            )
            else 1
            if fit == 0 and _states_result(unit, results, same=True)
            else fit
            for fit, unit in zip(fits, units, strict=True)
        ]
        must_have = _must_have_coverage(units, topical_words)
        wants = answer_type(question)
        wanted = "list" if wants_list else wants  # what the bottom line's unit should give
        asks_when = bool(_ASKS_WHEN.search(own_words))
        asks_limit = bool(_ASKS_LIMIT.search(asking))
        # Hyphenated terms ("first-line", "non-valvular") mean more together than their words
        # apart ("first" alone is a generic word).
        phrases = {term.lower() for term in re.findall(r"\b[A-Za-z]+(?:-[A-Za-z]+)+\b", question)}
        about = _about_weights(question, hits)
        # The drugs a dose question asks about ("Does she qualify for mepolizumab, and what's
        # the dose?"): another drug's dose (the ICS table her "high-dose ICS-LABA" brought)
        # answers a question not asked.
        # A follow-up asking "Can he have it at a reduced dose?" doses the drug its context
        # names (acamprosate), not the one whose renal table its CrCl matches (gabapentin); a
        # vignette's story names the drugs that failed, not the one asked about.
        asked_about = DRUG_NAME.findall(asking.lower())
        asked_drugs = asked_about
        if not asked_drugs and CONTEXT_OPENER in question and not own_topic:
            asked_drugs = DRUG_NAME.findall(question.split(CONTEXT_OPENER, 1)[1].lower())
        dosed: list[str] = []
        if wants == "dose":
            # A drug the drug-class table knows is dosed too, though its name has no drug's
            # shape ("How do I dose alteplase?").
            classed = [word for word in WORD.findall(asking.lower()) if drug_class(word)]
            dosed = [drug_stem(drug) for drug in dict.fromkeys([*asked_drugs, *classed])]
        # A drug the sentences that ask name ("RA on certolizumab, planning a pregnancy. Stop
        # it?") is what the answer is about: GINA's "biologic therapy should be continued
        # during pregnancy" answers for another drug. Its class names it too ("MRA" for
        # spironolactone).
        story_drugs = list(dict.fromkeys(DRUG_NAME.findall(own_words.lower())))
        if not asked_about and len(story_drugs) == 1 and re.search(r"\bit\b", asking, re.IGNORECASE):
            asked_about = story_drugs  # "RA on certolizumab, planning a pregnancy. Stop it?"
        named_drugs = [form for drug in asked_about for form in drug_forms(drug)]
        # The bottom line of a question asking a dose first gives an amount of a drug the
        # sentences that ask name, not of one of the conversation's ("Does she qualify for
        # mepolizumab, and what's the dose?" is answered in its own order); a follow-up that
        # names none doses its context's ("Starting dose, and how long after his last drink?"
        # after "He wants disulfiram": not naltrexone's starting dose).
        doses_asked: Callable[[Unit], bool] | None = None
        if (
            wants == "dose"
            and asked_drugs
            and answer_type((question_parts(asking) or [asking])[0]) == "dose"
        ):
            dosed_as_asked = [drug_stem(drug) for drug in asked_drugs]

            def gives_dose(unit: Unit) -> bool:
                return _doses(unit, dosed_as_asked, hits[unit.passage - 1].section)

            doses_asked = gives_dose
        if not any(_names_drug(unit, named_drugs) for unit in units):
            named_drugs = []
        scores: list[float] = []
        for i, unit in enumerate(units):
            score = lexical[i]
            if similarity is not None:
                score = 0.3 * score + 0.7 * max(similarity[i], 0.0)
                on_topic[i] = on_topic[i] or similarity[i] >= _PARAPHRASE_SIMILARITY
            score *= _rank_weight(unit.passage) * _length_weight(unit, audience)
            score *= _VALUE_WEIGHT[fits[i]]
            if (
                _for_negated(unit, negated)
                or names_ruled_out(hits[unit.passage - 1].title, negated)
                or _for_the_able(unit, unable)
            ):
                # Written for the population the question rules out, or in a guideline for it
                # ("Standards of Care in Diabetes" for a patient with no diabetes), or for a
                # patient who can do what this one cannot ("if the patient can exercise").
                score *= _VALUE_WEIGHT[-1]
            if fits[i] <= 0 and _EXAMPLE.search(unit.section):
                # A worked example is another patient's sum ("A 70 kg patient with 30% TBSA
                # burn: ... = 8,400 mL"): it answers only a question whose values it meets.
                score *= _VALUE_WEIGHT[-1]
            if unit.kind in ("list", "table"):
                score *= 1.25 if wants_list else 0.8
            score *= _answer_type_weight(wants, shown_text(unit))
            if dosed and not _names_drug(unit, dosed, hits[unit.passage - 1].section):
                # (A drug the headings name is the dose's: "Dose: 0.9 mg/kg" under "IV
                # Alteplase > Dosing Protocol".)
                score *= OTHER_DRUG_DOSE_WEIGHT
            elif named_drugs and not _names_drug(unit, named_drugs):
                score *= OTHER_DRUG_WEIGHT
            if wants == "time" and _TIMING_HEADING.search(unit.section):
                score *= TIMING_HEADING_WEIGHT  # "how long?": "Duration of Prophylaxis"
            if asks_when and _CONDITION.search(unit.text):
                score *= 1.4  # "When is bicarbonate indicated?": "Consider only if pH < 7.0"
            if asks_limit and _STATES_LIMIT.search(shown_text(unit)):
                score *= LIMIT_WEIGHT
            score *= 1.0 + 0.3 * sum(1 for phrase in phrases if phrase in shown_text(unit).lower())
            score *= about[unit.passage - 1]
            scores.append(score if on_topic[i] else 0.0)

        if max(scores) <= 0.0:
            return Draft(text="", refused=True)
        topical = scores
        named_sources = _named_sources(own_words, units, scores, hits)
        names = {name.lower() for name in NAME_WITH_DIGITS.findall(question)}
        named = [names_all(unit, names) for unit in units]
        scores = _in_scope(
            units,
            scores,
            hits,
            [m if n else 0.0 for m, n in zip(must_have, named, strict=True)],
            frozenset(topical_words - negated),
            named_drugs,
            _capital_names(own_words),
            frozenset(cited_before),
            named_sources,
        )
        chosen = _select(units, scores, question_words, hits, content_stems(" ".join(names)))
        if vectors:
            # Each part of a two-part question may be answered by another guideline.
            chosen = self._cover_parts(question, units, topical, chosen, vectors)
        # Criteria that must all be met ("may be considered for discharge when ALL of the
        # following criteria are met") and that the story's values fail are said first.
        unmet = _unmet_criteria(units, fits, values, chosen, asking, hits)
        # The documents holding the score the story adds up to.
        scored_in = {hits[n - 1].doc_id for n in added_up.passages} if added_up else set()

        def holds_total(unit: Unit) -> bool:
            """Whether `unit`, of the score's own document, is a band holding its total."""
            return (
                hits[unit.passage - 1].doc_id in scored_in
                and _value_match(given_score, unit) > 0
            )

        if added_up is not None:
            # What the total means is shown however its words score: the row or rule of the
            # score's own document whose band holds it most closely ("3-4: coronary
            # angiography within 24-72 hours", not a drug list for "TIMI ≥ 3", nor another
            # guideline's "Level 3" hypoglycaemia).
            band = min(
                (
                    (_value_slack(given_score, unit), n)
                    for n, unit in enumerate(units)
                    if fits[n] > 0 and holds_total(unit)
                ),
                default=None,
            )
            if band is not None and units[band[1]] not in chosen:
                chosen = [*chosen, units[band[1]]]
        matched = {i for i, fit in enumerate(fits) if fit > 0}
        contradicted = {id(units[i]) for i, fit in enumerate(fits) if fit < 0}
        if any(i in matched for i, unit in enumerate(units) if unit in chosen):
            # A branch or row the question's values contradict ("INR 1.3-1.9" for an INR of
            # 4.5) is left out once one they meet is shown.
            chosen = [unit for unit in chosen if id(unit) not in contradicted]
            # So are the nested items they contradict ("If 10-year risk >= 20%: ..." under
            # "Calculate 10-year ASCVD risk" for a risk of 12%).
            chosen = [_without_contradicted(unit, values) for unit in chosen]
        chosen = _whole_groups(chosen, units, matched)
        chosen = _with_rest_of_tables(chosen, units)
        if wants == "dose":
            chosen = _with_protocol(chosen, units)
        # Neighbours the question's values contradict ("risk >= 20%" for 12%) stay out.
        around = [0.0 if fit < 0 else score for score, fit in zip(topical, fits, strict=True)]
        chosen = _with_neighbours(chosen, units, around, question_words)
        chosen = _with_labelled_siblings(chosen, units, hits, asking)
        chosen = [_without_contradicted(unit, values) for unit in chosen]
        if added_up is not None:
            # The component table is said by the working (its rows that scored are shown
            # below); what the total means leads.
            rest = [u for u in chosen if not (u.header and added_up.is_component(u.header))]
            chosen = rest or chosen
        if not chosen:
            return Draft(text="", refused=True)
        # A unit the story's values match leads only if, without the weight the match gives
        # it, it comes near the best unit they do not match: a story's age ("59M") meets "Age
        # <= 75" in a loading-dose rule, which must not lead over the side-effect line asked
        # about. A value the question asks with ("in the first 8 hours?") picks its row.
        unmatched_best = max(
            (scores[i] for i, unit in enumerate(units) if unit in chosen and i not in matched),
            default=0.0,
        )
        asked_values = measured(added_up, question_values(asking)) + given_score
        # ... and only if it names at least half as much of what the sentences that ask ask
        # about as the best unit the values do not match: "NIHSS 11" meets "CTA if LVO
        # suspected (NIHSS >= 6)", which says nothing of "Absolute contraindication to
        # alteplase?".
        asked_words = content_stems(asking) - GENERIC_WORDS - negated
        shown = [i for i, unit in enumerate(units) if unit in chosen]
        # A unit names what is asked also by the headings it sits under: "Absolute
        # Contraindications" under "IV Thrombolysis for Acute Ischemic Stroke" for "Lyse her?".
        asked_share = (
            {i: _asked_share(asked_words, units[i], hits[units[i].passage - 1].section) for i in shown}
            if asking != question
            else None
        )
        unmatched_asked = max(
            (asked_share[i] for i in shown if asked_share and i not in matched), default=0.0
        )
        # What the story says of the patient, with the classes of the drugs it names
        # ("apixaban": a direct factor Xa inhibitor).
        told = told_sentences(own_words, asking)
        classes = [form for drug in DRUG_NAME.findall(told.lower()) for form in drug_class(drug)]
        story_terms = (content_stems(told) | content_stems(" ".join(classes))) - GENERIC_WORDS
        story_terms -= negated
        # Asked whether to do something, a matched unit that holds it back ("K+ < 3.5 mmol/L?
        # -> DELAY insulin until K+ > 3.5" for "K 3.1 ... Can I start the insulin infusion
        # now?") answers before one saying how to do it (the insulin regimen the ketones
        # match, the optional bolus "before starting infusion"), however few asked words it
        # names.
        withheld = {
            i
            for i in matched
            if wants == "decision"
            # (shown, or shown within a chosen list: "Initiate the following if ACS ...")
            and (units[i] in chosen or any(_contains(unit, units[i]) for unit in chosen))
            # (the heading may say it: "Absolute Contraindications" over "Use of direct factor
            # Xa inhibitors within 48 hours")
            and _WITHHOLDS.search(f"{units[i].section} {shown_text(units[i])}")
            # for what the story tells: "K+ < 3.5 ... DELAY insulin" for "K 3.1",
            # "Contraindications: ... tadalafil within 48 hours" (cut from its "Nitroglycerin:"
            # item) for "Took tadalafil about 14 h ago", "direct factor Xa inhibitors within 48 hours" for
            # apixaban 20 hours ago; not "Recent (within 3 months) intracranial surgery" for a
            # stroke 2 h old.
            and (
                units[i].words
                | content_stems(f"{units[i].parent} {units[i].lead} {units[i].section}")
            )
            & story_terms
        }
        shown_matched = [
            i
            for i in matched
            if i in withheld
            or (
                units[i] in chosen
                and (
                    (
                        scores[i] / _VALUE_WEIGHT[1] >= MATCHED_LEAD_RATIO * unmatched_best
                        and (
                            asked_share is None
                            or asked_share[i] >= ASKED_SHARE_RATIO * unmatched_asked
                        )
                    )
                    or _value_match(asked_values, units[i]) > 0
                )
            )
        ]
        if named_drugs and any(_names_drug(units[i], named_drugs) for i in shown_matched):
            # A row the values meet for another drug than the one asked about ("Age <= 75
            # years: 300 mg clopidogrel loading dose" for "Should eplerenone be added?", age 63)
            # does not lead over one for that drug.
            shown_matched = [i for i in shown_matched if _names_drug(units[i], named_drugs)]
        best_rule = max((scores[i] for i in shown_matched if units[i].kind != "path"), default=0.0)
        # Of the matched units scoring close to the best, the one whose condition fits the
        # values most closely ("< 60 bpm" for a heart rate of 50, not "< 100 bpm") leads.
        best_matched = max((scores[i] for i in shown_matched), default=0.0)
        # A score the story adds up to is read by its band: the row whose band holds it ("3-4:
        # coronary angiography within 24-72 hours") competes however its words score.
        near_best = {
            i: _value_slack(values, units[i])
            for i in shown_matched
            if scores[i] >= CLOSER_FIT_RATIO * best_matched or holds_total(units[i])
        }
        closest = min(near_best.values(), default=math.inf)
        withheld = {i for i in withheld if i in shown_matched}
        # A passage read beside the ranked ones (rag.retrieve.with_closest_of_document) fills
        # the answer; it does not lead it, nor join its bottom line.
        beside = {n for n, hit in enumerate(hits, start=1) if hit.beside}
        # A decision-tree path reads less well than a rule or a row: it leads only when it
        # answers clearly better than every matched rule ("INR >= 2.0: 4F-PCC ...").
        lead = next(
            (
                units[i]
                for i in sorted(
                    (i for i in shown_matched if units[i].passage not in beside),
                    key=lambda i: (
                        bool(withheld) and i not in withheld,
                        units[i].kind == "path" and scores[i] < PATH_LEAD_RATIO * best_rule,
                        near_best.get(i, math.inf) > closest,
                        -scores[i],
                    ),
                )
            ),
            None,
        )
        if lead is not None and lead.parent:
            # The whole item the matched rule sits in ("Score 2 (Moderate risk):" with all
            # its actions), not one of its actions alone.
            whole = next(
                (u for u in units if u.passage == lead.passage and u.text == lead.parent), None
            )
            if whole is not None and len(shown_text(whole).split()) <= MAX_WHOLE_WORDS:
                chosen = [whole if unit is lead else unit for unit in chosen]
                chosen = [unit for unit in chosen if not _contains(whole, unit) or unit is whole]
                chosen = [unit for n, unit in enumerate(chosen) if unit not in chosen[:n]]
                lead = whole
        also: list[Unit] = []
        if lead is not None and lead.kind == "row":
            # Values that pick several rows of one table ("at 5 and 10 minutes") are answered
            # by all of them.
            also = [
                units[i]
                for i in sorted(shown_matched, key=lambda i: units[i].position)
                if units[i] is not lead
                and units[i].kind == "row"
                and _table_key(units[i]) == _table_key(lead)
            ][: MAX_BOTTOM_LINE_UNITS - 1]
        if not also and vectors:
            # (A rule the values matched answers one part of "Is it time for steroids, and
            # what dose?"; the others are answered too.)
            also = self._part_answers(
                question, units, chosen, vectors, _bottom_unit(chosen, lead, wanted, doses_asked)
            )
        # Rows of one table that answer the question as well as the best ("Drug-eluting stent
        # (DES): optimally 365 days" beside "DES (abbreviated DAPT): after 180 days"): with no
        # value to pick one, the bottom line gives each.
        tied_rows = [
            unit
            for unit, score in zip(units, scores, strict=True)
            if lead is None and unit.kind == "row" and score >= TIED_ROW_RATIO * max(scores)
        ]
        # What qualifies an answer ("Limitations") is shown after it and never leads, unless the
        # question asks about it. Nor does a unit the story's values match that may not lead
        # (above) by the weight the match gave it: "NIHSS 11" meets "CTA if LVO suspected
        # (NIHSS >= 6)", which is no answer to "Absolute contraindication to alteplase?".
        # Least of all a sibling the values contradict, shown with the list it belongs to
        # ("Age >= 75 years: No IV bolus ..." for a man of 68).
        story_only = {id(units[i]) for i in matched if i not in shown_matched}
        score_of = dict(zip(map(id, units), scores, strict=True))

        def aside(unit: Unit) -> bool:
            if asks_limit and _STATES_LIMIT.search(shown_text(unit)):
                return False  # "Note: The maximum recommended total formoterol dose ..."
            return (
                bool(_ASIDE_HEADING.search(unit.section))
                and not content_stems(unit.section) & question_words
            ) or (
                _ASIDE_LABEL.match(shown_text(unit)) is not None
                or _UNSTUDIED.search(shown_text(unit)) is not None
            )

        # ... unless it answers far better than anything else and gives the figure the
        # recommendations do not: "what proportion of blood cultures come back positive?" is
        # answered by "approximately 5-14%" under "Limitations".
        stated = [u for u in chosen if not aside(u)]
        best_stated = max((score_of.get(id(u), 0.0) for u in stated), default=0.0)
        figured = bool(stated) and _gives_number(shown_text(stated[0]))

        def may_lead(unit: Unit) -> bool:
            return (
                not figured
                and score_of.get(id(unit), 0.0) >= ASIDE_LEAD_RATIO * best_stated
                and _gives_number(shown_text(unit))
            )

        chosen.sort(
            key=lambda unit: (
                aside(unit) and not may_lead(unit),
                id(unit) in story_only,
                id(unit) in contradicted,
            )
        )
        if lead is None and CONTEXT_OPENER in question:
            # A follow-up's context weighs in every unit's score; of the units scoring about
            # as well, the one naming what the follow-up itself asks answers it ("What's the
            # screening test for pheo then?": the metanephrines line, not the phentolamine
            # row of the hypertensive crisis the first turn brought).
            chosen = _asked_first(chosen, score_of, asking, negated)
        if lead is None and dosed and len(question_parts(question)) == 1:
            # (A question asking two things, "Does she qualify, and what's the dose?", is
            # answered in its own order.)
            # The best chosen unit giving a dose of the drug asked about leads.
            chosen = _giving_unit_first(
                chosen,
                chosen,
                score_of,
                # (One the bottom line can say: not "Example: 80 kg patient → Total dose ...".)
                lambda unit: _doses(unit, dosed, hits[unit.passage - 1].section)
                and is_sentence(sentence_form(unit)),
            )
        elif (
            lead is None
            and asked_drugs
            and _ASKS_LENGTH.search(asking)
            # "If he stays with us, how long should the enoxaparin run?" asks one thing
            # (question_parts keeps "If he stays with us" with the question it sets up).
            and len(question_parts(asking)) == 1
        ):
            # The "Duration:" item under the drug asked about leads, chosen or not.
            drugs = [drug_stem(drug) for drug in asked_drugs]
            chosen = _giving_unit_first(
                chosen,
                units,
                score_of,
                lambda unit: _labelled(unit, _DURATION_LABEL) and _names_drug(unit, drugs),
            )
        bottom = _bottom_unit(
            [unit for unit in chosen if unit.passage not in beside] or chosen,
            lead,
            wanted,
            doses_asked,
        )
        if not also and not tied_rows:
            # One unit rarely says everything a question asks ("too late to start an SGLT2
            # inhibitor with eGFR 22 and no diabetes?": the eGFR threshold, and that it holds
            # regardless of diabetes): a second unit naming what the first leaves out joins it.
            # The score the question's values are given for ("CURB-65 score of 2") is what
            # the row they matched is about, not something it leaves out; so is a score the
            # headings of the bottom line's unit name ("CURB-65 Score > Risk Stratification"
            # for "Score 2: ...").
            headed = bool(names) and all(
                name in hits[bottom.passage - 1].section.lower() for name in names
            )
            score_names = (
                content_stems(" ".join(names)) if lead is not None or headed else frozenset()
            )
            extra = _complement(
                bottom,
                [
                    unit
                    for unit in chosen
                    if id(unit) not in contradicted
                    # The working says what the component table would add.
                    and not (added_up is not None and added_up.is_component(unit.header))
                ],
                score_of,
                dict(zip(map(id, units), similarity or [], strict=False)),
                {
                    word
                    for word in topical_words - context_words - negated - score_names
                    if not word.isdigit()
                },
            )
            if extra is not None:
                also = [bottom, extra]
        if len(named_sources) > 1:
            # A question naming two guidelines ("BTS wants temp under 37.5 but I think ATS/IDSA
            # uses a different cut-off") is answered by each: the best unit of every other one
            # it names joins the bottom line.
            # Parts answered from a guideline it does not name give way to those it names.
            also = [unit for unit in also if guideline(hits[unit.passage - 1]) in named_sources]
            best_of = {name: _best_of(name, chosen, units, hits, score_of) for name in named_sources}
            answering = [unit for unit in best_of.values() if score_of[id(unit)] > 0.0]
            if guideline(hits[bottom.passage - 1]) not in named_sources and answering:
                bottom = max(answering, key=lambda unit: score_of[id(unit)])
            joining = [
                unit
                for name, unit in sorted(best_of.items())
                if unit in answering and name != guideline(hits[bottom.passage - 1])
            ]
            chosen = [*chosen, *(unit for unit in joining if unit not in chosen)]
            also = [*(also or [bottom]), *(unit for unit in joining if unit not in also)]
        if added_up is not None:
            # One component scoring on its own what a row calls for ("3 in any single
            # parameter": urgent review) is said beside what the total means.
            flagged = next(
                (
                    units[i]
                    for i in sorted(matched)
                    if _SINGLE_PARAMETER.search(units[i].text) and units[i] is not bottom
                ),
                None,
            )
            if flagged is not None and flagged not in also:
                also = [*(also or [bottom]), flagged]
            # The criteria that scored, under their table's header, after the best unit: the
            # working can be checked against them.
            scored = [
                unit
                for unit in units
                if unit.kind == "row" and unit not in chosen and added_up.is_scored(unit.cells)
            ]
            chosen = [chosen[0], *scored, *chosen[1:]]
        if unmet is None:
            unmet = _met_contraindications(units, values, chosen, bottom)
        also = [unit for unit in also if unit.passage not in beside or unit is bottom]
        return Draft(
            text=_render(
                chosen,
                hits,
                audience,
                bottom,
                lead,
                also,
                tied_rows,
                asked_words | _class_stems(asking),
                question,
                added_up,
                findings | _class_stems(own_words),
                unmet,
            ),
            decision=None,
            refused=False,
        )

    def _part_answers(
        self,
        question: str,
        units: Sequence[Unit],
        chosen: Sequence[Unit],
        vectors: dict[int, np.ndarray],
        bottom: Unit,
    ) -> list[Unit]:
        """For a question asking two or three things ("Wells score, and should I send a
        D-dimer?"), the chosen unit closest to each part, that part asked alone (the topic
        words of the rest would pull it back to another part), in the parts' order: the bottom
        line answers every part, not only the one its unit (`bottom`) answers, which is the
        part it is closest to (the first when it is not embedded)."""
        index_of = {id(unit): i for i, unit in enumerate(units)}
        # (Not a sentence saying what a guideline does: "The RCP NEWS2 report defines graduated
        # clinical response triggers ...".)
        shown = [
            unit
            for unit in chosen
            if index_of.get(id(unit), -1) in vectors and not _POINTS_ELSEWHERE.search(unit.text)
        ]
        # A condensed follow-up's "(context: ...)" is the conversation, not a part asked.
        parts = question_parts(asked_part(question))[:MAX_BOTTOM_LINE_UNITS]
        if len(parts) < 2:
            return []
        asked = [np.asarray(self.embedder.embed_query(part), dtype=np.float32) for part in parts]
        # How well the bottom line's unit answers each part; it answers the part it fits best.
        bottom_fit = [0.0] * len(parts)
        if index_of.get(id(bottom), -1) in vectors:
            vector = vectors[index_of[id(bottom)]]
            bottom_fit = [
                float(vector @ alone) * _part_type_weight(part, shown_text(bottom))
                for part, alone in zip(parts, asked, strict=True)
            ]
        answered = max(range(len(parts)), key=lambda n: bottom_fit[n])
        answers: list[Unit] = []
        for number, (part, alone) in enumerate(zip(parts, asked, strict=True)):
            # "... and what dose and schedule?" is answered by the item labelled "Dose:".
            label = _asked_label(part)
            labelled = next((unit for unit in shown if label and _labelled(unit, label)), None)
            if labelled is not None:
                if labelled not in answers:
                    answers.append(labelled)
                continue
            if number == answered:
                answers.append(bottom)
                continue
            words = content_stems(part) - GENERIC_WORDS
            # The answer to "What's his CPP and target?" names the CPP.
            naming = [unit for unit in shown if _names_any(unit.words, words)] if words else shown
            closeness = {id(unit): float(vectors[index_of[id(unit)]] @ alone) for unit in naming}
            # "how long?" is answered by a duration, "what dose?" by an amount.
            weight = {id(unit): _part_type_weight(part, shown_text(unit)) for unit in naming}
            best = max(
                naming, key=lambda unit: closeness[id(unit)] * weight[id(unit)], default=None
            )
            if best is None or best is bottom or best in answers:
                continue
            if number < answered and (
                closeness[id(best)] * weight[id(best)] < EARLIER_PART_RATIO * bottom_fit[number]
            ):
                # A part asked before the one the bottom line answers is answered by another
                # unit only when that unit is clearly closer to it than the bottom line's.
                continue
            if closeness[id(best)] >= _PART_SIMILARITY:
                answers.append(best)
        return answers

    def _cover_parts(
        self,
        question: str,
        units: Sequence[Unit],
        scores: Sequence[float],
        chosen: list[Unit],
        vectors: dict[int, np.ndarray],
    ) -> list[Unit]:
        """`chosen` with, for each part of a question that asks two things ("How is severity
        assessed, and who should be admitted?"), the unit that best answers a part no chosen
        unit touches. The best units for the whole question tend to answer its first part
        only. A part is asked with the topic words of the rest of the question ("who should
        be admitted pneumonia severity CURB-65"), so its answer stays on the topic; a part is
        touched when a chosen unit is close to it alone."""
        parts = question_parts(question)
        if len(parts) < 2:
            return chosen
        candidates = [i for i, score in enumerate(scores) if score > 0.0 and i in vectors]
        index_of = {id(unit): i for i, unit in enumerate(units)}
        chosen = list(chosen)
        for number, part in enumerate(parts):
            others = " ".join(parts[:number] + parts[number + 1 :])
            alone = np.asarray(self.embedder.embed_query(part), dtype=np.float32)
            if any(
                float(vectors[index_of[id(unit)]] @ alone) >= _PARAPHRASE_SIMILARITY
                for unit in chosen
                if index_of[id(unit)] in vectors
            ):
                continue
            focused = np.asarray(
                self.embedder.embed_query(f"{part} {_topic_words(others)}"), dtype=np.float32
            )
            best, best_similarity = None, _PARAPHRASE_SIMILARITY
            for i in candidates:
                if _repeats(units[i], chosen):
                    continue
                similarity = float(vectors[i] @ focused)
                if similarity > best_similarity:
                    best, best_similarity = units[i], similarity
            if best is not None:
                chosen = [*chosen[: MAX_UNITS - 1], best]
        return chosen

    def _unit_vectors(
        self, units: Sequence[Unit], lexical: Sequence[float]
    ) -> dict[int, np.ndarray]:
        """{unit index: unit vector} for the units the embedder sees ({} without one): at most
        MAX_EMBEDDED_UNITS, the lowest-ranked passages' units left out first."""
        if self.embedder is None:
            return {}
        embedded = sorted(range(len(units)), key=lambda i: (units[i].passage, -lexical[i]))
        embedded = embedded[:MAX_EMBEDDED_UNITS]
        unit_vectors = np.asarray(
            self.embedder.embed_passages([_embedded_text(units[i]) for i in embedded]),
            dtype=np.float32,
        )
        return dict(zip(embedded, unit_vectors, strict=True))


# A unit this similar to the question (MiniLM cosine) is on topic even with no shared word.
_PARAPHRASE_SIMILARITY = 0.4
# A shown unit this similar to one part of a question, asked alone, answers that part.
_PART_SIMILARITY = 0.25
# How much closer than the bottom line's unit another must be to answer an earlier part.
EARLIER_PART_RATIO = 1.15
# A row or branch whose condition the question's values meet (+1) leads; one they contradict
# (-1: "Score 0-1" when the question says the score is 2) falls far behind.
_VALUE_WEIGHT = {1: 2.0, 0: 1.0, -1: 0.3}
_EXAMPLE = re.compile(r"\b(?:worked |case )?examples?\b", re.IGNORECASE)  # a heading's
# Questions that ask for a set ("What are the criteria for ...?"): a list or table whole answers.
_WANTS_LIST = re.compile(
    r"\b(?:components?|criteria|criterion|elements|features|items|list|contraindications|red flags"
    r"|risk factors|which (?:\w+ )?(?:are|include)"
    r"|what are the|what makes|what (?:\w+ )?(?:include|includes|make up)|score (?:consists?|made)"
    r"|how is .{0,60}(?:assessed|calculated|scored)|cutoffs|cut-offs|thresholds|categories"
    r"|which (?:\w+ ){0,3}(?:are|is) at (?:higher |increased |high )?risk"
    r"|classification|classes|stages|grades)\b",
    re.IGNORECASE,
)
# What kind of answer a question asks for, and what a unit giving one contains.
_ASKS_DOSE = re.compile(
    r"\b(?:dose|doses|dosed|dosing|dosage|how much|mg|regimen|puffs|inhalations|actuations|(?:starting|initial|infusion) rate|"
    r"(?:what|which) (?:\w+ )?(?:do|should) (?:i|we) start (?:at|on)|"
    r"titrat(?:e|ed|ion)|(?:which|what) (?:\w+ )?(?:antibiotics?|"
    r"drugs?|medications?|medicines?|agents?|inhalers?|antiplatelets?|anticoagulants?)|"
    r"empiric(?:al)? (?:antibiotics?|antimicrobials?|therapy|treatment|regimen|coverage))\b",
    re.IGNORECASE,
)
_ASKS_NUMBER = re.compile(
    r"\b(?:threshold|thresholds|cutoffs?|cut-offs?|target|targets|goal|level|range|how long|"
    r"how often|how soon|how many|within|timing|when|duration|score|interval|frequency)\b",
    re.IGNORECASE,
)
_ASKS_DEFINITION = re.compile(
    r"\b(?:what (?:\w+ )?(?:counts|qualifies) as|how (?:is|are) .{1,40} defined|definition of"
    r"|what is meant by)\b",
    re.IGNORECASE,
)
_DEFINES = re.compile(
    r"\b(?:(?:is|are) defined as|defined by|definition|refers to)\b", re.IGNORECASE
)
# A question asking what harm to look for, and a unit that says ("Monitor for: hyponatremia").
_ASKS_HARMS = re.compile(
    r"\b(?:adverse (?:effects?|events?|reactions?)|side[- ]effects?|toxicit(?:y|ies)"
    r"|watch(?:ing)? (?:out )?for|monitor(?:ing)? for|look(?:ing)? out for)\b",
    re.IGNORECASE,
)
_STATES_HARMS = re.compile(
    r"\b(?:adverse|side[- ]effects?|toxicit(?:y|ies)|monitor(?:ing)? for|watch for|warnings?)\b",
    re.IGNORECASE,
)
_DOSE_AMOUNT = re.compile(r"\d+(?:\.\d+)?\s*(?:mg|g|mcg|µg|units?|IU|mL|mmol|mEq)(?:/kg)?\b")
_ANY_NUMBER = re.compile(r"\d")
# A question asking for a ceiling ("max puffs per day?", "the ceiling at her age?") is answered
# by the unit stating one ("The maximum recommended total formoterol dose ... is 48 mcg/day",
# "limited to 20 mg/day in adults over 60"), even a note.
_ASKS_LIMIT = re.compile(
    r"\b(?:max(?:imum)?|ceiling|upper limit|most (?:i|we|she|he) can)\b", re.IGNORECASE
)
_STATES_LIMIT = re.compile(
    r"\b(?:max(?:imum)?|up to|(?:not|never) (?:to )?exceed|no more than|limited to|ceiling)\b",
    re.IGNORECASE,
)


# A question asking whether to do something ("Can allopurinol be started during a flare?",
# "NG or NJ for that?"), and a unit that says whether: a recommendation, not a statement.
_ASKS_DECISION = re.compile(
    r"(?:^|[.?!:]\s+)(?:can|could|should|do|does|is|are|may|must|would|will)\b"
    r"|\b(?:or|vs\.?|versus)\b[^?.]*\?",
    re.IGNORECASE,
)
_ASKS_WHETHER = re.compile(
    r"(?:^\W*|[—–:;]\s*|\s-\s)(?:can|could|should|do|does|is it|are|may|must|would|will"
    r"|(?:is it )?worth|ok(?:ay)?(?: to)?|safe to|fine to|any (?:need|point|role|benefit))\b"
    r"(?!.*\b(?:when|how)\b)",
    re.IGNORECASE,
)
# What holds an action back: "DELAY insulin until K+ > 3.5", "Do NOT replace potassium".
_WITHHOLDS = re.compile(
    r"\b(?:delay|do not|don't|withhold|hold off|avoid|contraindicat(?:ed|ions?)|not recommended)\b",
    re.IGNORECASE,
)

_RECOMMENDS = re.compile(
    r"\b(?:recommend(?:s|ed|ation)?|suggest(?:s|ed)?|should|must|reasonable|indicated"
    r"|contraindicated|avoid|do not|not validated|preferred|class (?:I|IIa|IIb|III)|grade [12]"
    r"|(?:does|do|did) not (?:require|need|account)|not (?:required|needed|necessary)|no need"
    r"|(?:reduce|decrease|lower|switch|change) (?:\w+ )?to)\b",  # "..., reduce to 30 mg every 2 hours"
    re.IGNORECASE,
)


# A question asking which drug of a class ("which inhaled steroid", "which P2Y12 inhibitor");
# "which antibiotic" and "what drug" ask for a regimen (_ASKS_DOSE).
_ASKS_DRUG = re.compile(
    r"\b(?:which|what)\s+(?:[\w-]+\s+){0,2}?(?:\w+-)?(?:steroids?|corticosteroids?|statins?|"
    r"inhibitors?|blockers?|biologics?|antidepressants?|vasopressors?|diuretics?)\b",
    re.IGNORECASE,
)


def answer_type(question: str) -> str:
    """ "definition", "harms", "time", "dose", "drug", "frequency", "number", "decision" or ""
    for what `question` asks: what a term means, what to watch for, how long or how fast, a
    dose, which drug, how often, a threshold, whether to do something, or else."""
    # What the patient's story mentions ("on medium-dose ICS") is not what is asked ("Step down?").
    asked = asking_sentences(question)
    if _ASKS_DEFINITION.search(asked):
        return "definition"  # "what counts as DCI - how big a GCS drop?": its definition
    if _ASKS_HARMS.search(asked):
        return "harms"  # "which adverse effects should the nurses be watching for?"
    pace, dose = _ASKS_PACE.search(asked), _ASKS_DOSE.search(asked)
    if pace and (dose is None or pace.start() < dose.start()):
        return "time"  # "how fast can I step the dose down?": at what intervals, not a dose
    if dose:
        return "dose"
    if _ASKS_DRUG.search(asked):
        return "drug"  # "which inhaled steroid has the most safety data?"
    if _ASKS_WHETHER.search(asked):
        return "decision"  # "Can we turn up the O2 to bring the score down?"
    if _ASKS_FREQUENCY.search(asked):
        return "frequency"  # "how often we'll be seeing him": "Weekly for the first 4 weeks"
    if _ASKS_NUMBER.search(asked):
        return "number"
    return "decision" if _ASKS_DECISION.search(asked) else ""


# How often something is done, and a unit saying so ("Weekly for the first 4 weeks", "every
# 3-6 months", "at 12-month intervals", "at least annually", "q2-4h").
_ASKS_FREQUENCY = re.compile(
    r"\bhow (?:often|frequently|regularly)\b|\bwhat (?:interval|frequency)\b", re.IGNORECASE
)
_PERIOD = r"(?:min(?:ute)?s?|h(?:ou)?rs?|hours?|days?|weeks?|months?|years?)"
_FREQUENCY = re.compile(
    rf"\b(?:(?:bi)?weekly|fortnightly|monthly|quarterly|annual(?:ly)?|yearly|daily|hourly"
    rf"|every\s+(?:other\s+|third\s+|second\s+)?(?:\d+(?:\.\d+)?(?:\s*(?:-|–|to)\s*\d+)?\s*)?{_PERIOD}"
    rf"|\d+(?:\s*(?:-|–|to)\s*\d+)?[-\s]{_PERIOD}\s+intervals?"
    rf"|q\d+(?:\s*-\s*\d+)?\s*h)\b",
    re.IGNORECASE,
)
_LENGTH_WORDS = r"how long|duration|for how many"  # how long a course runs
# How long, how soon or how fast: answered by a time ("for 3-6 months") or a pace ("by 25-50%
# at 3-month intervals", "50-75 mg/dL per hour"), under a heading on it ("Duration of
# Prophylaxis").
_ASKS_PACE = re.compile(r"\bhow (?:long|fast|quickly|rapidly|soon)\b|\bfor how many\b", re.IGNORECASE)
_RATE = re.compile(rf"\bper\s+{_PERIOD}\b|\bintervals?\b", re.IGNORECASE)
_TIMING_HEADING = re.compile(
    r"\b(?:duration|timing|length of (?:therapy|treatment|course))\b", re.IGNORECASE
)
_ASKS_LENGTH = re.compile(rf"\b(?:{_LENGTH_WORDS})\b", re.IGNORECASE)
_ASKS_TIME = re.compile(rf"\b(?:{_LENGTH_WORDS}|how soon)\b", re.IGNORECASE)
_TIME_AMOUNT = re.compile(
    r"\d+(?:\s*[-–]\s*\d+)?\s*(?:min|minutes?|h|hrs?|hours?|days?|weeks?|months?|years?)\b",
    re.IGNORECASE,
)


def _part_type_weight(part: str, text: str) -> float:
    """`_answer_type_weight` for one part of a question; a part asking how long ("drug, dose,
    how long?") favours a duration ("for 3-6 months") over the dose its topic words name."""
    if _ASKS_FREQUENCY.search(part):
        return 1.5 if _FREQUENCY.search(text) else 1.0
    if _ASKS_TIME.search(part):
        return 1.5 if _TIME_AMOUNT.search(text) else 1.0
    if re.search(r"\bwhen\b", part, re.IGNORECASE) and not _ASKS_DOSE.search(part):
        return 1.2 if _CONDITION.search(text) else 1.0  # "when?": "only if phosphate < 1.0"
    return _answer_type_weight(answer_type(part), text)


def _gives_number(text: str) -> bool:
    """Whether `text` gives a number other than the digits of a name ("CURB-65")."""
    return bool(_ANY_NUMBER.search(NAME_WITH_DIGITS.sub("", text)))


def _answer_type_weight(wants: str, text: str) -> float:
    """Favour units that give the kind of answer asked for: a dose amount (or at least a drug)
    for a dose or drug question, a number for a threshold or timing question."""
    if wants == "dose":
        # A regimen may name its drugs without amounts ("vancomycin plus cefepime").
        return 1.5 if _DOSE_AMOUNT.search(text) else 1.25 if DRUG_NAME.search(text.lower()) else 1.0
    if wants == "drug":
        return 1.3 if DRUG_NAME.search(text.lower()) else 1.0
    if wants == "frequency":
        return 1.5 if _FREQUENCY.search(text) else 1.0
    if wants == "time":
        return 1.5 if _TIME_AMOUNT.search(text) or _RATE.search(text) else 1.0
    if wants == "number":
        # The digits of a name ("CURB-65", "ABCD2") are no number.
        return 1.3 if _gives_number(text) else 1.0
    if wants == "decision":
        return 1.3 if _RECOMMENDS.search(text) else 1.0
    if wants == "definition":
        return 1.3 if _DEFINES.search(text) else 1.0
    if wants == "harms":
        return 1.5 if _STATES_HARMS.search(text) else 1.0
    return 1.0


# A question asking in which case something is done, and a unit stating a case.
_ASKS_WHEN = re.compile(r"^\W*when\b|\bindicat(?:ed|ions?)\b", re.IGNORECASE)
_CONDITION = re.compile(
    r"\b(?:if|when|unless|only|in (?:all |any )?(?:\w+ ){0,2}patients? with)\b", re.IGNORECASE
)

# An item labelled as qualifying the rule beside it ("Exception: corticosteroids remain
# indicated for refractory septic shock" under "Do NOT routinely use corticosteroids in severe
# CAP") follows the rule.
_ASIDE_LABEL = re.compile(
    r"(?:exceptions?|notes?|caveats?|caution|rationale|background)\s*:", re.IGNORECASE
)
# What the evidence has not looked at ("LMA use in infants < 34 weeks is not well studied")
# qualifies the recommendation beside it ("may be considered when face mask ventilation is
# ineffective, particularly for infants >= 34 weeks").
_UNSTUDIED = re.compile(
    r"\bnot (?:been )?(?:well )?studied\b|\b(?:limited|insufficient|few) data\b", re.IGNORECASE
)
# Headings of what qualifies a recommendation rather than states it.
_ASIDE_HEADING = re.compile(
    r"\b(?:limitations?|caveats?|pitfalls?|controvers(?:y|ies)|knowledge gaps?|evidence gaps?|"
    r"future research|research needs|background|rationale|history)\b",
    re.IGNORECASE,
)

# The share of a unit's similarity to a vignette that is its similarity to the sentences that
# ask alone. On dev and the three studied sets 0.5 gave more key facts in the bottom line than
# 0.3, 0.4 or 0.7 (dev 51.4% -> 52.9%, heldout11 42.2% -> 43.1%, heldout12 54.8% -> 56.0%,
# heldout13 48.4% -> 51.6%) for one dev key fact fewer in the whole answer; 0.7 lost heldout12
# facts (79.8% -> 76.2%).
ASKING_SIMILARITY_SHARE = 0.5

# A unit giving a dose of the drug a dose question asks about leads over a first unit giving
# none when it scores at least this share of it. 0.3 to 0.7 changed the same one answer on dev
# and the studied sets (the probenecid starting dose), and no other.
DOSED_LEAD_RATIO = 0.5

# A unit under "Limitations" or labelled "Note:" leads only when it scores this many times the
# best unit stating a recommendation, and gives a figure where the best of those gives none.
ASIDE_LEAD_RATIO = 1.2

# Another guideline's unit stays in the answer only when it scores this close to the best.
SCOPE_RATIO = 0.85

# Where a question asking two things divides: after a question mark, or at ", and" / "and"
# before a question word ("..., and who should be admitted?").
_PART_BOUNDARY = re.compile(
    r"\?\s+|(?:,?\s+and|,)\s+(?=(?:who|whom|what|when|where|which|why|how|whether|should"
    r"|is|are|does|do|can)\b)",
    re.IGNORECASE,
)


_QUANTITY_WORDS = set(content_words("how much long many often soon"))
_SUBORDINATE = re.compile(
    r"(?:once|if|since|because|as|after|before|while|now that|given|as soon as|unless"
    r"|when(?!\s+(?:should|do|does|did|is|are|can|could|will|would|must|to)\b))\b",
    re.IGNORECASE,
)


def question_parts(question: str) -> list[str]:
    """The questions a question asks, in order ("How is X assessed, and who should be
    admitted?" -> ["How is X assessed", "who should be admitted"]); [question] for one. A part
    with no topic of its own is asked about the topic of the others ("Phosphate in DKA: when
    and how much?" -> [..., "how much Phosphate DKA"])."""
    parts = [part.strip(" ?,;") for part in _PART_BOUNDARY.split(question)]
    parts = [part for part in parts if part]
    # A clause setting the scene ("Once she's past the first 6 months, is the reduced dose an
    # option?") asks nothing alone: it belongs to the question after it.
    for n in range(len(parts) - 2, -1, -1):
        if _SUBORDINATE.match(parts[n]):
            parts[n : n + 2] = [f"{parts[n]}, {parts[n + 1]}"]
    topic = " ".join(_topic_words(part) for part in parts)
    parts = [
        part if set(content_words(part)) - _QUANTITY_WORDS else f"{part} {topic}".strip()
        for part in parts
    ]
    parts = [part for part in parts if content_words(part)]
    return parts if len(parts) > 1 else [question]


def _names_any(unit_words: frozenset[str], words: frozenset[str]) -> bool:
    """Whether a unit holds one of `words` (stems) or a word of its family (the same first
    four letters: "admit" and "admission")."""
    return any(
        word == other or (len(word) >= 4 and other[:4] == word[:4])
        for word in words
        for other in unit_words
    )


def names_all(unit: Unit, names: set[str]) -> bool:
    """Whether `unit` (with its heading) names every one of `names` (lower-cased)."""
    return all(name in f"{unit.section} {shown_text(unit)}".lower() for name in names)


def _topic_words(text: str) -> str:
    """The words of `text` that say what it is about: no stopwords, no generic question
    words ("how", "assessed" stays: only the extractive scorer's generic list is left out)."""
    return " ".join(
        word
        for word in re.findall(r"[\w-]+", text)
        if content_words(word) and not content_stems(word) <= GENERIC_WORDS
    )


# What a tree does after answering a step ("YES --> Complete 5-7 days total") is an action, not
# a condition of the branch: "afebrile by day 3" does not contradict "5-7 days". (One that asks
# again, "NO --> Age >= 65?", is a step.)
_ACTION_AFTER_ANSWER = re.compile(
    r"^(.*?(?:^|\?|-->)\s*(?:YES|NO)\b(?:\s*\([^)]*\))?)\s*-->[^?]*$", re.IGNORECASE | re.DOTALL
)


def _condition_text(unit: Unit) -> str:
    """What says when a unit applies: its condition, and for a tree branch its steps (all of
    them when the branch ends on a condition the chunk cut from its action: "INR 1.3-1.9:")."""
    if unit.kind != "path":
        return unit.condition
    # A step asked and answered "NO" ("HEART 0-3 ...? -> NO (HEART 7-10)") does not hold on
    # this branch: only the answer's own condition does.
    steps = [_ACTION_AFTER_ANSWER.sub(r"\1", step) for step in unit.condition.split(" → ")]
    denied = {n for n, _, answer in _answered_steps(steps) if answer == "no"}
    steps = [step for n, step in enumerate(steps) if n not in denied]
    dangling = unit.text.rstrip().endswith((":", "?"))
    return f"{' → '.join(steps)} {unit.section}" + (f" {unit.text}" if dangling else "")


# What the patient cannot do: "can't walk on a treadmill", "unable to exercise".
_UNABLE = re.compile(
    r"\b(?:can['’]?t|cannot|can not|unable to|not able to)"
    r"\s+(\w+(?:\s+(?:on|in|with)\s+(?:a|an|the)\s+\w+)?)",
    re.IGNORECASE,
)
# A rule for a patient who can: "exercise stress testing is preferred if the patient can
# exercise" (not "cannot exercise").
_ABLE = re.compile(r"\b(?<!not )(?:can|is able to|are able to)\s+(\w+)", re.IGNORECASE)


def unable_stems(question: str) -> frozenset[str]:
    """The stems (with the full forms of shorthand: "treadmill" -> exercise) of what
    `question` says the patient cannot do."""
    return frozenset(
        stem
        for match in _UNABLE.finditer(question)
        for stem in stems_with_full_forms(match.group(1))
    )


def _for_the_able(unit: Unit, unable: frozenset[str]) -> bool:
    """Whether `unit` is written for a patient who can do what the question's cannot."""
    return bool(unable) and any(
        content_stems(match.group(1)) & unable for match in _ABLE.finditer(unit.text)
    )


def _for_negated(unit: Unit, negated: frozenset[str]) -> bool:
    """Whether `unit`'s condition (its label, lead or heading) is a population the question
    rules out: "Diabetes Mellitus (Age 40-75):" for a patient with no diabetes."""
    return names_ruled_out(f"{unit.condition} {label_of(unit.text)}", negated)


def names_ruled_out(text: str, negated: frozenset[str]) -> bool:
    """Whether `text` names one of the `negated` stems other than as negated itself ("No
    Diabetes" is the patient's population, "Diabetes Mellitus" is not)."""
    named = content_stems(text) & negated
    return bool(named) and not named <= negated_stems(text)


# Words of a step that say how it is asked, not what it asks about.
_STEP_WORDS = content_stems("present presence suspected suspect known confirmed patient any")


def _denies(unit: Unit, findings: frozenset[str], absent: frozenset[str]) -> bool:
    """Whether tree branch `unit` answers NO to a step (one without numbers: those are read
    as values) that asks about one of the question's `findings`, or YES to one about what the
    question says the patient does not have (`absent`)."""
    if unit.kind != "path":
        return False
    steps = unit.text.split(" → ")
    # What the tree is about ("Variceal bleeding confirmed" above "Bleeding controlled?") is
    # the question's topic, not a finding a step asks about.
    about = content_stems(unit.section) | _STEP_WORDS
    answered = {n: answer for n, _, answer in _answered_steps(steps)}
    for n, step in enumerate(steps):
        if n in answered and not re.search(r"\d", step):
            asked = content_stems(step) - about
            if asked & (findings if answered[n] == "no" else absent):
                return True
        about |= content_stems(step)
    return False


# A test the question reports normal or abnormal: "CT head reported normal", "CT clear",
# "abnormal ECG". Group 1 or 4: the test; group 2 or 3: how it came back.
_TESTS = r"CT|MRI|CXR|ECG|EKG|echo(?:cardiogram)?|chest X-ray|EEG"
_RESULT = re.compile(
    rf"\b({_TESTS})\b(?:\s+(?:head|chest|brain|scan))?(?:\s+(?:is|was|reported|came back|looks?|shows?))*"
    rf"\s+(normal|clear|unremarkable|abnormal)\b|\b(normal|abnormal)\s+({_TESTS})\b",
    re.IGNORECASE,
)


def reported_results(question: str) -> dict[str, bool]:
    """{test, lower-cased: whether the question reports it normal} for the tests it reports."""
    found = {}
    for match in _RESULT.finditer(question):
        test = (match.group(1) or match.group(4)).lower()
        found[test] = (match.group(2) or match.group(3)).lower() != "abnormal"
    return found


def _states_result(unit: Unit, results: dict[str, bool], *, same: bool) -> bool:
    """Whether `unit`, no tree path (its steps are answered YES or NO), is for the result of a
    test the question reports (`same`) or for the other one: "... a severe TBI with a normal
    CT scan if two or more ..." when the CT came back normal, "... and an abnormal CT scan"
    when it did not."""
    if unit.kind == "path":
        return False
    for test, normal in results.items():
        written = "normal" if normal == same else "abnormal"
        if re.search(rf"\b{written}\s+{re.escape(test)}\b", unit.text, re.IGNORECASE):
            return True
    return False


def _answered_steps(steps: Sequence[str]) -> list[tuple[int, str, str]]:
    """(position, step, "yes" or "no") for each step of a tree path that asks ("...?") and
    whose next step answers it ("NO (LVEF > 35%)", "YES --> ...")."""
    found = []
    for n, (step, following) in enumerate(itertools.pairwise(steps)):
        answer = re.match(r"(yes|no)\b", following.strip(), re.IGNORECASE)
        if answer and step.rstrip().endswith("?"):
            found.append((n, step, answer.group(1).lower()))
    return found


# A statement written for patients without something: "In the absence of gallstones and/or
# significant alcohol use, serum triglyceride should be obtained ...".
_WITHOUT_CLAUSE = re.compile(
    r"^(?:in the absence of|in (?:patients|adults) without|without|if (?:there is )?no)\s+([^,;:]+)",
    re.IGNORECASE,
)


_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,5}\b")


def _for_paired_condition(unit: Unit, path: str, spelled: set[str]) -> bool:
    """Whether `unit` (of the section `path`) sits under a heading, or opens with a label, for
    a condition the path's first heading pairs with one the question names (`spelled`: its
    words in capitals), and names that one nowhere: "Insulin Therapy for HHS" under "... in
    DKA and HHS" for a DKA question."""
    headings = section_headings(path)
    if len(headings) < 2:
        return False
    paired = set(_ACRONYM.findall(headings[0]))
    asked, other = paired & spelled, paired - spelled
    if not asked or not other:
        return False
    below = set(_ACRONYM.findall(" ".join([*headings[1:], unit.condition, unit.text])))
    return bool(below & other) and not below & asked


def _opens_without(unit: Unit, findings: frozenset[str]) -> bool:
    """Whether `unit` opens by ruling out one of the question's `findings` ("In the absence
    of gallstones, ..." for "Gallstone pancreatitis, ...")."""
    clause = _WITHOUT_CLAUSE.match(unit.text)
    return bool(clause) and bool(content_stems(clause.group(1)) & findings)


def _asked_share(asked_words: set[str], unit: Unit, headings: str = "") -> float:
    """The share of `asked_words` `unit` (or its heading, or `headings`) names; 1.0 when none
    to name."""
    if not asked_words:
        return 1.0
    named = unit.words | content_stems(f"{unit.section} {headings}")
    return len(asked_words & named) / len(asked_words)


def _value_match(values: list[Value], unit: Unit) -> int:
    """values.match for `unit`'s condition (see _deciding_condition)."""
    # A score given with its name is no value of another score's rows.
    values = [v for v in values if not other_score(v, f"{unit.section} {unit.text}")]
    own, text = _deciding_condition(values, unit)
    return value_match(own, text, every=unit.kind == "path")


def _single_parameter_fit(story: list[Value], added_up: Tally, unit: Unit) -> int:
    """How a unit naming one component's points ("3 in any single parameter") fits: that
    condition is read against the most one component scored, and a total the unit's path
    asks before it against the total ("Score 1–4? → Any single parameter = 3? → YES" is no
    path for a NEWS2 of 8)."""
    before = unit.text[: _SINGLE_PARAMETER.search(unit.text).start()]
    if value_match([Value(float(added_up.total), "score")], before) < 0:
        return -1
    return _value_match([*story, Value(added_up.most, "score")], unit)


def _value_slack(values: list[Value], unit: Unit) -> float:
    """values.slack for `unit`'s condition: how closely a condition the values meet fits them."""
    own, text = _deciding_condition(values, unit)
    return value_slack(own, text)


def _deciding_condition(values: list[Value], unit: Unit) -> tuple[list[Value], str]:
    """(the values compared, the condition text they are compared with) for `unit`. Values
    its heading or table title names are left out: in "Home BP thresholds that correspond to
    office 130/80?" the 130 and 80 say which table is asked about ("... Corresponding to Office
    130/80 mm Hg"), not which row. A heading that bounds a value ("NEWS2 Score 5–6") is the
    condition of every item under it."""
    named = f"{unit.section} {unit.lead}"
    own = [value for value in values if not names_number(named, value.number)]
    # What the table's intro states holds for every row ("In patients with FEV1/FVC < 0.70,
    # ..." for a ratio of 0.64): the row's own cells say whether it is this patient's ("GOLD 2
    # | Moderate | 50% ≤ FEV1 < 80%" for an FEV1 of 62%, not GOLD 1).
    if (
        unit.kind == "row"
        and unit.lead
        and value_match(own, unit.lead) > 0
        and value_match(own, unit.text)
    ):
        return own, unit.text
    # The unit's own condition ("10-year ASCVD risk >= 20%:") decides before its heading's
    # ("Primary Prevention (Ages 40-75)"): the heading holds for every unit under it.
    stated = unit.condition.removesuffix(unit.section).strip()
    if unit.kind != "path" and stated and value_match(own, stated):
        return own, stated
    condition = _condition_text(unit)
    if unit.kind != "item" or value_match(own, condition):
        return own, condition
    clause = _IF_CLAUSE.search(unit.text)
    if clause:
        # An item whose label states no condition may state it in an "if" clause:
        # "Initiation Threshold: Start if eGFR >= 20 mL/min/1.73m2" for an eGFR of 22.
        return own, f"{condition} {clause.group(1)}"
    label = label_of(unit.text)
    if _is_criterion(unit) or (label and _CRITERIA.search(label)):
        # An item that is a bare criterion is its own condition: "Blood glucose < 50 mg/dL"
        # under "Absolute Contraindications" for a glucose of 44; so is one labelled as a list
        # of them: "Contraindications: SBP < 90 mmHg, recent PDE-5 inhibitor use (... tadalafil
        # within 48 hours)" for tadalafil 14 h ago.
        return own, f"{condition} {unit.text}"
    return own, condition


# ("unless normal lab values" is the exception, not the condition)
_IF_CLAUSE = re.compile(r"\b(?:if|when)\s+([^;:]+)", re.IGNORECASE)
_COMPARISON = re.compile(r"(?:<|>|≤|≥)=?\s*\d|\bwithin\s+\d", re.IGNORECASE)
# A target to reach ("Target MAP >= 65 mmHg") is no condition a patient meets or not.
_TARGET = re.compile(r"\b(?:target|goal|aim|maintain|keep|titrate|achieve)", re.IGNORECASE)
CRITERION_WORDS = 20  # a bare criterion is short: "Platelet count < 100,000/mm3"


# Headings and intros that list criteria ("Absolute Contraindications", "Exclusion criteria:").
_CRITERIA = re.compile(r"contraindicat|criteri|indicat|exclu|red flag", re.IGNORECASE)


def _is_criterion(unit: Unit) -> bool:
    """Whether an item is a bare criterion: a short line comparing a measure with a number,
    listed under a heading or intro naming criteria, with no label of its own and no target."""
    return (
        bool(_CRITERIA.search(f"{unit.section} {unit.lead}"))
        and not label_of(unit.text)
        and len(unit.text.split()) <= CRITERION_WORDS
        and bool(_COMPARISON.search(unit.text))
        and not _TARGET.search(unit.text)
    )


def _embedded_text(unit: Unit) -> str:
    """The text the embedder compares with the question: the unit as shown, under its section."""
    return f"{unit.section}: {shown_text(unit)}"


def _lexical_scores(
    question_words: set[str],
    units: Sequence[Unit],
    titled: Sequence[bool],
    context_words: frozenset[str] = frozenset(),
) -> list[float]:
    """How much of the question each unit covers (0..1): its own share of the question's weight
    blended with its passage's share. Weights are idf-like, computed over the units themselves:
    a word in every unit says little, a rare one a lot; question words no unit contains weigh
    the most, so they lower every unit's share alike. A unit's words include its section
    heading's, at a lower weight: "Dose Reduction" under "DOAC Dosing" is about dosing; at the
    full weight in a section headed by what is asked (`titled`). Words only a follow-up's
    context carries (`context_words`: the conversation's topic) weigh half: "Her MDQ comes back
    positive" after a postpartum depression question is about the MDQ."""
    unit_count = len(units)
    section_words = [content_stems(unit.section) for unit in units]
    document_frequency = {
        word: sum(1 for unit in units if word in unit.words) for word in question_words
    }
    weights = {
        word: math.log(1.0 + unit_count / (1.0 + frequency))
        * (0.35 if word in GENERIC_WORDS else 1.0)
        * (CONTEXT_WEIGHT if word in context_words else 1.0)
        for word, frequency in document_frequency.items()
    }
    total = sum(weights.values()) or 1.0
    passage_words: dict[int, set[str]] = {}
    for unit, section in zip(units, section_words, strict=True):
        passage_words.setdefault(unit.passage, set()).update(unit.words | section)
    passage_share = {
        passage: sum(weights[w] for w in question_words & words) / total
        for passage, words in passage_words.items()
    }
    # A unit from a passage that covers the whole question beats an equally matching unit
    # from a passage that only brushes it: the answer stays on one topic.
    # A section headed by what is asked is the answer: its items need not repeat its words.
    scores = []
    for unit, section, is_titled in zip(units, section_words, titled, strict=True):
        own = sum(weights[w] for w in question_words & unit.words)
        heading = sum(weights[w] for w in (question_words & section) - unit.words)
        heading *= 1.0 if is_titled else 0.5
        scores.append(0.65 * (own + heading) / total + 0.35 * passage_share[unit.passage])
    return scores


CONTEXT_WEIGHT = 0.5
# A unit naming none of the drugs a dose question asks the dose of weighs this much: on the
# studied heldout11 the mepolizumab dose now leads over the ICS dose table; no dev answer's
# key facts changed.
OTHER_DRUG_DOSE_WEIGHT = 0.6
# A unit naming none of the drugs the sentences that ask name (nor their classes), when
# another unit does, weighs this much. 0.8 raised the bottom line's key facts on dev and the
# studied heldout14 and changed no other set's; 0.6 cost heldout13 a key fact.
OTHER_DRUG_WEIGHT = 0.8
# How much more a unit under a heading on duration or timing weighs for a question asking how
# long or how fast.
TIMING_HEADING_WEIGHT = 1.5
# How many topical words make a follow-up's topic its own (_own_topic): "dose drink last
# start" (4) leans on the conversation; "anticoagulant contraindicated CRRT dose effluent IHD
# RRT start" does not. Such a follow-up still weighs the guideline its conversation's words name
# (_about_weights): "How low a pH ... and what plateau ceiling?" about a burn patient stays
# with the burn guideline's permissive hypercapnia, not the sepsis plateau rule its "6 mL/kg"
# meets.
OWN_TOPIC_WORDS = 6
# How much a unit stating a ceiling weighs for a question asking one.
LIMIT_WEIGHT = 1.3


def _rank_weight(passage: int) -> float:
    """Prefer what retrieval ranked higher, gently: rank 1 -> 1.0, rank 8 -> ~0.74."""
    return 1.0 / (1.0 + 0.05 * (passage - 1))


def _must_have_coverage(units: Sequence[Unit], topical_words: set[str]) -> list[float]:
    """For each unit, the share (0..1) of the question's rare topical words it or its heading
    holds: the words few units share ("apixaban" among the DOAC doses) name what the
    question is about, and an answer lacking them is about something else. 1.0 for every
    unit when the question has no such word."""
    must = _rare_words(units, topical_words, max(1, len(units) // 4))
    if not must:
        return [1.0] * len(units)
    return [len(must & (unit.words | content_stems(unit.section))) / len(must) for unit in units]


def _rare_words(units: Sequence[Unit], words: set[str], limit: int) -> frozenset[str]:
    """The words (numbers aside) that at least one and at most `limit` units hold."""
    return frozenset(
        word
        for word in words
        if not word.isdigit() and 1 <= sum(1 for unit in units if word in unit.words) <= limit
    )


def _length_weight(unit: Unit, audience: str) -> float:
    """Penalise very long units for everyone, and for patients long sentences and long,
    technical words (four or more vowel groups, or thirteen letters and up)."""
    words = shown_text(unit).split()
    if audience != "patient":
        return 1.0 / (1.0 + max(0, len(words) - 60) / 60)
    technical = sum(
        1
        for word in re.findall(r"[A-Za-z]+", unit.text)
        if len(word) >= 13 or len(_VOWEL_GROUPS.findall(word.lower())) >= 4
    )
    own = unit.text.split()
    technical_share = technical / max(len(own), 1)
    return 1.0 / (1.0 + 0.03 * max(0, len(own) - 20) + 2.5 * technical_share)


# How much a unit of a guideline whose title names the question's topic weighs over one of a
# guideline whose title does not, among the passages. On the studied heldout7, answers citing
# mostly another guideline than the gold one ("target SpO2" for acute asthma from the neonatal
# resuscitation guideline) fell from 10 of 60 to 6 and key facts rose 1.9 points; on dev no
# answer's key facts changed (8 such answers became 9).
ABOUT_WEIGHT = 1.3


def _own_topic(question: str) -> bool:
    """Whether a condensed follow-up names a topic of its own, in OWN_TOPIC_WORDS topical
    words or more ("Starting RRT - CRRT or IHD, what effluent dose, and which anticoagulant
    ...?"), rather than leaning on the conversation's ("Starting dose, and how long after his
    last drink?")."""
    if CONTEXT_OPENER not in question:
        return False
    return len(content_stems(asked_part(question)) - GENERIC_WORDS) >= OWN_TOPIC_WORDS


def _about_weights(question: str, hits: Sequence[Hit]) -> list[float]:
    """ABOUT_WEIGHT for each passage of a guideline whose title names what the question is
    about ("asthma" in GINA's for "Acute asthma in the ED - what sat range ...?", not the
    neonatal resuscitation guideline's oxygen targets), when some guidelines among the
    passages are named and others not; 1.0 for all otherwise."""
    words = stems_with_full_forms(question)
    named = [bool(title_topics(hit.title) & words) for hit in hits]
    if all(named) or not any(named):
        return [1.0] * len(hits)
    return [ABOUT_WEIGHT if is_named else 1.0 for is_named in named]


def _in_scope(
    units: Sequence[Unit],
    scores: Sequence[float],
    hits: Sequence[Hit],
    must_have: Sequence[float],
    topical: frozenset[str] = frozenset(),
    drugs: Sequence[str] = (),
    names: frozenset[str] = frozenset(),
    cited_before: frozenset[str] = frozenset(),
    named: frozenset[str] = frozenset(),
) -> list[float]:
    """`scores` with units of other guidelines than the main one (_main_guideline) set to 0
    unless they score within SCOPE_RATIO of the best and hold every rare word and every name
    with digits of the question (`must_have` is 1.0 for those units): a question about AF
    dosing is answered from the AF guideline, not padded with a TIA statement's bullets, and
    a question on CHA2DS2-VASc's components not with ABCD2's. Those that stay score at most
    OTHER_GUIDELINE_SHARE of the main guideline's best unit: they follow it, never lead. A
    guideline the question names (`named`, _named_sources) stays in scope whatever it scores."""
    best = max(range(len(units)), key=lambda i: scores[i])
    main = _main_guideline(units, scores, hits, topical, drugs, names, cited_before, named)
    main_best = _best_by_guideline(units, scores, hits)[main]
    return [
        score
        if guideline(hits[unit.passage - 1]) == main
        # Another guideline's unit that answers as well follows the main one's best: it
        # does not lead the answer away from the guideline it keeps to.
        else min(score, OTHER_GUIDELINE_SHARE * main_best)
        if (score >= SCOPE_RATIO * scores[best] and covered == 1.0)
        or guideline(hits[unit.passage - 1]) in named
        else 0.0
        for unit, score, covered in zip(units, scores, must_have, strict=True)
    ]


# A list or table whose criteria must all be met: its intro says so ("when ALL of the following
# criteria are met"), or its heading names criteria for a step that needs every one of them
# ("Criteria for Discharge from ED", "Clinical Stability Criteria").
_ALL_OF = re.compile(r"\ball\b(?:\W+\w+){0,4}?\W+(?:criteria|following)\b", re.IGNORECASE)
_EVERY_CRITERION = re.compile(
    r"\bcriteria\b.*\b(?:discharg|stabil|switch|transition)|\b(?:discharg|stabil|switch|transition)\w*\b.*\bcriteria\b",
    re.IGNORECASE,
)


def _unmet_criteria(
    units: Sequence[Unit],
    fits: Sequence[int],
    values: list[Value],
    chosen: Sequence[Unit],
    asking: str,
    hits: Sequence[Hit],
) -> tuple[str, int] | None:
    """The criteria of a list or table that must all be met which the question's values fail:
    by `fits`, or by a value labelled with what the criterion measures read against it alone
    ("NIHSS 4" fails "NIHSS >= 6", though the "0-6 hours" heading every item sits under fits
    "3 hours ago"), as the sentence the bottom line opens with and its passage, for the first
    such list the answer shows: "26F ... PEF is 52% of her best and SpO2 93% on air. Send her
    home?" is answered "By the values given, these criteria (Criteria for Discharge from ED)
    are not met: PEF or FEV1 >60-80% of predicted or personal best; SpO2 >=94% on room air", not with
    the one criterion the values left standing ("Adequate resources at home"). Only criteria
    for the step the sentences that ask are about (`asking`: "Thrombectomy?", "Switch to
    oral?", "Send her home?" for discharge), by a word that is no topic of the guideline's
    title: "Is this DKA?" asks for the diagnosis, not whether the "DKA Resolution Criteria"
    are met. None when no shown list of such criteria has one the values fail."""
    asked = {word for word in re.findall(r"[\w-]+", asking) if content_words(word)}
    asked |= {"discharge"} if _GOING_HOME.search(asking) else set()
    shown = {(unit.passage, unit.group) for unit in chosen if unit.group >= 0}  # lists too
    members: dict[tuple[int, int], list[int]] = {}
    for i, unit in enumerate(units):
        if unit.kind in ("item", "row") and unit.group >= 0:
            members.setdefault((unit.passage, unit.group), []).append(i)
    for key, indices in members.items():
        first = units[indices[0]]
        if key not in shown or not (
            _ALL_OF.search(first.lead) or _EVERY_CRITERION.search(first.section)
        ):
            continue
        step = content_stems(f"{first.section} {first.lead}") - GENERIC_WORDS - _CRITERIA_WORDS
        topics = title_topics(hits[first.passage - 1].title)
        if not any(
            content_stems(word) & step and not stems_with_full_forms(word) & topics
            for word in asked
        ):
            continue
        failed = [units[i] for i in indices if _fails(units[i], fits[i], values)]
        if not failed:
            continue
        named = f" ({first.section})" if "criteria" in first.section.lower() else ""
        stated = "; ".join(sentence_form(unit).rstrip(".") for unit in failed)
        return f"By the values given, these criteria{named} are not met: {stated}", first.passage
    return None


# Going home is being discharged; the words that say a list holds criteria say no step.
_GOING_HOME = re.compile(r"\b(?:home|leave|go|going)\b", re.IGNORECASE)
_CRITERIA_WORDS = content_stems("criteria criterion following met meet patients recommended")


def _fails(criterion: Unit, fit: int, values: list[Value]) -> bool:
    """Whether the question's `values` fail `criterion`, a criterion of one condition (of two,
    "respiratory rate < 24, SpO2 > 92%", a value may meet one and fail the other): read
    against the values labelled with what it measures when there are any, else by its `fit`."""
    if criterion.parent or len(value_conditions(criterion.text)) != 1:
        return False
    labelled = _labelled_for(values, criterion.text)
    return value_match(labelled, criterion.text) < 0 if labelled else fit < 0


def _labelled_for(values: list[Value], criterion: str) -> list[Value]:
    """The `values` whose label names what `criterion` measures ("NIHSS 4" for "NIHSS >= 6";
    "HR 96" for "Heart rate < 100 bpm")."""
    lowered = criterion.lower()
    return [
        value
        for value in values
        if value.label
        and any(
            re.search(rf"\b{re.escape(name.lower())}\b", lowered)
            for name in (value.label, alternatives(value.label))
            if name
        )
    ]


# A list of what rules a treatment out: "Absolute Contraindications", "Exclusion criteria".
_RULES_OUT = re.compile(r"contraindicat|exclusion|\bdo not (?:give|use|start)\b", re.IGNORECASE)


def _met_contraindications(
    units: Sequence[Unit], values: list[Value], chosen: Sequence[Unit], bottom: Unit
) -> tuple[str, int] | None:
    """The contraindications of a list the answer shows that a value the question gives for
    what each measures meets, as the sentence the bottom line opens with and its passage:
    "72M, LKW 90 min, NIHSS 9 ... platelets 88,000. Alteplase?" is answered "By the values
    given, these contraindications (Absolute Contraindications) are met: Platelet count <
    100,000/mm³", not first with the NIHSS row that says alteplase is indicated. Only values
    labelled with what the criterion measures count: a bare number meets too much."""
    shown = {(unit.passage, unit.group) for unit in chosen if unit.group >= 0}
    for passage, group in sorted(shown):
        members = [
            unit
            for unit in units
            if unit.passage == passage and unit.group == group and unit.kind in ("item", "row")
        ]
        if not members or not _RULES_OUT.search(f"{members[0].section} {members[0].lead}"):
            continue
        met = [
            unit
            for unit in members
            if not unit.parent
            and (
                labelled := [
                    value for value in _measured_by(values, unit.text) if _on_scale(value, unit.text)
                ]
            )
            and value_match(labelled, unit.text) > 0
        ]
        if met and bottom not in met:  # not when it leads already
            heading = section_headings(members[0].section)[-1:] or [""]
            named = f" ({heading[0]})" if heading[0] else ""
            stated = "; ".join(plain(unit.text).rstrip(".") for unit in met)
            return f"By the values given, these contraindications{named} are met: {stated}", passage
    return None


def _on_scale(value: Value, criterion: str) -> bool:
    """Whether `value` is read in the unit of a condition of `criterion`: written in a unit
    of that kind when the criterion gives one, and for a concentration within a factor of
    CONCENTRATION_SCALE of its bound. "glucose 7" (mmol/L, as British wards write it) meets
    no "Blood glucose < 50 mg/dL"; "platelets 88,000" meets "Platelet count < 100,000/mm³"."""
    for condition in value_conditions(criterion):
        if condition.kind and value.kind != condition.kind:
            continue
        bound = condition.high if condition.high is not None else condition.low
        if (
            condition.kind == "concentration"
            and bound
            and not 1 / CONCENTRATION_SCALE <= value.number / bound <= CONCENTRATION_SCALE
        ):
            continue
        return True
    return False


# mg/dL and mmol/L of glucose differ 18-fold; of one unit, a value and its bound rarely 5-fold.
CONCENTRATION_SCALE = 5.0


def _measured_by(values: list[Value], criterion: str) -> list[Value]:
    """The `values` labelled with what `criterion` measures: by its name ("platelets 88,000"
    for "Platelet count < 100,000/mm³") or the label its condition is read with ("BP
    192/104" for "BP persistently > 185/110")."""
    named = content_stems(criterion)
    labels = {condition.label for condition in value_conditions(criterion) if condition.label}
    return [
        value
        for value in values
        if value.label and (value.label in labels or content_stems(value.label) <= named)
    ]


def _best_of(
    name: str,
    chosen: Sequence[Unit],
    units: Sequence[Unit],
    hits: Sequence[Hit],
    score_of: dict[int, float],
) -> Unit:
    """The best unit of guideline `name`, or the chosen unit holding it (a list quoted whole,
    not one of its items again)."""
    best = max(
        (unit for unit in units if guideline(hits[unit.passage - 1]) == name),
        key=lambda unit: score_of.get(id(unit), 0.0),
    )
    return next((unit for unit in chosen if _contains(unit, best)), best)


def _named_sources(
    question: str, units: Sequence[Unit], scores: Sequence[float], hits: Sequence[Hit]
) -> frozenset[str]:
    """The guidelines among the passages that `question` names (rag.shorthand.named_guidelines:
    "ATS/IDSA", "Surviving Sepsis", "the 2013 STEMI guideline"), for a name that may mean
    several ("IDSA") the one whose unit scores best, each only if its best unit scores at
    least NAMED_RATIO of the best of all: a name a story uses in passing ("not on ASA") is
    no guideline asked about."""
    best_of = _best_by_guideline(units, scores, hits)
    top = max(best_of.values(), default=0.0)
    present = {(hit.title, hit.source, hit.year) for hit in hits if hit.title}
    named = set()
    for titles in named_guidelines(question, present):
        scored = [title for title in titles if best_of.get(title, 0.0) >= NAMED_RATIO * top > 0.0]
        if scored:
            named.add(max(scored, key=lambda title: best_of[title]))
    return frozenset(named)


def _best_by_guideline(
    units: Sequence[Unit], scores: Sequence[float], hits: Sequence[Hit]
) -> dict[str, float]:
    """Each guideline among the passages (`guideline`) with the best score of its units."""
    best: dict[str, float] = {}
    for unit, score in zip(units, scores, strict=True):
        name = guideline(hits[unit.passage - 1])
        best[name] = max(score, best.get(name, score))
    return best


NAMED_RATIO = 0.4


OTHER_GUIDELINE_SHARE = 0.99  # of the main guideline's best score, at most


# A score's row for one component's points, not the total ("3 in any single parameter").
_SINGLE_PARAMETER = re.compile(
    r"\b(?:any|a) single (?:parameter|component|criterion)\b", re.IGNORECASE
)


# A name a question writes in capitals: "CAGE", "EPDS", "HEART" (not a Roman numeral).
_CAPITAL_NAME = re.compile(r"\b(?![IVX]+\b)[A-Z][A-Z0-9-]{2,}\b")


def _capital_names(question: str) -> frozenset[str]:
    """The names `question` writes in capitals that are no shorthand rag spells out ("CAGE",
    not "CKD"), lower-cased: what it is about, which a guideline answering it writes."""
    return frozenset(
        name.lower() for name in _CAPITAL_NAME.findall(question) if not alternatives(name)
    )


def _main_guideline(
    units: Sequence[Unit],
    scores: Sequence[float],
    hits: Sequence[Hit],
    topical: frozenset[str] = frozenset(),
    drugs: Sequence[str] = (),
    names: frozenset[str] = frozenset(),
    cited_before: frozenset[str] = frozenset(),
    named: frozenset[str] = frozenset(),
) -> str:
    """The guideline the answer keeps to: one the question names (`named`) when it does;
    else among those whose best unit scores within
    SCOPE_RATIO of the best of all, the one whose best SCOPE_UNITS units score highest
    together, weighed up by the share of the question's `topical` words that tell the
    contenders apart (some hold them, others not) the guideline's units and headings hold.
    One unit is a weak witness between close contenders: a list headed "Diabetes Mellitus"
    can edge out, on its own, the section written for a patient with no diabetes.
    The paths of one decision tree count as one unit: a GI-bleeding tree's paths outvoted the
    sepsis guideline's VTE prophylaxis items for a septic patient "not bleeding". Of the
    contenders, those naming a drug the question asks about (`drugs`) when any does."""
    if len(named) == 1:
        return next(iter(named))
    witnesses: dict[tuple[int, int], float] = {}  # (passage, unit index; -1 for its paths)
    for index, (unit, score) in enumerate(zip(units, scores, strict=True)):
        # The paths of one decision tree repeat its opening steps: one witness, not several.
        key = (unit.passage, -1 if unit.kind == "path" else index)
        witnesses[key] = max(score, witnesses.get(key, 0.0))
    by_guideline: dict[str, list[float]] = {}
    for (passage, _), score in witnesses.items():
        by_guideline.setdefault(guideline(hits[passage - 1]), []).append(score)
    best = max(scores)
    # A guideline whose best units together outweigh those of the guideline with the best
    # unit contends too: one generic line ("Rate control is recommended as the initial
    # strategy for most patients with AF") is a weak witness against three on the point ("IV
    # beta-blocker for rate control" under "Atrial fibrillation in STEMI").
    # Compared over as many units as both have: one passage's single line is not outvoted by
    # the count of another's.
    leader = max(by_guideline, key=lambda name: max(by_guideline[name]))

    def outweighs(name: str) -> bool:
        count = min(SCOPE_UNITS, len(by_guideline[name]), len(by_guideline[leader]))
        return sum(sorted(by_guideline[name], reverse=True)[:count]) > sum(
            sorted(by_guideline[leader], reverse=True)[:count]
        )

    contenders = [
        name
        for name, found in by_guideline.items()
        if max(found) >= SCOPE_RATIO * best or outweighs(name)
    ]
    def holding(says: Callable[[Unit], bool]) -> set[str]:
        """The guidelines with a unit that scores and `says` what the question names."""
        return {
            guideline(hits[unit.passage - 1])
            for unit, score in zip(units, scores, strict=True)
            if score > 0.0 and says(unit)
        }

    # Of the contenders, one naming the drug asked about (`drugs`: stems and classes): GINA's
    # "biologic therapy" in pregnancy is no answer on certolizumab beside ACR's line for it.
    # Not a guideline outside the contenders: that one let a guideline naming the drug but
    # written for another disease take over drug near misses (fresh evidence round 14, see
    # evals/README.md).
    naming = holding(lambda unit: _names_drug(unit, drugs))
    contenders = [name for name in contenders if name in naming] or contenders
    # And of those, the ones writing a name the question writes in capitals ("CAGE", "EPDS"):
    # the perinatal guideline's screening lines are no answer on the CAGE questionnaire.
    writing = holding(
        lambda unit: any(
            re.search(rf"\b{re.escape(name)}\b", f"{unit.section} {shown_text(unit)}".lower())
            for name in names
        )
    )
    contenders = [name for name in contenders if name in writing] or contenders
    # A follow-up's guideline, the one the conversation is reading (`cited_before`), contends
    # when it answers at all and names what the question names, and weighs more: "How low a
    # pH may we accept?" after an inhalation-injury question is the burn guideline's, not the
    # sepsis guideline's plateau-pressure line. (Not more than that: a first answer from the
    # wrong guideline would hold the whole conversation.)
    staying = {
        name
        for name, found in by_guideline.items()
        if name in cited_before
        and max(found) >= FOLLOW_UP_RATIO * best
        and (name in naming or not naming)
        and (name in writing or not writing)
    }
    contenders += sorted(staying - set(contenders))
    contenders = sorted(named) or contenders
    if len(contenders) == 1:
        return contenders[0]
    held: dict[str, set[str]] = {name: set() for name in contenders}
    for unit in units:
        its = held.get(guideline(hits[unit.passage - 1]))
        if its is not None:  # a contender's
            its.update(unit.words | content_stems(unit.section))
    # The question's words some contenders hold and others do not tell them apart.
    telling = {
        word
        for word in topical
        if 0 < sum(word in held[name] for name in contenders) < len(contenders)
    }
    return max(
        contenders,
        key=lambda name: sum(sorted(by_guideline[name], reverse=True)[:SCOPE_UNITS])
        * (1.0 + TELLING_WORDS_WEIGHT * len(telling & held[name]) / max(len(telling), 1))
        * (FOLLOW_UP_WEIGHT if name in staying else 1.0),
    )


SCOPE_UNITS = 3
# A follow-up stays in the guideline the previous answer cited when its best unit scores at
# least this share of the best unit's.
FOLLOW_UP_RATIO = 0.4
FOLLOW_UP_WEIGHT = 1.3  # how much more it weighs than another contender
# How much a guideline holding all the question's words that tell the contending guidelines
# apart weighs over one holding none of them, in choosing the main guideline: a question
# naming the "Glasgow-Blatchford score" is answered from the GI-bleeding guideline, not from
# the sepsis guideline's transfusion items its "Hb 11.4" and "vomited blood" brought to the
# top. Words few units hold would not do: "CHA2DS2-VASc", named throughout the AF guideline,
# is no rare word among its units, and "components" alone then led to ABCD2's "Score
# Components". On dev no answer's key facts changed; citations from other guidelines fell from
# 4.1% to 3.8%.
TELLING_WORDS_WEIGHT = 1.0


def guideline(hit: Hit) -> str:
    """What makes two passages the same source: the title (the sections of one guideline
    share it), else the document."""
    return hit.title or hit.doc_id


SHORT_ANSWER_WORDS = 80  # below this many words, units down to 20% of the best join


def _select(
    units: Sequence[Unit],
    scores: Sequence[float],
    question_words: set[str],
    hits: Sequence[Hit] = (),
    named: frozenset[str] = frozenset(),
) -> list[Unit]:
    """The best units, best first: at most MAX_UNITS and about MAX_WORDS words, none scoring
    under 40% of the best, none a near-duplicate of one already chosen or contained in one,
    and none that lacks the rare question words the best unit has (its anchors: "apixaban")
    without bringing another question word instead: not an answer-type word, nor, from a
    passage not yet quoted, a word of the guideline's title ("prevent" or "atrial" in a
    flecainide caveat is no reason to show it for "apixaban dose for stroke prevention in
    atrial fibrillation"). Words of the best unit's guideline title
    and section path ("IDSA", "complicated UTI") are no anchors: every unit of that guideline
    is about them, whether or not its own text repeats them. A score or scale the question
    names with digits (`named`: the stems of "CHA2DS2-VASc") is always one, however many
    units name it: the score's thresholds are not passed over for a cardioversion rule that
    happens to say "score"."""
    order = sorted(
        range(len(units)), key=lambda i: (-scores[i], units[i].passage, units[i].position)
    )
    best = scores[order[0]]
    anchors = _anchors(units, units[order[0]], question_words) | (named & units[order[0]].words)
    # What every unit of the best unit's guideline is about ("atrial fibrillation" in its
    # title) is no new question word a unit from a passage not yet quoted could bring.
    title_words = frozenset()
    if hits:
        where = hits[units[order[0]].passage - 1]
        title_words = content_stems(where.title)
        if anchors:
            anchors -= content_stems(f"{where.title} {where.section}") - named
    chosen: list[Unit] = []
    word_count = 0
    for i in order:
        unit = units[i]
        # Units under 40% of the best are left out, unless what is chosen is still too short
        # to answer (one path of 38 words for "which patients need longer therapy?") and they
        # come from the best unit's document.
        if scores[i] <= 0.0 or scores[i] < 0.2 * best or len(chosen) >= MAX_UNITS:
            break
        if scores[i] < 0.4 * best and (
            word_count >= SHORT_ANSWER_WORDS
            or not hits
            or hits[unit.passage - 1].doc_id != hits[units[order[0]].passage - 1].doc_id
        ):
            continue
        if _repeats(unit, chosen):
            continue
        if (
            chosen
            and anchors
            and not ((unit.words | content_stems(unit.section)) & anchors)
            and not (
                (unit.words & question_words)
                - units[order[0]].words
                - GENERIC_WORDS
                - (frozenset() if _quoted(unit, chosen) else title_words)
            )
            and not any(_other_rows(unit, other) for other in chosen)
        ):
            continue  # a sibling about another drug or score, adding nothing asked for
        length = len(shown_text(unit).split())
        if chosen and word_count + length > MAX_WORDS:
            continue
        # A whole list or table makes the items or rows already chosen from it redundant.
        chosen = [
            other for other in chosen if not (_contains(unit, other) and other is not chosen[0])
        ]
        chosen.append(unit)
        word_count = sum(len(shown_text(other).split()) for other in chosen)
    return chosen


def _quoted(unit: Unit, chosen: Sequence[Unit]) -> bool:
    """Whether the answer already quotes the passage `unit` comes from."""
    return any(other.passage == unit.passage for other in chosen)


def _anchors(units: Sequence[Unit], best: Unit, question_words: set[str]) -> frozenset[str]:
    """The question's words in `best` that few units have (a quarter of them at most): what
    makes the best unit the answer ("apixaban" among the DOAC doses)."""
    return _rare_words(
        units, (question_words & best.words) - GENERIC_WORDS, max(2, len(units) // 4)
    )


def _whole_groups(chosen: list[Unit], units: Sequence[Unit], matched: set[int]) -> list[Unit]:
    """`chosen` with rows and items shown in their table or list: where the question's values
    pick rows of a table (`matched`: unit indexes), the other rows of that table are dropped;
    where they do not, the first chosen row or item of a short table or flat list under an
    intro is replaced by the whole table or list ("discharge when ALL of the following are
    met:" is answered by all of them), and its other chosen members are dropped."""
    whole = {(u.passage, u.group): u for u in units if u.kind in ("table", "list")}
    picked = {(units[i].passage, units[i].group) for i in matched if units[i].kind == "row"}
    result: list[Unit] = []
    placed: set[tuple[int, int]] = set()
    for unit in chosen:
        key = (unit.passage, unit.group)
        introduced = _introducing_item(unit, units, matched)
        if introduced is not None:
            # One of the items an item introduces ("if two or more of the following:") means
            # nothing alone: the whole item is shown, once.
            if introduced not in result:
                result.append(introduced)
        elif unit.kind in ("row", "table") and key in picked:
            # The rows of this table the values picked, in place of the row chosen.
            if key not in placed:
                result += [
                    units[i]
                    for i in sorted(matched)
                    if (units[i].passage, units[i].group) == key and units[i].kind == "row"
                ]
                placed.add(key)
        elif unit.kind not in ("row", "item") or unit.group < 0:
            result.append(unit)
        elif key in whole and len(shown_text(whole[key]).split()) <= MAX_WHOLE_WORDS:
            if key not in placed:
                result.append(whole[key])
                placed.add(key)
        else:
            result.append(unit)
    wholes = [unit for unit in result if unit.kind == "item" and unit.children]
    result = [unit for unit in result if not any(_contains(whole, unit) for whole in wholes)]
    return [unit for n, unit in enumerate(result) if unit not in result[:n]]


def _with_rest_of_tables(chosen: list[Unit], units: Sequence[Unit]) -> list[Unit]:
    """`chosen` with, after each whole table, the other parts of that table the chunker cut
    into other passages (same heading, same header): "A — Acidosis: venous pH < 7.3" is one of
    the DKA criteria even in a chunk of its own that shares no word with the question."""
    # A part of one row makes no table unit of its own ("| Stage 3 | ... |" cut from Stages 1
    # and 2): its row, alone in its group, is the part.
    in_group = Counter((other.passage, other.group) for other in units)
    parts = [
        other
        for other in units
        if other.kind == "table"
        or (other.kind == "row" and in_group[other.passage, other.group] == 1)
    ]
    result: list[Unit] = []
    for unit in chosen:
        result.append(unit)
        if unit.kind == "table":
            result += [
                other
                for other in parts
                if other is not unit
                and _table_key(other) == _table_key(unit)
                and other not in chosen
                and other not in result
            ]
    return result


def _with_protocol(chosen: list[Unit], units: Sequence[Unit]) -> list[Unit]:
    """`chosen` with, after the best unit when it is a top-level item of a short list under a
    heading, the other items of that list in their order: a dose is given with its
    administration ("Dose: 0.9 mg/kg", "Administration: 10% as a bolus over 1 minute ...",
    "Example: 80 kg ...")."""
    if (
        not chosen
        or chosen[0].kind != "item"
        or chosen[0].parent
        or chosen[0].lead  # a list under an intro is whole already when short (_whole_groups)
        or chosen[0].group < 0
    ):
        return chosen
    best = chosen[0]
    group = [
        unit
        for unit in units
        if unit.kind == "item"
        and unit.passage == best.passage
        and unit.group == best.group
        and not unit.parent
    ]
    if any(unit.children for unit in group) or len(group) > PROTOCOL_MAX_ITEMS or sum(
        len(shown_text(unit).split()) for unit in group
    ) > MAX_WHOLE_WORDS:
        return chosen
    others = sorted((unit for unit in group if unit != best), key=lambda unit: unit.position)
    return [best, *others, *(unit for unit in chosen[1:] if unit not in group)]


PROTOCOL_MAX_ITEMS = 6


def _with_neighbours(
    chosen: list[Unit], units: Sequence[Unit], scores: Sequence[float], question_words: set[str]
) -> list[Unit]:
    """`chosen` with, when it is short (under FILL_WORDS words), the statements around the best
    unit under the same heading, nearest first and the following before the preceding: a
    recommendation is read with the ones beside it ("at least 30 mL/kg of crystalloid" with
    "balanced crystalloids rather than saline"), as the guideline wrote them. Only on-topic
    units (`scores` above 0) that show something not shown yet, whole statements (no nested
    item without its parent), none labelled with another thing than the question asks about
    ("Rivaroxaban:" beside "Apixaban:" for an apixaban question), until the answer reaches
    FILL_WORDS."""
    if not chosen:
        return chosen
    best = chosen[0]
    shown = sum(len(shown_text(unit).split()) for unit in chosen)
    around = sorted(
        (
            (unit, score)
            for unit, score in zip(units, scores, strict=True)
            if unit.passage == best.passage
            and unit.section == best.section
            and unit.kind in ("sentence", "item")
            and not unit.parent
            and unit.position != best.position
        ),
        key=lambda pair: (abs(pair[0].position - best.position), pair[0].position < best.position),
    )
    result = list(chosen)
    for unit, score in around:
        if shown >= FILL_WORDS:
            break
        length = len(shown_text(unit).split())
        if (
            score <= 0.0
            or _repeats(unit, result)
            or (label_of(unit.text) and not content_stems(label_of(unit.text)) & question_words)
            or shown + length > FILL_WORDS + FILL_SLACK
        ):
            continue
        result.append(unit)
        shown += length
    return result


FILL_WORDS = 120  # an answer shorter than this shows the statements around its best unit
FILL_SLACK = 40  # a neighbour may take the answer this far past FILL_WORDS


# Labels of a list item that give a drug's dose or a course's length ("**Dose:** 200 mg/day IV,
# administered as: ...", "**Duration:** continue until ...").
_DOSE_LABEL = re.compile(r"^(?:dose|doses|dosing|dosage|regimen)\b", re.IGNORECASE)
_DURATION_LABEL = re.compile(r"^(?:duration|length of (?:therapy|treatment|course))\b", re.IGNORECASE)


def _asked_label(part: str) -> re.Pattern[str] | None:
    """The label of a list item that answers one part of a question: "Dose:" for "what dose?",
    "Duration:" for "how long?"."""
    if answer_type(part) == "dose":
        return _DOSE_LABEL
    return _DURATION_LABEL if _ASKS_TIME.search(part) else None


def _labelled(unit: Unit, label: re.Pattern[str]) -> bool:
    """Whether `unit` is a list item whose label `label` matches ("Dose: 200 mg/day IV")."""
    return unit.kind == "item" and label.match(label_of(unit.text)) is not None


def _with_labelled_siblings(
    chosen: list[Unit], units: Sequence[Unit], hits: Sequence[Hit], asking: str
) -> list[Unit]:
    """`chosen` with, after a labelled item it holds ("When to initiate: ..."), the sibling
    items of its section labelled with what a part of the question asks and no chosen unit
    labels so: "Is it time for steroids, and what dose and schedule?" is answered by "When to
    initiate:" and by "Dose: 200 mg/day IV, administered as: 50 mg IV every 6 hours", two
    items of one list the chunker may have put in two passages."""
    labels = list(dict.fromkeys(filter(None, map(_asked_label, question_parts(asking)))))
    if not labels:
        return chosen

    def where(unit: Unit) -> tuple[str, str]:
        return (hits[unit.passage - 1].doc_id, unit.section)

    out = list(chosen)
    for label in labels:
        if any(_labelled(unit, label) for unit in out):
            continue
        places = {where(unit) for unit in out if unit.kind == "item" and label_of(unit.text)}
        sibling = next(
            (
                unit
                for unit in units
                if _labelled(unit, label)
                and not unit.parent
                and where(unit) in places
                and unit not in out
            ),
            None,
        )
        if sibling is not None:
            after = max(n for n, unit in enumerate(out) if where(unit) == where(sibling))
            out.insert(after + 1, sibling)
    return out


def _without_contradicted(unit: Unit, values: list[Value]) -> Unit:
    """`unit` without the nested items whose own condition the question's values contradict."""
    if unit.kind != "item" or not unit.children:
        return unit
    kept = tuple(child for child in unit.children if not _contradicts(values, label_of(child) or child))
    return replace(unit, children=kept) if kept != unit.children else unit


def _contradicts(values: list[Value], text: str) -> bool:
    """Whether the question's values contradict the condition of `text` (a nested item's
    label, or the item when it has none). An item giving an amount ("50 mg IV every 6 hours",
    "Continuous IV infusion of 200 mg over 24 hours") says what to do, not when: the "30 mL/kg"
    of crystalloid or the "5 hours" a story gave does not rule it out."""
    if any(c.kind == "dose" and c.low == c.high for c in value_conditions(text)):
        return False
    return value_match(values, text) < 0


def _introducing_item(unit: Unit, units: Sequence[Unit], matched: set[int]) -> Unit | None:
    """The whole item (with all its nested items) that `unit` sits in, when that item is an
    intro ending with ":" and short enough to show whole, and the question's values pick none
    of its nested items (then the one they pick is the answer); else None."""
    if unit.kind != "item" or not unit.parent.rstrip().endswith(":"):
        return None
    siblings = [i for i, u in enumerate(units) if u.passage == unit.passage and u.parent == unit.parent]
    if any(i in matched for i in siblings):
        return None
    return next(
        (
            u
            for u in units
            if u.kind == "item"
            and u.passage == unit.passage
            and u.text == unit.parent
            and len(shown_text(u).split()) <= MAX_WHOLE_WORDS
        ),
        None,
    )


MATCHED_LEAD_RATIO = 0.6  # how close to the best unmatched unit a matched one must come to lead
ASKED_SHARE_RATIO = 0.5  # ... and how much of what is asked it must name, beside that unit
PATH_LEAD_RATIO = 1.5  # how much better a matched tree path must score to lead over a rule
CLOSER_FIT_RATIO = 0.75  # a matched unit this close to the best may lead by fitting the values better
# A dose or number question's bottom line comes from the best this-many sentence units.
BOTTOM_LINE_CHOICES = 3
TIED_ROW_RATIO = 0.95  # a row scoring this close to the best is as much the answer
MAX_BOTTOM_LINE_UNITS = 3  # rows the question's values pick, or parts of a question it asks
MAX_WHOLE_WORDS = 140  # the longest table or list shown whole in place of a chosen row or item


def _contains(unit: Unit, other: Unit) -> bool:
    """Whether `unit` shows everything `other` does (a list its items, an item its child)."""
    return unit is not other and other.passage == unit.passage and other.words <= unit.words


def _repeats(unit: Unit, chosen: Sequence[Unit]) -> bool:
    """Whether `unit` is a near-duplicate of a chosen unit (word Jaccard 0.6 or more) or shows
    nothing a chosen unit does not already show."""
    return any(
        (_jaccard(unit.words, other.words) >= 0.6 and not _other_rows(unit, other))
        or _contains(other, unit)
        for other in chosen
    )


def _other_rows(unit: Unit, other: Unit) -> bool:
    """Whether two units are different rows of one table (the chunker may cut a table in
    two): they share the header's words, yet each adds rows."""
    tabular = ("row", "table")
    return (
        unit.kind in tabular
        and other.kind in tabular
        and _table_key(unit) == _table_key(other)
        and set(unit.children or (unit.text,)) != set(other.children or (other.text,))
    )


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _joined_sentences(said: Sequence[tuple[str, int | tuple[int, ...]]]) -> str:
    """Sentences, each citing its passage, as one sentence: "A [1]; b [2]." (a clause after
    the first starts in lower case unless it opens with an abbreviation or a name)."""
    if len(said) == 1:
        return _cite(*said[0])
    clauses = []
    named = ""  # what an attribute's clause is of: "Anti-IL5: Mepolizumab — "
    for number, (text, n) in enumerate(said):
        text = text.rstrip().rstrip(".")
        heading, dash, rest = text.partition(" — ")
        if dash and f"{heading}{dash}" == named:
            text = rest  # "...; dose: 100 mg ...", not the heading a second time
        named = f"{heading}{dash}" if dash else ""
        clauses.append(f"{lowered(text) if number else text} {_marks(n)}")
    return "; ".join(clauses) + "."


def _cite(text: str, n: int | tuple[int, ...]) -> str:
    """`text` with [n] placed before its closing punctuation ("... flare [2]."); passages
    `n` cited together: "[1][3]"."""
    text = text.rstrip()
    marks = _marks(n)
    match = re.match(r"^(.*?)([.!?…:;]+[\"'”’)]*)$", text)
    if match and match.group(1):
        return f"{match.group(1)} {marks}{match.group(2)}"
    return f"{text} {marks}"


def _marks(n: int | tuple[int, ...]) -> str:
    return "".join(f"[{m}]" for m in (n if isinstance(n, tuple) else (n,)))


TIE_RATIO = 0.9  # units scoring this close to the best answer about as well


def _asked_first(
    chosen: list[Unit], score_of: dict[int, float], asking: str, negated: frozenset[str]
) -> list[Unit]:
    """`chosen` with, of the units scoring within TIE_RATIO of the best, the one naming most of
    what the sentences that ask ask about (their words of everyday English aside: "Keep going
    up?" names nothing) first, when it names more than the unit now first."""
    if len(chosen) < 2:
        return chosen
    said = " ".join(word for word in WORD.findall(asking) if not is_everyday_english(word))
    asked = stems_with_full_forms(said) - GENERIC_WORDS - negated
    top = max(score_of.get(id(unit), 0.0) for unit in chosen)
    tied = [unit for unit in chosen if score_of.get(id(unit), 0.0) >= TIE_RATIO * top]
    if len(tied) < 2:
        return chosen
    first = max(tied, key=lambda unit: (_asked_share(asked, unit), score_of.get(id(unit), 0.0)))
    if not asked or _asked_share(asked, first) <= _asked_share(asked, chosen[0]):
        return chosen
    return [first, *[unit for unit in chosen if unit is not first]]


def _names_drug(unit: Unit, drugs: Sequence[str], path: str = "") -> bool:
    """Whether `unit`, its heading, its intro or the heading path `path` of its passage names
    one of `drugs` (stems: drug_stem)."""
    return writes_form(f"{path} {unit.section} {unit.lead} {shown_text(unit)}".lower(), drugs)


def _doses(unit: Unit, drugs: Sequence[str], path: str = "") -> bool:
    """Whether `unit` gives an amount for one of `drugs` (stems), named in it or its headings
    (`path`: its passage's heading path). An amount is the dose of the drug the unit names
    last before it: "Tenecteplase 0.25 mg/kg ... is an alternative to alteplase" doses
    tenecteplase, not alteplase; "Dose: 0.9 mg/kg" under "IV Alteplase > Dosing Protocol"
    doses the drug its headings name."""
    text = shown_text(unit)
    amounts = list(_DOSE_AMOUNT.finditer(text))
    if not amounts or not _names_drug(unit, drugs, path):
        return False
    named_before = [DRUG_NAME.findall(text[: amount.start()].lower()) for amount in amounts]
    if not any(named_before):
        return True
    return any(named and writes_form(named[-1], drugs) for named in named_before)


def _giving_unit_first(
    chosen: list[Unit],
    candidates: Sequence[Unit],
    score_of: dict[int, float],
    gives: Callable[[Unit], bool],
) -> list[Unit]:
    """`chosen` with the best of `candidates` that `gives` what the question asks first, when
    the unit now first does not and that one scores at least DOSED_LEAD_RATIO of it.
    "Probenecid starting dose?" after a story of allopurinol and febuxostat is answered by the
    probenecid row, not by the decision tree naming probenecid as the alternative; "How long
    should the enoxaparin run?" by enoxaparin's "Duration: for the index hospitalization, up
    to 8 days", not by when to give more at PCI, nor by fondaparinux's duration."""
    if not chosen or gives(chosen[0]):
        return chosen
    top = score_of.get(id(chosen[0]), 0.0)
    giving = [
        unit
        for unit in candidates
        if gives(unit) and score_of.get(id(unit), 0.0) >= DOSED_LEAD_RATIO * top
    ]
    if not giving:
        return chosen
    first = max(giving, key=lambda unit: score_of.get(id(unit), 0.0))
    return [first, *[unit for unit in chosen if unit is not first]]


def _bottom_unit(
    chosen: Sequence[Unit],
    lead: Unit | None,
    wants: str,
    doses: Callable[[Unit], bool] | None = None,
) -> Unit:
    """The unit the bottom line says: the unit the question's values matched (`lead`), else
    the best unit that reads as a sentence; when the question asks for a dose, a number or a
    list (`wants`) and one of the best few such units gives one, that unit (for a dose, one
    giving an amount of the drug asked about, `doses`, first)."""
    if lead is not None and is_sentence(sentence_form(lead)) and not _stops_short(lead):
        return lead
    sentences = [
        unit
        for unit in chosen
        if is_sentence(sentence_form(unit))
        and not _stops_short(unit)
        and not _POINTS_ELSEWHERE.search(unit.text)
    ]
    typed = [
        unit
        for unit in sentences[:BOTTOM_LINE_CHOICES]
        if (
            unit.kind in ("list", "table")
            if wants == "list"
            else _answer_type_weight(wants, sentence_form(unit)) > 1.0
        )
    ]
    if doses is not None:
        # An amount of the drug asked about ("The ET dose is higher (0.05-0.1 mg/kg)" under
        # the epinephrine headings) over a line that only names it ("Preferred route is IV").
        typed.sort(key=lambda unit: not doses(unit))
    return (typed or sentences or list(chosen))[0]


# A sentence that cannot stand alone as the answer: one that says a guideline has
# recommendations, or what it does, not what they are ("The ACR 2020 guideline provides
# conditional recommendations on managing these medications"), or one whose subject is in the sentence
# before it ("This property makes it a preferred choice ...").
_POINTS_ELSEWHERE = re.compile(
    r"\b(?<!not )provides? (?:\w+ ){0,2}recommendations? (?:on|about|regarding|for)\b"
    # "The SSC 2021 guideline introduces a stratified approach to antibiotic timing ...": what
    # the guideline does, not what it recommends.
    r"|\b(?:guidelines?|report|statement|document) (?:introduces|describes|outlines|covers|addresses"
    r"|discusses|defines)\b"
    r"|^(?:this|these|such|it|they)\b(?! (?:is|are) (?:recommended|suggested|indicated))",
    re.IGNORECASE,
)

COMPLEMENT_SCORE_RATIO = 0.4  # a second bottom-line unit scores at least this share of the best
COMPLEMENT_SIMILARITY_RATIO = 0.9  # ... and is nearly as close to the question as the first
COMPLEMENT_WORDS = 60  # ... and is short enough to read as a clause of one sentence
# Why a recommendation holds, or what a term means, is no answer beside it ("the POISE-2
# trial demonstrated ...", "the EPDS is designed for ...", "included: adults with cUTI").
_NO_ANSWER = re.compile(
    r"\b(?:trials?|demonstrated|showed|defines?|designed)\b|^(?:included|excluded|scope)\b",
    re.IGNORECASE,
)


def _complement(
    bottom: Unit,
    chosen: Sequence[Unit],
    score_of: dict[int, float],
    similarity_of: dict[int, float],
    asked_words: set[str],
) -> Unit | None:
    """The chosen unit that best names what the question asks (`asked_words`) and the bottom
    line's unit leaves out, scoring and matching the question nearly as well; None when no
    unit does. Never another branch of the bottom line's decision tree, a near-duplicate, an
    aside, or the reasoning behind a recommendation."""
    missing = asked_words - bottom.words
    top = max((score_of.get(id(unit), 0.0) for unit in chosen), default=0.0)
    if not missing or top <= 0.0:
        return None
    closeness = similarity_of.get(id(bottom), max(similarity_of.values(), default=0.0))
    best, best_value = None, 0.0
    for unit in chosen:
        score, covered = score_of.get(id(unit), 0.0), len(missing & unit.words)
        text = sentence_form(unit)
        if (
            unit is bottom
            or not covered
            or score < COMPLEMENT_SCORE_RATIO * top
            or (similarity_of and similarity_of.get(id(unit), 0.0) < COMPLEMENT_SIMILARITY_RATIO * closeness)
            or len(text.split()) > COMPLEMENT_WORDS
            or not is_sentence(text)
            or _stops_short(unit)
            or _repeats(unit, [bottom])
            or _contains(unit, bottom)
            or (unit.kind == "path" and bottom.kind == "path" and unit.passage == bottom.passage)
            or _ASIDE_HEADING.search(unit.section)
            or _NO_ANSWER.search(text)
            or _POINTS_ELSEWHERE.search(unit.text)
        ):
            continue
        if score * covered > best_value:
            best, best_value = unit, score * covered
    return best


def _render(
    chosen: Sequence[Unit],
    hits: Sequence[Hit],
    audience: str,
    bottom: Unit,
    lead: Unit | None = None,
    also: Sequence[Unit] = (),
    tied_rows: Sequence[Unit] = (),
    asked_words: frozenset[str] = frozenset(),
    question: str = "",
    score: Tally | None = None,
    story_words: frozenset[str] = frozenset(),
    unmet: tuple[str, int] | None = None,
) -> str:
    """Bottom line: the unit `bottom` (see _bottom_unit), written as one sentence, with the
    answers to the question's other parts or the tied rows (`also`, `tied_rows`). Then the chosen units
    under "### section" headings, best section first, inside a section in passage order:
    tables with their header, list items under their intro with their nested items (a
    table's bottom line says only the rows whose first cell names what the sentences that ask
    name, `asked_words`, when some rows do and others do not; a list under a population label,
    "Men:", is said with its sibling lists, "Women:", or replaced by the one the `question`
    names). The
    bottom line's unit is shown again in the body only when the body adds its structure (its
    intro, nested items or table); a section from another guideline than the first unit's is
    labelled with its organisation and year. A `score` the question's values add up to opens
    the bottom line with its working, citing the passages of its table; criteria that must all
    be met and that the question's values fail (`unmet`, _unmet_criteria), or the contraindications
    they meet (_met_contraindications), open it after that."""
    defined = definitions("\n".join(hit.text for hit in hits)) if audience == "patient" else {}

    def adapt(text: str) -> str:
        return for_patient(text, defined) if audience == "patient" else text

    continued: list[tuple[str, int]] = []
    if bottom.kind == "table":
        # A table the chunker cut in two is said whole: the part under its intro first.
        parts = [u for u in chosen if u.kind == "table" and _table_key(u) == _table_key(bottom)]
        parts.sort(key=lambda unit: (not unit.lead, unit.passage))
        said_parts = _asked_rows(parts, asked_words, story_words)
        told = said_parts[0]
        if not told.lead and parts[0].lead:  # the intro says what the rows are
            told = replace(told, lead=parts[0].lead)
        also = [told if unit is bottom or unit in parts else unit for unit in also]
        bottom = told
        continued = [(rows_form(unit), unit.passage) for unit in said_parts[1:]]
    sentence = sentence_form(bottom)
    if (
        bottom is lead
        and not sentence.startswith(bottom.section)
        and value_conditions(bottom.section)
        and not value_conditions(f"{bottom.lead} {bottom.parent} {label_of(bottom.text)}")
    ):
        # The heading is what the question's values matched ("Moderate Severity (CURB-65 2,
        # inpatient ward)"): it says for whom the sentence holds.
        sentence = f"{bottom.section}: {sentence[:1].lower() + sentence[1:] if sentence[1:2].islower() else sentence}"
    said = [(sentence, bottom.passage), *continued]
    if bottom.kind == "row":
        # A row tied with the bottom line's, of its table, for the same thing (its first cell
        # shares a word: "DES"), is said beside it, in the document's order.
        named = content_stems(bottom.cells[0]) if bottom.cells else frozenset()
        tied = [
            unit
            for unit in tied_rows
            if unit is not bottom
            and _table_key(unit) == _table_key(bottom)
            and unit.cells
            and named & content_stems(unit.cells[0])
        ][: MAX_BOTTOM_LINE_UNITS - 1]
        if tied:
            rows = sorted([bottom, *tied], key=lambda unit: _reading_order(unit, hits))
            said = [(sentence_form(unit), unit.passage) for unit in rows]
            also = [unit for unit in also if unit not in rows]
    elif bottom.kind == "list" and lead is None and _population_label(bottom):
        # "Men:" thresholds said alone read as everyone's: the sibling lists of its section
        # ("Women:") are said beside it; when the question names one population ("a woman
        # with AF"), its list is said instead.
        siblings = [
            unit
            for unit in chosen
            if unit is not bottom
            and unit.kind == "list"
            and _population_label(unit)
            and unit.section == bottom.section
            and hits[unit.passage - 1].doc_id == hits[bottom.passage - 1].doc_id
        ]
        named = [unit for unit in [bottom, *siblings] if _names_label(unit, question)]
        lists = sorted(named or [bottom, *siblings], key=lambda unit: _reading_order(unit, hits))
        if siblings and lists != [bottom]:
            said = [(sentence_form(unit), unit.passage) for unit in lists]
            also = []  # the lists are the answer; a complement would only lengthen it
    # Parts of the question asked before the one the bottom line's unit answers are said first.
    cut = next((n for n, unit in enumerate(also) if unit is bottom), 0)
    before = [(sentence_form(unit), unit.passage) for unit in also[:cut]]
    said = [*(pair for pair in before if is_sentence(pair[0])), *said]
    for unit in also[cut:]:
        if unit is not bottom and is_sentence(sentence_form(unit)):
            said.append((sentence_form(unit), unit.passage))
    if unmet is not None:
        # The criteria the values fail, before anything the bottom line's unit says.
        said.insert(0, unmet)
    if score is not None:
        # The working, citing every part of the table it was added up on, then what it means.
        said.insert(0, (score.sentence(), score.passages))
    lines = [f"Bottom line: {_joined_sentences([(adapt(text), n) for text, n in said])}", ""]
    body = _within_length(
        [
            unit
            for unit in chosen
            if unit is not bottom or unit.children or unit.lead or unit.kind == "row"
        ],
        len(lines[0].split()),
    )
    if not body:
        return lines[0]  # one sentence answers: said once, as the bottom line
    main = guideline(hits[chosen[0].passage - 1])
    sections: dict[tuple[str, str], list[Unit]] = {}
    for unit in body:  # best first, so sections appear in order of their best unit
        hit = hits[unit.passage - 1]
        label = "" if guideline(hit) == main else origin(hit)
        sections.setdefault((unit.section, label), []).append(unit)
    for (section, label), members in sections.items():
        members.sort(key=lambda unit: _reading_order(unit, hits))
        heading = f"{section} ({label})" if label else section
        lines += [f"### {heading}", "", _block(members, adapt), ""]
    return "\n".join(lines).strip()


ANSWER_WORDS = 235  # a body unit that would take the answer past this many words is left out


def _within_length(body: Sequence[Unit], said: int) -> list[Unit]:
    """The units of `body` (best first) that fit, after a bottom line of `said` words, within
    ANSWER_WORDS: the best unit always; the parts of a table already shown always (a table is
    not shown without its rows the chunker cut away); the rest while they fit."""
    kept: list[Unit] = []
    words = said
    for unit in body:
        length = len(shown_text(unit).split())
        of_a_kept_table = unit.kind in ("row", "table") and any(
            other.kind in ("row", "table") and _table_key(other) == _table_key(unit)
            for other in kept
        )
        if kept and not of_a_kept_table and words + length > ANSWER_WORDS:
            continue
        kept.append(unit)
        words += length
    return kept


# Labels of the populations a guideline gives parallel lists for, and how a question names
# them (an age with a sex, "86F", "72M", in capitals only).
_POPULATION_LABELS = {
    "men": re.compile(r"(?i:\b(?:men|man|males?|boys?)\b)|\b\d{1,3} ?M\b"),
    "women": re.compile(r"(?i:\b(?:women|woman|females?|girls?)\b)|\b\d{1,3} ?F\b"),
    "adults": re.compile(r"\badults?\b", re.IGNORECASE),
    "children": re.compile(r"\b(?:child|children|paediatric|pediatric|kids?)\b", re.IGNORECASE),
}


def _population_label(unit: Unit) -> str:
    """The population a list is given for when its intro is only that label ("Men:"), or ""."""
    label = unit.text.strip().rstrip(":").strip("*").lower()
    return label if unit.text.rstrip().endswith(":") and label in _POPULATION_LABELS else ""


def _names_label(unit: Unit, question: str) -> bool:
    """Whether `question` names the population of `unit`'s label, in any of its words."""
    return _POPULATION_LABELS[_population_label(unit)].search(question) is not None


def _asked_rows(
    parts: Sequence[Unit], asked_words: frozenset[str], story_words: frozenset[str] = frozenset()
) -> list[Unit]:
    """The parts of one table keeping only the rows whose first cell names a word the question
    asks with ("Which thiazide-type diuretic ...?": the thiazide rows of a drug table, not the
    ACE inhibitors), when some rows do and others do not; a row with an empty first cell goes
    with the row above it. A word the table's heading or intro names is what the whole table
    is about ("nebs": the "Nebulized Therapies" table), not a row. When no row names a word
    the sentences that ask use ("What do we switch to?"), the rows naming the most words of
    the question's story (`story_words`: "grew an ESBL-producing Klebsiella" picks "ESBL-producing
    GNB") that fewer than half the rows name. Otherwise the parts as they are."""
    about = content_stems(" ".join(f"{part.section} {part.lead}" for part in parts))
    # A story word most rows name is what the table is about ("CSF" in a table of CSF
    # infections), not a row.
    firsts = [content_stems(row.split(" | ")[0]) for part in parts for row in part.children]
    common = {word for word in story_words if 2 * sum(word in first for first in firsts) > len(firsts)}
    for words, most_only in ((asked_words - about, False), (story_words - about - common, True)):
        named = [_first_cell_named(part, words) for part in parts]
        most = max((n for counts in named for n in counts), default=0)
        if not most:
            continue
        least = most if most_only else 1
        kept = [
            tuple(row for row, n in zip(part.children, counts, strict=True) if n >= least)
            for part, counts in zip(parts, named, strict=True)
        ]
        shown, total = sum(map(len, kept)), sum(len(part.children) for part in parts)
        if shown == total:
            return list(parts)
        return [replace(part, children=rows) for part, rows in zip(parts, kept, strict=True) if rows]
    return list(parts)


def _class_stems(text: str) -> frozenset[str]:
    """The content stems of the classes of the drugs `text` names ("alendronate":
    "bisphosphon"): a table row for "oral bisphosphonate therapy" is the alendronate row."""
    return content_stems(" ".join(form for word in content_words(text) for form in drug_class(word)))


def _first_cell_named(part: Unit, words: frozenset[str]) -> list[int]:
    """For each row of `part`, how many of `words` its first cell names; a row with an empty
    first cell counts as the row above it."""
    counts, named = [], 0
    for row in part.children:
        first = row.split(" | ")[0].strip()
        if first:
            named = len(content_stems(first) & words)
        counts.append(named)
    return counts


def _stops_short(unit: Unit) -> bool:
    """Whether `unit` is a decision-tree path that ends on a question or a bare yes/no, its
    action cut off by the chunker ("... Ischemic etiology? → NO (non-ischemic)"): it tells a
    reader where they are in the tree, not what to do."""
    if unit.kind != "path":
        return False
    last = unit.text.rsplit("→", 1)[-1].strip()
    return last.endswith(("?", ":")) or bool(re.match(r"(?:yes|no)\b", last, re.IGNORECASE))


def _reading_order(unit: Unit, hits: Sequence[Hit]) -> tuple[str, int, int]:
    """Where `unit` stands in its document: (document, chunk number, position in the chunk).
    Two chunks of one table are read in the document's order, not in retrieval's."""
    hit = hits[unit.passage - 1]
    number = _chunk_number(hit)
    return (hit.doc_id, unit.passage if number is None else number, unit.position)


def origin(hit: Hit) -> str:
    """ "ACC/AHA 2023": the organisation and year a reader weighs a source by."""
    return " ".join(str(part) for part in (hit.source, hit.year) if part) or hit.title


def _block(units: Sequence[Unit], adapt: Any) -> str:
    """The Markdown of one section's units: sentences as a paragraph, items as a list under
    their intro, rows as a table under their header; every line cites its passage."""
    parts: list[str] = []
    shown_leads: set[tuple[int, int, str]] = set()
    # One table per header: a long table the chunker cut in two comes back whole, each row
    # citing its own passage.
    tables: dict[object, list[tuple[Sequence[str], int]]] = {}
    leads: dict[object, str] = {}
    # A row also shown with the whole part of the table it is in is shown there, once, in
    # the table's order.
    in_tables = {
        (tuple(row.split(" | ")), unit.passage)
        for unit in units
        if unit.kind == "table"
        for row in unit.children
    }
    # The part under the table's intro opens it, wherever the chunker put it.
    for unit in sorted(units, key=lambda unit: not unit.lead):
        if unit.kind in ("row", "table"):
            leads.setdefault(_table_key(unit), unit.lead)
            if unit.kind == "table":
                rows = [tuple(row.split(" | ")) for row in unit.children]
            elif (unit.cells, unit.passage) in in_tables:
                rows = []
            else:
                rows = [unit.cells]
            tables.setdefault(_table_key(unit), []).extend((row, unit.passage) for row in rows)
    for unit in units:
        n = unit.passage
        if unit.kind == "sentence":
            text = _cite(adapt(unit.text), n)
            if parts and not parts[-1].startswith(("- ", "|")) and "\n" not in parts[-1]:
                parts[-1] += " " + text
            else:
                parts.append(text)
        elif unit.kind == "path":
            parts.append("- " + _cite(adapt(unit.text), n))
        elif unit.kind in ("row", "table"):
            rows = tables.pop(_table_key(unit), None)
            if rows:
                parts.append(_table(leads[_table_key(unit)], unit.header, rows, adapt))
        else:  # item or list
            lines = []
            key = (unit.passage, unit.group, unit.lead)
            if unit.kind == "list":
                if not is_headed_list(unit):  # the heading is shown as the heading
                    lines.append(_cite(adapt(unit.text), n))
                lines += [f"- {_cite(adapt(child), n)}" for child in unit.children]
            else:
                if unit.lead and key not in shown_leads:
                    lines.append(_cite(adapt(unit.lead), n))
                    shown_leads.add(key)
                indent = ""
                if unit.parent:
                    parent_key = (unit.passage, unit.group, "parent:" + unit.parent)
                    if parent_key not in shown_leads:
                        lines.append(f"- {_cite(adapt(unit.parent), n)}")
                        shown_leads.add(parent_key)
                    indent = "  "
                lines.append(f"{indent}- {_cite(adapt(unit.text), n)}")
                lines += [f"{indent}  - {_cite(adapt(child), n)}" for child in unit.children]
            if (
                parts
                and parts[-1].startswith("- ")
                and not (unit.lead and lines[0] == _cite(adapt(unit.lead), n))
            ):
                parts[-1] += "\n" + "\n".join(lines)
            else:
                parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _table_key(unit: Unit) -> object:
    """Rows under one header in one section belong to one table, whatever chunk they came in."""
    return (unit.section, tuple(unit.header)) if unit.header else (unit.passage, unit.group)


def _table(
    lead: str, header: Sequence[str], rows: Sequence[tuple[Sequence[str], int]], adapt: Any
) -> str:
    """A Markdown table: the lead line, the header, the rows; each row's passage number [n] in
    its last cell."""
    lines = [_cite(adapt(lead), rows[0][1])] if lead else []
    width = max([len(header), *(len(row) for row, _ in rows)])
    if header:
        lines.append("| " + " | ".join(_padded(header, width)) + " |")
        lines.append("|" + "---|" * width)
    for row, n in rows:
        cells = _padded([adapt(cell) for cell in row], width)
        cells[-1] = f"{cells[-1]} [{n}]".strip()
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _padded(cells: Sequence[str], width: int) -> list[str]:
    return [*cells, *([""] * (width - len(cells)))]
