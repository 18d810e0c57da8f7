"""The only place that knows the file names inside a run folder (see DESIGN.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# where run folders go unless a command is told otherwise
DEFAULT_RUNS_DIR = Path(".dsprof") / "runs"
MANIFEST = "run.json"
FINDINGS = "findings.json"
# the `dsprof fix` session run on this (baseline) run
FIX_SESSION = "fix.json"
TRACE_DIR = "trace"
METRICS_DIR = "metrics"
OUTPUTS_DIR = "outputs"
TRIALS_DIR = "trials"
LOGS_DIR = "logs"
RANKS_DIR = "ranks"
# multi-node jobs: node-level samples and logs of nodes other than node 0 (node 0 uses the root)
NODES_DIR = "nodes"

# a Kineto trace the script's process exported: trace/<host>_<pid>.pt.trace.json.gz (a live
# capture writes it uncompressed); traces given by other tools keep their own names
TRACE_FILE_SUFFIX = ".pt.trace.json"
# `dsprof load --server`: the service's launch output, beside its run folder until the folder
# exists (.<run id>.launch.log)
LAUNCH_LOG_SUFFIX = ".launch.log"

# the `dsprof report` page, written into the run folder when no -o is given
REPORT_HTML = "report.html"
# a batching trial's sweep and stream results (dsprof.recipes.batching)
BATCHING_RESULT = "batching.json"

STEPS = "steps.parquet"
# `dsprof load`: one row per request, and the summary (rates, percentiles per class, SLO verdicts)
REQUESTS = "requests.parquet"
LOAD_SUMMARY = "load.json"
# `dsprof load`: a few bodies of error answers, and the file whose creation opens the service's
# trace window (written in the middle of the load)
ERROR_BODIES = "error-bodies.jsonl"
TRACE_HOLD = "trace-hold"
# `dsprof trace`: how the on-demand capture went inside the service (dsprof.core.live.CaptureInfo)
CAPTURE = "capture.json"
# `dsprof watch`: the service's cumulative request counters at each refresh (when it reports them)
SERVICE_REQUESTS = "service_requests.parquet"
HOST = "host.parquet"
GPU = "gpu.parquet"
CUDA_MEMORY = "cuda_memory.parquet"
# written line by line while the child runs; converted to steps.parquet at the end
STEPS_LIVE = "steps.jsonl"
# multi-rank jobs: the rank's torch.distributed collective calls (name, start_ns, end_ns), each
# written as it returns; converted to collectives.parquet at the end
COLLECTIVES = "collectives.parquet"
# torch.cuda.memory_stats() rows written by the child at step ends; converted to cuda_memory.parquet
CUDA_MEMORY_LIVE = "cuda_memory.jsonl"
COLLECTIVES_LIVE = "collectives.jsonl"
# what the child observed about the script's objects (autograd, training mode, call site)
CHILD_INFO = "child.json"
# what the parent asks of the child (logs/child-config.json, named by DSPROF_CHILD_CONFIG)
CHILD_CONFIG = "child-config.json"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
# `dsprof fix`: what the script read from stdin in the baseline run, replayed to every later run
STDIN_LOG = "stdin.bin"
# a forked worker process's first module call (one JSON line per process), gathered into
# child.json at the end and removed
WORKER_MODULES_LIVE = "worker_modules.jsonl"
# multi-rank jobs: torchrun's --log-dir under logs/ while the job runs; each worker's output is
# <id>/attempt_<k>/<local rank>/ with torchrun's own names, moved to ranks/<r>/logs/ at the end
TORCHRUN_LOGS_DIR = "torchrun"
TORCHRUN_WORKER_LOGS = (STDOUT_LOG, STDERR_LOG)
OUTPUTS_INDEX = "index.json"
# one captured step's outputs and inputs: outputs/step-0000.pt
OUTPUT_STEP_PREFIX = "step-"
OUTPUT_STEP_SUFFIX = ".pt"
# while the child runs, each root module's captures wait in outputs/roots/<root>/step-N.pt; at the
# end the model's move up to outputs/ and the folder is removed
OUTPUT_ROOTS_DIR = "roots"

# the token ids each generate() call returned (transformers models), with its prompt length
GENERATED_TOKENS = "generated.pt"


@dataclass(frozen=True)
class RunPaths:
    """Paths of one run folder (or of one rank inside a multi-rank run)."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def launch_log(self) -> Path:
        """Where `dsprof load --server` keeps the service's launch output: beside the folder,
        which `dsprof run` creates only once it starts."""
        return self.root.parent / f".{self.root.name}{LAUNCH_LOG_SUFFIX}"

    @property
    def findings(self) -> Path:
        return self.root / FINDINGS

    @property
    def fix_session(self) -> Path:
        return self.root / FIX_SESSION

    @property
    def report_html(self) -> Path:
        return self.root / REPORT_HTML

    @property
    def batching_result(self) -> Path:
        return self.root / BATCHING_RESULT

    @property
    def load_summary(self) -> Path:
        return self.root / LOAD_SUMMARY

    @property
    def requests(self) -> Path:
        return self.metrics_dir / REQUESTS

    @property
    def error_bodies(self) -> Path:
        return self.logs_dir / ERROR_BODIES

    @property
    def trace_hold(self) -> Path:
        return self.logs_dir / TRACE_HOLD

    @property
    def capture(self) -> Path:
        return self.root / CAPTURE

    @property
    def service_requests(self) -> Path:
        return self.metrics_dir / SERVICE_REQUESTS

    @property
    def trace_dir(self) -> Path:
        return self.root / TRACE_DIR

    @property
    def metrics_dir(self) -> Path:
        return self.root / METRICS_DIR

    @property
    def outputs_dir(self) -> Path:
        return self.root / OUTPUTS_DIR

    @property
    def trials_dir(self) -> Path:
        return self.root / TRIALS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def ranks_dir(self) -> Path:
        return self.root / RANKS_DIR

    @property
    def steps(self) -> Path:
        return self.metrics_dir / STEPS

    @property
    def steps_live(self) -> Path:
        return self.metrics_dir / STEPS_LIVE

    @property
    def host(self) -> Path:
        return self.metrics_dir / HOST

    @property
    def gpu(self) -> Path:
        return self.metrics_dir / GPU

    @property
    def cuda_memory(self) -> Path:
        return self.metrics_dir / CUDA_MEMORY

    @property
    def cuda_memory_live(self) -> Path:
        return self.metrics_dir / CUDA_MEMORY_LIVE

    @property
    def collectives(self) -> Path:
        return self.metrics_dir / COLLECTIVES

    @property
    def collectives_live(self) -> Path:
        return self.metrics_dir / COLLECTIVES_LIVE

    @property
    def worker_modules_live(self) -> Path:
        return self.metrics_dir / WORKER_MODULES_LIVE

    @property
    def child_info(self) -> Path:
        return self.root / CHILD_INFO

    @property
    def torchrun_logs_dir(self) -> Path:
        return self.logs_dir / TORCHRUN_LOGS_DIR

    @property
    def child_config(self) -> Path:
        return self.logs_dir / CHILD_CONFIG

    @property
    def stdout_log(self) -> Path:
        return self.logs_dir / STDOUT_LOG

    @property
    def stderr_log(self) -> Path:
        return self.logs_dir / STDERR_LOG

    @property
    def stdin_log(self) -> Path:
        return self.logs_dir / STDIN_LOG

    @property
    def outputs_index(self) -> Path:
        return self.outputs_dir / OUTPUTS_INDEX

    @property
    def generated_tokens(self) -> Path:
        """What the script's generate() calls returned: outputs/generated.pt."""
        return self.outputs_dir / GENERATED_TOKENS

    def output_step(self, step: int) -> Path:
        """Where the child saves the captured outputs of one step."""
        return self.outputs_dir / output_step_name(step)

    @property
    def output_roots_dir(self) -> Path:
        return self.outputs_dir / OUTPUT_ROOTS_DIR

    def output_root_step(self, root: int, step: int) -> Path:
        """Where the child keeps a root module's capture until the model is known."""
        return self.output_roots_dir / str(root) / output_step_name(step)

    def output_steps(self) -> dict[int, Path]:
        """The captured steps' files by step number (see output_steps)."""
        return output_steps(self.outputs_dir)

    def documents(self) -> list[Path]:
        """The JSON documents a report reads (run.json, findings.json, fix.json), present or not."""
        return [self.manifest, self.findings, self.fix_session]

    def rank(self, rank: int) -> RunPaths:
        """The sub-folder holding one rank's data in a multi-rank run."""
        return RunPaths(self.ranks_dir / str(rank))

    def node(self, node_rank: int) -> RunPaths:
        """The sub-folder holding one node's own samples and logs in a multi-node job."""
        return RunPaths(self.root / NODES_DIR / str(node_rank))

    def trace_files(self) -> list[Path]:
        """Kineto traces in trace/, sorted by name."""
        if not self.trace_dir.is_dir():
            return []
        return sorted(p for p in self.trace_dir.iterdir() if p.name.endswith((".json", ".json.gz")))

    def make_dirs(self) -> None:
        """Create the sub-folders a collecting run writes into."""
        for d in (self.trace_dir, self.metrics_dir, self.outputs_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)


