"""loci_core: the Loci model (Traub et al., ICLR 2023) and its tooling, free of ROS.

Packages: `model` (the model and its blocks), `data` (CATER-style scenes, footage, data sets), `training`,
`evaluation`, `tracking` (online entities for a live camera) and `tools` (latents, playground, images).
The names below are the public entry points; they load lazily, so `import loci_core` stays cheap."""

__version__ = "0.1.0"

_PUBLIC = {
    "Loci": "loci_core.model.loci",
    "LociState": "loci_core.model.state",
    "load_model": "loci_core.model.checkpoint",
    "load_config": "loci_core.config",
    "OnlineTracker": "loci_core.tracking.tracker",
    "TrackedFrame": "loci_core.tracking.tracker",
    "ProjectiveCamera": "loci_core.data.camera",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'loci_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)
