"""Accuracy-by-instance plot, ours against the paper's MANN curve."""
from __future__ import annotations

from pathlib import Path

from edgemeta.evaluation.accuracy import PAPER_INSTANCES, PAPER_MANN
from edgemeta.runtime.atomic import atomic_write_with


def plot_accuracy(result: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    acc = result["accuracy"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(acc) + 1), acc, "o-", label="edgemeta")
    ax.plot(PAPER_INSTANCES, PAPER_MANN, "s--", label="MANN (Santoro et al. 2016)")
    ax.set_xlabel("instance")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Omniglot {result['ways']}-way, meta-test classes ({result['episodes']} episodes)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
