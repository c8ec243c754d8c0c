"""What a run is made of, read and checked before any host is contacted.

The inventory (every Ansible source, and the ssh client configuration that says how each
host is reached), the playbook and its templates, `-e` values, Ansible Vault data, and the
plan's vocabulary (`Change`, `Finding`, `StepResult`). Every input error is raised here with
FILE:LINE. This room imports only `errors`, `events` and itself: everything else builds on it.
"""
