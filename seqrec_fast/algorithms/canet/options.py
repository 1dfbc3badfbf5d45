"""CANet's options, declared with the options engine (seqrec_fast.options) so that the command
line and a run directory's YAML read them alike; torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...options import NON_NEGATIVE_NUMBER, POSITIVE, POSITIVE_NUMBER, option, to_dict
from .space import Route, RouteSpace, parse_route

# The backbone's fields besides the widths, when the configuration leaves them unset: the paper's
# 8 blocks of 4 heads, the authors' dropout.
MODEL_DEFAULTS = {"num_layers": 8, "num_heads": 4, "dropout": 0.2, "attn_dropout": 0.2}


@dataclass(frozen=True)
class CANetConfig:
    """The routes, the router and the losses (the paper's defaults)."""

    embedding_choices: tuple[int, ...] = option((64, 96, 128), help="item embedding widths a route may take")
    hidden_choices: tuple[int, ...] = option((64, 96, 128),
                                             help="hidden widths a route may take (multiples of --num-heads); the "
                                                  "feed-forward is 4 times as wide")
    depth_choices: tuple[int, ...] = option((2, 4, 6, 8),
                                            help="blocks after which a route exits to the shared classifier (at most "
                                                 "--num-layers)")
    router_width: int = option(32, check=POSITIVE, help="the router's item embedding and hidden width")
    router_heads: int = option(4, check=POSITIVE, help="the router's attention heads")
    router_inner: int = option(128, check=POSITIVE, help="the router's feed-forward width")
    temperature: float = option(1.0, check=POSITIVE_NUMBER,
                                help="tau of the hard Gumbel-softmax that samples each training window's route")
    uniform_weight: float = option(0.01, check=NON_NEGATIVE_NUMBER,
                                   help="lambda_1, the weight of the uniform loss (Eq. 7): cross-entropy of each "
                                        "window's route distribution against the uniform one; 0 turns it off")
    guide_weight: float = option(0.01, check=NON_NEGATIVE_NUMBER,
                                 help="lambda_2, the weight of the guide loss (Eq. 8): each dimension's route "
                                      "probabilities against soft labels peaked at the small choices for easy windows "
                                      "and at the large ones for hard windows; 0 turns it off")
    guide_k: int = option(10, check=POSITIVE,
                          help="a window is easy when the smallest route ranks its last target in the top k (its "
                               "own items left out)")
    route: str = option("", help="a fixed route instead of a router, EXHXD: 64x64x2 trains that route alone (one of "
                                 "the choices; the uniform and guide losses are off), the static baselines")

    def __post_init__(self) -> None:
        self.trained_space()  # checks the choices and the fixed route
        if self.router_width % self.router_heads:
            raise ValueError(f"router_width {self.router_width} is not a multiple of router_heads {self.router_heads}")

    @property
    def routed(self) -> bool:
        """True with a router, False for a fixed --route."""
        return not self.route

    def space(self) -> RouteSpace:
        """The routes the router chooses from."""
        return RouteSpace(self.embedding_choices, self.hidden_choices, self.depth_choices)

    def fixed_route(self) -> Route:
        """The fixed --route, checked against the choices."""
        route = parse_route(self.route)
        self.space().index(route)
        return route

    def trained_space(self) -> RouteSpace:
        """The routes the model is built with: every route, or the fixed one alone."""
        if self.routed:
            return self.space()
        route = self.fixed_route()
        return RouteSpace((route.embedding,), (route.hidden,), (route.depth,))

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
