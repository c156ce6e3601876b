"""Turn a finished training run into a shipped learner: evaluate, export, and copy into the package.

    python scripts/ship_learner.py runs/mann mann [--episodes 1000]

writes edgemeta/learners/<name>.pt (weights + configs + metrics, no optimizer state: small),
runtime/learners/<name>.onnx (what the torch-free runtime and the demo load),
runtime/learners/<name>-int8.onnx (int8 weights for CPUs, export/int8.py; not with --no-int8) and
runtime/learners/<name>.json (the export report: parity numbers, evaluation table).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch

from edgemeta.training.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from edgemeta.cli.evaluate import run_eval
from edgemeta.export import export_checkpoint
from edgemeta.runtime.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("name")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--no-int8", action="store_true", help="ship no int8 variant (and remove an old one)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    best = resolve_checkpoint(args.run)
    ckpt = load_checkpoint(best)
    slim = {k: ckpt[k] for k in ("task", "model_config", "train_config", "model", "step", "metrics") if k in ckpt}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_checkpoint(tmp / "best.pt", slim)
        result = run_eval(tmp / "best.pt", ways=args.ways, instances=10, episodes=args.episodes, seed=0,
                          device="cpu", out_dir=tmp)
        report = export_checkpoint(tmp / "best.pt", tmp / "export", int8=not args.no_int8)
        (REPO / "edgemeta" / "learners").mkdir(exist_ok=True)
        shutil.copyfile(tmp / "best.pt", REPO / "edgemeta" / "learners" / f"{args.name}.pt")
        shutil.copyfile(tmp / "export" / "learner.onnx", REPO / "runtime" / "learners" / f"{args.name}.onnx")
        int8 = REPO / "runtime" / "learners" / f"{args.name}-int8.onnx"
        if args.no_int8:
            int8.unlink(missing_ok=True)  # an int8 file of other weights would no longer match
        else:
            shutil.copyfile(tmp / "export" / "learner.int8.onnx", int8)
        shutil.copyfile(tmp / "eval.png", REPO / "docs" / "images" / f"eval_{args.name}.png")
    atomic_write_text(REPO / "runtime" / "learners" / f"{args.name}.json",
                      json.dumps({"eval": result, "export": report}, indent=2, default=str) + "\n")
    print(f"shipped {args.name}: step {ckpt['step']}, accuracy by instance {result['accuracy']}")


if __name__ == "__main__":
    main()
