"""Resuming a run: portable state continues anywhere, and nothing a run saved is ever lost or silently redone."""

import json
import shutil

import pandas as pd
import pytest

from acquire.data import ImageSet
from acquire.loop import TIMING_COLUMNS, ActiveLearningRun, ExperimentConfig, RunDirectoryError
from acquire.training import TrainConfig
from acquire.pool import CandidatePool
from tests.acquire.loop.test_loop import tiny_config


def start(tiny_train, tiny_test, out, resume=False, pool_images=None, **changes):
    pools = {"raw": CandidatePool({"raw": pool_images or tiny_train})}
    return ActiveLearningRun(tiny_config(**{"repeats": 1, **changes}), pools, tiny_test, out, resume=resume)


def rows(out):
    return pd.read_csv(out / "rounds.csv").drop(columns=TIMING_COLUMNS)


@pytest.fixture(scope="module")
def two_rounds(tiny_train, tiny_test, tmp_path_factory):
    """A finished 2-round run (random and BALD, one repeat), and the same run taken to 3 rounds at once."""
    out, whole = tmp_path_factory.mktemp("two"), tmp_path_factory.mktemp("whole")
    with start(tiny_train, tiny_test, out, rounds=2) as run:
        run.run(progress=False)
    with start(tiny_train, tiny_test, whole, rounds=3) as run:
        run.run(progress=False)
    return out, whole


