"""Differential evolution (ADT Algorithm 1) and the weight grids its candidates map onto."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec_fast.nas.evolution import DifferentialEvolution, EvolutionConfig
from seqrec_fast.algorithms.adt.weight_grid import WeightGrid, cell

RECONSTRUCTION = WeightGrid((0, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2), "reconstruction")
TARGET = np.array([0.2, 0.9, 0.55, 0.1])


def fitness(candidate) -> float:
    return -float(np.sum((np.asarray(candidate) - TARGET) ** 2))


class Interrupted(Exception):
    pass


def test_grid_points_give_their_values_and_cells_interpolate_linearly():
    for k, value in enumerate(RECONSTRUCTION.values):
        assert RECONSTRUCTION.value(k / 5) == pytest.approx(value, abs=1e-15)
    assert RECONSTRUCTION.value(0.5) == pytest.approx((5e-4 + 1e-3) / 2)
    assert cell(1.0, 6) == (4, pytest.approx(1.0))


@given(st.floats(0, 1), st.floats(0, 1))
def test_grid_value_is_monotone(a, b):
    low, high = sorted((a, b))
    assert RECONSTRUCTION.value(low) <= RECONSTRUCTION.value(high)


@pytest.mark.parametrize("values", [(0, 1e-3, 1e-3), (1e-2, 1e-3), (0, float("nan"))])
def test_grids_that_are_not_increasing_are_refused(values):
    with pytest.raises(ValueError, match="independence: weight grid values must be"):
        WeightGrid(values, "independence")


@pytest.mark.parametrize("c", [-0.01, 1.5, float("nan")])
def test_coordinates_outside_the_unit_interval_are_refused(c):
    with pytest.raises(ValueError, match=r"must be a number in \[0, 1\]"):
        RECONSTRUCTION.value(c)


def test_rounds_hold_the_population_and_the_best_improves():
    config = EvolutionConfig(population=20, n_crossover=8, n_mutation=8, rounds=15)
    search = DifferentialEvolution(dims=4, config=config, seed=3)
    first = search.run_round(fitness)
    assert len(first) == 20
    while not search.finished:
        assert len(search.run_round(fitness)) == 20
    assert search.best.fitness > max(s.fitness for s in first)
    assert search.best.fitness == max(h["fitness"] for h in search.history)
    assert len(search.elite) == 20 and all(0 <= c <= 1 for s in search.elite for c in s.candidate)


@pytest.mark.parametrize("crossover_prob", [0.0, 0.1, 1.0])
def test_crossovers_take_a_component_from_each_parent(crossover_prob):
    from seqrec_fast.nas.evolution import Scored

    search = DifferentialEvolution(4, EvolutionConfig(population=3, crossover_prob=crossover_prob), seed=1)
    parents = [(0.1, 0.2, 0.3, 0.4), (0.6, 0.7, 0.8, 0.9), (0.15, 0.25, 0.35, 0.45)]
    search.elite = [Scored(c, 0.0) for c in parents]
    for _ in range(50):
        child = search._crossover()
        assert child not in parents  # every pair of these parents differs in every component
        assert all(any(c == parent[i] for parent in parents) for i, c in enumerate(child))


def test_mutants_take_at_least_one_component_of_v_and_stay_in_the_unit_box():
    from itertools import permutations

    from seqrec_fast.nas.evolution import Scored

    search = DifferentialEvolution(3, EvolutionConfig(population=3, mutation_prob=0.0), seed=0)
    parents = [(0.1, 0.2, 0.3), (0.9, 0.5, 0.7), (0.4, 0.95, 0.05)]
    search.elite = [Scored(c, 0.0) for c in parents]
    for _ in range(30):
        mutant = np.asarray(search._mutant())
        assert ((0.0 <= mutant) & (mutant <= 1.0)).all()
        explained = False
        for r, p, q in permutations(range(3)):
            base = np.asarray(parents[r])
            v = np.clip(base + 0.5 * (np.asarray(parents[p]) - np.asarray(parents[q])), 0, 1)
            changed = mutant != base
            if changed.sum() == 1 and np.allclose(mutant[changed], v[changed]):
                explained = True
        assert explained, mutant


def _run(config, seed, stop_after=None, state=None):
    """Run to the end, or raise Interrupted after `stop_after` evaluations; returns saved states."""
    saved = []
    search = DifferentialEvolution.from_state(state) if state else DifferentialEvolution(4, config, seed)
    calls = 0

    def evaluate(candidate):
        nonlocal calls
        calls += 1
        if stop_after is not None and calls > stop_after:
            raise Interrupted
        return fitness(candidate)

    try:
        while not search.finished:
            search.run_round(evaluate, save=lambda s: saved.append(json.loads(json.dumps(s))))
    except Interrupted:
        pass
    return search, saved


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 60))
def test_a_search_killed_anywhere_resumes_to_the_same_result(stop_after):
    config = EvolutionConfig(population=8, n_crossover=3, n_mutation=3, rounds=5)
    uninterrupted, _ = _run(config, seed=11)
    _, saved = _run(config, seed=11, stop_after=stop_after)
    resumed, _ = _run(config, seed=11, state=saved[-1]) if saved else _run(config, seed=11)
    assert resumed.history == uninterrupted.history
    assert resumed.best == uninterrupted.best


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="population must be >= 3"):
        EvolutionConfig(population=2)
    with pytest.raises(ValueError, match="crossover_prob must be in"):
        EvolutionConfig(crossover_prob=1.5)
