"""Least-privilege grants shared by the constructs: what a role may put on the bus (its own
source and detail-type only), and what a compute target may write in a results row (its result,
never the counted mark Increment sets)."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam

from lambda_fns import constants as c

# The attributes a compute target writes (lambda_fns.casework.record_result), and the table's
# key, which a policy on dynamodb:Attributes must name. `outcome` and `outcomeError` are not
# among them: with this condition a compute role can neither write nor test them
# (docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html: the
# listed attributes "can be read, written, or evaluated in a conditional write").
RESULT_ATTRIBUTES = (c.ATTR_REQUEST_SHARD, c.ATTR_CASE_ID, c.ATTR_STATE, c.ATTR_ERROR, c.ATTR_STARTED_AT,
                     c.ATTR_FINISHED_AT, c.ATTR_DURATION_MS, c.ATTR_COMPUTED_BY)


def put_events_statement(bus: events.IEventBus, *, source: str, detail_type: str) -> iam.PolicyStatement:
    """PutEvents on the bus for events of one source and detail-type only: a role cannot forge
    another producer's events (events:source and events:detail-type hold one value per entry of
    the call, hence ForAllValues; docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-bus-perms.html)."""
    return iam.PolicyStatement(
        actions=["events:PutEvents"],
        resources=[bus.event_bus_arn],
        conditions={"ForAllValues:StringEquals": {"events:source": [source], "events:detail-type": [detail_type]}},
    )


def grant_put_events(grantee: iam.IGrantable, bus: events.IEventBus, *, source: str, detail_type: str) -> None:
    grantee.grant_principal.add_to_principal_policy(put_events_statement(bus, source=source, detail_type=detail_type))


def result_write_statements(table: dynamodb.ITable) -> list[iam.PolicyStatement]:
    """Record a case's result: UpdateItem of the result's attributes only (no PutItem, which
    replaces the whole row and would erase the counted mark), returning no other attribute; and
    GetItem, to find a stored result or count before computing a case again."""
    return [
        iam.PolicyStatement(
            actions=["dynamodb:UpdateItem"],
            resources=[table.table_arn],
            conditions={
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(RESULT_ATTRIBUTES)},
                "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE", "UPDATED_OLD", "UPDATED_NEW"]},
            },
        ),
        iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[table.table_arn]),
    ]


def grant_result_writes(grantee: iam.IGrantable, table: dynamodb.ITable) -> None:
    for statement in result_write_statements(table):
        grantee.grant_principal.add_to_principal_policy(statement)
