"""The background writer: the same files as save_png, jobs in order, errors raised, nothing queued lost."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from ipbench.benchmark.writer import BackgroundWriter
from ipbench.data import load_png, save_png


def test_writes_the_same_png_bytes_as_save_png(tmp_path: Path) -> None:
    image = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    save_png(image, tmp_path / "direct.png")
    with BackgroundWriter() as writer:
        writer.png(image, tmp_path / "queued" / "a.png")
    assert (tmp_path / "queued" / "a.png").read_bytes() == (tmp_path / "direct.png").read_bytes()


def test_jobs_run_in_submission_order_and_png_once_skips_known_paths(tmp_path: Path) -> None:
    seen: list[str] = []
    image = torch.zeros(1, 8, 8)
    with BackgroundWriter() as writer:
        writer.png(image, tmp_path / "first.png")
        writer.submit(lambda: seen.append(f"rows after first.png: {(tmp_path / 'first.png').exists()}"))
        writer.png_once(torch.ones(1, 8, 8), tmp_path / "first.png")  # queued already: not written again
    assert seen == ["rows after first.png: True"]
    assert (tmp_path / "first.png").stat().st_size > 0
    with BackgroundWriter() as writer:
        writer.png_once(torch.ones(1, 8, 8), tmp_path / "first.png")  # exists: kept as it is
    assert load_png(tmp_path / "first.png").max() == 0


def test_a_failed_write_is_raised_and_later_jobs_are_not_run(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    ran: list[int] = []
    queued = threading.Event()  # holds the worker until both jobs are queued: submit cannot see the error yet
    writer = BackgroundWriter()
    writer.submit(queued.wait)
    writer.png(torch.zeros(1, 8, 8), tmp_path / "blocker" / "x.png")
    writer.submit(ran.append, 1)
    queued.set()
    with pytest.raises(OSError):
        writer.close()
    assert ran == []


def test_an_error_in_the_caller_still_flushes_what_was_queued(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter() as writer:
            writer.png(torch.zeros(1, 8, 8), tmp_path / "kept.png")
            raise KeyboardInterrupt
    assert (tmp_path / "kept.png").is_file()


def test_an_empty_file_left_by_a_crash_is_written_again(tmp_path: Path) -> None:
    (tmp_path / "truth.png").write_bytes(b"")
    with BackgroundWriter() as writer:
        writer.png_once(torch.ones(1, 8, 8), tmp_path / "truth.png")
    assert load_png(tmp_path / "truth.png").min() == 1
