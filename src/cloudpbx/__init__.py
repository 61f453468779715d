"""cloudpbx — a multi-tenant virtual (cloud) PBX."""

__version__ = "0.1.0"
