"""`loci eval` end to end on the tiny training run, the resolution check, and evaluate_tracks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loci_core.cli import main
from loci_core.data.dataset import CaterVideos
from loci_core.evaluation.evaluate import evaluate_tracks, summarise_tracks
from tests import test_train_fixtures as fx
from tests.test_train_fixtures import latest_checkpoint

tiny_data, tiny_run = fx.tiny_data, fx.tiny_run    # session fixtures shared with test_train / test_save


def test_eval_end_to_end(tiny_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["eval", "--checkpoint", str(latest_checkpoint(tiny_run)), "--data", str(tiny_data),
               "--split", "all", "--batch", "2", "--out", str(out), "--device", "cpu", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "| method | top-1 % |" in printed and "| method | MOTA |" in printed
    results = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().strip() == printed.strip()
    assert (out / "l2_by_containment.png").stat().st_size > 1000
    assert results["videos"] == 4
    methods = {"loci", "loci, top slot", "loci, sticky slot + carrier following", "best Loci slot (oracle)",
               "last seen (oracle)", "classical tracker", "chance"}
    assert set(results["cater"]) == methods
    # every video's answers re-score to the table; standard errors come with it
    videos = json.loads((out / "videos.json").read_text())
    assert [v["name"] for v in videos] == [e.name for e in CaterVideos(tiny_data, split="all").entries]
    for name, r in results["cater"].items():
        rankings = [v["answers"][name]["ranking"] for v in videos]
        assert all(sorted(rank) == list(range(36)) for rank in rankings)
        hits = np.array([rank[0] == v["label"] for rank, v in zip(rankings, videos)])
        assert hits.mean() == pytest.approx(r["top1"])
        assert r["top1_se"] == pytest.approx(hits.std(ddof=1) / 2)
    assert videos[0]["answers"]["loci"]["world_xy"] is not None
    assert videos[0]["state_at_end"] in ("visible", "occluded", "contained", "carried")
    assert results["carried_snitch"]["frames"] >= 0
    inside = {r["contained_at_end"] for r in results["cater"].values()}
    assert len(inside) == 1 and 0 <= inside.pop() <= 4
    for r in results["cater"].values():
        assert 0 <= r["top1"] <= r["top5"] <= 1 and r["l1"] >= 0 and np.isfinite(r["l2"])
        n_in = r["contained_at_end"]  # top-1 splits into the videos whose snitch ends contained and the rest
        split = [(n_in, r["top1_contained_at_end"]), (4 - n_in, r["top1_free_at_end"])]
        assert sum(n * top1 for n, top1 in split if n) == pytest.approx(4 * r["top1"])
    # The oracle answers with the true position whenever the snitch is visible at the end.
    assert results["cater"]["last seen (oracle)"]["l2"] < results["cater"]["chance"]["l2"]
    assert set(results["tracking"]) == {"loci", "classical tracker"}
    for r in results["tracking"].values():
        assert r["gt_instances"] > 0 and -np.inf < r["mota"] <= 1 and set(r["position"]) == {
            "visible", "occluded", "contained", "carried"}


def test_eval_is_deterministic(tiny_run, tiny_data, tmp_path):
    args = ["eval", "--checkpoint", str(latest_checkpoint(tiny_run)), "--data", str(tiny_data),
            "--split", "all", "--videos", "2", "--device", "cpu", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["cater"] == b["cater"] and a["tracking"] == b["tracking"]


def test_eval_reads_one_batch_of_videos_at_a_time(tiny_run, tiny_data, tmp_path, monkeypatch):
    """Videos are read per batch, not all up front: at 320x240 a 200-video split is ~18 GB in memory."""
    import loci_core.evaluation.evaluate as ev

    reads, read_before_run = [], []
    original_getitem, original_run = CaterVideos.__getitem__, ev.run_loci

    def counting_getitem(self, index):
        reads.append(index)
        return original_getitem(self, index)

    def recording_run(model, items, *args, **kwargs):
        read_before_run.append(len(reads))
        return original_run(model, items, *args, **kwargs)

    monkeypatch.setattr(CaterVideos, "__getitem__", counting_getitem)
    monkeypatch.setattr(ev, "run_loci", recording_run)
    results = ev.evaluate(latest_checkpoint(tiny_run), tiny_data, "all", batch=2, out_dir=tmp_path / "e",
                          progress=False)
    assert results["videos"] == 4 and results["tracking_ground_truth"]
    assert read_before_run == [2, 4] and reads == [0, 1, 2, 3]


@pytest.mark.slow
def test_compiled_eval_compiles_each_batch_size_before_the_first_video(tiny_run, tiny_data, tmp_path, monkeypatch,
                                                                      fresh_compiler):
    """4 videos in batches of 3: the batch of 3 and the last batch of 1 are both compiled up front (two graphs
    each: steps that re-spawn a slot and steps that do not), so no batch stalls on a compile; the scores are
    the eager run's."""
    from torch._dynamo.utils import counters

    import loci_core.evaluation.evaluate as ev

    graphs_at_batch, original_run = [], ev.run_loci

    def recording_run(model, items, *args, **kwargs):
        graphs_at_batch.append(counters["stats"]["unique_graphs"])
        return original_run(model, items, *args, **kwargs)

    monkeypatch.setattr(ev, "run_loci", recording_run)
    checkpoint = latest_checkpoint(tiny_run)
    before = counters["stats"]["unique_graphs"]
    compiled = ev.evaluate(checkpoint, tiny_data, "all", batch=3, out_dir=tmp_path / "c", progress=False,
                           baselines=False, compile_model=True)
    assert graphs_at_batch == [before + 4, before + 4]
    assert counters["stats"]["unique_graphs"] == before + 4
    eager = ev.evaluate(checkpoint, tiny_data, "all", batch=3, out_dir=tmp_path / "e", progress=False,
                        baselines=False)
    for name in ("mota", "idf1", "miou"):
        assert compiled["tracking"]["loci"][name] == pytest.approx(eager["tracking"]["loci"][name], abs=0.02)


