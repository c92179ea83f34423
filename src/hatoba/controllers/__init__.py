"""Level-triggered control: task definitions, run/stop task, and (later) services."""
