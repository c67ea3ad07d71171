"""A deployment's run draws no progress bars: only the CLI sets a progress hook, for its own
process, and a worker's flow-run process is not the CLI's (halfrate/progress_hooks.py).

Collected in test_deployments.py (imported there), with the stack's other tests.
"""

from prefect_stack import FinishedRun, Stack


def test_a_deployment_run_draws_no_progress_bars(stack: Stack, finished_run: FinishedRun) -> None:
    worker = stack.log("worker")  # the flow-run processes' output goes to the worker's log
    assert finished_run.id in worker  # (it is this run's output)
    for trace in ("━", "build attempt", "verify part-", "load into"):
        assert trace not in worker, trace
        assert trace not in stack.run_logs(finished_run.id), trace
        assert trace not in finished_run.watch_output, trace
