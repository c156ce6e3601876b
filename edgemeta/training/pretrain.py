"""Encoder pretraining: a conv encoder first learns Omniglot's characters as a classifier.

Why: meta-training asks the CNN, the LSTM and the memory to find their roles together from one
weak signal (the next label), so the CNN's features improve slowly. A classifier over the
meta-train characters gets a much stronger signal per image, and its embedding alone puts a new
character's drawings together (see `one_shot_accuracy`). Meta-training then starts from features
that already separate characters, and the memory only has to learn to store and look them up.

The classifier is cosine-based (normalised embedding against normalised class weights, times a
learned scale), so it trains the embedding's direction, which is what the memory's cosine reads
compare. Its classes are the meta-train characters, each rotated by 0/90/180/270 degrees as four
classes (the paper's augmentation), with the small random rotation and shift of the episodes.
Validation and meta-test characters are never seen.

Pretraining is resumable: `EncoderPretraining.state_dict()` holds everything its next batch depends
on (classifier, optimizer, schedule, generator, the epoch's order and position), so a run stopped
between two batches and continued from that state ends with the same weights as one never stopped.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgemeta.data.device_sampler import rotate_and_shift

ROTATIONS = 4  # each character rotated by 0, 90, 180, 270 degrees is a class of its own


class EncoderPretraining:
    """Trains `encoder.embed` in place as a cosine classifier over train_images (classes, drawings, S, S),
    `epochs` passes over every (character, rotation, drawing), one batch at a time.

    `result`: {"epochs", "loss" (last finished epoch's mean), "val_one_shot" (per finished epoch: 5-way
    1-shot nearest-neighbour accuracy, %, on val_images)}.
    """

    def __init__(self, encoder: nn.Module, train_images: np.ndarray, val_images: np.ndarray, epochs: int, seed: int,
                 device: torch.device, batch_size: int = 256, lr: float = 2e-3):
        self.encoder, self.val_images, self.seed, self.device = encoder, val_images, seed, device
        self.epochs, self.batch_size = epochs, batch_size
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.images = torch.from_numpy(np.ascontiguousarray(train_images)).to(device)
        n_chars, self.drawings = self.images.shape[:2]
        n_classes = n_chars * ROTATIONS
        self.items = n_classes * self.drawings  # (character, rotation, drawing)
        self.batches_per_epoch = max(1, self.items // batch_size)

        self.weights = nn.Parameter(torch.randn(n_classes, encoder.proj.out_features, generator=self.gen,
                                                device=device) * 0.01)
        self.scale = nn.Parameter(torch.tensor(10.0, device=device))  # softmax temperature of the cosine logits
        self.opt = torch.optim.Adam(list(encoder.parameters()) + [self.weights, self.scale], lr=lr)
        # One cycle: the rate rises from lr/25 over the first 30% of the batches, then anneals. With the
        # full rate from the start the random classifier head drags the encoder around and an epoch is lost.
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, lr, total_steps=epochs * self.batches_per_epoch)
        self.epoch, self.position = 0, 0  # the next batch: `position` of epoch `epoch`
        self.order: torch.Tensor | None = None  # this epoch's shuffled items, drawn when it starts
        self.losses: list[torch.Tensor] = []  # this epoch's batch losses so far
        self.result: dict = {"epochs": epochs, "loss": None, "val_one_shot": []}

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def state_dict(self) -> dict:
        """Tensors and plain data only (loads with weights_only=True); the encoder's weights travel apart."""
        return {
            "epochs": self.epochs, "batch_size": self.batch_size, "epoch": self.epoch, "position": self.position,
            "order": self.order, "losses": torch.stack(self.losses) if self.losses else None,
            "classifier": self.weights.detach(), "scale": self.scale.detach(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "generator": self.gen.get_state(), "result": self.result,
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.weights.copy_(state["classifier"])
            self.scale.copy_(state["scale"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.gen.set_state(state["generator"])
        self.epoch, self.position, self.order = state["epoch"], state["position"], state["order"]
        self.losses = list(state["losses"].unbind()) if state["losses"] is not None else []
        self.result = state["result"]

    def run(self, stop: Callable[[], bool] = lambda: False, on_epoch: Callable[[], None] = lambda: None,
            progress: bool = True, log=print) -> bool:
        """Train until done (-> True) or until `stop()` says so between two batches (-> False, the state
        ready to save). `on_epoch` runs after every finished epoch but the last."""
        from tqdm import tqdm

        bar = tqdm(total=self.epochs * self.batches_per_epoch, initial=self.epoch * self.batches_per_epoch + self.position,
                   desc="pretrain encoder", unit="batch", disable=not progress, dynamic_ncols=True)
        try:
            while not self.done:
                if self.order is None:
                    self.order = torch.randperm(self.items, generator=self.gen, device=self.device)
                    self.losses = []
                while self.position < self.batches_per_epoch:
                    if stop():
                        return False
                    self._train_batch()
                    bar.update(1)
                self._finish_epoch(bar, log)
                if not self.done:
                    on_epoch()
            return True
        finally:
            bar.close()

    def _train_batch(self) -> None:
        i = self.position
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        cls, drawing = idx // self.drawings, idx % self.drawings
        char, quarter = cls // ROTATIONS, cls % ROTATIONS
        x = rotate_and_shift(self.images[char, drawing].unsqueeze(0), quarter.unsqueeze(0), self.gen)
        z = F.normalize(self.encoder.embed(x.reshape(-1, 1, *x.shape[-2:])), dim=1)
        logits = self.scale * z @ F.normalize(self.weights, dim=1).t()
        loss = F.cross_entropy(logits, cls)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.losses.append(loss.detach())
        self.position += 1

    def _finish_epoch(self, bar, log) -> None:
        self.result["loss"] = float(torch.stack(self.losses).mean())
        acc = one_shot_accuracy(self.encoder, self.val_images, self.device, seed=self.seed + 1)
        self.result["val_one_shot"].append(acc)
        self.epoch, self.position, self.order, self.losses = self.epoch + 1, 0, None, []
        bar.set_postfix(loss=f"{self.result['loss']:.3f}", val_1shot=f"{acc:.1f}%")
        log(f"pretrain epoch {self.epoch}/{self.epochs}: loss {self.result['loss']:.3f}, "
            f"validation 5-way 1-shot nearest neighbour {acc:.1f}%")


@torch.no_grad()
def one_shot_accuracy(encoder: nn.Module, images: np.ndarray, device: torch.device, ways: int = 5,
                      episodes: int = 300, seed: int = 0) -> float:
    """5-way 1-shot accuracy (%) of a cosine nearest neighbour on `encoder.embed` features: how well the
    embedding alone separates characters it was not trained on (5 queries per class per episode)."""
    n_chars, drawings = images.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).reshape(-1, 1, *images.shape[-2:])
    emb = torch.cat([F.normalize(encoder.embed(chunk), dim=1) for chunk in x.split(1024)]).reshape(n_chars, drawings, -1)
    rng = np.random.default_rng(seed)
    right = 0
    queries = min(5, drawings - 1)
    for _ in range(episodes):
        chars = torch.as_tensor(rng.choice(n_chars, ways, replace=False), device=device)
        picks = torch.as_tensor(np.stack([rng.permutation(drawings)[: 1 + queries] for _ in range(ways)]), device=device)
        chosen = emb[chars[:, None], picks]  # [ways, 1 + queries, D]
        support, query = chosen[:, 0], chosen[:, 1:].reshape(-1, emb.shape[-1])
        pred = (query @ support.t()).argmax(dim=1)
        right += int((pred == torch.arange(ways, device=device).repeat_interleave(queries)).sum())
    return 100.0 * right / (episodes * ways * queries)
