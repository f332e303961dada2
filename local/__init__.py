"""The embedded target: fanflow's CloudFormation template deployed into an in-process
AWS emulator (moto, pinned), with Lambda handlers run from their deployed asset."""
