"""A workaround for a data race in Beam's local multi-threaded runner.

In ``direct_running_mode=multi_threading`` each embedded SDK worker writes a bundle's output
through a ``TimeBasedBufferingClosableOutputStream``, whose timer thread flushes the buffer
every ``DATA_BUFFER_TIME_LIMIT_MS`` (1 s) without waiting for the element being encoded to be
complete. The runner decodes each flushed chunk of a group-by-key input on its own
(``GroupingBuffer.append``), so a chunk cut mid-element decodes as garbage: seen here as
``Invalid PaneInfoEncoding``, as a ``None`` combine accumulator, and as a runner process that
grows past 20 GB on a bogus length and is killed. Large elements that take long to encode
(the findings stage's image samples) make it likely. Stretching the timer beyond any run
leaves only the size-based flush, which always cuts between elements. Dataflow and the
multi-processing mode do not use this timer.
"""

# About 11 days: longer than any local run, short enough for threading's wait timeout.
NO_TIMED_FLUSH_MS = 10**9


def disable_timed_flushes():
    """Makes embedded (multi-threaded) SDK workers created after this call flush their
    output only between elements. Idempotent."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = NO_TIMED_FLUSH_MS
