"""Accuracy-by-instance plots: one or more learners against the paper's MANN curve."""
from __future__ import annotations

from pathlib import Path

from edgemeta.evaluation.accuracy import PAPER_INSTANCES, PAPER_MANN
from edgemeta.runtime.atomic import atomic_write_with


def plot_accuracy(result: dict, path: str | Path) -> None:
    """`edgemeta eval`'s eval.png: one evaluation result (eval.json) against the paper."""
    title = f"Omniglot {result['ways']}-way, meta-test classes ({result['episodes']} episodes)"
    plot_curves({"edgemeta": result["accuracy"]}, title, path)


def plot_curves(curves: dict[str, list[float]], title: str, path: str | Path) -> None:
    """Accuracy (%) by instance, one line per label, the paper's MANN dashed, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    longest = 0
    for label, acc in curves.items():
        ax.plot(range(1, len(acc) + 1), acc, "o-", label=label)
        longest = max(longest, len(acc))
    ax.plot(PAPER_INSTANCES, PAPER_MANN, "s--", color="0.4", label="MANN, Santoro et al. 2016")
    ax.set_xlabel("instance of the class in the episode")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.set_xticks(range(1, max(longest, max(PAPER_INSTANCES)) + 1))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
