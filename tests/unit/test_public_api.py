"""The public API is deliberate: this test fails when it changes by accident."""

import redmedic

EXPECTED = {
    "Change", "CommandChange", "CommandResult", "ConnectOptions", "Connection", "FileChange",
    "Finding", "Host", "HostError", "HostResult", "InputError", "Inventory", "PlanError",
    "Playbook", "PlaybookError", "RedmedicError", "RemoteFile", "RunOptions", "RunResult",
    "Status", "Step", "StepArgs", "StepContext", "StepResult", "StepType", "TemplateError",
    "UnreachableError",
    "builtin_step_types", "connect", "load_inventory", "load_playbook", "run_playbook",
    "select_hosts",
}  # fmt: skip


def test_public_api_is_exactly_the_curated_list() -> None:
    assert set(redmedic.__all__) == EXPECTED
    assert redmedic.__all__ == sorted(redmedic.__all__)
    for name in redmedic.__all__:
        assert getattr(redmedic, name) is not None
