"""The README's picture: accuracy by instance of the shipped learners against the paper's MANN.

    python scripts/plot_shipped_accuracy.py     # writes docs/images/accuracy_by_instance.png

Reads the evaluation that scripts/ship_learner.py stores beside each shipped learner
(runtime/learners/NAME.json), so the picture always shows what ships.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt

from edgemeta.evaluation.accuracy import PAPER_INSTANCES, PAPER_MANN
from edgemeta.runtime.atomic import atomic_write_with

REPO = Path(__file__).resolve().parents[1]
LEARNERS = {"default": "edgemeta default (CNN + memory, novelty head)", "mann": "edgemeta mann (the paper's setup)"}
OUT = REPO / "docs" / "images" / "accuracy_by_instance.png"


def main() -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    episodes = set()
    for name, label in LEARNERS.items():
        result = json.loads((REPO / "runtime" / "learners" / f"{name}.json").read_text())["eval"]
        episodes.add(result["episodes"])
        acc = result["accuracy"]
        ax.plot(range(1, len(acc) + 1), acc, "o-", label=label)
    ax.plot(PAPER_INSTANCES, PAPER_MANN, "s--", color="0.4", label="MANN, Santoro et al. 2016")
    ax.set_xlabel("instance of the class in the episode")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Omniglot 5-way, 423 held-out classes ({'/'.join(map(str, sorted(episodes)))} episodes)")
    ax.set_xticks(range(1, 11))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_with(OUT, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
