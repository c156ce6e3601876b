"""Meta-train an LSTM on the quadratic task of Hochreiter et al. 2001, print its table, export one step.

    python examples/quadratic/train_quadratic.py --out runs/quadratic --episodes 192000 --batch-size 64 --lr 1e-2

Writes OUT/model.pt (weights and options), OUT/eval.json (the table) and OUT/learner.onnx (one
step with its state as explicit inputs and outputs, checked against PyTorch over whole episodes
before it is written). See docs/quadratic.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from edgemeta.export.onnx_export import pin_output_shapes
from edgemeta.runtime.atomic import atomic_path, atomic_write_text, atomic_write_with

from quadratic_learner import QuadraticLearner, episode_tensors, predict
from quadratic_task import format_table, nmse_table, sample_episodes

TEST_STREAM = (7, 2)  # test functions come from default_rng([seed, 7, 2]): never a training batch [seed, k]
PARITY_STREAM = (7, 3)
PARITY_TOL = 1e-4  # max |difference| between PyTorch and ONNX Runtime over a whole episode, predictions and state
INPUTS, OUTPUTS = ["x", "prev_target", "h", "c"], ["prediction", "h_out", "c_out"]


def train(learner: QuadraticLearner, episodes: int, batch_size: int, lr: float, steps: int, seed: int,
          log=print) -> None:
    """Adam on the MSE over all steps; cosine decay of the learning rate to a tenth; gradient-norm clip 10.
    Optimizer step k trains on the functions of default_rng([seed, k])."""
    total = max(1, math.ceil(episodes / batch_size))
    opt = torch.optim.Adam(learner.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    learner.train()
    running = None
    for k in range(total):
        x, prev, y = episode_tensors(sample_episodes(batch_size, steps, np.random.default_rng([seed, k])))
        loss = torch.mean((learner.unroll(x, prev)[0][..., 0] - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learner.parameters(), 10.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (k + 1) % 100 == 0 or k + 1 == total:
            log(f"step {k + 1}/{total}: running MSE {running:.4f}")


def evaluate(learner: QuadraticLearner, episodes: int, steps: int, seed: int) -> dict:
    ep = sample_episodes(episodes, steps, np.random.default_rng([seed, *TEST_STREAM]))
    return nmse_table(predict(learner, ep), ep)


def export_onnx(learner: QuadraticLearner, path: Path, steps: int, batch: int = 4) -> dict:
    """Trace one step to ONNX (only the batch axis dynamic), then drive ONNX Runtime through `batch`
    fresh episodes of `steps` steps, state carried, against PyTorch; write `path` only if they agree."""
    import onnx
    import onnxruntime as ort

    learner = learner.eval().cpu()
    names = list(learner.state_names)

    class Step(torch.nn.Module):  # positional state, in the order of INPUTS
        def __init__(self):
            super().__init__()
            self.learner = learner

        def forward(self, x, prev_target, h, c):
            pred, nxt = self.learner.step(x, prev_target, {"h": h, "c": c})
            return pred, nxt["h"], nxt["c"]

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = tuple(learner.zero_state(batch, "cpu").values())
        torch.onnx.export(Step(), (torch.zeros(batch, 2), torch.zeros(batch, 1), *state), str(tmp),
                          input_names=INPUTS, output_names=OUTPUTS, opset_version=17, do_constant_folding=True,
                          dynamic_axes={n: {0: "batch"} for n in INPUTS + OUTPUTS}, dynamo=False)
        model = onnx.load(str(tmp))
        pin_output_shapes(model, {"prediction": (1,), "h_out": (learner.hidden,), "c_out": (learner.hidden,)})
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))

        ep = sample_episodes(batch, steps, np.random.default_rng([0, *PARITY_STREAM]))
        x, prev, _ = episode_tensors(ep)
        with torch.no_grad():
            want, want_state = learner.unroll(x, prev)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        carried = {n: np.zeros((batch, learner.hidden), np.float32) for n in names}
        got = []
        for t in range(steps):
            pred, *nxt = session.run(None, {"x": ep.x[:, t], "prev_target": ep.prev_target[:, t, None], **carried})
            got.append(pred)
            carried = dict(zip(names, nxt))
        diff = max(float(np.abs(np.stack(got, 1) - want.numpy()).max()),
                   *(float(np.abs(carried[n] - want_state[n].numpy()).max()) for n in names))
        if not diff <= PARITY_TOL:
            raise SystemExit(f"error: ONNX Runtime and PyTorch differ by {diff:.2e} > {PARITY_TOL:g} over a "
                             f"{steps}-step episode; {path} was not written")
    return {"steps": steps, "batch": batch, "max_abs_diff": diff, "tolerance": PARITY_TOL}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for model.pt, eval.json, learner.onnx")
    p.add_argument("--episodes", type=int, default=100_000, help="training episodes (functions) in all")
    p.add_argument("--batch-size", type=int, default=32, help="episodes per optimizer step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--steps", type=int, default=50, help="examples per episode")
    p.add_argument("--hidden", type=int, default=64, help="LSTM units")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and every episode")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--eval-episodes", type=int, default=1000, help="fresh test functions for the table")
    args = p.parse_args(argv)
    for name in ("episodes", "batch_size", "steps", "hidden", "threads", "eval_episodes"):
        if getattr(args, name) < (2 if name == "steps" else 1):
            p.error(f"--{name.replace('_', '-')} must be at least {2 if name == 'steps' else 1}")
    if not args.lr > 0:
        p.error("--lr must be > 0")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    learner = QuadraticLearner(args.hidden)
    train(learner, args.episodes, args.batch_size, args.lr, args.steps, args.seed)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    atomic_write_with(args.out / "model.pt", lambda tmp: torch.save({"options": options, "model": learner.state_dict()}, tmp))

    result = evaluate(learner, args.eval_episodes, args.steps, args.seed)
    print(format_table(result))
    # whole episodes, at least the 50 steps of the table even for a learner trained on shorter ones
    result["parity"] = export_onnx(learner, args.out / "learner.onnx", max(50, args.steps))
    atomic_write_text(args.out / "eval.json", json.dumps({"options": options, **result}, indent=2) + "\n")
    print(f"parity ONNX Runtime vs PyTorch: max |diff| {result['parity']['max_abs_diff']:.1e} "
          f"(<= {PARITY_TOL:g}); wrote {args.out / 'model.pt'}, {args.out / 'eval.json'}, {args.out / 'learner.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
