"""Kineto Chrome-trace JSON (.json / .json.gz) into typed pandas DataFrames.

    from dsprof.trace import load_trace
    tf = load_trace("trace/host_123.pt.trace.json.gz")     # TraceFrames; TraceError on bad input

Both the 2021 schema (cats Operator/Runtime/Kernel/Memcpy/Memset) and the current one (cpu_op,
cuda_runtime, cuda_driver, kernel, gpu_memcpy, gpu_memset, cuda_sync, user_annotation,
python_function, [memory] instants) are read. The file is streamed in 1 MiB chunks
(dsprof/trace/reader.py), so memory is the frames plus one chunk, not the JSON's Python dicts.

Times: every `*_ns` column is int64 nanoseconds on the epoch clock: round(ts_us * 1000) +
baseTimeNanoseconds (0 when the trace has none: then ts are already epoch microseconds, or relative
in very old traces). `end_ns = ts_ns + dur_ns`. Strings (`name`, `cat`, `input_dims`,
`input_types`) are pandas Categoricals (interned). Integers that were absent are -1, floats NaN.
Tables are sorted by ts_ns.

Tables (attributes of TraceFrames):
    cpu       host spans. name, cat ("cpu_op" | "user_annotation", and "python_function" only
              with load_trace(path, keep_python_functions=True)), ts_ns,
              dur_ns, end_ns, pid, tid, external_id, seq, input_dims, input_types, concrete_inputs
              (seq: autograd's "Sequence number", -1 when absent: present only on ops autograd
              recorded. input_dims / input_types / concrete_inputs: JSON text of the "Input Dims"
              / "Input type" / "Concrete Inputs" args, "" when not recorded; decode with
              tf.decoded_shapes(df["input_dims"]) -> lists, once per unique value)
    runtime   CUDA runtime/driver calls. name, cat ("cuda_runtime" | "cuda_driver"), ts_ns, dur_ns,
              end_ns, pid, tid, correlation, external_id
    gpu       GPU activity. name, cat ("kernel" | "gpu_memcpy" | "gpu_memset" | "cuda_sync"),
              ts_ns, dur_ns, end_ns, pid, tid, device, stream, correlation, external_id, bytes
              (memcpy/memset), and for kernels grid_blocks, block_threads, registers,
              shared_mem_bytes, blocks_per_sm, warps_per_sm, occupancy_pct
    memory    [memory] instants. name, cat ("memory"), ts_ns, dur_ns (0), end_ns, pid, tid, bytes
              (+alloc / -free), total_allocated, total_reserved (-1 in legacy traces), device_id
              (-1 = CPU), device_type

Views (cached properties):
    cpu_ops          cat == cpu_op (aten ops: with input shapes/dtypes when record_shapes was on)
    annotations      record_function spans (ProfilerStep#N, enumerate(DataLoader)..., nccl:...)
    kernels          gpu rows with cat == kernel
    gpu_busy_events  kernels + memcpy + memset
    memcpy           copies with `direction` ("HtoD", "DtoH", "DtoD", ...) and `pageable` (bool)
    comm_kernels     collective kernels, NCCL and not (multimem_all_reduce, custom all-reduce)
    comm_cpu         host-side collective spans (nccl:*, gloo:*, c10d::*)
    launches         kernels joined to their launching runtime call by correlation:
                     + launch_ts_ns, launch_dur_ns, launch_name, launch_tid
    kernel_ops       launches plus op_index (row of cpu_ops around the launch call, -1 if none)
                     and op_name: which aten op launched each kernel (matched by time)
    host_syncs       runtime calls that block the host: kind "explicit" (cudaDeviceSynchronize),
                     "implicit" (stream/event syncs), "copy" (blocking DtoH or pageable copies)
    steps            ProfilerStep windows: step, start_ns, end_ns, dur_ns (may be empty)
    window           (start_ns, end_ns): the ProfilerStep span, else the whole trace;
                     window_ns, window_label, in_window(df)

Metadata: tf.metadata (every top-level key except traceEvents), tf.device_properties (list of
{"id", "name", "numSms", "computeMajor", "totalGlobalMem", ...}), tf.device_name(),
tf.distributed (distributedInfo), tf.rank, tf.base_ns, tf.has_gpu_activity (kernels/copies
present: use this, not deviceProperties, to decide that a trace is a GPU trace),
tf.uncompressed_bytes.

Intervals (dsprof.trace.intervals): union_intervals, busy_ns, gaps, overlap_ns, clip,
covered_ns_each, clusters (runs of back-to-back events), outermost (top-level ops per thread),
innermost_containing (which op encloses a time on a thread).
Name matching once per unique name: dsprof.trace.frames.match_names(series, regex).
Devices (dsprof.trace.devices): GPU peak FLOP/s and bandwidth table, match_gpu(name).
Roofline (dsprof.trace.roofline): per-op FLOPs and bytes from shapes and dtypes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames, load_trace

__all__ = ["TraceFrames", "load_trace"]


def __getattr__(name: str) -> Any:
    # pandas is imported on first use, so dsprof.trace.parse / .workers stay light
    if name in __all__:
        from dsprof.trace import frames

        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
