"""Loci: one explicit time step of the slot model ("Learning What and Where", Traub et al. 2023).

    out, state = model.step(frame, state, background)

takes frame X_t and returns the prediction of X_{t+1} with every slot's state. Read `step` top to
bottom; its steps 2-8, from the error map to the composite, are `_advance`. That is the reference
implementation, in the plain blocks of `nn/`; `model.implementation: fast` (the default) runs the same
function through the speed layer, `fast/` (rewritten blocks, derived-weight caches, the cells layout and
`compile_inference`). Shapes use B = batch, O = slots, G = gestalt size, (H, W) = frame size at the current
level, (h, w) = latent grid, N = B*O slot-instances (all slot-wise networks share weights and run
on N rows at once).

Deliberate differences from the original code, all allowed by the paper's description:
- RGB images (the original used BGR);
- the background image is an argument of every call, not a buffer, and is never saved by the model;
- the error map of the new frame is computed here, from the prediction carried in the state;
- the schedules (size ramp, background fade-in) are explicit `Ramps`, not clock parameters;
- binarising/priority/read-out noise and random spawning only in train mode (or `noise_in_eval`),
  all drawn from the caller's generator;
- the previous appearance (the un-occluded decode of the carried state) is carried in the state
  instead of decoded a second time; only re-spawned slots are decoded afresh. The decoder thus
  gets no gradient through the encoder's appearance input of later calls (it still learns from
  the image, permanence and consistency losses), and the carried appearance was decoded with the
  weights before the last optimiser step.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..config import IMPLEMENTATIONS, ModelConfig, resolution_at
from .advance import Advanced, AdvanceInputs, error_map
from .fast import advance as fast_advance
from .fast import decoder as fast_decoder
from .nn.background import BackgroundMask
from .nn.decoder import Decoder
from .nn.encoder import Encoder
from .nn.gaussian import gaussian_maps, others, prioritize
from .nn.predictor import Predictor
from .nn.slot_init import SlotInitialiser
from .nn.temporal_readout import TemporalReadout
from .precision import autocast
from .schedules import Ramps
from .state import LociState


@dataclass
class StepOutput:
    prediction: torch.Tensor
    """(B, 3, H, W) predicted next frame in [0, 1]"""
    masks: torch.Tensor
    """(B, O+1, H, W) predicted masks, softmax over slots + background (last channel)"""
    position: torch.Tensor
    """(B, O, 3) predicted next-step (p_row, p_col, s)"""
    gestalt: torch.Tensor
    """(B, O, G) predicted next-step gestalt codes"""
    priority: torch.Tensor
    """(B, O) predicted next-step priorities (larger = in front)"""
    visibility: torch.Tensor
    """(B, O) largest mask value of each slot in the prediction (v)"""
    snitch: torch.Tensor | None
    """(B, 2) snitch (p_row, p_col) read-out, or None when model.snitch is 'off'"""
    snitch_weights: torch.Tensor | None
    """(B, O) how much each slot counts in the read-out (sums to 1), or None when model.snitch is 'off'"""
    snitch_scores: torch.Tensor | None
    """(B, O) the temporal read-out's logits over slots (its training target is a slot), else None"""
    encoded_position: torch.Tensor
    """(B, O, 3) the encoder's estimate of each slot's position in the *input* frame"""
    appearance_logits: torch.Tensor
    """(B, O, 3, H, W) un-occluded RGB logits of the predicted state (A, with gradient)"""
    prev_appearance_logits: torch.Tensor
    """(B, O, 3, H, W) un-occluded RGB logits of the state at the start of the call"""
    memory_appearance_logits: torch.Tensor | None
    """(B, O, 3, H, W) un-occluded RGB logits of the permanence memory (no gradient; training only)"""
    prev_position: torch.Tensor
    """(B, O, 3) slot positions at the start of the call (after re-spawning)"""
    activity: torch.Tensor
    """(B, O) running max of visibility over the sequence, including this call (V)"""
    error: torch.Tensor
    """(B, 1, H, W) the error map fed to the encoder"""
    background: torch.Tensor
    """(1 or B, 3, H, W) the background as rendered (image x fade-in)"""
    gate_openings: torch.Tensor
    """() fraction of open GateL0RD gates"""
    colour_bias: float
    """the model's colour bias (slot colour = sigmoid(RGB logit + colour_bias))"""

    @functools.cached_property
    def slot_rgb(self) -> torch.Tensor:
        """(B, O, 3, H, W) un-occluded appearance of each slot in [0, 1]; computed when first read, so a
        tracker that does not show it does not pay for it"""
        return torch.sigmoid(self.appearance_logits + self.colour_bias)


