"""The local-runner workaround reaches the Beam constant its embedded workers read, and the
CLI applies it for multi-threaded local runs only."""

import inspect

from apache_beam.runners.portability.fn_api_runner import worker_handlers

from pipeline.launch import local_runner
from pipeline.launch import options as launch_options


def test_embedded_workers_read_the_constant_the_workaround_sets():
    # If a Beam upgrade renames the constant, the workaround would silently stop working.
    source = inspect.getsource(worker_handlers.EmbeddedGrpcWorkerHandler.__init__)
    assert "DATA_BUFFER_TIME_LIMIT_MS" in source


def test_multi_threaded_local_runs_get_no_timed_flush(monkeypatch):
    monkeypatch.setattr(worker_handlers, "DATA_BUFFER_TIME_LIMIT_MS", 1000)
    launch_options.beam_options(["--direct_running_mode=in_memory"])
    assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == 1000
    options = launch_options.beam_options([])
    assert options.get_all_options()["direct_running_mode"] == "multi_threading"
    assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == local_runner.NO_TIMED_FLUSH_MS
