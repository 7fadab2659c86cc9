"""Commands of the token contract deployer: record a signed deployment before it is broadcast,
and, once it landed, give the token its contract address and record `token_deployed` in one
transaction."""

from __future__ import annotations

from uuid import uuid4

from commands import models as m
from commands.handlers import Context, Reply, handles
from commands.unit_of_work import Scope
from domain.activity import Activity
from domain.things import Thing
from domain.token_deployment import TokenDeployment, deployment_id


@handles(m.RecordDeployment)
def record_deployment(cmd: m.RecordDeployment, ctx: Context, scope: Scope) -> Reply:
    """The first signed deployment of the token, or the replacement of one that cannot land."""
    token = scope.get(cmd.token_id, Thing, "token_id")
    deployment = scope.find(deployment_id(cmd.token_id), TokenDeployment)
    if deployment is None:
        deployment = TokenDeployment.sign(org_id=token.org_id, actor_id=ctx.actor_id,
                                          token_id=cmd.token_id, address=cmd.address,
                                          tx_hash=cmd.tx_hash, raw=cmd.raw, nonce=cmd.nonce)
        scope.add(deployment)
    else:
        deployment.resign(ctx.actor_id, address=cmd.address, tx_hash=cmd.tx_hash, raw=cmd.raw,
                          nonce=cmd.nonce)
    return Reply(deployment.id, 201)


@handles(m.ConfirmDeployment)
def confirm_deployment(cmd: m.ConfirmDeployment, ctx: Context, scope: Scope) -> Reply:
    """The contract is on chain: the token gets its address and `token_deployed` is recorded."""
    deployment = scope.get(deployment_id(cmd.token_id), TokenDeployment, "token_id")
    deployment.confirm(ctx.actor_id, cmd.tx_hash, cmd.block_number)
    token = scope.get(cmd.token_id, Thing, "token_id")
    token.update(ctx.actor_id, None, {"contractAddress": deployment.address})
    scope.add(Activity.record(id=uuid4(), org_id=token.org_id, actor_id=ctx.actor_id,
                              type="token_deployed", target_id=cmd.token_id,
                              metadata={"contractAddress": deployment.address,
                                        "txHash": cmd.tx_hash}))
    return Reply(token.id)
