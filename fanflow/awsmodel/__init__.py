"""Plan a request on AWS before deploying it: the published quotas and prices (quotas),
the assumed latencies (assumptions), clock-free quota primitives (primitives), a SimPy model
of each design (seed_flow, fanflow_flow) in a simulated account (world), and the planner
that runs them and says what binds (planner). Nothing is imported here, so that the
emulator can use quotas and primitives without loading SimPy."""
