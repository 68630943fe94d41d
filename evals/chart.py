"""The answer-quality chart: an AnswerReport's main metrics as grouped bars, one bar per mode.

    evals/answers.py writes it beside its report (evals/results/answers-pubmedqa-heldout.png).

matplotlib is needed only here; `rag eval --answers` writes the rows and the Markdown report
without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag.errors import RagError
from rag.evaluate.report import METRICS, AnswerReport

# The metrics the chart compares, in table order.
CHART_METRICS = (
    "accuracy",
    "decision_parse_rate",
    "rouge_l",
    "token_f1",
    "citation_validity",
    "cited_sentences",
    "abstention_rate",
)


def write_answer_chart(report: AnswerReport, path: str | Path) -> Path:
    """A PNG of grouped bars at `path`: the main metrics of `report`, one bar per mode (n/a
    bars left out). Returns the path; RagError when matplotlib is missing."""
    path = Path(path)
    write_grouped_bar_chart(
        path,
        groups=[label for key, label in METRICS if key in CHART_METRICS],
        series={
            summary.mode: [summary.metrics.get(key) for key in CHART_METRICS]
            for summary in report.summaries
        },
        title=f"Answer quality, {Path(report.gold_path).name or 'gold set'}: "
        f"{report.questions} questions, {report.backend}",
    )
    return path


def write_grouped_bar_chart(
    path: Path, *, groups: Sequence[str], series: dict[str, Sequence[float | None]], title: str
) -> None:
    """Grouped bars (0-100%) with matplotlib's Agg backend: one group per metric, one bar per
    series; a None value gets no bar and an "n/a" label. RagError when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: render straight to the file
        import matplotlib.pyplot as plt
    except ImportError:
        raise RagError("the answer chart needs matplotlib: pip install 'rag[charts]'") from None

    width = 0.8 / max(1, len(series))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(groups)), 4.2), dpi=110)
    for position, (name, values) in enumerate(series.items()):
        offsets = [g + (position - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [0.0 if value is None else 100 * value for value in values]
        bars = axes.bar(offsets, heights, width, label=name)
        for bar, value in zip(bars, values):
            text = "n/a" if value is None else f"{100 * value:.0f}"
            axes.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    axes.set_ylim(0, 110)
    axes.set_ylabel("%")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