def trace_file_name(host: str, pid: int, *, gz: bool = True) -> str:
    """The name of the Kineto trace one process exports into trace/: host_123.pt.trace.json.gz."""
    return f"{host}_{pid}{TRACE_FILE_SUFFIX}{'.gz' if gz else ''}"


def output_step_name(step: int) -> str:
    """The file name of one captured step under outputs/: step-0003.pt."""
    return f"{OUTPUT_STEP_PREFIX}{step:04d}{OUTPUT_STEP_SUFFIX}"


def output_steps(outputs_dir: Path) -> dict[int, Path]:
    """The captured step files in an outputs/ folder, by step number, in step order."""
    found = {}
    for p in sorted(outputs_dir.glob(f"{OUTPUT_STEP_PREFIX}*{OUTPUT_STEP_SUFFIX}")):
        number = p.name[len(OUTPUT_STEP_PREFIX) : -len(OUTPUT_STEP_SUFFIX)]
        if number.isdigit():
            found[int(number)] = p
    return found


# run ids are folder names: the timestamp, a slug and 4 hex digits; nothing that walks paths
RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[A-Za-z0-9_.-]+-[0-9a-f]{4}$")


# the 4-hex tail of a run id, as `dsprof ls` shows it; commands take it where they take an id
SHORT_ID_RE = re.compile(r"^[0-9a-f]{4}$")


def is_short_run_id(text: str) -> bool:
    """True for a short run id (the run id's last 4 hex digits)."""
    return bool(SHORT_ID_RE.match(text))


def is_valid_run_id(run_id: str) -> bool:
    """True when run_id has the shape of a run folder name (and so cannot traverse paths)."""
    return bool(RUN_ID_RE.match(run_id)) and ".." not in run_id


def is_run_folder(path: Path) -> bool:
    """True for a folder with a run.json (a dsprof run), as opposed to trace files."""
    return path.is_dir() and (path / MANIFEST).is_file()
