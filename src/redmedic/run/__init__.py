"""Running a playbook over a fleet: the pool of hosts (`fleet`) and its `--serial` batches
(`rollout`), one host's pipeline (`executor`), read-only steps sharing round trips
(`batching`), the confirmation gate, and `--shard` selection.

It imports the model, the steps, the connections, safety and events; nothing below imports
it back (the CLI and the public face sit above it).
"""
