"""Evaluation on the 423 meta-test classes: accuracy by instance, the paper's table.

The evaluator drives any `EpisodeRunner`: a PyTorch learner (edgemeta/evaluation/torch_runner.py)
or an exported one run by the runtime (edgemeta/evaluation/runtime_runner.py). It reads predicted
labels and novelty probabilities only, so nothing here depends on which of them ran the episodes,
and nothing here needs torch.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from edgemeta.data.episodes import EpisodeSampler, Episodes

# Santoro et al. 2016, Table 1, Omniglot 5-way, MANN (LRUA): accuracy (%) at instance 1,2,3,4,5,10.
PAPER_INSTANCES = (1, 2, 3, 4, 5, 10)
PAPER_MANN = (36.4, 82.8, 91.0, 92.6, 94.9, 98.1)
PAPER_LSTM = (24.4, 49.5, 55.3, 61.0, 63.6, 62.5)


class EpisodeRunner(Protocol):
    """A learner the evaluator can drive: its label space, its input size, and whole episodes."""

    num_classes: int  # C: labels are in [0, C)
    image_size: int  # S: images are (S, S)

    def run(self, episodes: Episodes) -> tuple[np.ndarray, np.ndarray | None]:
        """From a fresh state, step t shows image t with label t-1: -> the label predicted at each step
        (B, T) int, and the probability that each step shows a class not seen yet (B, T) or None when
        the learner has no novelty head."""
        ...


def accuracy_by_instance(
    runner: EpisodeRunner,
    images: np.ndarray,
    ways: int = 5,
    instances: int = 10,
    episodes: int = 1000,
    seed: int = 0,
    batch: int = 100,
    progress: bool = False,
) -> dict:
    """Run `episodes` fresh episodes; accuracy (and novelty stats) indexed by instance 1..instances."""
    from tqdm import tqdm

    sampler = EpisodeSampler(images, runner.num_classes, ways, instances=instances)
    rng = np.random.default_rng(seed)
    correct = np.zeros(instances)
    counts = np.zeros(instances)
    nov_first, nov_later = [], []
    done = 0
    with tqdm(total=episodes, desc="evaluating", unit="ep", disable=not progress, leave=False) as bar:
        while done < episodes:
            n = min(batch, episodes - done)
            ep = sampler.sample(n, rng)
            predicted, novelty = runner.run(ep)
            inst = ep.instance - 1
            np.add.at(correct, inst, predicted == ep.labels)
            np.add.at(counts, inst, 1)
            if novelty is not None:
                nov_first.append(novelty[inst == 0])
                nov_later.append(novelty[inst > 0])
            done += n
            bar.update(n)
    acc = correct / np.maximum(counts, 1)
    result = {
        "ways": ways,
        "instances": instances,
        "episodes": episodes,
        "seed": seed,
        "accuracy": [round(float(a) * 100, 2) for a in acc],  # percent, index 0 = 1st instance
    }
    if nov_first:
        first, later = np.concatenate(nov_first), np.concatenate(nov_later)
        result["novelty"] = {
            "first_instance_mean": round(float(first.mean()), 4),
            "later_instances_mean": round(float(later.mean()), 4),
            "accuracy_at_0.5": round(float(((first > 0.5).sum() + (later <= 0.5).sum()) / (len(first) + len(later))) * 100, 2),
        }
    return result


def paper_table(result: dict) -> str:
    """The paper's table with our row beside the MANN row."""
    acc = result["accuracy"]
    cols = [i for i in PAPER_INSTANCES if i <= len(acc)]
    head = "instance        " + "".join(f"{_ord(i):>8}" for i in cols)
    ours = "edgemeta (ours) " + "".join(f"{acc[i - 1]:>8.1f}" for i in cols)
    paper = "MANN (paper)    " + "".join(f"{PAPER_MANN[PAPER_INSTANCES.index(i)]:>8.1f}" for i in cols)
    lines = [f"{result['ways']}-way, {result['episodes']} episodes of meta-test classes, accuracy (%)", head, paper, ours]
    if "novelty" in result:
        n = result["novelty"]
        lines.append(
            f"novelty: mean p(new) on 1st instances {n['first_instance_mean']:.3f}, on later {n['later_instances_mean']:.3f}; "
            f"right at 0.5: {n['accuracy_at_0.5']:.1f}%"
        )
    return "\n".join(lines)


def _ord(i: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(i, f"{i}th")
