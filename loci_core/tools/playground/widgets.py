"""Qt widgets of the playground: an image panel at an integer zoom of the model's resolution
and the clickable grid of gestalt bits. They only display and report input (in model pixels
and bit indices); the window decides what an input means.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

# Wheel deltas come in eighths of a degree; one notch of a standard mouse wheel is 15 degrees.
WHEEL_NOTCH = 120
# Arrow keys move the slot by one model pixel, with Shift by this many.
FAST_NUDGE_PIXELS = 10

ONE_COLOUR = QColor(38, 139, 70)      # a set bit: filled green cell with a white "1"
ZERO_COLOUR = QColor(250, 250, 250)   # a cleared bit: empty cell with a grey "0"
GRID_LINE = QColor(120, 120, 120)


def to_qimage(image: np.ndarray) -> QImage:
    """(H, W, 3) RGB or (H, W) grey, float in [0, 1] or uint8 -> QImage (owns its copy of the pixels)."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class ImagePanel(QWidget):
    """Shows one image of the model's resolution, zoomed by an integer factor.

    Signals carry model pixel coordinates, so the mapping from widget pixels lives here only.
    """

    clicked = Signal(float, float)     # row, col in model pixels (fractional)
    wheeled = Signal(int)              # notches, positive = away from the user (grow)
    nudged = Signal(int, int)          # rows, cols in model pixels
    activated = Signal()               # plain click on a panel that is not interactive

    def __init__(self, resolution: tuple[int, int], zoom: int, interactive: bool = False):
        super().__init__()
        self.resolution = tuple(resolution)
        self.zoom = zoom
        self.interactive = interactive
        self._image = QImage()
        self._marker: tuple[float, float, float] | None = None   # row, col, radius in model pixels
        self._wheel_rest = 0
        height, width = self.resolution
        self.setFixedSize(width * zoom, height * zoom)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        if interactive:
            self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            self.setCursor(Qt.CursorShape.CrossCursor)

    def set_image(self, image: np.ndarray) -> None:
        self._image = to_qimage(image)
        self.update()

    def set_marker(self, row: float, col: float, radius: float) -> None:
        self._marker = (row, col, radius)
        self.update()

    def model_pixel(self, point: QPointF) -> tuple[float, float]:
        """Widget point -> (row, col) in model pixels, pixel centres at integers."""
        height, width = self.resolution
        col = (point.x() / self.width()) * width - 0.5
        row = (point.y() / self.height()) * height - 0.5
        return row, col

    def paintEvent(self, event):  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.drawImage(QRectF(0, 0, self.width(), self.height()), self._image)
        if self._marker is not None:
            row, col, radius = self._marker
            centre = QPointF((col + 0.5) * self.zoom, (row + 0.5) * self.zoom)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.drawEllipse(centre, radius * self.zoom, radius * self.zoom)
            painter.setPen(QPen(QColor(255, 40, 40), 2))
            arm = 4
            painter.drawLine(centre - QPointF(arm, 0), centre + QPointF(arm, 0))
            painter.drawLine(centre - QPointF(0, arm), centre + QPointF(0, arm))
        if self.interactive and self.hasFocus():
            painter.setPen(QPen(QColor(60, 120, 220), 2))
            painter.drawRect(1, 1, self.width() - 2, self.height() - 2)
        painter.end()

    def mousePressEvent(self, event):  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if self.interactive:
            self.setFocus()
            self.clicked.emit(*self.model_pixel(event.position()))
        else:
            self.activated.emit()

    def wheelEvent(self, event):  # noqa: N802
        if not self.interactive:
            event.ignore()
            return
        # accumulate partial deltas (touchpads) until they make whole notches
        self._wheel_rest += event.angleDelta().y()
        notches = int(self._wheel_rest / WHEEL_NOTCH)
        self._wheel_rest -= notches * WHEEL_NOTCH
        if notches:
            self.wheeled.emit(notches)
        event.accept()

    def keyPressEvent(self, event):  # noqa: N802
        steps = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1),
                 Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0)}
        if not self.interactive or event.key() not in steps:
            super().keyPressEvent(event)
            return
        rows, cols = steps[event.key()]
        scale = FAST_NUDGE_PIXELS if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
        self.nudged.emit(rows * scale, cols * scale)


class BitGrid(QWidget):
    """The gestalt code as a grid of cells: filled green "1" or empty "0". Click flips a bit."""

    flipped = Signal(int)
    CELL = 26
    MARGIN = 3

    def __init__(self, size: int, columns: int = 16):
        super().__init__()
        self.size_bits = size
        self.columns = min(columns, size)
        self.rows = -(-size // self.columns)
        self._bits = np.zeros(size, bool)
        self.setFixedSize(self.sizeHint())
        self.setToolTip("gestalt code: click a cell to flip its bit (green 1 = set, white 0 = clear)")

    def sizeHint(self) -> QSize:  # noqa: N802
        step = self.CELL + self.MARGIN
        return QSize(self.columns * step + self.MARGIN, self.rows * step + self.MARGIN)

    def set_bits(self, bits: np.ndarray) -> None:
        self._bits = np.asarray(bits, bool).copy()
        self.update()

    def bits_shown(self) -> np.ndarray:
        return self._bits.copy()

    def cell_rect(self, index: int) -> QRectF:
        row, col = divmod(index, self.columns)
        step = self.CELL + self.MARGIN
        return QRectF(self.MARGIN + col * step, self.MARGIN + row * step, self.CELL, self.CELL)

    def index_at(self, point: QPointF) -> int | None:
        for index in range(self.size_bits):
            if self.cell_rect(index).contains(point):
                return index
        return None

    def paintEvent(self, event):  # noqa: N802
        painter = QPainter(self)
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        for index in range(self.size_bits):
            rect = self.cell_rect(index)
            on = bool(self._bits[index])
            painter.setPen(QPen(GRID_LINE, 1))
            painter.setBrush(ONE_COLOUR if on else ZERO_COLOUR)
            painter.drawRect(rect)
            painter.setPen(QColor(255, 255, 255) if on else QColor(110, 110, 110))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "1" if on else "0")
        painter.end()

    def mousePressEvent(self, event):  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return
        index = self.index_at(event.position())
        if index is not None:
            self.flipped.emit(index)
