"""Both sweep runners refuse bad input with one line on stderr, exit code 2 and nothing on disk changed."""

import json
import shutil
from dataclasses import asdict

import pytest
from acquire.errors import UserError
from tests.studies import test_ratio_sweep

from runners import dada_lowdata, ratio_sweep

# test_ratio_sweep's fixtures: 1,000 real training and 200 test images as an MNIST directory; an untrained GAN
mnist_slice, gan_dir = test_ratio_sweep.mnist_slice, test_ratio_sweep.gan_dir


@pytest.fixture(params=["ratio_sweep", "dada_lowdata"])
def runner(request, gan_dir, mnist_slice):
    """(main, the flags of a tiny sweep, config.json of that sweep, a valid first CSV row) of each runner."""
    if request.param == "ratio_sweep":
        flags = ["--gans", "small_dcgan", "--gan-dir", str(gan_dir), "--sizes", "20", "--ratios", "0,1",
                 "--modes", "replace", "--repeats", "1", "--train-images", "20"]
        config = asdict(ratio_sweep.config_from_args(ratio_sweep.build_parser().parse_args(flags)))
        row = "20,none,none,0.0,0,0,20,0,1,20,0.5,0.5,0.1\n"
        return ratio_sweep.main, flags, config, ",".join(ratio_sweep.COLUMNS) + "\n" + row
    flags = ["--sizes", "2", "--repeats", "1", "--methods", "C", "--phase-one-iterations", "2",
             "--phase-two-steps", "2"]
    config = dada_lowdata.config_from_args(dada_lowdata.build_parser().parse_args(flags)).to_json()
    return dada_lowdata.main, flags, config, ",".join(dada_lowdata.COLUMNS) + "\nC,2,0,0.5,0.5,20,0.1\n"


def snapshot(root):
    """Every path under root with its bytes and modification time (directories: None), but the empty lock file
    that a sweep directory holds anyway."""
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None
            for path in sorted(root.rglob("*")) if path.name != ".lock"}


def saved_sweep(out, config, csv_text):
    out.mkdir()
    (out / "config.json").write_text(json.dumps(config))
    (out / "results.csv").write_text(csv_text)
    return out


def refuses(main, argv, root, capsys) -> str:
    """Run main(argv), check exit code 2 and that nothing under root changed; the one line on stderr."""
    before = snapshot(root)
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert snapshot(root) == before
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("place, message", [
    ("file", "is a regular file, not a directory"),
    ("file/below", "lies under"),
])
def test_out_that_is_or_lies_under_a_regular_file(runner, tmp_path, capsys, place, message):
    main, flags, _, _ = runner
    (tmp_path / "file").write_text("not a directory")
    for resume in ([], ["--resume"]):
        assert message in refuses(main, [*flags, *resume, "--out", str(tmp_path / place)], tmp_path, capsys)


def test_resume_where_no_sweep_was_saved(runner, tmp_path, capsys):
    main, _, _, _ = runner
    (tmp_path / "empty").mkdir()
    err = refuses(main, ["--resume", "--out", str(tmp_path / "empty")], tmp_path, capsys)
    assert "holds no sweep to continue (no config.json)" in err


def test_a_new_sweep_where_one_was_saved(runner, tmp_path, capsys):
    main, flags, config, csv_text = runner
    out = saved_sweep(tmp_path / "out", config, csv_text)
    assert "already holds a sweep (config.json); pass --resume" in refuses(main, [*flags, "--out", str(out)],
                                                                           tmp_path, capsys)


@pytest.mark.parametrize("damage, message", [
    (lambda config: "{not json", "config.json is damaged"),
    (lambda config: json.dumps({**config, "colour": "red"}), "config.json has unknown key(s) colour"),
    (lambda config: json.dumps({k: v for k, v in config.items() if k != "seed"}), "config.json has no seed"),
    (lambda config: json.dumps({**config, "sizes": ["x"]}), "config.json holds invalid settings"),
    (lambda config: json.dumps({**config, "precision": "fp16"}), "config.json holds invalid settings"),
])
def test_resume_with_a_damaged_config(runner, tmp_path, capsys, damage, message):
    main, _, config, csv_text = runner
    out = saved_sweep(tmp_path / "out", config, csv_text)
    (out / "config.json").write_text(damage(config))
    assert message in refuses(main, ["--resume", "--out", str(out)], tmp_path, capsys)


def test_resume_with_a_wrong_csv_header(runner, tmp_path, mnist_slice, capsys):
    main, _, config, _ = runner
    out = saved_sweep(tmp_path / "out", config, "size,accuracy\n20,0.5\n")
    err = refuses(main, ["--resume", "--record-data-digests", "--out", str(out), "--data-dir", str(mnist_slice)],
                  tmp_path, capsys)
    assert "results.csv has columns ['size', 'accuracy'], expected" in err


def test_resume_with_another_setting_names_the_flag(runner, tmp_path, capsys):
    main, _, config, csv_text = runner
    out = saved_sweep(tmp_path / "out", config, csv_text)
    err = refuses(main, ["--resume", "--out", str(out), "--lr", "0.5", "--seed", str(config["seed"])], tmp_path,
                  capsys)
    assert "(lr: saved 0.001, now 0.5): drop --lr; --resume alone continues with the settings saved in" in err


