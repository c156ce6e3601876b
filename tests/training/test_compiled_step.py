"""The fast training loop computes what the plain one does: same episodes, same losses, same weights."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgemeta import EdgemetaError
from edgemeta.data.episodes import EpisodeSampler
from edgemeta.training.distributed import DistContext
from edgemeta.training.compiled_step import EpisodeBatches, EpisodeLoss, TrainStep, batch_stream, compile_core, novelty_targets
from edgemeta.models import ModelConfig, build_learner

from conftest import TINY_MODEL, TINY_TRAIN

# conv encoder and novelty head: every kind of parameter gets gradients through the loop
SMALL = dict(arch="mann", image_size=8, num_classes=3, encoder="conv", conv_channels=(4,), embedding=8, controller=16,
             memory_slots=8, memory_width=8, read_heads=2, novelty=True)


def synthetic_sampler(augment=False) -> EpisodeSampler:
    images = (np.random.default_rng(3).random((12, 20, 8, 8)) > 0.7).astype(np.float32)
    return EpisodeSampler(images, 3, 3, instances=4, augment=augment)


def a_batch(seed=0, batch=4):
    return EpisodeBatches(synthetic_sampler(), 3, seed, batch)[0]


def indexing_unroll(learner, images, prev_labels):
    """The loop as first written (x[:, t] per step): the unbind loop must match it bit for bit."""
    b, t = images.shape[:2]
    feats = learner.encoder(images.reshape(b * t, *images.shape[2:])).reshape(b, t, -1)
    x_proj = learner.project(feats, prev_labels)
    state = learner.zero_state(b)
    logits, novelty = [], []
    for i in range(t):
        lg, nv, state = learner.core(feats[:, i], x_proj[:, i], prev_labels[:, i], state)
        logits.append(lg)
        novelty.append(nv)
    return torch.stack(logits, dim=1), torch.cat(novelty, dim=1)


def grads_of(learner, logits, novelty, labels):
    learner.zero_grad()
    (F.cross_entropy(logits.flatten(0, 1), labels.flatten()) + novelty.square().mean()).backward()
    return {n: p.grad.clone() for n, p in learner.named_parameters()}


def test_unroll_equals_the_indexing_loop_bit_for_bit():
    torch.manual_seed(0)
    learner = build_learner(ModelConfig(**SMALL))
    x, prev, labels = a_batch()
    ref_logits, ref_nov = indexing_unroll(learner, x, prev)
    ref = grads_of(learner, ref_logits, ref_nov, labels)
    logits, nov, _ = learner.unroll(x, prev)
    got = grads_of(learner, logits, nov, labels)
    assert torch.equal(logits, ref_logits) and torch.equal(nov, ref_nov)
    for name in ref:
        assert torch.equal(got[name], ref[name]), name


def test_novelty_targets_mark_first_appearances():
    labels = torch.tensor([[2, 0, 2, 1, 0, 1], [1, 1, 1, 0, 2, 0]])
    expected = torch.tensor([[1, 1, 0, 1, 0, 0], [1, 0, 0, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(novelty_targets(labels, 3), expected)


def compiled_against_plain(span: int) -> tuple[int, object, int]:
    """Loss, accuracy and gradients of the plain loop against `compile_core(..., span=span)` (run twice,
    so a second call must reuse the graphs) on one batch; asserts they match.
    -> (graphs compiled, the compiled core, episode length)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    learner = build_learner(ModelConfig(**SMALL))
    x, prev, labels = a_batch()
    # aot_eager: the same tracing and autograd as inductor, without generating C++ (seconds, not a minute)
    core = compile_core(learner, torch.device("cpu"), backend="aot_eager", span=span)
    results = []
    for loss_fn in (EpisodeLoss(learner, 0.5), EpisodeLoss(learner, 0.5, core), EpisodeLoss(learner, 0.5, core)):
        learner.zero_grad()
        loss, acc = loss_fn(x, prev, labels)
        loss.backward()
        results.append((loss.item(), acc.item(), {n: p.grad.clone() for n, p in learner.named_parameters()}))
    (loss0, acc0, g0), (loss1, acc1, g1), _ = results
    assert loss1 == pytest.approx(loss0, rel=1e-6) and acc1 == acc0
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-5, atol=1e-7, msg=name)
    return counters["stats"]["unique_graphs"], core, x.shape[1]


