"""The tracker as a managed (lifecycle) node, driven over DDS by a lifecycle client in this process.

The node runs in its own process with `autostart:=false` and waits in 'unconfigured'; the test moves it
through configure, activate, deactivate, cleanup and shutdown with lifecycle_msgs' change_state service and
reads get_state, checking after each transition what exists on the graph and whether frames are answered.
"""

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")
pytest.importorskip("lifecycle_msgs.srv")

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from loci_core.data.renderer import Renderer  # noqa: E402
from loci_core.data.sampler import sample_scene, video_rng  # noqa: E402
from loci_ros.image_conversion import numpy_to_image  # noqa: E402
from tests.process_helpers import stop_process  # noqa: E402
from tests.test_node import OUTPUT_TYPES, SIZE, THRESHOLD, TIMEOUT, Client, start_node  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(scope="module")
def frames():
    return Renderer(SIZE).render(sample_scene(video_rng(7, 0), num_frames=4, jitter=False)).rgb


class LifecycleClient:
    """get_state / change_state of the node `loci_tracker`, through the test's Client node."""

    def __init__(self, client: Client):
        self.client = client
        self.get = client.node.create_client(GetState, "loci_tracker/get_state")
        self.change = client.node.create_client(ChangeState, "loci_tracker/change_state")
        assert self.get.wait_for_service(timeout_sec=60) and self.change.wait_for_service(timeout_sec=TIMEOUT)

    def state(self) -> str:
        return self.client.call(self.get.call_async(GetState.Request())).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.client.call(self.change.call_async(request)).success


def answered(client: Client, frame, stamp: int, wait_s: float) -> bool:
    """Whether the frame's detections come back within wait_s (reliable input: nothing is lost in transit)."""
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = stamp, 500
    client.pub.publish(numpy_to_image(frame, "rgb8", header=header))
    return client.spin_until(lambda: (stamp, 500) in client.received["detections"], timeout=wait_s)


def test_transitions_over_dds(ros, tiny_checkpoint, frames, tmp_path):
    log = tmp_path / "node.log"
    process = start_node(tiny_checkpoint, log, "autostart:=false", "input_reliability:=reliable",
                         f"visibility_threshold:={THRESHOLD}", namespace="/managed")
    client = None
    try:
        client = Client(namespace="/managed")
        lifecycle = LifecycleClient(client)
        outputs_published = lambda: all(client.node.count_publishers(n) > 0 for n in OUTPUT_TYPES)  # noqa: E731
        tracking = lambda: client.pub.get_subscription_count() > 0  # noqa: E731

        assert lifecycle.state() == "unconfigured"
        assert not outputs_published() and not tracking()
        assert "configured:" not in log.read_text()  # no model loaded yet
        assert not lifecycle.transition(Transition.TRANSITION_ACTIVATE), "activate without a model"
        assert lifecycle.state() == "unconfigured"

        assert lifecycle.transition(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == "inactive"
        assert client.spin_until(outputs_published)
        assert "configured: model" in log.read_text() and "ready:" not in log.read_text()
        reset = client.node.create_client(Trigger, "reset")
        assert reset.wait_for_service(timeout_sec=TIMEOUT)
        assert not tracking()

        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert lifecycle.state() == "active"
        assert client.spin_until(tracking)
        client.send(frames[0], stamp=1, attempts=3)
        assert log.read_text().count("loci_tracker ready:") == 1

        assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.state() == "inactive"
        assert client.spin_until(lambda: not tracking())
        assert not answered(client, frames[1], stamp=2, wait_s=2.0), "an inactive node answered a frame"
        assert outputs_published()  # inactive publishers stay on the graph

        # Reactivated, it tracks again with the model it kept (loaded once).
        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert client.spin_until(tracking)
        client.send(frames[2], stamp=3, attempts=3)
        assert log.read_text().count("configured: model") == 1

        assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.transition(Transition.TRANSITION_CLEANUP)
        assert lifecycle.state() == "unconfigured"
        assert client.spin_until(lambda: not outputs_published() and not reset.service_is_ready())
        assert "cleaned up: model released" in log.read_text()

        # Configured again, it loads the model again and answers.
        assert lifecycle.transition(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert client.spin_until(lambda: tracking() and outputs_published())
        client.send(frames[3], stamp=4, attempts=3)
        assert log.read_text().count("configured: model") == 2

        assert lifecycle.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert lifecycle.state() == "finalized"
        assert client.spin_until(lambda: not tracking() and not outputs_published())
        assert process.poll() is None
        client.node.destroy_client(reset)
    finally:
        if client is not None:
            client.close()
        stop_process(process)


def test_failed_configure_leaves_the_node_unconfigured(ros, tmp_path):
    missing = tmp_path / "no_such_model.pt"
    log = tmp_path / "node.log"
    process = start_node(missing, log, "autostart:=false", namespace="/managed_bad")
    client = None
    try:
        client = Client(namespace="/managed_bad")
        lifecycle = LifecycleClient(client)
        assert not lifecycle.transition(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == "unconfigured"
        assert f"checkpoint not found: {missing}" in log.read_text()
        assert process.poll() is None  # a lifecycle manager may retry; the process stays up
    finally:
        if client is not None:
            client.close()
        stop_process(process)

