"""The live protocol of edgemeta.runtime.Learner: teach commits, predict does not, streams are independent,
and a trained learner learns new (held-out) Omniglot classes from a few examples."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from runtime_toy import toy_learner, toy_metadata

from edgemeta import EdgemetaError
from edgemeta.runtime import EpisodeLengthWarning, Learner


@pytest.fixture
def toy(tmp_path):
    return toy_learner(tmp_path / "toy.onnx", novelty=True)


def ink(value: float, size: int = 8, batch: int | None = None) -> np.ndarray:
    """An image whose ink sum is value * size * size (the toy learner's `ink` state reads it back)."""
    shape = (size, size) if batch is None else (batch, 1, size, size)
    return np.full(shape, value, np.float32)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_predict_never_commits_and_teach_does(toy):
    with Learner.load(toy) as learner:
        learner.teach(ink(0.5), 2)
        before, pending = learner.state(), learner.pending_label
        rng = np.random.default_rng(0)
        for _ in range(50):
            learner.predict(rng.random((8, 8), dtype=np.float32))
        assert same_state(learner.state(), before)
        assert learner.pending_label == pending == 2 and learner.num_taught == 1
        learner.teach(ink(0.25), 0)
        assert not same_state(learner.state(), before)


def test_label_enters_with_the_next_committed_step(toy):
    with Learner.load(toy) as learner:
        first = learner.teach(ink(0.5), 1)
        # The toy's `count` state accumulates the previous labels: label 1 is only pending so far.
        assert np.array_equal(learner.state()["count"], [[0, 0, 0]])
        assert learner.state()["ink"][0, 0] == pytest.approx(32.0)
        assert first.logits.shape == (1, 3) and first.probs.shape == (1, 3)
        p = learner.predict(ink(0.0))
        assert p.label.tolist() == [1]  # the pending label enters the prediction step ...
        assert np.array_equal(learner.state()["count"], [[0, 0, 0]])  # ... without being committed
        learner.teach(ink(0.0), 2)
        assert np.array_equal(learner.state()["count"], [[0, 1, 0]])
        assert learner.counts.tolist() == [0, 1, 1] and learner.num_taught == 2 and learner.pending_label == 2


def test_prediction_fields(toy):
    with Learner.load(toy) as learner:
        learner.teach(ink(0.1), 0)
        p = learner.predict(ink(0.1))
        assert p.probs.dtype == np.float32 and p.probs.sum() == pytest.approx(1.0, abs=1e-6)
        assert p.label.tolist() == [int(np.argmax(p.logits))]
        assert p.confidence[0] == pytest.approx(p.probs.max())
        assert p.novelty.shape == (1,) and 0.0 < p.novelty[0] < 1.0


def test_teach_after_predict_of_the_same_image_equals_teach_alone(tiny_onnx):
    rng = np.random.default_rng(1)
    images = (rng.random((6, 12, 12)) < 0.15).astype(np.float32)
    with Learner.load(tiny_onnx) as a, Learner.load(tiny_onnx) as b:
        for i, x in enumerate(images):
            predicted = a.predict(x)
            taught_a = a.teach(x, i % 3)  # reuses the step predict() just ran
            a.predict(images[(i + 1) % 6])
            taught_b = b.teach(x, i % 3)
            np.testing.assert_array_equal(predicted.logits, taught_a.logits)
            np.testing.assert_array_equal(taught_a.logits, taught_b.logits)
        assert same_state(a.state(), b.state())


def test_reset_counts_and_class_names(toy):
    with Learner.load(toy) as learner:
        learner.class_names = ["alpha", None, "gamma"]
        for label in (0, 0, 2):
            learner.teach(ink(0.2), label)
        assert learner.counts.tolist() == [2, 0, 1] and learner.num_taught == 3
        learner.reset()
        assert learner.counts.tolist() == [0, 0, 0] and learner.num_taught == 0 and learner.pending_label == -1
        assert all(np.all(v == 0) for v in learner.state().values())
        assert learner.class_names == ["alpha", None, "gamma"]
        with pytest.raises(EdgemetaError, match="3 strings"):
            learner.class_names = ["only one"]


def test_streams_are_independent(tiny_onnx):
    """B = 3 streams with different (and partly skipped) lessons give each stream exactly the state
    and predictions of a learner that ran that stream alone."""
    rng = np.random.default_rng(2)
    steps = 8
    images = (rng.random((steps, 3, 1, 12, 12)) < 0.15).astype(np.float32)
    labels = rng.integers(-1, 3, (steps, 3))
    with Learner.load(tiny_onnx, batch=3) as multi:
        batched = [multi.teach(images[t], labels[t]).logits for t in range(steps)]
        final = multi.predict(images[0]).logits
        multi_state = multi.state()
        assert multi.num_taught.tolist() == (labels >= 0).sum(0).tolist()
        assert multi.counts.shape == (3, 3)
    for s in range(3):
        with Learner.load(tiny_onnx) as single:
            for t in range(steps):
                if labels[t, s] >= 0:
                    out = single.teach(images[t, s], int(labels[t, s])).logits
                else:
                    out = single.predict(images[t, s]).logits
                np.testing.assert_allclose(batched[t][s], out[0], atol=1e-5)
            np.testing.assert_allclose(final[s], single.predict(images[0, s]).logits[0], atol=1e-5)
            for name, value in single.state().items():
                np.testing.assert_allclose(multi_state[name][s], value[0], atol=1e-5)


def test_runtime_steps_match_the_torch_learner(tiny_run, tiny_onnx):
    """teach() returns what the meta-trained learner predicts for each step of an episode, with the
    previous label entering alongside the next image: the training protocol, step by step."""
    torch = pytest.importorskip("torch")
    from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint

    model = learner_from_checkpoint(load_checkpoint(tiny_run / "last.pt"))
    rng = np.random.default_rng(3)
    images = (rng.random((12, 1, 12, 12)) < 0.15).astype(np.float32)
    labels = rng.integers(0, 3, 12)
    prev = np.zeros((12, 3), np.float32)
    prev[np.arange(1, 12), labels[:-1]] = 1.0
    with torch.no_grad():
        expected, _, _ = model.unroll(torch.from_numpy(images)[None], torch.from_numpy(prev)[None])
    with Learner.load(tiny_onnx) as learner:
        got = np.stack([learner.teach(images[t], int(labels[t])).logits[0] for t in range(12)])
    np.testing.assert_allclose(got, expected[0].numpy(), atol=1e-4)


def test_learns_held_out_classes_from_a_few_examples(tiny_onnx, omniglot):
    """Teach 2 drawings each of 3 meta-test characters; other drawings of them are named well above chance."""
    from edgemeta.runtime.omniglot import split_classes

    from conftest import taught_accuracy

    images = omniglot.images(12)[split_classes()["test"]]
    with Learner.load(tiny_onnx) as learner:
        accuracy = taught_accuracy(learner, images, ways=3, rounds=20, queries=5)
    assert accuracy > 0.6, f"accuracy {accuracy:.2f} on held-out classes (chance 0.33)"


def test_warns_once_past_the_training_episode_length(tmp_path):
    path = toy_learner(tmp_path / "toy.onnx", metadata=toy_metadata(episode_steps=3))
    with Learner.load(path) as learner, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(3):
            learner.teach(ink(0.1), i % 3)
        assert not [w for w in caught if issubclass(w.category, EpisodeLengthWarning)]
        for i in range(5):
            learner.teach(ink(0.1), i % 3)
        found = [w for w in caught if issubclass(w.category, EpisodeLengthWarning)]
        assert len(found) == 1 and "episodes of 3 steps" in str(found[0].message)
        learner.reset()
        for i in range(4):
            learner.teach(ink(0.1), 0)
        assert len([w for w in caught if issubclass(w.category, EpisodeLengthWarning)]) == 2


@pytest.mark.parametrize("image, message", [
    (np.zeros((8, 8), np.uint8), "dtype uint8"),
    (np.zeros((9, 8), np.float32), r"got shape \(9, 8\)"),
    (np.zeros((2, 1, 8, 8), np.float32), r"got shape \(2, 1, 8, 8\)"),
    (np.full((8, 8), np.nan, np.float32), "NaN"),
])
def test_bad_images_are_refused_clearly(toy, image, message):
    with Learner.load(toy) as learner:
        with pytest.raises(EdgemetaError, match=message):
            learner.predict(image)
        learner.teach(ink(0.1), 0)  # still usable afterwards
        assert learner.num_taught == 1


@pytest.mark.parametrize("label, message", [
    (3, "out of range"), (-1, "out of range"), (1.0, "integer"), (True, "integer"), ("a", "integer"),
])
def test_bad_labels_are_refused_clearly(toy, label, message):
    with Learner.load(toy) as learner:
        with pytest.raises(EdgemetaError, match=message):
            learner.teach(ink(0.1), label)
        assert learner.num_taught == 0 and learner.pending_label == -1


def test_batched_labels_must_match_the_streams(toy):
    with Learner.load(toy, batch=2) as learner:
        with pytest.raises(EdgemetaError, match=r"expected \(2,\)"):
            learner.teach(ink(0.1, batch=2), 1)
        with pytest.raises(EdgemetaError, match="out of range"):
            learner.teach(ink(0.1, batch=2), np.array([0, 3]))
        learner.teach(ink(0.1, batch=2), np.array([-1, -1]))  # nobody taught: nothing changes
        assert learner.num_taught.tolist() == [0, 0]


def test_load_arguments_and_lifetime(toy, tmp_path):
    with pytest.raises(EdgemetaError, match="batch must be a positive integer"):
        Learner.load(toy, batch=0)
    with pytest.raises(EdgemetaError, match="unknown backend"):
        Learner.load(toy, backend="tflite")
    with pytest.raises(EdgemetaError, match="does not exist"):
        Learner.load(tmp_path / "missing.onnx")
    with pytest.raises(EdgemetaError, match="no shipped learner named 'nonesuch'"):
        Learner.load("nonesuch")
    with pytest.raises(EdgemetaError, match="backend 'trt' runs TensorRT engines"):
        Learner.load(toy, backend="trt")
    (tmp_path / "learner.engine").write_bytes(b"\0")
    with pytest.raises(EdgemetaError, match="TensorRT engine; load it with backend='trt'"):
        Learner.load(tmp_path / "learner.engine", backend="ort")
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    toy_learner(export_dir / "learner.onnx")
    learner = Learner.load(export_dir)  # an export directory works too
    assert learner.path.name == "learner.onnx" and "toy" in repr(learner)
    learner.close()
    with pytest.raises(EdgemetaError, match="closed"):
        learner.predict(ink(0.1))
