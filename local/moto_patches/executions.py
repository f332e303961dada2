"""Step Functions' executions as AWS runs them where moto's differ: names, histories kept,
Waits until a timestamp, Express workflows with StartSyncExecution, and the parameter names of
AWS SDK service integrations.

Replaces, in moto 5.2.5:
- moto.stepfunctions.parser.models.StepFunctionsParserBackend.start_execution (3; adaptation
  21's observer of every execution started wraps it, in express_workflows);
- moto.stepfunctions.parser.backend.execution.BaseExecutionWorkerCommunication.terminated and
  Execution.to_history_output (14);
- moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp.Timestamp._eval_body (16);
- moto.stepfunctions.models.StateMachineInstance.__init__, StateMachine.create_from_cloudformation_json,
  StepFunctionsParserBackend.start_sync_execution and
  moto.stepfunctions.responses.StepFunctionResponse.start_sync_execution (19; StartSyncExecution's
  host is routed in direct_calls.py);
- StateTaskServiceAwsSdk._normalise_parameters (26).
Tests: tests/unit/test_patches_executions.py.

3. Executions started without a name get an ARN ending in ':None'. They are named.
14. Memory (only when `install(kept_histories=N)`): every finished execution keeps its
   evaluation environment, history included, for good: two thirds of what a case costs.
   Past the N most recent succeeded executions of a state machine, older ones drop it and
   keep their status, input and output; GetExecutionHistory on one of them fails with
   ExecutionHistoryDropped, naming the limit. Failed, timed-out and aborted executions
   keep their history.
16. A Wait state with a Timestamp or TimestampPath ends up to a second early: moto turns the
   time left into whole seconds, rounded down, and compares the UTC timestamp with the local
   time. As on AWS, the Wait now ends at the timestamp, in UTC; its milliseconds are still
   ignored, as AWS ignores them (moto already truncates them).
19. Express workflows: moto's CloudFormation drops `StateMachineType`, its models call every
   state machine STANDARD, and StartSyncExecution is not implemented (nor is its host,
   `sync-states`, routed). The type is kept, and StartSyncExecution runs the Express
   execution to its end in the caller's thread and answers as the API reference says.
26. An AWS SDK service integration (`arn:aws:states:::aws-sdk:SERVICE:action`) takes its
   parameters in PascalCase (docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html),
   and Step Functions maps them to the API's own member names. moto passes them to boto3 as
   written, which works only where the API's members are PascalCase already (CloudWatch's
   PutMetricData); Step Functions' StopExecution (`executionArn`) fails with a KeyError. The
   parameters are mapped to the operation's input members (moto's own `_to_boto_request`).
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .patching import Patch


def drop_old_histories(patch: Patch, kept: int) -> None:
    """A finished execution keeps its whole evaluation environment (history, frames, state
    data): two thirds of the memory a case costs. Per state machine, only the `kept` most
    recent succeeded executions keep it; older ones keep their status, input and output
    (DescribeExecution, ListExecutions), and GetExecutionHistory names the limit. Failed,
    timed-out and aborted executions keep their history."""
    import collections

    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    class HistoryDropped(AWSError):
        TYPE = "ExecutionHistoryDropped"
        STATUS = 400

    succeeded: dict[str, collections.deque[Any]] = collections.defaultdict(collections.deque)
    lock = threading.Lock()
    original_terminated = BaseExecutionWorkerCommunication.terminated

    def terminated(self: Any) -> None:
        original_terminated(self)
        execution = self.execution
        if execution.exec_status != ExecutionStatus.SUCCEEDED:
            return
        with lock:
            recent = succeeded[execution.state_machine_arn]
            recent.append(execution)
            while len(recent) > kept:
                oldest = recent.popleft()
                if oldest.exec_worker is not None:
                    oldest.exec_worker.env = None
                oldest._fanflow_history_dropped = True

    original_history = Execution.to_history_output

    def to_history_output(self: Any) -> Any:
        if getattr(self, "_fanflow_history_dropped", False):
            raise HistoryDropped(
                f"The embedded engine keeps the history of the last {kept} succeeded executions of each "
                f"state machine; {self.exec_arn} is older. Its status, input and output remain "
                "(DescribeExecution).")
        return original_history(self)

    patch(BaseExecutionWorkerCommunication, "terminated", terminated)
    patch(Execution, "to_history_output", to_history_output)


def express_workflows(patch: Patch,
                       on_execution: Callable[[str, str], None] | None) -> None:
    """Express workflows (adaptation 19). moto's CloudFormation drops a state machine's
    `StateMachineType` and its models record every state machine as STANDARD; and moto does
    not implement StartSyncExecution. Here the type is kept, and StartSyncExecution runs an
    Express execution to its end in the caller's thread and answers as the API reference
    describes (StartSyncExecution: executionArn ...:express:..., status SUCCEEDED, FAILED or
    TIMED_OUT, output, error, cause, billingDetails). Its host is `sync-states.REGION...`,
    which moto's URL table does not know: it is routed as `states`."""
    from moto.core.exceptions import AWSError
    from moto.core.responses import ActionResult
    from moto.stepfunctions.models import StateMachine, StateMachineInstance
    from moto.stepfunctions.parser.backend.execution import SyncExecution
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    class StateMachineTypeNotSupported(AWSError):
        TYPE = "StateMachineTypeNotSupported"
        STATUS = 400

    original_init = StateMachineInstance.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.sm_type = self.type  # moto sets "STANDARD" whatever the type

    patch(StateMachineInstance, "__init__", init)
    original_from_cfn = StateMachine.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any,
                                        **kwargs: Any) -> Any:
        state_machine = original_from_cfn(cls, resource_name, cloudformation_json, *args, **kwargs)
        kind = cloudformation_json.get("Properties", {}).get("StateMachineType")
        if kind:
            state_machine.type = state_machine.sm_type = kind
        return state_machine

    patch(StateMachine, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))

    def start_sync_execution(self: Any, state_machine_arn: str, name: str | None = None,
                             execution_input: str | None = None, trace_header: str | None = None) -> Any:
        state_machine = self.describe_state_machine(state_machine_arn)
        if state_machine.type != "EXPRESS":
            raise StateMachineTypeNotSupported("This operation is not supported by this type of state machine")
        input_data = execution_input or "{}"
        json.loads(input_data)
        clone = copy.deepcopy(state_machine, {id(state_machine.executions): [],
                                              id(state_machine.backend): state_machine.backend})
        name = name or str(uuid.uuid4())
        arn = (f"arn:{self.partition}:states:{self.region_name}:{self.account_id}:express:"
               f"{state_machine.name}:{name}:{uuid.uuid4()}")
        import datetime

        execution = SyncExecution(
            name=name, sm_type=clone.sm_type, role_arn=clone.roleArn, exec_arn=arn, account_id=self.account_id,
            region_name=self.region_name, state_machine=clone,
            start_date=datetime.datetime.now(tz=datetime.UTC), cloud_watch_logging_session=None,
            input_data=input_data, trace_header=trace_header, activity_store={})
        if on_execution is not None:
            on_execution(state_machine_arn, input_data)
        execution.start()  # SyncExecutionWorker runs the program in this thread
        return execution

    patch(StepFunctionsParserBackend, "start_sync_execution", start_sync_execution)

    def respond(self: Any) -> Any:
        execution = self.stepfunction_backend.start_sync_execution(
            self._get_param("stateMachineArn"), self._get_param("name"), self._get_param("input", if_none="{}"),
            self._get_param("traceHeader"))
        output = dict(execution.to_start_sync_execution_output())
        output["status"] = str(getattr(output["status"], "value", output["status"]))
        elapsed = (output["stopDate"] - output["startDate"]).total_seconds() if output.get("stopDate") else 0
        # Express bills per 100 ms and per 64 MB of memory (Step Functions pricing)
        output["billingDetails"] = {"billedMemoryUsedInMB": 64,
                                    "billedDurationInMilliseconds": max(100, math.ceil(elapsed * 10) * 100)}
        return ActionResult(output)

    patch(StepFunctionResponse, "start_sync_execution", respond)
    if on_execution is not None:
        original_start = StepFunctionsParserBackend.start_execution

        def start_execution(self: Any, state_machine_arn: str, name: str | None = None,
                            execution_input: str | None = None, *args: Any, **kwargs: Any) -> Any:
            on_execution(state_machine_arn, execution_input or "{}")
            return original_start(self, state_machine_arn, name, execution_input, *args, **kwargs)  # type: ignore[arg-type]

        patch(StepFunctionsParserBackend, "start_execution", start_execution)


