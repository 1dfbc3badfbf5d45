"""AdaRec's distillation loss (Eqs. 3-13) as the trainer's auxiliary loss: gamma (L_emb +
L_hidden + L_pred), each term switchable for the ablation.

    L_emb     MSE between the projected student embedding and the teacher's, on real positions
    L_hidden  EMD between the teacher's layers and the student's cells: distances are the MSE
              of the teacher layer against the student cell through one shared projection, the
              flow is POT's exact solution (``ot.emd``) on the detached distances, the loss
              sum(F * D) / sum(F); after every training step the layer weights are re-weighted
              BERT-EMD style, so that layers transferring poorly carry more mass
    L_pred    KL(p_T || p_S) of the next-item distributions at every real position (the
              authors' code swaps the arguments), at a temperature T, times T^2

The distance is an MSE rather than the paper's KL between hidden states: hidden states are not
distributions, and MSE is BERT-EMD's distance for them. Every real position of a causal window
has a next-item target, so "real positions" are the loss's targets."""

from __future__ import annotations

import numpy as np
import ot
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .options import AdaRecConfig
from .student import AdaRecStudent
from .teacher import Teacher

# BERT-EMD's temperature of the layer re-weighting softmax.
LAYER_WEIGHT_TEMPERATURE = 10.0


def emd_flow(teacher_weights: np.ndarray, student_weights: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """The exact optimal transport plan [N, K] between the layer weights (each normalised to sum
    to 1) at the ground distances [N, K]."""
    a = np.asarray(teacher_weights, dtype=np.float64)
    b = np.asarray(student_weights, dtype=np.float64)
    return ot.emd(a / a.sum(), b / b.sum(), np.ascontiguousarray(distances, dtype=np.float64))


def reweighted(weights: Tensor, transported_cost: Tensor) -> Tensor:
    """BERT-EMD's update: c = cost moved per unit of weight, w~ = sum(c) / c, w = softmax(w~ / 10)."""
    per_unit = transported_cost / weights.clamp_min(1e-12)
    inverse = per_unit.sum() / per_unit.clamp_min(1e-12)
    return torch.softmax(inverse / LAYER_WEIGHT_TEMPERATURE, dim=0)


def masked_mse(student: Tensor, teacher: Tensor, valid: Tensor) -> Tensor:
    return (student[valid] - teacher[valid]).pow(2).mean()


class Distillation(nn.Module):
    def __init__(self, student: AdaRecStudent, teacher: Teacher, options: AdaRecConfig):
        super().__init__()
        width = student.config.hidden_size
        # Not registered: the student is the trainer's model, the teacher is frozen elsewhere.
        self.__dict__["student"] = student
        self.__dict__["teacher"] = teacher
        self.gamma = options.gamma
        self.temperature = options.kd_temperature
        self.terms = {"emb": options.emb_loss, "hidden": options.hidden_loss, "pred": options.pred_loss}
        self.embedding_projection = nn.Linear(width, teacher.width)
        self.hidden_projection = nn.Linear(width, teacher.width)
        cells = student.config.num_layers
        self.register_buffer("teacher_weights", torch.full((teacher.n_layers,), 1.0 / teacher.n_layers))
        self.register_buffer("student_weights", torch.full((cells,), 1.0 / cells))
        self.register_buffer("flow", torch.zeros(teacher.n_layers, cells))  # the last step's, for the plot
        student.capture = True
        self.last: dict[str, Tensor] = {}  # the last step's terms, read as numbers once per epoch

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The distillation loss of the student's forward on ``inputs`` (the targets play no part:
        the teacher's predictions are the student's)."""
        captured = self.student.captured
        self.student.captured = None
        if captured is None:
            raise RuntimeError("distillation reads the student's forward: run the student on these inputs first")
        embedded, cells, hidden = captured
        taught = self.teacher(inputs)
        valid = inputs > 0
        terms = {}
        if self.terms["emb"]:
            terms["emb"] = masked_mse(self.embedding_projection(embedded), taught.embedded, valid)
        if self.terms["hidden"]:
            terms["hidden"] = self._hidden(cells, taught.layers, valid)
        if self.terms["pred"]:
            terms["pred"] = self._prediction(hidden[valid], taught.hidden[valid])
        self.last = {name: value.detach() for name, value in terms.items()}
        return self.gamma * sum(terms.values())

    def _hidden(self, cells: list[Tensor], layers: list[Tensor], valid: Tensor) -> Tensor:
        projected = self.hidden_projection(torch.stack(cells))[:, valid]  # [K, n, d_T]
        taught = torch.stack(layers)[:, valid]  # [N, n, d_T]
        distances = (taught.unsqueeze(1) - projected.unsqueeze(0)).pow(2).mean(dim=(-2, -1))  # [N, K]
        flow = torch.from_numpy(emd_flow(self.teacher_weights.cpu().numpy(), self.student_weights.cpu().numpy(),
                                         distances.detach().float().cpu().numpy())).to(distances)
        if self.training:
            with torch.no_grad():
                moved = flow * distances.detach()
                self.teacher_weights.copy_(reweighted(self.teacher_weights, moved.sum(dim=1)))
                self.student_weights.copy_(reweighted(self.student_weights, moved.sum(dim=0)))
                self.flow.copy_(flow)
        return (flow * distances).sum() / flow.sum()

    def _prediction(self, student_hidden: Tensor, teacher_hidden: Tensor) -> Tensor:
        # Column 0 is padding, never a candidate.
        student_logits = self.student.score_all(student_hidden)[:, 1:].float() / self.temperature
        teacher_logits = self.teacher.score_all(teacher_hidden)[:, 1:].float() / self.temperature
        teacher_log_p = F.log_softmax(teacher_logits, dim=-1)
        kl = F.kl_div(F.log_softmax(student_logits, dim=-1), teacher_log_p, log_target=True, reduction="batchmean")
        return kl * self.temperature ** 2
