"""The look shared with the mini world (palette, ground, sky, sun), the renderer's constants, and
genesis with its vendored renderer (:class:`GLScene`); numpy only until genesis is asked for.
"""
from __future__ import annotations

import math

import numpy as np


SCENE_VERSION = 1

# ---------------------------------------------------------------------------------------------------------------------
# The look, shared with the mini world

COLOR_RGB = {  # sRGB in [0, 1]; the mini world's six colours first (its captions' vocabulary)
    "red": (0.86, 0.07, 0.07),
    "green": (0.08, 0.66, 0.12),
    "blue": (0.10, 0.25, 0.95),
    "yellow": (0.97, 0.85, 0.05),
    "purple": (0.58, 0.12, 0.78),
    "white": (0.96, 0.96, 0.96),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.50, 0.50, 0.50),
    "grey": (0.50, 0.50, 0.50),
    "orange": (0.96, 0.45, 0.05),
    "brown": (0.45, 0.26, 0.10),
    "pink": (0.96, 0.50, 0.70),
    "cyan": (0.05, 0.80, 0.85),
}
GROUND_RGB = (0.50, 0.50, 0.50)
SKY_RGB = (0.62, 0.78, 0.93)
AMBIENT = 0.38
SUN_INTENSITY = 2.6
SUN_DIRECTION = (0.45, 0.55, -1.0)  # where the light travels, in the camera's (right, forward, up) frame

SIM_RATE = 200  # solver steps per second, at least (a whole number of steps per frame)
GROUND_HALF = 100.0  # the ground plane drawn is a 200 m square
Z_NEAR = 0.05
Z_FAR = 200.0  # also the depth of sky pixels
MAX_BODIES = 31  # segmentation colours are SEG_STEP * (k + 1) in the red channel
SEG_STEP = 8
MAX_SIDE = 4096
MESH_SUFFIXES = (".obj", ".stl", ".ply", ".glb", ".gltf")


def objects_problem(names) -> str | None:
    """What is wrong with a scene's objects given their names (None: unnamed), else None.
    The one statement of the rule: `poelang check` runs it on the names it can see, the scene at run time."""
    if len(names) > MAX_BODIES:
        return f"at most {MAX_BODIES} objects per scene, got {len(names)}"
    named = [n for n in names if n is not None]
    repeated = sorted({n for n in named if named.count(n) > 1})
    if repeated:
        return f"two objects are named '{repeated[0]}': names must be unique to tell their masks apart"
    return None


def unknown_object(name: str, names) -> str | None:
    """The message for asking the mask of `name` in a scene of objects `names`, or None when it is there."""
    if name in names:
        return None
    known = ", ".join(f"'{n}'" for n in names if n is not None)
    return f"no object named '{name}' in this scene" + (
        f"; its objects are {known}" if known else "; give objects a name= to ask for their masks")


STATS = {"simulated": 0, "rendered": 0, "disk_hits": 0, "memory_hits": 0, "genesis_builds": 0}
"""Counters for this process: scenes simulated or rendered, cache hits, genesis scenes built (tests read them)."""
TIMINGS: dict[str, float] = {}
"""Seconds of the last scene computed: genesis's start (first time in a process), build, physics, rendering."""


