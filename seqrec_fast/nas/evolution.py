"""Differential evolution over candidates in [0, 1]^d (ADT, Algorithm 1), resumable mid-round.

Each round proposes n_mutation mutants (u = c_r with components of v = c_r + F (c_p - c_q) taken
with probability P_m), n_crossover crossovers (each component from c_p with probability P_c, else
from c_q) and random candidates until the round holds `population`; every proposal is scored
(higher is better) and the elite set G keeps the best `population` seen. The answer is the best
candidate in the whole history.

Choices the pseudo-code leaves open, made so that a round cannot be wasted on copies: a mutant
always takes at least one component of v (as in standard DE's binomial crossover), a crossover at
least one component of each parent (with P_c = 0.1 and ADT's 4 coordinates for 2 layers, 66% of
plain crossovers would copy c_q whole), and mutants are clipped to [0, 1]. Candidates already
scored are not evaluated again.

The whole state (elite, history, the pending proposal, the RNG) is a JSON-able dict, saved after
every evaluation through a callback, so a search killed at any point resumes to the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..options import option

Candidate = tuple[float, ...]


@dataclass(frozen=True)
class EvolutionConfig:
    """The evolution's options (Algorithm 1's defaults)."""

    population: int = option(50, help="candidates per round and size of the elite set (>= 3)")
    n_crossover: int = option(20, help="crossovers proposed per round")
    n_mutation: int = option(20, help="mutants proposed per round")
    differential_weight: float = option(0.5, help="F, the scale of a mutant's difference vector")
    crossover_prob: float = option(0.1, help="P_c, the chance that a crossover takes a component from its first parent")
    mutation_prob: float = option(0.1, help="P_m, the chance that a mutant takes a component of the difference vector")
    rounds: int = option(10, help="rounds after the initial population")

    def __post_init__(self) -> None:
        if self.population < 3:
            raise ValueError(f"population must be >= 3 (mutation draws 3 parents), got {self.population}")
        if self.n_crossover < 0 or self.n_mutation < 0 or self.rounds < 0:
            raise ValueError("n_crossover, n_mutation and rounds must be >= 0")
        for name in ("crossover_prob", "mutation_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    fitness: float


def _key(candidate: Candidate) -> str:
    return ",".join(repr(float(c)) for c in candidate)


class DifferentialEvolution:
    def __init__(self, dims: int, config: EvolutionConfig, seed: int) -> None:
        if dims < 1:
            raise ValueError(f"candidates need at least one dimension, got {dims}")
        self.dims = dims
        self.config = config
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.round = 0  # 0 scores the initial population; rounds 1..config.rounds evolve it
        self.elite: list[Scored] = []
        self.history: list[dict] = []  # {"round", "candidate", "fitness"} in evaluation order
        self.pending: list[Candidate] = []  # the current round's proposal, fixed before scoring
        self.scores: dict[str, float] = {}

    # -- proposals ----------------------------------------------------------------------------

    def _random(self, count: int) -> list[Candidate]:
        return [tuple(row) for row in self.rng.random((count, self.dims)).tolist()]

    def _parents(self, count: int) -> list[Candidate]:
        picks = self.rng.choice(len(self.elite), size=count, replace=False)
        return [self.elite[i].candidate for i in picks]

    def _mutant(self) -> Candidate:
        c_r, c_p, c_q = (np.asarray(c) for c in self._parents(3))
        v = np.clip(c_r + self.config.differential_weight * (c_p - c_q), 0.0, 1.0)
        take = self.rng.random(self.dims) <= self.config.mutation_prob
        take[self.rng.integers(self.dims)] = True
        return tuple(np.where(take, v, c_r).tolist())

    def _crossover(self) -> Candidate:
        c_p, c_q = (np.asarray(c) for c in self._parents(2))
        from_p = self.rng.random(self.dims) <= self.config.crossover_prob
        if self.dims > 1:
            if not from_p.any():
                from_p[self.rng.integers(self.dims)] = True
            elif from_p.all():
                from_p[self.rng.integers(self.dims)] = False
        return tuple(np.where(from_p, c_p, c_q).tolist())

    def _propose(self) -> list[Candidate]:
        if self.round == 0 or len(self.elite) < 3:
            return self._random(self.config.population)
        proposal = [self._mutant() for _ in range(self.config.n_mutation)]
        proposal += [self._crossover() for _ in range(self.config.n_crossover)]
        proposal += self._random(max(0, self.config.population - len(proposal)))
        return proposal

    # -- the loop -----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.round > self.config.rounds

    @property
    def best(self) -> Scored | None:
        if not self.history:
            return None
        top = max(self.history, key=lambda h: h["fitness"])  # first of equals: the earliest
        return Scored(tuple(top["candidate"]), top["fitness"])

    def run_round(
        self,
        evaluate: Callable[[Candidate], float],
        save: Callable[[dict], None] | None = None,
    ) -> list[Scored]:
        """Propose (unless resuming a proposal), score and select one round; returns its scores."""
        if self.finished:
            raise RuntimeError("the search has run all its rounds")
        if not self.pending:
            self.pending = self._propose()
            if save:
                save(self.state_dict())
        scored = []
        for candidate in self.pending:
            key = _key(candidate)
            if key not in self.scores:
                fitness = float(evaluate(candidate))
                if not np.isfinite(fitness):
                    raise ValueError(f"fitness of candidate {list(candidate)} is {fitness}")
                self.scores[key] = fitness
                self.history.append({"round": self.round, "candidate": list(candidate), "fitness": fitness})
                if save:
                    save(self.state_dict())
            scored.append(Scored(candidate, self.scores[key]))
        self._select(scored)
        self.pending = []
        self.round += 1
        if save:
            save(self.state_dict())
        return scored

    def _select(self, scored: list[Scored]) -> None:
        pool = {_key(s.candidate): s for s in [*self.elite, *scored]}
        ranked = sorted(pool.values(), key=lambda s: -s.fitness)  # stable: ties keep age order
        self.elite = ranked[: self.config.population]

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "dims": self.dims,
            "config": asdict(self.config),
            "round": self.round,
            "elite": [{"candidate": list(s.candidate), "fitness": s.fitness} for s in self.elite],
            "history": [dict(h) for h in self.history],
            "pending": [list(c) for c in self.pending],
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_state(cls, state: dict) -> DifferentialEvolution:
        search = cls(state["dims"], EvolutionConfig(**state["config"]), seed=0)
        search.rng.bit_generator.state = state["rng"]
        search.round = state["round"]
        search.elite = [Scored(tuple(e["candidate"]), e["fitness"]) for e in state["elite"]]
        search.history = [dict(h) for h in state["history"]]
        search.pending = [tuple(c) for c in state["pending"]]
        search.scores = {_key(tuple(h["candidate"])): h["fitness"] for h in search.history}
        return search
