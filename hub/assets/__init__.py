"""Sites, device groups, devices and enrollment: the hub's asset service."""
