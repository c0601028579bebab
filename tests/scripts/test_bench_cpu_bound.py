"""The bench's CPU limit for photos (scripts/bench.py, part 6): cores over the core-seconds the
GBP step and decoding cost per image, checked against the issue's own figures and against a
simulated schedule of the same work on the same cores."""

import heapq
import os

import pytest

from tests.e2e.helpers import load_script


def _bench():
    return load_script("bench")


def test_the_issue_s_figures_give_its_bound():
    # issue 27: "decoding costs 6.0 ms ... on one core and the step 16.9 core-ms, so two cores
    # bound the run near 87 images/s"
    assert _bench().cpu_bound_images_per_s(2, 0.0169, 0.0060) == pytest.approx(87.3, abs=0.1)


def _simulated_rate(cores, kernel_seconds, decode_seconds, images, chunks=8):
    """images/s of a greedy schedule: each image's decode and step cut into ``chunks`` equal
    pieces, every piece started on the core that frees first."""
    free_at = [0.0] * cores
    for _ in range(images):
        for cost in (decode_seconds, kernel_seconds):
            for _ in range(chunks):
                heapq.heappush(free_at, heapq.heappop(free_at) + cost / chunks)
    return images / max(free_at)


@pytest.mark.parametrize("cores, kernel_ms, decode_ms", [(1, 20.0, 5.0), (2, 16.9, 6.0),
                                                         (4, 60.0, 16.3), (3, 7.0, 11.0)])
def test_the_bound_is_the_rate_of_a_schedule_that_keeps_every_core_busy(cores, kernel_ms,
                                                                        decode_ms):
    bound = _bench().cpu_bound_images_per_s(cores, kernel_ms / 1000, decode_ms / 1000)
    assert bound == pytest.approx(_simulated_rate(cores, kernel_ms / 1000, decode_ms / 1000,
                                                  images=600), rel=1e-3)


def test_the_cores_are_the_process_s_affinity_mask():
    cores = _bench().cores_available()
    assert cores == len(os.sched_getaffinity(0))
    assert 1 <= cores <= os.cpu_count()
