"""Training and evaluation batches: coverage, sharding, negatives, padding, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from seqrec_fast.data import from_interactions


def all_batches(loader, epoch=0, start_batch=0):
    return list(loader.epoch(epoch, start_batch))


def training_targets(batches):
    """(user, item) of every non-padding target, counting repeats."""
    pairs = []
    for b in batches:
        rows, cols = np.nonzero(b["targets"])
        pairs += list(zip(b["users"][rows].tolist(), b["targets"][rows, cols].tolist()))
    return pairs


@pytest.mark.parametrize("world_size", [1, 3])
def test_sliding_epoch_covers_every_training_interaction_once_across_shards(tiny, world_size):
    seen = []
    users_per_rank = []
    for rank in range(world_size):
        loader = tiny.train_loader(batch_size=32, max_len=7, window="sliding", rank=rank, world_size=world_size, seed=5)
        batches = all_batches(loader, epoch=2)
        assert len(batches) == len(loader)
        seen += training_targets(batches)
        users_per_rank.append({u for b in batches for u in b["users"].tolist()})
    expected = [(u, int(x)) for u in range(tiny.n_users) for x in tiny.train_sequence(u)[1:]]
    assert sorted(seen) == sorted(expected)
    for a in range(world_size):
        for b in range(a + 1, world_size):
            assert not users_per_rank[a] & users_per_rank[b]


@pytest.mark.parametrize("stride", [1, 3, 7])
def test_strided_windows_put_targets_only_on_their_last_stride_positions(tiny, stride):
    max_len = 7
    loader = tiny.train_loader(batch_size=64, max_len=max_len, window="stride", stride=stride, seed=1)
    batches = all_batches(loader, epoch=1)
    for b in batches:
        assert not b["targets"][:, : max_len - stride].any()  # the rest is context
        has_input = b["inputs"] > 0
        assert np.all(has_input[b["targets"] > 0])  # every target has its previous item as input
    # Still every training interaction exactly once per epoch, now with longer contexts.
    expected = [(u, int(x)) for u in range(tiny.n_users) for x in tiny.train_sequence(u)[1:]]
    assert sorted(training_targets(batches)) == sorted(expected)
    if stride < max_len:
        context = [int((b["inputs"][r] > 0).sum()) for b in batches for r in range(len(b["users"]))]
        assert len(batches) >= len(all_batches(tiny.train_loader(batch_size=64, max_len=max_len,
                                                                 window="sliding", seed=1), epoch=1))
        assert max(context) == max_len


def test_stride_equal_to_max_len_is_sliding(tiny):
    options = dict(batch_size=16, max_len=6, seed=2)
    strided = all_batches(tiny.train_loader(window="stride", stride=6, **options))
    sliding = all_batches(tiny.train_loader(window="sliding", **options))
    assert len(strided) == len(sliding)
    for a, b in zip(strided, sliding):
        for key in ("inputs", "targets", "users"):
            np.testing.assert_array_equal(a[key], b[key])


def test_causal_inputs_are_shifted_targets_and_left_padded(tiny):
    loader = tiny.train_loader(batch_size=16, max_len=40, shuffle=False)
    batch = next(iter(loader.epoch(0)))
    for row, user in enumerate(batch["users"]):
        train = tiny.train_sequence(user)
        n = min(len(train) - 1, 40)
        inputs, targets = batch["inputs"][row], batch["targets"][row]
        assert np.all(inputs[: 40 - n] == 0) and np.all(targets[: 40 - n] == 0)
        np.testing.assert_array_equal(targets[40 - n:], train[len(train) - n:])
        np.testing.assert_array_equal(inputs[40 - n:], train[len(train) - n - 1: -1])


def test_truncation_keeps_the_most_recent_items(tiny):
    loader = tiny.train_loader(batch_size=300, max_len=3, shuffle=False)
    batch = next(iter(loader.epoch(0)))
    for row, user in enumerate(batch["users"]):
        train = tiny.train_sequence(user)
        np.testing.assert_array_equal(batch["targets"][row], train[-3:])
        np.testing.assert_array_equal(batch["inputs"][row], train[-4:-1])


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
@pytest.mark.parametrize("mode", ["causal", "cloze"])
def test_negatives_never_come_from_the_users_history(tiny, sampler, mode):
    loader = tiny.train_loader(batch_size=64, max_len=20, n_negatives=3, negative_sampler=sampler, mode=mode)
    for batch in loader.epoch(1):
        assert batch["negatives"].shape == batch["targets"].shape + (3,)
        for row, user in enumerate(batch["users"]):
            history = set(tiny.train_sequence(user).tolist())
            has_target = batch["targets"][row] != 0
            negatives = batch["negatives"][row]
            assert np.all(negatives[~has_target] == 0)
            drawn = negatives[has_target].ravel().tolist()
            assert all(1 <= x <= tiny.n_items for x in drawn)
            assert not history & set(drawn)


def test_popularity_sampler_prefers_popular_items(tiny):
    def negative_counts(sampler):
        loader = tiny.train_loader(batch_size=300, max_len=50, n_negatives=5, negative_sampler=sampler)
        drawn = np.concatenate([b["negatives"].ravel() for b in loader.epoch(0)])
        return np.bincount(drawn, minlength=tiny.n_items + 1)[1:]

    top = np.argsort(tiny.item_counts()[1:])[-15:]
    popular, uniform = negative_counts("popularity"), negative_counts("uniform")
    # Histories exclude many popular items in this small catalogue, so compare with uniform draws.
    assert popular[top].sum() > 1.5 * uniform[top].sum()


WINDOWS = [dict(window="last"), dict(window="sliding"), dict(window="stride", stride=4), dict(window="stride", stride=1)]


@pytest.mark.parametrize("windows", WINDOWS)
@pytest.mark.parametrize("mode, mask_last_ratio, mask_span", [("causal", 0.0, "targets"), ("cloze", 0.0, "targets"),
                                                              ("cloze", 0.5, "targets"), ("cloze", 0.5, "window")])
def test_a_batch_holds_about_batch_size_targets(tiny, windows, mode, mask_last_ratio, mask_span):
    max_len, batch_size = 20, 96
    loader = tiny.train_loader(batch_size=batch_size, max_len=max_len, mode=mode, mask_last_ratio=mask_last_ratio,
                               mask_span=mask_span, seed=3, **windows)
    counts = [int(np.count_nonzero(b["targets"])) for b in loader.epoch(1)]
    assert len(counts) == len(loader) == len(list(loader.epoch(2)))  # the same count every epoch
    span = max_len if mask_span == "window" else windows.get("stride", max_len)  # a window's most targets
    # Batches of next-item targets are within one window of batch_size; masked targets are drawn
    # at random, so their batches are about batch_size on average.
    mean = np.mean(counts)
    assert batch_size - span <= mean <= batch_size + (0 if mode == "causal" else 0.1 * batch_size)
    if mode == "causal":
        assert max(counts) <= batch_size + span and min(counts[:-1]) >= batch_size - 2 * span


@pytest.mark.parametrize("windows", WINDOWS[1:])
def test_cloze_windows_cover_every_training_interaction_once_per_epoch(tiny, windows):
    loader = tiny.train_loader(batch_size=64, max_len=12, mode="cloze", mask_last_ratio=0.5, seed=4, **windows)
    span = windows.get("stride", 12)
    covered = []
    for b in loader.epoch(0):
        restored = np.where(b["inputs"] == tiny.mask_token, b["targets"], b["inputs"])
        for user, row in zip(b["users"].tolist(), restored):
            covered += [(user, int(x)) for x in row[-span:] if x]  # the window's target span
    expected = [(u, int(x)) for u in range(tiny.n_users) for x in tiny.train_sequence(u)]
    assert sorted(covered) == sorted(expected)


def test_window_span_masks_every_position_as_often(tiny):
    max_len, stride, mask_prob = 12, 3, 0.3
    for span in ("targets", "window"):
        loader = tiny.train_loader(batch_size=64, max_len=max_len, mode="cloze", mask_prob=mask_prob, mask_span=span,
                                   window="stride", stride=stride, seed=5)
        masks, items = np.zeros(max_len), np.zeros(max_len)
        for b in loader.epoch(0):
            masks += np.count_nonzero(b["inputs"] == tiny.mask_token, axis=0)
            items += np.count_nonzero(b["inputs"], axis=0)
        rate = masks / items  # the share of a column's items that are masked
        if span == "targets":
            assert not rate[:-stride].any() and (rate[-stride:] > mask_prob).all()
        else:
            # mask_prob everywhere, a little more where short windows get their one forced mask.
            assert (rate > 0.9 * mask_prob).all() and (rate < 1.3 * mask_prob).all(), rate
    with pytest.raises(ValueError, match="mask_span"):
        tiny.train_loader(batch_size=64, max_len=12, mask_span="window")


def test_mask_last_batches_put_the_mask_at_the_last_position(tiny):
    loader = tiny.train_loader(batch_size=64, max_len=15, mode="cloze", mask_last_ratio=0.5, window="sliding", seed=6)
    windows = {True: 0, False: 0}
    for b in loader.epoch(0):
        masked = b["inputs"] == tiny.mask_token
        last_only = bool(masked[:, -1].all() and not masked[:, :-1].any())
        windows[last_only] += len(b["users"])
        if last_only:
            assert 56 <= len(b["users"]) <= 64  # about batch_size windows of one target each
            assert (b["targets"][:, -1] > 0).all() and not b["targets"][:, :-1].any()
    # mask_last_ratio of the windows (a random batch that happens to mask only last items counts
    # as mask-last here, so the share may be a little higher)
    assert 0.5 <= windows[True] / (windows[True] + windows[False]) <= 0.55
    with pytest.raises(ValueError, match="cloze"):
        tiny.train_loader(batch_size=64, max_len=15, mask_last_ratio=0.5)


def test_cloze_masks_with_the_mask_token(tiny):
    loader = tiny.train_loader(batch_size=300, max_len=30, mode="cloze", mask_prob=0.3)
    batch = next(iter(loader.epoch(0)))
    masked = batch["inputs"] == tiny.mask_token
    assert np.array_equal(masked, batch["targets"] != 0)
    assert masked.any(axis=1).all()  # every row teaches something
    fraction = masked.sum() / (batch["inputs"] != 0).sum()
    assert 0.2 < fraction < 0.4
    for row, user in enumerate(batch["users"]):
        train = tiny.train_sequence(user)[-30:]
        restored = np.where(masked[row], batch["targets"][row], batch["inputs"][row])
        np.testing.assert_array_equal(restored[30 - len(train):], train)


def test_contrastive_views(tiny):
    loader = tiny.train_loader(batch_size=64 * 30, max_len=30, augmentations=("mask", "crop", "reorder"),
                               augment_fraction=0.5)
    batch = next(iter(loader.epoch(0)))
    rows = len(batch["users"])
    assert rows > 32 and batch["views"].shape == (2, rows, 30) and batch["views"].dtype == np.int64
    assert "view1" not in batch and "view2" not in batch
    assert not np.array_equal(batch["views"][0], batch["views"][1])
    for row in range(rows):
        source = batch["inputs"][row][batch["inputs"][row] != 0]
        for view in batch["views"][:, row]:
            kept = view[(view != 0) & (view != tiny.mask_token)]
            assert set(kept.tolist()) <= set(source.tolist())
            assert 0 < (view != 0).sum() <= len(source)


VIEWS = dict(batch_size=64, max_len=20, window="stride", stride=5, augmentations=("mask", "crop", "reorder"),
             augment_fraction=0.4, seed=11)


def test_n_views_gives_that_many_views_and_extends_the_first_two(tiny):
    two = all_batches(tiny.train_loader(**VIEWS), epoch=1)
    eight = all_batches(tiny.train_loader(n_views=8, num_threads=2, **VIEWS), epoch=1)
    assert len(two) == len(eight)
    for a, b in zip(two, eight):
        rows = len(a["users"])
        assert a["views"].shape == (2, rows, 20) and b["views"].shape == (8, rows, 20)
        # Each window draws its views one after the other from its own random stream, after
        # everything else: eight views begin with the two, and the rest of the batch is the same.
        np.testing.assert_array_equal(b["views"][:2], a["views"])
        for key in ("inputs", "targets", "users"):
            np.testing.assert_array_equal(a[key], b[key])
        # Eight independent views: no view repeats another over the whole batch.
        flat = b["views"].reshape(8, -1)
        assert len({v.tobytes() for v in flat}) == 8


def test_one_view_per_window_is_the_first_of_two(tiny):
    two = next(iter(tiny.train_loader(**VIEWS).epoch(0)))
    one = next(iter(tiny.train_loader(n_views=1, **VIEWS).epoch(0)))
    assert one["views"].shape == (1,) + two["inputs"].shape
    np.testing.assert_array_equal(one["views"][0], two["views"][0])


def test_views_are_deterministic_for_seed_and_epoch_and_differ_between_epochs(tiny):
    options = dict(VIEWS, n_views=4, shuffle=False)
    loader = tiny.train_loader(**options)
    epoch0, epoch1 = all_batches(loader, 0), all_batches(loader, 1)
    again = all_batches(tiny.train_loader(num_threads=0, **options), 1)
    for a, b in zip(epoch1, again):
        np.testing.assert_array_equal(a["views"], b["views"])
    # Without shuffling, both epochs hold the same windows in the same rows; their views differ.
    assert len(epoch0) == len(epoch1)
    for a, b in zip(epoch0, epoch1):
        np.testing.assert_array_equal(a["inputs"], b["inputs"])
        for v in range(4):
            assert not np.array_equal(a["views"][v], b["views"][v])
    other_seed = all_batches(tiny.train_loader(**{**options, "seed": 12}), 1)
    assert not np.array_equal(other_seed[0]["views"], epoch1[0]["views"])


def test_every_reordered_view_keeps_the_windows_items(tiny):
    loader = tiny.train_loader(**{**VIEWS, "augmentations": ("reorder",), "augment_fraction": 0.6}, n_views=6)
    shuffled = 0
    for batch in loader.epoch(0):
        for v, views in enumerate(batch["views"]):
            for row, view in enumerate(views):
                source = batch["inputs"][row]
                assert sorted(view.tolist()) == sorted(source.tolist()), f"view {v} of row {row}"
                shuffled += not np.array_equal(view, source)
    assert shuffled > 0


def test_every_masked_view_masks_the_augment_fraction(tiny):
    fraction = 0.3
    loader = tiny.train_loader(**{**VIEWS, "augmentations": ("mask",), "augment_fraction": fraction}, n_views=5)
    masked = items = 0
    for batch in loader.epoch(0):
        assert batch["views"].shape[0] == 5
        for views in batch["views"]:
            for row, view in enumerate(views):
                source = batch["inputs"][row]
                n = int((source != 0).sum())
                is_mask = view == tiny.mask_token
                # The window's item count times the fraction, rounded half away from zero.
                assert is_mask.sum() == np.floor(n * fraction + 0.5)
                np.testing.assert_array_equal(view[~is_mask], source[~is_mask])
                assert not np.any(source[is_mask] == 0)  # padding is never masked
                masked, items = masked + int(is_mask.sum()), items + n
    assert abs(masked / items - fraction) < 0.02


def test_bad_n_views_is_rejected(tiny):
    for n_views in (0, -1):
        with pytest.raises(ValueError, match=r"n_views must be >= 1 \(views per window with augmentations\)"):
            tiny.train_loader(augmentations=("mask",), n_views=n_views)
    with pytest.raises(ValueError, match="n_views applies only with augmentations"):
        tiny.train_loader(n_views=4)
    with pytest.raises(ValueError, match="n_views applies only with augmentations"):
        tiny.train_loader(augmentations=(), n_views=4)
    # The default is harmless without augmentations: batches simply hold no views.
    assert "views" not in next(iter(tiny.train_loader(batch_size=8, max_len=5, n_views=2).epoch(0)))
    # The Rust stream checks the same for callers that skip TrainLoaderConfig.
    from seqrec_fast import _loader

    with pytest.raises(ValueError, match="n_views >= 1"):
        _loader.TrainStream(tiny._sequences, 8, 5, augmentations=["mask"], n_views=0)
    with pytest.raises(ValueError, match="n_views applies only with augmentations"):
        _loader.TrainStream(tiny._sequences, 8, 5, n_views=3)


@pytest.mark.parametrize("threads", [0, 2, 3])
def test_batches_are_the_same_whatever_the_thread_count(tiny, threads):
    options = dict(batch_size=24, max_len=12, n_negatives=2, window="sliding", mode="cloze",
                   augmentations=("crop",), n_views=3, seed=9)
    reference = all_batches(tiny.train_loader(num_threads=1, **options), epoch=4)
    other = all_batches(tiny.train_loader(num_threads=threads, **options), epoch=4)
    assert len(reference) == len(other)
    for a, b in zip(reference, other):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_epochs_differ_seeds_differ_and_resume_is_exact(tiny):
    loader = tiny.train_loader(batch_size=32, max_len=10, n_negatives=1)
    epoch0, epoch1 = all_batches(loader, 0), all_batches(loader, 1)
    assert not np.array_equal(epoch0[0]["users"], epoch1[0]["users"])
    resumed = all_batches(loader, 1, start_batch=4)
    assert len(resumed) == len(epoch1) - 4
    for a, b in zip(epoch1[4:], resumed):
        np.testing.assert_array_equal(a["negatives"], b["negatives"])
    other_seed = all_batches(tiny.train_loader(batch_size=32, max_len=10, n_negatives=1, seed=1), 0)
    assert not np.array_equal(epoch0[0]["users"], other_seed[0]["users"])


def test_batches_wrap_into_torch_without_copy(tiny):
    torch = pytest.importorskip("torch")
    batch = next(iter(tiny.train_loader(batch_size=8, max_len=5).epoch(0)))
    tensor = torch.from_numpy(batch["inputs"])
    assert tensor.data_ptr() == batch["inputs"].ctypes.data and tensor.dtype == torch.int64


@pytest.mark.parametrize("split", ["valid", "test"])
def test_evaluation_batches(tiny, split):
    loader = tiny.eval_loader(split=split, batch_size=50, max_len=10, n_sampled_negatives=20, seed=3)
    positions = tiny.valid_pos if split == "valid" else tiny.test_pos
    users = []
    for batch in loader:
        for row, user in enumerate(batch["users"]):
            users.append(int(user))
            pos = positions[user]
            target = tiny.items[pos]
            before = tiny.items[tiny.offsets[user]:pos]
            assert batch["targets"][row] == target
            shown = before[-10:]
            np.testing.assert_array_equal(batch["inputs"][row][10 - len(shown):], shown)
            a, b = batch["history_offsets"][row], batch["history_offsets"][row + 1]
            assert batch["history_items"][a:b].tolist() == sorted(set(before.tolist()) - {target})
            negatives = batch["negatives"][row].tolist()
            assert len(set(negatives)) == 20
            assert not set(negatives) & (set(before.tolist()) | {target})
    assert users == [u for u in range(tiny.n_users) if positions[u] >= 0]
    again = next(iter(loader))
    assert np.array_equal(again["negatives"], next(iter(loader))["negatives"])
    if split == "test":  # test histories include the validation item
        assert all(tiny.valid_pos[u] < tiny.test_pos[u] for u in users)


def test_evaluation_negatives_do_not_depend_on_batching_or_sharding(tiny):
    def negatives_by_user(**options):
        out = {}
        for rank in range(options.pop("world_size", 1)):
            for batch in tiny.eval_loader(n_sampled_negatives=5, rank=rank, **options):
                out.update(zip(batch["users"].tolist(), batch["negatives"].tolist()))
        return out

    single = negatives_by_user(batch_size=512)
    assert single == negatives_by_user(batch_size=7, world_size=1)
    sharded = {}
    for rank in range(2):
        for batch in tiny.eval_loader(n_sampled_negatives=5, rank=rank, world_size=2):
            sharded.update(zip(batch["users"].tolist(), batch["negatives"].tolist()))
    assert sharded == single


def test_splits_are_disjoint_leave_one_out(tiny):
    for u in range(tiny.n_users):
        start, end = tiny.offsets[u], tiny.offsets[u + 1]
        assert tiny.train_end[u] == end - 2 == tiny.valid_pos[u] and tiny.test_pos[u] == end - 1


def test_temporal_split(tiny):
    ds = tiny.with_split("temporal", valid_fraction=0.1, test_fraction=0.1)
    t_valid = np.quantile(ds.times, 0.8, method="lower")
    for u in range(ds.n_users):
        start, end = ds.offsets[u], ds.offsets[u + 1]
        train_times = ds.times[start:ds.train_end[u]]
        assert np.all(train_times < ds.times[ds.valid_pos[u]]) if ds.valid_pos[u] >= 0 else True
        if ds.test_pos[u] >= 0:
            assert ds.valid_pos[u] < ds.test_pos[u]
            assert ds.times[ds.test_pos[u]] >= ds.times[ds.valid_pos[u]] if ds.valid_pos[u] >= 0 else True
    stats = ds.stats()
    assert stats["split"] == "temporal" and 0 < stats["test_targets"] < ds.n_users
    assert stats["train_interactions"] < tiny.stats()["train_interactions"]
    assert abs(ds.train_end - ds.offsets[:-1]).sum() == stats["train_interactions"]
    assert np.all(ds.times[ds.offsets[:-1][ds.valid_pos >= 0]] < t_valid + 1)


def test_bad_loader_options_are_rejected(tiny):
    with pytest.raises(ValueError, match="mode must be one of"):
        tiny.train_loader(mode="autoregressive")
    with pytest.raises(ValueError, match="rank must be in"):
        tiny.train_loader(rank=2, world_size=2)
    with pytest.raises(ValueError, match="mask_prob"):
        tiny.train_loader(mode="cloze", mask_prob=0.0)
    with pytest.raises(ValueError, match="stride must be in 1..max_len"):
        tiny.train_loader(max_len=5, window="stride", stride=6)
    with pytest.raises(ValueError, match="stride is set exactly when window is 'stride'"):
        tiny.train_loader(window="sliding", stride=2)
    with pytest.raises(ValueError, match="below the 150 items"):
        tiny.eval_loader(n_sampled_negatives=150)


@st.composite
def interaction_logs(draw):
    n = draw(st.integers(1, 120))
    users = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    return users, items, times


@settings(max_examples=40, deadline=None)
@given(log=interaction_logs(), max_len=st.integers(1, 6), world_size=st.integers(1, 3), n_neg=st.integers(0, 2))
def test_random_logs_keep_the_invariants(log, max_len, world_size, n_neg):
    users, items, times = log
    ds = from_interactions(users, items, times)
    # CSR: every user's items in time order; split targets after the training part
    assert ds.offsets[-1] == ds.n_interactions <= len(users)
    for u in range(ds.n_users):
        assert np.all(np.diff(ds.times[ds.offsets[u]:ds.offsets[u + 1]]) >= 0)
    targets = []
    for rank in range(world_size):
        loader = ds.train_loader(batch_size=4, max_len=max_len, window="sliding", n_negatives=n_neg,
                                 rank=rank, world_size=world_size, num_threads=2)
        for batch in loader.epoch(0):
            targets += training_targets([batch])
            if n_neg:
                for row, user in enumerate(batch["users"]):
                    history = set(ds.train_sequence(user).tolist())
                    drawn = batch["negatives"][row][batch["targets"][row] != 0].ravel()
                    assert not history & set(drawn[drawn != 0].tolist())
                    # 0 only when the user has seen every item
                    assert np.all(drawn != 0) or len(history) == ds.n_items
    expected = [(u, int(x)) for u in range(ds.n_users) for x in ds.train_sequence(u)[1:]]
    assert sorted(targets) == sorted(expected)


def test_abandoning_an_epoch_stops_the_threads_cleanly(tiny):
    loader = tiny.train_loader(batch_size=4, max_len=5, num_threads=2)
    for _ in range(20):
        iterator = loader.epoch(0)
        next(iterator)
        del iterator  # workers blocked on full queues must exit, not hang
    assert len(list(loader.epoch(0))) == len(loader)


def test_impossible_evaluation_negatives_raise_a_clear_error():
    ds = from_interactions([1] * 5 + [2] * 3, [1, 2, 3, 4, 5, 1, 2, 3], list(range(8)))
    loader = ds.eval_loader(split="test", n_sampled_negatives=1, num_threads=1)
    with pytest.raises(ValueError, match="user 0 has only 0 items outside its history"):
        list(loader)


def loader_users(dataset, world_size=1, **options):
    """The users of every batch of epoch 0, over all ranks."""
    users = []
    for rank in range(world_size):
        loader = dataset.train_loader(rank=rank, world_size=world_size, **options)
        users += [u for b in loader.epoch(0) for u in b["users"].tolist()]
    return users


def test_held_out_users_and_kept_users_split_the_training_users(tiny):
    options = dict(batch_size=64, max_len=10, window="sliding", seed=3)
    everyone = set(loader_users(tiny, **options))
    kept = set(loader_users(tiny, held_out_users=0.2, **options))
    held_out = set(loader_users(tiny, held_out_users=0.2, held_out=True, **options))
    assert everyone == set(range(tiny.n_users))
    assert not kept & held_out and kept | held_out == everyone
    assert 0.1 <= len(held_out) / len(everyone) <= 0.3
    # The held-out loader trains on every training interaction of its users, once per epoch.
    batches = all_batches(tiny.train_loader(held_out_users=0.2, held_out=True, **options))
    expected = [(u, int(x)) for u in sorted(held_out) for x in tiny.train_sequence(u)[1:]]
    assert sorted(training_targets(batches)) == sorted(expected)


def test_held_out_users_are_seed_fixed_and_do_not_depend_on_the_sharding(tiny):
    options = dict(batch_size=32, max_len=10, held_out_users=0.3, held_out=True)
    held_out = loader_users(tiny, seed=7, **options)
    assert set(held_out) == set(loader_users(tiny, seed=7, **options))
    assert set(held_out) != set(loader_users(tiny, seed=8, **options))
    for held in (True, False):
        single = loader_users(tiny, seed=7, **{**options, "held_out": held})
        sharded = loader_users(tiny, world_size=3, seed=7, **{**options, "held_out": held})
        assert sorted(sharded) == sorted(single)  # disjoint shards that cover the same users


def test_bad_held_out_options_are_rejected(tiny):
    for share in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="held_out_users must be in"):
            tiny.train_loader(held_out_users=share)
    with pytest.raises(ValueError, match="needs held_out_users > 0"):
        tiny.train_loader(held_out=True)
