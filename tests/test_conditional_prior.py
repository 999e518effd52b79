"""Class-conditional priors with classifier-free guidance (models/conditional.py): the guided eps is the seeds'
formula eps_u + w (eps_c - eps_u) computed from two independent network calls; w = 0 is the unconditional half
and w = 1 the conditional one; the batched evaluation is batch-invariant; checkpoints keep the class names;
`bench train --conditional` and `bench sample --class` work end to end and refuse what they cannot do in one
line."""
from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import load_images, save_png
from ipbench.data.labels import FASHION_MNIST_CLASSES, class_in_name
from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.models.conditional import NULL_LABEL, ConditionalUNetModel, conditioned
from ipbench.models.registry import load_checkpoint, save_checkpoint
from ipbench.models.unet import UNetConfig, UNetScoreModel
from ipbench.training.objectives import dropped_labels

# 16 channels: with 8, each group norm holds one channel and removes the per-channel offset the embeddings add
CFG = UNetConfig(image_shape=(1, 8, 8), channels=16, channel_mult=(1,), num_res_blocks=1, attention_resolutions=(),
                 dropout=0.0, num_classes=3)


@pytest.fixture(scope="module")
def model() -> ConditionalUNetModel:
    torch.manual_seed(0)
    m = ConditionalUNetModel(CFG, ["a", "b", "c"])
    with torch.no_grad():  # away from the zero-initialised output, so that the classes give different eps
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m.eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(4, 1, 8, 8, generator=gen), torch.tensor([3, 200, 500, 900]), torch.tensor([0, 1, 2, 1])


def test_guidance_is_the_seeds_formula_from_two_network_calls(model):
    x, t, labels = _inputs()
    with torch.no_grad():
        eps_u, eps_c = model.eps_given(x, t, None), model.eps_given(x, t, labels)
        assert float((eps_c - eps_u).abs().mean()) > 1e-3  # the label matters in this network
        for w in (0.0, 1.0, 2.5, 5.0):
            with conditioned(model, labels, w):
                torch.testing.assert_close(model.eps(x, t), eps_u + w * (eps_c - eps_u), rtol=1e-5, atol=1e-5)


def test_scale_zero_and_no_labels_are_the_unconditional_half(model):
    x, t, labels = _inputs()
    with torch.no_grad():
        unconditional = model.eps_given(x, t, torch.full_like(labels, NULL_LABEL))
        torch.testing.assert_close(model.eps(x, t), unconditional)  # no condition set
        with conditioned(model, labels, 0.0):
            torch.testing.assert_close(model.eps(x, t), unconditional)
        torch.testing.assert_close(model.eps_given(x, t, None), unconditional)


def test_a_guided_batch_gives_each_image_what_it_gets_alone(model):
    x, t, labels = _inputs()
    with torch.no_grad(), conditioned(model, labels, 3.0):
        batch = model.eps(x, t)
    for i in range(len(labels)):
        with torch.no_grad(), conditioned(model, labels[i:i + 1], 3.0):
            torch.testing.assert_close(model.eps(x[i:i + 1], t[i:i + 1]), batch[i:i + 1], rtol=1e-5, atol=1e-5)


def test_conditioned_restores_the_previous_condition_and_refuses_an_unconditional_model(model):
    _, _, labels = _inputs()
    with conditioned(model, labels, 2.0):
        with conditioned(model, None, 0.0):
            assert model.labels is None
        assert model.guidance == 2.0 and model.labels is labels
    assert model.labels is None and model.guidance == 1.0
    plain = UNetScoreModel(UNetConfig(image_shape=(1, 8, 8), channels=8, channel_mult=(1,), num_res_blocks=1,
                                      attention_resolutions=(), dropout=0.0))
    with pytest.raises(UsageError, match="not class-conditional"):
        with conditioned(plain, labels, 1.0):
            pass


def test_a_checkpoint_keeps_the_class_names_and_the_weights(model, tmp_path):
    save_checkpoint(model, tmp_path / "cond.pt")
    loaded = load_checkpoint(tmp_path / "cond.pt")
    assert isinstance(loaded, ConditionalUNetModel) and loaded.class_names == ["a", "b", "c"]
    x, t, labels = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded.eps_given(x, t, labels), model.eps_given(x, t, labels))
    with pytest.raises(UsageError, match="not one of this model's classes"):
        loaded.label_of("d")


def test_labels_are_dropped_at_the_rate():
    n, rate = 20_000, 0.1
    dropped = dropped_labels(torch.zeros(n, dtype=torch.long), rate, torch.Generator().manual_seed(0))
    fraction = float((dropped == NULL_LABEL).float().mean())
    assert abs(fraction - rate) < 4 * math.sqrt(rate * (1 - rate) / n), fraction  # 4 binomial SE


def test_the_bundled_images_name_fashion_mnist_classes():
    ids = load_images("fashion32-test", (1, 32, 32), num_images=40).ids
    classes = [class_in_name(i, FASHION_MNIST_CLASSES) for i in ids]
    assert None not in classes and len(set(classes)) == 10


def test_bench_train_conditional_and_bench_sample_class(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    images = load_images("fashion32-test", (1, 8, 8), num_images=6)
    for image_id, image in zip(images.ids, images.images):
        save_png(image, data / f"{image_id}.png")
    out = tmp_path / "train"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2",
                                 "--channels", "8", "--channel-mult", "1", "--attention", "", "--resolution", "8",
                                 "--sample-steps", "2", "--conditional", "--no-progress", "--checkpoint-every", "1"])
    assert result.exit_code == 0, result.output
    model = load_model(str(out / "model.pt"))
    expected = sorted({class_in_name(i, FASHION_MNIST_CLASSES) for i in images.ids})
    assert isinstance(model, ConditionalUNetModel) and model.class_names == expected
    name = expected[0]
    ok = runner.invoke(cli, ["sample", "--model", str(out / "model.pt"), "-n", "2", "--steps", "2", "--class", name,
                             "--guidance", "3", "--out", str(tmp_path / "s.png")])
    assert ok.exit_code == 0 and f"class {name}, guidance 3" in ok.output, ok.output
    unknown = runner.invoke(cli, ["sample", "--model", str(out / "model.pt"), "-n", "1", "--class", "hat",
                                  "--out", str(tmp_path / "t.png")])
    assert unknown.exit_code == 2 and "not one of this model's classes" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    flow = runner.invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "f"), "--conditional",
                               "--objective", "flow"])
    assert flow.exit_code == 2 and "--objective eps" in flow.output


def test_sample_class_on_an_unconditional_model_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["sample", "--model", "gaussian-fashion32", "-n", "1", "--class", "bag",
                                      "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and "is not class-conditional" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_class_names_are_in_fashion_mnists_label_order():
    """Each bundled image's name agrees with the dataset's label file through FASHION_MNIST_CLASSES (the bundled
    images are Fashion-MNIST test images, numbered by their index), so a model trained on the label file and
    conditioned on the names gets the right class."""
    from ipbench.data.idx import FASHION_MNIST_DIR, idx_labels

    path = FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    if not path.exists():
        pytest.skip("the Fashion-MNIST label file is not installed (apt-get install dataset-fashion-mnist)")
    labels = idx_labels(path)
    for name in ("fashion32-test", "fashion32-val"):
        ids = load_images(name, (1, 32, 32)).ids
        assert [FASHION_MNIST_CLASSES[labels[int(i.split("-")[0])]] for i in ids] == \
            [class_in_name(i, FASHION_MNIST_CLASSES) for i in ids]
