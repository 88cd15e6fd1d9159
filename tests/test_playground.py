"""The playground window, driven like a user would (offscreen Qt): real widgets, real mouse,
wheel and key events, the real model decoder of a tiny untrained checkpoint.

An untrained decoder still depends on gestalt and position: its trunk's skip path carries
gestalt x Gaussian blob to the heads, so the mask peaks where the blob is and changes with the
bits (plus a small position-independent offset from the random convolutions, which is why mask
centres below are measured over the part above half of the mask's range).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from loci_core.tools.latents import Latents, save_latents  # noqa: E402
from loci_core.tools.playground.editing import size_step  # noqa: E402
from loci_core.tools.playground.session import Playground  # noqa: E402
from loci_core.tools.playground.window import PlaygroundWindow  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


@pytest.fixture
def window(app, tiny_checkpoint):
    win = PlaygroundWindow(Playground.from_checkpoint(tiny_checkpoint))
    win.show()
    app.processEvents()
    yield win
    win.close()


def blob_centre(mask: np.ndarray) -> np.ndarray:
    """(row, col) centre of mass of the part of the mask above half of its range."""
    weight = np.clip(mask - (mask.min() + mask.max()) / 2, 0, None)
    rows, cols = np.mgrid[: mask.shape[0], : mask.shape[1]]
    return np.array([(weight * rows).sum(), (weight * cols).sum()]) / weight.sum()


def blob_area(mask: np.ndarray) -> int:
    return int((mask > (mask.min() + mask.max()) / 2).sum())


def click_bit(window, index: int) -> None:
    QTest.mouseClick(window.bits, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     window.bits.cell_rect(index).center().toPoint())


def click_pixel(window, row: float, col: float) -> None:
    """Click the position panel where model pixel (row, col) is shown."""
    panel = window.position_panel
    QTest.mouseClick(panel, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(int((col + 0.5) * panel.zoom), int((row + 0.5) * panel.zoom)))


def wheel(panel, notches: int) -> None:
    centre = QPointF(panel.width() / 2, panel.height() / 2)
    for _ in range(abs(notches)):
        delta = QPoint(0, 120 if notches > 0 else -120)
        event = QWheelEvent(centre, panel.mapToGlobal(centre), QPoint(), delta, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.postEvent(panel, event)
    QApplication.processEvents()


def pixels(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    data = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return data[:, : image.width() * 3].copy()


def test_window_opens_with_defaults_and_screenshot(window, tmp_path):
    session = window.session
    assert session.resolution == (60, 80)
    # no latent: all-zero gestalt at the image centre, grey background (the tiny checkpoint has none)
    np.testing.assert_array_equal(session.editor.current.gestalt, 0)
    np.testing.assert_allclose(session.editor.current.position, [0, 0, 0.05])
    assert "grey" in window.statusBar().currentMessage()
    assert not window.bits.bits_shown().any()
    assert window.bits.size_bits == session.gestalt_size
    # clicking a small output panel swaps its view into the big one (as the original)
    QTest.mouseClick(window.panel("mask"), Qt.MouseButton.LeftButton)
    assert window.panel("mask") is window.big_panel and "mask" in window.big_title.text()
    shot = tmp_path / "playground.png"
    assert window.grab().save(str(shot))
    image = QImage(str(shot))
    assert image.width() >= window.position_panel.width() * 2 and pixels(window).std() > 10


def test_clicking_a_bit_changes_the_slot(window):
    before = window.session.render()
    rgb_before = pixels(window.panel("rgb"))
    click_bit(window, 3)
    assert window.session.editor.current.gestalt[3] == 1 and window.bits.bits_shown()[3]
    after = window.session.render()
    assert np.abs(after.rgb - before.rgb).max() > 1e-3
    assert np.abs(after.mask - before.mask).max() > 1e-3
    assert (pixels(window.panel("rgb")) != rgb_before).any()  # and the user sees it
    click_bit(window, 3)
    assert window.session.editor.current.gestalt[3] == 0
    np.testing.assert_allclose(window.session.render().rgb, before.rgb, atol=1e-6)


@pytest.mark.parametrize("row, col", [(15, 60), (45, 12)])
def test_clicking_the_position_panel_moves_the_mask(window, row, col):
    for index in range(window.session.gestalt_size):  # all bits on: a clear blob
        click_bit(window, index)
    click_pixel(window, row, col)
    rendering = window.session.render()
    assert np.abs(blob_centre(rendering.mask) - [row, col]).max() <= 2.0
    peak = np.unravel_index(rendering.position_map.argmax(), rendering.position_map.shape)
    assert np.abs(np.subtract(peak, (row, col))).max() <= 2

    # arrow keys nudge by one model pixel, Shift by ten
    start = np.array(window.session.editor.position_pixel())
    QTest.keyClick(window.position_panel, Qt.Key.Key_Right)
    QTest.keyClick(window.position_panel, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_allclose(window.session.editor.position_pixel(), start + [-10, 1], atol=1e-3)


def test_wheel_makes_the_mask_larger(window):
    for index in range(window.session.gestalt_size):
        click_bit(window, index)
    small = window.session.render().mask
    wheel(window.position_panel, 10)
    assert window.session.editor.current.position[2] == pytest.approx(size_step(0.05, 10))
    larger = window.session.render().mask
    assert blob_area(larger) > 1.3 * blob_area(small)
    wheel(window.position_panel, -10)  # and back down (not exactly to 0.05: steps scale with s)
    assert window.session.editor.current.position[2] == pytest.approx(size_step(size_step(0.05, 10), -10))
    assert blob_area(window.session.render().mask) < blob_area(larger)


def test_save_then_open_restores_the_state(window, tmp_path):
    for index in (0, 2, 7):
        click_bit(window, index)
    click_pixel(window, 20, 30)
    wheel(window.position_panel, 3)
    saved = window.session.editor.current.copy()
    rendering = window.session.render()
    path = tmp_path / "slot.npz"
    assert window.save_latent(path)

    window.reset()  # no file open yet: back to the default slot
    assert not window.session.editor.current.bits.any()
    assert window.open_latent(path)
    current = window.session.editor.current
    np.testing.assert_array_equal(current.gestalt, saved.gestalt)
    np.testing.assert_allclose(current.position, saved.position, atol=1e-7)
    np.testing.assert_allclose(window.session.render().composite, rendering.composite, atol=1e-6)
    assert window.bits.bits_shown()[[0, 2, 7]].all() and window.bits.bits_shown().sum() == 3
    # reset after edits returns to the opened file's slot
    click_bit(window, 1)
    window.reset()
    np.testing.assert_array_equal(window.session.editor.current.gestalt, saved.gestalt)


def test_slot_selector_and_time_slider_follow_the_file(window, tmp_path):
    rng = np.random.default_rng(0)
    steps, slots, size = 4, 3, window.session.gestalt_size
    latents = Latents(gestalt=rng.integers(0, 2, (steps, slots, size)),
                      position=np.concatenate([rng.uniform(-0.8, 0.8, (steps, slots, 2)),
                                               rng.uniform(0, 0.2, (steps, slots, 1))], -1),
                      priority=np.zeros((steps, slots)), visibility=np.ones((steps, slots)))
    path = save_latents(tmp_path / "sequence.npz", latents)
    assert window.open_latent(path)
    assert window.slot_box.isVisible() and window.time_slider.isVisible()
    assert (window.slot_box.maximum(), window.time_slider.maximum()) == (slots - 1, steps - 1)
    window.slot_box.setValue(2)
    window.time_slider.setValue(3)
    editor = window.session.editor
    assert (editor.slot, editor.time) == (2, 3)
    np.testing.assert_array_equal(editor.current.gestalt, latents.gestalt[3, 2])
    np.testing.assert_allclose(editor.current.position, latents.position[3, 2])
    np.testing.assert_array_equal(window.bits.bits_shown(), latents.gestalt[3, 2] > 0.5)


def test_bad_latent_files_show_errors_in_the_status_bar(window, tmp_path):
    click_bit(window, 4)
    state = window.session.editor.current.copy()

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    assert not window.open_latent(garbage)
    message = window.statusBar().currentMessage()
    assert message.startswith("error") and "garbage.npz" in message and "unreadable" in message

    wrong = save_latents(tmp_path / "wrong.npz", Latents(
        gestalt=np.zeros((1, 1, window.session.gestalt_size + 8)), position=np.zeros((1, 1, 3)),
        priority=np.zeros((1, 1)), visibility=np.zeros((1, 1))))
    assert not window.open_latent(wrong)
    message = window.statusBar().currentMessage()
    assert "gestalt size 24" in message and f"gestalt size {window.session.gestalt_size}" in message
    assert not window.open_latent(tmp_path / "missing.npz")
    assert "not found" in window.statusBar().currentMessage()

    # the window keeps working on the state it had
    np.testing.assert_array_equal(window.session.editor.current.gestalt, state.gestalt)
    assert window.session.editor.loaded is None


def test_cli_writes_a_screenshot(app, tiny_checkpoint, tmp_path):
    from loci_core.cli import main

    shot = tmp_path / "cli.png"
    assert main(["playground", "--checkpoint", str(tiny_checkpoint), "--screenshot", str(shot)]) == 0
    assert QImage(str(shot)).width() > 400
    # --level decodes the level-1 tiny checkpoint at level 2 (240 x 320): a larger window
    big = tmp_path / "level2.png"
    assert main(["playground", "--checkpoint", str(tiny_checkpoint), "--level", "2",
                 "--screenshot", str(big)]) == 0
    assert QImage(str(big)).height() > QImage(str(shot)).height()
    assert main(["playground", "--checkpoint", str(tmp_path / "none.pt"), "--screenshot", str(shot)]) == 1
    # a bad latent file is reported in the window, not a crash
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("no")
    assert main(["playground", "--checkpoint", str(tiny_checkpoint), "--latent", str(garbage),
                 "--screenshot", str(shot)]) == 0
