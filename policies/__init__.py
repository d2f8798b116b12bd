"""Policies: pydantic models, the YAML file format and the pure ``decide()`` engine (imports only ``core``)."""
