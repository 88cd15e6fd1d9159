"""The Loci model: `loci.py` (one step of the slot model), its per-sequence `state.py`, the blocks in `nn/`,
the training ramps it reads (`schedules.py`) and checkpoints (`checkpoint.py`)."""
