"""Tools for demos and development that are not part of the product's server: the scripted
model server `marlin demo` starts (plain Python, no Django)."""
