"""One invocation's workspace and clients: each command makes one ``Session`` and builds
what it needs from it on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratchet.config import Settings
    from ratchet.data.catalog import DataClient
    from ratchet.registry.client import RegistryClient
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.tracking.client import TrackingClient
    from ratchet.workspace import Workspace


class Session:
    """The workspace ``load_settings()`` selects, made on first use, and its clients."""

    def __init__(self) -> None:
        self._workspace: Workspace | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from ratchet.workspace import Workspace

            self._workspace = Workspace()
        return self._workspace

    @property
    def settings(self) -> Settings:
        return self.workspace.settings

    @property
    def tracking(self) -> TrackingClient:
        from ratchet.tracking.client import TrackingClient

        return self.workspace.client(TrackingClient)

    @property
    def registry(self) -> RegistryClient:
        from ratchet.registry.client import RegistryClient

        return self.workspace.client(RegistryClient)

    @property
    def data(self) -> DataClient:
        from ratchet.data.catalog import DataClient

        return self.workspace.client(DataClient)

    @property
    def deployments(self) -> DeploymentClient:
        from ratchet.serving.deployments import DeploymentClient

        return self.workspace.client(DeploymentClient)
