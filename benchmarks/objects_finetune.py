"""Issue 17's open question: the objects learner's encoder frozen, or fine-tuned gently? Both runs in one script,
on the same camera views, the same training episodes and the same test episodes.

    python benchmarks/objects_finetune.py --icons ~/.cache/edgemeta/icon-themes --work runs/objects-finetune

Fine-tuning the whole backbone does not fit a 2-core CPU, so the gentle fine-tune trains the backbone's tail:
its last MBConv block (192 -> 320) and the 1x1 head conv (320 -> 1280) with their batch-norm scales and shifts
(running statistics kept: `eval()` mode), at `--tail-lr-scale` times the head's learning rate, together with
the head. What enters that tail, [192, 3, 3] per 96x96 view, is cached once for the views of
`edgemeta/data/feature_cache.py` (same seed, same views; resumable per block of classes). The frozen run is
the same loop with the tail's learning rate 0, i.e. `edgemeta/training/objects_head.py` on these views.
Each run reports the head and a cosine nearest neighbour on its own features (the frozen run's cosine NN is
the shipped baseline); `--check-features` compares the frozen tail's output with the shipped feature cache.
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def backbone_split():
    """(the backbone up to the last block as an encode function, the tail as an nn.Module)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from edgemeta.models.efficientnet_lite import load_pretrained

    model = load_pretrained().eval()

    def to_tail_input(image: torch.Tensor) -> torch.Tensor:
        x = (image * 255.0 - 127.0) / 128.0  # the Lite normalisation, as in EfficientNetLite0.features
        x = F.relu6(model._bn0(model._conv_stem(x)))
        for block in model._blocks[:-1]:
            x = block(x)
        return x

    class Tail(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = copy.deepcopy(model._blocks[-1])
            self.conv_head = copy.deepcopy(model._conv_head)
            self.bn = copy.deepcopy(model._bn1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu6(self.bn(self.conv_head(self.block(x)))).mean(dim=(2, 3))

    return to_tail_input, Tail().eval()


def tail_features(tail, inputs: np.ndarray, batch: int = 2048) -> np.ndarray:
    """inputs [..., 192, 3, 3] -> pooled features [..., 1280] through `tail`, no gradient."""
    import torch

    flat = inputs.reshape(-1, *inputs.shape[-3:])
    with torch.no_grad():
        out = np.concatenate([tail(torch.from_numpy(flat[i:i + batch])).numpy() for i in range(0, len(flat), batch)])
    return out.reshape(*inputs.shape[:-3], -1)


def run(data, train, test, tail_lr_scale: float, steps: int, batch: int, lr: float, episodes: int, seed: int):
    """Meta-train head (+ tail when tail_lr_scale > 0) as objects_head.main does; evaluate on every domain."""
    import torch
    from torch import nn

    from edgemeta.training.objects_head import (EVAL_DOMAINS, NUM_CLASSES, TRAIN_DOMAINS, build_head, evaluate,
                                                prev_onehot, sample_episodes)

    _, tail = backbone_split()
    torch.manual_seed(seed)
    frozen = {d: tail_features(tail, data[d][0]) for d in EVAL_DOMAINS}
    pool = np.concatenate([frozen[d][train[d]].reshape(-1, frozen[d].shape[-1]) for d in TRAIN_DOMAINS])
    learner = build_head(np.random.default_rng(seed).permutation(pool))
    projection = learner.encoder
    if tail_lr_scale > 0:
        learner.encoder = nn.Sequential(tail, *projection)
        learner.encoder.out_features = projection.out_features
    groups = [{"params": [p for n, p in learner.named_parameters() if not n.startswith("encoder.0.")], "lr": lr}]
    for p in tail.parameters():
        p.requires_grad_(tail_lr_scale > 0)
    if tail_lr_scale > 0:
        groups.append({"params": list(tail.parameters()), "lr": lr * tail_lr_scale})
    opt = torch.optim.Adam(groups)
    # Episodes are drawn over view indices with objects_head.sample_episodes, so both runs (and the frozen
    # script) consume the RNG identically and see the same episodes.
    index = {d: np.arange(np.prod(data[d][0].shape[:3]), dtype=np.float32).reshape(*data[d][0].shape[:3], 1)
             for d in EVAL_DOMAINS}
    # Frozen: the tail's features are fixed, so the loop feeds them and skips the tail.
    inputs = data if tail_lr_scale > 0 else {d: (frozen[d],) for d in EVAL_DOMAINS}
    flat = {d: inputs[d][0].reshape(-1, *inputs[d][0].shape[3:]) for d in EVAL_DOMAINS}
    rng = np.random.default_rng(seed)
    start = time.time()
    for step in range(1, steps + 1):
        d = TRAIN_DOMAINS[step % len(TRAIN_DOMAINS)]
        idx, labels, shows = sample_episodes(index[d], train[d], rng, batch)
        x = torch.from_numpy(flat[d][idx[..., 0].astype(np.int64)])
        logits, novelty, _ = learner.unroll(x, torch.from_numpy(prev_onehot(labels)))
        loss = nn.functional.cross_entropy(logits.reshape(-1, NUM_CLASSES), torch.from_numpy(labels).reshape(-1))
        loss = loss + nn.functional.binary_cross_entropy_with_logits(
            novelty.reshape(-1), torch.from_numpy((shows == 0).astype(np.float32)).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"  step {step}/{steps} loss {loss.item():.3f} {time.time() - start:.0f} s", file=sys.stderr,
                  flush=True)
    tuned = {d: tail_features(tail, data[d][0]) for d in EVAL_DOMAINS}
    learner.encoder = projection  # evaluate() feeds features: the tail is applied above
    moved = {d: float(np.abs(tuned[d] - frozen[d]).mean() / np.abs(frozen[d]).mean()) for d in EVAL_DOMAINS}
    return {"tail_lr_scale": tail_lr_scale, "train_seconds": round(time.time() - start),
            "feature_change": moved,
            "eval": {d: evaluate(learner, tuned[d], test[d], episodes, seed + 1) for d in EVAL_DOMAINS}}


@click.command()
@click.option("--icons", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--omniglot", "omniglot_data", default=None, help="Omniglot folder (default: found as everywhere)")
@click.option("--work", type=click.Path(file_okay=False), required=True,
              help="folder for the tail-input cache and report.json")
@click.option("--steps", default=400, show_default=True)
@click.option("--batch", default=32, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--tail-lr-scale", default=0.1, show_default=True, help="the tail's lr as a fraction of the head's")
@click.option("--eval-episodes", default=300, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--check-features", type=click.Path(exists=True, file_okay=False), default=None,
              help="the shipped feature cache (runs/objects-features): report how far the frozen tail is from it")
def main(icons, omniglot_data, work, steps, batch, lr, tail_lr_scale, eval_episodes, seed, check_features):
    import torch

    from edgemeta.data.feature_cache import cache_all, load_cache
    from edgemeta.runtime.atomic import atomic_write_text
    from edgemeta.training.objects_head import EVAL_DOMAINS, TRAIN_DOMAINS

    torch.set_num_threads(2)
    work = Path(work)
    to_tail_input, _ = backbone_split()
    cache_all(icons, omniglot_data, work / "tail-inputs", seed=seed, encode=to_tail_input)
    data = {d: load_cache(work / "tail-inputs", d) for d in EVAL_DOMAINS}
    train = {d: np.flatnonzero(~data[d][2]) for d in TRAIN_DOMAINS}
    test = {d: np.flatnonzero(data[d][2]) for d in EVAL_DOMAINS}
    test["letters"] = np.arange(len(data["letters"][1]))  # never trained: every class is a test class
    report = {"steps": steps, "batch": batch, "lr": lr, "eval_episodes": eval_episodes, "seed": seed}
    if check_features:
        _, tail = backbone_split()
        report["max_abs_diff_vs_feature_cache"] = {
            d: float(np.abs(tail_features(tail, data[d][0]) - load_cache(check_features, d)[0]).max())
            for d in EVAL_DOMAINS}
    for name, scale in (("frozen", 0.0), ("fine-tuned tail", tail_lr_scale)):
        print(f"{name}: {steps} steps", file=sys.stderr, flush=True)
        report[name] = run(data, train, test, scale, steps, batch, lr, eval_episodes, seed)
        atomic_write_text(work / "report.json", json.dumps(report, indent=1))
    print("| domain | frozen: head | frozen: cosine NN | fine-tuned tail: head | fine-tuned tail: cosine NN |")
    print("|---|---|---|---|---|")
    for d in EVAL_DOMAINS:
        cells = [" / ".join(f"{100 * a:.1f}" for a in report[n]["eval"][d][rule])
                 for n in ("frozen", "fine-tuned tail") for rule in ("head", "cosine_nn")]
        print(f"| {d} | " + " | ".join(cells) + " |")
    print(f"training: frozen {report['frozen']['train_seconds']} s, fine-tuned tail "
          f"{report['fine-tuned tail']['train_seconds']} s")


if __name__ == "__main__":
    main()
