"""runners.train_gans: typed config overrides, skipping GANs already trained with the same settings, resuming a
killed run and extending a finished one through the command line, float16 checkpoints, quality by budget."""

import csv
import dataclasses
import json
import re
import signal

import pytest
import torch
from tests.gans.test_gan_resume import CASES
from tests.acquire.test_precision import needs_bf16
from tests.acquire.test_sweep_refusals import snapshot, unsupported_bf16

from acquire.data import ImageSet
from acquire.files import read_csv_rows
from acquire.networks import new_model
from gans import dcgan, quality, report
from gans.checkpoint import file_sha256, load_checkpoint, load_training_state, save_checkpoint, save_training_state
from gans.fit import is_up_to_date, resume_state
from gans.registry import GanFamily, get_family
from runners import train_gans


def test_overrides_are_typed_and_unknown_fields_refused():
    config = train_gans.family_config("small_dcgan", [("small_dcgan", "epochs", "0.5"), ("dada", "epochs", "9")])
    assert config.epochs == 0.5 and isinstance(config.epochs, float)
    with pytest.raises(ValueError, match="has no field 'nope'"):
        train_gans.family_config("small_dcgan", [("small_dcgan", "nope", "1")])


def test_quick_preset_shortens_every_family_and_set_still_wins():
    for name in train_gans.ALL_GANS:
        full, quick = train_gans.family_config(name, []), train_gans.family_config(name, [], "quick")
        assert quick != full, f"the quick preset leaves {name} at its full budget"
    assert train_gans.family_config("dada", [("dada", "epochs", "0.05")], "quick").epochs == 0.05


@pytest.mark.parametrize("name", ["pggan", "small_dcgan"])
def test_a_checkpoint_with_the_same_config_seed_and_data_is_up_to_date(tmp_path, name):
    family = get_family(name)
    config = family.config_class()
    data = ImageSet(torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.arange(10))
    path = save_checkpoint(tmp_path / f"{name}.pt", name, family.build(config), config, data, extra={"seed": 0})
    assert is_up_to_date(path, config, data, seed=0)
    assert not is_up_to_date(path, config, data, seed=1)
    assert not is_up_to_date(path, config, data, seed=0, precision="bf16")  # no precision: fp32
    other = ImageSet(torch.ones(10, 1, 28, 28, dtype=torch.uint8), torch.arange(10))
    assert not is_up_to_date(path, config, other, seed=0)
    field = next(f.name for f in dataclasses.fields(config) if f.name in ("epochs", "images_per_stage"))
    changed = dataclasses.replace(config, **{field: getattr(config, field) * 2})
    assert not is_up_to_date(path, changed, data, seed=0)


# ------------------------------------------------------------------ --set parsing

def test_set_parses_tuples_per_element_and_bools():
    config = train_gans.family_config("pggan", [("pggan", "channels", "64,64,32,16"), ("pggan", "betas", "0,0.99"),
                                                ("pggan", "batch_sizes", "8, 8,16,32")])
    assert config.channels == (64, 64, 32, 16) and all(isinstance(c, int) for c in config.channels)
    assert config.betas == (0.0, 0.99) and all(isinstance(b, float) for b in config.betas)
    assert config.batch_sizes == (8, 8, 16, 32)

    @dataclasses.dataclass
    class Toy:
        flag: bool = False
        sizes: tuple[int, float] = (1, 2.0)

    toy = GanFamily("toy", Toy, build=None, train=None)
    assert [toy.parse_field("flag", text) for text in ("true", "False", "1", "0")] == [True, False, True, False]
    assert toy.parse_field("sizes", "3,4") == (3, 4.0)
    with pytest.raises(ValueError, match=r"toy.flag='yes': expected true/false/1/0"):
        toy.parse_field("flag", "yes")
    with pytest.raises(ValueError, match="expected 2 comma-separated"):
        toy.parse_field("sizes", "3")


