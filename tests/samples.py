"""Documents as clinicians bring them, written here for the loader tests and benchmarks.

PDFs are generated with reportlab (multi-page, with or without bookmarks, a ruled dose table,
a table running over a page break, running footers); HTML pages carry the clutter of saved
web pages (cookie banner, navigation, an aside of related links, a footer). Each sample lists
the passages it holds and the clutter it must not yield, so a benchmark can score a loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The dose table the issue quotes: what a clinician must be able to read with its header.
DOSE_TABLE = [
    ["CrCl (mL/min)", "Vortaxin dose"],
    [">50", "20 mg daily"],
    ["15-50", "15 mg daily"],
    ["<15", "Avoid"],
]

# (heading level, heading, paragraphs) of the Vortaxin guideline PDF; level 1 is a section.
VORTAXIN_SECTIONS = [
    (1, "1 Scope", [
        (
            "This guideline covers adults with chronic kidney disease who take vortaxin for "
            "atrial fibrillation. It does not cover children or people on dialysis."
        ),
    ]),
    (1, "2 Dosing", [
        (
            "Dose vortaxin by creatinine clearance, estimated with the Cockcroft-Gault equation "
            "from actual body weight. Do not use the eGFR reported by the laboratory to dose it."
        ),
    ]),
    (2, "2.1 Renal impairment", [
        "Reduce the dose as kidney function declines, following the table below.",
        "TABLE",
        "Recheck creatinine clearance every three months while the dose is being adjusted.",
    ]),
    (1, "3 Monitoring", [
        "Measure serum potassium and creatinine before starting vortaxin.",
        "LIST",
        "Stop vortaxin and seek specialist advice if potassium rises above 6.0 mmol/L.",
    ]),
    (1, "4 Adverse effects", [
        (
            "Hyperkalaemia is the most common serious adverse effect of vortaxin. Bleeding is "
            "less common than with warfarin but rises with age."
        ),
    ]),
]
MONITORING_STEPS = [
    "Check potassium one week after starting.",
    "Check creatinine one month after starting.",
    "Check both every three months thereafter.",
]


def write_guideline_pdf(path: Path, *, bookmarks: bool = True) -> Path:
    """The Vortaxin guideline: a title, four numbered sections over three pages, the dose
    table, a numbered list, and "Vortaxin guideline, page N" at the foot of every page.
    With `bookmarks`, every heading is in the PDF outline."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import (
        ListFlowable,
        ListItem,
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()

    class Guideline(SimpleDocTemplate):
        def afterFlowable(self, flowable: object) -> None:
            level = getattr(flowable, "outline_level", None)
            if bookmarks and level is not None:
                key = f"heading-{id(flowable)}"
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level)

    def footer(canvas: object, document: object) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(72, 30, f"Vortaxin guideline, page {document.page}")
        canvas.restoreState()

    story: list[object] = [Paragraph("Vortaxin in chronic kidney disease", styles["Title"])]
    for level, heading, paragraphs in VORTAXIN_SECTIONS:
        if heading.startswith(("3", "4")):
            story.append(PageBreak())
        flowable = Paragraph(heading, styles["Heading1" if level == 1 else "Heading2"])
        flowable.outline_level = level - 1
        story.append(flowable)
        for text in paragraphs:
            if text == "TABLE":
                story.append(
                    Table(
                        DOSE_TABLE,
                        style=TableStyle(
                            [
                                ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                            ]
                        ),
                    )
                )
            elif text == "LIST":
                story.append(
                    ListFlowable(
                        [ListItem(Paragraph(step, styles["BodyText"])) for step in MONITORING_STEPS],
                        bulletType="1",
                        bulletFormat="%s.",
                    )
                )
            else:
                story.append(Paragraph(text, styles["BodyText"]))
    document = Guideline(
        str(path), pagesize=A4, title="Vortaxin in CKD", author="Renal Drug Society",
        creationDate=None,
    )
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return path


def write_long_table_pdf(path: Path, rows: int = 70) -> Path:
    """A one-table PDF whose ruled table of `rows` antibiotic doses runs over a page break,
    its header row repeated on the second page."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

    styles = getSampleStyleSheet()
    data = [["Weight (kg)", "Gentamicin dose", "Interval"]]
    data += [[str(20 + row), f"{(20 + row) * 7} mg", "24 h"] for row in range(rows)]
    story = [
        Paragraph("Gentamicin dosing by weight", styles["Title"]),
        Table(
            data,
            repeatRows=1,
            style=TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]),
        ),
    ]
    SimpleDocTemplate(str(path), pagesize=A4, title="Gentamicin dosing").build(story)
    return path


@dataclass(frozen=True)
class SavedPage:
    """A saved web page with what a loader should keep and what it should drop."""

    name: str
    html: str
    content: list[str]  # passages of the article, each expected in the text
    clutter: list[str]  # banner, menu, aside and footer text, none of it expected
    headings: list[str] = field(default_factory=list)  # Markdown heading lines expected
    ordered_steps: list[str] = field(default_factory=list)  # an <ol>'s items, in order
    table_rows: list[str] = field(default_factory=list)  # pipe rows expected, header first


SAVED_PAGES = [
    SavedPage(
        name="gout-article",
        html="""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Acute gout flare management | Example Health</title>