def parse_color(text: str) -> tuple[float, float, float]:
    """A colour name of :data:`COLOR_RGB` or ``#rrggbb`` as sRGB in [0, 1]; ValueError otherwise."""
    key = text.strip().lower()
    if key in COLOR_RGB:
        return COLOR_RGB[key]
    if key.startswith("#") and len(key) == 7:
        try:
            return tuple(int(key[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    raise ValueError(f"unknown colour '{text}'; use #rrggbb or one of {', '.join(COLOR_RGB)}")


# ---------------------------------------------------------------------------------------------------------------------
# Genesis and its renderer

_GENESIS_READY = False


def init_genesis() -> None:
    """Initialise genesis once per process on the CPU backend (its renderer and solvers need it)."""
    global _GENESIS_READY
    if _GENESIS_READY:
        return
    import genesis as gs

    if not getattr(gs, "_initialized", False):
        from poelang.progress import verbose_logging

        # No seed: genesis would reseed the global random, numpy and torch generators of the whole process.
        # Its level also sets the native quadrants logger's, which otherwise writes compiler notes such as
        # "[W …] frontend_ir.cpp … loop_config" straight to fd 2: only with -v do they show
        gs.init(backend=gs.cpu, logging_level="warning" if verbose_logging() else "error")
    _GENESIS_READY = True


def quat_to_matrix(quat) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion, genesis's convention."""
    w, x, y, z = np.asarray(quat, float) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def euler_to_matrix(degrees) -> np.ndarray:
    """Extrinsic x-y-z Euler angles in degrees (rotate about x, then the fixed y, then the fixed z)."""
    ax, ay, az = (math.radians(float(a)) for a in degrees)
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (Shepperd's method), w >= 0."""
    m = np.asarray(r, float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2 * math.sqrt(1 + trace)
        q = [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * math.sqrt(max(1 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = s / 4
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return q if q[0] >= 0 else -q


def sun_pose(direction) -> np.ndarray:
    """The 4x4 pose of a directional light travelling along `direction` (world frame)."""
    z = -np.asarray(direction, float) / np.linalg.norm(direction)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, np.cross(z, x), z
    return pose


class GLScene:
    """A pyrender scene drawn by genesis's vendored JIT renderer: meshes, one camera, one sun.

    Add meshes with :meth:`add`, then :meth:`finish` (uploads them), then move and recolour them and :meth:`render`.
    The fork reads node poses at every render but material colours only when meshes are added, so :meth:`set_color`
    writes the base colour into its table (``JITRenderer.pbr_mat``) as well as into the material.
    """

    def __init__(self, height: int, width: int, camera_pose: np.ndarray, yfov: float, znear: float, zfar: float,
                 background=SKY_RGB, sun: np.ndarray | None = None, ambient: float = AMBIENT,
                 sun_intensity: float = SUN_INTENSITY):
        init_genesis()
        from genesis.ext import pyrender

        self.height, self.width = int(height), int(width)
        self._camera = (np.asarray(camera_pose, float), float(yfov), float(znear), float(zfar))
        self._sun = sun_pose(SUN_DIRECTION) if sun is None else sun
        self._sun_intensity = sun_intensity
        self.scene = pyrender.Scene(ambient_light=np.full(3, ambient), bg_color=(*background, 1.0))
        self._offscreen = None

    @staticmethod
    def material(rgb):
        from genesis.ext import pyrender

        return pyrender.MetallicRoughnessMaterial(baseColorFactor=(*rgb, 1.0), metallicFactor=0.0, roughnessFactor=0.9)

    def add(self, mesh, rgb, smooth: bool = True, pose: np.ndarray | None = None):
        """Add a trimesh in one colour; returns its node."""
        from genesis.ext import pyrender

        node_mesh = pyrender.Mesh.from_trimesh(mesh, material=self.material(rgb), smooth=smooth)
        return self.scene.add(node_mesh) if pose is None else self.scene.add(node_mesh, pose=pose)

    def finish(self) -> "GLScene":
        """Add the camera and the sun, create the GL context and upload every mesh."""
        from genesis.ext import pyrender
        from genesis.ext.pyrender.jit_render import JITRenderer

        pose, yfov, znear, zfar = self._camera
        camera = pyrender.PerspectiveCamera(yfov=yfov, znear=znear, zfar=zfar, aspectRatio=self.width / self.height)
        self.scene.add(camera, pose=pose)
        self.scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=self._sun_intensity), pose=self._sun)
        self._jit = JITRenderer(self.scene, [], [], np.zeros((1, 3)))
        try:
            self._offscreen = pyrender.OffscreenRenderer()
        except Exception as e:  # no EGL/OSMesa: a machine problem the user must fix, not a poelang bug
            from poelang.experts.unavailable import ExpertUnavailable

            raise ExpertUnavailable(f"no OpenGL context to render with ({type(e).__name__}: {e}); on a machine "
                                    "without a display set PYOPENGL_PLATFORM=egl or osmesa") from None
        self._target = pyrender.Renderer(self.width, self.height, self._jit)
        self.render({})  # uploads the meshes, so that the primitive table below is final
        self._row = {
            node: self._jit._primitive_index[node.mesh.primitives[0]] for node in self.scene.mesh_nodes
        }
        return self

    def set_pose(self, node, pose) -> None:
        self.scene.set_pose(node, np.asarray(pose, float))

    def set_color(self, node, rgb) -> None:
        self._jit.pbr_mat[self._row[node], :3] = rgb
        node.mesh.primitives[0].material.baseColorFactor = (*rgb, 1.0)

    def render(self, seg_map: dict):
        """(rgb uint8 [h,w,3], seg uint8 [h,w,3], depth float32 [h,w]); seg_map: node → segmentation colour."""
        self._offscreen.make_current()
        try:
            (rgb,) = self._offscreen.render(self.scene, self._target, rgb=True, skip_markers=True)
            self._offscreen._seg_node_map = seg_map
            seg, depth = self._offscreen.render(
                self.scene, self._target, rgb=False, seg=True, depth=True, skip_markers=True
            )
        finally:
            self._offscreen.make_uncurrent()
        return rgb, seg, depth

    def close(self) -> None:
        """Free the GL context and everything uploaded to it."""
        if self._offscreen is None:
            return
        self._offscreen.make_current()
        try:
            self._target.delete()
        finally:
            self._offscreen.make_uncurrent()
            self._offscreen.delete()
            self._offscreen = None


