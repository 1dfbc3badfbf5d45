"""The synthetic generator: preset sizes, determinism, realistic shape, learnable structure."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_fast.data import PRESETS, synthesize


@pytest.mark.parametrize("preset", ["tiny", "ml-100k"])
def test_presets_have_their_sizes_and_every_item_occurs(preset):
    ds = synthesize(preset, seed=0)
    expected = PRESETS[preset]
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (expected["users"], expected["items"], expected["interactions"])
    assert np.all(np.bincount(ds.items, minlength=ds.n_items + 1)[1:] > 0)


def test_deterministic_in_the_seed():
    a, b, c = synthesize("tiny", seed=4), synthesize("tiny", seed=4), synthesize("tiny", seed=5)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.times, b.times)
    assert not np.array_equal(a.items, c.items)


def test_movielens_like_shape():
    ds = synthesize("ml-100k")
    lengths = np.diff(ds.offsets)
    assert lengths.min() >= 20 and lengths.max() <= 737
    assert np.median(lengths) < lengths.mean()  # long tail, like MovieLens
    counts = np.sort(np.bincount(ds.items)[1:])[::-1]
    assert counts[: len(counts) // 10].sum() > 0.3 * counts.sum()  # skewed popularity
    for u in range(0, ds.n_users, 97):
        sequence = ds.sequence(u)
        assert len(set(sequence.tolist())) == len(sequence)
        assert np.all(np.diff(ds.times[ds.offsets[u]:ds.offsets[u + 1]]) > 0)


def test_a_transition_model_beats_popularity_by_a_wide_margin():
    """Planted structure: item-to-item counts from training data predict the next (test) item
    far better than global popularity (HR@10 over all users)."""
    ds = synthesize("ml-100k", seed=1)
    n = ds.n_items + 1
    transitions = np.zeros((n, n), dtype=np.int32)
    for u in range(ds.n_users):
        train = ds.train_sequence(u)
        np.add.at(transitions, (train[:-1], train[1:]), 1)
    popularity = ds.item_counts().astype(float)
    hits_transition = hits_popularity = 0
    for u in range(ds.n_users):
        history = ds.items[ds.offsets[u]:ds.test_pos[u]]
        target = ds.items[ds.test_pos[u]]
        for scores, counter in ((transitions[history[-1]].astype(float), "t"), (popularity.copy(), "p")):
            scores[0] = -np.inf
            scores[history] = -np.inf
            top = np.argpartition(-scores, 10)[:10]
            if target in top:
                if counter == "t":
                    hits_transition += 1
                else:
                    hits_popularity += 1
    assert hits_transition > 3 * hits_popularity, (hits_transition, hits_popularity)


def test_bad_preset_and_options():
    with pytest.raises(ValueError, match="unknown preset"):
        synthesize("ml-1b")
    with pytest.raises(TypeError, match="unknown synthesize options"):
        synthesize("tiny", users=3)
    with pytest.raises(ValueError, match="n_interactions must be in"):
        synthesize("tiny", n_interactions=10)
