"""Faust agents: one per boundary of the policy (installed as ``zoneapp.agents``)."""
