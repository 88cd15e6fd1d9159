"""The playground's Qt-free parts: the editing state and the model-side rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loci_core.model.checkpoint import load_model, save_checkpoint
from loci_core.tools.latents import LatentFileError, Latents, load_latents, save_latents
from loci_core.tools.playground.editing import (
    DEFAULT_SIZE,
    SlotEditor,
    coordinate_to_pixel,
    pixel_to_coordinate,
    size_step,
)
from loci_core.tools.playground.renderer import BackgroundError
from loci_core.tools.playground.session import Playground


def test_pixel_mapping_is_the_models_grid():
    # pixel i of n sits at 2i/(n-1) - 1 (loci_core.model.nn.gaussian): corners map to -1 and 1
    assert pixel_to_coordinate(0, 80) == -1 and pixel_to_coordinate(79, 80) == 1
    assert pixel_to_coordinate(-5, 80) == -1 and pixel_to_coordinate(100, 80) == 1  # clipped
    assert coordinate_to_pixel(pixel_to_coordinate(17.25, 60), 60) == pytest.approx(17.25)
    editor = SlotEditor(8, (60, 80))
    editor.set_position_pixel(10, 70)  # rows first: p_row from the row, p_col from the column
    assert editor.current.position[0] == pytest.approx(2 * 10 / 59 - 1)
    assert editor.current.position[1] == pytest.approx(2 * 70 / 79 - 1)
    editor.nudge(-100, 3)
    assert editor.position_pixel() == pytest.approx((0, 73), abs=1e-4)


def test_size_steps_follow_the_original_rule():
    s = 0.3
    assert size_step(s, 1) == pytest.approx(s + 0.1 * s * (1 - s))
    assert size_step(s, -1) == pytest.approx(s - 0.1 * s * (1 - s))
    assert size_step(0.0, 1) == pytest.approx(0.001) and size_step(0.0, -1) == 0.0
    assert size_step(1.0, 1) == 1.0 and size_step(0.9995, 3) == 1.0
    assert size_step(0.2, 2) == pytest.approx(size_step(size_step(0.2, 1), 1))


def test_flip_snaps_continuous_values_and_default_slot():
    editor = SlotEditor(4, (60, 80))
    np.testing.assert_array_equal(editor.current.gestalt, 0)
    np.testing.assert_allclose(editor.current.position, [0, 0, DEFAULT_SIZE])
    editor.set_gestalt([0.2, 0.7, 0.5, 0.0])
    editor.flip_bit(0)
    editor.flip_bit(1)
    editor.flip_bit(2)
    np.testing.assert_array_equal(editor.current.gestalt, [1, 0, 0, 0])
    with pytest.raises(IndexError):
        editor.flip_bit(4)


def test_open_select_reset_save(tmp_path):
    rng = np.random.default_rng(1)
    latents = Latents(gestalt=rng.random((3, 2, 6)), position=rng.uniform(-1, 1, (3, 2, 3)) * [1, 1, 0],
                      priority=rng.random((3, 2)), visibility=rng.random((3, 2)), meta={"video": "v"})
    path = save_latents(tmp_path / "seq.npz", latents)
    editor = SlotEditor(6, (60, 80))
    editor.open(path)
    np.testing.assert_allclose(editor.current.gestalt, latents.gestalt[0, 0])
    editor.select(slot=1, time=2)
    np.testing.assert_allclose(editor.current.position, latents.position[2, 1])
    with pytest.raises(LatentFileError, match="slot 2 out of range"):
        editor.select(slot=2)
    assert (editor.slot, editor.time) == (1, 2)
    editor.flip_bit(0)
    editor.resize(5)
    editor.reset()
    np.testing.assert_allclose(editor.current.gestalt, latents.gestalt[2, 1])

    out = editor.save(tmp_path / "one.npz", visibility=0.4)
    saved = load_latents(out)
    assert (saved.steps, saved.slots) == (1, 1)
    np.testing.assert_allclose(saved.gestalt[0, 0], latents.gestalt[2, 1])
    assert saved.priority[0, 0] == pytest.approx(latents.priority[2, 1])
    assert saved.meta["resolution"] == [60, 80] and saved.meta["source_slot"] == 1

    with pytest.raises(LatentFileError, match="gestalt size 6 does not match .* gestalt size 5"):
        SlotEditor(5, (60, 80)).open(path)


def test_background_choice(tiny_checkpoint, tmp_path):
    import cv2

    # the checkpoint's stored training background wins over grey, resized to the model's level
    model, cfg, _ = load_model(tiny_checkpoint)
    stored = torch.rand(3, 240, 320)
    with_background = save_checkpoint(tmp_path / "bg.pt", model, cfg, background=stored)
    session = Playground.from_checkpoint(with_background)
    assert session.background_source == "checkpoint"
    expected = torch.nn.functional.avg_pool2d(stored[None], 4)[0]
    torch.testing.assert_close(session.renderer.background, expected)

    # an image file wins over the checkpoint; it is read as RGB
    image = np.zeros((120, 160, 3), np.uint8)
    image[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), image)
    session = Playground.from_checkpoint(with_background, background=tmp_path / "red.png")
    torch.testing.assert_close(session.renderer.background[:, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(BackgroundError, match="nothing.png"):
        Playground.from_checkpoint(tiny_checkpoint, background=tmp_path / "nothing.png")


def test_rendering_is_the_models_composition(tiny_checkpoint):
    session = Playground.from_checkpoint(tiny_checkpoint)
    session.editor.set_gestalt(np.ones(session.gestalt_size))
    session.editor.set_position_pixel(20, 50)
    rendering = session.render()
    model = session.model
    slot = session.editor.current
    with torch.no_grad():
        mask_logits, rgb_logits = model.decode_slots(torch.tensor(slot.position).view(1, 1, 3),
                                                     torch.tensor(slot.gestalt).view(1, 1, -1))
        background_logit = model.background_mask(model.resolution)
        masks = torch.softmax(torch.cat([mask_logits, background_logit], 1), 1)[0]  # (2, H, W)
        colour = torch.sigmoid(rgb_logits[0, 0] + model.cfg.colour_bias)
        composite = masks[0] * colour + masks[1] * 0.5
    np.testing.assert_allclose(rendering.mask, masks[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(rendering.composite, composite.permute(1, 2, 0).numpy(), atol=1e-6)
    assert rendering.visibility == pytest.approx(float(masks[0].max()))
    assert rendering.composite.shape == (60, 80, 3) and rendering.mask.shape == (60, 80)
