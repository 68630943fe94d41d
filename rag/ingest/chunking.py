"""Documents -> chunks that fit the embedder's input, cut along the Markdown structure.

A document's Markdown is read as blocks (paragraphs, whole lists, tables, code) under a heading
path. Blocks are packed into chunks up to the token budget without crossing a heading; a block
too big alone is split at sentence boundaries (a table by rows, repeating its header; a
decision tree by lines, repeating the steps above the line a chunk opens at), with
`overlap_sentences` repeated so a split sentence group keeps its context. The budget holds for
the passage the index embeds (rag.index.passage.passage_for_embedding, imported here for
the chunker's callers), title and section line included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.config import ChunkSettings
from rag.index.passage import passage_for_embedding
from rag.text import SECTION_SEPARATOR, split_prose_sentences, tree_step
from rag.types import Chunk, Document

# Raised when the same document and settings would be cut into other chunks, so an index
# built by an earlier version is re-chunked (rag.index.backend.chunking_key). 2: a split
# decision tree repeats the steps above each chunk's first line; a heading's " > " is ">".
# 3: a subsection opens with the intro its parent section ends on. 4: "+-->" is a branch.
# 5: a label announcing a list ("**Women:**") opens the chunk its list opens.
CHUNKER_VERSION = 5
_MIN_TEXT_BUDGET = 32  # text budget floor when a long prefix would leave almost nothing

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_RULE = re.compile(r"^[ \t]{0,3}([-*_])([ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"^([ \t]*)([-*+]|\d{1,3}[.)])[ \t]+")
_TABLE_ROW = re.compile(r"^[ \t]*\|")
_TABLE_SEPARATOR = re.compile(
    r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$"
)


@dataclass(frozen=True)
class _Block:
    """A unit of Markdown the chunker keeps whole when it can."""

    kind: str  # paragraph, list, table, code; intro (a parent section's, repeated)
    text: str


def chunk_document(
    document: Document, settings: ChunkSettings, count_tokens: Callable[[str], int]
) -> list[Chunk]:
    """Chunks of `document` in reading order, ids `<doc_id>#0..n-1`, none empty.

    `count_tokens` counts the embedder's tokens (see rag.tokens.embedder_token_counter); every
    chunk's `passage_for_embedding(document.title, chunk.section, chunk.text)` holds at most
    `settings.max_tokens` of them. (When a very long title and section path would leave the text
    under 32 tokens, or half the budget, the text keeps that much and the passage runs over;
    the prefix is capped at 240 characters, so this stays far inside the model's 256.)
    `Chunk.n_tokens` is the count of the chunk text alone.
    """
    counter = _CachedCounter(count_tokens)
    chunk_texts: list[tuple[str, str]] = []  # (section, text)
    for section, blocks in _sections(document.text, document.title):
        if not blocks:
            continue
        prefix_tokens = counter(passage_for_embedding(document.title, section, ""))
        floor = min(_MIN_TEXT_BUDGET, max(1, settings.max_tokens // 2))
        budget = max(settings.max_tokens - prefix_tokens, floor)
        limit = settings.max_tokens if budget + prefix_tokens <= settings.max_tokens else None
        # Counts add up across whitespace for WordPiece; a tokenizer where they do not (BPE)
        # can overshoot by a token or two, so the packed result is checked and, if needed,
        # packed again with a smaller budget.
        for _attempt in range(4):
            texts = _pack(blocks, budget, settings.overlap_sentences, counter)
            if limit is None or counter.additive:
                break
            overshoot = max(
                counter(passage_for_embedding(document.title, section, text)) - limit
                for text in texts
            )
            if overshoot <= 0 or budget <= 1:
                break
            budget = max(1, budget - overshoot)
        chunk_texts.extend((section, text) for text in texts)
    return [
        Chunk(
            id=f"{document.id}#{position}",
            doc_id=document.id,
            text=text,
            section=section,
            position=position,
            n_tokens=counter(text),
        )
        for position, (section, text) in enumerate(chunk_texts)
    ]


class _CachedCounter:
    """Counts each distinct string once: packing asks about the same blocks repeatedly.

    When the tokenizer declares `sums_over_whitespace` (WordPiece splits on whitespace first,
    so parts joined by whitespace cost exactly the sum of the parts), joined texts are never
    tokenized again: their count is the sum already known.
    """

    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self._count_tokens = count_tokens
        self._counts: dict[str, int] = {}
        self.additive = bool(getattr(count_tokens, "sums_over_whitespace", False))

    def join(self, parts: list[str], joiners: list[str]) -> str:
        """parts[0] + joiners[0] + parts[1] + ...; joiners are whitespace, so when counts are
        additive the joined text's count is the sum of the parts' and is remembered as such."""
        pieces = [parts[0]]
        for joiner, part in zip(joiners, parts[1:], strict=True):
            pieces.append(joiner)
            pieces.append(part)
        text = "".join(pieces)
        if self.additive and text not in self._counts:
            self._counts[text] = sum(self(part) for part in parts)
        return text

    def __call__(self, text: str) -> int:
        count = self._counts.get(text)
        if count is None:
            count = self._count_tokens(text) if text else 0
            self._counts[text] = count
        return count


# ---------------------------------------------------------------------------------------------
# Markdown -> (section path, blocks)


def _sections(markdown: str, title: str) -> list[tuple[str, list[_Block]]]:
    """The blocks under each heading, with the heading path that names them.

    A section that ends on an intro ("... meets all of the following criteria:") introduces
    its subsections: each of them opens with that intro again (a chunk of the subsection's
    table is then read, and embedded, as what the intro announces), as a split table repeats
    its header. A subsection with nothing but the repeated intro is dropped."""
    sections: list[tuple[str, list[_Block]]] = [("", [])]
    heading_stack: list[tuple[int, str]] = []
    intros: list[tuple[int, _Block]] = []  # (level of the heading it ends under, the intro)
    level = 0
    title_key = _comparable(title)
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() or _RULE.match(line):
            index += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            intro = _closing_intro(sections[-1][1])
            if intro is not None:
                intros.append((level, intro))
            level = len(heading.group(1))
            intros = [(above, intro) for above, intro in intros if above < level]
            name = _plain_heading(heading.group(2))
            while heading_stack and heading_stack[-1][0] >= level:
                heading_stack.pop()
            # The document's own title as a top heading would repeat the title in every path.
            if name and not (level == 1 and _comparable(name) == title_key):
                heading_stack.append((level, name))
            path = SECTION_SEPARATOR.join(name for _, name in heading_stack)
            sections.append((path, [intro for _, intro in intros[-1:]]))
            index += 1
            continue
        block, index = _read_block(lines, index)
        if block.text.strip():
            sections[-1][1].append(block)
    return [(path, blocks) for path, blocks in sections if any(b.kind != "intro" for b in blocks)]


def _closing_intro(blocks: list[_Block]) -> _Block | None:
    """The intro a section's blocks end on (its last sentence or list item, ending in ":"),
    as an "intro" block of plain text; None when they end otherwise."""
    if not blocks or blocks[-1].kind not in ("paragraph", "list"):
        return None
    last = blocks[-1].text.splitlines()[-1].strip()
    if blocks[-1].kind == "list":
        last = _LIST_ITEM.sub("", last).strip()
    else:
        last = (split_prose_sentences(blocks[-1].text) or [last])[-1].strip()
    return _Block("intro", last) if last.endswith(":") else None


def _read_block(lines: list[str], start: int) -> tuple[_Block, int]:
    """The block starting at lines[start] and the index of the line after it."""
    line = lines[start]
    fence = _FENCE.match(line)
    if fence:
        end = start + 1
        while end < len(lines) and not lines[end].lstrip().startswith(fence.group(1)):
            end += 1
        end = min(end + 1, len(lines))
        return _Block("code", "\n".join(lines[start:end]).strip("\n")), end
    if _TABLE_ROW.match(line):
        end = start
        while end < len(lines) and _TABLE_ROW.match(lines[end]):
            end += 1
        return _Block("table", "\n".join(row.strip() for row in lines[start:end])), end
    if _LIST_ITEM.match(line):
        end = start + 1
        while end < len(lines):
            current = lines[end]
            if current.strip():
                if _HEADING.match(current) or _TABLE_ROW.match(current) or _RULE.match(current):
                    break
                if _FENCE.match(current):
                    break
                end += 1
                continue
            # A blank line ends the list unless an item or an indented continuation follows.
            following = end + 1
            while following < len(lines) and not lines[following].strip():
                following += 1
            if following < len(lines) and (
                _LIST_ITEM.match(lines[following]) or lines[following][:1] in {" ", "\t"}
            ):
                end = following
                continue
            break
        item_lines = [item for item in lines[start:end] if item.strip()]
        return _Block("list", "\n".join(item.rstrip() for item in item_lines)), end
    end = start + 1
    while end < len(lines):
        current = lines[end]
        if not current.strip() or _HEADING.match(current) or _FENCE.match(current):
            break
        if _TABLE_ROW.match(current) or _RULE.match(current) or _LIST_ITEM.match(current):
            break
        end += 1
    return _Block("paragraph", "\n".join(text.strip() for text in lines[start:end])), end


def _plain_heading(heading: str) -> str:
    """A heading without Markdown emphasis or code marks, for the section path. A comparison
    in it is written without the space after it ("SBP >220 mmHg"), so the path's separator
    " > " is never read inside a heading ("SBP", "220 mmHg")."""
    plain = " ".join(re.sub(r"(\*\*|__|`)", "", heading).split()).strip("*_ ")
    return plain.replace(SECTION_SEPARATOR, SECTION_SEPARATOR.rstrip())


def _comparable(text: str) -> str:
    return "".join(character for character in text.casefold() if character.isalnum())


# ---------------------------------------------------------------------------------------------
# Packing blocks into chunks


@dataclass(frozen=True)
class _Atom:
    """The smallest piece the packer places: a whole block when it fits the budget, else one
    list item, line, table row, sentence or run of words of a block that does not."""

    text: str
    joiner: str  # put before it when it continues a chunk: "\n\n" between blocks
    block: int  # index of the block it came from
    sentence: bool = False  # a sentence of a split paragraph: eligible for overlap
    # A table row's header (and separator), or a tree line's fence and the steps above it:
    # repeated when a chunk starts here.
    header: str = ""


def _pack(
    blocks: list[_Block], budget: int, overlap_sentences: int, count: _CachedCounter
) -> list[str]:
    """Chunk texts for the blocks of one section, each at most `budget` tokens."""
    atoms: list[_Atom] = []
    for number, block in enumerate(blocks):
        if count(block.text) <= budget:
            atoms.append(_Atom(block.text, "\n\n", number))
        else:
            atoms.extend(_split_block(block, number, budget, count))

    chunks: list[str] = []
    current: list[_Atom] = []
    current_tokens = 0
    for atom in atoms:
        atom_tokens = count(atom.text) + (count(atom.header) if _opens_table(current, atom) else 0)
        if current and current_tokens + atom_tokens > budget:
            # A line announcing what follows ("**Women:**", "Any of the following:") goes with
            # it: a chunk ending on it would show the list's label without the list, and the
            # next the list without the label.
            moved = (
                [current.pop()]
                if len(current) > 1
                and _announces(current[-1])
                and count(current[-1].text) + count(atom.text) + count(atom.header) <= budget
                else []
            )
            chunks.append(_compose(current, count))
            carried = moved or _overlap(current, atom, overlap_sentences)
            carried_tokens = sum(count(sentence.text) for sentence in carried)
            # Overlap is dropped, oldest first, when it would leave no room for the new atom.
            while carried and carried_tokens + atom_tokens > budget:
                carried_tokens -= count(carried.pop(0).text)
            current, current_tokens = carried, carried_tokens
            atom_tokens = count(atom.text) + (
                count(atom.header) if _opens_table(current, atom) else 0
            )
        current.append(atom)
        current_tokens += atom_tokens
    if current:
        chunks.append(_compose(current, count))
    return [chunk for chunk in chunks if chunk.strip()]


def _announces(atom: _Atom) -> bool:
    """Whether `atom` is a one-line label or intro ending in a colon ("**Women:**"), not a
    table row or a decision tree's step (those repeat their header where a chunk opens)."""
    text = atom.text.replace("*", "").strip()
    return not atom.header and "\n" not in text and text.endswith(":")


def _opens_table(chunk: list[_Atom], row: _Atom) -> bool:
    """Whether `row` is the first row of its table (or line of its tree) in `chunk`, so its
    header goes before it."""
    return bool(row.header) and (not chunk or chunk[-1].block != row.block)


def _overlap(chunk: list[_Atom], following: _Atom, overlap_sentences: int) -> list[_Atom]:
    """The last `overlap_sentences` sentences of `chunk` when `following` continues the same
    paragraph, to be repeated before it."""
    if overlap_sentences <= 0 or not following.sentence:
        return []
    tail: list[_Atom] = []
    for atom in reversed(chunk):
        if not atom.sentence or atom.block != following.block or len(tail) == overlap_sentences:
            break
        tail.insert(0, atom)
    return tail


def _compose(atoms: list[_Atom], count: _CachedCounter) -> str:
    """The text of a chunk: atoms joined by their joiners; a table's first row in the chunk
    brings the table's header."""
    parts: list[str] = []
    joiners: list[str] = []
    for index, atom in enumerate(atoms):
        if index:
            joiners.append(atom.joiner)
        if _opens_table(atoms[:index], atom):
            parts.append(atom.header)
            joiners.append("\n")
        parts.append(atom.text)
    return count.join(parts, joiners)


def _split_block(block: _Block, number: int, budget: int, count: _CachedCounter) -> list[_Atom]:
    """Atoms of a block over budget, each at most `budget` tokens (a table row with its header)."""
    if block.kind == "table":
        rows = block.text.split("\n")
        if len(rows) > 2 and _TABLE_SEPARATOR.match(rows[1]):
            header = "\n".join(rows[:2])
            row_budget = budget - count(header)
            if row_budget >= budget // 3:
                atoms: list[_Atom] = []
                for index, row in enumerate(rows[2:]):
                    joiner = "\n\n" if index == 0 else "\n"
                    row_atoms = _split_line(row, joiner, number, row_budget, count)
                    atoms.extend(_with_header(atom, header) for atom in row_atoms)
                return atoms
        # No header, or one so large that repeating it would crowd out the rows.
        return _split_lines(rows, number, budget, count)
    if block.kind == "list":
        atoms = []
        for index, item in enumerate(_list_items(block.text)):
            joiner = "\n\n" if index == 0 else "\n"
            if count(item) <= budget:
                atoms.append(_Atom(item, joiner, number))
            else:
                item_atoms = _split_lines(item.split("\n"), number, budget, count)
                atoms.append(_with_joiner(item_atoms[0], joiner))
                atoms.extend(item_atoms[1:])
        return atoms
    if block.kind == "code":
        lines = block.text.split("\n")
        atoms = []
        for index, line in enumerate(lines):
            above = _tree_context(lines, index)
            room = budget - count(above)
            if room < budget // 3:
                above, room = "", budget  # a tree too deep to repeat its steps
            joiner = "\n\n" if index == 0 else "\n"
            line_atoms = _split_line(line, joiner, number, room, count)
            atoms.extend(_with_header(atom, above) for atom in line_atoms)
        return atoms
    return _split_sentences(block.text, "\n\n", number, budget, count)


def _tree_context(lines: list[str], index: int) -> str:
    """What a chunk opening at lines[index] of a fenced decision tree repeats so its paths
    still read from the root ("Patient with ... ICH -> VKA (warfarin)? -> Check INR -> INR
    1.3-1.9:" above "Consider 4F-PCC 10-20 IU/kg"): the fence, then each line above it that
    is less deep than the lines below it, back to the tree's root (a blank line ends a tree)."""
    fence = lines[0] if _FENCE.match(lines[0]) else ""
    depth, text = tree_step(lines[index])
    if index == 0 or not text or _FENCE.match(lines[index]):
        return ""
    above: list[str] = []
    for line in reversed(lines[1 if fence else 0 : index]):
        step_depth, step = tree_step(line)
        if line.strip() and not step:
            continue  # connectors only ("  |")
        if not step:
            break
        if step_depth < depth:
            above.insert(0, line)
            depth = step_depth
    return "\n".join([fence, *above] if fence else above)


def _with_header(atom: _Atom, header: str) -> _Atom:
    return _Atom(atom.text, atom.joiner, atom.block, atom.sentence, header)


def _with_joiner(atom: _Atom, joiner: str) -> _Atom:
    return _Atom(atom.text, joiner, atom.block, atom.sentence, atom.header)


def _split_lines(lines: list[str], number: int, budget: int, count: _CachedCounter) -> list[_Atom]:
    atoms: list[_Atom] = []
    for index, line in enumerate(lines):
        atoms.extend(_split_line(line, "\n\n" if index == 0 else "\n", number, budget, count))
    return atoms


def _split_line(
    line: str, joiner: str, number: int, budget: int, count: _CachedCounter
) -> list[_Atom]:
    if count(line) <= budget:
        return [_Atom(line, joiner, number)]
    return _split_sentences(line, joiner, number, budget, count)


def _split_sentences(
    text: str, joiner: str, number: int, budget: int, count: _CachedCounter
) -> list[_Atom]:
    """Sentence atoms of `text`; a sentence over budget alone becomes runs of whole words."""
    atoms: list[_Atom] = []
    for sentence in split_prose_sentences(text):
        sentence_joiner = joiner if not atoms else " "
        if count(sentence) <= budget:
            atoms.append(_Atom(sentence, sentence_joiner, number, sentence=True))
            continue
        for index, words in enumerate(_split_words(sentence, budget, count)):
            atoms.append(_Atom(words, sentence_joiner if index == 0 else " ", number))
    return atoms


def _list_items(list_text: str) -> list[str]:
    """Top-level items of a list block, each with its nested lines."""
    lines = list_text.split("\n")
    indents = [len(m.group(1)) for line in lines if (m := _LIST_ITEM.match(line))]
    top_indent = min(indents) if indents else 0
    items: list[list[str]] = []
    for line in lines:
        match = _LIST_ITEM.match(line)
        if (match and len(match.group(1)) <= top_indent) or not items:
            items.append([line])
        else:
            items[-1].append(line)
    return ["\n".join(item) for item in items]


def _split_words(sentence: str, budget: int, count: _CachedCounter) -> list[str]:
    """A sentence longer than the budget, cut between words into runs of at most `budget`."""
    pieces: list[str] = []
    current: list[str] = []
    current_tokens = 0
    for word in sentence.split():
        word_tokens = count(word)
        if current and current_tokens + word_tokens > budget:
            pieces.append(count.join(current, [" "] * (len(current) - 1)))
            current, current_tokens = [], 0
        if word_tokens > budget:  # one absurd "word" (a URL, a base64 blob): cut by characters
            pieces.extend(_split_characters(word, budget, count))
            continue
        current.append(word)
        current_tokens += word_tokens
    if current:
        pieces.append(count.join(current, [" "] * (len(current) - 1)))
    return pieces


def _split_characters(word: str, budget: int, count: _CachedCounter) -> list[str]:
    pieces: list[str] = []
    start = 0
    while start < len(word):
        low, high = start + 1, len(word)
        while low < high:  # longest prefix within budget, by bisection
            middle = (low + high + 1) // 2
            if count(word[start:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        pieces.append(word[start:low])
        start = low
    return pieces
