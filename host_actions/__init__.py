"""Host actions over WinRM: inventory, diagnose and repair an IIS host (see docs/host-actions.md).

Modules: winrm_client (sessions, deadlines, threads), scripts (the .ps1 files and how a job
travels), inventory / parsers / audit (facts), diagnose (judgement), actions (one module per
action), registry (every action by name, for the CLI, buttons and policy), simulator (a
WS-Management host for tests and demos).
"""
