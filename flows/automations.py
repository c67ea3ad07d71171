"""Operations around the pipeline: a follow-up flow fired by events, and the zombie automation.

`record_job_cost` is deployed from prefect.yaml with a trigger on `halfrate.job.completed`
(the Message Batches API has no completion webhook; halfrate's own events stand in for one).
`python -m flows.automations` creates the server-side automation that marks flow runs whose
process vanished (machine loss: no worker left to report the crash) as Crashed, so they can be
retried (shared/reference/prefect.md section 5A); `make prefect-up` runs it.
"""

import argparse
import json
from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import Artifact, create_table_artifact
from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from halfrate.summary import format_usd

ZOMBIE_AUTOMATION = "halfrate-crash-zombie-flow-runs"
COST_LOG_KEY = "halfrate-cost-log"
_FINAL_RUN_EVENTS = {
    "prefect.flow-run.heartbeat",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}


@flow(name="record-job-cost", flow_run_name="record-job-cost · {job}")
def record_job_cost(
    job: str,
    rows: int = 0,
    batch_cost_usd: float | None = None,
    savings_usd: float | None = None,
    final_states: dict[str, int] | None = None,
    warehouse: str = "",
) -> dict[str, object]:
    """Add a completed job's cost to the cost history: one table artifact (key
    halfrate-cost-log) whose latest version lists every completed job, latest last."""
    entry: dict[str, object] = {
        "completed": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "job": job,
        "rows": rows,
        "batch_cost_usd": format_usd(batch_cost_usd),
        "savings_usd": format_usd(savings_usd),
        "final_states": ", ".join(f"{k} {v}" for k, v in (final_states or {}).items()),
        "warehouse": warehouse,
    }
    history = [*cost_history(), entry][-COST_LOG_ROWS:]
    create_table_artifact(
        key=COST_LOG_KEY,
        table=history,
        description=f"Cost of every completed halfrate job at batch prices, latest last "
        f"({len(history)} jobs; from their halfrate.job.completed events)",
    )
    get_run_logger().info(
        "job %s completed: %d rows, batch cost %s, saved %s",
        job,
        rows,
        format_usd(batch_cost_usd),
        format_usd(savings_usd),
    )
    return entry


COST_LOG_ROWS = 1000  # the history keeps the latest jobs; the warehouse's job_costs keeps all


def cost_history() -> list[dict[str, object]]:
    """The rows of the cost history's latest version (none yet: empty)."""
    latest = Artifact.get(COST_LOG_KEY)
    if latest is None or not isinstance(latest.data, str):
        return []
    try:
        rows = json.loads(latest.data)
    except ValueError:
        get_run_logger().warning("%s: unreadable; starting the history again", COST_LOG_KEY)
        return []
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def zombie_automation(within: timedelta) -> Automation:
    """Mark a flow run Crashed when its heartbeats stop for `within` (>= 3 heartbeats)."""
    return Automation(
        name=ZOMBIE_AUTOMATION,
        description="Flow runs whose process vanished (no heartbeat) become Crashed, so "
        "`prefect flow-run retry <id>` can resume them (halfrate docs/deploy.md).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect=_FINAL_RUN_EVENTS,
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message="Flow run marked as crashed due to missing heartbeats.",
            )
        ],
    )


def ensure_zombie_automation(within: timedelta = timedelta(seconds=600)) -> Automation:
    """Create the zombie automation unless one of that name exists (safe to run again)."""
    try:
        return Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:
        return zombie_automation(within).create()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--within",
        type=float,
        default=600,
        help="seconds without a heartbeat before a run is Crashed (default 600: 3 heartbeats "
        "of PREFECT_FLOWS_HEARTBEAT_FREQUENCY=180 plus margin)",
    )
    args = parser.parse_args()
    automation = ensure_zombie_automation(timedelta(seconds=args.within))
    print(f"automation {automation.name!r} ({automation.id}) is in place")


if __name__ == "__main__":
    main()