<meta name="citation_title" content="Acute gout flare management">
<meta name="citation_publisher" content="Example Health">
<meta name="citation_publication_date" content="2022-05-01">
<script>window.dataLayer = [];</script><style>.cookie { position: fixed }</style>
</head><body>
<div id="cookie-banner" class="cookie-consent" role="dialog">
<p>We use cookies to improve your experience on our site. By continuing to browse you accept
our use of cookies.</p><button>Accept all cookies</button><button>Manage preferences</button>
</div>
<header class="site-header"><a href="/">Example Health</a> <form><input name="q"></form></header>
<nav aria-label="Main"><ul><li><a href="/guidelines">Guidelines</a></li>
<li><a href="/news">News and updates</a></li><li><a href="/about">About us</a></li></ul></nav>
<main><article>
<h1>Acute gout flare management</h1>
<p class="byline">Reviewed by the rheumatology editorial board.</p>
<p>Treat an acute gout flare as early as possible, ideally within 24 hours of onset, because
early treatment shortens the attack and eases the pain sooner.</p>
<h2>First-line treatment</h2>
<p>Choose the drug by the patient's comorbidities, current medicines and preference.</p>
<ol>
<li>Start colchicine 500 micrograms two to four times daily until the pain settles.</li>
<li>Offer an NSAID with a proton pump inhibitor if colchicine is not tolerated.</li>
<li>Use oral prednisolone 30 mg daily for five days when both are contraindicated.</li>
</ol>
<h2>Dosing in renal impairment</h2>
<p>Colchicine accumulates when kidney function is poor; reduce the dose as follows.</p>
<table><thead><tr><th>eGFR (mL/min)</th><th>Colchicine dose</th></tr></thead><tbody>
<tr><td>&gt;50</td><td>500 micrograms up to four times daily</td></tr>
<tr><td>10-50</td><td>500 micrograms up to twice daily</td></tr>
<tr><td>&lt;10</td><td>Avoid colchicine</td></tr></tbody></table>
<p>Review the patient within a week and discuss urate-lowering therapy once the flare has
settled.</p>
</article>
<aside class="related"><h3>Related links</h3><ul>
<li><a href="/pseudogout">Pseudogout: what patients ask about crystal arthritis</a></li>
<li><a href="/allopurinol">Allopurinol hypersensitivity reactions explained</a></li>
<li><a href="/diet">Diet sheets for people with gout</a></li></ul></aside>
</main>
<footer><p>Copyright 2024 Example Health. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a></p></footer>
</body></html>""",
        content=[
            "Treat an acute gout flare as early as possible, ideally within 24 hours of onset",
            "Choose the drug by the patient's comorbidities, current medicines and preference.",
            "Start colchicine 500 micrograms two to four times daily until the pain settles.",
            "Use oral prednisolone 30 mg daily for five days when both are contraindicated.",
            "Colchicine accumulates when kidney function is poor",
            "Review the patient within a week and discuss urate-lowering therapy",
        ],
        clutter=[
            "We use cookies", "Accept all cookies", "Manage preferences", "News and updates",
            "About us", "Related links", "Pseudogout", "Allopurinol hypersensitivity",
            "Diet sheets", "Copyright 2024", "Privacy policy", "dataLayer",
        ],
        headings=[
            "# Acute gout flare management", "## First-line treatment",
            "## Dosing in renal impairment",
        ],
        ordered_steps=[
            "Start colchicine 500 micrograms two to four times daily until the pain settles.",
            "Offer an NSAID with a proton pump inhibitor if colchicine is not tolerated.",
            "Use oral prednisolone 30 mg daily for five days when both are contraindicated.",
        ],
        table_rows=[
            "| eGFR (mL/min) | Colchicine dose |",
            "| <10 | Avoid colchicine |",
        ],
    ),
    SavedPage(
        name="sepsis-divs",
        html="""<html><head><title>Sepsis: the first hour</title></head><body>
