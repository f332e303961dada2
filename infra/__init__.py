"""fanflow's infrastructure: one CDK Stack composed of one Construct per concern."""
