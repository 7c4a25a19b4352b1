"""The operator's process-wide state: settings, the one KubeClient, the views and controllers.

kopf hands this object to every handler as `memo`. kopf shallow-copies the memo for each
object it sees; `__copy__` returns the same instance so every handler shares one set of
stores and timers.
"""

from __future__ import annotations

from hrw_api.kubeclient import KubeClient

from .assets import AssetController
from .events import EventRecorder
from .jobs import JobController
from .leases import LeaseView
from .runbooks import RunbookController
from .settings import OperatorSettings
from .workergroups import WorkerGroupController


class Operator:
    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self._client: KubeClient | None = None
        self._recorder: EventRecorder | None = None
        self.leases = LeaseView()
        self.runbooks = RunbookController(self)
        self.assets = AssetController(self)
        self.groups = WorkerGroupController(self)
        self.jobs = JobController(self)

    def __copy__(self) -> Operator:
        return self

    def open(self) -> None:
        """Create the process's KubeClient (called from kopf's startup handler, inside the loop)."""
        self._client = KubeClient.from_environment(self.settings.kubeconfig, context=self.settings.context,
                                                   user_agent="hrw-operator")
        self._recorder = EventRecorder(self._client, self.settings.reporting_instance)

    async def close(self) -> None:
        await self.jobs.close()
        await self.groups.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> KubeClient:
        if self._client is None:
            raise RuntimeError("the operator's KubeClient is not open (startup has not run)")
        return self._client

    @property
    def recorder(self) -> EventRecorder:
        if self._recorder is None:
            raise RuntimeError("the operator's EventRecorder is not open (startup has not run)")
        return self._recorder
