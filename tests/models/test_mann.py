"""The MANN step: LRUA memory behaviour, zero state = fresh learner, step == unroll."""
from __future__ import annotations

import torch

from edgemeta.models import ModelConfig, build_learner
from edgemeta.training.presets import preset

SMALL = dict(arch="mann", image_size=8, num_classes=3, controller=16, memory_slots=8, memory_width=4, read_heads=2)


def run_steps(learner, steps, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = learner.zero_state(batch)
    states = []
    with torch.no_grad():
        for t in range(steps):
            img = torch.rand(batch, 1, learner.cfg.image_size, learner.cfg.image_size, generator=g)
            prev = torch.nn.functional.one_hot(torch.randint(0, 3, (batch,), generator=g), 3).float()
            _, _, state = learner.step(img, prev, state)
            states.append(state)
    return states


def test_paper_sizes():
    m = build_learner(preset("mann").model_config())
    shapes = m.state_shapes()
    assert shapes["h"] == (200,) and shapes["memory"][0] == 128 and shapes["read_weights"] == (4, 128)
    assert m.cfg.image_size == 20 and m.cfg.num_classes == 5


def test_least_used_slots_are_written_and_zero_state_is_fresh():
    torch.manual_seed(0)
    m = build_learner(ModelConfig(**SMALL))
    states = run_steps(m, 12)
    first = states[0]
    assert all(torch.isfinite(v).all() for v in first.values())
    # fresh learner: usage ties are broken, so the writes go mostly to read_heads distinct slots (0 and 1)
    assert set(torch.topk(first["usage"][0], 2).indices.tolist()) == {0, 1}
    # usage decays and stays bounded: at most (reads + writes) / (1 - gamma) per slot
    bound = 2 * SMALL["read_heads"] / (1 - m.cfg.gamma)
    assert all(float(s["usage"].max()) <= bound for s in states)
    # read weights are distributions over slots
    rw = states[-1]["read_weights"]
    torch.testing.assert_close(rw.sum(-1), torch.ones_like(rw.sum(-1)))


def test_label_arrives_late_and_is_stored_with_the_previous_key():
    torch.manual_seed(4)
    m = build_learner(ModelConfig(**SMALL))
    w = SMALL["memory_width"]
    with torch.no_grad():
        _, _, s0 = m.step(torch.rand(1, 1, 8, 8), torch.zeros(1, 3), m.zero_state(1))
        y0 = torch.tensor([[0.0, 0.0, 1.0]])  # the label of the first image arrives with the second
        _, _, s1 = m.step(torch.rand(1, 1, 8, 8), y0, s0)
    # the least-used slots at step 1 (slots 2 and 3 after the tie-break) got [k_0; y_0] of their head
    for head, slot in enumerate(torch.topk(-(s0["usage"][0] + m.tie_break), 2).indices.tolist()):
        row = s1["memory"][0, slot]
        k0 = s0["keys"][0, head]
        cos = torch.nn.functional.cosine_similarity(row[:w], k0, dim=0)
        assert cos > 0.99
        assert row[w:].argmax().item() == 2 and row[w:].max() > 0.8


def test_least_used_slot_is_zeroed_before_writing():
    torch.manual_seed(1)
    m = build_learner(ModelConfig(**SMALL))
    state = {k: v.clone() for k, v in m.zero_state(1).items()}
    state["memory"].fill_(5.0)
    state["usage"] = torch.tensor([[3.0, 0.1, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0]])  # slot 1 least used
    with torch.no_grad():
        m.heads.weight.zero_()
        m.heads.bias.view(2, -1)[:, SMALL["memory_width"]] = -50.0  # write only to least-used slots
        _, _, nxt = m.step(torch.zeros(1, 1, 8, 8), torch.zeros(1, 3), state)
    # slot 1 was cleared and rewritten from scratch; slot 2 (2nd least used) got a write on top of 5.0
    assert float(nxt["memory"][0, 1].abs().max()) < 5.0
    assert float(nxt["memory"][0, 3].sub(5.0).abs().max()) < 1e-5  # untouched slot unchanged


def test_step_matches_unroll_and_state_carries():
    torch.manual_seed(2)
    for arch in ("mann", "lstm"):
        m = build_learner(ModelConfig(**{**SMALL, "arch": arch}))
        x = torch.rand(3, 6, 1, 8, 8)
        prev = torch.rand(3, 6, 3)
        with torch.no_grad():
            logits, _, final = m.unroll(x, prev)
            state = m.zero_state(3)
            for t in range(6):
                lg, _, state = m.step(x[:, t], prev[:, t], state)
                torch.testing.assert_close(lg, logits[:, t])
        for k in final:
            torch.testing.assert_close(final[k], state[k])


def test_zero_state_gradients_are_finite():
    torch.manual_seed(3)
    m = build_learner(ModelConfig(**SMALL))
    logits, _, _ = m.unroll(torch.rand(2, 5, 1, 8, 8), torch.zeros(2, 5, 3))
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


EMBED_KEYS = dict(arch="mann", image_size=8, num_classes=4, encoder="conv", conv_channels=(4,), embedding=16,
                  embedding_norm=True, controller=16, memory_slots=8, memory_width=16, read_heads=2)


def test_embedding_keys_start_as_the_embedding():
    """key_init='embedding': before any training every head's key is tanh(KEY_SCALE * embedding),
    whatever the controller's state, so the first reads are cosine nearest neighbours on the embedding."""
    from edgemeta.models.mann import KEY_SCALE

    torch.manual_seed(5)
    g = torch.Generator().manual_seed(5)
    images = torch.rand(6, 1, 1, 8, 8, generator=g).round()  # six random binary "drawings"
    m = build_learner(ModelConfig(**EMBED_KEYS, key_init="embedding"))
    with torch.no_grad():
        for probe in range(3):
            state, prev = m.zero_state(1), torch.zeros(1, 4)
            for label, img in enumerate(images[:5]):  # five steps: the controller's state moves away from zero
                _, _, state = m.step(img, prev, state)
                prev = torch.nn.functional.one_hot(torch.tensor([label % 4]), 4).float()
            _, _, state = m.step(images[probe], prev, state)
            expected = torch.tanh(KEY_SCALE * m.encoder(images[probe]))
            assert state["h"].abs().max() > 0.01
            torch.testing.assert_close(state["keys"][0], expected.expand(2, -1))  # both heads, whatever h is
    # the default start: keys depend on the controller's state too
    random = build_learner(ModelConfig(**EMBED_KEYS))
    with torch.no_grad():
        _, _, state = random.step(images[0], torch.zeros(1, 4), random.zero_state(1))
    assert not torch.allclose(state["keys"][0], torch.tanh(KEY_SCALE * random.encoder(images[0])).expand(2, -1), atol=0.05)


def test_embedding_keys_need_a_matching_memory_width():
    import pytest

    from edgemeta import EdgemetaError

    with pytest.raises(EdgemetaError, match="memory_width == embedding"):
        ModelConfig(**{**EMBED_KEYS, "memory_width": 12}, key_init="embedding")
    with pytest.raises(EdgemetaError, match="unknown key_init"):
        ModelConfig(**EMBED_KEYS, key_init="pca")