def sdk_parameter_names(patch: Patch) -> None:
    """Adaptation 26."""
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    models: dict[str, Any] = {}

    def _normalise_parameters(self: Any, parameters: dict[str, Any], boto_service_name: str | None = None,
                              service_action_name: str | None = None) -> None:
        service = self._get_boto_service_name(boto_service_name)
        action = service_action_name or self.resource.api_action
        model = models.get(service)
        if model is None:
            model = models[service] = botocore.session.get_session().get_service_model(service)
        operation = model.operation_model(action[:1].upper() + action[1:])
        if operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    patch(StateTaskServiceAwsSdk, "_normalise_parameters", _normalise_parameters)


def wait_until_timestamp(patch: Patch) -> None:
    """Adaptation 16: replaces WaitFunction._eval_body for Timestamp (and TimestampPath,
    its subclass), whose `_get_wait_seconds` returns int(seconds left) from a local clock."""
    import datetime

    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp

    def eval_body(self: Any, env: Any) -> None:
        self.string.eval(env=env)
        text = env.stack.pop()
        moment = self._from_timestamp_string(timestamp=text)  # naive UTC, milliseconds dropped
        if moment is None:
            raise FailureEventException(self._create_failure_event(env, text))
        until = moment.replace(tzinfo=datetime.UTC).timestamp()
        # The event pulses when the execution's state changes (a stop): then it ends early.
        while env.is_running() and (left := until - time.time()) > 0:
            env.program_state_event.wait(left)

    patch(Timestamp, "_eval_body", eval_body)


def name_executions(patch: Patch) -> None:
    """Adaptation 3: StepFunctionsParserBackend.start_execution names an unnamed execution."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_start = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any,
                        **kwargs: Any) -> Any:
        return original_start(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    patch(StepFunctionsParserBackend, "start_execution", start_execution)
