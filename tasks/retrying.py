"""When a failed task is worth another try: never when a person must act first."""

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from halfrate.errors import is_actionable


def retry_unless_actionable(task: Task[..., object], task_run: TaskRun, state: State) -> bool:
    """Retry a failure unless it needs a person: a bad job file or source, a refused key, a
    budget it is over (halfrate.errors.is_actionable). Trying those again only adds noise."""
    try:
        state.result()
    except Exception as exc:
        return not is_actionable(exc)
    return False
