"""A latent prior trained by ipbench: the KL autoencoder (models/kl_autoencoder.py) learns, its latent scale is
1 / the std of its latents, it and a whole LatentPrior round-trip through checkpoints and refuse files whose parts
do not fit, and `bench train --autoencoder` then `--latent-of` give a latent prior that `bench run` and
`bench sample` use."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import load_images, load_png, save_png
from ipbench.errors import UsageError
from ipbench.models import load_checkpoint, load_model, save_checkpoint
from ipbench.models.kl_autoencoder import KLAutoencoder, KLAutoencoderConfig, config_problem
from ipbench.models.latent import LatentPrior
from ipbench.models.unet import UNetConfig, UNetScoreModel
from ipbench.training.latent_prior import latent_scale
from ipbench.training.loop import TrainConfig, train
from ipbench.training.objectives import OBJECTIVES

TINY_AE = KLAutoencoderConfig(image_shape=(1, 16, 16), latent_channels=2, channels=8, channel_mult=(1, 2))
TINY_UNET = UNetConfig(image_shape=(2, 8, 8), channels=8, channel_mult=(1, 2), num_res_blocks=1,
                       attention_resolutions=(), dropout=0.0)
QUIET = dict(progress=False, log=lambda s: None)
CPU = torch.device("cpu")
SMALL = ["--channels", "8", "--channel-mult", "1,2", "--batch-size", "4", "--checkpoint-every", "1", "--no-progress",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_images("fashion32-test", (1, 16, 16), num_images=8).images


def _seeded_autoencoder(seed: int = 0) -> KLAutoencoder:
    torch.manual_seed(seed)
    return KLAutoencoder(TINY_AE).eval()


def _fixed_batch_loss(model: KLAutoencoder, x: torch.Tensor) -> float:
    eps = torch.randn(x.shape[0], *model.latent_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float(OBJECTIVES["autoencoder"].loss(model, x, torch.zeros(x.shape[0], dtype=torch.long), eps, None))


def test_the_default_config_is_ldms_f4_latent_for_fashion32():
    cfg = KLAutoencoderConfig()
    assert config_problem(cfg) is None and cfg.latent_shape == (4, 8, 8)
    assert KLAutoencoder(cfg).latent_shape == (4, 8, 8)


def test_a_tiny_autoencoder_lowers_its_loss_on_a_fixed_batch(tmp_path, images):
    """The loss (L1 + KL per pixel) of one fixed batch and posterior draw, before and after 40 steps."""
    torch.manual_seed(0)  # train() seeds its own initial weights with cfg.seed; the same seed gives the same start
    before = _fixed_batch_loss(OBJECTIVES["autoencoder"].build(TINY_AE).eval(), images)
    cfg = TrainConfig(steps=40, batch_size=8, lr=3e-3, warmup=5, ema_decay=0.0, checkpoint_every=1000)
    model, losses = train(images, tmp_path, TINY_AE, cfg, CPU, objective="autoencoder", **QUIET)
    after = _fixed_batch_loss(model, images)
    assert losses[0] == pytest.approx(before, rel=0.1)  # the first step's batch is another draw of the same images
    assert after < 0.6 * before, (before, after)
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0], losses


def test_the_latent_scale_is_one_over_the_std_of_the_encoded_latents(images):
    ae = _seeded_autoencoder()
    scale = latent_scale(ae, images, CPU)
    with torch.no_grad():
        means = ae.posterior(images)[0]
        assert scale == pytest.approx(1 / float(means.double().std()), rel=1e-6)
        ae.with_latent_scale(scale)
        z = ae.encode(images)
        assert float(z.double().std()) == pytest.approx(1.0, rel=1e-5)  # what the latent DDPM is trained on
        torch.testing.assert_close(ae.decode(z), ae.image_of(means), rtol=1e-5, atol=1e-5)  # decode undoes it
    assert (ae.encoded, ae.decoded) == (8, 8)


def test_an_autoencoder_checkpoint_round_trips(tmp_path, images):
    ae = _seeded_autoencoder().with_latent_scale(2.5)
    save_checkpoint(ae, tmp_path / "ae.pt")
    loaded = load_checkpoint(tmp_path / "ae.pt")
    assert isinstance(loaded, KLAutoencoder) and loaded.cfg == ae.cfg
    with torch.no_grad():
        z = ae.encode_images(images)
        torch.testing.assert_close(loaded.encode_images(images), z)
        torch.testing.assert_close(loaded.decode_latents(z), ae.decode_latents(z))


def _latent_prior() -> LatentPrior:
    torch.manual_seed(0)
    unet = UNetScoreModel(TINY_UNET)
    for p in unet.parameters():  # the UNet's zero-initialised output would make eps 0 whatever the weights
        p.data.normal_(0, 0.1)
    return LatentPrior(unet, _seeded_autoencoder(1).with_latent_scale(1.7)).eval()


def test_a_whole_latent_prior_round_trips(tmp_path):
    prior = _latent_prior()
    save_checkpoint(prior, tmp_path / "prior.pt")
    loaded = load_model(str(tmp_path / "prior.pt"))
    assert isinstance(loaded, LatentPrior) and isinstance(loaded.autoencoder, KLAutoencoder)
    assert loaded.autoencoder.cfg.latent_scale == 1.7 and loaded.image_shape == (2, 8, 8)
    z = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 500, 900])
    with torch.no_grad():
        assert float(prior.eps(z, t).abs().max()) > 0
        torch.testing.assert_close(loaded.eps(z, t), prior.eps(z, t))
        torch.testing.assert_close(loaded.autoencoder.decode(z), prior.autoencoder.decode(z))


def _one_line_error(path) -> str:
    with pytest.raises(UsageError) as info:
        load_model(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_files_whose_parts_do_not_fit_are_one_line_errors_naming_the_file(tmp_path):
    ae = _seeded_autoencoder()
    save_checkpoint(ae, tmp_path / "ae.pt")
    blob = torch.load(tmp_path / "ae.pt", weights_only=True)
    blob["state_dict"]["decoder.layers.0.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(blob, tmp_path / "bad-ae.pt")
    assert "weights do not fit the autoencoder it declares" in _one_line_error(tmp_path / "bad-ae.pt")
    assert "not a prior" in _one_line_error(tmp_path / "ae.pt")  # an autoencoder alone is no prior

    save_checkpoint(_latent_prior(), tmp_path / "prior.pt")
    blob = torch.load(tmp_path / "prior.pt", weights_only=True)
    wrong = {**blob, "config": json.loads(json.dumps(blob["config"]))}
    wrong["config"]["autoencoder"]["config"]["latent_channels"] = 3  # its weights and the UNet's shape disagree
    torch.save(wrong, tmp_path / "bad-prior.pt")
    message = _one_line_error(tmp_path / "bad-prior.pt")
    assert "its autoencoder (kl-autoencoder): weights do not fit" in message, message
    ae3 = KLAutoencoder(KLAutoencoderConfig(**{**TINY_AE.__dict__, "latent_channels": 3}))
    mismatched = {**blob, "config": {**blob["config"], "autoencoder": {"arch": "kl-autoencoder",
                                                                       "config": ae3.config()}},
                  "state_dict": {**{k: v for k, v in blob["state_dict"].items() if not k.startswith("autoencoder.")},
                                 **{f"autoencoder.{k}": v for k, v in ae3.state_dict().items()}}}
    torch.save(mismatched, tmp_path / "mismatched.pt")
    assert "latent model is over 2 x 8 x 8 latents but its autoencoder's latents are 3 x 8 x 8" in \
        _one_line_error(tmp_path / "mismatched.pt")
    nested = {**blob, "config": {**blob["config"], "latent": {"arch": "latent", "config": blob["config"]}}}
    torch.save(nested, tmp_path / "nested.pt")
    assert "its latent part declares architecture 'latent'" in _one_line_error(tmp_path / "nested.pt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, images):
    """`bench train --autoencoder` (2 steps, resumed to 3), then `--latent-of` it (2 steps), on 8 images of 16 px."""
    root = tmp_path_factory.mktemp("latent-training")
    data = root / "data"
    for image, i in zip(images, range(8)):
        save_png(image, data / f"{i}.png")
    runner = CliRunner()
    ae = ["train", "--autoencoder", "--data", str(data), "--out", str(root / "ae"), "--resolution", "16",
          "--latent-channels", "2", *SMALL]
    first = runner.invoke(cli, [*ae, "--steps", "2"])
    resumed = runner.invoke(cli, [*ae, "--steps", "3"])
    latent = runner.invoke(cli, ["train", "--latent-of", str(root / "ae" / "autoencoder.pt"), "--data", str(data),
                                 "--out", str(root / "latent"), "--attention", "4", "--steps", "2",
                                 "--sample-steps", "3", *SMALL])
    return root, first, resumed, latent


def test_bench_train_autoencoder_writes_a_checkpoint_a_grid_and_heldout_scores(trained):
    root, first, resumed, _ = trained
    assert first.exit_code == 0, first.output
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from step 2" in resumed.output and "held-out reconstruction on fashion32-val" in resumed.output
    ae = load_checkpoint(root / "ae" / "autoencoder.pt")
    assert isinstance(ae, KLAutoencoder) and ae.latent_shape == (2, 8, 8) and ae.cfg.latent_scale != 1.0
    log = json.loads((root / "ae" / "train_log.json").read_text())
    assert log["steps"] == 3 and log["objective"] == "autoencoder" and log["reconstruction_loss"] == "l1"
    assert log["heldout"]["set"] == "fashion32-val" and log["heldout"]["num_images"] == 200
    assert 0 < log["heldout"]["psnr"] < 60 and 0 <= log["heldout"]["lpips"] <= 1
    assert log["latent_scale"] == ae.cfg.latent_scale
    grid = load_png(root / "ae" / "reconstructions.png")
    assert tuple(grid.shape) == (1, 32, 8 * 16)  # 8 held-out images above their reconstructions


def test_bench_train_latent_of_exports_a_latent_prior_that_runs_and_samples(trained):
    root, _, _, latent = trained
    assert latent.exit_code == 0, latent.output
    assert "encoded 8 training images to 2 x 8 x 8 latents" in latent.output
    for name in ("model.pt", "model-fp16.pt"):
        prior = load_model(str(root / "latent" / name))
        assert isinstance(prior, LatentPrior) and prior.autoencoder.image_shape == (1, 16, 16)
    log = json.loads((root / "latent" / "train_log.json").read_text())
    assert log["latent_of"].endswith("autoencoder.pt") and log["model_config"]["latent"]["arch"] == "unet"
    assert tuple(load_png(root / "latent" / "samples.png").shape) == (1, 8 * 16, 8 * 16)  # 64 decoded images
    out = root / "run"
    result = CliRunner().invoke(cli, ["run", "--model", str(root / "latent" / "model.pt"), "--solver", "latent-dps",
                                      "--op", "inpaint", "--num-images", "2", "--images", str(root / "data"),
                                      "--param", "latent-dps.steps=3", "--out", str(out), "--no-progress",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["status"] == "ok" and r["decodes"] == 4 for r in rows)
    sample = CliRunner().invoke(cli, ["sample", "--model", str(root / "latent" / "model.pt"), "-n", "4", "--steps",
                                      "3", "--out", str(root / "s.png"), "--device", "cpu"])
    assert sample.exit_code == 0, sample.output
    assert tuple(load_png(root / "s.png").shape) == (1, 32, 32)  # 2 x 2 decoded 16 px images


def test_the_latent_stage_refuses_options_the_autoencoder_decides(trained, tmp_path):
    root = trained[0]
    common = ["train", "--latent-of", str(root / "ae" / "autoencoder.pt"), "--data", str(root / "data"),
              "--out", str(tmp_path / "x"), "--steps", "1", *SMALL]
    for extra, expected in ((["--resolution", "32"], "--resolution with --latent-of"),
                            (["--channel-mult", "1,2,2,2,2"], "allows at most 4 levels"),
                            (["--attention", "16"], "--attention 16: has 16, a resolution that never occurs")):
        result = CliRunner().invoke(cli, [*common, *extra])
        assert result.exit_code == 2 and expected in result.output, result.output
    bad = CliRunner().invoke(cli, ["train", "--latent-of", str(root / "latent" / "model.pt"), "--data",
                                   str(root / "data"), "--out", str(tmp_path / "y"), *SMALL])
    assert bad.exit_code == 2 and "holds a latent prior" in bad.output, bad.output


def _readme_commands() -> list[list[str]]:
    """The README's proposed fashion32-latent commands (continued lines joined), as argument lists."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text().replace("\\\n", " ")
    found = re.findall(r"^\s*(bench train --(?:autoencoder|latent-of) [^\n]*fashion32-[^\n]+)$", text, re.MULTILINE)
    return [shlex.split(line)[1:] for line in found]


