"""Tasks called one after another, so the run graph in the Prefect UI draws the pipeline.

Prefect draws an edge from every task whose result another task takes: as every step takes the
JobConfig that prepare-job returns, the graph would fan out from prepare-job. `Steps` passes
the arguments as they are (quoted: no data edges) and makes each step wait for the one before
(`wait_for`), so the edges follow the order the flow runs its steps in: per phase submit ->
await-completion -> download -> send-realtime -> load, then the next phase or attempt.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture, PrefectTaskRunFuture
from prefect.utilities.annotations import quote

R = TypeVar("R")


class Steps:
    """Run tasks in sequence; each call returns the task's result (or raises its error)."""

    def __init__(self) -> None:
        self.last: Finished | None = None

    def __call__(self, task: Task[..., R], *args: Any, **kwargs: Any) -> R:
        state: State[R] = task(
            *[quote(a) for a in args],
            **{k: quote(v) for k, v in kwargs.items()},
            wait_for=self.last,  # alone, not in a list (see Finished)
            return_state=True,
        )
        self.last = Finished(state)
        return state.result()


class Finished(PrefectTaskRunFuture[Any]):
    """A task run that has finished, as `wait_for` takes it. Prefect looks up every object it
    finds in `wait_for` (and in a State, field by field) among the results of earlier tasks by
    id(): a fresh list or a field can then hit a freed result's recycled address and draw an
    edge from an unrelated task (prefect#20558). A future, given alone, is taken as it is."""

    def __init__(self, state: State[Any]) -> None:
        super().__init__(state.state_details.task_run_id)  # type: ignore[arg-type]
        self._final_state = state

    def wait(self, timeout: float | None = None) -> None:
        return None

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        return self.state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Callable[[PrefectFuture[Any]], None]) -> None:
        fn(self)
