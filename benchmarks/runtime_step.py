"""Runtime step latency, from a naive export to what edgemeta ships, in one interleaved run.

    python benchmarks/runtime_step.py [--checkpoint edgemeta/learners/mann.pt] [--threads 1] [--runs 7] [--steps 2000] [--no-native]

Exports the checkpoint three ways into a temporary directory:
  traced  `learner.step` traced as training runs it (export_step(as_trained=True)): the naive export
  graph   the deployment rewrite (export/mann_graph.py): what `edgemeta export` writes as learner.onnx
  int8    graph with int8 weights (export/int8.py): learner.int8.onnx, `edgemeta export --int8`
and times, with the loops taking turns every 100 steps so a busy machine slows them alike:
  naive session.run on traced (the baseline: plain dict feeds, outputs fed back as state),
  the runtime's path (IOBinding, double-buffered state; runtime/backends/ort.py) on each export,
  the native backend (the whole step as one C function; runtime/backends/native/backend.py) on graph, with
  int8 and with float32 weights (--no-native leaves it out, e.g. where there is no C compiler).
It also prints each graph's node count after ONNX Runtime's own optimisations and the cost of one
trivial node on this machine, which together explain where a step's time goes.
Needs torch (to export); the runtime itself does not.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import timeit
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def export_variants(checkpoint: Path, out: Path) -> dict[str, Path]:
    from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint
    from edgemeta.export.checkpoint_export import checkpoint_metadata
    from edgemeta.export.int8 import quantize_int8
    from edgemeta.export.onnx_export import export_step

    ckpt = load_checkpoint(checkpoint)
    learner = learner_from_checkpoint(ckpt)
    meta = checkpoint_metadata(ckpt)
    paths = {"traced": out / "traced.onnx", "graph": out / "graph.onnx", "int8": out / "int8.onnx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_step(learner, paths["traced"], meta, as_trained=True)
        export_step(learner, paths["graph"], meta)
    quantize_int8(paths["graph"], paths["int8"])
    return paths


def optimized_nodes(path: Path, threads: int) -> int:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.add_free_dimension_override_by_name("batch", 1)
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return len(onnx.load(so.optimized_model_filepath).graph.node)


def node_cost_us(threads: int, nodes: int = 50) -> float:
    """Microseconds one trivial node (an Add on a [1, 128] tensor) adds to a run: 51 vs 1 Adds."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def session(n):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])
        chain = [helper.make_node("Add", ["x" if i == 0 else f"a{i - 1}", "x"], [f"a{i}"]) for i in range(n)]
        y = helper.make_tensor_value_info(f"a{n - 1}", TensorProto.FLOAT, [1, 128])
        model = helper.make_model(helper.make_graph(chain, "chain", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every Add
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    feeds = {"x": np.ones((1, 128), np.float32)}
    short, long = session(1), session(nodes + 1)
    times = {}
    for name, s in (("short", short), ("long", long)):
        times[name] = min(timeit.repeat(lambda: s.run(None, feeds), number=2000, repeat=7)) / 2000
    return (times["long"] - times["short"]) / nodes * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=REPO / "edgemeta" / "learners" / "mann.pt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--no-native", action="store_true", help="leave out the native backend")
    args = ap.parse_args()

    from edgemeta.runtime.bench import inputs_for, naive_ort_loop, runtime_step_loop, time_steps
    from edgemeta.runtime.learner import Learner

    with tempfile.TemporaryDirectory() as tmp:
        paths = export_variants(args.checkpoint, Path(tmp))
        learners = {name: Learner.load(p, threads=args.threads) for name, p in paths.items()}
        images, _, onehots = inputs_for(learners["graph"])
        loops = {"naive session.run (traced)": naive_ort_loop(paths["traced"], args.threads, images, onehots)}
        loops.update({f"runtime step ({name})": runtime_step_loop(lrn, images, onehots) for name, lrn in learners.items()})
        natives = {} if args.no_native else {
            f"native {p} (graph)": Learner.load(paths["graph"], backend="native", precision=p) for p in ("int8", "fp32")}
        loops.update({name: runtime_step_loop(lrn, images, onehots) for name, lrn in natives.items()})
        timings = time_steps(loops, args.steps, args.runs)
        nodes = {name: optimized_nodes(p, args.threads) for name, p in paths.items()}
        sizes = {name: p.stat().st_size for name, p in paths.items()}
        for lrn in [*learners.values(), *natives.values()]:
            lrn.close()
    base = timings["naive session.run (traced)"].median
    print(f"{args.checkpoint.name}: batch 1, {args.threads} thread(s), {args.runs} runs x {args.steps} steps, interleaved")
    print(f"{'':30s}{'median':>10s}{'p90':>10s}   run medians (us)         vs naive")
    for name, t in timings.items():
        runs = " ".join(f"{m * 1e6:.0f}" for m in t.run_medians)
        print(f"{name:30s}{t.median * 1e6:8.1f}us{t.percentile(90) * 1e6:8.1f}us   {runs:24s} {base / t.median:5.2f}x")
    print("graphs after ONNX Runtime's optimisations: " + ", ".join(
        f"{name} {nodes[name]} nodes ({sizes[name] / 1e6:.2f} MB)" for name in paths))
    costs = [node_cost_us(args.threads) for _ in range(3)]
    print(f"one trivial node costs {statistics.median(costs):.2f} us here (median of 3): "
          f"{nodes['int8']} nodes -> about {nodes['int8'] * statistics.median(costs):.0f} us of dispatch per int8 step")


if __name__ == "__main__":
    main()
