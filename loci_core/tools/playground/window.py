"""The playground window: a thin Qt view over a `Playground` session.

Every input is handed to the session's editor, then the whole view is re-rendered from the
session (decoding one slot is fast enough on the CPU to do on every click). Errors from
opening or saving latent files go to the status bar; the window keeps its previous state.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from loci_core.tools.latents import LatentFileError
from loci_core.tools.playground.session import Playground
from loci_core.tools.playground.widgets import BitGrid, ImagePanel

# Target on-screen widths (pixels) of the big output panel and of the small panels; the zoom
# is the integer factor of the model's resolution that comes closest.
BIG_PANEL_WIDTH = 480
SMALL_PANEL_WIDTH = 240
# How long (ms) an informational status message stays; errors stay until the next message.
STATUS_TIMEOUT_MS = 5000

VIEW_TITLES = {"composite": "composite (background + slot)", "rgb": "slot appearance (RGB)",
               "mask": "slot mask"}
LATENT_FILTER = "Latent files (*.npz);;All files (*)"


def _zoom(width: int, target: int) -> int:
    return max(1, round(target / width))


def _titled(title: str, widget: QWidget) -> tuple[QWidget, QLabel]:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    label = QLabel(title)
    layout.addWidget(label)
    layout.addWidget(widget)
    return box, label


class PlaygroundWindow(QMainWindow):
    def __init__(self, session: Playground):
        super().__init__()
        self.session = session
        self._updating_selectors = False  # True while refresh_selectors sets them: no re-selecting
        self.setWindowTitle(f"loci playground — {session.name}")
        resolution = session.resolution
        small = _zoom(resolution[1], SMALL_PANEL_WIDTH)
        big = _zoom(resolution[1], BIG_PANEL_WIDTH)

        self.bits = BitGrid(session.gestalt_size)
        self.position_panel = ImagePanel(resolution, small, interactive=True)
        self.position_panel.setToolTip("click: move the slot; wheel: size; arrow keys: nudge (Shift: x10)")
        # the big panel shows views[0]; clicking a small panel swaps its view into the big one
        self.views = ["composite", "rgb", "mask"]
        self.big_panel = ImagePanel(resolution, big)
        self.small_panels = [ImagePanel(resolution, small) for _ in range(2)]
        self.bits.flipped.connect(self.flip_bit)
        self.position_panel.clicked.connect(self.place)
        self.position_panel.wheeled.connect(self.resize_slot)
        self.position_panel.nudged.connect(self.nudge)
        for index, panel in enumerate(self.small_panels):
            panel.activated.connect(lambda index=index: self.swap_view(index + 1))

        self.slot_box = QSpinBox()
        self.slot_box.setPrefix("slot ")
        self.slot_box.valueChanged.connect(lambda value: self.select(slot=value))
        self.time_slider = QSlider(Qt.Orientation.Horizontal)
        self.time_slider.valueChanged.connect(lambda value: self.select(time=value))
        self.time_title = QLabel("time")
        self.time_label = QLabel()
        self.readout = QLabel()
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setCentralWidget(self._layout())
        self._actions()
        self.refresh_selectors()
        self.refresh()
        self.show_info(session.describe())
        self.position_panel.setFocus()  # arrow keys nudge right away

    # --- layout ------------------------------------------------------------------------------
    def _layout(self) -> QWidget:
        grid = QGridLayout()
        bits_box, _ = _titled("gestalt code: click a bit to flip it (green 1 = set, white 0 = clear)",
                              self.bits)
        position_box, _ = _titled("position (click / wheel / arrow keys)", self.position_panel)
        big_box, self.big_title = _titled("", self.big_panel)
        small_boxes = [_titled("", panel) for panel in self.small_panels]
        self.small_titles = [label for _, label in small_boxes]
        grid.addWidget(bits_box, 0, 0, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(position_box, 0, 1, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(big_box, 1, 0, 2, 1, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(small_boxes[0][0], 1, 1, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(small_boxes[1][0], 2, 1, Qt.AlignmentFlag.AlignTop)

        buttons = QHBoxLayout()
        for text, slot in (("Open…", self.open_dialog), ("Save…", self.save_dialog), ("Reset", self.reset)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addSpacing(12)
        buttons.addWidget(self.slot_box)
        buttons.addWidget(self.time_title)
        buttons.addWidget(self.time_slider, 1)
        buttons.addWidget(self.time_label)

        column = QVBoxLayout()
        column.addLayout(buttons)
        column.addWidget(self.readout)
        column.addLayout(grid)
        column.addStretch(1)
        root = QWidget()
        root.setLayout(column)
        return root

    def _actions(self) -> None:
        for text, keys, slot in (("Open latent file…", QKeySequence.StandardKey.Open, self.open_dialog),
                                 ("Save latent file…", QKeySequence.StandardKey.Save, self.save_dialog),
                                 ("Reset", QKeySequence("Ctrl+R"), self.reset)):
            action = QAction(text, self)
            action.setShortcut(keys)
            action.triggered.connect(slot)
            self.addAction(action)

    # --- inputs ------------------------------------------------------------------------------
    def flip_bit(self, index: int) -> None:
        self.session.editor.flip_bit(index)
        self.refresh()

    def place(self, row: float, col: float) -> None:
        self.session.editor.set_position_pixel(row, col)
        self.refresh()

    def resize_slot(self, notches: int) -> None:
        self.session.editor.resize(notches)
        self.refresh()

    def nudge(self, rows: int, cols: int) -> None:
        self.session.editor.nudge(rows, cols)
        self.refresh()

    def swap_view(self, index: int) -> None:
        self.views[0], self.views[index] = self.views[index], self.views[0]
        self.refresh()

    def reset(self) -> None:
        self.session.editor.reset()
        self.refresh()
        self.show_info("reset")

    def select(self, slot: int | None = None, time: int | None = None) -> None:
        if self._updating_selectors:
            return
        try:
            self.session.editor.select(slot, time)
        except LatentFileError as err:
            self.show_error(str(err))
        self.refresh_selectors()  # the selectors always show what is being edited
        self.refresh()

    # --- files -------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open latent file", "", LATENT_FILTER)
        if path:
            self.open_latent(path)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save latent file", "slot.npz", LATENT_FILTER)
        if path:
            self.save_latent(path)

    def open_latent(self, path: str | Path) -> bool:
        try:
            latents = self.session.editor.open(path)
        except LatentFileError as err:
            self.show_error(str(err))
            return False
        self.refresh_selectors()
        self.refresh()
        self.show_info(f"opened {path}: {latents.slots} slot(s), {latents.steps} step(s)")
        return True

    def save_latent(self, path: str | Path) -> bool:
        try:
            written = self.session.save(path)
        except (OSError, LatentFileError) as err:
            self.show_error(f"could not save {path}: {err}")
            return False
        self.show_info(f"saved {written}")
        return True

    def show_info(self, message: str) -> None:
        self.statusBar().setStyleSheet("")
        self.statusBar().showMessage(message, STATUS_TIMEOUT_MS)

    def show_error(self, message: str) -> None:
        self.statusBar().setStyleSheet("color: #b00020; font-weight: bold")
        self.statusBar().showMessage(f"error: {message}")

    # --- view --------------------------------------------------------------------------------
    def panel(self, view: str) -> ImagePanel:
        """The panel currently showing `view` ('composite', 'rgb' or 'mask')."""
        return ([self.big_panel] + self.small_panels)[self.views.index(view)]

    def refresh_selectors(self) -> None:
        """Slot box and time slider follow the open file; hidden when there is nothing to pick."""
        loaded = self.session.editor.loaded
        slots, steps = (loaded.slots, loaded.steps) if loaded is not None else (1, 1)
        self._updating_selectors = True
        self.slot_box.setRange(0, slots - 1)
        self.slot_box.setValue(self.session.editor.slot)
        self.time_slider.setRange(0, steps - 1)
        self.time_slider.setValue(self.session.editor.time)
        self._updating_selectors = False
        self.slot_box.setVisible(slots > 1)
        for widget in (self.time_title, self.time_slider, self.time_label):
            widget.setVisible(steps > 1)

    def refresh(self) -> None:
        rendering = self.session.render()
        editor = self.session.editor
        self.bits.set_bits(editor.current.bits)
        self.position_panel.set_image(rendering.position_view)
        row, col = editor.position_pixel()
        self.position_panel.set_marker(row, col, rendering.blob_radius)
        images = {"composite": rendering.composite, "rgb": rendering.rgb, "mask": rendering.mask}
        for panel, title, view in zip([self.big_panel] + self.small_panels,
                                      [self.big_title] + self.small_titles, self.views):
            panel.set_image(images[view])
            panel.setToolTip(VIEW_TITLES[view])
            title.setText(VIEW_TITLES[view] + ("" if panel is self.big_panel else "  (click to enlarge)"))
        p_row, p_col, size = editor.current.position
        self.readout.setText(
            f"p_row {p_row:+.3f}   p_col {p_col:+.3f}   s {size:.3f}   "
            f"bits set {int(editor.current.bits.sum())}/{editor.gestalt_size}   "
            f"visibility {rendering.visibility:.2f}")
        self.time_label.setText(f"t = {editor.time}")
