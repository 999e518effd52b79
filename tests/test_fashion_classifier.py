"""The shipped Fashion-MNIST classifier (checks/fashion_classifier.py) and benchmarks/guidance_accuracy.py, which
uses it to judge a conditional prior's samples: the classifier is accurate on the bundled test images, its file is
small and checked on loading, and the accuracy-by-guidance check runs end to end and refuses what it cannot judge."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from ipbench.checks.fashion_classifier import (CLASSES, WEIGHTS_FILE, FashionClassifier, class_accuracy,
                                               load_fashion_classifier)
from ipbench.data import load_images
from ipbench.data.labels import FASHION_MNIST_CLASSES, class_in_name
from ipbench.errors import UsageError
from ipbench.models import GaussianScoreModel
from ipbench.models.conditional import ConditionalUNetModel
from ipbench.models.unet import UNetConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def classifier() -> FashionClassifier:
    return load_fashion_classifier("cpu")


@pytest.fixture(scope="module")
def guidance() -> ModuleType:
    spec = importlib.util.spec_from_file_location("guidance_accuracy", ROOT / "benchmarks" / "guidance_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_conditional() -> ConditionalUNetModel:
    torch.manual_seed(0)
    cfg = UNetConfig(image_shape=(1, 32, 32), channels=16, channel_mult=(1,), num_res_blocks=1,
                     attention_resolutions=(), dropout=0.0, num_classes=len(FASHION_MNIST_CLASSES))
    model = ConditionalUNetModel(cfg, list(FASHION_MNIST_CLASSES))
    with torch.no_grad():  # away from the zero-initialised output, so that the classes give different samples
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval().requires_grad_(False)


def test_the_classifier_knows_the_bundled_test_images(classifier) -> None:
    """Accuracy on fashion32-test (Fashion-MNIST test images the classifier was not trained on), each image's
    class read from its file name; results/fashion_classifier.md has it on all 10,000 test images."""
    loaded = load_images("fashion32-test", (1, 32, 32))
    labels = torch.tensor([CLASSES.index(class_in_name(i, CLASSES)) for i in loaded.ids])
    assert len(loaded) == 200 and len(set(labels.tolist())) == len(CLASSES)
    assert class_accuracy(classifier, loaded.images, labels) >= 0.85


def test_the_classifier_is_small_and_its_classes_are_the_datasets(classifier) -> None:
    assert CLASSES == FASHION_MNIST_CLASSES
    assert sum(p.numel() for p in classifier.parameters()) < 200_000
    assert WEIGHTS_FILE.stat().st_size < 300_000
    assert classifier(torch.zeros(2, 1, 32, 32)).shape == (2, len(CLASSES))


def test_weights_of_other_shapes_are_one_line_naming_the_file(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save(FashionClassifier(widths=(8, 16, 32)).state_dict(), path)
    with pytest.raises(UsageError) as info:
        load_fashion_classifier("cpu", path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "shape mismatch" in message


def test_class_accuracy_counts_matches_and_refuses_a_wrong_shape(classifier) -> None:
    images = load_images("fashion32-test", (1, 32, 32), num_images=4).images
    predicted = classifier(images).argmax(1)
    assert class_accuracy(classifier, images, predicted) == 1.0
    assert class_accuracy(classifier, images, (predicted + 1) % len(CLASSES)) == 0.0
    with pytest.raises(UsageError, match="takes"):
        class_accuracy(classifier, torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))


def test_guidance_accuracy_runs_end_to_end(guidance, classifier, tiny_conditional) -> None:
    results = guidance.guidance_accuracy(tiny_conditional, classifier, [0, 2], per_class=1, steps=1, batch_size=4)
    assert [r.scale for r in results] == [0.0, 2.0]
    assert all(r.n == len(CLASSES) and 0.0 <= r.accuracy <= 1.0 for r in results)
    assert all(set(r.per_class) == set(CLASSES) for r in results)
    assert all(0.0 <= r.interval()[0] <= r.accuracy <= r.interval()[1] <= 1.0 for r in results)
    report = guidance.render(results, ["- settings"])
    assert report.count("\n| 0 |") == 1 and report.count("\n| 2 |") == 1


def test_samples_do_not_depend_on_the_batch_size(tiny_conditional) -> None:
    from ipbench.training.export import draw_samples

    labels = list(range(5))
    whole = draw_samples(tiny_conditional, 5, 1, seed=3, labels=labels, guidance=2.0)
    parts = draw_samples(tiny_conditional, 5, 1, seed=3, labels=labels, guidance=2.0, batch_size=2)
    # the same noise per sample; only float round-off differs, which one step from t = 999 amplifies by
    # 1 / sqrt(alpha_bar) (about 150) in Tweedie's x0
    torch.testing.assert_close(parts, whole, atol=1e-3, rtol=0)


def test_guidance_accuracy_refuses_an_unconditional_model(guidance, classifier) -> None:
    model = GaussianScoreModel.fit(load_images("fashion32-test", (1, 32, 32), num_images=8).images)
    with pytest.raises(UsageError) as info:
        guidance.guidance_accuracy(model, classifier, [0, 1], per_class=1, steps=1, name="gaussian-fashion32")
    assert "\n" not in str(info.value) and "gaussian-fashion32 is not class-conditional" in str(info.value)


def test_guidance_accuracy_refuses_classes_the_classifier_does_not_know(guidance, classifier) -> None:
    cfg = UNetConfig(image_shape=(1, 32, 32), channels=16, channel_mult=(1,), num_res_blocks=1,
                     attention_resolutions=(), dropout=0.0, num_classes=2)
    model = ConditionalUNetModel(cfg, ["cat", "dog"]).eval()
    with pytest.raises(UsageError, match="'cat' is not a Fashion-MNIST class"):
        guidance.guidance_accuracy(model, classifier, [1], per_class=1, steps=1, name="pets")


def test_wilson_interval_matches_its_formula_at_the_edges(guidance) -> None:
    """k = 0 of n: [0, z^2 / (n + z^2)], the interval's closed form there; it never leaves [0, 1]."""
    z2 = guidance.Z95 ** 2
    low, high = guidance.ScaleAccuracy(1.0, 0, 20).interval()
    assert low == 0.0 and high == pytest.approx(z2 / (20 + z2))
    low, high = guidance.ScaleAccuracy(1.0, 20, 20).interval()
    assert high == 1.0 and low == pytest.approx(20 / (20 + z2))
