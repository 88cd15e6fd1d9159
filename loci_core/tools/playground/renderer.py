"""Model side of the playground (no Qt): decode one slot and composite it over a background.

The composite is the model's own composition (docs/model.md, step 8) for a scene that holds just
this slot: mask = softmax over [slot mask logit, background mask logit] (= sigmoid of their
difference), slot colour = sigmoid(RGB logit + model.colour_bias), image = mask * colour +
(1 - mask) * background.

Temperature: the background logit can be scaled (`background_logit_scale`, default 1 = exactly
the model). The original playground multiplied it by 0.01 to make up for the missing other slots;
pass 0.01 to see a trained model the way that tool showed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from loci_core.model.loci import Loci
from loci_core.model.nn.gaussian import gaussian_maps

# Grey used when neither --background nor the checkpoint gives a background image.
GREY = 0.5
# Position panel: the background is dimmed to this brightness and the Gaussian blob is laid over
# it in this colour (RGB) at up to this opacity.
POSITION_DIM = 0.6
POSITION_COLOUR = (1.0, 0.25, 0.1)
POSITION_OPACITY = 0.8


class BackgroundError(ValueError):
    """A background image that cannot be read."""


@dataclass
class Rendering:
    """One decoded slot as images at the model's resolution (H, W), floats in [0, 1]."""

    composite: np.ndarray      # (H, W, 3) background + slot, as the model would render the scene
    rgb: np.ndarray            # (H, W, 3) the slot's un-occluded appearance
    mask: np.ndarray           # (H, W) the slot's mask (softmax weight against the background)
    position_map: np.ndarray   # (H, W) the decoder's Gaussian "where" blob, upsampled to (H, W)
    position_view: np.ndarray  # (H, W, 3) the blob over the dimmed background
    blob_radius: float         # the blob's standard deviation along the columns, in model pixels
    visibility: float          # max of the mask, as the model defines a slot's visibility


def resize_background(image: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """(3, H', W') float in [0, 1] -> (3, H, W); area averaging when shrinking."""
    image = image.float()
    if tuple(image.shape[-2:]) == tuple(resolution):
        return image
    shrink = image.shape[-2] >= resolution[0] and image.shape[-1] >= resolution[1]
    resized = F.interpolate(image[None], size=tuple(resolution), mode="area" if shrink else "bilinear",
                            align_corners=None if shrink else False)
    return resized[0].clamp(0, 1)


def read_background(path: str | Path, resolution: tuple[int, int]) -> torch.Tensor:
    """An image file (any size OpenCV reads) -> (3, H, W) RGB float in [0, 1] at `resolution`."""
    import cv2

    if not Path(path).is_file():
        raise BackgroundError(f"background image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BackgroundError(f"background image {path}: missing or not an image OpenCV can read")
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float() / 255.0
    return resize_background(rgb, resolution)


def checkpoint_background(ckpt: dict, resolution: tuple[int, int]) -> torch.Tensor | None:
    """The training data's background stored in a checkpoint, if any, at `resolution`."""
    image = ckpt.get("background")
    if image is None:
        return None
    image = torch.as_tensor(image)
    if image.dim() == 4:  # (1, 3, H, W)
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise BackgroundError(f"checkpoint background has shape {tuple(image.shape)}, expected (3, H, W)")
    return resize_background(image, resolution)


def grey_background(resolution: tuple[int, int]) -> torch.Tensor:
    return torch.full((3, *resolution), GREY)


class SlotRenderer:
    """Decodes single slots with a model's decoder at the model's current level."""

    def __init__(self, model: Loci, background: torch.Tensor, background_logit_scale: float = 1.0):
        self.model = model.eval()
        self.resolution = model.resolution
        if tuple(background.shape) != (3, *self.resolution):
            raise ValueError(f"background must be (3, {self.resolution[0]}, {self.resolution[1]}), "
                             f"got {tuple(background.shape)}")
        device = next(model.parameters()).device
        self.background = background.to(device)  # (3, H, W)
        with torch.inference_mode():
            # (H, W) logit of the background in the softmax against the slot
            self.background_logit = model.background_mask(self.resolution)[0, 0] * background_logit_scale
        self.device = device

    @torch.inference_mode()
    def render(self, gestalt: np.ndarray, position: np.ndarray) -> Rendering:
        """gestalt (G,), position (3,) = (p_row, p_col, s) -> Rendering."""
        model = self.model
        position_t = torch.as_tensor(position, dtype=torch.float32, device=self.device).view(1, 1, 3)
        gestalt_t = torch.as_tensor(gestalt, dtype=torch.float32, device=self.device).view(1, 1, -1)
        mask_logits, rgb_logits = model.decode_slots(position_t, gestalt_t)  # (1,1,H,W), (1,1,3,H,W)
        mask = torch.sigmoid(mask_logits[0, 0] - self.background_logit)  # (H, W): 2-way softmax
        rgb = torch.sigmoid(rgb_logits[0, 0] + model.cfg.colour_bias)  # (3, H, W)
        composite = mask * rgb + (1 - mask) * self.background  # (3, H, W)

        latent = tuple(model.cfg.latent_size)
        blob = gaussian_maps(position_t, latent)  # (1, 1, h, w): the decoder's blob on its grid
        blob = F.interpolate(blob, size=self.resolution, mode="bilinear", align_corners=True)[0, 0]
        overlay = torch.tensor(POSITION_COLOUR, device=self.device).view(3, 1, 1)
        alpha = POSITION_OPACITY * blob
        view = (1 - alpha) * POSITION_DIM * self.background + alpha * overlay  # (3, H, W)

        # the blob's sigma in grid units is (1 + max(h, w) * s) / w along the columns (nn.gaussian);
        # one grid unit is (W - 1) / 2 model pixels
        size = float(np.clip(position[2], 0.0, 1.0))
        radius = (1 + max(latent) * size) / latent[1] * (self.resolution[1] - 1) / 2

        def image(t: torch.Tensor) -> np.ndarray:
            return t.permute(1, 2, 0).float().cpu().numpy()

        return Rendering(composite=image(composite), rgb=image(rgb), mask=mask.float().cpu().numpy(),
                         position_map=blob.float().cpu().numpy(), position_view=image(view),
                         blob_radius=radius, visibility=float(mask.max()))