def copy_of(run_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return target


def test_a_clone_without_the_model_cache_continues_to_the_rows_of_an_uninterrupted_run(two_rounds, tiny_train,
                                                                                      tiny_test, tmp_path):
    out, whole = two_rounds
    clone = copy_of(out, tmp_path)
    shutil.rmtree(clone / "state" / "models")  # what a git clone has: the cache is git-ignored
    with start(tiny_train, tiny_test, clone, resume=True, rounds=3) as run:
        run.run(progress=False)
    pd.testing.assert_frame_equal(rows(clone), rows(whole))


def test_the_run_directory_is_small_and_its_model_cache_ignored_by_git(two_rounds):
    out, _ = two_rounds
    assert (out / "state" / "models" / ".gitignore").read_text().strip().endswith("*")
    committed = [p for p in out.rglob("*") if p.is_file() and "models" not in p.parts]
    assert sum(p.stat().st_size for p in committed) < 1_000_000
    state = json.loads((out / "state" / "raw__bald__0.json").read_text())
    assert [len(r["index"]) for r in state["rounds"]] == [5, 5] and len(state["rows"]) == 2
    assert all(len(r["score"]) == 5 for r in state["rounds"])  # BALD's scores of what it took


def refused(tiny_train, tiny_test, out, message, **kwargs):
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(RunDirectoryError, match=message):
        start(tiny_train, tiny_test, out, resume=True, **{"rounds": 3, **kwargs})
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # refused before touching a file


def test_rows_without_their_state_are_never_wiped(two_rounds, tiny_train, tiny_test, tmp_path):
    clone = copy_of(two_rounds[0], tmp_path)
    (clone / "state" / "raw__random__0.json").unlink()
    refused(tiny_train, tiny_test, clone, r"raw/random/0 but .*raw__random__0.json is missing")
    shutil.rmtree(clone / "state")  # a run saved before state was kept beside it
    refused(tiny_train, tiny_test, clone, "cannot be continued; its rows are untouched")


@pytest.mark.parametrize("damage, message", [
    (lambda s: "{ not json", "damaged"),
    (lambda s: s[: len(s) // 2], "damaged"),
    (lambda s: json.dumps({**json.loads(s), "format": 1}), "state format 1"),
    (lambda s: json.dumps({**json.loads(s), "rounds": [{"index": [10**6], "label": [0], "source": ["raw"]}] * 2}),
     "integers in"),
    (lambda s: json.dumps({**json.loads(s), "arm": {"sources": "raw", "acquisition": "bald", "repeat": 3}}),
     "not"),
])
def test_a_damaged_state_is_refused_naming_the_file(two_rounds, tiny_train, tiny_test, tmp_path, damage, message):
    clone = copy_of(two_rounds[0], tmp_path)
    path = clone / "state" / "raw__bald__0.json"
    path.write_text(damage(path.read_text()))
    refused(tiny_train, tiny_test, clone, rf"raw__bald__0.json.*{message}|{message}.*raw__bald__0.json")


def test_a_csv_that_disagrees_with_the_states_is_refused(two_rounds, tiny_train, tiny_test, tmp_path):
    clone = copy_of(two_rounds[0], tmp_path)
    csv = clone / "rounds.csv"
    csv.write_text(csv.read_text().replace("raw,bald,0,0,2", "raw,bald,0,0,7"))
    refused(tiny_train, tiny_test, clone, "disagree|do not list")


@pytest.mark.parametrize("edit, message", [
    (lambda c: {**c, "per_round": 4}, "per_round"),
    (lambda c: {**c, "surprise": 1}, r"unknown setting\(s\) \['surprise'\]"),
    (lambda c: "[1, 2]", "JSON object"),
])
def test_a_changed_or_damaged_config_is_refused_naming_it(two_rounds, tiny_train, tiny_test, tmp_path, edit, message):
    clone = copy_of(two_rounds[0], tmp_path)
    path = clone / "config.json"
    edited = edit(json.loads(path.read_text()))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    refused(tiny_train, tiny_test, clone, message)


def test_fewer_rounds_than_done_is_refused(two_rounds, tiny_train, tiny_test, tmp_path):
    refused(tiny_train, tiny_test, copy_of(two_rounds[0], tmp_path), "below the 2 rounds already done", rounds=1)


def test_another_pool_is_refused_saying_what_differs(two_rounds, tiny_train, tiny_test, tmp_path):
    clone = copy_of(two_rounds[0], tmp_path)
    other = tiny_train.subset(list(range(1, len(tiny_train))) + [0])  # same images, other order
    refused(tiny_train, tiny_test, clone, "source 'raw' has other images or labels", pool_images=other)
    refused(tiny_train, tiny_test, clone, "has 399 images, saved 400", pool_images=tiny_train.subset(range(399)))


def test_a_torn_last_csv_line_is_rebuilt_from_the_states(two_rounds, tiny_train, tiny_test, tmp_path):
    out, whole = two_rounds
    clone = copy_of(out, tmp_path)
    csv = clone / "rounds.csv"
    csv.write_text(csv.read_text()[:-9])  # killed inside the last field of the last row
    with start(tiny_train, tiny_test, clone, resume=True, rounds=3) as run:
        run.run(progress=False)
    pd.testing.assert_frame_equal(rows(clone), rows(whole))


def test_the_lock_is_released_by_close(two_rounds, tiny_train, tiny_test, tmp_path):
    clone = copy_of(two_rounds[0], tmp_path)
    run = start(tiny_train, tiny_test, clone, resume=True, rounds=2)
    run.close()
    start(tiny_train, tiny_test, clone, resume=True, rounds=2).close()  # a second opener gets in


def test_other_test_data_is_refused(two_rounds, tiny_train, tiny_test, tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    permuted = ImageSet(tiny_test.images_NCHW, tiny_test.labels_N.roll(1))
    with pytest.raises(RunDirectoryError, match="the test set differs from the one it ran on"):
        start(tiny_train, permuted, out, resume=True, rounds=3)


def test_a_config_without_the_test_fingerprint_records_it_on_resume(two_rounds, tiny_train, tiny_test, tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    saved = json.loads((out / "config.json").read_text())
    recorded = saved.pop("test_fingerprint")
    (out / "config.json").write_text(json.dumps(saved))
    start(tiny_train, tiny_test, out, resume=True, rounds=2).close()
    assert json.loads((out / "config.json").read_text())["test_fingerprint"] == recorded


def test_an_emptied_pool_fingerprint_is_refused_not_ignored(two_rounds, tiny_train, tiny_test, tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "pool_fingerprint": {}}))
    with pytest.raises(RunDirectoryError, match="empty pool_fingerprint"):
        start(tiny_train, tiny_test, out, resume=True, rounds=3)


def test_an_acquired_index_swapped_for_another_image_of_its_label_is_refused(two_rounds, tiny_train, tiny_test,
                                                                             tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    path = out / "state" / "raw__random__0.json"
    state = json.loads(path.read_text())
    first = state["rounds"][0]
    acquired = {i for entry in state["rounds"] for i in entry["index"]}
    label = first["label"][0]
    other = next(i for i in range(len(tiny_train)) if int(tiny_train.labels_N[i]) == label and i not in acquired)
    first["index"][0] = other
    path.write_text(json.dumps(state))
    with pytest.raises(RunDirectoryError, match="images differ from the pool's"):
        start(tiny_train, tiny_test, out, resume=True, rounds=3)


def test_a_custom_acquisition_named_by_config_is_never_imported(two_rounds, tiny_train, tiny_test, tmp_path,
                                                                monkeypatch):
    out = copy_of(two_rounds[0], tmp_path)
    marker = tmp_path / "marker"
    (out / "payload.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef fn(probs_NTK):\n    return probs_NTK\n")
    monkeypatch.syspath_prepend(str(out))
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "acquisitions": ["random", "payload:fn"]}))
    with pytest.raises(RunDirectoryError, match=r"names the custom acquisition\(s\) \['payload:fn'\], which this "
                                                "resume was not given"):
        ExperimentConfig.load(out / "config.json")
    with pytest.raises(RunDirectoryError, match="payload:fn"):  # the run's own check reads the file the same way
        start(tiny_train, tiny_test, out, resume=True, rounds=3)
    assert not marker.exists()


def test_many_arms_hold_one_lock_file_at_a_time(tiny_train, tiny_test, tmp_path, monkeypatch):
    from acquire import rundir
    opened, most = [], [0]
    real_init = rundir.RunDir.__init__

    def counting_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        opened.append(self)
        most[0] = max(most[0], sum(not lock._handle.closed for lock in opened))

    monkeypatch.setattr(rundir.RunDir, "__init__", counting_init)
    with start(tiny_train, tiny_test, tmp_path, rounds=1, acquisitions=["random"], repeats=6,
               train=TrainConfig(epochs=1, batch_size=16)) as run:
        run.run(progress=False)
    assert most[0] == 2  # the directory's lock and the lock of the arm being advanced


def test_a_resume_with_nothing_left_to_do_verifies_and_trains_nothing(two_rounds, tiny_train, tiny_test, tmp_path,
                                                                      monkeypatch):
    from acquire.loop import arm as arm_module
    out = copy_of(two_rounds[0], tmp_path)
    shutil.rmtree(out / "state" / "models")
    monkeypatch.setattr(arm_module, "train_classifier", lambda *args: pytest.fail("a finished arm was retrained"))
    before = (out / "rounds.csv").read_text()
    with start(tiny_train, tiny_test, out, resume=True, rounds=2) as run:
        run.run(progress=False)
    assert (out / "rounds.csv").read_text() == before


def test_arms_resumed_at_different_rounds_keep_a_single_process_row_order(two_rounds, tiny_train, tiny_test,
                                                                          tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    (out / "state" / "raw__random__0.json").unlink()  # as when a worker of the other arm saved first, then a stop
    csv = (out / "rounds.csv").read_text().splitlines()
    (out / "rounds.csv").write_text("\n".join(line for line in csv if ",random," not in line) + "\n")
    with start(tiny_train, tiny_test, out, resume=True, rounds=3) as run:
        run.run(progress=False)
    pd.testing.assert_frame_equal(rows(out), rows(two_rounds[1]))


def test_an_emptied_test_fingerprint_is_refused_not_ignored(two_rounds, tiny_train, tiny_test, tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "test_fingerprint": {}}))
    permuted = ImageSet(tiny_test.images_NCHW, tiny_test.labels_N.roll(1))
    with pytest.raises(RunDirectoryError, match="empty test_fingerprint"):
        start(tiny_train, permuted, out, resume=True, rounds=3)


