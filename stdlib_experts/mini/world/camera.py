"""The fixed camera: it looks down at TARGET at ELEVATION_DEG; x is image right, y away from the camera, z up."""
from __future__ import annotations

import math

import numpy as np

# Camera: fixed, looking down at TARGET at ELEVATION_DEG; x is image right, y is away from the camera, z is up

ELEVATION_DEG = 35.0
CAMERA_DISTANCE = 8.0
FOV_DEG = 28.0
TARGET = (0.0, 0.6, 0.0)
Z_NEAR = 0.5
FAR_DEPTH = 30.0  # depth of background (sky) pixels, in meters; it is also the far clip plane

DEFAULT_SIZE = 32
MIN_SIZE, MAX_SIZE = 32, 64


def _look_at_pose() -> np.ndarray:
    elevation = math.radians(ELEVATION_DEG)
    target = np.array(TARGET)
    eye = target + CAMERA_DISTANCE * np.array([0.0, -math.cos(elevation), math.sin(elevation)])
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


_CAMERA_POSE = _look_at_pose()
_WORLD_TO_CAMERA = np.linalg.inv(_CAMERA_POSE)


def camera_pose() -> np.ndarray:
    """Camera-to-world 4x4 matrix in the OpenGL convention (the camera looks along its -z axis, y up)."""
    return _CAMERA_POSE.copy()


def focal_px(size: int) -> float:
    """Focal length in pixels of a square image `size` pixels wide."""
    return (size / 2) / math.tan(math.radians(FOV_DEG) / 2)


def project(points: np.ndarray, size: int = 1) -> np.ndarray:
    """World points (N, 3) to (N, 2) image coordinates (column, row); pixel (r, c) spans [c, c+1) x [r, r+1).

    With size=1 the coordinates are fractions of the image side, which is how placement is judged for every size.
    """
    cam = np.asarray(points, float) @ _WORLD_TO_CAMERA[:3, :3].T + _WORLD_TO_CAMERA[:3, 3]
    depth = -cam[:, 2]
    f = focal_px(size)
    return np.stack([size / 2 + f * cam[:, 0] / depth, size / 2 - f * cam[:, 1] / depth], axis=1)


def ground_point(col: float, row: float, size: int) -> np.ndarray:
    """The point of the ground plane z=0 seen at image coordinates (col, row); rules use it to measure sizes."""
    pose = _CAMERA_POSE
    f = focal_px(size)
    direction = pose[:3, :3] @ np.array([(col - size / 2) / f, -(row - size / 2) / f, -1.0])
    eye = pose[:3, 3]
    t = -eye[2] / min(direction[2], -1e-6)
    return eye + t * direction


def camera_depth(point: np.ndarray) -> float:
    """Depth of a world point along the camera axis, the quantity depth images hold."""
    pose = _CAMERA_POSE
    return float(-(np.asarray(point) - pose[:3, 3]) @ pose[:3, 2])


# ---------------------------------------------------------------------------------------------------------------------
