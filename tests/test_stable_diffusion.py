"""`ldm:DIR` (models/stable_diffusion.py): Stable Diffusion and LDM-VQ pipeline folders as latent priors, on small
random models built with diffusers (and a 2-layer CLIP text model with transformers) and saved by the test; nothing
is downloaded. Each part is checked against calling the diffusers / transformers model directly."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.models.conditional import ClassConditional, conditioned
from ipbench.models.latent import LatentPrior

diffusers = pytest.importorskip("diffusers", reason="diffusers is an optional extra")
try:
    import transformers
except ImportError:
    transformers = None
needs_transformers = pytest.mark.skipif(transformers is None, reason="the CLIP text encoder needs transformers, "
                                        "an optional extra")

TOKENS = 7  # the tiny tokenizer's length


def _randomised(module: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    with torch.no_grad():  # diffusers zero-initialises some layers; random everywhere instead
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module.eval()


def _tiny_clip(folder: Path) -> None:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "face</w>": 3, "f": 4, "a": 5, "c": 6, "e": 7}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                                           model_max_length=TOKENS)
    tokenizer.save_pretrained(folder / "tokenizer")
    config = transformers.CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=TOKENS,
                                         bos_token_id=0, eos_token_id=1, pad_token_id=1)
    torch.manual_seed(2)
    transformers.CLIPTextModel(config).eval().save_pretrained(folder / "text_encoder")


def _sd_folder(root: Path, prediction: str = "epsilon") -> Path:
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                                  layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=16,
                                  scaling_factor=0.5)
    unet = diffusers.UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                          layers_per_block=1, norm_num_groups=8, cross_attention_dim=16,
                                          attention_head_dim=4,
                                          down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                          up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    _randomised(vae, 0.02).save_pretrained(root / "vae")
    _randomised(unet).save_pretrained(root / "unet")
    diffusers.PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                            prediction_type=prediction, skip_prk_steps=True).save_pretrained(root / "scheduler")
    _tiny_clip(root)
    return root


def _vq_folder(root: Path) -> Path:
    torch.manual_seed(1)
    vqvae = diffusers.VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                              up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                              latent_channels=3, num_vq_embeddings=16, vq_embed_dim=3, norm_num_groups=8,
                              sample_size=16, scaling_factor=1.0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                                 layers_per_block=1, norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    _randomised(vqvae, 0.02).save_pretrained(root / "vqvae")
    _randomised(unet).save_pretrained(root / "unet")
    diffusers.DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear").save_pretrained(
        root / "scheduler")
    return root


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory) -> Path:
    if transformers is None:
        pytest.skip("the CLIP text encoder needs transformers, an optional extra")
    return _sd_folder(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def vq_dir(tmp_path_factory) -> Path:
    return _vq_folder(tmp_path_factory.mktemp("ldm-vq"))


def _images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def _latents(shape: tuple[int, ...], n: int = 2) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(4))


def _text(folder: Path, prompt: str) -> torch.Tensor:
    tokenizer = transformers.CLIPTokenizer.from_pretrained(folder / "tokenizer")
    encoder = transformers.CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
    ids = tokenizer([prompt], padding="max_length", max_length=TOKENS, return_tensors="pt").input_ids
    with torch.no_grad():
        return encoder(ids).last_hidden_state


@needs_transformers
def test_a_stable_diffusion_folder_is_a_latent_prior_on_its_schedulers_alphas(sd_dir):
    model = load_model(f"ldm:{sd_dir}")
    assert isinstance(model, LatentPrior) and not isinstance(model, ClassConditional)  # no prompts.json
    assert model.image_shape == (4, 8, 8) and model.autoencoder.image_shape == (3, 16, 16)
    scheduler = diffusers.PNDMScheduler.from_pretrained(sd_dir / "scheduler")
    torch.testing.assert_close(model.alphas_cumprod.float(), scheduler.alphas_cumprod, rtol=1e-6, atol=1e-7)


@needs_transformers
def test_the_kl_autoencoder_is_the_vae_in_model_units_with_its_scaling_factor(sd_dir):
    model = load_model(f"ldm:{sd_dir}")
    vae = diffusers.AutoencoderKL.from_pretrained(sd_dir / "vae").eval()
    x, z = _images(), _latents((4, 8, 8))
    with torch.no_grad():
        encoded = model.autoencoder.encode(x)
        torch.testing.assert_close(encoded, vae.encode(2 * x - 1).latent_dist.mean * 0.5)
        torch.testing.assert_close(model.autoencoder.decode(z), (vae.decode(z / 0.5).sample + 1) / 2)
        assert model.autoencoder.decode(encoded).shape == x.shape
    assert model.autoencoder.scaling_factor == 0.5 and model.autoencoder.encoded == 2


@needs_transformers
def test_eps_is_the_unets_output_given_the_empty_prompts_embedding(sd_dir):
    model = load_model(f"ldm:{sd_dir}")
    unet = diffusers.UNet2DConditionModel.from_pretrained(sd_dir / "unet").eval()
    x, t = _latents((4, 8, 8)), torch.tensor([10, 900])
    with torch.no_grad():
        theirs = unet(x, t, encoder_hidden_states=_text(sd_dir, "").expand(2, -1, -1)).sample
        torch.testing.assert_close(model.eps(x, t), theirs, rtol=1e-5, atol=1e-5)
    assert float(theirs.abs().mean()) > 0.01  # not a network that outputs nothing


@needs_transformers
def test_a_v_prediction_unet_is_converted_to_eps_exactly(sd_dir, tmp_path):
    folder = tmp_path / "v"
    shutil.copytree(sd_dir, folder)
    diffusers.PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                            prediction_type="v_prediction").save_pretrained(folder / "scheduler")
    model = load_model(f"ldm:{folder}")
    unet = diffusers.UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    x, t = _latents((4, 8, 8)), torch.tensor([10, 900])
    ab = model.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    with torch.no_grad():
        v = unet(x, t, encoder_hidden_states=_text(folder, "").expand(2, -1, -1)).sample
        torch.testing.assert_close(model.eps(x, t), ab.sqrt() * v + (1 - ab).sqrt() * x, rtol=1e-5, atol=1e-5)


@needs_transformers
def test_prompts_json_makes_it_class_conditional_with_classifier_free_guidance(sd_dir, tmp_path):
    folder = tmp_path / "prompted"
    shutil.copytree(sd_dir, folder)
    (folder / "prompts.json").write_text(json.dumps({"face": "a face", "cafe": "a cafe"}))
    model = load_model(f"ldm:{folder}")
    assert isinstance(model, ClassConditional) and model.class_names == ["face", "cafe"]
    unet = diffusers.UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    x, t = _latents((4, 8, 8)), torch.tensor([300, 300])
    with torch.no_grad():
        eps_u = unet(x, t, encoder_hidden_states=_text(folder, "").expand(2, -1, -1)).sample
        eps_c = unet(x, t, encoder_hidden_states=_text(folder, "a face").expand(2, -1, -1)).sample
        with conditioned(model, torch.tensor([0, 0]), 3.0):
            guided = model.eps(x, t)
        torch.testing.assert_close(guided, eps_u + 3.0 * (eps_c - eps_u), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.eps(x, t), eps_u, rtol=1e-5, atol=1e-5)  # restored: the empty prompt
    assert float((eps_c - eps_u).abs().max()) > 1e-4  # the prompt matters


@needs_transformers
@pytest.mark.parametrize("removed, named", [("unet", "unet/config.json"), ("scheduler", "scheduler/scheduler_config.json"),
                                            ("text_encoder/model.safetensors", "text_encoder/model.safetensors"),
                                            ("tokenizer", "tokenizer/vocab.json"),
                                            ("vae/diffusion_pytorch_model.safetensors", "diffusion_pytorch_model")])
def test_a_missing_part_is_one_line_naming_it_and_where_to_put_it(sd_dir, tmp_path, removed, named):
    folder = tmp_path / "partial"
    shutil.copytree(sd_dir, folder)
    target = folder / removed
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(UsageError) as caught:
        load_model(f"ldm:{folder}")
    message = str(caught.value)
    assert "\n" not in message and named in message and str(folder) in message, message


def test_without_transformers_the_text_encoder_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    folder = tmp_path / "sd"
    for part in ("vae", "unet", "scheduler"):
        (folder / part).mkdir(parents=True)
    diffusers.AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4).save_config(folder / "vae")
    diffusers.UNet2DConditionModel(sample_size=8, block_out_channels=(8, 16), norm_num_groups=8,
                                   cross_attention_dim=16, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")).save_config(folder / "unet")
    diffusers.PNDMScheduler().save_pretrained(folder / "scheduler")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(UsageError, match=r'pip install -e "\.\[diffusers\]"') as caught:
        load_model(f"ldm:{folder}")
    assert "\n" not in str(caught.value)


def test_a_folder_of_neither_layout_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="no vae/ or vqvae/") as caught:
        load_model(f"ldm:{tmp_path}")
    assert "\n" not in str(caught.value)


def test_an_ldm_vq_folder_quantises_when_decoding_and_predicts_the_unets_eps(vq_dir):
    model = load_model(f"ldm:{vq_dir}")
    assert isinstance(model, LatentPrior)
    assert model.image_shape == (3, 8, 8) and model.autoencoder.image_shape == (3, 16, 16)
    vqvae = diffusers.VQModel.from_pretrained(vq_dir / "vqvae").eval()
    unet = diffusers.UNet2DModel.from_pretrained(vq_dir / "unet").eval()
    scheduler = diffusers.DDIMScheduler.from_pretrained(vq_dir / "scheduler")
    torch.testing.assert_close(model.alphas_cumprod.float(), scheduler.alphas_cumprod, rtol=1e-6, atol=1e-7)
    x, z, t = _images(), _latents((3, 8, 8)), torch.tensor([5, 700])
    with torch.no_grad():
        torch.testing.assert_close(model.autoencoder.encode(x), vqvae.encode(2 * x - 1).latents)  # not quantised
        decoded = model.autoencoder.decode(z)
        torch.testing.assert_close(decoded, (vqvae.decode(z).sample + 1) / 2)  # quantised (force_not_quantize off)
        unquantised = (vqvae.decode(z, force_not_quantize=True).sample + 1) / 2
        assert float((decoded - unquantised).abs().max()) > 1e-4
        torch.testing.assert_close(model.eps(z, t), unet(z, t).sample, rtol=1e-5, atol=1e-5)
    z.requires_grad_(True)  # the straight-through quantiser passes a gradient to z
    model.autoencoder.decode(z).sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0


@pytest.mark.parametrize("layout", ["sd", "vq"])
def test_bench_run_latent_dps_on_an_ldm_folder_gives_ok_rows(layout, request, tmp_path):
    from ipbench.cli import cli

    folder = request.getfixturevalue(f"{layout}_dir")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--model", f"ldm:{folder}", "--solver", "latent-dps", "--op", "inpaint",
                                      "--num-images", "1", "--param", "latent-dps.steps=2", "--images", "photos",
                                      "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert rows and all(r["status"] == "ok" for r in rows), rows
    assert rows[0]["decodes"] > 0


def test_eps_of_inverts_the_v_and_x0_parametrisations():
    from ipbench.models.stable_diffusion import eps_of

    generator = torch.Generator().manual_seed(5)
    x0, eps = torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator)
    ab = torch.tensor([0.99, 0.5, 0.01])
    a, s = ab.sqrt().view(-1, 1, 1, 1), (1 - ab).sqrt().view(-1, 1, 1, 1)
    x_t = a * x0 + s * eps
    torch.testing.assert_close(eps_of(a * eps - s * x0, x_t, ab, "v_prediction"), eps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eps_of(x0, x_t, ab, "sample"), eps, rtol=1e-4, atol=1e-4)
    assert eps_of(eps, x_t, ab, "epsilon") is eps


@needs_transformers
def test_bench_run_with_a_condition_on_a_prompted_folder_gives_ok_rows(sd_dir, tmp_path):
    from ipbench.cli import cli

    folder = tmp_path / "prompted"
    shutil.copytree(sd_dir, folder)
    (folder / "prompts.json").write_text(json.dumps({"face": "a face"}))
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--model", f"ldm:{folder}", "--solver", "latent-dps", "--op", "inpaint",
                                      "--num-images", "1", "--param", "latent-dps.steps=2", "--images", "photos",
                                      "--condition", "none", "--guidance", "2", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert rows and all(r["status"] == "ok" for r in rows), rows
