"""Loci's optimisers (docs/model.md, Training), stepped as the paper does, one update per call.

- slot initialiser (gestalt mean/std, spawn size): Adam at learning_rate x slot_init_lr_factor (30),
  stepped only at the first call of a sequence;
- encoder, decoder, predictor (with the snitch read-out): RAdam at learning_rate, stepped at every
  other call;
- background mask: RAdam at background_learning_rate, stepped at every other call once the entity
  pre-training is over.

The original's SDAdam variants are not used by its released training, so they are not here.
"""

from __future__ import annotations

import torch

from ..config import TrainConfig
from ..model.loci import Loci


def parameter_groups(model: Loci) -> dict[str, list[torch.nn.Parameter]]:
    """The model's parameters by optimiser group; every parameter is in exactly one group."""
    groups = {
        "slot_init": list(model.slot_init.parameters()),
        "encoder": list(model.encoder.parameters()),
        "decoder": list(model.decoder.parameters()),
        # the temporal snitch read-out learns with the predictor, as the per-frame one inside it does
        "predictor": list(model.predictor.parameters())
        + (list(model.temporal_readout.parameters()) if model.temporal_readout is not None else []),
        "background": list(model.background_mask.parameters()),
    }
    grouped = {id(p) for ps in groups.values() for p in ps}
    missing = [name for name, p in model.named_parameters() if id(p) not in grouped]
    if missing:  # a new sub-module that nobody assigned to an optimiser would silently never train
        raise ValueError(f"parameters without an optimiser group: {', '.join(missing)}")
    return groups


class LociOptimisers:
    """The three optimisers and the rule of which one steps at which call."""

    def __init__(self, model: Loci, train: TrainConfig, foreach: bool = True):
        """`foreach`: step all of a group's tensors with torch's multi-tensor kernels (the same update up to
        float rounding; on a CPU torch otherwise loops over the ~100-200 tensors in Python, twice as slow)."""
        groups = parameter_groups(model)
        self.train, self.foreach = train, foreach
        self.slot_init = torch.optim.Adam(groups["slot_init"],
                                          lr=train.learning_rate * train.slot_init_lr_factor,
                                          betas=train.slot_init_betas, eps=train.eps, foreach=foreach)
        self.main = torch.optim.RAdam(
            [{"params": groups[name], "name": name} for name in ("encoder", "decoder", "predictor")],
            lr=train.learning_rate, betas=train.betas, eps=train.eps, weight_decay=0.0, foreach=foreach)
        self.background = torch.optim.RAdam(groups["background"], lr=train.background_learning_rate,
                                            betas=train.betas, eps=train.eps, weight_decay=0.0, foreach=foreach)

    def scale_learning_rates(self, factor: float) -> None:
        """Set every group's learning rate to its configured value x `factor` (a schedule's value)."""
        train = self.train
        for optimiser, base in ((self.slot_init, train.learning_rate * train.slot_init_lr_factor),
                                (self.main, train.learning_rate),
                                (self.background, train.background_learning_rate)):
            for group in optimiser.param_groups:
                group["lr"] = base * factor

    def background_active(self, global_step: int) -> bool:
        """The background learns only after the entity pre-training phase."""
        return global_step >= self.train.entity_pretraining_steps

    def step(self, first_call: bool, global_step: int) -> None:
        """Apply the gradients of one call. At a sequence's first call only the slot initialiser
        moves (its parameters decide the initial slots); at every other call all but it do."""
        if first_call:
            self.slot_init.step()
            return
        self.main.step()
        if self.background_active(global_step):
            self.background.step()

    def state_dict(self) -> dict:
        return {"slot_init": self.slot_init.state_dict(), "main": self.main.state_dict(),
                "background": self.background.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.slot_init.load_state_dict(state["slot_init"])
        self.main.load_state_dict(state["main"])
        self.background.load_state_dict(state["background"])
        for optimiser in (self.slot_init, self.main, self.background):
            for group in optimiser.param_groups:  # a saved state carries the kernel choice of the run that wrote it
                group["foreach"] = self.foreach