@pytest.mark.parametrize("override, expected", [
    (("pggan", "channels", "64,x,32,16"), r"pggan.channels='64,x,32,16': expected comma-separated integers"),
    (("pggan", "betas", "0"), r"pggan.betas='0': expected 2 comma-separated numbers"),
    (("small_dcgan", "epochs", "lots"), r"small_dcgan.epochs='lots': expected a number"),
    (("small_dcgan", "batch_size", "6.5"), r"small_dcgan.batch_size='6.5': expected an integer"),
    (("pgan", "epochs", "1"), r"--set pgan.epochs=1: unknown GAN family 'pgan'"),
    (("dada", "nope", "1"), r"--set dada.nope: dada has no field 'nope'"),
])
def test_bad_set_values_are_one_line_errors_naming_key_and_type(override, expected):
    with pytest.raises(ValueError, match=expected) as error:
        train_gans.family_config("small_dcgan", [override])
    assert "\n" not in str(error.value)


def test_bad_set_exits_2_with_one_line(capsys):
    assert train_gans.main(["--gans", "pggan", "--set", "pggan.channels=64,64,x,16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pggan.channels" in err and "integers" in err and "Traceback" not in err


# ------------------------------------------------------------------ resuming through the command line

TINY_DCGAN = [x for field, value in [("latent_dim", 8), ("embed_dim", 4), ("g_channels", 8), ("d_channels", 8),
                                     ("batch_size", 50), ("epochs", 0.5)]  # 4 steps of 50 on 400 images
              for x in ("--set", f"small_dcgan.{field}={value}")]


@pytest.fixture
def tiny_mnist(monkeypatch, tiny_train, tiny_test):
    """train_gans loads the tiny slices instead of all of MNIST."""
    monkeypatch.setattr(train_gans, "load_train_test", lambda data_dir: (tiny_train, tiny_test, "mnist"))


def run_main(out, *extra) -> int:
    return train_gans.main(["--gans", "small_dcgan", *TINY_DCGAN, "--no-quality", "--checkpoint-minutes", "0",
                            "--out", str(out), *extra])


def sidecar(out) -> dict:
    return json.loads((out / "small_dcgan.json").read_text())


def signal_at_step(monkeypatch, step: int, signum=signal.SIGTERM):
    """Sends `signum` to this process during the step'th DCGAN step (as `kill` would)."""
    original, calls = dcgan.adversarial_step, []

    def step_then_signal(*args):
        calls.append(1)
        out = original(*args)
        if len(calls) == step:
            signal.raise_signal(signum)
        return out

    monkeypatch.setattr(dcgan, "adversarial_step", step_then_signal)
    return lambda: monkeypatch.setattr(dcgan, "adversarial_step", original)


def test_a_killed_run_continues_with_the_same_command_and_a_larger_budget_extends_it(tmp_path, tiny_mnist,
                                                                                       monkeypatch, capsys):
    assert run_main(tmp_path / "straight") == 0
    restore = signal_at_step(monkeypatch, 2)
    assert run_main(tmp_path / "run") == 130
    restore()
    assert "rerun the same command to continue" in capsys.readouterr().err
    assert load_training_state(tmp_path / "run" / "small_dcgan.train.pt")["steps"] == 2
    assert not (tmp_path / "run" / "small_dcgan.pt").exists()
    assert run_main(tmp_path / "run") == 0
    assert "continuing" in capsys.readouterr().err
    straight, resumed = sidecar(tmp_path / "straight"), sidecar(tmp_path / "run")
    assert resumed["weights_sha256"] == straight["weights_sha256"]  # bit-identical weights
    assert (resumed["images_shown"], resumed["train_steps"], resumed["sessions"]) == (200, 4, 2)
    assert run_main(tmp_path / "run") == 0 and "up to date" in capsys.readouterr().err

    assert run_main(tmp_path / "run", "--set", "small_dcgan.epochs=1") == 0  # train longer: continues
    assert run_main(tmp_path / "straight_long", "--set", "small_dcgan.epochs=1") == 0
    longer, straight_long = sidecar(tmp_path / "run"), sidecar(tmp_path / "straight_long")
    assert longer["weights_sha256"] == straight_long["weights_sha256"]
    assert (longer["images_shown"], longer["train_steps"], longer["sessions"]) == (400, 8, 3)
    assert longer["train_seconds"] >= resumed["train_seconds"]


def test_a_state_of_another_run_or_a_larger_budget_is_refused_in_one_line(tmp_path, tiny_mnist, monkeypatch, capsys):
    restore = signal_at_step(monkeypatch, 2, signal.SIGINT)
    assert run_main(tmp_path, "--set", "small_dcgan.epochs=1") == 130
    restore()
    capsys.readouterr()
    for extra, expected in ((["--seed", "1"], "seed (saved 0, asked 1)"),
                            (["--set", "small_dcgan.g_channels=16"], "g_channels (saved 8, asked 16)"),
                            (["--train-size", "200"], "training data"),
                            ([], "ask for epochs >= 1.0")):  # TINY_DCGAN's epochs=0.5 < the state's 1.0
        assert run_main(tmp_path, *extra) == 2
        err = capsys.readouterr().err
        assert expected in err and "--force" in err and err.count("\n") == 1, err
    assert run_main(tmp_path, "--seed", "1", "--force") == 0
    assert load_training_state(tmp_path / "small_dcgan.train.pt")["seed"] == 1


@needs_bf16
def test_bf16_training_is_recorded_and_another_precision_is_refused_writing_nothing(tmp_path, tiny_mnist, capsys):
    assert run_main(tmp_path, "--precision", "bf16") == 0
    state = load_training_state(tmp_path / "small_dcgan.train.pt")
    assert sidecar(tmp_path)["precision"] == state["precision"] == "bf16"
    stored = torch.load(tmp_path / "small_dcgan.pt", weights_only=True)
    assert all(value.dtype == torch.float32 for value in stored.values() if value.is_floating_point())
    assert all(value.dtype == torch.float32 for value in state["loop"]["generator"].values()
               if value.is_floating_point())
    assert run_main(tmp_path, "--precision", "bf16") == 0 and "up to date" in capsys.readouterr().err
    before = snapshot(tmp_path)
    assert run_main(tmp_path) == 2  # fp32, the default
    err = capsys.readouterr().err
    assert "differing in precision (saved bf16, asked fp32)" in err and "--force" in err and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before


@needs_bf16
@pytest.mark.parametrize("name", list(CASES))
def test_every_family_trains_its_steps_in_bf16_keeping_float32_weights(gan_images, name, one_thread):
    config = CASES[name][0]
    fp32, bf16 = (get_family(name).train(gan_images, config, "cpu", torch.Generator().manual_seed(7), progress=False,
                                         precision=precision) for precision in ("fp32", "bf16"))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in bf16.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(fp32.parameters(), bf16.parameters()))  # computed in bfloat16


def test_bf16_where_unsupported_is_refused_before_any_work(tmp_path, tiny_mnist, monkeypatch, capsys):
    monkeypatch.setattr(train_gans, "check_precision", unsupported_bf16)
    assert run_main(tmp_path / "out", "--precision", "bf16") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: precision bf16 is not supported on") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_state_and_a_sidecar_saved_without_precision_are_fp32(tmp_path, tiny_mnist, monkeypatch, capsys):
    restore = signal_at_step(monkeypatch, 2)
    assert run_main(tmp_path) == 130
    restore()
    state_path = tmp_path / "small_dcgan.train.pt"
    state = load_training_state(state_path)
    del state["precision"]  # as saved before precision was recorded
    save_training_state(state_path, state)
    identity = {**{key: state[key] for key in ("gan", "config", "seed", "training_data_sha256")}, "precision": "bf16"}
    with pytest.raises(ValueError, match=re.escape("differing in precision (saved fp32, asked bf16)")):
        resume_state(state_path, identity, get_family("small_dcgan"))
    assert run_main(tmp_path) == 0 and "continuing" in capsys.readouterr().err
    meta = sidecar(tmp_path)
    del meta["precision"]
    (tmp_path / "small_dcgan.json").write_text(json.dumps(meta))
    assert run_main(tmp_path) == 0 and "up to date" in capsys.readouterr().err


def test_half_stores_float16_weights_covered_by_the_sha(tmp_path, tiny_mnist, capsys):
    assert run_main(tmp_path) == 0
    full, _ = load_checkpoint(tmp_path / "small_dcgan.pt", "small_dcgan")
    assert run_main(tmp_path, "--half") == 0 and "float16" in capsys.readouterr().err
    meta = sidecar(tmp_path)
    assert meta["weights_dtype"] == "float16" and meta["weights_sha256"] == file_sha256(tmp_path / "small_dcgan.pt")
    assert meta["images_shown"] == 200  # the sidecar's records survive the conversion
    stored = torch.load(tmp_path / "small_dcgan.pt", weights_only=True)
    assert stored["project.weight"].dtype == torch.float16
    half, _ = load_checkpoint(tmp_path / "small_dcgan.pt", "small_dcgan")
    for key, value in full.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert half.state_dict()[key].dtype == value.dtype and torch.equal(half.state_dict()[key], expected)
    assert run_main(tmp_path) == 0 and sidecar(tmp_path)["weights_dtype"] == "float16"  # kept as it is


def test_quality_by_budget_rows_survive_an_interrupt_and_force_restarts_them(tmp_path, tiny_mnist, monkeypatch):
    monkeypatch.setattr(quality, "train_reference_classifier", lambda train, config, device: new_model(0, device))
    measured = []

    def fake_measure(samples, reference, test, config, device):
        measured.append(len(samples))
        return {"label_agreement": 0.5, "frechet_distance": 1.0, "cas_accuracy": 0.25, "cas_balanced_accuracy": 0.25}

    monkeypatch.setattr(quality, "measure", fake_measure)
    restore = signal_at_step(monkeypatch, 3)
    assert run_main(tmp_path, "--quality-every", "100", "--quality-samples", "2") == 130
    restore()
    assert budgets(tmp_path) == [100]
    assert run_main(tmp_path, "--quality-every", "100", "--quality-samples", "2") == 0
    assert budgets(tmp_path) == [100, 200] and (tmp_path / "quality_by_budget.png").stat().st_size > 0
    assert measured == [20, 20]
    assert run_main(tmp_path, "--quality-every", "100", "--quality-samples", "2", "--force",
                    "--set", "small_dcgan.epochs=0.25") == 0
    assert budgets(tmp_path) == [100]  # a run from scratch drops the old run's rows


def budgets(out) -> list[int]:
    with open(out / "quality_by_budget.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == report.BUDGET_COLUMNS
    return [int(row["images_shown"]) for row in rows]


class FakeJudge:
    """Quality measures without training any CNN: 1.0 for the real images, 0.5 for every GAN."""

    train, device, num_classes = ImageSet(torch.zeros(3, 1, 28, 28, dtype=torch.uint8), torch.arange(3)), "cpu", 3
    test = ImageSet(torch.full((3, 1, 28, 28), 9, dtype=torch.uint8), torch.arange(3))

    def samples(self, generator, name):
        return ImageSet(torch.full((6, 1, 28, 28), 3, dtype=torch.uint8), torch.arange(3).repeat(2))

    def real_measures(self):
        return dict.fromkeys(report.MEASURES, 1.0)

    def measures(self, generator, name):
        return dict.fromkeys(report.MEASURES, 0.5)


def test_quality_csv_records_each_checkpoints_budget(tmp_path, tiny_mnist, monkeypatch):
    assert run_main(tmp_path) == 0

    path = report.quality_report(["small_dcgan"], FakeJudge(), tmp_path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == report.QUALITY_COLUMNS and rows[1]["images_shown"] == "200"
    # memorisation: samples at distance 3/255·28 from the (black) training images, held-out ones at 9/255·28
    assert float(rows[1]["near_copy_share"]) == 1.0 and rows[0]["near_copy_share"] == ""
    assert (tmp_path / "small_dcgan_memorisation.png").exists()


def test_the_quality_report_keeps_the_rows_of_gans_measured_in_earlier_runs(tmp_path, tiny_mnist):
    assert run_main(tmp_path) == 0

    report.quality_report(["small_dcgan"], FakeJudge(), tmp_path)
    # a later run that trains another GAN into the same directory measures only that one
    (tmp_path / "large_dcgan.pt").write_bytes((tmp_path / "small_dcgan.pt").read_bytes())
    (tmp_path / "large_dcgan.json").write_text((tmp_path / "small_dcgan.json").read_text()
                                               .replace('"small_dcgan"', '"large_dcgan"'))
    path = report.quality_report(["large_dcgan"], FakeJudge(), tmp_path)
    assert [row["gan"] for row in read_csv_rows(path, report.QUALITY_COLUMNS)] == [
        quality.REAL_ROW, "small_dcgan", "large_dcgan"]


# ------------------------------------------------------------------ the data's shape and classes

def colour_set(n_per_class: int, classes: int, height: int, width: int) -> ImageSet:
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_per_class * classes, 3, height, width), generator=rng, dtype=torch.uint8)
    return ImageSet(images, torch.arange(classes).repeat(n_per_class))


def test_gans_are_built_for_the_datas_shape_and_classes_and_the_sidecar_records_them(tmp_path, monkeypatch):
    train = colour_set(20, 4, 48, 48)
    monkeypatch.setattr(train_gans, "load_train_test", lambda data_dir: (train, colour_set(5, 4, 48, 48), "toy"))
    assert run_main(tmp_path) == 0
    config = sidecar(tmp_path)["config"]
    assert (config["image_channels"], config["image_height"], config["image_width"], config["num_classes"]) == \
        (3, 48, 48, 4)
    generator, _ = load_checkpoint(tmp_path / "small_dcgan.pt", "small_dcgan")
    assert generator.sample(torch.arange(4), torch.Generator()).shape == (4, 3, 48, 48)


def test_a_set_that_disagrees_with_the_data_is_refused_before_anything_is_written(tmp_path, tiny_mnist, capsys):
    assert run_main(tmp_path / "out", "--set", "small_dcgan.num_classes=4") == 2
    error = capsys.readouterr().err
    assert "--set small_dcgan.num_classes=4 disagrees with the data (1x28x28 images of 10 classes)" in error
    assert not (tmp_path / "out").exists()
    assert run_main(tmp_path / "ok", "--set", "small_dcgan.num_classes=10") == 0  # agreeing is allowed


def test_an_empty_gans_list_is_refused(tmp_path, tiny_mnist, capsys):
    assert train_gans.main(["--gans", "", "--out", str(tmp_path / "out")]) == 2
    assert "--gans names no GAN" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", [["--checkpoint-minutes", "nan"], ["--set", "small_dcgan.lr=inf"],
                                  ["--set", "small_dcgan.epochs=nan"]])
