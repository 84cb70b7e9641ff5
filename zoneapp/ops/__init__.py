"""Operator tools that read the cluster: reconciliation of sources against outputs."""
