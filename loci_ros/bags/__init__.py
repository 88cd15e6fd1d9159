"""rosbag2 tools without ros2cli: make bags from CATER-style videos, play, record, track offline, score.

Topic layout of bags made by `loci bag make` (all stamps in bag time; one camera, frame
`camera_optical_frame`):

- `/camera/image_raw`         sensor_msgs/Image rgb8, one per video frame
- `/camera/camera_info`       sensor_msgs/CameraInfo, same stamp as each image
- `/ground_truth/detections`  vision_msgs/Detection2DArray: one Detection2D per object visible in the
                              frame, `id` = the object's index k in the scene file, bbox from its mask,
                              hypothesis class_id = object shape, score = visible fraction
- `/ground_truth/masks`       sensor_msgs/Image mono8 label image, 0 = background, k+1 = object k
- `/loci/scene_reset`         std_msgs/Header, once per video just before its first frame:
                              stamp = that frame's stamp, frame_id = the video name

Telling videos apart: every video starts with a `/loci/scene_reset` message (a tracker should reset
its state there), and consecutive videos are separated by a gap of VIDEO_GAP_S seconds of bag time.
"""

CAMERA_FRAME = "camera_optical_frame"
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
GT_DETECTIONS_TOPIC = "/ground_truth/detections"
GT_MASKS_TOPIC = "/ground_truth/masks"
SCENE_RESET_TOPIC = "/loci/scene_reset"
# Bag time between the last frame of one video and the first frame of the next.
VIDEO_GAP_S = 1.0
# Bag time of the first frame of a made bag (fixed, so equal inputs make equal bags).
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000
