"""Artifact sensors that say what never arrived when they give up.

The providers' sensors time out with "Sensor has timed out; run duration of ... exceeds ...";
these name the artifact and its path instead (``the raw drop ... never arrived: <path> missing
after 21600 s``). Built by ``sparkvision.orchestration.tasks.artifact_sensor``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.hdfs.sensors.web_hdfs import WebHdfsSensor
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk.exceptions import AirflowSensorTimeout


class _SaysWhatIsMissing:
    """Mixin: re-raise a sensor timeout (poke, reschedule or deferred) with what was missing."""

    what: str
    filepath: str
    timeout: float

    def missing(self) -> str:
        return (
            f"{self.what} never arrived: {self.filepath} is still missing after {self.timeout:.0f} s; "
            "the run ends here (later runs are not held back)"
        )

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self.missing()) from exc

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self.missing()) from exc


class ArtifactFileSensor(_SaysWhatIsMissing, FileSensor):
    """FileSensor (deferrable on the triggerer) naming the missing artifact on timeout."""

    def __init__(self, *, what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.what = what


class ArtifactWebHdfsSensor(_SaysWhatIsMissing, WebHdfsSensor):
    """WebHdfsSensor (reschedule mode) naming the missing artifact on timeout."""

    def __init__(self, *, what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.what = what
