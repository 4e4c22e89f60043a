"""What every runner's main() shares: `kill` stops a run as cleanly as Ctrl-C, a user error prints one line
(the problem and the fix) and exits 2, and an interrupted run says what was kept and how to continue (130).

This module imports nothing slow, so that a runner run as a script installs `stop_before_work` first,
before torch and its data load: a SIGTERM or Ctrl-C that early exits 130 at once, having written nothing.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from acquire.errors import UserError
from acquire.rundir import check_out_dir

INTERRUPTED = 130
USER_ERROR = 2


def _exit_before_work(signum, frame):
    print("\nstopped before any work started; nothing was written", file=sys.stderr)
    raise SystemExit(INTERRUPTED)


def stop_before_work() -> None:
    """SIGTERM and SIGINT end the program at once with exit code 130 (installed by runners/__init__.py when a
    runner starts as `python -m runners.X`, before the runner's slow imports)."""
    signal.signal(signal.SIGTERM, _exit_before_work)
    signal.signal(signal.SIGINT, _exit_before_work)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_guarded(body: Callable[[], int], interrupted: str | Callable[[], str]) -> int:
    """body() -> exit code, with SIGTERM and SIGINT turned into KeyboardInterrupt; user errors -> 2 (one line),
    interrupts -> 130 with the message `interrupted` (or what `interrupted()` gives at that moment: what was
    kept, how to go on)."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return body()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        message = interrupted() if callable(interrupted) else interrupted
        print(f"\ninterrupted; {message}", file=sys.stderr)
        return INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def resume_hint(kept: str, program: str, out: Path) -> Callable[[], str]:
    """The interrupted message of a resumable runner writing to `out`: the resume command if a run was saved
    there, else that nothing was written."""
    def message() -> str:
        if (Path(out) / "config.json").exists():
            return f"{kept} are saved in {out}. Continue with: python -m {program} --resume --out {out}"
        return f"stopped before the run started; nothing was saved in {out}"
    return message


def comma_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] (an argparse type); an empty list is an error."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _typed_list(kind: type, name: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(item) for item in comma_list(text)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {name}, got {text!r}") from None
    return parse


int_list = _typed_list(int, "integers")


def float_list(text: str) -> list[float]:
    """'0.5,1e-3' -> [0.5, 0.001] (an argparse type); NaN, inf and an empty list are errors."""
    values = _typed_list(float, "numbers")(text)
    if not all(math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, got {text!r}")
    return values

# An argument starting with '-' and a digit (or '-.' and a digit), or '-inf', is a value: '-1e-3', '-10,30', '-.5'.
# argparse before Python 3.13 reads only '-10' and '-1.5' so, and takes the rest for unknown flags.
_NEGATIVE_NUMBER = re.compile(r"^-(\.?\d|inf(inity)?(,|$))", re.IGNORECASE)


def numbers_may_be_negative(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser`, made to read '-1e-3' and '-10,30' as values (so a flag's own check can refuse them by name)."""
    parser._negative_number_matcher = _NEGATIVE_NUMBER  # argparse's own hook; no flag of ours looks like a number
    return parser


PRESET_HELP = "starting values (default: paper; with --resume the saved settings)"


def add_run_flags(parser: argparse.ArgumentParser, *, out: Path, presets: Iterable[str], seed_help: str,
                  preset_help: str = PRESET_HELP, preset_default: str | None = None, seed_default: int | None = None,
                  out_help: str = "output directory", resume_help: str | None = None,
                  resume_keeps_data_dir: bool = False, progress: bool = True) -> None:
    """Add the flags the runners share: --preset (choices `presets`), --seed, --device, --data-dir, --out (default
    `out`); --resume when resume_help is given (a resumable runner); --no-progress unless progress is False.

    --preset and --seed default to None unless given otherwise, so that a runner that layers saved settings,
    preset and flags (acquire.sweep.SweepSettings) sees which were given; seed_help states the default then.
    resume_keeps_data_dir: a resume without --data-dir uses the saved one (said in its help). The parser reads
    negative numbers in any form as values (numbers_may_be_negative).
    """
    parser.add_argument("--preset", choices=sorted(presets), default=preset_default, help=preset_help)
    parser.add_argument("--seed", type=int, default=seed_default, help=seed_help)
    add_device_and_data_flags(parser, resume_keeps_data_dir)
    parser.add_argument("--out", type=Path, default=Path(out), help=f"{out_help} (default: %(default)s)")
    if resume_help is not None:
        parser.add_argument("--resume", action="store_true", help=resume_help)
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_record_data_digests_flag(parser: argparse.ArgumentParser) -> None:
    """--record-data-digests: continue a sweep whose config.json predates its data's fingerprints (acquire.sweep)."""
    parser.add_argument("--record-data-digests", action="store_true",
                        help="with --resume, for a sweep saved before data fingerprints were recorded (2026-12): take "
                             "the data given as the data it ran on and record its sha256, which every later resume "
                             "checks")


def add_device_and_data_flags(parser: argparse.ArgumentParser, resume_keeps_data_dir: bool = False) -> None:
    """Add --device and --data-dir (with resume_keeps_data_dir, its help says a resume uses the saved one); the parser
    then reads negative numbers in any form as values (numbers_may_be_negative)."""
    numbers_may_be_negative(parser)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda (default: auto)")
    saved = "; with --resume the saved one" if resume_keeps_data_dir else ""
    parser.add_argument("--data-dir", type=Path, help=(
        "the data set: a directory of the four MNIST-format IDX files (1 or 3 channels; Fashion-MNIST too), an .npz "
        "file (x_train, y_train, x_test, y_test, or x, y), or a folder of images (train/<class>/*.png|jpg beside "
        "test/<class>/, or one <class>/ folder per class); a set without a test split of its own is split, seeded "
        f"and stratified (default: $GAN_ACQUIRE_DATA, else MNIST in a per-user cache filled from the public mirrors"
        f"{saved})"))


PRECISION_CHOICES = ("fp32", "bf16")  # acquire.precision.PRECISIONS (not imported: this module stays light)


def add_precision_flag(parser: argparse.ArgumentParser,
                       bf16: str = "train under bfloat16 autocast and score MC dropout with bfloat16 GEMMs "
                                   "(probabilities and scores stay float32/float64)",
                       fixed: str = "fixed for a run") -> None:
    """--precision {fp32,bf16}, default None (the config's fp32, or a resumed run's saved precision); the help says
    what the runner computes in bfloat16 (`bf16`) and what keeps the precision once started (`fixed`)."""
    parser.add_argument("--precision", choices=PRECISION_CHOICES,
                        help=f"fp32, or bf16: {bf16}; faster only where bfloat16 matrix products are (measure "
                             f"with python -m runners.bench), refused where bfloat16 is unsupported; {fixed} "
                             "(default: fp32)")


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """--executor {local,ray} and Ray's settings (acquire.ray_executor.RayOptions); none is part of a run's config,
    so a run started one way may be resumed the other."""
    group = parser.add_argument_group("running arms in parallel with Ray (optional extra: pip install -e \".[ray]\")")
    group.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: every arm in this process, in lockstep; ray: one Ray task per arm, each "
                            "resuming from its arm's state (a killed worker is retried), rows identical to local "
                            "given the same threads per arm (default: %(default)s)")
    group.add_argument("--ray-address", help="address of a Ray cluster (e.g. ray://head:10001 or auto); default: "
                                             "start a local Ray instance")
    group.add_argument("--ray-cpus", type=int,
                       help="CPUs of the local Ray instance (default: all): with --threads-per-task, how many arms "
                            "run at once")
    group.add_argument("--threads-per-task", type=int, default=1,
                       help="torch threads (and Ray CPUs) per arm task (default: %(default)s; a run is bit-identical "
                            "to a local run with OMP_NUM_THREADS equal to it)")
    group.add_argument("--gpus-per-task", type=float,
                       help="GPU fraction per arm task on a CUDA device (default: 0.25, four arms per GPU)")


def config_for_out_dir(args: argparse.Namespace, make_config: Callable[[], object], kind: str = "run"):
    """make_config(), with --out checked in the order that gives the most specific error: resuming, the directory
    first (the saved config lives there); starting, the flags first, then the directory."""
    if args.resume:
        check_out_dir(args.out, resume=True, kind=kind)
        return make_config()
    config = make_config()
    check_out_dir(args.out, resume=False, kind=kind)
    return config
