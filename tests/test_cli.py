"""The ganmodels CLI: info and sample on a model file; the default model resolves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganmodels.anchors import generator_fingerprint
from ganmodels.cli import main
from ganmodels.directions import load_directions
from ganmodels.generate import parse_seeds


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    with pytest.raises(ValueError, match="give whole numbers and ranges"):
        parse_seeds("abc")
    with pytest.raises(ValueError, match="bad seed range '5-3'"):
        parse_seeds("5-3")


def test_sample_writes_valid_png(tmp_path, tiny_model_file):
    out = tmp_path / "grid.png"
    rc = main(
        [
            "--quiet",
            "sample",
            str(tiny_model_file),
            "--seeds",
            "0-5",
            "--truncation",
            "0.7",
            "--cols",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    img = Image.open(out)
    img.load()
    assert img.size == (3 * 16, 2 * 16)
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert arr.std() > 1  # not a blank image
    # same seeds -> same pixels
    out2 = tmp_path / "grid2.png"
    main(["--quiet", "sample", str(tiny_model_file), "--seeds", "0-5", "--cols", "3", "--out", str(out2)])
    assert np.array_equal(arr, np.asarray(Image.open(out2)))


def test_info_json(tiny_model_file, capsys):
    assert main(["info", str(tiny_model_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resolution"] == 16
    assert info["num_ws"] == 6
    assert info["directions"]["first"]["layers"] == [0, 3]


def test_bad_model_file_gives_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a model")
    assert main(["info", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err


def _png_of_sample(tmp_path, model_file):
    out = tmp_path / "one.png"
    assert main(["--quiet", "sample", str(model_file), "--seeds", "7", "--out", str(out)]) == 0
    return out


def test_invert_edit_directions_and_encoder_commands(tmp_path, tiny_model_file, capsys):
    from ganmodels.latents import load_latent
    from ganmodels.modelfile import load_model

    target = _png_of_sample(tmp_path, tiny_model_file)
    latent = tmp_path / "latent.npz"
    rec = tmp_path / "rec.png"
    assert (
        main(
            [
                "--quiet",
                "invert",
                str(target),
                "--model",
                str(tiny_model_file),
                "--steps",
                "60",
                "--out",
                str(latent),
                "--png",
                str(rec),
            ]
        )
        == 0
    )
    ws, noise, info = load_latent(latent)
    assert ws.shape == (1, 6, 32) and noise is not None and info["psnr"] > 20
    a = np.asarray(Image.open(target), dtype=np.float32)
    b = np.asarray(Image.open(rec), dtype=np.float32)
    assert 10 * np.log10(255**2 / ((a - b) ** 2).mean()) > 20

    e0, e1 = tmp_path / "e0.png", tmp_path / "e1.png"
    assert (
        main(
            [
                "--quiet",
                "edit",
                str(latent),
                "--model",
                str(tiny_model_file),
                "--direction",
                "sefa:0=0",
                "--out",
                str(e0),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--quiet",
                "edit",
                str(latent),
                "--model",
                str(tiny_model_file),
                "--direction",
                "sefa:0@0-2=3",
                "--direction",
                "first=1",
                "--out",
                str(e1),
            ]
        )
        == 0
    )
    assert np.array_equal(np.asarray(Image.open(e0)), np.asarray(Image.open(rec)))  # strength 0 = identity
    assert not np.array_equal(np.asarray(Image.open(e1)), np.asarray(Image.open(rec)))
    assert main(["--quiet", "edit", str(latent), "--model", str(tiny_model_file), "--direction", "nope=1"]) == 2
    assert main(["--quiet", "edit", str(latent), "--direction", "sefa:999=1"]) == 2
    assert "direction index '999' must be a number from 0 to 31" in capsys.readouterr().err
    # Without --model, edit renders with the model that made the latent (not the shipped one), as invert did.
    e2 = tmp_path / "e2.png"
    assert main(["--quiet", "edit", str(latent), "--direction", "sefa:0=0", "--out", str(e2), "--threads", "1"]) == 0
    assert np.array_equal(np.asarray(Image.open(e2)), np.asarray(Image.open(rec)))
    assert main(["edit", str(latent), "--out", str(tmp_path / "e.npz")]) == 2  # not a picture
    assert "the output must be a picture" in capsys.readouterr().err

    with_dirs = tmp_path / "with_dirs.safetensors"
    side = tmp_path / "dirs.safetensors"
    assert (
        main(
            [
                "--quiet",
                "directions",
                str(tiny_model_file),
                "--method",
                "ganspace",
                "--k",
                "3",
                "--out",
                str(side),
                "--into-model",
                str(with_dirs),
            ]
        )
        == 0
    )
    assert set(load_model(with_dirs).directions) == {"first", "pca0", "pca1", "pca2"}
    plain = tmp_path / "plain.safetensors"
    described = tmp_path / "described.safetensors"
    two = ["--quiet", "directions", str(tiny_model_file), "--k", "2"]
    assert main([*two, "--describe", "0", "--out", str(plain)]) == 0
    assert main([*two, "--out", str(described)]) == 0
    for name, d in load_directions(described).items():  # what each does, measured, in front of the description
        before = load_directions(plain)[name].description
        assert d.description.endswith(f" ({before})") and len(d.description) > len(before) + 10

    enc = tmp_path / "enc.safetensors"
    run = ["--batch", "4", "--out", str(enc), "--run-dir", str(tmp_path / "enc-run"), "--threads", "1"]
    pkl = tmp_path / "other.pkl"
    pkl.write_bytes(b"\x80\x04N.")  # any checkpoint that is not a native model file
    assert main(["--quiet", "train-encoder", str(pkl), "--steps", "2", *run]) == 2  # refused before training
    assert f"ganmodels convert {pkl} other.safetensors" in capsys.readouterr().err and not enc.exists()
    assert main(["--quiet", "train-encoder", str(with_dirs), "--steps", "2", *run]) == 0
    assert load_model(enc).card["encoder"]["steps"] == 2
    assert main(["--quiet", "train-encoder", str(with_dirs), "--steps", "3", *run]) == 0  # resumes at step 2
    assert "resumed" in capsys.readouterr().out
    m = load_model(enc)
    assert m.card["encoder"]["steps"] == 3
    assert m.card["encoder"]["generator"] == generator_fingerprint(m.G)  # the generator it was trained for
    assert m.components["encoder"]["kind"] == "e4e-lite" and set(m.directions) == set(load_model(with_dirs).directions)
    assert m.components["encoder"]["storage"] == "int8-rows"  # the default; --no-int8 keeps the model's precision
    # a new run starting from that model's encoder: the card counts the steps it had already had
    more = tmp_path / "enc-more.safetensors"
    run_more = ["--batch", "4", "--out", str(more), "--run-dir", str(tmp_path / "enc-run2"), "--threads", "1"]
    assert main(["--quiet", "train-encoder", str(enc), "--steps", "2", *run_more]) == 0
    assert load_model(more).card["encoder"]["steps"] == 3 + 2
    assert main(["--quiet", "train-encoder", str(enc), "--steps", "4", *run_more]) == 0  # resumed: still counted
    assert load_model(more).card["encoder"]["steps"] == 3 + 4
    full = tmp_path / "enc-full.safetensors"
    run_full = [*run[:2], "--out", str(full), *run[4:]]
    assert main(["--quiet", "train-encoder", str(with_dirs), "--steps", "3", "--no-int8", *run_full]) == 0
    assert "storage" not in load_model(full).components["encoder"] and full.stat().st_size > enc.stat().st_size
    assert (
        main(
            [
                "--quiet",
                "invert",
                str(target),
                "--model",
                str(enc),
                "--encoder",
                "--steps",
                "5",
                "--out",
                str(tmp_path / "l2.npz"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--quiet",
                "invert",
                str(target),
                "--model",
                str(tiny_model_file),
                "--encoder",
                "--steps",
                "5",
                "--out",
                str(tmp_path / "l3.npz"),
            ]
        )
        == 2
    )  # no encoder in that file: clear error


def test_dataset_build_and_train_and_export(tmp_path, capsys):
    from ganmodels.modelfile import load_model

    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(src / f"{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG garbage")
    data = tmp_path / "data.npz"
    assert main(["--quiet", "dataset", "build", str(src), "--res", "32", "--out", str(data)]) == 0
    run = tmp_path / "run"
    args = [
        "--quiet",
        "train",
        str(data),
        "--out",
        str(run),
        "--kimg",
        "0.016",
        "--batch",
        "4",
        "--cbase",
        "128",
        "--cmax",
        "16",
        "--z-dim",
        "16",
        "--w-dim",
        "16",
        "--snap-kimg",
        "0.008",
        "--precision",
        "fp32",
    ]
    with pytest.raises(SystemExit):  # argparse: unknown transform
        main([*args, "--augment-policy", "color,spin"])
    assert main([*args, "--xflip", "--augment", "ada", "--augment-policy", "color,translation"]) == 0
    assert (run / "fakes-latest.png").exists() and (run / "model-latest.safetensors").exists()
    snapshots = sorted(run.glob("snapshot-*"))
    assert main(args) == 2  # a new run in the old one's folder would mix and prune their snapshots
    assert f"already holds a training run: continue it with --resume {run}" in capsys.readouterr().err
    assert sorted(run.glob("snapshot-*")) == snapshots
    assert main([*args[:4], str(src), *args[5:]]) == 2  # nor into a folder of other files
    assert "is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --batch must be at least 1
        main([*args, "--batch", "0"])
    options = json.loads((run / "training_options.json").read_text())
    assert options["xflip"] is True and options["config"]["augment_policy"] == ["color", "translation"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["kimg"] for m in metrics] == [0.008, 0.016]  # one row per snapshot
    for m in metrics:
        assert m["SWDx1e3_avg"] > 0 and 0 < m["pair_l1_fake"] < 1 and 0 < m["pair_l1_real"] < 1
        assert 0 < m["diversity_ratio"] < 10
    # A resumed run keeps its options unless --augment-policy / --diversity / --d-recon / --lr / --ema-kimg / --gamma
    # change them.
    assert main([*args[:-2], "--resume", str(run), "--kimg", "0.024", "--diversity", "-1"]) == 2
    assert "diversity_weight must be >= 0" in capsys.readouterr().err
    assert main([*args[:-2], "--resume", str(run), "--kimg", "0.024", "--diversity", "2", "--d-recon", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "changed diversity_weight to 2.0, d_recon_weight to 0.5" in out
    assert "note: --batch, --cbase, --cmax, --z-dim, --w-dim ignored: a resumed run keeps what it started with" in out
    options = json.loads((run / "training_options.json").read_text())
    assert options["xflip"] is True  # kept without --xflip
    assert options["config"]["diversity_weight"] == 2.0
    assert options["config"]["augment_policy"] == ["color", "translation"]  # not given: unchanged
    from ganmodels.training import latest_checkpoint, load_checkpoint

    assert load_checkpoint(latest_checkpoint(run)).config.diversity_weight == 2.0
    assert load_checkpoint(latest_checkpoint(run)).R is not None  # D's reconstruction head, saved with the run
    changed = ["--lr", "0.001", "--ema-kimg", "0.5", "--gamma", "0.05", "--g-recon", "1", "--g-recon-code-lr", "0.02"]
    changed += ["--g-recon-batch", "8", "--g-recon-adv", "0.5"]
    assert main([*args[:-2], "--resume", str(run), "--kimg", "0.028", *changed]) == 0
    out = capsys.readouterr().out
    assert (
        "changed g_recon_weight to 1.0, g_recon_code_lr to 0.02, g_recon_batch to 8, g_recon_adv_weight to 0.5, "
        "g_lr to 0.001, d_lr to 0.001, ema_kimg to 0.5, r1_gamma to 0.05" in out
    )
    lowered = load_checkpoint(latest_checkpoint(run))
    assert lowered.config.g_recon_code_lr == 0.02 and lowered.config.g_recon_batch == 8
    assert lowered.config.g_recon_adv_weight == 0.5
    from ganmodels.dataset import load_images

    assert lowered.codes is not None and lowered.codes.shape == (len(load_images(data)), 16)  # one W per picture
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "rebuild_psnr" not in rows[0]  # how well G_ema draws the data from the codes, once the run has them:
    from ganmodels.dataset import ImageDataset
    from ganmodels.losses import psnr

    pictures = ImageDataset.from_path(data)
    with torch.no_grad():
        ws = lowered.codes[:, None].expand(-1, lowered.G_ema.num_ws, -1)
        drawn = lowered.G_ema.synthesis(ws, noise_mode="const").float()
    assert rows[-1]["rebuild_psnr"] == pytest.approx(float(psnr(drawn, pictures.batch(range(len(pictures)))).mean()))
    assert (lowered.config.g_lr, lowered.config.ema_kimg, lowered.config.r1_gamma) == (0.001, 0.5, 0.05)
    assert lowered.config.diversity_weight == 2.0  # changed before, not now
    assert lowered.opt_G.param_groups[0]["lr"] == 0.001  # no path-length regularisation: no lazy factor
    assert main([*args[:-2], "--resume", str(run), "--kimg", "0.032", "--ema-kimg", "0"]) == 2
    assert "ema_kimg must be > 0" in capsys.readouterr().err
    # A compact snapshot file (as committed under resources/training/) resumes too, with its data options.
    from ganmodels.training import save_checkpoint

    packed = tmp_path / "packed" / "run-snapshot.safetensors"
    packed.parent.mkdir()
    save_checkpoint(load_checkpoint(latest_checkpoint(run)), packed, extra={"xflip": True}, compact=True)
    run2 = tmp_path / "run2"
    assert main([*args[:-2], "--resume", str(packed), "--out", str(run2), "--kimg", "0.032"]) == 0
    assert json.loads((run2 / "training_options.json").read_text())["xflip"] is True
    assert load_checkpoint(latest_checkpoint(run2)).cur_nimg == 32
    out = tmp_path / "exported.safetensors"
    assert main(["--quiet", "export", str(run), "--out", str(out), "--fp16"]) == 0
    m = load_model(out)
    assert m.card["kimg"] == 0.028 and "discriminator" in m.components
    assert main(["--quiet", "export", str(run), "--out", str(tmp_path / "model.png")]) == 2
    assert "the output must be a model file (.safetensors)" in capsys.readouterr().err
    assert main(["--quiet", "convert", str(out), str(out)]) == 2  # never over its own input
    assert "is also the input" in capsys.readouterr().err and load_model(out).card["kimg"] == 0.028
    assert main(["--quiet", "info", str(latest_checkpoint(run))]) == 2
    assert "use 'ganmodels export' for a training snapshot" in capsys.readouterr().err
    # G's rebuilding codes can start from a model's encoder (a new run here; the same goes for a resumed one).
    from ganmodels.components import load_encoder, resave_with
    from ganmodels.dataset import ImageDataset
    from ganmodels.encoder import ENCODER_KIND, new_encoder
    from ganmodels.training import encoder_codes

    encoder = new_encoder(m.G)
    with_encoder = resave_with(
        m,
        tmp_path / "with-encoder.safetensors",
        add={"encoder": (ENCODER_KIND, encoder.config.to_dict(), encoder.state_dict())},
    )
    fresh = [*args[:3], "--out", str(tmp_path / "run3"), *args[5:], "--g-recon", "1"]
    assert main([*fresh, "--g-recon-init", str(out)]) == 2
    assert "exported.safetensors has no encoder to start the codes from" in capsys.readouterr().err
    assert main([*fresh[:-2], "--g-recon-init", str(with_encoder)]) == 2
    assert "give a --g-recon weight too" in capsys.readouterr().err
    assert main([*fresh[:-2], "--g-recon-batch", "8", "--g-recon-adv", "1"]) == 2
    assert "--g-recon-batch, --g-recon-adv tune --g-recon: give a --g-recon weight too" in capsys.readouterr().err
    assert main([*fresh, "--g-recon-init", str(with_encoder), "--g-recon-code-lr", "0.005"]) == 0
    assert "codes of G's rebuilding start from the encoder of with-encoder.safetensors" in capsys.readouterr().out
    guessed = encoder_codes(load_encoder(load_model(with_encoder)), ImageDataset.from_path(data))
    codes = load_checkpoint(latest_checkpoint(tmp_path / "run3")).codes
    assert codes.shape == guessed.shape and (codes - guessed).abs().max() < 0.05  # 4 steps from the guesses
    assert load_checkpoint(latest_checkpoint(tmp_path / "run3")).config.g_recon_code_lr == 0.005
    # Resuming on pictures of another size says so (instead of a matrix error)
    data16 = tmp_path / "data16.npz"
    assert main(["--quiet", "dataset", "build", str(src), "--res", "32", "--out", str(data16)]) == 0
    np.savez(data16, images=np.zeros([4, 16, 16, 3], np.uint8))
    assert main([*args[:2], str(data16), *args[3:-2], "--resume", str(run), "--kimg", "0.04"]) == 2
    assert "is a 32 px run; " in capsys.readouterr().err


def test_ctrl_c_stops_training_between_steps_with_a_snapshot(tmp_path, monkeypatch, capsys):
    import os
    import signal

    from ganmodels.training import latest_checkpoint, load_checkpoint
    from ganmodels.trainreport import SnapshotReporter

    data = tmp_path / "d.npz"
    np.savez(data, images=np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))
    log = SnapshotReporter.log

    def log_then_interrupt(self, prog):
        log(self, prog)
        if prog.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl+C during step 3

    monkeypatch.setattr(SnapshotReporter, "log", log_then_interrupt)
    run = tmp_path / "run"
    args = ["--quiet", "train", str(data), "--out", str(run), "--kimg", "10", "--batch", "4", "--cbase", "128"]
    args += ["--cmax", "16", "--z-dim", "16", "--w-dim", "16", "--precision", "fp32"]
    assert main(args) == 0
    assert f"stopped at 0.0 kimg; continue with: ganmodels train {data} --out {run} --resume {run}" in (
        capsys.readouterr().err
    )
    state = load_checkpoint(latest_checkpoint(run))
    assert state.step == 3 and state.cur_nimg == 12  # the state after a whole step, nothing lost
    assert (run / "fakes-latest.png").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


@pytest.mark.parametrize(
    ("method", "extra"),
    [("telea", []), ("fsr-best", []), ("gan-inversion", []), ("gan-inversion", ["--tune-steps", "3"])],
)
def test_inpaint_command(tmp_path, tiny_model_file, method, extra):
    img = np.full((16, 16, 3), 200, np.uint8)
    img[6:10, 6:10] = [255, 0, 255]
    Image.fromarray(img).save(tmp_path / "img.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[5:11, 5:11] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    rc = main(
        [
            "--quiet",
            "inpaint",
            str(tmp_path / "img.png"),
            str(tmp_path / "mask.png"),
            "--method",
            method,
            "--model",
            str(tiny_model_file),
            "--steps",
            "5",
            *extra,
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    res = np.asarray(Image.open(out))
    assert np.array_equal(res[mask == 0], img[mask == 0])
    assert not np.array_equal(res[mask > 0], img[mask > 0])
    Image.fromarray(mask[:8]).save(tmp_path / "small.png")
    assert (
        main(
            [
                "--quiet",
                "inpaint",
                str(tmp_path / "img.png"),
                str(tmp_path / "small.png"),
                "--method",
                method,
                "--model",
                str(tiny_model_file),
                "--out",
                str(out),
            ]
        )
        == 2
    )


def test_train_inpainter_then_inpaint(tmp_path, tiny_model_file):
    from ganmodels.modelfile import load_model

    data = tmp_path / "d.npz"
    np.savez(data, images=np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))
    out_model = tmp_path / "with_inp.safetensors"
    run = tmp_path / "inp_run"
    train = ["--quiet", "train-inpainter", str(tiny_model_file), "--data", str(data), "--batch", "2", "--crop", "16"]
    train += [
        "--channels",
        "4",
        "--run-dir",
        str(run),
        "--eval-images",
        "1",
        "--preview-every",
        "1",
        "--snap-minutes",
        "0",
    ]
    assert main([*train, "--steps", "2", "--out", str(out_model)]) == 0  # a snapshot after every step
    assert load_model(out_model).components["inpainter"]["kind"] == "gated-unet"
    assert (run / "inpainter-preview.png").exists()
    assert json.loads((run / "inpainter-metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
    assert main([*train, "--steps", "3", "--out", str(out_model)]) == 0  # resumes from the run's snapshot
    assert [json.loads(x)["step"] for x in (run / "inpainter-metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    card = load_model(out_model).card["inpainter"]
    assert card["steps"] == 3 and card["crop"] == 16 and card["data"] == "d.npz" and "psnr_held_out_db" in card
    img = np.full((40, 40, 3), 90, np.uint8)
    Image.fromarray(img).save(tmp_path / "img.png")
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 12:30] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    assert (
        main(
            [
                "--quiet",
                "inpaint",
                str(tmp_path / "img.png"),
                str(tmp_path / "mask.png"),
                "--method",
                "gan-inpainter",
                "--model",
                str(out_model),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = np.asarray(Image.open(out))
    assert res.shape == (40, 40, 3) and np.array_equal(res[mask == 0], img[mask == 0])
    assert (
        main(
            [
                "--quiet",
                "inpaint",
                str(tmp_path / "img.png"),
                str(tmp_path / "mask.png"),
                "--method",
                "gan-inpainter",
                "--model",
                str(tiny_model_file),
                "--out",
                str(out),
            ]
        )
        == 2
    )


def test_metrics_command(tmp_path, capsys):
    import torch

    from ganmodels.components import discriminator_component
    from ganmodels.modelfile import save_model
    from tests.conftest import TINY_D, tiny_generator

    G, cfg = tiny_generator()
    torch.manual_seed(0)
    path = save_model(
        tmp_path / "m.safetensors",
        G,
        config=cfg,
        components={"discriminator": discriminator_component(TINY_D.build(), TINY_D)},
    )
    data = tmp_path / "d.npz"
    np.savez(data, images=np.random.default_rng(0).integers(0, 255, (40, 16, 16, 3), dtype=np.uint8))
    assert main(["--quiet", "metrics", str(path), "--data", str(data), "--num", "40"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["SWDx1e3_avg"] > 0 and "FID_discriminator" in out and "KIDx1e3_discriminator" in out
    assert 0 < out["diversity_ratio"] < 5  # random pictures vs an untrained G: both vary
    assert 0 <= out["precision_discriminator"] <= 1 and 0 <= out["recall_discriminator"] <= 1
    # --features: another model's discriminator as the feature network (the same file gives the same numbers).
    torch.manual_seed(1)
    other = save_model(
        tmp_path / "other.safetensors",
        G,
        config=cfg,
        components={"discriminator": discriminator_component(TINY_D.build(), TINY_D)},
    )
    assert main(["--quiet", "metrics", str(path), "--data", str(data), "--num", "40", "--features", str(path)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    assert main(["--quiet", "metrics", str(path), "--data", str(data), "--num", "40", "--features", str(other)]) == 0
    on_other = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_other["SWDx1e3_avg"] == out["SWDx1e3_avg"] and on_other["FID_discriminator"] != out["FID_discriminator"]
    bare = save_model(tmp_path / "bare.safetensors", G, config=cfg)
    assert main(["--quiet", "metrics", str(path), "--data", str(data), "--num", "40", "--features", str(bare)]) == 2
    assert "has no discriminator" in capsys.readouterr().err


def test_sample_and_invert_accept_foreign_checkpoints(tmp_path):
    """A DCGAN-layout .pt opens in the same commands as a native model (identity mapping, z space)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.ConvTranspose2d(8, 16, 4, 1, 0, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(True),
        nn.ConvTranspose2d(16, 3, 4, 2, 1, bias=False),
        nn.Tanh(),
    )
    path = tmp_path / "dcgan.pt"
    torch.save({f"main.{k}": v for k, v in net.state_dict().items()}, path)
    out = tmp_path / "g.png"
    assert main(["--quiet", "sample", str(path), "--seeds", "0-3", "--out", str(out)]) == 0
    assert Image.open(out).size == (16, 16)
    assert (
        main(
            [
                "--quiet",
                "invert",
                str(_png_of_sample(tmp_path, path)),
                "--model",
                str(path),
                "--steps",
                "5",
                "--out",
                str(tmp_path / "l.npz"),
            ]
        )
        == 0
    )


