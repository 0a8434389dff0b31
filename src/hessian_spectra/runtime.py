"""Process set-up shared by the compute commands: GPU slot, device, CPU threads and the curvature memory budget;
and the product kind, which each command passes to its curvature operators."""

from __future__ import annotations

import argparse
import atexit
import logging
import resource

from hessian_spectra.curvature_names import MODES
from hessian_spectra.gpu_slots import claim_gpu_slot
from hessian_spectra.portable import THREADS_VARIABLE, pinned_threads

log = logging.getLogger(__name__)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--gpus``, ``--gpu-lock-dir``, ``--threads``, ``--memory-budget-mb`` and ``--products``."""
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to compute (default: cpu)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs on this machine to claim a slot among (cuda)")
    parser.add_argument("--gpu-lock-dir", default=None, help="directory of the GPU slot lock files")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch CPU threads (default: torch's); a portable workflow job's {THREADS_VARIABLE} wins",
    )
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        default=None,
        help="MiB the cached curvature products may keep (default: half the device's available memory)",
    )
    parser.add_argument(
        "--products",
        choices=MODES,
        default="cached",
        help="curvature product kind: cached (the default), forward (jvp of the gradient) or double_backward",
    )


def add_walk_arguments(parser: argparse.ArgumentParser, *, max_steps: int, batch_size: int) -> None:
    """The flags of a command that walks a run's checkpoints: ``--run-json``, ``--checkpoints``, ``--subset``,
    ``--out``, Lanczos' ``--tol`` and ``--max-steps``, ``--batch-size`` and the runtime's."""
    parser.add_argument("--run-json", required=True, help="the run's run.json")
    parser.add_argument("--checkpoints", nargs="+", required=True, help="the run's checkpoints, epoch 0 first")
    parser.add_argument("--subset", required=True, help="the Hessian subset file")
    parser.add_argument("--out", required=True, help="output table (TSV, long format)")
    parser.add_argument("--tol", type=float, default=1e-4, help="Lanczos relative Ritz residual tolerance (1e-4)")
    parser.add_argument("--max-steps", type=int, default=max_steps, help=f"Lanczos steps at most ({max_steps})")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"samples per product batch ({batch_size})")
    add_runtime_arguments(parser)


def start_walk(args: argparse.Namespace) -> tuple:
    """Set up a command that walks a run's checkpoints (``add_walk_arguments``): its runtime, then the run's record,
    checking first that the subset fits the run's checkpoints. Returns (device, GPU slot, run record)."""
    device, slot = setup_runtime(args)
    from hessian_spectra.inputs import check_walk_subset
    from hessian_spectra.tables import load_run

    run = load_run(args.run_json)
    check_walk_subset(args.checkpoints, args.subset)
    return device, slot, run


def setup_runtime(args: argparse.Namespace, exact: bool = True):
    """Claim a GPU slot (before torch touches CUDA), then import torch and return (device, slot).

    ``exact`` turns off TF32 in matrix products and convolutions, which would otherwise cap the accuracy of
    curvature estimates on Ampere-or-newer GPUs near 1e-3; training passes ``exact=False`` to keep the speed.
    """
    slot = claim_gpu_slot(args.gpus, args.gpu_lock_dir) if args.device == "cuda" else None
    import torch

    atexit.unregister(log_resource_use)  # once per process, however often it is set up
    atexit.register(log_resource_use, args.device == "cuda")

    from hessian_spectra.curvature import set_default_memory_budget

    if args.memory_budget_mb is not None:
        set_default_memory_budget(int(args.memory_budget_mb * 2**20))
    threads = pinned_threads() or args.threads
    if threads:
        torch.set_num_threads(threads)
    if threads != args.threads:
        log.info("torch threads: %d (%s, the config's `threads`), not --threads %s", threads, THREADS_VARIABLE,
                 args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device cuda requested but torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = not exact
        torch.backends.cudnn.allow_tf32 = not exact
        log.info("using CUDA device %s (%s)", slot.device, torch.cuda.get_device_name(0))
        return torch.device("cuda", 0), slot
    return torch.device("cpu"), None


def log_resource_use(cuda: bool) -> None:
    """Log the process's peak memory and CPU time (the kernel's accounting, not a sample): ``peak RSS`` in MiB and,
    on CUDA, the allocator's peak; benchmarks/paper_memory.py reads this line from the jobs' logs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    line = f"resource use: peak RSS {usage.ru_maxrss / 1024:.0f} MiB, CPU {usage.ru_utime:.1f} s user {usage.ru_stime:.1f} s system"
    if cuda:
        import torch

        line += (f", CUDA peak allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB "
                 f"reserved {torch.cuda.max_memory_reserved() / 2**20:.0f} MiB")
    log.info(line)
