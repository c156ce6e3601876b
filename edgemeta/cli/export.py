"""`edgemeta export`: one learner step to ONNX (and TensorRT), checked for parity before it is written;
or, given an exported learner.onnx and --trt, a TensorRT engine built on this device without torch."""
from __future__ import annotations

import click

from edgemeta.cli.options import folder_data_option


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--out", type=click.Path(), help="Export directory (new, empty, or a previous export). "
              "Required for a checkpoint; for learner.onnx --trt the engine goes beside the ONNX file by default.")
@click.option("--trt", is_flag=True, help="Build a TensorRT engine (TensorRT 8.6 to 10.x, cuda-python 12, a CUDA GPU). "
              "From learner.onnx this needs no torch: run it on the target device.")
@click.option("--fp16", is_flag=True, help="float16: the engine with --trt, else an extra learner.fp16.onnx.")
@click.option("--int8", is_flag=True, help="also write learner.int8.onnx: int8 weights for ONNX Runtime on CPUs (faster steps).")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=None,
              help="Largest batch the TensorRT engine accepts (default: 8 from a checkpoint, --batch from learner.onnx).")
@click.option("--batch", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="learner.onnx --trt: the batch the device runs, which the engine is tuned for (the demo runs 1).")
@click.option("--device", "device_name", default=None,
              help="A device profile (edgemeta devices): its runtime.tensorrt sets the TensorRT parser the readiness check "
                   "targets; with learner.onnx --trt, its trt_workspace_mb sizes the builder workspace.")
@folder_data_option
def command(checkpoint, out, trt, fp16, int8, max_batch, batch, device_name, data):
    """Export CHECKPOINT (a run directory or .pt) to DIR/learner.onnx with explicit state, check it
    (onnx.checker, TensorRT readiness, parity with PyTorch over whole episodes) and write a model card.

    Given an exported learner.onnx and --trt instead, build learner.engine beside it on this device
    (no torch needed), checked for parity with ONNX Runtime on the CPU."""
    if checkpoint.endswith(".onnx"):
        if not trt:
            raise click.UsageError(f"{checkpoint} is already exported; add --trt to build a TensorRT engine from it")
        if fp16 or int8:
            raise click.UsageError("engines built from learner.onnx are float32 (--fp16/--int8 apply to checkpoint exports)")
        from edgemeta.runtime.backends.trt_build import build_engine_file

        workspace = None
        if device_name:
            from edgemeta.devices.profiles import load_profile

            workspace = load_profile(device_name).trt_workspace_mb
        build_engine_file(checkpoint, out, max_batch=max_batch or batch, batch=batch, workspace_mb=workspace, log=click.echo)
        return
    if out is None:
        raise click.UsageError("Missing option '--out' (where the export goes)")
    from edgemeta.export.checkpoint_export import export_checkpoint
    from edgemeta.export.trt_ready import DEFAULT_TENSORRT

    tensorrt = DEFAULT_TENSORRT
    if device_name:
        from edgemeta.devices.profiles import load_profile

        tensorrt = load_profile(device_name).tensorrt or DEFAULT_TENSORRT
    export_checkpoint(checkpoint, out, trt=trt, fp16=fp16, max_batch=max_batch or 8, log=click.echo, data=data, int8=int8,
                      tensorrt=tensorrt)