def test_compiled_core_matches_plain_and_compiles_once():
    graphs, _, _ = compiled_against_plain(span=1)
    # time step 0 (fresh state) and time steps 1..T-1 share one graph: one compile per run, not two
    assert graphs == 1


def test_compiled_spans_match_plain_and_compile_once_per_span_length():
    """--span K: K time steps per compiled graph (the CPU default, 10) computes the same loss and
    gradients; time is cut into spans of K, a shorter last span compiling once more."""
    from edgemeta.training.compiled_step import CompiledSpan

    graphs, span, length = compiled_against_plain(span=5)
    assert isinstance(span, CompiledSpan) and span.length == 5 and length % 5 != 0
    assert graphs == 2  # spans of 5 and the last, shorter one
    with pytest.raises(EdgemetaError, match="must cover >= 1 time step"):
        compile_core(build_learner(ModelConfig(**SMALL)), torch.device("cpu"), backend="aot_eager", span=0)


def test_workers_sample_exactly_the_loops_episodes():
    from edgemeta.data.episodes import episodes_to_tensors

    sampler = synthetic_sampler(augment=True)
    batches = EpisodeBatches(sampler, 3, seed=9, batch_size=6)
    inline = list(batch_stream(batches, 3, 7, torch.device("cpu"), workers=0))
    ahead = list(batch_stream(batches, 3, 7, torch.device("cpu"), workers=2))
    assert len(inline) == len(ahead) == 4
    for k, (a, b) in enumerate(zip(inline, ahead)):
        # what the plain loop draws at step k: the whole batch from default_rng([seed, k])
        direct = episodes_to_tensors(sampler.sample(6, np.random.default_rng([9, 3 + k])), 3, "cpu")
        for u, v, w in zip(a, b, direct):
            assert torch.equal(u, v) and torch.equal(u, w)
    # a process's share is its rows of the same batch
    share = EpisodeBatches(sampler, 3, seed=9, batch_size=6, shard=slice(4, 6))[3]
    for u, v in zip(share, inline[0]):
        assert torch.equal(u, v[4:6])


def test_train_with_workers_ends_with_the_same_weights(tmp_path, data_dir):
    from edgemeta.training.checkpoint import load_checkpoint
    from edgemeta.training.loop import TrainConfig, train

    kw = {**TINY_TRAIN, "episodes": 3 * 16, "val_every": 1000, "val_episodes": 10, "data": str(data_dir),
          "augment": True}
    for workers in (0, 1):
        train(ModelConfig(**TINY_MODEL), TrainConfig(**kw, workers=workers), tmp_path / f"w{workers}", progress=False,
              log=lambda *a: None)
    a = load_checkpoint(tmp_path / "w0" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "w1" / "last.pt")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_cli_flags_reach_the_train_config(tmp_path, monkeypatch):
    import edgemeta.training.loop
    from edgemeta.cli import main

    seen = {}
    monkeypatch.setattr(edgemeta.training.loop, "train", lambda model_cfg, cfg, out, resume=False, overwrite=False: seen.update(cfg=cfg))
    argv = ["train", "--out", str(tmp_path / "r"), "--workers", "2", "--compile", "--compile-mode", "default"]
    assert main(argv) == 0
    cfg = seen["cfg"]
    assert (cfg.workers, cfg.compile, cfg.compile_mode, cfg.span) == (2, True, "default", 0)
    assert main(argv + ["--span", "5"]) == 0 and seen["cfg"].span == 5
    assert main(["train", "--out", str(tmp_path / "r"), "--span", "5"]) != 0  # without --compile
    assert main(["train", "--out", str(tmp_path / "r"), "--compile-mode", "fast"]) != 0