def test_nan_and_inf_settings_are_refused_before_anything_is_written(tmp_path, tiny_mnist, capsys, flag):
    assert run_main(tmp_path / "out", *flag) == 2
    assert "finite" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_non_square_data_with_a_quality_report_is_refused_before_training(tmp_path, monkeypatch, capsys):
    train = colour_set(4, 2, 20, 36)
    monkeypatch.setattr(train_gans, "load_train_test", lambda data_dir: (train, train, "toy"))
    assert train_gans.main(["--gans", "small_dcgan", *TINY_DCGAN, "--out", str(tmp_path / "out")]) == 2
    assert "needs square images, and these are 20x36: add --no-quality" in capsys.readouterr().err
    assert not (tmp_path / "out" / "small_dcgan.pt").exists()


def test_a_finished_checkpoint_with_a_flipped_byte_is_reported_not_up_to_date(tmp_path, tiny_mnist, capsys):
    assert run_main(tmp_path) == 0
    path = tmp_path / "small_dcgan.pt"
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    capsys.readouterr()
    assert run_main(tmp_path) == 0
    error = capsys.readouterr().err
    assert "does not match the sha256 in its sidecar" in error and "up to date" not in error
    assert path.read_bytes() == good  # rebuilt from the finished training state


def test_a_labelled_subset_and_the_recipe_are_recorded_and_the_subset_can_be_proven_unseen(tmp_path, tiny_mnist,
                                                                                          tiny_train):
    from gans.subset import read_subset_record, unseen_indices
    assert run_main(tmp_path, "--train-size", "100", "--recipe", "lowdata", "--set", "recipe.ema_kimg=0.2") == 0
    meta = sidecar(tmp_path)
    assert meta["training_images"] == 100 and meta["recipe"]["ema_kimg"] == 0.2
    record = read_subset_record(tmp_path / "subset.json")
    assert meta["subset"] == record and record["per_class"] == 10
    assert len(unseen_indices(tiny_train, record)) == len(tiny_train) - 100
    assert run_main(tmp_path, "--train-size", "100", "--recipe", "lowdata", "--set", "recipe.ema_kimg=0.2") == 0


@pytest.mark.parametrize("flags, message", [
    (["--set", "recipe.ema_kimg=1"], "add --recipe lowdata"),
    (["--recipe", "lowdata", "--set", "recipe.speed=1"], "recipe has no field 'speed'"),
    (["--train-size", "105"], "not a multiple of the 10 classes"),
])
def test_bad_recipe_or_subset_flags_are_one_line_errors_writing_nothing(tmp_path, tiny_mnist, capsys, flags, message):
    assert run_main(tmp_path / "out", *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "small_dcgan.pt").exists()