class Loci(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = copy.deepcopy(cfg)
        self._level = cfg.level
        self.slot_init = SlotInitialiser(cfg)
        self.encoder = Encoder(cfg)
        self.predictor = Predictor(cfg)
        self.decoder = Decoder(cfg)
        self.background_mask = BackgroundMask(cfg.input_size, cfg.background_mask_init)
        self.temporal_readout = (TemporalReadout(cfg.gestalt_size, cfg.readout_width)
                                 if cfg.snitch != "off" and cfg.readout == "temporal" else None)
        self._compiled_advance = None  # set by compile_inference

    # ------------------------------------------------------------------ properties
    @property
    def level(self) -> int:
        return self._level

    @level.setter
    def level(self, level: int) -> None:
        self.set_level(level)

    def set_level(self, level: int) -> None:
        """Switch the resolution level (start new states afterwards)."""
        if not 1 <= level <= self.cfg.max_level:
            raise ValueError(f"level {level} not available: this model has levels 1..{self.cfg.max_level}")
        self._level = level
        self.cfg.level = level

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W) of the frames at the current level."""
        return resolution_at(self.cfg, self._level)

    @property
    def num_slots(self) -> int:
        return self.cfg.num_slots

    @property
    def gestalt_size(self) -> int:
        return self.cfg.gestalt_size

    @property
    def implementation(self) -> str:
        """'fast' or 'reference' (model.implementation): the same function on the same parameters."""
        return self.cfg.implementation

    @implementation.setter
    def implementation(self, implementation: str) -> None:
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        if implementation != "fast" and self._compiled_advance is not None:
            raise ValueError("this model runs compiled (compile_inference), which is part of the fast implementation")
        self.cfg.implementation = implementation

    # ------------------------------------------------------------------ state
    def initial_state(self, batch_size: int, device=None) -> LociState:
        """A fresh state for `batch_size` new sequences: no slot active, nothing predicted yet."""
        device = torch.device(device) if device is not None else self.slot_init.size.device
        b, o, g = batch_size, self.num_slots, self.gestalt_size
        return LociState(
            position=torch.zeros(b, o, 3, device=device),
            gestalt=torch.zeros(b, o, g, device=device),
            priority=torch.zeros(b, o, device=device),
            activity=torch.zeros(b, o, device=device),
            hidden=self.predictor.initial_hidden(b * o, device),
            traces=[None] * len(self.predictor.layers))

    # ------------------------------------------------------------------ decoding
    def decode_slots(self, position, gestalt, priority=None):
        """position (B, O, 3), gestalt (B, O, G)[, priority (B, O)] -> mask logits (B, O, H, W),
        RGB logits (B, O, 3, H, W) at the current level. Slot colour = sigmoid(logit + colour_bias)."""
        if self.implementation == "fast":
            return fast_decoder.decode(self.decoder, position, gestalt, priority, self._level)
        return self.decoder(position, gestalt, priority, self._level)

    def _appearance(self, position, gestalt, precision: torch.dtype | None = None):
        """Un-occluded RGB logits: (B, O, 3) / (B, O, G) -> (B, O, 3, H, W)."""
        b, o = position.shape[:2]
        with autocast(position.device, precision):
            if self.implementation == "fast":
                return fast_decoder.appearance(self.decoder, position, gestalt, self._level).float()
            features = self.decoder.features(position, gestalt)
            return self.decoder.rgb(features, self._level).unflatten(0, (b, o)).float()

    def _check_inputs(self, frame, state, background):
        h, w = self.resolution
        if frame.dim() != 4 or frame.shape[1:] != (3, h, w):
            raise ValueError(f"frame must be (B, 3, {h}, {w}) at level {self._level}, "
                             f"got {tuple(frame.shape)}")
        if (background.dim() != 4 or background.shape[1:] != (3, h, w)
                or background.shape[0] not in (1, frame.shape[0])):
            raise ValueError(f"background must be (1 or B, 3, {h}, {w}), got {tuple(background.shape)}")
        if state.batch_size != frame.shape[0]:
            raise ValueError(f"state is for batch size {state.batch_size}, frame batch is {frame.shape[0]}")
        if state.masks is not None and state.masks.shape[-2:] != (h, w):
            raise ValueError("state was made at another level; start a new state after set_level")

    # ------------------------------------------------------------------ the step
    def compile_inference(self, batch_size: int | Sequence[int] | None = None) -> None:
        """Compile steps 2-8 of `step` (the fast `_advance`: error map to composite) with TorchInductor for steps
        without gradients or noise (tracking, evaluation); training, noisy steps and a sequence's first call stay
        eager. Part of the fast implementation (model.implementation: fast).

        Two graphs per batch size, for steps that re-spawn a slot and for steps that do not, each compiled when
        first needed (about a minute on a CPU the first time, seconds once TorchInductor's on-disk cache
        has it), or both now for `batch_size` (one or several), so that no stream stalls on a compile once it
        runs. Parameters stay inputs of the graphs, so later weight changes are used. Needs a C++ compiler on
        the CPU. Outputs agree with the eager step to float rounding; tracked over hundreds of frames, the two
        drift apart as any two summation orders do. bench/README.md has the speed-up on a CPU."""
        if self.implementation != "fast":
            raise ValueError("compile_inference compiles the fast implementation; this model is set to "
                             f"{self.implementation!r} (model.implementation)")
        self._compiled_advance = fast_advance.compile_advance(self.slot_init.size.device.type == "cpu")
        sizes = [] if batch_size is None else [batch_size] if isinstance(batch_size, int) else batch_size
        for size in dict.fromkeys(sizes):
            self._compile_now(size)

    def _compile_now(self, batch_size: int) -> None:
        """Run both compiled graphs once on blank frames (in inference mode, as trackers and evaluation run:
        tensors made outside it would not match the graphs' guards)."""
        h, w = self.resolution
        training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                blank = torch.zeros(batch_size, 3, h, w, device=self.slot_init.size.device)
                _, state = self.step(blank, self.initial_state(batch_size, blank.device), blank)  # eager first call
                for activity in (0.0, 1.0):  # every slot re-spawns / none does
                    self.step(blank, dataclasses.replace(state, activity=torch.full_like(state.activity, activity)),
                              blank)
        finally:
            self.train(training)

    def step(self, frame: torch.Tensor, state: LociState, background: torch.Tensor,
             ramps: Ramps | None = None, generator: torch.Generator | None = None, *,
             precision: torch.dtype | None = None, consume_state: bool = False):
        """One call: frame X_t (B, 3, H, W) in [0, 1] RGB, the state, the background image
        (1 or B, 3, H, W) -> (StepOutput with the prediction of X_{t+1}, the new state).

        `ramps` are the training schedules (None = fully ramped, for trained models); `generator`
        drives all noise and spawning (used in train mode, or in eval with model.noise_in_eval).
        Training's speed paths: `precision` (torch.bfloat16) runs the encoder's and decoder's convolutions
        under autocast (`loci_core.model.precision`); `consume_state` says the caller will not use `state` again,
        so its eligibility traces are updated in their own memory (same values, no new ones per step)."""
        self._check_inputs(frame, state, background)
        cfg = self.cfg
        ramps = ramps or Ramps.full()
        noisy = self.training or cfg.noise_in_eval
        compiled_ok = self._compiled_advance is not None and not noisy and not torch.is_grad_enabled()
        b = frame.shape[0]
        h, w = self.resolution

        # 1. background: mask logits where it shows, and the image as rendered (faded in by the schedule)
        background_logit = self.background_mask((h, w)).expand(b, 1, h, w)  # (B, 1, H, W)
        background_shown = background * ramps.background  # (1|B, 3, H, W)

        # 2-8. error map, re-spawn, encoder, predictor, decoder and composite (`_advance`, or its fast form)
        active = state.activity > cfg.slots.activity_threshold  # (B, O)
        inputs = AdvanceInputs(
            frame=frame, prediction=state.prediction, background=background, masks=state.masks,
            position=state.position, gestalt=state.gestalt, priority=state.priority, active=active,
            appearance=state.appearance, hidden=state.hidden, traces=state.traces,
            background_logit=background_logit, background_shown=background_shown, std_scale=ramps.std_scale,
            noisy=noisy, generator=generator,
            respawn=state.appearance is None or noisy or not bool(active.all()),  # else every slot carries on
            precision=precision, in_place_traces=consume_state)
        if self.implementation == "reference":
            new = self._advance(inputs)
        elif compiled_ok and state.masks is not None:
            new = self._compiled_advance(self, fast_advance.compiled_inputs(inputs))
        else:
            new = fast_advance.advance(self, inputs)
        new_position, new_gestalt, new_priority = new.position, new.gestalt, new.priority
        new_masks, appearance, prediction = new.masks, new.appearance, new.prediction

        # 9. activity and the object-permanence memory (what/where while visible)
        visibility = new.visibility  # (B, O)
        activity = torch.maximum(state.activity, visibility)
        v = visibility.unsqueeze(-1)
        if state.memory_gestalt is None:
            memory_position, memory_gestalt = new_position.detach(), new_gestalt.detach()
        else:
            memory_gestalt = v * new_gestalt.detach() + (1 - v) * state.memory_gestalt
            memory_size = v * new_position[..., 2:].detach() + (1 - v) * state.memory_position[..., 2:]
            memory_position = torch.cat([new_position[..., :2].detach(), memory_size], -1)
        memory_appearance = None
        if self.training:
            with torch.no_grad():
                memory_appearance = self._appearance(memory_position, memory_gestalt, precision)

        # 10. the temporal snitch read-out, over the new slot states and its own memory
        snitch, snitch_weights, snitch_scores, readout_hidden = new.snitch, new.snitch_weights, None, None
        if self.temporal_readout is not None:
            inputs = (new_gestalt, new_position, visibility, new_priority)
            if cfg.snitch == "probe":  # the read-out learns, the model does not hear it
                inputs = tuple(t.detach() for t in inputs)
            memory = state.readout_hidden
            if memory is None:
                memory = self.temporal_readout.initial_hidden(b, self.num_slots, frame.device)
            snitch_scores, readout_hidden = self.temporal_readout(*inputs, memory)
            snitch_weights = torch.softmax(snitch_scores, 1)
            chosen = snitch_scores.argmax(1)                                           # (B,)
            snitch = new_position[torch.arange(b, device=frame.device), chosen, :2]    # (B, 2)

        out = StepOutput(
            prediction=prediction, masks=new_masks,
            position=new_position, gestalt=new_gestalt, priority=new_priority, visibility=visibility,
            snitch=snitch, snitch_weights=snitch_weights, snitch_scores=snitch_scores,
            encoded_position=new.encoded_position,
            appearance_logits=appearance,
            prev_appearance_logits=new.prev_appearance, memory_appearance_logits=memory_appearance,
            prev_position=new.prev_position.detach(), activity=activity, error=new.error,
            background=background_shown, gate_openings=new.openings,
            colour_bias=cfg.colour_bias)

        keep_graph = cfg.predictor.exact_bptt  # checking mode: hidden states keep their history
        new_state = LociState(
            position=new_position.detach(), gestalt=new_gestalt.detach(), priority=new_priority.detach(),
            activity=activity,
            hidden=[hh if keep_graph else hh.detach() for hh in new.hidden],
            traces=[None if t is None else (t[0].detach(), t[1].detach()) for t in new.traces],
            prediction=prediction.detach(), masks=new_masks.detach(), appearance=appearance.detach(),
            memory_position=memory_position, memory_gestalt=memory_gestalt, calls=state.calls + 1,
            readout_hidden=None if readout_hidden is None else readout_hidden.detach())
        return out, new_state

    def _respawn(self, position, gestalt, priority, active, appearance, error, noisy: bool, generator,
                 precision: torch.dtype | None = None):
        """Step 3 of `step` (in `_start`): the carried slot states with every inactive slot re-spawned, and the
        un-occluded appearance of the result (None = a sequence's first call: decode all). Eager, only the
        re-spawned slots are decoded; compiled, where shapes must not depend on how many re-spawn, all are, and
        the carried appearance is kept for the active ones."""
        position, gestalt, priority = self.slot_init(position, gestalt, priority, active, error, noisy, generator)
        if appearance is None:
            return position, gestalt, priority, self._appearance(position, gestalt, precision)
        if torch.compiler.is_compiling():
            decoded = self._appearance(position, gestalt)
            return position, gestalt, priority, torch.where(active[..., None, None, None], appearance, decoded)
        if bool(active.all()):  # in train mode slots are spawned (drawing noise) even when none re-spawns
            return position, gestalt, priority, appearance
        fresh = (~active).nonzero(as_tuple=True)
        decoded = self._appearance(position[fresh].unsqueeze(1), gestalt[fresh].unsqueeze(1), precision)[:, 0]
        return position, gestalt, priority, appearance.index_put(fresh, decoded)

    def _start(self, x: AdvanceInputs):
        """Steps 2-3 of `step` (both implementations): the error map of the new frame against the carried
        prediction (detached input), and every slot that has not yet been clearly visible in this sequence
        (re-)spawned, with its un-occluded appearance (RGB logits of the current state: carried for active
        slots, decoded for fresh ones) -> error, position, gestalt, priority, appearance."""
        with torch.no_grad():
            error = error_map(x.frame, x.prediction, x.background)  # (B, 1, H, W)
        if not x.respawn:
            return error, x.position, x.gestalt, x.priority, x.appearance
        return error, *self._respawn(x.position, x.gestalt, x.priority, x.active, x.appearance, error, x.noisy,
                                     x.generator, x.precision)

    def _advance(self, x: AdvanceInputs) -> Advanced:
        """Steps 2-8 of `step`, from the new frame and the carried state to the predicted next frame (the
        reference implementation; fast/advance.py computes the same faster)."""
        cfg, level = self.cfg, self._level
        b, o = x.frame.shape[0], self.num_slots
        h, w = self.resolution

        # 2-3. error map, (re-)spawn: error (B, 1, H, W), position (B, O, 3), gestalt (B, O, G), priority (B, O),
        #      appearance (B, O, 3, H, W)
        error, position, gestalt, priority, appearance = self._start(x)

        # 4. masks of the current state (decoded on a sequence's first call, carried afterwards)
        masks = x.masks
        if masks is None:
            with autocast(x.frame.device, x.precision):
                slot_logits = self.decoder.masks(self.decoder.features(position, gestalt, priority), level).float()
            masks = torch.softmax(torch.cat([slot_logits.view(b, o, h, w), x.background_logit], 1), 1)
        masks = masks.detach()  # (B, O+1, H, W)

        # 5. encoder: a 12-channel image per slot (nn/encoder.py) -> estimates for the current frame
        slot_masks = masks[:, :o]  # (B, O, H, W)
        where = gaussian_maps(position.detach(), (h, w))  # (B, O, H, W)
        where_others = others(prioritize(where, priority.detach()))  # (B, O, H, W)

        def per_slot(image):  # (B, C, H, W), the same for every slot of a frame -> (B, O, C, H, W)
            return image.unsqueeze(1).expand(-1, o, -1, -1, -1)

        encoder_input = torch.cat([
            per_slot(x.frame), per_slot(error),  # 0-2, 3
            slot_masks.unsqueeze(2), others(slot_masks).unsqueeze(2), per_slot(masks[:, o:]),  # 4, 5, 6
            appearance,  # 7-9
            where.unsqueeze(2), where_others.unsqueeze(2),  # 10, 11
        ], dim=2).flatten(0, 1)  # (N, 12, H, W)
        with autocast(x.frame.device, x.precision):  # float32 outputs: each block adds its branch to a float32 skip
            enc_position, enc_gestalt, enc_priority = self.encoder(
                encoder_input, level, x.std_scale)  # (N, 3), (N, G), (N,)

        # 6. predictor: attention across slots + GateL0RD per slot -> next-step slot states
        pred = self.predictor(enc_position.view(b, o, 3), enc_gestalt.view(b, o, -1), enc_priority.view(b, o),
                              x.hidden, x.traces, x.noisy, x.generator, x.in_place_traces)
        new_position, new_gestalt, new_priority = pred["position"], pred["gestalt"], pred["priority"]
        # (B, O, 3), (B, O, G), (B, O)

        # 7. decoder: occlusion-ordered (for the composite) and un-occluded (the slots' own appearance:
        #    output, losses, next call's encoder input)
        with autocast(x.frame.device, x.precision):
            occluded = self.decoder.features(new_position, new_gestalt, new_priority)  # (N, C, h, w)
            mask_logits = self.decoder.masks(occluded, level).view(b, o, h, w)
            rgb_logits = self.decoder.rgb(occluded, level).view(b, o, 3, h, w)
        new_appearance = self._appearance(new_position, new_gestalt, x.precision)  # (B, O, 3, H, W)

        # 8. composition: softmax masks over slots + background, colours, predicted next frame
        new_masks = torch.softmax(torch.cat([mask_logits, x.background_logit], 1), 1)  # (B, O+1, H, W)
        colours = torch.sigmoid(rgb_logits + cfg.colour_bias)  # (B, O, 3, H, W)
        prediction = (new_masks[:, :o].unsqueeze(2) * colours).sum(1) \
            + new_masks[:, o:] * x.background_shown  # (B, 3, H, W)
        visibility = new_masks[:, :o].detach().amax((2, 3))  # (B, O): each slot's largest mask value

        return Advanced.of(pred, masks=new_masks, visibility=visibility, error=error, prediction=prediction,
                           appearance=new_appearance, prev_appearance=appearance, prev_position=position,
                           encoded_position=enc_position.view(b, o, 3))
