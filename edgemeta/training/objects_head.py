"""Meta-train the objects learner's memory head on cached EfficientNet-Lite0 features, and evaluate it against a
cosine nearest neighbour on the same features, in the same run.

    python -m edgemeta.training.objects_head --features runs/objects-features --out runs/objects-head

The head is the `default` learner's MANN (keys start as the embedding, novelty output, up to 10 classes); its
encoder is a linear projection of the frozen backbone's 1280 pooled features to a fixed-length 128-d embedding,
started as the features' top principal directions so the first reads are already a nearest neighbour.
Episodes: 5 classes of one training domain, each shown `SHOWS` times, each time another instance (another
artist's icon, another drawer's character) in another camera view, in shuffled order.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

TRAIN_DOMAINS = ("icons", "omniglot")
EVAL_DOMAINS = ("icons", "omniglot", "letters")  # letters: never used in training
WAYS, SHOWS, NUM_CLASSES, EMBEDDING = 5, 4, 10, 128


def head_config():
    from edgemeta.models.config import ModelConfig

    # encoder "conv" only satisfies the config's key_init check (keys start as a 128-d fixed-length
    # embedding); `build_head` replaces that encoder with the projection of cached features.
    return ModelConfig(arch="mann", image_size=96, num_classes=NUM_CLASSES, encoder="conv", conv_channels=(8,),
                       embedding=EMBEDDING, embedding_norm=True, novelty=True, memory_width=EMBEDDING,
                       key_init="embedding")


def build_head(train_features: np.ndarray):
    """The MANN with a feature projection started from the principal directions of `train_features` [N, 1280]."""
    import torch
    from torch import nn

    from edgemeta.models.encoder import FixedLength
    from edgemeta.models.mann import MANNLearner

    learner = MANNLearner(head_config())
    proj = nn.Linear(train_features.shape[1], EMBEDDING)
    mean = train_features.mean(0)
    _, _, vt = np.linalg.svd(train_features[:4000] - mean, full_matrices=False)
    with torch.no_grad():
        proj.weight.copy_(torch.from_numpy(vt[:EMBEDDING]))
        proj.bias.copy_(-torch.from_numpy(vt[:EMBEDDING] @ mean))
    learner.encoder = nn.Sequential(proj, FixedLength(EMBEDDING))
    learner.encoder.out_features = EMBEDDING
    return learner


def sample_episodes(feats: np.ndarray, classes: np.ndarray, rng: np.random.Generator, batch: int):
    """feats [C, I, V, F] -> x [B, T, F], labels [B, T], show index [B, T] (0 = first instance of its class)."""
    t = WAYS * SHOWS
    x = np.empty((batch, t, feats.shape[-1]), np.float32)
    labels = np.empty((batch, t), np.int64)
    shows = np.empty((batch, t), np.int64)
    for b in range(batch):
        chosen = rng.choice(classes, WAYS, replace=False)
        names = rng.choice(NUM_CLASSES, WAYS, replace=False)
        order = rng.permutation(np.repeat(np.arange(WAYS), SHOWS))
        seen = np.zeros(WAYS, np.int64)
        inst_orders = [rng.permutation(feats.shape[1]) for _ in range(WAYS)]
        for i, k in enumerate(order):
            inst = inst_orders[k][seen[k] % feats.shape[1]]
            x[b, i] = feats[chosen[k], inst, rng.integers(feats.shape[2])]
            labels[b, i], shows[b, i] = names[k], seen[k]
            seen[k] += 1
    return x, labels, shows


def prev_onehot(labels: np.ndarray) -> np.ndarray:
    prev = np.zeros((*labels.shape, NUM_CLASSES), np.float32)
    prev[:, 1:][np.arange(labels.shape[0])[:, None], np.arange(labels.shape[1] - 1)[None], labels[:, :-1]] = 1
    return prev


def cosine_nn(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each step's guess: the label of the most cosine-similar earlier step (a random label at step 0)."""
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)
    guess = np.empty_like(labels)
    for b in range(x.shape[0]):
        sim = xn[b] @ xn[b].T
        for t in range(x.shape[1]):
            guess[b, t] = labels[b, int(np.argmax(sim[t, :t]))] if t else rng.integers(NUM_CLASSES)
    return guess


def by_show(correct: np.ndarray, shows: np.ndarray) -> list[float]:
    return [float(correct[shows == s].mean()) for s in range(SHOWS)]


def evaluate(learner, feats, classes, episodes: int, seed: int) -> dict:
    import torch

    rng = np.random.default_rng(seed)
    x, labels, shows = sample_episodes(feats, classes, rng, episodes)
    with torch.no_grad():
        logits, _, _ = learner.unroll(torch.from_numpy(x), torch.from_numpy(prev_onehot(labels)))
    head = by_show(logits.argmax(-1).numpy() == labels, shows)
    nn_ = by_show(cosine_nn(x, labels, rng) == labels, shows)
    return {"head": head, "cosine_nn": nn_}


@click.command()
@click.option("--features", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--steps", default=1500, show_default=True)
@click.option("--batch", default=32, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--eval-episodes", default=500, show_default=True)
@click.option("--seed", default=0, show_default=True)
def main(features, out, steps, batch, lr, eval_episodes, seed):
    import torch

    from edgemeta.data.feature_cache import load_cache
    from edgemeta.runtime.atomic import atomic_path, atomic_write_text

    torch.manual_seed(seed)
    data = {d: load_cache(features, d) for d in EVAL_DOMAINS}
    train = {d: np.flatnonzero(~data[d][2]) for d in TRAIN_DOMAINS}
    test = {d: np.flatnonzero(data[d][2]) for d in EVAL_DOMAINS}
    test["letters"] = np.arange(len(data["letters"][1]))  # never trained: every class is a test class
    pool = np.concatenate([data[d][0][train[d]].reshape(-1, data[d][0].shape[-1]) for d in TRAIN_DOMAINS])
    learner = build_head(np.random.default_rng(seed).permutation(pool))
    before = {d: evaluate(learner, data[d][0], test[d], eval_episodes, seed + 1) for d in EVAL_DOMAINS}
    opt = torch.optim.Adam(learner.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    start = time.time()
    for step in range(1, steps + 1):
        d = TRAIN_DOMAINS[step % len(TRAIN_DOMAINS)]
        x, labels, shows = sample_episodes(data[d][0], train[d], rng, batch)
        logits, novelty, _ = learner.unroll(torch.from_numpy(x), torch.from_numpy(prev_onehot(labels)))
        y = torch.from_numpy(labels)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, NUM_CLASSES), y.reshape(-1))
        loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
            novelty.reshape(-1), torch.from_numpy((shows == 0).astype(np.float32)).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learner.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            print(f"step {step}/{steps} loss {loss.item():.3f} {time.time() - start:.0f} s", flush=True)
    after = {d: evaluate(learner, data[d][0], test[d], eval_episodes, seed + 1) for d in EVAL_DOMAINS}
    report = {"before_meta_training": before, "after": after, "steps": steps, "batch": batch, "lr": lr,
              "ways": WAYS, "eval_episodes": eval_episodes, "seed": seed}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "head.pt", suffix=".pt") as tmp:
        torch.save({"config": head_config().to_dict(), "state_dict": learner.state_dict()}, tmp)
    atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    for d in EVAL_DOMAINS:
        print(f"{d:9s} 5-way by instance  head " + " ".join(f"{a:.1%}" for a in after[d]["head"])
              + "   cosine NN " + " ".join(f"{a:.1%}" for a in after[d]["cosine_nn"]))


if __name__ == "__main__":
    main()