def test_train_without_noise_inputs(tmp_path):
    from ganmodels.modelfile import load_model

    rng = np.random.default_rng(1)
    data = tmp_path / "d.npz"
    np.savez(data, images=rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8))
    run = tmp_path / "run"
    args = ["--quiet", "train", str(data), "--out", str(run), "--kimg", "0.008", "--batch", "4", "--no-noise"]
    args += ["--cbase", "64", "--cmax", "16", "--z-dim", "8", "--w-dim", "8", "--snap-kimg", "0.008"]
    assert main(args) == 0
    m = load_model(run / "model-latest.safetensors")
    assert m.config.use_noise is False
    assert not [k for k in m.G.state_dict() if "noise" in k]
    ws = m.G.mapping(torch.randn([2, 8]), None)
    a, b = (m.G.synthesis(ws, noise_mode=mode) for mode in ("random", "const"))
    assert torch.equal(a, b)  # nothing random is left in the picture


def test_cli_checks_options_and_outputs_before_working(tmp_path, tiny_model_file, capsys):
    data = tmp_path / "d.npz"
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(data, images=images)
    for bad in (["--kimg", "-1"], ["--batch", "-2"], ["--threads", "-1"]):
        with pytest.raises(SystemExit):
            main(["--quiet", "train", str(data), "--out", str(tmp_path / "r"), *bad])
        assert "must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-inpainter", str(tiny_model_file), "--data", str(data), "--crop", "30"])
    assert "must be a multiple of 8" in capsys.readouterr().err
    # dataset cluster checks where its preview goes before it writes labels into the dataset
    assert main(["--quiet", "dataset", "cluster", str(data), "--k", "2", "--preview", "/nonexistent/p.png"]) == 2
    assert "no place for the preview" in capsys.readouterr().err
    assert "labels" not in np.load(data).files
    with pytest.raises(SystemExit):
        main(["dataset"])
    assert "{build,cluster}" in capsys.readouterr().err
    # the options shared by all commands also work after the command's name
    out = tmp_path / "g.png"
    assert main(["sample", str(tiny_model_file), "--seeds", "0-1", "--out", str(out), "--quiet", "--threads", "1"]) == 0
    assert out.exists() and capsys.readouterr().err == ""
