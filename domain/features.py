"""The features an organization registered in the technical DSL: each runs as a workflow.

One catalog stream per organization; registering a feature of an existing name makes a new version
(instances already running keep the version they started with, which their first event holds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain.base import OneAggregate


class FeatureCatalog(OneAggregate):
    """An organization's registered DSL features, by name."""

    if TYPE_CHECKING:
        features: dict[str, dict[str, Any]]

    class Created(OneAggregate.Created):
        """The organization registered its first feature."""

        TYPE = "feature_catalog.created"

        def apply(self, aggregate: Any) -> None:
            aggregate.org_id, aggregate.features = self.org_id, {}

    class Registered(OneAggregate.Event):
        """A valid feature (with the types of its context values) was registered."""

        TYPE = "feature_catalog.registered"
        name: str
        feature: dict[str, Any]
        context: dict[str, str]
        version: int

        def apply(self, aggregate: Any) -> None:
            aggregate.features = {**aggregate.features, self.name: {
                "feature": self.feature, "context": self.context, "version": self.version}}

    @classmethod
    def open(cls, *, id: Any, org_id: str, actor_id: str) -> FeatureCatalog:
        """The organization's empty catalog."""
        return cls._create(cls.Created, id=id, org_id=org_id, actor_id=actor_id)

    def register(self, actor: str, name: str, feature: dict[str, Any], context: dict[str, str]) -> int:
        """Add the feature (a new version of it, if the name is taken); its version."""
        version = int(self.features.get(name, {}).get("version", 0)) + 1
        self.trigger_event(self.Registered, actor_id=actor, name=name, feature=feature, context=context,
                           version=version)
        return version
