"""Drop-in nn.Modules over the fused kernels, for the fused-kernels recipe's module swaps.

Each module is built from the modules it replaces and shares their Parameter objects, so the
model's state_dict keys, tied weights and any optimizer references stay as they were. Each has
a `backend` attribute ("auto", "triton" or "torch") passed to its kernel; with "auto" a module
runs Triton on CUDA tensors and plain torch elsewhere, and falls back to torch whenever a
gradient is needed, because the kernels have no backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsprof.kernels import runtime
from dsprof.kernels.add_layernorm import add_layernorm
from dsprof.kernels.bias_gelu import bias_gelu
from dsprof.kernels.layernorm_gelu import layernorm_gelu
from dsprof.kernels.rms_norm import rms_norm


class FusedLayerNormGELU(nn.Module):
    """nn.LayerNorm over the last dimension followed by GELU, in one kernel."""

    def __init__(
        self, norm: nn.LayerNorm, approximate: str = "none", backend: str = "auto"
    ) -> None:
        super().__init__()
        if len(norm.normalized_shape) != 1:
            raise ValueError("FusedLayerNormGELU normalises the last dimension only")
        self.normalized_shape = tuple(norm.normalized_shape)
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias
        self.approximate = approximate
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """gelu(layer_norm(x))."""
        return layernorm_gelu(
            x, self.weight, self.bias, self.eps, self.backend, approximate=self.approximate
        )

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, approximate={self.approximate!r}, "
            f"backend={self.backend!r}"
        )


class FusedLinearGELU(nn.Module):
    """nn.Linear followed by GELU: the GEMM without its bias, then the fused bias + GELU kernel."""

    def __init__(self, linear: nn.Linear, approximate: str = "none", backend: str = "auto") -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.approximate = approximate
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """gelu(x @ weight.T + bias)."""
        path = runtime.resolve_backend(self.backend, x, self.weight, self.bias)
        if path == "torch":
            # Eager's own composition: addmm folds the bias into the GEMM.
            return F.gelu(F.linear(x, self.weight, self.bias), approximate=self.approximate)
        return bias_gelu(
            F.linear(x, self.weight), self.bias, backend="triton", approximate=self.approximate
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, approximate={self.approximate!r}, backend={self.backend!r}"
        )


class FusedDenseAddLayerNorm(nn.Module):
    """BERT's SelfOutput/Output block: LayerNorm(dropout(dense(h)) + residual), add fused with the norm.

    Keeps the children's names (`dense`, `dropout`, `LayerNorm`) so state_dict keys match the
    Hugging Face module it replaces; forward takes the same (hidden_states, input_tensor).
    """

    def __init__(
        self, dense: nn.Linear, dropout: nn.Module, norm: nn.LayerNorm, backend: str = "auto"
    ) -> None:
        super().__init__()
        if len(norm.normalized_shape) != 1:
            raise ValueError("FusedDenseAddLayerNorm normalises the last dimension only")
        self.dense = dense
        self.dropout = dropout
        self.LayerNorm = norm
        self.backend = backend

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """layer_norm(dropout(dense(hidden_states)) + input_tensor)."""
        h = self.dropout(self.dense(hidden_states))
        norm = self.LayerNorm
        return add_layernorm(h, input_tensor, norm.weight, norm.bias, norm.eps, self.backend)

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}"


class FusedRMSNorm(nn.Module):
    """RMSNorm over the last dimension in one kernel (LlamaRMSNorm, torch.nn.RMSNorm).

    `eps=None` means torch.nn.RMSNorm's default, the machine epsilon of the input's dtype. The
    output dtype is x's promoted with the weight's, as LlamaRMSNorm and nn.RMSNorm return.
    """

    def __init__(
        self, weight: nn.Parameter | None, eps: float | None = 1e-6, backend: str = "auto"
    ) -> None:
        super().__init__()
        self.weight = weight
        self.eps = eps
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x / sqrt(mean(x**2) + eps) * weight."""
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        out = rms_norm(x, self.weight, eps, self.backend)
        if self.weight is not None and self.weight.dtype != x.dtype:
            out = out.to(torch.promote_types(x.dtype, self.weight.dtype))
        return out

    def extra_repr(self) -> str:
        size = None if self.weight is None else self.weight.shape[0]
        return f"{size}, eps={self.eps}, backend={self.backend!r}"
