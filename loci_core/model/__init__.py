"""The Loci model: `loci.py` (one step of the slot model), its per-sequence `state.py`, the blocks in `nn/` (the
reference implementation), the speed layer in `fast/` (the same function faster; `model.implementation`), what
steps 2-8 take and give (`advance.py`), the training ramps it reads (`schedules.py`), reduced-precision training
(`precision.py`) and checkpoints (`checkpoint.py`)."""
