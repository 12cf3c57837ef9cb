"""Editing methods: each subclasses ``methods.base.EditingMethod`` and registers itself by name."""

from methods.base import EditingMethod, config_path, get_method, list_methods, load_method, register_method

__all__ = ["EditingMethod", "config_path", "get_method", "list_methods", "load_method", "register_method"]
