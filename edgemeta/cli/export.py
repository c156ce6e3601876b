"""`edgemeta export`: one learner step to ONNX (and TensorRT), checked for parity before it is written."""
from __future__ import annotations

import click

from edgemeta.cli.options import data_option


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Export directory (new, empty, or a previous export).")
@click.option("--trt", is_flag=True, help="Also build a TensorRT engine (needs TensorRT 8.6+ and a CUDA GPU).")
@click.option("--fp16", is_flag=True, help="float16: the engine with --trt, else an extra learner.fp16.onnx.")
@click.option("--int8", is_flag=True, help="also write learner.int8.onnx: int8 weights for ONNX Runtime on CPUs (faster steps).")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=8, show_default=True,
              help="Largest batch the TensorRT engine accepts.")
@data_option
def command(checkpoint, out, trt, fp16, int8, max_batch, data):
    """Export CHECKPOINT (a run directory or .pt) to DIR/learner.onnx with explicit state, check it
    (onnx.checker, TensorRT readiness, parity with PyTorch over whole episodes) and write a model card."""
    from edgemeta.export.checkpoint_export import export_checkpoint

    export_checkpoint(checkpoint, out, trt=trt, fp16=fp16, max_batch=max_batch, log=click.echo, data=data, int8=int8)
