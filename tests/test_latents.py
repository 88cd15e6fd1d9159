"""The latent file format shared by `loci save` and the playground."""

import numpy as np
import pytest

from loci_core.tools.latents import LatentFileError, Latents, load_latents, save_latents


def _latents(steps=3, slots=2, gestalt=8):
    rng = np.random.default_rng(0)
    return Latents(
        gestalt=(rng.random((steps, slots, gestalt)) > 0.5).astype(np.float32),
        position=rng.uniform(-1, 1, (steps, slots, 3)),
        priority=rng.normal(size=(steps, slots)),
        visibility=rng.random((steps, slots)),
        meta={"resolution": [60, 80], "video": "v0"},
    )


def test_round_trip(tmp_path):
    original = _latents()
    path = save_latents(tmp_path / "a" / "latents.npz", original)
    loaded = load_latents(path)
    for name in ("gestalt", "position", "priority", "visibility"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.meta["resolution"] == [60, 80]
    assert loaded.meta["gestalt_size"] == 8
    assert (loaded.steps, loaded.slots, loaded.gestalt_size) == (3, 2, 8)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(LatentFileError, match="not found"):
        load_latents(tmp_path / "nope.npz")


def test_garbage_file_is_rejected(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(LatentFileError, match="unreadable"):
        load_latents(bad)


def test_foreign_npz_is_rejected(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(LatentFileError, match="missing gestalt"):
        load_latents(other)


def test_inconsistent_shapes_are_rejected():
    with pytest.raises(LatentFileError, match="priority"):
        Latents(gestalt=np.zeros((2, 3, 4)), position=np.zeros((2, 3, 3)),
                priority=np.zeros((2, 2)), visibility=np.zeros((2, 3)))
