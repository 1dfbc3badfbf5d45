"""The measured time of a candidate: milliseconds to rank every item for a fixed batch of
validation users on one CPU thread, next to the multiply-adds the cost model counts (EASRec's
candidates, CANet's routes).

    scoring_inputs(dataset, train)   the batch: the validation inputs of the first SCORING_USERS users
    scoring_ms(model, inputs)        median milliseconds of ``model.predict(inputs)``"""

from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import torch

SCORING_USERS = 256  # validation users whose full ranking is timed per candidate
SCORING_REPEATS = 5


def scoring_inputs(dataset, train) -> torch.Tensor:
    """The validation inputs of the first SCORING_USERS users: the batch every candidate's
    scoring time is measured on."""
    loader = dataset.eval_loader(split="valid", batch_size=SCORING_USERS, max_len=train.model.max_len,
                                 seed=train.seed, num_threads=train.loader_threads)
    return torch.from_numpy(np.asarray(next(iter(loader))["inputs"])).long()


def scoring_ms(model: torch.nn.Module, inputs: torch.Tensor) -> float:
    """Milliseconds to score every item for ``inputs`` on the CPU with one thread (median of
    SCORING_REPEATS, after one untimed call)."""
    model = copy.deepcopy(model).cpu().eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            model.predict(inputs)
            seconds = []
            for _ in range(SCORING_REPEATS):
                started = time.perf_counter()
                model.predict(inputs)
                seconds.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return round(1000 * statistics.median(seconds), 3)
