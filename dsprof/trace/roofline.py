"""FLOPs and bytes moved per operator, from the shapes and dtypes torch.profiler records.

`op_costs(cpu_ops)` evaluates each unique (name, Input Dims, Input type, Concrete Inputs)
combination once and maps the result back onto every row. Counts follow the usual conventions:
a multiply-add is 2 FLOPs; bytes are inputs read once plus the output written once (no cache
reuse), so arithmetic intensity is an upper bound on what DRAM sees for GEMMs and exact for
streaming elementwise ops.

    GEMM  mm/addmm [M,K]x[K,N]: 2MKN;  bmm/baddbmm [B,M,K]x[B,K,N]: 2BMKN;  matmul/linear: the
          same over the broadcast batch
    conv  convolution/_convolution/conv1d/2d/3d/cudnn_convolution: 2 * N * O * prod(out) * C/g * prod(k)
          with out = ceil(in / stride) (stride from Concrete Inputs when recorded, else 1)
    SDPA  scaled_dot_product_attention and its flash/efficient/cudnn variants, q [B,H,L,E],
          k [B,H,S,E], v [B,H,S,Ev]: 2BHLSE + 2BHLSEv
    elementwise / normalisation / softmax: ELEMENTWISE_FLOPS per output element; bytes = the
          tensors read + one output the size of the largest input
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import orjson
import pandas as pd

DTYPE_BYTES: dict[str, int] = {
    "float": 4,
    "double": 8,
    "c10::Half": 2,
    "c10::BFloat16": 2,
    "c10::Float8_e4m3fn": 1,
    "c10::Float8_e5m2": 1,
    "c10::Float8_e4m3fnuz": 1,
    "long int": 8,
    "int": 4,
    "short int": 2,
    "signed char": 1,
    "unsigned char": 1,
    "bool": 1,
    "c10::complex<float>": 8,
}
GEMM_OPS = frozenset(
    {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"}
)
CONV_OPS = frozenset(
    {
        "aten::convolution",
        "aten::_convolution",
        "aten::conv1d",
        "aten::conv2d",
        "aten::conv3d",
        "aten::cudnn_convolution",
    }
)
SDPA_RE = re.compile(r"scaled_dot_product|_flash_attention|_efficient_attention|_cudnn_attention")
# FLOPs per output element of streaming ops: 1 for arithmetic; softmax/norms do ~5 (max, sub,
# exp, sum, div); only the order of magnitude matters: these ops are far below any ridge point.
ELEMENTWISE_FLOPS: dict[str, int] = {"softmax": 5, "norm": 5, "gelu": 8, "silu": 4}
ELEMENTWISE_RE = re.compile(
    r"^aten::(add|sub|mul|div|neg|abs|exp|log|pow|sqrt|rsqrt|relu|gelu|silu|sigmoid|tanh|clamp|"
    r"where|masked_fill|fill|zero|copy|_to_copy|to|softmax|_softmax|log_softmax|_log_softmax|"
    r"layer_norm|native_layer_norm|rms_norm|_fused_rms_norm|group_norm|native_group_norm|"
    r"batch_norm|_batch_norm_impl_index|cudnn_batch_norm|native_batch_norm|dropout|native_dropout|"
    r"hardtanh|leaky_relu|erf|cat|embedding|index_select|gather|sum|mean|max|min|cumsum)_?$"
)


def _numel(shape: list[Any]) -> int:
    """Elements of a shape; a tensor list (list of shapes, e.g. aten::cat) sums its tensors."""
    if not shape:
        return 1
    if all(isinstance(s, int) for s in shape):
        return int(math.prod(shape))
    return sum(_numel(s) for s in shape if isinstance(s, list))


def _is_shape(d: Any) -> bool:
    return isinstance(d, list) and bool(d) and all(isinstance(s, int) for s in d)


def _size(t: str) -> int:
    return DTYPE_BYTES.get(t, 4)


def _gemm(name: str, dims: list[Any], types: list[str]) -> tuple[float, float] | None:
    shaped = [(d, t) for d, t in zip(dims, types, strict=False) if _is_shape(d)]
    if name == "aten::linear" and len(shaped) >= 2:
        (x, tx), (w, _tw) = shaped[0], shaped[1]
        k, n = x[-1], w[0]
        rows = _numel(x[:-1])
        flops = 2.0 * rows * k * n
        nbytes = (_numel(x) + _numel(w)) * _size(tx) + rows * n * _size(tx)
        return flops, nbytes
    if name in ("aten::addmm", "aten::baddbmm") and len(shaped) >= 3:
        shaped = shaped[1:]
    if len(shaped) < 2:
        return None
    (a, ta), (b, _) = shaped[0], shaped[1]
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        return None
    m, k, n = a[-2], a[-1], b[-1]
    batch = max(_numel(a[:-2]), _numel(b[:-2]))
    flops = 2.0 * batch * m * k * n
    nbytes = (_numel(a) + _numel(b) + batch * m * n) * _size(ta)
    return flops, nbytes


def _conv(
    name: str, dims: list[Any], types: list[str], concrete: list[Any]
) -> tuple[float, float] | None:
    if len(dims) < 2 or not _is_shape(dims[0]) or not _is_shape(dims[1]) or len(dims[0]) < 3:
        return None
    x, w = dims[0], dims[1]
    spatial = len(x) - 2
    stride = [1] * spatial
    # stride is argument 3 of convolution/_convolution/convNd; cudnn_convolution has it at 3 too
    # (self, weight, padding, stride): padding first, so read index 3 in both cases
    idx = 3
    if (
        concrete
        and len(concrete) > idx
        and isinstance(concrete[idx], str)
        and concrete[idx].startswith("[")
    ):
        try:
            parsed = orjson.loads(concrete[idx])
            if isinstance(parsed, list) and len(parsed) == spatial:
                stride = [max(int(s), 1) for s in parsed]
        except orjson.JSONDecodeError:
            pass
    out_spatial = [math.ceil(s / st) for s, st in zip(x[2:], stride, strict=False)]
    n, o = x[0], w[0]
    per_out = w[1] * _numel(w[2:])
    flops = 2.0 * n * o * _numel(out_spatial) * per_out
    nbytes = (_numel(x) + _numel(w) + n * o * _numel(out_spatial)) * _size(
        types[0] if types else "float"
    )
    return flops, nbytes


# the private flash/efficient kernels take [B, L, H, E]; the public op and its wrappers [B, H, L, E]
_SEQ_FIRST = frozenset({"aten::_flash_attention_forward", "aten::_efficient_attention_forward"})


def _sdpa(name: str, dims: list[Any], types: list[str]) -> tuple[float, float] | None:
    if len(dims) < 3 or not all(_is_shape(d) and len(d) == 4 for d in dims[:3]):
        return None
    q, k, v = dims[0], dims[1], dims[2]
    if name in _SEQ_FIRST:
        q, k, v = ([d[0], d[2], d[1], d[3]] for d in (q, k, v))
    b, h, length, e = q
    s, ev = k[2], v[3]
    flops = 2.0 * b * h * length * s * e + 2.0 * b * h * length * s * ev
    nbytes = (_numel(q) + _numel(k) + _numel(v) + b * h * length * ev) * _size(
        types[0] if types else "float"
    )
    return flops, nbytes


def _elementwise(name: str, dims: list[Any], types: list[str]) -> tuple[float, float] | None:
    tensors = [(d, t) for d, t in zip(dims, types, strict=False) if isinstance(d, list) and d]
    if not tensors:
        return None
    largest = max(tensors, key=lambda dt: _numel(dt[0]))
    per = next((v for k, v in ELEMENTWISE_FLOPS.items() if k in name), 1)
    flops = float(per * _numel(largest[0]))
    nbytes = sum(_numel(d) * _size(t) for d, t in tensors) + _numel(largest[0]) * _size(largest[1])
    return flops, float(nbytes)


def op_cost(
    name: str, dims: list[Any] | None, types: list[str] | None, concrete: list[Any] | None = None
) -> tuple[float, float, str] | None:
    """(FLOPs, bytes, compute dtype) of one op call, or None when its shapes say nothing."""
    if not dims:
        return None
    types = list(types or [])
    types += [""] * (len(dims) - len(types))
    dtype = next(
        (
            t
            for t, d in zip(types, dims, strict=False)
            if isinstance(d, list) and d and t in DTYPE_BYTES
        ),
        "float",
    )
    if name in GEMM_OPS:
        cost = _gemm(name, dims, types)
    elif name in CONV_OPS:
        cost = _conv(name, dims, types, list(concrete or []))
    elif SDPA_RE.search(name):
        cost = _sdpa(name, dims, types)
    elif ELEMENTWISE_RE.match(name):
        cost = _elementwise(name, dims, types)
    else:
        cost = None
    if cost is None or cost[1] <= 0:
        return None
    return cost[0], cost[1], dtype


def op_costs(ops: pd.DataFrame, decode: Any) -> pd.DataFrame:
    """flops, bytes, dtype columns for cpu ops (NaN / "" where unknown), once per unique call shape.

    decode: TraceFrames.decoded_shapes (JSON text -> lists).
    """
    keys = ["name", "input_dims", "input_types", "concrete_inputs"]
    if not len(ops):
        return pd.DataFrame({"flops": [], "bytes": [], "dtype": []}, index=ops.index)
    inverse = _call_shapes([ops[k].cat.codes.to_numpy() for k in keys])
    n_uniq = int(inverse.max()) + 1
    first = np.empty(n_uniq, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(ops))[::-1]  # the first row of each call shape
    sample = ops.iloc[first]
    dims = decode(sample["input_dims"]).tolist()
    types = decode(sample["input_types"]).tolist()
    concrete = decode(sample["concrete_inputs"]).tolist()
    names = sample["name"].astype(str).tolist()
    flops = np.full(n_uniq, np.nan)
    nbytes = np.full(n_uniq, np.nan)
    dtype = np.full(n_uniq, "", dtype=object)
    for i, (n, d, t, c) in enumerate(zip(names, dims, types, concrete, strict=False)):
        cost = op_cost(n, d, t, c)
        if cost is not None:
            flops[i], nbytes[i], dtype[i] = cost
    return pd.DataFrame(
        {"flops": flops[inverse], "bytes": nbytes[inverse], "dtype": dtype[inverse]},
        index=ops.index,
    )


def _call_shapes(codes: list[np.ndarray]) -> np.ndarray:
    """A group number per row for the rows' tuples of category codes (hashing, not sorting)."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    for c in codes:
        c = c.astype(np.int64) + 1  # -1 (missing) -> 0
        span = int(c.max()) + 1
        if int(key.max()) >= (1 << 62) // span:  # would overflow: sort the rows instead
            return np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)[1].ravel()
        key = key * span + c
    return pd.factorize(key)[0]