def test_a_run_with_state_whose_config_lost_its_pool_fingerprint_is_refused(two_rounds, tiny_train, tiny_test,
                                                                          tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    saved = json.loads((out / "config.json").read_text())
    del saved["pool_fingerprint"], saved["test_fingerprint"]
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(RunDirectoryError, match="has no pool_fingerprint"):
        start(tiny_train, tiny_test, out, resume=True, rounds=3)


def test_a_state_with_one_round_of_image_digests_removed_is_refused(two_rounds, tiny_train, tiny_test, tmp_path):
    out = copy_of(two_rounds[0], tmp_path)
    shutil.rmtree(out / "state" / "models", ignore_errors=True)
    path = out / "state" / "raw__random__0.json"
    state = json.loads(path.read_text())
    del state["rounds"][-1]["images_sha256"]
    path.write_text(json.dumps(state))
    with pytest.raises(RunDirectoryError, match="sha256 for some rounds but not others"):
        start(tiny_train, tiny_test, out, resume=True, rounds=3)


@pytest.mark.parametrize("edit, message", [({"seed": 1}, "rows made with seed 0, but config.json says seed 1"),
                                           ({"initial": 20}, "started from 0 initial images, but config.json says "
                                                             "initial 20")])
def test_a_config_edited_after_the_run_started_is_refused(two_rounds, tiny_train, tiny_test, tmp_path, edit,
                                                          message):
    out = copy_of(two_rounds[0], tmp_path)
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, **edit}))
    with pytest.raises(RunDirectoryError, match=message):
        start(tiny_train, tiny_test, out, resume=True, rounds=3, **edit)