def test_resume_keeps_the_saved_precision_and_a_config_without_one_is_fp32(runner, tmp_path, mnist_slice, capsys):
    main, _, config, csv_text = runner
    out = saved_sweep(tmp_path / "bf16", {**config, "precision": "bf16"}, csv_text)
    err = refuses(main, ["--resume", "--out", str(out), "--precision", "fp32"], tmp_path, capsys)
    assert "(precision: saved 'bf16', now 'fp32'): drop --precision; --resume alone continues" in err
    older = {key: value for key, value in config.items() if key != "precision"}  # saved before precision existed
    out = saved_sweep(tmp_path / "older", older, csv_text)
    err = refuses(main, ["--resume", "--out", str(out), "--precision", "bf16"], tmp_path, capsys)
    assert "(precision: saved 'fp32', now 'bf16'): drop --precision" in err
    assert "records no data_digests" in refuses(main, ["--resume", "--out", str(out), "--data-dir", str(mnist_slice)],
                                                tmp_path, capsys)
    assert main(["--resume", "--record-data-digests", "--out", str(out), "--data-dir", str(mnist_slice),
                 "--no-progress"]) == 0
    # resumed in fp32; config.json now records the precision and, as asked, the data's digests
    saved = json.loads((out / "config.json").read_text())
    assert set(saved.pop("data_digests")) == {"train", "test"}
    assert saved == {**older, "data_dir": str(mnist_slice), "precision": "fp32"}


def unsupported_bf16(precision, device):
    """acquire.precision.check_precision as on hardware without bfloat16 matrix products."""
    if precision == "bf16":
        raise UserError(f"precision bf16 is not supported on {device} (no bfloat16 matrix products); use fp32")


def test_bf16_where_unsupported_is_refused_before_any_work(runner, tmp_path, monkeypatch, capsys):
    main, flags, _, _ = runner
    monkeypatch.setattr(ratio_sweep if main is ratio_sweep.main else dada_lowdata, "check_precision", unsupported_bf16)
    err = refuses(main, [*flags, "--precision", "bf16", "--out", str(tmp_path / "out")], tmp_path, capsys)
    assert "precision bf16 is not supported on" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("program, flags, message", [
    ("ratio_sweep", ["--sizes", "25"], "--sizes must be positive multiples of 10"),
    ("ratio_sweep", ["--sizes", "20,20"], "no duplicates"),
    ("ratio_sweep", ["--ratios", "0,1.5"], "--ratios must lie in [0, 1]"),
    ("ratio_sweep", ["--modes", "swap"], "--modes must be among replace, add"),
    ("ratio_sweep", ["--gans", "nogan"], "unknown GAN family 'nogan'"),
    ("ratio_sweep", ["--repeats", "0"], "--repeats must be >= 1, got 0"),
    ("ratio_sweep", ["--lr", "nan"], "--lr must be a finite number"),
    ("ratio_sweep", ["--lr", "-1e-3"], "--lr must be > 0"),
    ("dada_lowdata", ["--sizes", "0"], "sizes must be >= 1, got 0"),
    ("dada_lowdata", ["--methods", "C,nope"], "unknown method(s) 'nope'"),
    ("dada_lowdata", ["--phase-two-steps", "0"], "steps must be a positive integer"),
])
def test_invalid_values(program, flags, message, tmp_path, gan_dir, capsys):
    main = {"ratio_sweep": ratio_sweep.main, "dada_lowdata": dada_lowdata.main}[program]
    gan_flags = ["--gan-dir", str(gan_dir), "--gans", "small_dcgan"] if program == "ratio_sweep" else []
    assert message in refuses(main, [*gan_flags, *flags, "--out", str(tmp_path / "out")], tmp_path, capsys)


@pytest.mark.parametrize("flags, message", [
    (["--sizes", "20,x"], "argument --sizes: expected comma-separated integers, got '20,x'"),
    (["--sizes", ","], "argument --sizes: expected a comma-separated list"),
    (["--repeats", "two"], "argument --repeats: invalid int value: 'two'"),
])
def test_non_integer_list_items(runner, tmp_path, capsys, flags, message):
    main, _, _, _ = runner
    with pytest.raises(SystemExit) as exit_info:
        main([*flags, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]
    assert not any(tmp_path.iterdir())


def test_ratio_list_items_must_be_numbers(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ratio_sweep.main(["--ratios", "0,half", "--out", str(tmp_path / "out")])
    assert "argument --ratios: expected comma-separated numbers, got '0,half'" in capsys.readouterr().err


def test_resume_without_the_gan_weights_says_where_they_are_needed(tmp_path, gan_dir, capsys):
    flags = ["--gans", "small_dcgan", "--gan-dir", str(gan_dir), "--sizes", "20"]
    config = asdict(ratio_sweep.config_from_args(ratio_sweep.build_parser().parse_args(flags)))
    out = saved_sweep(tmp_path / "out", {**config, "gan_dir": str(tmp_path / "elsewhere")}, "")
    err = refuses(ratio_sweep.main, ["--resume", "--out", str(out)], tmp_path, capsys)
    assert "was run with the weights of small_dcgan recorded in its config.json" in err and "--gan-dir" in err


def test_resume_on_data_with_one_training_label_changed_is_refused(runner, tmp_path, mnist_slice, capsys):
    main, _, config, csv_text = runner
    out = saved_sweep(tmp_path / "sweep", config, csv_text)
    assert main(["--resume", "--record-data-digests", "--out", str(out), "--data-dir", str(mnist_slice),
                 "--no-progress"]) == 0
    capsys.readouterr()
    changed = shutil.copytree(mnist_slice, tmp_path / "changed")
    labels = next(changed.glob("train-labels*"))
    data = bytearray(labels.read_bytes())
    data[8] = (data[8] + 1) % 10  # the first training label (after the IDX header)
    labels.write_bytes(bytes(data))
    err = refuses(main, ["--resume", "--out", str(out), "--data-dir", str(changed)], tmp_path / "sweep", capsys)
    assert "on other data: train differ" in err
