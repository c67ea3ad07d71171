"""The context every pipeline step starts from: the job, its folder and ledger, the settings."""

from dataclasses import dataclass

from halfrate.config import JobConfig
from halfrate.gateway import BatchGateway, shared_gateway
from halfrate.ledger import Ledger
from halfrate.settings import Settings
from halfrate.workspace import JobPaths, job_paths


@dataclass(frozen=True)
class Step:
    """What every step needs: the job, its folder and ledger, and the settings."""

    job: JobConfig
    settings: Settings
    paths: JobPaths
    ledger: Ledger

    @classmethod
    def of(cls, job: JobConfig, settings: Settings) -> "Step":
        paths = job_paths(settings.workdir, job.name)
        return cls(job, settings, paths, Ledger(paths.ledger))

    def gateway(self) -> BatchGateway:
        return shared_gateway(self.settings)
