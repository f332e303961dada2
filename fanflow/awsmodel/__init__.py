"""Plan a request on AWS before deploying it: a SimPy model of each design (seed_flow,
fanflow_flow) in a simulated account (world), what a request uses and costs (costs), and the
planner that runs them and says what binds (planner). The published quotas and prices, the
assumed latencies and the clock-free quota primitives they use are in local/aws_limits/, which
the emulator shares. Nothing is imported here, so that importing a module of the package
loads only what that module needs."""
