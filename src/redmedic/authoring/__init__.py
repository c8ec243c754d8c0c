"""For people who write playbooks: the generated step reference and JSON Schema
(`reference`) and the commented starter playbook (`scaffold`).
"""
