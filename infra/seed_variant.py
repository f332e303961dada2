"""The seed's design, rebuilt faithfully for `fanflow bench` (synthesized only with the
context value seedVariant=true): one PutEvents per case from an inline Map capped at 40
concurrent iterations, `SET counter = 0` on start and plain `ADD counter 1` per
completion. Never deploy it for real work: it double-counts and never cleans up."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import lambda_asset
from lambda_fns import constants as c


class SeedVariantStack(Stack):
    def __init__(self, scope: Construct, construct_id: str = c.SEED_VARIANT_STACK_NAME, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        table = dynamodb.Table(
            self, "Counter", partition_key=dynamodb.Attribute(name="requestId", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY,
        )
        bus = events.EventBus(self, "Bus")

        def function(construct_id: str, handler: str, environment: dict[str, str]) -> lambda_.Function:
            return lambda_.Function(
                self, construct_id, runtime=lambda_.Runtime.PYTHON_3_12, code=lambda_asset.code(),
                handler=f"{lambda_asset.PACKAGE_DIR.name}.seed_variant.{handler}",
                timeout=Duration.seconds(c.COMPUTE_TIMEOUT_SECONDS), environment=environment,
            )

        compute = function("Compute", "compute_handler", {
            c.ENV_EVENTBUS_NAME: bus.event_bus_name, c.ENV_EVENTBUS_SOURCE: c.COMPUTE_SOURCE,
            c.ENV_EVENTBUS_DETAILTYPE: c.COMPLETION_DETAIL_TYPE, c.ENV_COMPUTE_SECONDS: "0",
        })
        bus.grant_put_events_to(compute)
        summary = function("Summary", "summary_handler", {c.ENV_COUNTER_TABLE: table.table_name})
        table.grant_read_write_data(summary)

        key = {"requestId": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.requestId"))}
        init = tasks.DynamoUpdateItem(
            self, "InitCounter", table=table, key=key,
            update_expression="SET #counter = :zero, #target = :target",
            expression_attribute_names={"#counter": "counter", "#target": "target"},
            expression_attribute_values={":zero": tasks.DynamoAttributeValue.from_number(0),
                                         ":target": tasks.DynamoAttributeValue.number_from_string(
                                             sfn.JsonPath.string_at("$.length"))},
            result_path=sfn.JsonPath.DISCARD,
        )
        emit = tasks.EventBridgePutEvents(self, "PushEvent", entries=[tasks.EventBridgePutEventsEntry(
            detail=sfn.TaskInput.from_object({"requestId": sfn.JsonPath.string_at("$.requestId"),
                                              "request": sfn.JsonPath.object_at("$.request")}),
            detail_type=c.CASE_DETAIL_TYPE, source=c.PREPROCESS_SOURCE, event_bus=bus)])
        fan_out = sfn.Map(self, "MapRequests", items_path="$.requests", max_concurrency=40,
                          item_selector={"requestId": sfn.JsonPath.string_at("$.requestId"),
                                         "request": sfn.JsonPath.string_at("$$.Map.Item.Value")},
                          result_path=sfn.JsonPath.DISCARD)
        fan_out.item_processor(emit)
        preprocess = sfn.StateMachine(self, "PreProcess",
                                      definition_body=sfn.DefinitionBody.from_chainable(init.next(fan_out)))

        increment = tasks.DynamoUpdateItem(
            self, "IncrementCounter", table=table, key=key, update_expression="ADD #counter :one",
            expression_attribute_names={"#counter": "counter"},
            expression_attribute_values={":one": tasks.DynamoAttributeValue.from_number(1)},
            return_values=tasks.DynamoReturnValues.ALL_NEW, output_path="$.Attributes",
        )
        summarize = tasks.LambdaInvoke(self, "Summary Task", lambda_function=summary,
                                       payload=sfn.TaskInput.from_json_path_at("$"))
        done = sfn.Choice(self, "AllDone?").when(
            sfn.Condition.string_equals_json_path("$.counter.N", "$.target.N"), summarize
        ).otherwise(sfn.Succeed(self, "NotYet"))
        increment_sm = sfn.StateMachine(self, "Increment",
                                        definition_body=sfn.DefinitionBody.from_chainable(increment.next(done)))

        events.Rule(self, "ToCompute", event_bus=bus, event_pattern=events.EventPattern(source=[c.PREPROCESS_SOURCE]),
                    targets=[targets.LambdaFunction(compute)])
        events.Rule(self, "ToIncrement", event_bus=bus, event_pattern=events.EventPattern(source=[c.COMPUTE_SOURCE]),
                    targets=[targets.SfnStateMachine(increment_sm,
                                                     input=events.RuleTargetInput.from_event_path("$.detail"))])
        for name, value in {c.OUTPUT_PREPROCESS_ARN: preprocess.state_machine_arn,
                            c.OUTPUT_INCREMENT_ARN: increment_sm.state_machine_arn,
                            c.OUTPUT_COUNTER_TABLE: table.table_name, c.OUTPUT_BUS_NAME: bus.event_bus_name,
                            c.OUTPUT_COMPUTE_FUNCTION: compute.function_name,
                            c.OUTPUT_SUMMARY_FUNCTION: summary.function_name}.items():
            CfnOutput(self, name, value=value)
