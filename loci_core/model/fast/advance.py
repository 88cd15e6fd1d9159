"""Steps 2-8 of `Loci.step` (the reference: `Loci._advance`) in the fast blocks and layouts, and their
compilation with TorchInductor (`Loci.compile_inference`)."""

from __future__ import annotations

import dataclasses
import os
import shutil

import torch

from ..advance import Advanced, AdvanceInputs
from ..nn.gaussian import gaussian_maps, others, prioritize
from ..precision import autocast
from . import decoder as fast_decoder
from . import gatel0rd
from .encoder import encode, grouped
from .layout import cells_to_image, image_to_cells, pixels_last

# compiled graphs of `advance` one process may hold: two per model shape, batch size and level
GRAPHS_PER_PROCESS = 64


def advance(model, x: AdvanceInputs) -> Advanced:
    """model._advance(x), computed faster. Its shapes are fixed by the batch size, so it compiles to one graph
    per value of `x.respawn` (`compile_advance`)."""
    cfg, level = model.cfg, model.level
    b, o = x.frame.shape[0], model.num_slots
    h, w = model.resolution
    decoder = model.decoder

    error, position, gestalt, priority, prev_appearance = model._start(x)

    masks = x.masks
    if masks is None:
        with autocast(x.frame.device, x.precision):
            slot_logits = fast_decoder.decode(decoder, position, gestalt, priority, level)[0].float()
        masks = torch.softmax(torch.cat([slot_logits.view(b, o, h, w), x.background_logit], 1), 1)
    masks = masks.detach()  # (B, O+1, H, W)

    # the encoder's 7 channels that differ per slot and the 5 every slot of a frame shares, apart
    # (channels-last, which the convolutions run fastest on); fast/encoder.py numbers them
    slot_masks = masks[:, :o]  # (B, O, H, W)
    where = gaussian_maps(position.detach(), (h, w))  # (B, O, H, W)
    where_others = others(prioritize(where, priority.detach()))  # (B, O, H, W)
    per_slot = torch.cat([
        slot_masks.unsqueeze(-1),
        others(slot_masks).unsqueeze(-1),
        prev_appearance.permute(0, 1, 3, 4, 2),
        where.unsqueeze(-1),
        where_others.unsqueeze(-1),
    ], dim=-1)  # (B, O, H, W, 7): channels 4, 5, 7-9, 10, 11
    per_frame = torch.cat([x.frame, error, masks[:, o:]], 1)  # (B, 5, H, W): channels 0-2, 3, 6
    encoder_input = grouped(per_slot.flatten(0, 1).permute(0, 3, 1, 2),
                            per_frame.contiguous(memory_format=torch.channels_last))
    with autocast(x.frame.device, x.precision):  # float32 outputs: each block adds its branch to a float32 skip
        enc_position, enc_gestalt, enc_priority = encode(model.encoder, encoder_input, level, x.std_scale)

    pred = model.predictor(enc_position.view(b, o, 3), enc_gestalt.view(b, o, -1), enc_priority.view(b, o),
                           x.hidden, x.traces, x.noisy, x.generator, x.in_place_traces, gatel0rd.step)
    new_position, new_gestalt, new_priority = pred["position"], pred["gestalt"], pred["priority"]

    # the trunk run once for both decodes (occlusion-ordered and un-occluded), the heads by 4x4 cells
    maps = decoder.place(new_position)  # (B, O, h, w)
    both = torch.cat([prioritize(maps, new_priority), maps])  # (2B, O, h, w)
    cells = (h // 4, w // 4)
    with autocast(x.frame.device, x.precision):
        features = fast_decoder.features_of_maps(decoder, both, new_gestalt.repeat(2, 1, 1))  # (2N, C, h, w)
        mask_logits = fast_decoder.mask_cells(decoder, features[:b * o], level).view(b, o, *cells, 16)
        rgb_logits, appearance = fast_decoder.rgb_cells(decoder, features, level).view(2, b, o, *cells, 3, 16)

    # the composite by cells too
    new_masks = torch.softmax(torch.cat([mask_logits, image_to_cells(x.background_logit)[..., 0, :]
                                         .unsqueeze(1)], 1), 1)  # (B, O+1, h4, w4, 16)
    colours = torch.sigmoid(rgb_logits + cfg.colour_bias)  # (B, O, h4, w4, 3, 16)
    prediction = (new_masks[:, :o].unsqueeze(-2) * colours).sum(1) \
        + new_masks[:, o].unsqueeze(-2) * image_to_cells(x.background_shown)  # (B, h4, w4, 3, 16)
    visibility = new_masks[:, :o].detach().amax((2, 3, 4))  # (B, O)
    new_masks = cells_to_image(new_masks.unsqueeze(-2)).squeeze(-3)  # (B, O+1, H, W)
    prediction, appearance = cells_to_image(prediction), cells_to_image(appearance)

    return Advanced.of(pred, masks=new_masks, visibility=visibility, error=error, prediction=prediction,
                       appearance=appearance, prev_appearance=prev_appearance, prev_position=position,
                       encoded_position=enc_position.view(b, o, 3))


def compile_advance(on_cpu: bool):
    """`advance` compiled with TorchInductor (one graph per model, batch size, level and `respawn`)."""
    compilers = (os.environ.get("CXX"), "g++", "c++", "clang++")
    if on_cpu and not any(shutil.which(c) for c in compilers if c):  # else a long error at the first step
        raise RuntimeError("compile_inference: TorchInductor needs a C++ compiler to compile for the CPU; "
                           "none found (set CXX, or put g++ or clang++ on PATH)")
    # kernels called from C++, not Python: less per-call overhead
    compiled = torch.compile(advance, dynamic=False, fullgraph=True, options={"cpp_wrapper": True})
    # every model, batch size and level adds two graphs of this one function, and with fullgraph=True
    # dynamo's default limit of 8 per function is a hard error at the ninth; raised for these calls only
    return torch._dynamo.config.patch(recompile_limit=GRAPHS_PER_PROCESS)(compiled)


def compiled_inputs(x: AdvanceInputs) -> AdvanceInputs:
    """x with fixed strides (each new layout of an input would compile another graph): the prediction as the
    graphs give it; the appearance contiguous, although the graphs give it pixels-last: the re-spawn graph's
    choice between carried and decoded appearance is a scalar loop, far slower on a pixels-last input than
    the copy costs."""
    background = x.background
    if background is x.frame:  # a stream's first frame as its background: graphs are for two distinct tensors
        background = background.clone()
    return dataclasses.replace(x, prediction=pixels_last(x.prediction), masks=x.masks.contiguous(),
                               appearance=x.appearance.contiguous(), background=background)
