"""PubMed baseline files (`*.xml.gz`, about 30,000 articles each), read as a stream.

The NLM publishes PubMed as ~1,200 gzipped XML files. `read_baseline` decompresses and parses
one incrementally (iterparse), turning each <PubmedArticle> into a Document as soon as it
closes and then freeing it, so memory stays at one article whatever the file's size. Articles
become Documents exactly as rag.ingest.loaders reads PubMed XML (same ids `pmid:<PMID>`, title,
abstract sections, journal, year, DOI); articles without an abstract (about a third of PubMed)
are skipped silently, where the loader of a single XML file reports each one.

`input_files` lists what an ingest reads, `.xml.gz` baseline files included, so both ingest
engines see the same files.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from xml.etree import ElementTree

from rag.ingest.loaders import SUPPORTED_SUFFIXES, IngestProblem, display_path, load_file
from rag.ingest.loaders.common import Unusable
from rag.ingest.loaders.files import resolved, walk_folder
from rag.ingest.loaders.pubmed import pubmed_document, strip_namespaces
from rag.types import Document

BASELINE_SUFFIX = ".xml.gz"


def is_baseline(path: Path) -> bool:
    return path.name.lower().endswith(BASELINE_SUFFIX)


def read_baseline(path: Path) -> Iterator[Document | IngestProblem]:
    """The Documents of one PubMed baseline file, streamed; an IngestProblem for an article
    that cannot be used and one when the file is damaged (the articles before the damage are
    kept). Articles without an abstract are skipped."""
    shown = display_path(path)
    number = 0
    try:
        with gzip.open(path, "rb") as stream:
            events = ElementTree.iterparse(stream, events=("start", "end"))
            root = None
            for event, element in events:
                if root is None:
                    root = element
                if event != "end" or element.tag != "PubmedArticle":
                    continue
                number += 1
                strip_namespaces(element)
                if element.find("MedlineCitation/Article/Abstract/AbstractText") is not None:
                    try:
                        yield pubmed_document(element, shown, number)
                    except Unusable as problem:
                        yield IngestProblem(shown, problem.message, problem.line)
                # Free the article (and the root's reference to it): memory stays flat.
                element.clear()
                root.clear()
    except (OSError, EOFError, zlib.error) as error:
        yield IngestProblem(shown, f"cannot read the gzip file after {number} articles ({error})")
    except ElementTree.ParseError as error:
        line = error.position[0] if error.position else None
        yield IngestProblem(shown, f"XML does not parse after {number} articles ({error})", line)
    if number == 0:
        yield IngestProblem(shown, "holds no PubmedArticle")


def read_baselines(paths: Sequence[Path]) -> Iterator[Document | IngestProblem]:
    """The documents of the baseline files among `paths` and inside its folders."""
    for path in paths:
        if path.is_dir():
            for file_path in baseline_files(path):
                yield from read_baseline(file_path)
        elif is_baseline(path) and path.exists():
            yield from read_baseline(path)


def read_input_file(path: Path) -> Iterator[Document | IngestProblem]:
    """The documents of one input file: a baseline file streamed, anything else through
    rag.ingest.loaders."""
    return read_baseline(path) if is_baseline(path) else load_file(path)


def input_files(
    paths: Sequence[Path], *, exclude: Collection[Path] = ()
) -> Iterator[Path | IngestProblem]:
    """The files an ingest of `paths` reads, in a stable order, with a problem for each path
    that is missing or of an unsupported type (as rag.ingest.loaders.load_paths reports them).
    Folders give their supported files, then their `.xml.gz` baseline files, each sorted."""
    excluded = {resolved(Path(path)) for path in exclude}
    for given in paths:
        path = Path(given)
        if not path.exists():
            yield IngestProblem(str(given), "no such file or folder")
        elif resolved(path) in excluded:
            continue
        elif path.is_dir():
            yield from walk_folder(path, excluded)
            yield from baseline_files(path, excluded)
        elif is_baseline(path) or path.suffix.lower() in SUPPORTED_SUFFIXES:
            yield path
        else:
            supported = ", ".join(sorted(SUPPORTED_SUFFIXES | {BASELINE_SUFFIX}))
            kind = f"'{path.suffix}'" if path.suffix else "without an extension"
            yield IngestProblem(
                display_path(path), f"unsupported file type {kind} (supported: {supported})"
            )


def baseline_files(folder: Path, excluded: Collection[Path] = ()) -> list[Path]:
    """The `.xml.gz` files under `folder`, sorted, hidden entries skipped."""
    found = []
    for path in sorted(folder.rglob(f"*{BASELINE_SUFFIX}")):
        relative = path.relative_to(folder).parts
        if any(part.startswith(".") for part in relative) or resolved(path) in excluded:
            continue
        found.append(path)
    return found
