"""CANet's routes, torch-free: an embedding width, a hidden width and a depth, one choice each.

A route is EXHXD: ``64x96x4`` embeds items 64 wide, projects them to 96 and exits after 4 blocks.
Routes are indexed embedding-major, each dimension's choices ascending:

    index = (i_embedding * n_hidden + i_hidden) * n_depth + i_depth

so route 0 is the smallest (the first choice of each dimension) and the last route the largest.
The authors' code orders them hidden-major with depth before embedding; every file this package
writes names a route by its text, never by its index alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...nas.cost import Cost, projected_transformer

DIMENSIONS = ("embedding", "hidden", "depth")


@dataclass(frozen=True)
class Route:
    embedding: int
    hidden: int
    depth: int

    def __str__(self) -> str:
        return f"{self.embedding}x{self.hidden}x{self.depth}"


def parse_route(text: str) -> Route:
    """EXHXD, e.g. "64x96x4": embedding 64, hidden 96, depth 4."""
    parts = text.strip().lower().split("x")
    try:
        route = Route(*(int(part) for part in parts)) if len(parts) == 3 else None
    except ValueError:
        route = None
    if route is None or min(route.embedding, route.hidden, route.depth) < 1:
        raise ValueError(f"route: expected EXHXD with positive integers, such as 64x96x4 (embedding 64, hidden 96, "
                         f"4 blocks), got {text!r}")
    return route


def check_choices(name: str, choices: tuple[int, ...]) -> None:
    """A dimension's choices: positive, ascending, each once."""
    if not choices or min(choices) < 1 or list(choices) != sorted(set(choices)):
        raise ValueError(f"{name}: expected positive integers in ascending order, each once, got "
                         f"{','.join(map(str, choices))}")


@dataclass(frozen=True)
class RouteSpace:
    """Every route of the embedding, hidden and depth choices, indexed as the module says."""

    embeddings: tuple[int, ...]
    hiddens: tuple[int, ...]
    depths: tuple[int, ...]

    def __post_init__(self) -> None:
        for name, choices in zip(DIMENSIONS, self.choices):
            check_choices(f"{name}_choices", choices)

    @property
    def choices(self) -> tuple[tuple[int, ...], ...]:
        return self.embeddings, self.hiddens, self.depths

    @property
    def routes(self) -> list[Route]:
        return [Route(e, h, d) for e in self.embeddings for h in self.hiddens for d in self.depths]

    def __len__(self) -> int:
        return len(self.embeddings) * len(self.hiddens) * len(self.depths)

    def choice_indices(self, index: int) -> tuple[int, int, int]:
        """(embedding, hidden, depth) choice indices of route ``index``."""
        rest, depth = divmod(index, len(self.depths))
        embedding, hidden = divmod(rest, len(self.hiddens))
        return embedding, hidden, depth

    def index(self, route: Route) -> int:
        """The index of ``route``; a route outside the choices is refused, naming the dimension."""
        indices = []
        for name, value, choices in zip(DIMENSIONS, (route.embedding, route.hidden, route.depth), self.choices):
            if value not in choices:
                raise ValueError(f"route {route}: {name} {value} is not one of the {name} choices "
                                 f"({','.join(map(str, choices))})")
            indices.append(choices.index(value))
        embedding, hidden, depth = indices
        return (embedding * len(self.hiddens) + hidden) * len(self.depths) + depth

    def cost(self, index: int, n_items: int, max_len: int) -> Cost:
        route = self.routes[index]
        return projected_transformer(route.embedding, route.hidden, route.depth, n_items, max_len)

    def to_dict(self) -> dict[str, Any]:
        return {"embedding": list(self.embeddings), "hidden": list(self.hiddens), "depth": list(self.depths)}

