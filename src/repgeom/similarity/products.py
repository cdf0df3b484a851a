"""The products a similarity pair costs, on the CPU (numpy) or on a GPU (torch).

Linear CKA in feature space costs one product per representation (``XᵀX``, N·d²) and one per layer pair (``XᵀY``,
N·d_a·d_b): for every layer of SmolLM2-135M × Gemma-3-270m on the 15 457 STS-B sentences that is 6.7 TFLOP, two
minutes at the 55–75 GFLOP/s measured on two CPU cores, against a few seconds to read the shards; a GPU's float32
rate would make it a second or less (estimated: ``benchmarks/gpu_check.py`` measures it, and has not yet run on a
GPU). Both paths multiply in the inputs' precision (float32 for activation shards; the GPU path switches TF32 off
for the process, so a GPU rounds like a CPU's float32 GEMM) and sum the squares in float64. Only the sums leave
the GPU.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: a held matrix may take this share of the GPU's free memory; above it its blocks are sent per product
GPU_HOLD_SHARE = 0.5


class Products:
    """``‖XᵀX‖²_F`` and ``‖XᵀY_j‖²_F`` on ``device`` (``"cpu"``, ``"cuda"`` or ``"cuda:N"``, already resolved):
    numpy on the CPU, torch on a GPU (``use_torch`` takes torch on the CPU too: the tests' way to run the GPU
    path's code without a GPU)."""

    def __init__(self, device: str = "cpu", use_torch: bool | None = None):
        self.device = device
        self.gpu = device != "cpu" if use_torch is None else use_torch
        if self.gpu:
            import torch

            torch.backends.cuda.matmul.allow_tf32 = False  # float32 products in float32, as on the CPU
            self._torch = torch

    def _to(self, X: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(X)).to(self.device)

    def gram_sq(self, X: np.ndarray) -> float:
        """``‖XᵀX‖²_F``."""
        if not self.gpu:
            G = X.T @ X
            return float(np.sum(np.square(G, dtype=np.float64)))
        Xt = self._to(X)
        return float((Xt.T @ Xt).double().square().sum())

    def hold(self, wide: np.ndarray):
        """``wide`` where :meth:`cross_sq` reads it: on the GPU when it takes at most :data:`GPU_HOLD_SHARE` of the
        free memory, else left in host memory (each product then sends its blocks)."""
        if not self.gpu:
            return wide
        free = self._torch.cuda.mem_get_info(self.device)[0] if self.device != "cpu" else float("inf")
        if wide.nbytes > GPU_HOLD_SHARE * free:
            log.info("similarity: %.0f MB of layers kept in host memory (GPU free: %.0f MB)", wide.nbytes / 2**20,
                     free / 2**20)  # fmt: skip
            return wide
        return self._to(wide)

    def cross_sq(self, X: np.ndarray, held, bounds: np.ndarray, j0: int = 0) -> dict[int, float]:
        """``{j: ‖XᵀY_j‖²_F}`` for the blocks ``j ≥ j0`` of ``held`` (:meth:`hold`), block j being the columns
        ``bounds[j]:bounds[j + 1]``."""
        lo = int(bounds[j0])
        nb = len(bounds) - 1
        if not self.gpu:
            P = X.T @ held[:, lo:]
            return {
                j: float(np.sum(np.square(P[:, bounds[j] - lo : bounds[j + 1] - lo], dtype=np.float64)))
                for j in range(j0, nb)
            }
        Xt = self._to(X)
        Y = held[:, lo:] if isinstance(held, self._torch.Tensor) else self._to(held[:, lo:])
        P = Xt.T @ Y
        sums = self._torch.stack(
            [P[:, bounds[j] - lo : bounds[j + 1] - lo].double().square().sum() for j in range(j0, nb)]
        ).cpu()
        return {j: float(s) for j, s in zip(range(j0, nb), sums)}

    def cross_dot(self, X: np.ndarray, Y: np.ndarray) -> float:
        """``‖XᵀY‖²_F`` of two representations of the same texts (rows aligned)."""
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"representations of {X.shape[0]} and {Y.shape[0]} texts: rows must be aligned")
        return self.cross_sq(X, self.hold(Y) if self.gpu else Y, np.array([0, Y.shape[1]]))[0]