def test_default_batch_is_one_only_for_level_2_on_a_cpu(tiny_run, tiny_data, tmp_path, capsys):
    from loci_core.evaluation.evaluate import default_batch

    assert (default_batch(2, "cpu"), default_batch(1, "cpu"), default_batch(2, "cuda:0")) == (1, 8, 8)
    rc = main(["eval", "--checkpoint", str(latest_checkpoint(tiny_run)), "--data", str(tiny_data),
               "--batch", "0", "--out", str(tmp_path / "e"), "--device", "cpu", "--no-progress"])
    assert rc == 2 and "batch must be at least 1, got 0" in capsys.readouterr().err


def test_eval_refuses_other_resolution_unless_asked(tiny_run, tmp_path, capsys):
    data = tmp_path / "small"
    assert main(["generate", "--out", str(data), "--videos", "2", "--frames", "6", "--size", "40x30"]) == 0
    ckpt = str(latest_checkpoint(tiny_run))
    rc = main(["eval", "--checkpoint", ckpt, "--data", str(data), "--split", "all", "--no-progress",
               "--device", "cpu", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "80x60" in err and "40x30" in err and "--resize" in err and "Traceback" not in err
    assert main(["eval", "--checkpoint", ckpt, "--data", str(data), "--split", "all", "--no-progress",
                 "--device", "cpu", "--resize", "--out", str(tmp_path / "e")]) == 0


def test_evaluate_tracks_on_ground_truth_itself(tiny_data):
    item = CaterVideos(tiny_data, split="all", size=(60, 80))[0]
    perfect = item["instance_ids"].numpy()[1:]
    res = evaluate_tracks(perfect, item)
    summary = summarise_tracks([res])
    assert summary["mota"] == pytest.approx(1.0) and summary["idf1"] == pytest.approx(1.0)
    assert summary["fg_ari"] == pytest.approx(1.0) and summary["miou"] == pytest.approx(1.0)
    # Mask centroids lie near the projected object centres (a few pixels at 80x60).
    assert summary["position"]["visible"]["error_px"] < 6.0
    with pytest.raises(Exception, match="do not match"):
        evaluate_tracks(perfect[:-1], item)


def test_best_slot_track_picks_the_slot_on_the_snitch():
    """The oracle read-out follows whichever slot sits on the snitch, frame by frame."""
    from loci_core.data.camera import CATER_MATRIX, CATER_Z0, ProjectiveCamera
    from loci_core.evaluation.evaluate import best_slot_track

    rng = np.random.default_rng(0)
    steps, slots = 6, 4
    truth = np.concatenate([rng.uniform(-2.5, 2.5, (steps + 1, 2)), np.full((steps + 1, 1), CATER_Z0)], 1)
    elsewhere = truth[1:] + np.array([1.5, -1.0, 0.0])                      # a slot next to it, never on it
    camera = ProjectiveCamera(CATER_MATRIX)
    positions = np.repeat(camera.world_to_screen(elsewhere)[:, None], slots, 1)  # (T-1, O, 2)
    on = rng.integers(0, slots, steps)                                      # the slot on the snitch per frame
    expected = truth[1:].copy()
    # frame 1: the snitch at the image centre, the nearest slot 0.2 off it, and an unset (NaN) slot,
    # which must not count as sitting at the centre
    truth[1, :2] = camera.screen_to_ground(np.zeros(2), CATER_Z0)[:2]
    expected[0] = truth[1] + np.array([0.2, 0.0, 0.0])
    positions[np.arange(steps), on] = camera.world_to_screen(expected)
    positions[0, (on[0] + 1) % slots] = np.nan
    item = {"camera": np.repeat(CATER_MATRIX[None], steps + 1, 0), "snitch_world": truth}
    np.testing.assert_allclose(best_slot_track(positions, item), expected, atol=1e-6)