<div class="topbar"><a href="/">Home</a> <a href="/topics">Topics</a> <a href="/contact">Contact the team</a></div>
<div id="wrapper"><div class="content">
<h1>Sepsis: the first hour</h1>
<p>Recognise sepsis early: a patient with suspected infection and a NEWS2 score of 5 or more
needs an urgent senior review.</p>
<h2>Within one hour</h2>
<ol><li>Take blood cultures before giving antibiotics.</li>
<li>Give broad-spectrum intravenous antibiotics.</li>
<li>Measure serum lactate and repeat it if it is above 2 mmol/L.</li>
<li>Give 500 mL of crystalloid over 15 minutes if the patient is hypotensive.</li></ol>
<p>Record the time each step was completed; delays in antibiotics raise mortality.</p>
</div>
<div class="sidebar"><h3>Related links</h3><ul><li><a href="/news2">What is a NEWS2 score?</a></li>
<li><a href="/meningitis">Meningitis in adults</a></li></ul>
<div class="newsletter">Sign up for our monthly newsletter</div></div>
</div>
<div class="cc-window cc-banner" role="dialog" aria-label="cookieconsent">This website uses
cookies to ensure you get the best experience. <a href="/cookies">Learn more</a> <a>Got it!</a></div>
<div class="footer">Sepsis Trust 2023 - registered charity</div>
</body></html>""",
        content=[
            "a patient with suspected infection and a NEWS2 score of 5 or more",
            "Take blood cultures before giving antibiotics.",
            "Give 500 mL of crystalloid over 15 minutes if the patient is hypotensive.",
            "Record the time each step was completed",
        ],
        clutter=[
            "Contact the team", "Related links", "What is a NEWS2 score?", "Meningitis in adults",
            "monthly newsletter", "uses cookies", "Got it!", "registered charity",
        ],
        headings=["# Sepsis: the first hour", "## Within one hour"],
        ordered_steps=[
            "Take blood cultures before giving antibiotics.",
            "Give broad-spectrum intravenous antibiotics.",
            "Measure serum lactate and repeat it if it is above 2 mmol/L.",
            "Give 500 mL of crystalloid over 15 minutes if the patient is hypotensive.",
        ],
    ),
    SavedPage(
        name="asthma-leaflet",
        html="""<!doctype html><html><head><title>Asthma action plan</title>
<meta property="og:site_name" content="Breathe Clinic"></head><body>
<nav class="breadcrumbs"><a href="/">Home</a> &gt; <a href="/leaflets">Leaflets</a></nav>
<section class="gdpr-notice"><p>Your privacy matters: we and our partners store cookies.</p>
<a class="btn">I agree</a></section>
<main>
<h1>Asthma action plan</h1>
<p>Use your blue reliever inhaler when you are wheezy or short of breath.</p>
<h2>If your asthma gets worse</h2>
<ul><li>Take one puff of your reliever every 30 to 60 seconds, up to ten puffs.</li>
<li>Call 999 if you do not feel better after ten puffs.</li></ul>
<h2>Peak flow zones</h2>
<table><tr><th>Zone</th><th>Peak flow</th><th>Action</th></tr>
<tr><td>Green</td><td>above 80% of best</td><td>Keep taking your preventer</td></tr>
<tr><td>Amber</td><td>50-80% of best</td><td>Use your reliever and see your GP today</td></tr>
<tr><td>Red</td><td>below 50% of best</td><td>Call 999</td></tr></table>
</main>
<aside><h2>You may also like</h2><p><a href="/copd">Living with COPD</a></p>
<p><a href="/hayfever">Hay fever remedies</a></p></aside>
<footer>Breathe Clinic leaflets are reviewed every two years.</footer>
</body></html>""",
        content=[
            "Use your blue reliever inhaler when you are wheezy or short of breath.",
            "Take one puff of your reliever every 30 to 60 seconds, up to ten puffs.",
            "Call 999 if you do not feel better after ten puffs.",
        ],
        clutter=[
            "Leaflets", "Your privacy matters", "I agree", "You may also like", "Living with COPD",
            "Hay fever", "reviewed every two years",
        ],
        headings=["# Asthma action plan", "## If your asthma gets worse", "## Peak flow zones"],
        table_rows=[
            "| Zone | Peak flow | Action |",
            "| Amber | 50-80% of best | Use your reliever and see your GP today |",
        ],
    ),
    SavedPage(
        name="hypertension-plain",
        html="""<!doctype html><html><head><title>Hypertension</title>
<script>var tracking = "on";</script></head><body>
<nav><a href="/">Home</a> <a href="/az">Conditions A to Z</a></nav>
<header>Community practice notes</header>
<h1>Hypertension</h1>
<p>Measure blood pressure in <b>both</b> arms and repeat if the first reading is high.</p>
<h2>Drug choice</h2>
<ul><li>ACE inhibitor if under 55<ul><li>ramipril 2.5 mg daily</li></ul></li>
<li>Calcium channel blocker if 55 or older</li></ul>
<table><tr><th>Stage</th><th>Clinic BP</th></tr><tr><td>1</td><td>140/90 or higher</td></tr></table>
<footer>Last updated by the practice team</footer>
</body></html>""",
        content=[
            "Measure blood pressure in both arms and repeat if the first reading is high.",
            "ACE inhibitor if under 55",
            "ramipril 2.5 mg daily",
            "Calcium channel blocker if 55 or older",
        ],
        clutter=["Conditions A to Z", "Community practice notes", "Last updated", "tracking"],
        headings=["# Hypertension", "## Drug choice"],
        table_rows=["| Stage | Clinic BP |", "| 1 | 140/90 or higher |"],
    ),
]


def write_saved_pages(folder: Path) -> list[tuple[SavedPage, Path]]:
    """Each of SAVED_PAGES written as folder/<name>.html."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for page in SAVED_PAGES:
        path = folder / f"{page.name}.html"
        path.write_text(page.html, encoding="utf-8")
        written.append((page, path))
    return written
