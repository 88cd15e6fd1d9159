"""Damaged bags: MCAP files carry chunk and summary CRCs, and flipped bytes stop `loci bag play`, `track`
and `eval` with an error that names the damaged topics and bag times instead of replaying wrong data."""

import random
import shutil
import struct
import subprocess
import sys

import pytest
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader

from loci_ros.bag_commands import main
from loci_ros.bags import GT_MASKS_TOPIC, IMAGE_TOPIC
from loci_ros.bags.storage import BagError, open_bag
from tests import test_bag_eval

FLIPS = 200

data, scenes = test_bag_eval.data, test_bag_eval.scenes    # 2 generated videos and their bag


def _mcap(bag):
    (path,) = bag.glob("*.mcap")
    return path


def _damaged_copy(bag, out, region) -> None:
    """A copy of `bag` with FLIPS bytes inverted at seeded random offsets of the file region (start, end)."""
    shutil.copytree(bag, out)
    path = _mcap(out)
    raw = bytearray(path.read_bytes())
    for i in random.Random(0).sample(range(*region), FLIPS):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def _chunk_records(bag):
    """(start, end) file offsets of the records inside the bag's first chunk (the messages)."""
    with open(_mcap(bag), "rb") as f:
        index = make_reader(f).get_summary().chunk_indexes[0]
    start = index.chunk_start_offset + index.chunk_length - index.compressed_size
    return start, index.chunk_start_offset + index.chunk_length


def test_mcap_chunks_and_summary_carry_crcs(scenes):
    with open(_mcap(scenes), "rb") as f:
        summary = make_reader(f).get_summary()
        assert summary.chunk_indexes
        for index in summary.chunk_indexes:
            f.seek(index.chunk_start_offset + 1 + 8 + 24)
            assert struct.unpack("<I", f.read(4))[0] != 0, "chunk without a CRC"
        f.seek(-12, 2)
        assert struct.unpack("<I", f.read(4))[0] != 0, "summary without a CRC"
    with open(_mcap(scenes), "rb") as f:  # the mcap library checks every CRC it finds
        assert sum(1 for _ in StreamReader(f, validate_crcs=True).records) > 0


def test_flipped_bytes_stop_play_track_and_eval_naming_topic_and_time(scenes, data, tiny_checkpoint, tmp_path,
                                                                     capsys):
    damaged = tmp_path / "damaged"
    _damaged_copy(scenes, damaged, _chunk_records(scenes))

    def names_the_damage(err):
        assert f"bag {damaged} is damaged" in err and IMAGE_TOPIC in err and "s into the bag" in err, err
        assert "Traceback" not in err

    play = subprocess.run([sys.executable, "-m", "loci_ros.bag_commands", "play", str(damaged), "--delay", "0",
                           "--rate", "100"], capture_output=True, text=True, timeout=120)
    assert play.returncode == 1, play.stderr
    names_the_damage(play.stderr)

    out = tmp_path / "tracked"
    assert main(["track", str(damaged), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 1
    names_the_damage(capsys.readouterr().err)
    assert not out.exists(), "a half-tracked bag was left behind"

    assert main(["eval", str(damaged), "--scenes", str(damaged), "--data", str(data), "--masks-topic",
                 GT_MASKS_TOPIC, "--out", str(tmp_path / "eval")]) == 2
    names_the_damage(capsys.readouterr().err)


def test_damaged_summary_is_refused_before_reading(scenes, tmp_path):
    with open(_mcap(scenes), "rb") as f:
        f.seek(-37 + 9, 2)
        summary_start = struct.unpack("<Q", f.read(8))[0]
        size = f.seek(0, 2)
    damaged = tmp_path / "damaged"
    _damaged_copy(scenes, damaged, (summary_start, size - 37))
    with pytest.raises(BagError, match="summary of .* fails its CRC check"):
        with open_bag(damaged):
            pass
