"""Results: :class:`Frames`, RGB, depth and one mask per body, per frame."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from poelang.stdlib.scene.look import Z_FAR, Z_NEAR, unknown_object


@dataclass
class Frames:
    """Rendered frames of a scene, as stored: rgb uint8 [F,H,W,3], depth in meters [F,H,W] (sky = Z_FAR), masks
    bool [F,K,H,W] in the order of the bodies, their names, and their poses (positions [F,K,3], quats [F,K,4]).

    The attributes the language sees are torch tensors: :attr:`rgb` [F,3,H,W] in [-1, 1], :attr:`depth` [F,H,W]
    (inverse depth in [0, 1], near is bright, as depth experts read it), :attr:`mask` [F,H,W] (every object) and
    :meth:`object_mask`. A single frame (``render``, or ``simulate`` with one frame) drops the F axis.
    """

    rgb_u8: np.ndarray
    metric_depth: np.ndarray
    masks: np.ndarray
    names: tuple
    positions: np.ndarray
    quats: np.ndarray
    fps: float = 0.0
    key: str = ""
    _tensors: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        f, h, w = self.metric_depth.shape
        names = ", ".join(str(n) for n in self.names) or "none"
        return f"Frames({f} frame{'s' if f != 1 else ''} of {h}×{w}, objects: {names}, key {self.key[:12]})"

    @property
    def single(self) -> bool:
        return self.rgb_u8.shape[0] == 1

    def _out(self, t):
        return t[0] if self.single else t

    def _tensor(self, name, make):
        if name not in self._tensors:
            self._tensors[name] = make()
        return self._tensors[name]

    @property
    def rgb(self):
        import torch

        return self._tensor("rgb", lambda: self._out(
            torch.from_numpy(self.rgb_u8.copy()).permute(0, 3, 1, 2).float() / 127.5 - 1))

    @property
    def depth(self):
        import torch

        return self._tensor("depth", lambda: self._out(torch.from_numpy(inverse_depth(self.metric_depth))))

    @property
    def mask(self):
        import torch

        return self._tensor("mask", lambda: self._out(torch.from_numpy(self.masks.any(1).astype(np.float32))))

    def object_mask(self, name: str):
        """The mask of the object called `name` ([F,H,W], or [H,W] for one frame)."""
        import torch

        problem = unknown_object(name, self.names)
        if problem:
            raise ValueError(problem)
        k = self.names.index(name)
        return self._out(torch.from_numpy(self.masks[:, k].astype(np.float32)))

    def arrays(self) -> dict:
        return {"rgb": self.rgb_u8, "depth": self.metric_depth, "masks": self.masks,
                "names": np.array(json.dumps(list(self.names))), "positions": self.positions, "quats": self.quats,
                "fps": np.array(self.fps)}

    @classmethod
    def from_arrays(cls, data, key: str = "") -> "Frames":
        return cls(np.asarray(data["rgb"]), np.asarray(data["depth"]), np.asarray(data["masks"]),
                   tuple(json.loads(str(data["names"]))), np.asarray(data["positions"]), np.asarray(data["quats"]),
                   float(data["fps"]), key)


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    """Depth in meters → inverse depth in [0, 1]: 1 at the nearest point of the clip, 0 at the sky (Z_FAR)."""
    d = np.clip(depth.astype(np.float32), Z_NEAR, Z_FAR)
    near = float(d.min()) if d.size else Z_NEAR
    if near >= Z_FAR * 0.999:
        return np.zeros_like(d)
    return ((1 / d - 1 / Z_FAR) / (1 / near - 1 / Z_FAR)).astype(np.float32)


