"""Do bfloat16 and float32 MC dropout pick the same candidates? (`python -m runners.precision_agreement --help`)"""

from __future__ import annotations

from acquire.errors import UserError
import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from acquire.data import resolve_data_dir
from acquire.device import resolve_device
from acquire.files import write_csv
from acquire.loop import ExperimentConfig
from acquire.precision import PRECISIONS, check_precision
from acquire.rundir import CONFIG_FILE, check_out_dir
from runners.cli import add_device_and_data_flags, comma_list, int_list, run_guarded
from runners.mnist_bald import open_worker

DESCRIPTION = """\
For each arm of a runners.mnist_bald run (by default those whose acquisition scores by MC dropout) and each
of --rounds, re-derive from the run's state the classifier that scored that round, score the same candidates
with the same dropout masks in float32 and in bfloat16, and count how many of the k picks agree. With the
run's own precision the replay must give the acquisitions recorded in the state (a check of the replay
itself, written as matches_record). Writes a CSV (one row per arm and round) and prints the summary.
"""

COLUMNS = ["sources", "acquisition", "repeat", "round", "train_size_before", "k", "picks_in_common",
           "matches_record"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.precision_agreement", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="output directory of a runners.mnist_bald run")
    p.add_argument("--rounds", type=int_list, default=[1, 5, 10, 15, 20],
                   help="rounds to replay (default: 1,5,10,15,20)")
    p.add_argument("--acquisitions", type=comma_list,
                   help="acquisition functions whose arms are replayed (default: every one that uses MC dropout)")
    add_device_and_data_flags(p)
    p.add_argument("--out", type=Path, help="CSV to write (default: RUN/precision_agreement.csv)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), "nothing was written")


def run(args: argparse.Namespace) -> int:
    check_out_dir(args.run, resume=True, kind="runners.mnist_bald run")
    config = ExperimentConfig.load(args.run / CONFIG_FILE)
    device = resolve_device(args.device)
    check_precision("bf16", device)
    names = args.acquisitions or config.acquisitions
    unknown = sorted(set(names) - set(config.acquisitions))
    if unknown:
        raise UserError(f"{args.run} has no arms of {unknown}; its acquisitions are {config.acquisitions}")
    arms = [f"{s}/{a}/{r}" for s in config.sources for a in names for r in range(config.repeats)]
    rows = []
    with open_worker(args.run.resolve(), resolve_data_dir(args.data_dir), str(device), arms) as loop:
        arms = [s for s in loop.active if s.acquisition.needs_mc or args.acquisitions]
        if not arms:
            raise UserError(f"no arm of {args.run} scores by MC dropout; name the ones to replay with --acquisitions")
        work = [(state, r) for state in arms for r in args.rounds if r <= state.rounds_done]
        for state, round_index in tqdm(work, disable=args.no_progress, desc="replaying rounds"):
            picks = loop.replay_choice(str(state.arm), round_index, PRECISIONS)
            row, recorded = next((row, entry) for row, entry in zip(state.rows, state.record)
                                 if row["round"] == round_index)
            rows.append({"sources": state.arm.sources, "acquisition": state.arm.acquisition,
                         "repeat": state.arm.repeat, "round": round_index,
                         "train_size_before": row["train_size"] - len(recorded["index"]), "k": len(recorded["index"]),
                         "picks_in_common": len(set(picks["fp32"]) & set(picks["bf16"])),
                         "matches_record": picks[config.precision] == recorded["index"]})
    out = write_csv(args.out or args.run / "precision_agreement.csv", COLUMNS, rows)
    for row in rows:
        print(f"{row['sources']}/{row['acquisition']}/{row['repeat']} round {row['round']:3d}: "
              f"{row['picks_in_common']}/{row['k']} picks in common"
              + ("" if row["matches_record"] else f"   (the {config.precision} replay differs from the record)"))
    common = [row["picks_in_common"] / row["k"] for row in rows]
    if common:
        print(f"bf16 and fp32 share {sum(common) / len(common):.1%} of their picks on average over {len(rows)} "
              f"arm-rounds; all k in {sum(c == 1 for c in common)} of them; the {config.precision} replay "
              f"matches the record in {sum(row['matches_record'] for row in rows)} of {len(rows)}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