def test_benchmark_prints_every_loop_with_ratios(capsys):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "benchmarks" / "train_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--batch", "2", "--episode-length", "4", "--iters", "2", "--warmup", "0", "--backend", "aot_eager"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["reference"], ["plain"],
                                                                                               ["compiled"])}
    assert set(rows) == {"reference", "plain", "compiled"}, out
    assert rows["reference"][4] == "1.00x" and rows["plain"][-2] == "1.00x", out  # ratios to themselves
    assert all(float(r[3]) > 0 for r in rows.values()), out  # episodes/s


@pytest.mark.slow
def test_inductor_compiled_training_matches_plain_training(tmp_path, data_dir):
    """`--compile` for real: C++ kernels from inductor (a compile of about a minute on 2 busy cores)."""
    import shutil

    from edgemeta.training.checkpoint import load_checkpoint
    from edgemeta.training.loop import TrainConfig, train

    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("no C++ compiler for inductor's CPU backend")
    kw = {**TINY_TRAIN, "episodes": 3 * 16, "val_every": 1000, "val_episodes": 10, "data": str(data_dir)}
    for compile_ in (False, True):
        train(ModelConfig(**TINY_MODEL), TrainConfig(**kw, compile=compile_), tmp_path / str(compile_), progress=False,
              log=lambda *a: None)
    a = load_checkpoint(tmp_path / "False" / "last.pt")
    b = load_checkpoint(tmp_path / "True" / "last.pt")
    assert b["metrics"]["loss"] == pytest.approx(a["metrics"]["loss"], rel=1e-5)
    for name in a["model"]:
        torch.testing.assert_close(b["model"][name], a["model"][name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.gpu
def test_cuda_graph_loop_matches_the_plain_loop_on_gpu():
    device = torch.device("cuda")
    torch.manual_seed(0)
    base = build_learner(ModelConfig(**SMALL)).to(device)
    weights = []
    for compiled in (False, True):
        learner = copy.deepcopy(base)
        opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        core = compile_core(learner, device, "auto") if compiled else None  # auto on CUDA: CUDA graphs
        step = TrainStep(learner, opt, sched, DistContext(), device, 8, 0.5, 10.0, core, cuda_graphs=compiled)
        batches = EpisodeBatches(synthetic_sampler(), 3, seed=1, batch_size=8)
        losses = [step(*batch).tolist() for batch in batch_stream(batches, 0, 5, device)]
        weights.append((losses, {n: p.detach().cpu() for n, p in learner.named_parameters()}))
    (l0, w0), (l1, w1) = weights
    np.testing.assert_allclose(l1, l0, rtol=1e-4)
    for name in w0:
        torch.testing.assert_close(w1[name], w0[name], rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("name", ["mann", "default"])
def test_the_benchmarks_reference_loop_computes_what_the_learner_computes(name):
    """benchmarks/train_throughput.py times the loop as first written against today's: the ratios only
    mean something if both compute the same function."""
    import importlib.util
    from pathlib import Path

    from edgemeta.models import build_learner
    from edgemeta.training.presets import preset

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"
    spec = importlib.util.spec_from_file_location("train_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = preset(name).model_config()
    torch.manual_seed(0)
    learner = build_learner(cfg)
    x, prev, _ = bench.synthetic_batch(cfg, 3, 20, "cpu")
    with torch.no_grad():
        ref, new = bench.reference_unroll(learner, x, prev), learner.unroll(x, prev)
    torch.testing.assert_close(ref[0], new[0], rtol=0, atol=1e-5)
    if ref[1] is not None:
        torch.testing.assert_close(ref[1], new[1], rtol=0, atol=1e-5)
