"""A playground session (no Qt): a checkpoint's model, the background, the slot being edited,
and its rendering. The window only forwards inputs to `session.editor` and shows `render()`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from loci_core.tools.playground.editing import SlotEditor
from loci_core.tools.playground.renderer import (
    Rendering,
    SlotRenderer,
    checkpoint_background,
    grey_background,
    read_background,
)


class Playground:
    def __init__(self, model, background: torch.Tensor, name: str = "model",
                 background_source: str = "given", background_logit_scale: float = 1.0):
        self.model = model
        self.name = name
        self.background_source = background_source
        self.renderer = SlotRenderer(model, background, background_logit_scale)
        self.editor = SlotEditor(model.gestalt_size, model.resolution)
        self._cache: tuple[bytes, Rendering] | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, background: str | Path | None = None,
                        level: int | None = None, background_logit_scale: float = 1.0,
                        device: str = "cpu") -> Playground:
        """Load a checkpoint (CheckpointError on failure) and pick the background: the given image
        file, else the checkpoint's stored training background, else grey."""
        from loci_core.model.checkpoint import load_model

        model, _, ckpt = load_model(checkpoint, device=device, level=level)
        resolution = model.resolution
        if background is not None:
            image, source = read_background(background, resolution), str(background)
        else:
            image = checkpoint_background(ckpt, resolution)
            source = "checkpoint"
            if image is None:
                image, source = grey_background(resolution), "grey (none given, none in the checkpoint)"
        return cls(model, image, name=Path(checkpoint).name, background_source=source,
                   background_logit_scale=background_logit_scale)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.model.resolution

    @property
    def gestalt_size(self) -> int:
        return self.model.gestalt_size

    def render(self) -> Rendering:
        """The current slot, decoded; cached until the slot changes (repaints cost nothing)."""
        slot = self.editor.current
        key = slot.gestalt.tobytes() + slot.position.tobytes()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.renderer.render(slot.gestalt, slot.position))
        return self._cache[1]

    def save(self, path: str | Path) -> Path:
        """Write the edited slot (T = O = 1) with its visibility under this model."""
        return self.editor.save(path, visibility=self.render().visibility, meta={"checkpoint": self.name})

    def describe(self) -> str:
        height, width = self.resolution
        return (f"{self.name}: level {self.model.level}, {height}x{width} px, gestalt size "
                f"{self.gestalt_size}; background: {self.background_source}")
