"""The exported objects learner, fp32 against int8: 5-way accuracy by instance on held-out icon classes and on the
never-trained letters (RGB camera views, the same episodes for both files), and the step latency at batch 1 on
one CPU thread.

    python benchmarks/objects_export.py --export exports/objects --icons ~/.cache/edgemeta/icon-themes

EXPORT is `edgemeta export runs/objects --out EXPORT --int8` (docs/objects.md). Runs on ONNX Runtime directly,
episode by episode with the state carried, as export/parity.py drives a step.
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

WAYS, SHOWS, NUM_CLASSES, SIZE = 5, 4, 10, 96


def episodes(classes: dict[str, list[np.ndarray]], count: int, seed: int, mask_only: bool):
    """(count, T, 3, S, S) RGB views, labels (count, T), show index (count, T); each show another instance."""
    from edgemeta.data.camera_augment import camera_view, random_ink

    rng = np.random.default_rng(seed)
    names = sorted(classes)
    t = WAYS * SHOWS
    x = np.empty((count, t, 3, SIZE, SIZE), np.float32)
    labels = np.empty((count, t), np.int64)
    shows = np.empty((count, t), np.int64)
    for b in range(count):
        chosen = rng.choice(len(names), WAYS, replace=False)
        label_of = rng.choice(NUM_CLASSES, WAYS, replace=False)
        order = rng.permutation(np.repeat(np.arange(WAYS), SHOWS))
        seen = np.zeros(WAYS, np.int64)
        insts = [rng.permutation(len(classes[names[c]])) for c in chosen]
        for i, k in enumerate(order):
            pics = classes[names[chosen[k]]]
            pic = pics[insts[k][seen[k] % len(pics)]]
            view = camera_view(pic, rng, SIZE, random_ink(rng) if mask_only else None)
            x[b, i] = view.transpose(2, 0, 1) / np.float32(255)
            labels[b, i], shows[b, i] = label_of[k], seen[k]
            seen[k] += 1
    return x, labels, shows


def run(path: Path, x, labels) -> tuple[np.ndarray, float]:
    """Predictions (B, T) over whole episodes with the state carried, and the median step time in ms."""
    from edgemeta.export import parity as P

    step = P.onnxruntime_step(path)
    import onnx, json  # noqa: E401

    meta = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["edgemeta"])
    shapes = {s["name"]: tuple(s["shape"]) for s in meta["state"]}
    preds = np.empty_like(labels)
    times = []
    for b in range(len(x)):
        state = {n: np.zeros((1, *s), np.float32) for n, s in shapes.items()}
        prev = np.zeros((1, NUM_CLASSES), np.float32)
        for t in range(x.shape[1]):
            start = time.perf_counter()
            out = step({"image": x[b, t : t + 1], "prev_label": prev, **state})
            times.append(time.perf_counter() - start)
            preds[b, t] = int(out["logits"].argmax())
            state = {n: out[f"{n}_out"] for n in shapes}
            prev = np.zeros((1, NUM_CLASSES), np.float32)
            prev[0, labels[b, t]] = 1
    return preds, 1000 * float(np.median(times))


@click.command()
@click.option("--export", "export_dir", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--icons", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--episodes", "count", default=100, show_default=True)
@click.option("--seed", default=1, show_default=True)
def main(export_dir, icons, count, seed):
    from edgemeta.data.object_domains import held_out, icon_classes, letter_classes

    export_dir = Path(export_dir)
    domains = {"icons (held-out classes)": ({n: v for n, v in icon_classes(icons).items() if held_out(n)}, False),
               "letters (never trained)": (letter_classes(), True)}
    for domain, (classes, mask_only) in domains.items():
        x, labels, shows = episodes(classes, count, seed, mask_only)
        for name in ("learner.onnx", "learner.int8.onnx"):
            preds, ms = run(export_dir / name, x, labels)
            acc = " ".join(f"{(preds == labels)[shows == s].mean():.1%}" for s in range(SHOWS))
            print(f"{domain:26s} {name:18s} 5-way by instance {acc}   step {ms:.2f} ms (batch 1, 1 thread)", flush=True)


if __name__ == "__main__":
    main()
