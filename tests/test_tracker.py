"""OnlineTracker on a real (untrained, tiny) Loci checkpoint: sizes, mapping to input pixels, state,
hidden entities, ground plane, determinism. No ROS."""

import cv2
import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from loci_core.config import config_from_dict
from loci_core.data.camera import PinholeCamera, ProjectiveCamera, pixel_to_screen
from loci_core.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from loci_core.model.loci import Loci
from loci_core.tracking.tracker import Entity, OnlineTracker, label_image

# The tiny model is untrained: its slots reach visibilities of ~0.2, so tests that need entities lower the
# threshold to report every slot the model spawned.
ALL_VISIBLE = 0.0


@pytest.fixture(scope="module")
def foreground_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with its background mask logits pushed down, so the untrained slots win pixels
    and entities get masks (the plain one leaves every pixel to the background)."""
    data = load_checkpoint(tiny_checkpoint)
    cfg = config_from_dict(data["config"])
    model = Loci(cfg.model)
    model.load_state_dict(data["model"])
    with torch.no_grad():
        model.background_mask.mask.fill_(-10.0)
    return save_checkpoint(tmp_path_factory.mktemp("fg") / "fg.pt", model, cfg)


def scene(t: int, size=(60, 80)) -> np.ndarray:
    """A grey floor with a red square moving right and a static blue square, at any size."""
    h, w = size
    img = np.full((h, w, 3), 70, np.uint8)
    s = h // 6
    x = int(w * (0.1 + 0.05 * t))
    img[h // 3:h // 3 + s, x:x + s] = (210, 40, 40)
    img[2 * h // 3:2 * h // 3 + s, w // 2:w // 2 + s] = (40, 60, 210)
    return img


def entity_key(e: Entity):
    return (e.id, e.position_px, e.size_px, e.bbox, e.visibility, e.hidden, e.priority, e.ground_xy,
            e.gestalt.tobytes(), e.mask.tobytes())


def test_step_maps_outputs_to_input_pixels(foreground_checkpoint):
    tracker = OnlineTracker.from_checkpoint(foreground_checkpoint, visibility_threshold=ALL_VISIBLE)
    assert tracker.resolution == (60, 80)
    for size in [(60, 80), (240, 320), (120, 170)]:
        tracker.reset()
        for t in range(3):
            tracked = tracker.step(scene(t, size))
            entities = tracked.entities
            assert 0 < len(entities) <= tracker.num_slots
            assert len({e.id for e in entities}) == len(entities)
            masks = np.stack([e.mask for e in entities])
            assert masks.shape == (len(entities),) + size and masks.dtype == bool
            assert masks.sum(0).max() <= 1, "entity masks overlap"
            assert masks.any(), "no entity has pixels: the mask path is not exercised"
            # the label image the tracker returns is the one its entities' masks make
            assert tracked.labels.dtype == np.uint8 and tracked.labels.shape == size
            assert np.array_equal(tracked.labels, label_image(entities, size))
            for e in entities:
                x, y = e.position_px
                assert -0.5 <= x <= size[1] - 0.5 and -0.5 <= y <= size[0] - 0.5
                x0, y0, x1, y1 = e.bbox
                assert x0 < x1 and y0 < y1
                if e.mask.any():  # the box is the mask's extent
                    rows, cols = np.nonzero(e.mask)
                    assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
                assert 0.0 <= e.visibility <= 1.0 and not e.hidden
                assert e.gestalt.dtype == bool and e.gestalt.shape == (tracker.model.gestalt_size,)
                assert e.ground_xy is None


def test_positions_scale_with_the_input(tiny_checkpoint):
    """The same content at 2x size: identical model input, so positions map through the pixel scaling."""
    small = [scene(t) for t in range(3)]
    large = [cv2.resize(f, (160, 120), interpolation=cv2.INTER_NEAREST) for f in small]
    a = OnlineTracker.from_checkpoint(tiny_checkpoint, visibility_threshold=ALL_VISIBLE)
    b = OnlineTracker.from_checkpoint(tiny_checkpoint, visibility_threshold=ALL_VISIBLE)
    for fs, fl in zip(small, large):
        es, el = a.step(fs).entities, b.step(fl).entities
    assert [e.id for e in es] == [e.id for e in el]
    for s, l in zip(es, el):
        scaled = tuple((v + 0.5) * 2 - 0.5 for v in s.position_px)
        assert l.position_px == pytest.approx(scaled)
        assert l.size_px == pytest.approx(2 * s.size_px)
        assert l.position_norm == pytest.approx(s.position_norm)


def test_deterministic_and_reset_restarts_the_stream(tiny_checkpoint):
    frames = [scene(t) for t in range(4)]
    a = OnlineTracker.from_checkpoint(tiny_checkpoint, visibility_threshold=ALL_VISIBLE)
    b = OnlineTracker.from_checkpoint(tiny_checkpoint, visibility_threshold=ALL_VISIBLE)
    run_a = [[entity_key(e) for e in a.step(f).entities] for f in frames]
    run_b = [[entity_key(e) for e in b.step(f).entities] for f in frames]
    assert run_a == run_b
    # The state is carried: the same frame gives another result later in the stream ...
    assert [entity_key(e) for e in a.step(frames[0]).entities] != run_a[0]
    # ... and reset() starts over exactly.
    a.reset()
    assert [[entity_key(e) for e in a.step(f).entities] for f in frames] == run_a


def test_unbound_slots_are_not_reported(tiny_checkpoint):
    tracker = OnlineTracker.from_checkpoint(tiny_checkpoint, visibility_threshold=1.0)
    assert all(tracker.step(scene(t)).entities == [] for t in range(3))


@pytest.mark.parametrize("with_masks", [True, False])
def test_hidden_entities_keep_id_position_and_box(tiny_checkpoint, foreground_checkpoint, with_masks):
    path = foreground_checkpoint if with_masks else tiny_checkpoint
    tracker = OnlineTracker.from_checkpoint(path, visibility_threshold=ALL_VISIBLE)
    seen = tracker.step(scene(0)).entities
    assert seen and any(e.mask.any() for e in seen) == with_masks
    tracker.visibility_threshold = 1.0  # from now on nothing counts as visible
    tracked = tracker.step(scene(1))
    hidden = tracked.entities
    assert [e.id for e in hidden] == [e.id for e in seen]
    by_id = {e.id: e for e in seen}
    for e in hidden:
        assert e.hidden and not e.mask.any()
        x0, y0, x1, y1 = e.bbox
        # the box's centre is the tracked position, in the edge convention of mask boxes (pixel j = [j, j+1))
        assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((e.position_px[0] + 0.5, e.position_px[1] + 0.5))
        before = by_id[e.id]
        if before.mask.any():  # the box keeps the size it last had
            assert (x1 - x0, y1 - y0) == pytest.approx((before.bbox[2] - before.bbox[0],
                                                        before.bbox[3] - before.bbox[1]))
        else:
            assert x1 - x0 == pytest.approx(4 * e.size_px)
    assert tracked.labels.max() == 0 and label_image(hidden, (60, 80)).max() == 0


def test_ground_plane_positions(tiny_checkpoint):
    cater = OnlineTracker.from_checkpoint(tiny_checkpoint, camera=ProjectiveCamera.cater(),
                                          visibility_threshold=ALL_VISIBLE)
    assert cater.ground_height == pytest.approx(0.3421497941017151)
    for e in cater.step(scene(0, (240, 320))).entities:
        x, y = e.position_px
        point = np.array([e.ground_xy[0], e.ground_xy[1], cater.ground_height])
        screen = ProjectiveCamera.cater().world_to_screen(point)
        assert screen == pytest.approx(pixel_to_screen(np.array([y, x]), (240, 320)), abs=1e-6)

    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    pinhole = PinholeCamera.from_height_pitch(K, 160, 120, cam_height=1.5, pitch_deg=35.0)
    tracker = OnlineTracker.from_checkpoint(tiny_checkpoint, camera=pinhole, visibility_threshold=ALL_VISIBLE)
    assert tracker.ground_height == 0.0
    for e in tracker.step(scene(0, (240, 320))).entities:  # input at 2x the CameraInfo size
        if e.ground_xy is None:  # above the horizon
            continue
        uv = pinhole.world_to_pixel(np.array([*e.ground_xy, 0.0]))
        assert uv == pytest.approx([(e.position_px[0] + 0.5) / 2 - 0.5, (e.position_px[1] + 0.5) / 2 - 0.5])


def test_background_from_checkpoint_or_first_frame(tiny_checkpoint, tmp_path):
    first = OnlineTracker.from_checkpoint(tiny_checkpoint)
    assert first.background is None
    first.step(scene(0))
    assert torch.equal(first.background, torch.from_numpy(scene(0)).permute(2, 0, 1)[None].float() / 255)
    first.reset()
    first.step(scene(2))  # a new stream takes its own first frame
    assert torch.equal(first.background, torch.from_numpy(scene(2)).permute(2, 0, 1)[None].float() / 255)

    data = load_checkpoint(tiny_checkpoint)
    cfg = config_from_dict(data["config"])
    model = Loci(cfg.model)
    model.load_state_dict(data["model"])
    stored = torch.rand(3, 240, 320)  # stored at another resolution than the model runs at
    path = save_checkpoint(tmp_path / "with_bg.pt", model, cfg, background=stored)
    tracker = OnlineTracker.from_checkpoint(path)
    expected = torch.nn.functional.interpolate(stored[None], size=(60, 80), mode="area")
    assert torch.allclose(tracker.background, expected)
    tracker.step(scene(0))
    assert torch.allclose(tracker.background, expected)


def test_bad_input_is_rejected(tiny_checkpoint):
    tracker = OnlineTracker.from_checkpoint(tiny_checkpoint)
    with pytest.raises(ValueError, match="uint8 RGB"):
        tracker.step(np.zeros((60, 80), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        tracker.step(np.zeros((60, 80, 3), np.float32))
    with pytest.raises(CheckpointError, match="not found"):
        OnlineTracker.from_checkpoint(tiny_checkpoint.parent / "missing.pt")


def test_label_image_checks_ids_and_shapes():
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    e = Entity(id=2, position_px=(2.0, 1.0), size_px=1.0, bbox=(2, 1, 3, 2), visibility=1.0, hidden=False,
               priority=0.0, gestalt=np.zeros(3, bool), mask=mask)
    labels = label_image([e], (4, 5))
    assert labels[1, 2] == 3 and labels.sum() == 3
    with pytest.raises(ValueError, match="expected"):
        label_image([e], (5, 5))
    e.id = 255
    with pytest.raises(ValueError, match="mono8"):
        label_image([e], (4, 5))


class RecordingTracker(OnlineTracker):
    """Keeps the model's last output, so a test can look at the soft masks behind the entities' masks."""

    def _model_step(self, frame):
        self.last, state = super()._model_step(frame)
        return self.last, state


@pytest.mark.slow
def test_compiled_tracker_reports_what_the_eager_one_does(foreground_checkpoint, fresh_compiler):
    # compile_model runs the step through Loci.compile_inference; over a few frames (float rounding has no
    # time to change a tracking decision) the entities are the eager tracker's
    eager = RecordingTracker.from_checkpoint(foreground_checkpoint, visibility_threshold=ALL_VISIBLE)
    before = counters["stats"]["unique_graphs"]
    compiled = RecordingTracker.from_checkpoint(foreground_checkpoint, visibility_threshold=ALL_VISIBLE,
                                                compile_model=True)
    assert compiled.model._compiled_advance is not None and eager.model._compiled_advance is None
    # both graphs (steps that re-spawn and steps that do not) are compiled before the first frame, and the
    # frames use them: no stream stalls on a compile
    assert counters["stats"]["unique_graphs"] == before + 2
    for t in range(4):
        a, b = eager.step(scene(t)).entities, compiled.step(scene(t)).entities
        assert [e.id for e in a] == [e.id for e in b]
        soft = eager.last.masks[0]  # (O+1, h, w), at the scene's size
        rounding = (soft - compiled.last.masks[0]).abs().max()
        assert rounding < 1e-5
        # the untrained slots' masks are near-equal over much of the frame, where rounding alone picks the
        # winner: entity masks must agree wherever the eager winner leads by more than twice the largest
        # difference between the two models' masks (there no rounding can change the winner)
        top2 = soft.topk(2, dim=0).values
        decided = (top2[0] - top2[1] > 2 * rounding).numpy()
        print(f"step {t}: masks differ by at most {rounding:.1e}; winner decided at {decided.mean():.1%} of pixels")
        assert decided.mean() > 0.25  # not a vacuous check: the winner is clear at a part of the frame
        for x, y in zip(a, b):
            assert np.allclose(x.position_px, y.position_px, atol=1e-2)
            assert np.allclose(x.gestalt, y.gestalt, atol=1e-4)
            assert (x.mask != y.mask)[decided].sum() == 0
    assert counters["stats"]["unique_graphs"] == before + 2
