"""Registering features written in the technical DSL (validated before they are stored)."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import Field

from commands.handlers import Context, Reply, handles
from commands.models import StrictModel
from commands.unit_of_work import Scope
from domain import dsl
from domain.errors import ValidationFailed
from domain.features import FeatureCatalog


def catalog_id(org_id: str) -> UUID:
    """The stream of the organization's feature catalog."""
    return uuid5(NAMESPACE_URL, f"one:features:{org_id}")


class FeatureBody(StrictModel):
    """A feature in the technical DSL, with the types of values its caller supplies (`context`)."""

    feature: dict[str, Any]
    context: dict[str, str] = Field(default_factory=dict)


class RegisterFeature(FeatureBody):
    """Register the feature as a workflow of the organization."""

    action = "features.register"


@handles(RegisterFeature)
def register_feature(cmd: RegisterFeature, ctx: Context, scope: Scope) -> Reply:
    """Store a valid feature (refused with its first error's path otherwise); a new version of an
    existing name."""
    errors = dsl.validate_feature(cmd.feature, cmd.context)
    if errors:
        raise ValidationFailed(f"{errors[0].code}: {errors[0].message}", errors[0].path)
    stream = catalog_id(ctx.org_id)
    catalog = scope.find(stream, FeatureCatalog)
    if catalog is None:
        catalog = FeatureCatalog.open(id=stream, org_id=ctx.org_id, actor_id=ctx.actor_id)
        scope.add(catalog)
    name = str(cmd.feature["feature"])
    version = catalog.register(ctx.actor_id, name, dict(cmd.feature), dict(cmd.context))
    return Reply(stream, 201, {"feature": name, "feature_version": version})
