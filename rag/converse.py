"""Conversations: follow-up -> standalone question, and saved sessions.

Two jobs, both about questions asked in the light of earlier ones:

- `condense(question, history)` turns an elliptical follow-up ("And how long for?") into one
  question that retrieval can use on its own. With a chat function it asks the LLM to rewrite
  the follow-up and checks the reply; without one (or when the reply is unusable) it carries the
  conversation's topic terms into the query deterministically. `lift_cited_source` then keeps
  the topic in the ranking as well: sections of the guideline the previous answer cited move up
  a few places (Engine.search(..., history=...) applies it).
- `SessionStore(data_dir)` keeps each conversation as one JSON file of `Turn`s, written
  atomically, so `rag ask --session NAME`, `rag chat` and the web page can continue it later.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import InputError, SessionError
from rag.text import STOPWORDS, stem, terms, word_list
from rag.types import Hit, Turn

# ---------------------------------------------------------------------------------------------
# Condensation

ChatFunction = Callable[[list[dict[str, str]]], str]
"""Messages in the OpenAI chat shape ([{"role", "content"}, ...]) -> the reply text."""

CONDENSE_SYSTEM_PROMPT = (
    "You rewrite the last question of a clinical conversation so that it can be understood "
    "without the conversation. Name the condition, drug, score, procedure or patient group that "
    "the earlier turns were about, keep every detail of the last question, and do not answer "
    "it. Reply with the rewritten question only, on one line, ending with a question mark. If "
    "the last question is already self-contained, repeat it unchanged."
)

CONDENSE_USER_TEMPLATE = (
    "Conversation so far:\n{conversation}\n\nLast question: {question}\n\nStandalone question:"
)

# How much of the conversation the rewrite prompt shows: the first turn (it usually names the
# topic) plus the most recent ones, each answer cut short; the answers matter only for context.
PROMPT_RECENT_TURNS = 3
PROMPT_ANSWER_CHARS = 300
PROMPT_SOURCE_TITLES = 3

# A rewritten question longer than this is an answer or a ramble, not a question.
MAX_REWRITE_CHARS = 400

# The deterministic method. A follow-up with at least this many content words and no elliptical
# cue is taken as self-contained and left alone. Otherwise the topic terms appended are those of
# the anchor question (up to FIRST_TURN_MAX_TERMS) and of the most recent earlier question (up
# to RECENT_TURN_MAX_TERMS). Tuned on the dev half of evals/conversations.jsonl (grid in
# evals/README.md): words of an elliptical second turn ("Which IV drugs are preferred?") pulled
# third turns towards the second turn's document more often than they helped, hence 0.
SELF_CONTAINED_MIN_TERMS = 5
FIRST_TURN_MAX_TERMS = 12
RECENT_TURN_MAX_TERMS = 0

# Beyond rag.text.STOPWORDS: question words, contractions and conversational filler. None of
# them says what a conversation is about, so none is carried into the standalone question.
CONVERSATION_WORDS = word_list(
    """
    already anymore anyone anything aren't can't cannot case cases couldn't didn't doesn't
    don't else even ever every get gets getting give given giving go goes going got hasn't
    herself himself instead isn't it's kind let like myself need needed needs neither now ok
    okay one ones others otherwise ourselves particular patient patients people person please
    rather really regarding say shouldn't someone someone's something still tell thanks that's
    theirs themselves thing things though use used uses using wasn't what's whatever wouldn't
    yes yet
    """
)
# "ie" stays a topic word: in a conversation it is infective endocarditis (IE), not "i.e.".
_NOT_TOPIC = (STOPWORDS | CONVERSATION_WORDS) - {"ie"}

# Words that make a question lean on the earlier turns: a leading connective ("And in
# pregnancy?") or a pronoun standing for something said before ("How long should it continue?").
LEADING_CUES = (
    "and",
    "or",
    "but",
    "so",
    "also",
    "then",
    "what about",
    "how about",
    "what if",
    "and if",
    "same",
)
ANAPHORA = word_list(
    "it its it's they them their theirs this that these those she her he him his one ones "
    "such same former latter above"
)

_REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i cannot|i'm sorry|i am sorry|sorry,|as an ai|i'm unable|i am unable|"
    r"unable to (?:help|rewrite|answer)|not able to)\b",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^(what|which|when|where|who|whom|whose|why|how|is|are|was|were|do|does|did|should|"
    r"would|could|can|may|might|must|shall|will|has|have|had|in|for|at|after|before|during)\b",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^(standalone|rewritten|reformulated)?\s*question\s*:\s*", re.IGNORECASE)


def content_terms(text: str) -> list[str]:
    """Terms of `text` that say what it is about, in order, without repeats: no stopwords, no
    conversational filler, clinical names kept whole ("cha2ds2-vasc")."""
    found: list[str] = []
    for word in terms(text):
        if word in _NOT_TOPIC or (len(word) < 2 and not word.isdigit()):
            continue
        if word not in found:
            found.append(word)
    return found


def is_elliptical(question: str) -> bool:
    """Whether `question` leans on earlier turns: a leading connective or a pronoun."""
    lowered = " ".join(terms(question))
    if any(lowered == cue or lowered.startswith(cue + " ") for cue in LEADING_CUES):
        return True
    return any(word in ANAPHORA for word in terms(question))


def is_self_contained(question: str) -> bool:
    """Whether `question` names its own topic: no elliptical cue and enough content words."""
    return not is_elliptical(question) and len(content_terms(question)) >= SELF_CONTAINED_MIN_TERMS


def topic_terms(history: Sequence[Turn], *, exclude: Sequence[str] = ()) -> list[str]:
    """The conversation's topic, as content words in order, minus `exclude` (the follow-up's
    own words): first the anchor question (the latest earlier question that was
    self-contained, else the first one: it names the condition), then a few words of the most
    recent earlier question when that is a different one. Earlier standalone questions are not
    used: they already carry older topic terms, and chaining them would let a topic drift on."""
    if not history:
        return []
    anchor = 0
    for position in range(len(history) - 1, 0, -1):
        if is_self_contained(history[position].question):
            anchor = position
            break
    seen = {stem(term) for term in exclude}
    chosen: list[str] = []

    def take(question: str, limit: int) -> None:
        taken = 0
        for term in content_terms(question):
            if taken >= limit:
                break
            if stem(term) in seen:
                continue
            seen.add(stem(term))
            chosen.append(term)
            taken += 1

    take(history[anchor].question, FIRST_TURN_MAX_TERMS)
    if anchor != len(history) - 1:
        take(history[-1].question, RECENT_TURN_MAX_TERMS)
    return chosen


def condense_deterministic(question: str, history: Sequence[Turn]) -> str:
    """The follow-up with the conversation's topic terms appended in brackets.

    "And how long for?" after "What is the first-line treatment for a gout flare?" becomes
    "And how long for? (context: first-line treatment gout flare)". A self-contained question
    comes back unchanged, so a change of subject is not dragged back to the old topic.
    """
    question = " ".join(question.split())
    if not history or is_self_contained(question):
        return question
    topic = topic_terms(history, exclude=content_terms(question))
    topic += [term for term in carried_facts(question, history) if term not in topic]
    if not topic:
        return question
    return f"{question} (context: {' '.join(topic)})"


# "score is 2", "CURB-65 of 2", "eGFR 25", "CrCl 40": a value the conversation gave.
_GIVEN_VALUE = re.compile(
    r"\b((?:[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\d[A-Za-z0-9-]*)|score|egfr|gfr|crcl|age|weight|"
    r"inr|hba1c|a1c)\s*(?:is|of|=|was|at|:)?\s*(\d+(?:\.\d+)?)\b",
    re.IGNORECASE,
)
# Names with digits in them (CURB-65, CHA2DS2-VASc, NEWS2, ABCD2): the score or scale a
# conversation is about.
_NAMED_SCALE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\d[A-Za-z0-9]*(?:-[A-Za-z]+)?\b")


def carried_facts(question: str, history: Sequence[Turn]) -> list[str]:
    """What a follow-up's "the score", "that dose" or "then" refers to, carried from the
    conversation: the named score or scale the last two turns are about (their most frequent
    name with digits, "CURB-65") when the follow-up names none, and the values the last two
    questions gave ("score 2") when the follow-up gives none of its own."""
    carried: list[str] = []
    if not _NAMED_SCALE.search(question):
        recent = " ".join(
            f"{turn.question} {turn.standalone_question} {turn.answer}" for turn in history[-2:]
        )
        names = _NAMED_SCALE.findall(recent)
        if names:
            counts: dict[str, int] = {}
            for name in names:
                counts[name] = counts.get(name, 0) + 1
            carried.append(max(counts, key=lambda name: (counts[name], -names.index(name))))
    if not _GIVEN_VALUE.search(question):
        for turn in reversed(history[-2:]):
            for name, value in _GIVEN_VALUE.findall(turn.question):
                carried.append(f"{name} {value}")
            if carried and len(carried) > 1:
                break
    return carried


def rewrite_messages(
    question: str, history: Sequence[Turn], *, source_titles: Sequence[str] = ()
) -> list[dict[str, str]]:
    """The chat messages that ask an LLM to rewrite `question` as a standalone question.
    `source_titles` (the titles of the documents the previous answer cited) are shown too: a
    guideline title names the condition even when no question of the conversation does."""
    shown = list(enumerate(history, start=1))
    if len(shown) > PROMPT_RECENT_TURNS + 1:
        shown = shown[:1] + shown[-PROMPT_RECENT_TURNS:]
    lines: list[str] = []
    for number, turn in shown:
        lines.append(f"Q{number}: {' '.join(turn.question.split())}")
        answer = " ".join(turn.answer.split())
        if len(answer) > PROMPT_ANSWER_CHARS:
            answer = answer[:PROMPT_ANSWER_CHARS].rsplit(" ", 1)[0] + " ..."
        if answer:
            lines.append(f"A{number}: {answer}")
    titles = list(
        dict.fromkeys(" ".join(title.split()) for title in source_titles if title.strip())
    )
    if titles:
        lines.append(
            "Sources cited in the last answer: " + "; ".join(titles[:PROMPT_SOURCE_TITLES])
        )
    user = CONDENSE_USER_TEMPLATE.format(
        conversation="\n".join(lines), question=" ".join(question.split())
    )
    return [
        {"role": "system", "content": CONDENSE_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def usable_rewrite(reply: str, question: str) -> str | None:
    """The rewritten question from an LLM `reply`, or None when it cannot be trusted: empty,
    too long, a refusal, an answer rather than a question, or sharing no content word with the
    follow-up it rewrites."""
    text = (reply or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    text = _LABEL.sub("", lines[0]).strip().strip("\"'`“”‘’").strip()
    if not text or len(text) > MAX_REWRITE_CHARS or _REFUSAL.search(text):
        return None
    if not text.endswith("?") and not _QUESTION_START.match(text):
        return None
    followup_terms = {stem(term) for term in content_terms(question)}
    if followup_terms and not followup_terms & {stem(term) for term in content_terms(text)}:
        return None
    return text


def condense(
    question: str,
    history: Sequence[Turn],
    *,
    rewrite: ChatFunction | None = None,
    source_titles: Sequence[str] = (),
) -> str:
    """One standalone question for retrieval from a follow-up and the turns before it.

    With `rewrite` (a chat function from the LLM backend) the model rewrites the follow-up; a
    reply that is unusable, or a call that fails, falls back to `condense_deterministic`. The
    result is shown to the user as the standalone question, so it stays readable.
    `source_titles` (titles of the documents the previous answer cited) go into the prompt only:
    appending them to the deterministic query was measured and lost on dev (README).
    """
    question = " ".join((question or "").split())
    if not history or not question:
        return question
    if rewrite is not None:
        try:
            reply = rewrite(rewrite_messages(question, history, source_titles=source_titles))
        except Exception:  # noqa: BLE001 - any backend failure means: use the fallback
            reply = ""
        rewritten = usable_rewrite(reply if isinstance(reply, str) else "", question)
        if rewritten:
            return rewritten
    return condense_deterministic(question, history)


# Retrieval-side topic. The condensed query carries the topic in words; the ranking can carry it
# too: a follow-up most often stays within the source the user is reading (the guideline the
# previous answer cited first) but moves between its sections ("Which drugs can be used to treat
# it?" after a question on fibrosis tests). So the documents that share that source's title get
# a small bonus on top of their position, 1/(FUSION_K + rank) as in reciprocal rank fusion.
# Measured on dev (evals/README.md): a bonus for the cited guideline helped slightly (0.938 ->
# 0.939) and scored the same from 0.002 to 0.02. A bonus for the cited documents themselves
# lost 0.015-0.16 MRR (it pins the previous section), so a source of one document (a title no
# other document has, as in a corpus of papers) gets no bonus. Only the first cited source is
# lifted: lifting every cited guideline of 2+ documents lost 0.012 (it lifted the runner-up
# guidelines over the one-document source cited first, the TIMI score).
CITED_SOURCE_BOOST = 0.002  # about 9 places near the top of the list
CITED_SOURCE_DEPTH = 20  # passages re-ranked: a deeper pool than the k asked for
FUSION_K = 60


def cited_source_doc_ids(
    history: Sequence[Turn], siblings: Callable[[str], Sequence[str]]
) -> frozenset[str]:
    """The documents of the source the latest answer with citations cited first:
    `siblings(doc_id)` (every document with its title, itself included) when that is more than
    one document, else none. Empty without history or citations."""
    for turn in reversed(history):
        if turn.cited_doc_ids:
            same_source = frozenset(siblings(turn.cited_doc_ids[0]))
            return same_source if len(same_source) > 1 else frozenset()
    return frozenset()


def lift_cited_source(
    hits: Sequence[Hit], preferred_doc_ids: Collection[str], *, boost: float = CITED_SOURCE_BOOST
) -> list[Hit]:
    """`hits` re-ranked so passages of `preferred_doc_ids` move up a few places: each hit scores
    1/(FUSION_K + rank) plus `boost` when its document is preferred. Ranks are renumbered from 1;
    the retrieval scores are kept as they were (thresholds elsewhere compare them)."""
    if not preferred_doc_ids:
        return list(hits)
    order = sorted(
        range(len(hits)),
        key=lambda i: (
            1.0 / (FUSION_K + i + 1) + (boost if hits[i].doc_id in preferred_doc_ids else 0.0)
        ),
        reverse=True,
    )
    return [replace(hits[i], rank=rank) for rank, i in enumerate(order, start=1)]


# ---------------------------------------------------------------------------------------------
# Saved conversations

SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
SESSION_FORMAT = 1


@dataclass(frozen=True)
class SessionInfo:
    """One saved conversation as listed by `rag sessions list`; `updated` is ISO 8601 UTC."""

    name: str
    turns: int
    updated: str
    damaged: bool = False


def default_data_dir(settings: Settings) -> Path:
    """Where conversations live: `settings.data_dir` (RAG_DATA_DIR), else the platform's user
    data folder for "rag" (e.g. ~/.local/share/rag)."""
    if settings.data_dir:
        return Path(settings.data_dir).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("rag"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_session_name(name: str) -> str:
    """`name` if it is a usable session name, else InputError saying what is allowed."""
    if not isinstance(name, str) or not SESSION_NAME.match(name):
        shown = name if isinstance(name, str) else repr(name)
        raise InputError(
            f"session name '{shown[:80]}' is not allowed: use 1 to 100 letters, digits, '-' or '_'"
        )
    return name


class SessionStore:
    """Conversations saved under `data_dir`/sessions, one JSON file per session name.

    Each file holds {"format", "name", "created", "updated", "turns": [Turn fields...]}. Writes
    go to a temporary file in the same folder, are fsynced and then renamed over the old file,
    so a crash leaves either the old or the new conversation, never half of one. One lock per
    store serialises the read-modify-write of `append` between threads.
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.directory = self.data_dir / "sessions"
        self._lock = threading.RLock()

    def path(self, name: str) -> Path:
        """The file that holds session `name` (which is validated first)."""
        return self.directory / f"{check_session_name(name)}.json"

    # -- reading --------------------------------------------------------------------------

    def _read(self, name: str) -> dict[str, Any] | None:
        """The parsed file of `name`, None when there is none; SessionError when damaged."""
        path = self.path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SessionError(f"session file {path} cannot be read ({error.strerror})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            _check_shape(data)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
            raise SessionError(
                f"session file {path} is damaged ({_short(error)}); delete it with "
                f"`rag sessions delete {name}` or restore it from a backup"
            ) from None
        return data

    def load(self, name: str) -> list[Turn]:
        """The turns of session `name`, oldest first; SessionError if it does not exist."""
        with self._lock:
            data = self._read(name)
        if data is None:
            raise SessionError(f"no session named '{name}' (see `rag sessions list`)")
        return [_turn_from_json(item) for item in data["turns"]]

    def load_or_empty(self, name: str) -> list[Turn]:
        """Like `load`, but a session that does not exist yet is an empty conversation."""
        with self._lock:
            data = self._read(name)
        return [] if data is None else [_turn_from_json(item) for item in data["turns"]]

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def names(self) -> list[SessionInfo]:
        """Every saved session, most recently updated first. A damaged file is listed with
        `damaged=True` (and 0 turns) instead of hiding the others."""
        if not self.directory.is_dir():
            return []
        infos: list[SessionInfo] = []
        with self._lock:
            for path in self.directory.glob("*.json"):
                name = path.stem
                if not SESSION_NAME.match(name):
                    continue
                try:
                    data = self._read(name)
                except SessionError:
                    infos.append(SessionInfo(name, 0, "", damaged=True))
                    continue
                if data is not None:
                    infos.append(SessionInfo(name, len(data["turns"]), str(data["updated"])))
        return sorted(infos, key=lambda info: (info.updated, info.name), reverse=True)

    # -- writing --------------------------------------------------------------------------

    def append(self, name: str, turn: Turn) -> None:
        """Add `turn` to session `name`, creating the session if needed."""
        with self._lock:
            data = self._read(name)
            now = _now()
            if data is None:
                data = {"format": SESSION_FORMAT, "name": name, "created": now, "turns": []}
            data["turns"].append(turn_to_json(turn))
            data["updated"] = now
            self._write(name, data)

    def delete(self, name: str) -> None:
        """Remove session `name` (damaged or not); SessionError if there is none."""
        path = self.path(name)
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError:
                raise SessionError(f"no session named '{name}' (see `rag sessions list`)") from None

    def _write(self, name: str, data: dict[str, Any]) -> None:
        path = self.path(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
        handle, temp_name = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as temp:
                temp.write(payload)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, path)
        except BaseException:
            try:
                os.unlink(temp_name)
            except FileNotFoundError:
                pass
            raise
        _fsync_directory(self.directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened for this.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _check_shape(data: Any) -> None:
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    turns = data.get("turns")
    if not isinstance(turns, list):
        raise TypeError("no list of turns")
    if not isinstance(data.get("updated", ""), str):
        raise TypeError("'updated' is not a time")
    for number, item in enumerate(turns, start=1):
        if not isinstance(item, dict):
            raise TypeError(f"turn {number} is not an object")
        for key in ("question", "answer"):
            if not isinstance(item.get(key), str):
                raise TypeError(f"turn {number} has no {key}")
        if not isinstance(item.get("standalone_question", ""), str):
            raise TypeError(f"turn {number} has a bad standalone_question")
        cited = item.get("cited_doc_ids", [])
        if not isinstance(cited, list) or not all(isinstance(doc_id, str) for doc_id in cited):
            raise TypeError(f"turn {number} has a bad cited_doc_ids")
    data.setdefault("updated", "")


def _short(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(error)


def turn_to_json(turn: Turn) -> dict[str, Any]:
    """`turn` as the JSON object a session file stores and the web API returns."""
    return {
        "question": turn.question,
        "answer": turn.answer,
        "standalone_question": turn.standalone_question,
        "cited_doc_ids": list(turn.cited_doc_ids),
    }


def _turn_from_json(item: dict[str, Any]) -> Turn:
    return Turn(
        question=item["question"],
        answer=item["answer"],
        standalone_question=item.get("standalone_question", ""),
        cited_doc_ids=tuple(item.get("cited_doc_ids", ())),
    )
