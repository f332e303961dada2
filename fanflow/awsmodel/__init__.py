"""Plan a request on AWS before deploying it: the published quotas and prices (quotas),
the assumed latencies (assumptions), quota primitives (primitives) and a discrete-event
model of each design (seed_flow, fanflow_flow) that `planner` runs."""