def test_the_readmes_fashion32_latent_commands_are_accepted(tmp_path, monkeypatch):
    """Both stages' proposed options pass the bounds (the latent UNet's on 4x8x8 latents) and reach the loop."""
    commands = _readme_commands()
    assert [c[1] for c in commands] == ["--autoencoder", "--latent-of"], commands
    captured = []

    def fake_train(images, out, model_cfg, cfg, device, **options):
        captured.append((images.shape, model_cfg, options))
        raise SystemExit(0)  # only the parsing and the bounds are under test

    monkeypatch.setattr("ipbench.training.loop.train", fake_train)
    fake_images = torch.rand(4, 1, 32, 32)
    monkeypatch.setattr("ipbench.training.export.load_training_images", lambda data, shape: (fake_images, None))
    save_checkpoint(KLAutoencoder(KLAutoencoderConfig()), tmp_path / "ae.pt")
    for args in commands:
        args = [str(tmp_path / "ae.pt") if a.endswith("autoencoder.pt") else a for a in args]
        args[args.index("--out") + 1] = str(tmp_path / "out")
        result = CliRunner().invoke(cli, [*args, "--device", "cpu"])
        assert result.exit_code == 0, result.output
    (_, ae_cfg, ae_options), (latents, unet_cfg, unet_options) = captured
    assert ae_options["objective"] == "autoencoder" and ae_cfg.latent_shape == (4, 8, 8)
    assert unet_options["latents"] and unet_cfg.image_shape == (4, 8, 8) and tuple(latents) == (4, 4, 8, 8)


def test_a_latent_training_resumes_only_on_the_autoencoder_it_began_with(trained, tmp_path):
    import shutil

    root = trained[0]
    shutil.copytree(root / "latent", tmp_path / "latent")
    common = ["train", "--data", str(root / "data"), "--out", str(tmp_path / "latent"), "--attention", "4",
              "--steps", "3", "--sample-steps", "2", *SMALL]
    other = load_checkpoint(root / "ae" / "autoencoder.pt").with_latent_scale(0.5)
    save_checkpoint(other, tmp_path / "other.pt")
    refused = CliRunner().invoke(cli, [*common, "--latent-of", str(tmp_path / "other.pt")])
    assert refused.exit_code == 2 and "differs in extra.autoencoder" in refused.output, refused.output
    resumed = CliRunner().invoke(cli, [*common, "--latent-of", str(root / "ae" / "autoencoder.pt")])
    assert resumed.exit_code == 0 and "resuming from step 2" in resumed.output, resumed.output
