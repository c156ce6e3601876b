"""The README's picture: accuracy by instance of the shipped learners against the paper's MANN.

    python scripts/plot_shipped_accuracy.py     # writes docs/images/accuracy_by_instance.png

Reads the evaluation that scripts/ship_learner.py stores beside each shipped learner
(runtime/learners/NAME.json), so the picture always shows what ships.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgemeta.evaluation.plot import plot_curves

REPO = Path(__file__).resolve().parents[1]
LEARNERS = {"default": "edgemeta default (CNN + memory, novelty head)", "mann": "edgemeta mann (the paper's setup)"}
OUT = REPO / "docs" / "images" / "accuracy_by_instance.png"


def main() -> None:
    results = {label: json.loads((REPO / "runtime" / "learners" / f"{name}.json").read_text())["eval"]
               for name, label in LEARNERS.items()}
    episodes = "/".join(map(str, sorted({r["episodes"] for r in results.values()})))
    title = f"Omniglot 5-way, 423 held-out classes ({episodes} episodes)"
    plot_curves({label: r["accuracy"] for label, r in results.items()}, title, OUT)
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
