"""Stopping: a part asked to stop while its CPU work is finishing stops, instead of running on
(and leaving the bot's shutdown waiting for it for ever)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, Future

import pytest

from bot.pipeline import Pipeline


class InlineExecutor(Executor):
    """Runs the work as it is submitted, so it has finished before the caller next looks."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        done: Future = Future()
        done.set_result(fn(*args, **kwargs))
        return done


async def _nothing_to_do(item) -> None:  # the pipeline's handler, never called here
    raise AssertionError("no work item expected")


async def test_a_cancellation_that_arrives_as_the_cpu_work_finishes_is_not_swallowed():
    pipeline = Pipeline(None, _nothing_to_do, in_flight=1, workers=1)
    pipeline.executor.shutdown()
    pipeline.executor = InlineExecutor()  # type: ignore[assignment]
    task = asyncio.create_task(pipeline.run_cpu(lambda: 42, timeout=5))
    await asyncio.sleep(0)  # the task is now waiting; the result is on its way to it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # under asyncio.wait_for on 3.11 the task returned 42 and ran on as if never cancelled
    assert task.cancelled()
