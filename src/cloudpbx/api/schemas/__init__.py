"""Pydantic schemas per resource: XCreate, XUpdate, XRead."""
