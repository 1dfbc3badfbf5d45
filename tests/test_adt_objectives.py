"""ADT's auxiliary objectives on SASRec, BERT4Rec, STOSA and a grid supernet: values against
hand computations, padding invariance, gradients, errors, and that no captured graph leaks."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch
from torch import nn

from seqrec_fast.algorithms.adt.objectives import DisentanglementObjectives
from seqrec_fast.models import ModelConfig, build_model
from seqrec_fast.models.layers import ItemPositionEmbedding
from seqrec_fast.ops import GridTransformerLayer, grid_corners

N_ITEMS = 20
BACKBONES = ["sasrec", "bert4rec", "stosa", "grid"]


def tiny_config(name: str, **overrides) -> ModelConfig:
    fields = dict(name=name, hidden_size=16, num_layers=2, num_heads=2, inner_size=32, max_len=12,
                  dropout=0.1, attn_dropout=0.1)
    return ModelConfig(**{**fields, **overrides})


class TinyGridSupernet(nn.Module):
    """Embedding + grid Transformer layers, each at its own grid coordinates (the lead's layout)."""

    def __init__(self, config: ModelConfig, coords: list[tuple[float, float]]):
        super().__init__()
        self.config, self.coords = config, coords
        self.embedding = ItemPositionEmbedding(N_ITEMS + 1, config.max_len, config.hidden_size, config.dropout)
        self.layers = nn.ModuleList(
            GridTransformerLayer(config.hidden_size, config.num_heads, config.inner_size, grid_size=3,
                                 dropout=config.dropout) for _ in coords)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        valid = inputs > 0
        x = self.embedding(inputs, valid)
        for layer, coords in zip(self.layers, self.coords):
            x = layer(x, coords, key_padding_mask=~valid)
        return x


def make_model(name: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    if name == "grid":
        return TinyGridSupernet(tiny_config("sasrec", **overrides), [(0.3, 0.8), (0.5, 0.0)])
    return build_model(tiny_config(name, **overrides), N_ITEMS)


def batch(lengths=(7, 4, 1), width: int = 7) -> torch.Tensor:
    """Left-padded sequences of the given lengths."""
    generator = torch.Generator().manual_seed(1)
    rows = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        rows[row, width - length:] = torch.randint(1, N_ITEMS + 1, (length,), generator=generator)
    return rows


def losses(model: nn.Module, objectives: DisentanglementObjectives, inputs: torch.Tensor):
    model(inputs)
    return objectives(inputs)


@pytest.mark.parametrize("name", BACKBONES)
def test_shapes_values_and_gradients(name):
    model = make_model(name)
    objectives = DisentanglementObjectives(model)
    assert objectives.num_layers == 2
    assert not {id(p) for p in objectives.parameters()} & {id(p) for p in model.parameters()}
    ind, rec = losses(model.train(), objectives.train(), batch())
    for loss in (ind, rec):
        assert loss.shape == (2,) and loss.dtype == torch.float32 and torch.isfinite(loss).all()
        assert (loss > 0).all()
    # A fresh classifier over 2 heads is near chance: cross-entropy about log 2.
    assert torch.allclose(ind, torch.full_like(ind, math.log(2)), atol=0.1)
    (ind.sum() + rec.sum()).backward()
    for pname, parameter in objectives.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), pname
    assert all(c.weight.grad.abs().sum() > 0 for c in objectives.classifiers)
    assert all(d.cross_attention.key_value.weight.grad.abs().sum() > 0 for d in objectives.decoder)
    model_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    embedding = {"grid": "embedding.items.weight", "stosa": "item_mean.weight"}.get(name, "encoder.embedding.items.weight")
    assert embedding in model_grads
    for layer in range(2):  # every layer's attention is trained by the objectives
        assert any(f".{layer}." in n and ("qkv" in n) for n in model_grads), (layer, sorted(model_grads))


def test_each_objective_alone_reaches_the_model():
    model = make_model("sasrec")
    independence = DisentanglementObjectives(model, reconstruction=False)
    ind, rec = losses(model, independence, batch())
    assert torch.equal(rec, torch.zeros(2)) and not hasattr(independence, "decoder")
    ind.sum().backward()
    assert model.encoder.blocks[1].attention.qkv.weight.grad.abs().sum() > 0
    independence.remove_hooks()
    model.zero_grad()
    reconstruction = DisentanglementObjectives(model, independence=False)
    ind, rec = losses(model, reconstruction, batch())
    assert torch.equal(ind, torch.zeros(2)) and not hasattr(reconstruction, "classifiers")
    rec.sum().backward()
    assert model.encoder.embedding.items.weight.grad.abs().sum() > 0
    assert not list(DisentanglementObjectives(model, independence=False, reconstruction=False).parameters())


def head_context_by_hand(attention, x, valid, b, t, head):
    """Masked causal softmax attention of one head at one query, from the block's own weights."""
    heads = attention.num_heads
    q, k, v = attention.qkv(x[b]).view(x.shape[1], 3, heads, -1)[:, :, head].unbind(1)
    keys = [j for j in range(t + 1) if valid[b, j]]
    scores = torch.stack([q[t] @ k[j] for j in keys]) / math.sqrt(q.shape[-1])
    return (torch.softmax(scores, 0)[:, None] * v[keys]).sum(0)


def test_independence_matches_hand_computation():
    model = make_model("sasrec", num_layers=1, num_heads=4).eval()
    objectives = DisentanglementObjectives(model, reconstruction=False)
    inputs = batch()
    ind, _ = losses(model, objectives, inputs)
    valid = inputs > 0
    x = model.encoder.embedding(inputs, valid)
    attention, classifier = model.encoder.blocks[0].attention, objectives.classifiers[0]
    terms = [-torch.log_softmax(classifier(head_context_by_hand(attention, x, valid, b, t, head)), -1)[head]
             for b, t in valid.nonzero().tolist() for head in range(4)]
    assert torch.allclose(ind[0], torch.stack(terms).mean(), atol=1e-5)


def test_grid_independence_blends_the_corner_contexts():
    model = make_model("grid").eval()
    objectives = DisentanglementObjectives(model, reconstruction=False)
    corners = []
    model.layers[0].attn_out.register_forward_pre_hook(lambda module, args: corners.append(args[0]))
    inputs = batch()
    ind, _ = losses(model, objectives, inputs)
    _, weights = grid_corners(model.coords[0], 3)
    context = sum(w * h for w, h in zip(weights, corners[0]))  # [B, L, d]
    logits = objectives.classifiers[0](context.unflatten(-1, (2, -1)))  # [B, L, heads, heads]
    log_probs = torch.log_softmax(logits, -1).diagonal(dim1=-2, dim2=-1)  # head k's log P(k)
    assert torch.allclose(ind[0], -log_probs[inputs > 0].mean(), atol=1e-5)


def multi_head(q, k, v, heads):
    """Softmax attention of one query q [d] over keys/values [n, d], heads concatenated."""
    out = []
    for qh, kh, vh in zip(q.chunk(heads), k.chunk(heads, -1), v.chunk(heads, -1)):
        out.append((torch.softmax(kh @ qh / math.sqrt(qh.shape[0]), 0)[:, None] * vh).sum(0))
    return torch.cat(out)


def test_reconstruction_matches_hand_computation_on_one_layer():
    model = make_model("sasrec", num_layers=1).eval()
    objectives = DisentanglementObjectives(model, independence=False).eval()
    inputs = batch()
    valid = inputs > 0
    memory = model(inputs)
    _, rec = objectives(inputs)
    h0 = model.encoder.embedding(inputs, valid)
    layer, heads = objectives.decoder[0], 2
    errors = []
    for b in range(inputs.shape[0]):
        real = [t for t in range(inputs.shape[1]) if valid[b, t]]
        # The decoder sees the user's items shifted right by one, a zero vector before the first.
        shifted = torch.stack([h0[b, t - 1] if t - 1 in real else torch.zeros(16) for t in real])
        self_in = layer.self_norm(shifted)
        q, k, v = layer.self_attention.qkv(self_in).chunk(3, -1)
        for i, t in enumerate(real):
            x = shifted[i] + layer.self_attention.out(multi_head(q[i], k[: i + 1], v[: i + 1], heads))
            x = layer.cross_norm(x)
            cross = layer.cross_attention
            keys, values = cross.key_value(memory[b, real]).chunk(2, -1)
            x = x + cross.out(multi_head(cross.query(x), keys, values, heads))
            x = x + layer.feed_forward(layer.ffn_norm(x))
            errors.append(((x - h0[b, t]) ** 2).mean())
    assert torch.allclose(rec[0], torch.stack(errors).mean(), atol=1e-5)


def test_stosa_objectives_read_the_mean_stream_and_match_layers_in_reverse():
    model = make_model("stosa", num_layers=3).eval()
    objectives = DisentanglementObjectives(model).eval()
    layer_inputs, contexts, decoded, memories = [], [], [], []
    for block in model.blocks:  # STOSA's mean stream is the first argument
        block.register_forward_pre_hook(lambda module, args: layer_inputs.append(args[0]))
        block.attention.mean_out.register_forward_pre_hook(lambda module, args: contexts.append(args[0]))
    for layer in objectives.decoder:
        layer.register_forward_hook(lambda module, args, out: decoded.append(out))
        layer.cross_attention.register_forward_pre_hook(lambda module, args: memories.append(args[1]))
    inputs = batch()
    output = model(inputs)
    ind, rec = objectives(inputs)
    valid = inputs > 0
    assert all(torch.equal(memory, output[..., :16]) for memory in memories)  # h^L: the mean half
    for index in range(3):
        error = ((decoded[2 - index] - layer_inputs[index]) ** 2).mean(-1)[valid].mean()
        assert torch.allclose(rec[index], error, atol=1e-6)
        logits = objectives.classifiers[index](contexts[index].unflatten(-1, (2, -1)))
        log_probs = torch.log_softmax(logits, -1).diagonal(dim1=-2, dim2=-1)
        assert torch.allclose(ind[index], -log_probs[valid].mean(), atol=1e-6)


@pytest.mark.parametrize("name", BACKBONES)
def test_padding_never_changes_the_losses(name):
    model = make_model(name).eval()
    objectives = DisentanglementObjectives(model).eval()
    inputs = batch()
    padded = torch.cat([torch.zeros(3, 4, dtype=torch.long), inputs], dim=1)
    padded = torch.cat([padded, torch.zeros(1, padded.shape[1], dtype=torch.long)])  # an all-padding row
    plain, more = losses(model, objectives, inputs), losses(model, objectives, padded)
    for a, b in zip(plain, more):
        assert torch.isfinite(b).all()
        assert torch.allclose(a, b, atol=1e-5), (a, b)


@pytest.mark.parametrize("name", ["gru4rec", "nextitnet"])
def test_models_without_attention_are_refused(name):
    model = build_model(tiny_config(name, dilations=(1, 2)), N_ITEMS)
    with pytest.raises(ValueError, match=f"{type(model).__name__}.*Transformer backbone"):
        DisentanglementObjectives(model)


def test_independence_needs_two_heads():
    model = make_model("sasrec", num_heads=1)
    with pytest.raises(ValueError, match="independence=False"):
        DisentanglementObjectives(model)
    ind, rec = losses(model, DisentanglementObjectives(model, independence=False), batch())
    assert torch.equal(ind, torch.zeros(2)) and torch.isfinite(rec).all()


def test_objectives_need_a_model_forward_on_the_same_inputs():
    model = make_model("bert4rec")
    objectives = DisentanglementObjectives(model)
    with pytest.raises(RuntimeError, match="run the model"):
        objectives(batch())
    losses(model, objectives, batch())
    with pytest.raises(RuntimeError, match="run the model"):  # the captures were used up
        objectives(batch())
    model(batch())
    with pytest.raises(ValueError, match="same inputs"):
        objectives(batch(lengths=(2, 3)))
    objectives.remove_hooks()
    model(batch())
    with pytest.raises(RuntimeError, match="run the model"):
        objectives(batch())


def test_no_captured_tensor_outlives_the_losses():
    model = make_model("sasrec")
    objectives = DisentanglementObjectives(model)
    seen = []
    model.encoder.blocks[1].register_forward_pre_hook(lambda module, args: seen.append(weakref.ref(args[0])))
    hidden = model(batch())
    del hidden
    gc.collect()
    assert seen[-1]() is not None  # held by the objectives until they run
    ind, rec = objectives(batch())
    (ind.sum() + rec.sum()).backward()
    del ind, rec
    gc.collect()
    assert seen[-1]() is None
