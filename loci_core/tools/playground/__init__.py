"""`loci playground`: explore what a slot has learned.

Flip bits of a slot's gestalt code and watch its look change; click, scroll or nudge its
position and watch the same object appear elsewhere, larger or smaller. Modules:

    editing.py   the edited slot and its latent file (numpy only)
    renderer.py  decode one slot with the model and composite it (torch, no Qt)
    session.py   checkpoint + background + editor + renderer (no Qt)
    widgets.py   image panels and the bit grid (Qt)
    window.py    the main window, a thin view over a session (Qt)

Qt is imported only when the command runs, so `loci --help` works without a display.
"""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "playground", help="interactive GUI: edit one slot's gestalt bits and position, see it decoded",
        description="Edit one slot's gestalt code (click bits) and position (click, mouse wheel = size, "
                    "arrow keys = nudge) and see the model decode it over the background.")
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (.pt)")
    parser.add_argument("--latent", help="latent file (.npz from `loci save` or this tool) to start from")
    parser.add_argument("--background", help="background image file (resized to the model's resolution); "
                        "default: the checkpoint's training background, else grey")
    parser.add_argument("--slot", type=int, default=0, help="slot of the latent file to edit (default 0)")
    parser.add_argument("--time", type=int, default=0, help="time step of the latent file (default 0)")
    parser.add_argument("--level", type=int, help="resolution level to decode at (default: the checkpoint's)")
    parser.add_argument("--background-logit-scale", type=float, default=1.0,
                        help="multiplies the background mask logit in the slot/background softmax; 1 = the "
                             "model's composition, 0.01 = the original playground's display (default 1)")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="write a screenshot of the window to PNG and exit (no interaction)")
    parser.set_defaults(func=run)


def _display_available() -> bool:
    """Qt aborts the process when it finds no display; check first where that can happen (Linux)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def run(args: argparse.Namespace) -> int:
    from loci_core.model.checkpoint import CheckpointError
    from loci_core.tools.playground.renderer import BackgroundError
    from loci_core.tools.playground.session import Playground

    try:
        session = Playground.from_checkpoint(args.checkpoint, args.background, level=args.level,
                                             background_logit_scale=args.background_logit_scale)
    except (CheckpointError, BackgroundError) as err:
        print(f"loci playground: {err}", file=sys.stderr)
        return 1

    if not _display_available():
        if not args.screenshot:
            print("loci playground: no display (DISPLAY/WAYLAND_DISPLAY unset); run it on a desktop, or "
                  "use --screenshot PNG, which also works without one", file=sys.stderr)
            return 1
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtWidgets import QApplication

    from loci_core.tools.playground.window import PlaygroundWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = PlaygroundWindow(session)
    # problems with the latent file or the selection go to the status bar, like in the open dialog
    if args.latent and window.open_latent(args.latent):
        window.select(args.slot, args.time)
    elif (args.slot, args.time) != (0, 0):
        window.show_error("--slot/--time need a --latent file that holds them")
    if args.screenshot:
        window.show()
        app.processEvents()
        if not window.grab().save(args.screenshot):
            print(f"loci playground: could not write screenshot {args.screenshot}", file=sys.stderr)
            return 1
        window.close()
        return 0
    window.show()
    return int(app.exec())
