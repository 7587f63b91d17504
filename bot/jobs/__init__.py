"""Jobs on PostgreSQL with Procrastinate: the work inbox of several processes.

On one machine the store's ``work`` table is the queue, taken by bot/pipeline.py inside one
process. Past one machine each work item also gets a Procrastinate job, written in the same
transaction as the item (``JobQueue.record``), before the platform's offset moves on; workers on
any machine run the jobs by handing the item to the core's own handler (``Core.run_work``).

- queue.py: the Procrastinate app, recording an item with its job, running and re-queueing jobs,
  the periodic sweep (stalled workers' jobs, items left without a job) and the queue's figures.
- schema.py: Procrastinate's tables, applied at start under Vigil's migration lock.
"""

from bot.jobs.queue import JobQueue, JobStats

__all__ = ["JobQueue", "JobStats"]
